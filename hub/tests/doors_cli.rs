//! The hub's doors through the real `mykey-hub` binary: operators with
//! roles, API tokens with scopes and expiries (list, revoke, remove),
//! exchange operators' municipalities, and `serve --http` that refuses
//! plain HTTP off loopback and over TLS sets a `Secure`, `__Host-` cookie.
#![allow(missing_docs)]

mod common;

use common::{fails, ok};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mykey-hub"));
    c.env_remove("RUST_LOG");
    c
}

/// `operator add` with the password on stdin.
fn add_operator(data: &Path, args: &[&str], password: &str) -> std::process::Output {
    let mut child = bin()
        .arg("--data")
        .arg(data)
        .args(["operator", "add", "--password-stdin"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refused command may exit before it reads the password: its closed
    // stdin is then no failure of the test (the exit status says the rest).
    let written = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn hub_with_municipality() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub-data");
    ok(&data, &["init"]);
    ok(
        &data,
        &[
            "municipality",
            "add",
            "--code",
            "131059",
            "--name",
            "Bunkyo",
        ],
    );
    (dir, data)
}

#[test]
fn operators_with_roles_and_tokens_listed_revoked_and_removed() {
    let (_dir, data) = hub_with_municipality();
    // A new operator needs a role; staff need their municipality.
    let out = add_operator(&data, &["--name", "ops"], "correct horse battery");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--role"));
    let out = add_operator(
        &data,
        &["--name", "ops", "--role", "staff"],
        "correct horse battery",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--municipality"));
    let out = add_operator(
        &data,
        &[
            "--name",
            "ops",
            "--role",
            "staff",
            "--municipality",
            "131016",
        ],
        "correct horse battery",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not registered"));
    let out = add_operator(
        &data,
        &["--name", "ops", "--role", "admin"],
        "correct horse battery",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add_operator(
        &data,
        &[
            "--name",
            "bunkyo",
            "--role",
            "staff",
            "--municipality",
            "131059",
        ],
        "another good password",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("staff of 131059"));
    // A new password keeps the role.
    let out = add_operator(&data, &["--name", "bunkyo"], "a third good password");
    assert!(String::from_utf8_lossy(&out.stdout).contains("staff of 131059"));

    // A token needs a scope.
    let err = fails(&data, &["operator", "token", "--name", "ops"]);
    assert!(err.contains("--scope"), "{err}");
    let err = fails(
        &data,
        &["operator", "token", "--name", "ops", "--scope", "write"],
    );
    assert!(err.contains("read, staff, admin"), "{err}");
    let err = fails(
        &data,
        &[
            "operator",
            "token",
            "--name",
            "ops",
            "--scope",
            "read",
            "--expires",
            "soon",
        ],
    );
    assert!(err.contains("--expires"), "{err}");
    let token = ok(
        &data,
        &[
            "operator",
            "token",
            "--name",
            "ops",
            "--scope",
            "read",
            "--expires",
            "12h",
        ],
    );
    let token = token.trim();
    assert!(token.starts_with("mkh_") && token.len() == 68, "{token}");
    ok(
        &data,
        &[
            "operator",
            "token",
            "--name",
            "bunkyo",
            "--scope",
            "staff",
            "--expires",
            "never",
        ],
    );
    let list = ok(&data, &["operator", "tokens"]);
    assert!(
        !list.contains(token),
        "a listing never shows a token: {list}"
    );
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    let ops_row = rows.iter().find(|r| r.contains(" ops ")).unwrap();
    assert!(
        ops_row.contains("read") && ops_row.contains("live"),
        "{ops_row}"
    );
    let bunkyo_row = rows.iter().find(|r| r.contains("bunkyo")).unwrap();
    assert!(
        bunkyo_row.contains("staff") && bunkyo_row.contains("never"),
        "{bunkyo_row}"
    );
    let id = ops_row.split_whitespace().next().unwrap();
    assert_eq!(id.len(), 12);

    ok(&data, &["operator", "revoke", "--token", id]);
    let list = ok(&data, &["operator", "tokens", "--name", "ops"]);
    assert!(list.contains("revoked"), "{list}");
    let err = fails(&data, &["operator", "revoke", "--token", id]);
    assert!(err.contains("operator tokens"), "{err}");
    let mut hub = mykey_hub::Hub::open(&data).unwrap();
    assert_eq!(
        hub.token_access(token, mykey_hub::net::unix_now()).unwrap(),
        None
    );
    drop(hub);

    ok(&data, &["operator", "remove", "--name", "bunkyo"]);
    let list = ok(&data, &["operator", "tokens"]);
    assert!(!list.contains("bunkyo"), "{list}");
    let err = fails(&data, &["operator", "remove", "--name", "bunkyo"]);
    assert!(err.contains("no operator"), "{err}");
    let err = fails(
        &data,
        &["operator", "token", "--name", "bunkyo", "--scope", "read"],
    );
    assert!(err.contains("no operator"), "{err}");
}

#[test]
fn exchange_operators_are_allowed_per_municipality_with_a_daily_cap() {
    let (_dir, data) = hub_with_municipality();
    let key = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes(),
    );
    ok(
        &data,
        &[
            "exchange-operator",
            "add",
            "--id",
            "card-x",
            "--name",
            "Card X",
            "--public-key",
            &key,
            "--rate",
            "1/2",
        ],
    );
    assert!(ok(&data, &["exchange-operator", "list"]).contains("may credit no municipality"));
    let err = fails(
        &data,
        &[
            "exchange-operator",
            "allow",
            "--id",
            "card-x",
            "--municipality",
            "131016",
            "--daily-cap",
            "1000",
        ],
    );
    assert!(err.contains("not registered"), "{err}");
    let err = fails(
        &data,
        &[
            "exchange-operator",
            "allow",
            "--id",
            "card-y",
            "--municipality",
            "131059",
            "--daily-cap",
            "1000",
        ],
    );
    assert!(err.contains("not enrolled"), "{err}");
    ok(
        &data,
        &[
            "exchange-operator",
            "allow",
            "--id",
            "card-x",
            "--municipality",
            "131059",
            "--daily-cap",
            "5000000",
        ],
    );
    let list = ok(&data, &["exchange-operator", "list"]);
    assert!(list.contains("may credit 131059 up to 5000000"), "{list}");
    ok(
        &data,
        &[
            "exchange-operator",
            "disallow",
            "--id",
            "card-x",
            "--municipality",
            "131059",
        ],
    );
    assert!(ok(&data, &["exchange-operator", "list"]).contains("may credit no municipality"));
    let err = fails(
        &data,
        &[
            "exchange-operator",
            "disallow",
            "--id",
            "card-x",
            "--municipality",
            "131059",
        ],
    );
    assert!(err.contains("nothing was changed"), "{err}");
}

/// A `mykey-hub serve` process, killed when dropped.
struct Serving {
    child: Child,
    dashboard: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with `http_args`; returns it once it printed its
/// dashboard address, or its stderr if it exited instead.
fn serve(data: &Path, http_args: &[&str]) -> Result<Serving, String> {
    let mut child = bin()
        .arg("--data")
        .arg(data)
        .args(["serve", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(http_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("dashboard on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(dashboard) => Ok(Serving { child, dashboard }),
        Err(_) => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// One request over TLS to 127.0.0.1:`port`, trusting `cert` for `localhost`.
fn https(port: u16, cert: &rcgen::CertifiedKey, request: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("no answer over TLS: {e}"),
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn serve_off_loopback_needs_tls_and_over_tls_the_cookie_is_secure() {
    let (dir, data) = hub_with_municipality();
    let out = add_operator(
        &data,
        &["--name", "ops", "--role", "admin"],
        "correct horse battery",
    );
    assert!(out.status.success());

    // Plain HTTP on every interface: refused, and told what to do.
    let err = serve(&data, &["--http", "0.0.0.0:0"])
        .err()
        .expect("it served plain HTTP off loopback");
    assert!(
        err.contains("--tls-cert") && err.contains("--insecure-http"),
        "{err}"
    );
    // Unless asked for.
    let plain = serve(&data, &["--http", "0.0.0.0:0", "--insecure-http"]).unwrap();
    assert!(
        plain.dashboard.starts_with("http://0.0.0.0:"),
        "{}",
        plain.dashboard
    );
    drop(plain);
    // A key that does not parse is refused at start, with the file named.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, "not a key").unwrap();
    let (c, k) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());
    let err = serve(
        &data,
        &["--http", "0.0.0.0:0", "--tls-cert", c, "--tls-key", k],
    )
    .err()
    .expect("it served with a broken key");
    assert!(err.contains("key.pem"), "{err}");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();

    let tls = serve(
        &data,
        &["--http", "0.0.0.0:0", "--tls-cert", c, "--tls-key", k],
    )
    .unwrap();
    assert!(
        tls.dashboard.starts_with("https://0.0.0.0:"),
        "{}",
        tls.dashboard
    );
    let port = port_of(&tls.dashboard);
    let body = "name=ops&password=correct+horse+battery";
    let answer = https(
        port,
        &cert,
        &format!(
            "POST /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {answer}"));
    assert!(cookie.starts_with("__Host-mykey_session="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let session = cookie.split(';').next().unwrap();
    let answer = https(
        port,
        &cert,
        &format!(
            "GET /api/nodes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {session}\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The plain-HTTP cookie name is not honoured over TLS.
    let plain_name = session.replace("__Host-mykey_session", "mykey_session");
    let answer = https(
        port,
        &cert,
        &format!(
            "GET /api/nodes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nCookie: {plain_name}\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // Plain HTTP to the TLS port gets no page.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("HTTP/1.1 200"));
}
