//! `mykey-node status` asks a running node for its live facts: a plain
//! HTTP/1.1 GET of `/status.json` on the loopback URL the run loop wrote
//! into the data directory ([`super::URL_FILE`]). A kiosk beside the
//! running node carries a card holder's request to the hub the same way
//! ([`holder`], `POST /holder`).

use super::{StatusJson, URL_FILE};
use crate::config::DataDir;
use mykey_sync_proto::holder::{HolderRequest, HolderResponse};
use mykey_sync_proto::wire::{Request, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The largest answer read.
const MAX_BODY: u64 = 1 << 20;

/// The running node's live status, or `None` when no node runs on this data
/// directory (no URL file, nothing listening, or not an answer of this
/// kind); callers check that the answer's node id is theirs.
pub fn live_status(dir: &DataDir) -> Option<StatusJson> {
    let url = std::fs::read_to_string(dir.root().join(URL_FILE)).ok()?;
    let hostport = url.trim().strip_prefix("http://")?.trim_end_matches('/');
    let addr: SocketAddr = hostport.parse().ok()?;
    if !addr.ip().is_loopback() {
        return None;
    }
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /status.json HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = vec![];
    s.take(MAX_BODY).read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Why a holder request carried through the running node got no hub answer.
#[derive(Debug, thiserror::Error)]
pub enum HolderCallError {
    /// No `mykey-node run` serves this data directory, or it has no hub link.
    #[error("offline: the hub is not reachable from this node")]
    Offline,
    /// The running node is answering too many holder requests.
    #[error("busy: try again in a moment")]
    Busy,
    /// The running node answered with something else.
    #[error("the running node answered {0}: try again, and check its log")]
    Failed(String),
}

/// Carries `req` to the hub through the `mykey-node run` of `dir` and
/// returns the hub's answer.
pub fn holder(dir: &DataDir, req: &HolderRequest) -> Result<HolderResponse, HolderCallError> {
    let url =
        std::fs::read_to_string(dir.root().join(URL_FILE)).map_err(|_| HolderCallError::Offline)?;
    let hostport = url
        .trim()
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .ok_or(HolderCallError::Offline)?;
    let addr: SocketAddr = hostport.parse().map_err(|_| HolderCallError::Offline)?;
    if !addr.ip().is_loopback() {
        return Err(HolderCallError::Offline);
    }
    let body = Request::Holder(Box::new(req.clone())).encode();
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        // The hub's answer, over the node's link, within the challenge's life.
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(
            s,
            "POST /holder HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        s.write_all(&body)?;
        let mut raw = vec![];
        s.take(MAX_BODY).read_to_end(&mut raw)?;
        Ok(raw)
    };
    let raw = exchange().map_err(|_| HolderCallError::Offline)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| HolderCallError::Failed("a cut answer".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status = head.split_whitespace().nth(1).unwrap_or("");
    match status {
        "200" => match Response::decode(body) {
            Ok(Response::Holder(h)) => Ok(*h),
            _ => Err(HolderCallError::Failed("an undecodable answer".into())),
        },
        "503" => Err(HolderCallError::Offline),
        "429" => Err(HolderCallError::Busy),
        other => Err(HolderCallError::Failed(format!("HTTP {other}"))),
    }
}
