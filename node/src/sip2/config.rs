//! The `[sip2]` section of `node.toml`: where the bridge listens, the library
//! system it speaks for the self-check machines, and each machine's pairing
//! and habits. Per-machine differences are configuration, not code.
//!
//! ```toml
//! [sip2]
//! listen = "0.0.0.0:6001"
//! upstream = "ils.example.org:6001"
//!
//! [[sip2.machine]]
//! name = "sc-1"
//! addr = "192.168.10.21"
//! reader = "ACS ACR1252 1S CL Reader PICC 0"
//! placeholder = "MYKEY"
//! ```

use super::core::{MachineSpec, Policy};
use mykey_sip2::Charset;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// `[sip2]` as written in `node.toml`. Every field has a default but
/// `upstream` (which `--upstream` can give instead).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Sip2Section {
    /// Where self-check machines connect (`--listen` overrides).
    pub listen: String,
    /// The library system's SIP2 address, `HOST:PORT` (`--upstream` overrides).
    pub upstream: Option<String>,
    /// The library system's character set: `ibm850` (the SIP2 default) or `utf-8`.
    pub upstream_charset: String,
    /// Send checksums and sequence numbers to the library system.
    pub upstream_checksums: bool,
    /// Speak TLS to the library system.
    pub upstream_tls: bool,
    /// The CA certificate (PEM) the library system's TLS certificate must chain to.
    pub upstream_ca: Option<PathBuf>,
    /// The name in the library system's certificate; the host of `upstream` by default.
    pub upstream_server_name: Option<String>,
    /// Log in to the library system with these credentials (93: CN, CO, CP)
    /// instead of passing the machines' own login through.
    pub login_user: Option<String>,
    /// The login password (with `login_user`).
    pub login_password: Option<String>,
    /// The location code sent with the login.
    pub login_location: Option<String>,
    /// How long after a tap the machine may send its placeholder.
    pub tap_window_secs: u64,
    /// A patron session on a machine ends after this long without a message.
    pub session_idle_secs: u64,
    /// Readers that show a one-time token instead of being paired with a machine.
    pub token_readers: Vec<String>,
    /// Digits in a one-time token.
    pub token_digits: usize,
    /// How long a token may be typed at a machine.
    pub token_window_secs: u64,
    /// Wrong token-shaped patron ids a machine may send in ten minutes before
    /// tokens are refused there for ten minutes.
    pub max_token_misses: u32,
    /// The longest SIP2 message accepted from either side, in bytes.
    pub max_message_bytes: usize,
    /// A message begun must end within this many seconds.
    pub message_timeout_secs: u64,
    /// A machine connection silent this long is closed.
    pub idle_timeout_secs: u64,
    /// The library system must answer within this many seconds.
    pub upstream_timeout_secs: u64,
    /// At most this many machine connections at once.
    pub max_connections: usize,
    /// The self-check machines. None: any machine, paired with the first reader.
    #[serde(rename = "machine")]
    pub machines: Vec<MachineSection>,
}

impl Default for Sip2Section {
    fn default() -> Self {
        Sip2Section {
            listen: "127.0.0.1:6001".to_owned(),
            upstream: None,
            upstream_charset: "ibm850".to_owned(),
            upstream_checksums: true,
            upstream_tls: false,
            upstream_ca: None,
            upstream_server_name: None,
            login_user: None,
            login_password: None,
            login_location: None,
            tap_window_secs: 30,
            session_idle_secs: 180,
            token_readers: Vec::new(),
            token_digits: 8,
            token_window_secs: 120,
            max_token_misses: 5,
            max_message_bytes: 64 * 1024,
            message_timeout_secs: 10,
            idle_timeout_secs: 30 * 60,
            upstream_timeout_secs: 15,
            max_connections: 32,
            machines: Vec::new(),
        }
    }
}

/// One `[[sip2.machine]]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// A name for logs and the tap line.
    pub name: String,
    /// The machine's IP address: its connections are recognised by it.
    pub addr: Option<String>,
    /// The card reader paired with it (as `mykey-node card readers` lists it);
    /// none: patrons use a token from a token reader.
    pub reader: Option<String>,
    /// The patron id the machine sends for "the card just tapped": a fixed
    /// barcode, or empty for an empty `AA`.
    #[serde(default)]
    pub placeholder: String,
    /// The machine's character set: `ibm850` (default) or `utf-8`.
    #[serde(default = "ibm850")]
    pub charset: String,
    /// With the bridge's own login: the user id the machine must log in with (if set).
    pub login_user: Option<String>,
    /// With the bridge's own login: the password the machine must log in with (if set).
    pub login_password: Option<String>,
}

fn ibm850() -> String {
    "ibm850".to_owned()
}

/// The bridge's settings, checked.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Listen address.
    pub listen: String,
    /// The library system, `HOST:PORT`.
    pub upstream: String,
    /// Its character set.
    pub upstream_charset: Charset,
    /// Checksums toward it.
    pub upstream_checksums: bool,
    /// TLS toward it: CA file and server name.
    pub upstream_tls: Option<(PathBuf, String)>,
    /// The bridge's own login (user, password, location), or pass-through.
    pub login: Option<OwnLogin>,
    /// Timings and limits of the deciding core.
    pub policy: Policy,
    /// Readers that give tokens.
    pub token_readers: Vec<String>,
    /// The machines, their addresses and readers (index = `MachineId`).
    pub machines: Vec<(MachineSpec, Option<IpAddr>, Option<String>)>,
    /// Frame bound.
    pub max_message_bytes: usize,
    /// A begun message must end within this.
    pub message_timeout_ms: u64,
    /// An idle machine connection closes after this.
    pub idle_timeout_ms: u64,
    /// The library system must answer within this.
    pub upstream_timeout_ms: u64,
    /// Connection cap.
    pub max_connections: usize,
}

/// The bridge's own login to the library system.
#[derive(Clone)]
pub struct OwnLogin {
    /// CN.
    pub user: String,
    /// CO (never logged).
    pub password: String,
    /// CP.
    pub location: String,
}

impl std::fmt::Debug for OwnLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnLogin({}, password hidden)", self.user)
    }
}

/// `[sip2]` cannot be used as written.
#[derive(Debug, thiserror::Error)]
pub enum Sip2ConfigError {
    /// A field holds a bad value.
    #[error("[sip2] {field}: {detail}")]
    Field {
        /// Which.
        field: String,
        /// What is wrong and what to write instead.
        detail: String,
    },
    /// The section does not parse.
    #[error("[sip2] in node.toml: {0}; see README.md (self-check machines) for the fields")]
    Parse(String),
}

fn bad(field: impl Into<String>, detail: impl Into<String>) -> Sip2ConfigError {
    Sip2ConfigError::Field {
        field: field.into(),
        detail: detail.into(),
    }
}

impl Sip2Section {
    /// Parses the `[sip2]` table.
    pub fn from_table(table: toml::Table) -> Result<Sip2Section, Sip2ConfigError> {
        table
            .try_into()
            .map_err(|e: toml::de::Error| Sip2ConfigError::Parse(e.message().to_owned()))
    }

    /// Checks every value and fills in what follows from others.
    pub fn check(&self) -> Result<BridgeConfig, Sip2ConfigError> {
        let upstream = self.upstream.clone().ok_or_else(|| {
            bad(
                "upstream",
                "no library system address: set upstream = \"HOST:PORT\" or pass --upstream HOST:PORT",
            )
        })?;
        let host = split_host_port(&upstream)
            .ok_or_else(|| bad("upstream", format!("{upstream:?} is not HOST:PORT")))?;
        let charset =
            |field: &str, v: &str| v.parse::<Charset>().map_err(|e| bad(field, e.to_string()));
        let upstream_tls = match (self.upstream_tls, &self.upstream_ca) {
            (false, _) => None,
            (true, None) => {
                return Err(bad(
                    "upstream_ca",
                    "upstream_tls = true needs the CA certificate (PEM) the library system's certificate chains to",
                ));
            }
            (true, Some(ca)) => Some((
                ca.clone(),
                self.upstream_server_name.clone().unwrap_or(host.to_owned()),
            )),
        };
        let login = match (&self.login_user, &self.login_password) {
            (None, None) => None,
            (Some(user), Some(password)) => Some(OwnLogin {
                user: user.clone(),
                password: password.clone(),
                location: self.login_location.clone().unwrap_or_default(),
            }),
            _ => {
                return Err(bad(
                    "login_user",
                    "set both login_user and login_password (the bridge logs in itself), or neither (machines log in through it)",
                ));
            }
        };
        for (field, text) in [
            ("login_user", self.login_user.as_deref()),
            ("login_password", self.login_password.as_deref()),
            ("login_location", self.login_location.as_deref()),
        ] {
            if text.is_some_and(|t| t.contains(['|', '\r', '\n'])) {
                return Err(bad(field, "may not contain '|' or a line end"));
            }
        }
        if !(4..=16).contains(&self.token_digits) {
            return Err(bad("token_digits", "must be 4 to 16"));
        }
        if self.max_message_bytes < 256 {
            return Err(bad(
                "max_message_bytes",
                "below 256 no real SIP2 message fits",
            ));
        }
        for (field, secs) in [
            ("tap_window_secs", self.tap_window_secs),
            ("session_idle_secs", self.session_idle_secs),
            ("token_window_secs", self.token_window_secs),
            ("message_timeout_secs", self.message_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("upstream_timeout_secs", self.upstream_timeout_secs),
        ] {
            if secs == 0 {
                return Err(bad(field, "must be at least 1 second"));
            }
        }
        if self.max_connections == 0 {
            return Err(bad("max_connections", "must be at least 1"));
        }
        let mut machines = Vec::new();
        let sections = if self.machines.is_empty() {
            vec![MachineSection {
                name: "self-check".to_owned(),
                addr: None,
                reader: None,
                placeholder: String::new(),
                charset: ibm850(),
                login_user: None,
                login_password: None,
            }]
        } else {
            self.machines.clone()
        };
        for (i, m) in sections.iter().enumerate() {
            let at = |f: &str| format!("machine[{i}] ({}).{f}", m.name);
            if m.name.is_empty() {
                return Err(bad(at("name"), "give the machine a name"));
            }
            if machines
                .iter()
                .any(|(s, _, _): &(MachineSpec, _, _)| s.name == m.name)
            {
                return Err(bad(at("name"), "two machines have this name"));
            }
            let addr = match &m.addr {
                None if sections.len() > 1 => {
                    return Err(bad(
                        at("addr"),
                        "with several machines each needs its IP address, so the bridge knows which connection is which",
                    ));
                }
                None => None,
                Some(a) => Some(
                    a.parse::<IpAddr>()
                        .map_err(|_| bad(at("addr"), format!("{a:?} is not an IP address")))?,
                ),
            };
            if addr.is_some()
                && machines
                    .iter()
                    .any(|(_, other, _): &(MachineSpec, Option<IpAddr>, _)| *other == addr)
            {
                return Err(bad(at("addr"), "two machines have this address"));
            }
            let charset = charset(&at("charset"), &m.charset)?;
            if m.placeholder.contains(['|', '\r', '\n']) {
                return Err(bad(at("placeholder"), "may not contain '|' or a line end"));
            }
            machines.push((
                MachineSpec {
                    name: m.name.clone(),
                    placeholder: charset.encode(&m.placeholder),
                    charset,
                    login: match (&m.login_user, &m.login_password) {
                        (Some(u), Some(p)) => Some((charset.encode(u), charset.encode(p))),
                        (None, None) => None,
                        _ => {
                            return Err(bad(
                                at("login_user"),
                                "set both login_user and login_password, or neither",
                            ));
                        }
                    },
                },
                addr,
                m.reader.clone(),
            ));
        }
        Ok(BridgeConfig {
            listen: self.listen.clone(),
            upstream,
            upstream_charset: charset("upstream_charset", &self.upstream_charset)?,
            upstream_checksums: self.upstream_checksums,
            upstream_tls,
            login,
            policy: Policy {
                tap_window_ms: self.tap_window_secs * 1000,
                session_idle_ms: self.session_idle_secs * 1000,
                token_window_ms: self.token_window_secs * 1000,
                token_digits: self.token_digits,
                max_token_misses: self.max_token_misses,
                tokens: !self.token_readers.is_empty(),
                own_login: self.login_user.is_some(),
            },
            token_readers: self.token_readers.clone(),
            machines,
            max_message_bytes: self.max_message_bytes,
            message_timeout_ms: self.message_timeout_secs * 1000,
            idle_timeout_ms: self.idle_timeout_secs * 1000,
            upstream_timeout_ms: self.upstream_timeout_secs * 1000,
            max_connections: self.max_connections,
        })
    }
}

/// The host of `HOST:PORT` (or `[V6]:PORT`), if the port is a number.
fn split_host_port(addr: &str) -> Option<&str> {
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> Result<BridgeConfig, Sip2ConfigError> {
        Sip2Section::from_table(text.parse::<toml::Table>().unwrap())?.check()
    }

    #[test]
    fn a_minimal_section_works_with_one_implicit_machine() {
        let c = section("upstream = \"ils.example:6001\"").unwrap();
        assert_eq!(c.machines.len(), 1);
        assert_eq!(c.machines[0].0.placeholder, b"");
        assert_eq!(c.upstream_charset, Charset::Ibm850);
        assert!(c.login.is_none());
    }

    #[test]
    fn bad_sections_say_what_to_fix() {
        let cases = [
            ("", "--upstream"),
            ("upstream = \"ils\"", "HOST:PORT"),
            (
                "upstream = \"ils:1\"\nupstream_tls = true",
                "CA certificate",
            ),
            ("upstream = \"ils:1\"\nlogin_user = \"x\"", "login_password"),
            (
                "upstream = \"ils:1\"\nupstream_charset = \"latin1\"",
                "utf-8",
            ),
            ("upstream = \"ils:1\"\ntoken_digits = 2", "4 to 16"),
            ("upstream = \"ils:1\"\nfoo = 1", "unknown field"),
            (
                "upstream = \"ils:1\"\n[[machine]]\nname = \"a\"\n[[machine]]\nname = \"b\"",
                "IP address",
            ),
            (
                "upstream = \"ils:1\"\n[[machine]]\nname = \"a\"\naddr = \"1.2.3\"",
                "not an IP address",
            ),
            (
                "upstream = \"ils:1\"\n[[machine]]\nname = \"a\"\nplaceholder = \"a|b\"",
                "'|'",
            ),
        ];
        for (text, want) in cases {
            let err = section(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn machines_keep_their_habits() {
        let c = section(
            "upstream = \"[::1]:6001\"\nupstream_charset = \"utf-8\"\n\
             [[machine]]\nname = \"a\"\naddr = \"127.0.0.2\"\nreader = \"R 0\"\nplaceholder = \"MYKEY\"\ncharset = \"utf-8\"\n\
             [[machine]]\nname = \"b\"\naddr = \"127.0.0.3\"",
        )
        .unwrap();
        assert_eq!(c.machines[0].0.placeholder, b"MYKEY");
        assert_eq!(c.machines[0].2.as_deref(), Some("R 0"));
        assert_eq!(c.machines[1].0.charset, Charset::Ibm850);
        assert_eq!(c.upstream_charset, Charset::Utf8);
    }
}
