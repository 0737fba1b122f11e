//! The link to the library system: TCP or TLS (rustls, ring), framing,
//! answer deadlines, and the resend dance of SIP2 error detection.

use super::config::{BridgeConfig, OwnLogin};
use super::server::READ_SLICE;
use mykey_sip2::{Charset, Command, DecodeError, Field, FieldId, Framer, Message, Sequence, reply};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The TLS client settings: trust the CA certificates (PEM) in `ca`.
pub(super) fn tls_config(ca: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The bridge's own login message (93).
pub(super) fn own_login(own: &OwnLogin, charset: Charset) -> Result<Message, String> {
    let field = |id, text: &str| Field::new(id, charset.encode(text)).map_err(|e| e.to_string());
    let fields = vec![
        field(FieldId::LOGIN_USER, &own.user)?,
        field(FieldId::LOGIN_PASSWORD, &own.password)?,
        field(FieldId::LOCATION_CODE, &own.location)?,
    ];
    Message::new(Command::Login, b"00".to_vec(), fields).map_err(|e| e.to_string())
}

enum Link {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Link::Plain(s) => s.flush(),
            Link::Tls(s) => s.flush(),
        }
    }
}

/// The link to the library system.
pub(super) struct Upstream {
    link: Link,
    framer: Framer,
    checksums: bool,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamError {
    #[error("the library system closed the link")]
    Closed,
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] mykey_sip2::FrameTooLong),
    #[error("its answer was not SIP2: {0}")]
    Decode(DecodeError),
    #[error("its answers kept failing the checksum")]
    Checksums,
}

impl Upstream {
    /// Opens the link: TCP (with TLS when configured, handshake included).
    pub(super) fn open(
        cfg: &BridgeConfig,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Upstream, String> {
        let timeout = Duration::from_millis(cfg.upstream_timeout_ms);
        let addrs: Vec<SocketAddr> = cfg
            .upstream
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", cfg.upstream))?
            .collect();
        let mut last = format!("{}: no address", cfg.upstream);
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(READ_SLICE))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let link = match (tls, &cfg.upstream_tls) {
            (Some(tls), Some((_, name))) => {
                let server = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("server name {name:?}: {e}"))?;
                let mut conn = rustls::ClientConnection::new(tls.clone(), server)
                    .map_err(|e| e.to_string())?;
                // The handshake runs with the whole timeout; reads after it wake
                // every slice (a partial TLS record is kept by rustls meanwhile).
                let mut tcp = tcp;
                tcp.set_read_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut tcp)
                        .map_err(|e| format!("TLS handshake with {}: {e}", cfg.upstream))?;
                }
                tcp.set_read_timeout(Some(READ_SLICE))
                    .map_err(|e| e.to_string())?;
                Link::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
            _ => Link::Plain(tcp),
        };
        Ok(Upstream {
            link,
            framer: Framer::new(cfg.max_message_bytes),
            checksums: cfg.upstream_checksums,
            timeout,
        })
    }

    /// Sends a message and reads the answer, asking again (97) after a
    /// checksum error and sending again after a resend request (96).
    pub(super) fn round_trip(
        &mut self,
        mut m: Message,
        seq: &mut Sequence,
    ) -> Result<Message, UpstreamError> {
        *seq = seq.next();
        m.set_sequence(Some(*seq));
        let bytes = m.encode(self.checksums);
        self.write(&bytes)?;
        let mut resends = 0;
        loop {
            let frame = self.read_frame()?;
            match Message::decode(&frame) {
                Ok(d) if d.message.command() == Command::RequestScResend && resends < 2 => {
                    // It got our message garbled: send it again.
                    resends += 1;
                    self.write(&bytes)?;
                }
                Ok(d) => return Ok(d.message),
                Err(DecodeError::Checksum) if resends < 2 => {
                    resends += 1;
                    let ask = reply::request_acs_resend().encode(self.checksums);
                    self.write(&ask)?;
                }
                Err(DecodeError::Checksum) => return Err(UpstreamError::Checksums),
                Err(e) => return Err(UpstreamError::Decode(e)),
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), UpstreamError> {
        match self.link.write_all(bytes).and_then(|()| self.link.flush()) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                Err(UpstreamError::Closed)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn read_frame(&mut self) -> Result<Vec<u8>, UpstreamError> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 8192];
        loop {
            if let Some(frame) = self.framer.next_frame()? {
                return Ok(frame);
            }
            if Instant::now() > deadline {
                return Err(UpstreamError::Timeout(self.timeout.as_secs()));
            }
            match self.link.read(&mut buf) {
                Ok(0) => return Err(UpstreamError::Closed),
                Ok(n) => self.framer.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(UpstreamError::Closed);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
