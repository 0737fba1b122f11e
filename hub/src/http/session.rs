//! Login sessions: the cookie's names, the sessions held in memory, and
//! the [`Operator`] a request is made by. It imports no route module, so the
//! state ([`super::AppState`]) and every route module may import it.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "mykey_session";
/// The session cookie's name over TLS (`__Host-`: Secure, Path=/, no Domain).
pub const SECURE_SESSION_COOKIE: &str = "__Host-mykey_session";
/// How long a login lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions held at most (oldest dropped beyond).
const MAX_SESSIONS: usize = 1000;

/// Logged-in sessions, in memory (a hub restart logs everyone out).
#[derive(Default)]
pub struct Sessions {
    /// SHA-256 of the cookie value → (operator, expiry).
    live: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (String, Instant)>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn start(&self, operator: &str) -> Result<String, getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let token = hex::encode(raw);
        let mut s = self.lock();
        let now = Instant::now();
        s.retain(|_, (_, exp)| *exp > now);
        if s.len() >= MAX_SESSIONS
            && let Some(oldest) = s.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| *k)
        {
            s.remove(&oldest);
        }
        s.insert(sha256(&token), (operator.to_owned(), now + SESSION_TTL));
        Ok(token)
    }

    pub(crate) fn operator(&self, token: &str) -> Option<String> {
        self.lock()
            .get(&sha256(token))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(op, _)| op.clone())
    }

    pub(crate) fn end(&self, token: &str) {
        self.lock().remove(&sha256(token));
    }
}

/// The operator a request is made by (set by [`super::auth::require`], beside its [`crate::access::Access`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator(pub String);

/// SHA-256 of a cookie value or token (what is stored, never the value).
pub(crate) fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_on_logout() {
        let s = Sessions::default();
        let t = s.start("ops").unwrap();
        assert_eq!(s.operator(&t).as_deref(), Some("ops"));
        assert_eq!(s.operator("forged"), None);
        s.end(&t);
        assert_eq!(s.operator(&t), None);
    }
}
