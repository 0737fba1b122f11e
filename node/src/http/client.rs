//! `mykey-node status` asks a running node for its live facts: a plain
//! HTTP/1.1 GET of `/status.json` on the loopback URL the run loop wrote
//! into the data directory ([`super::URL_FILE`]).

use super::{StatusJson, URL_FILE};
use crate::config::DataDir;
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
