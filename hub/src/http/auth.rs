//! Operator accounts, login sessions and API tokens.
//!
//! Passwords are stored only as argon2id hashes (PHC strings) in the hub
//! database; API tokens only as their SHA-256 (they are 256 random bits, so
//! a fast hash is enough). A login gives a session cookie (`HttpOnly`,
//! `SameSite=Strict`, 8 hours); API clients and Prometheus send
//! `Authorization: Bearer <token>`. Failed logins are limited per name.

use super::i18n::{Lang, lang_of};
use super::{AppState, pages};
use crate::Hub;
use crate::store::StoreError;
use crate::store::status::OperatorRow;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mykey_sync_proto::UnixMillis;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mykey_session";
/// How long a login lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions held at most (oldest dropped beyond).
const MAX_SESSIONS: usize = 1000;
/// Failed logins allowed per name before a pause.
const MAX_FAILURES: u32 = 5;
/// The pause.
const LOCKOUT: Duration = Duration::from_secs(60);
/// Names tracked for failures at most.
const MAX_TRACKED: usize = 10_000;
/// Operator names: 1..=64 characters of letters, digits, `._-@`.
const MAX_NAME: usize = 64;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

/// Why an operator could not be added or a token made.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The name is not usable.
    #[error("operator name {0:?} is not valid: use 1–64 letters, digits, '.', '_', '-' or '@'")]
    BadName(String),
    /// The password is too short.
    #[error("the password is too short: use at least {MIN_PASSWORD} characters")]
    WeakPassword,
    /// No such operator.
    #[error("no operator named {0:?}: add one with `mykey-hub operator add`")]
    Unknown(String),
    /// Hashing failed.
    #[error("could not hash the password: {0}")]
    Hash(String),
    /// No randomness.
    #[error("the OS gave no randomness: {0}")]
    Random(#[from] getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// An argon2id hash of `password` in PHC string form.
pub fn hash_password(password: &str) -> Result<String, OperatorError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| OperatorError::Hash(e.to_string()))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| OperatorError::Hash(e.to_string()))?
        .to_string())
}

/// Whether `password` matches a stored PHC hash (a malformed hash never matches).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A random password of 20 letters and digits (for demos and first setup).
pub fn random_password() -> Result<String, OperatorError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = [0u8; 20];
    getrandom::fill(&mut raw)?;
    Ok(raw
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Hub {
    /// Adds an operator, or sets a new password for an existing one.
    pub fn set_operator(
        &mut self,
        name: &str,
        password: &str,
        now: UnixMillis,
    ) -> Result<(), OperatorError> {
        if !valid_name(name) {
            return Err(OperatorError::BadName(name.to_owned()));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(OperatorError::WeakPassword);
        }
        let password_hash = hash_password(password)?;
        let mut st = self.store.begin()?;
        st.upsert_operator(&OperatorRow {
            name: name.to_owned(),
            password_hash,
            created_at: now,
        })?;
        st.commit()?;
        Ok(())
    }

    /// Checks an operator's password (argon2: tens of milliseconds).
    pub fn check_operator(&mut self, name: &str, password: &str) -> Result<bool, StoreError> {
        let op = self.store.begin_read()?.operator(name)?;
        Ok(op.is_some_and(|o| verify_password(password, &o.password_hash)))
    }

    /// How many operators can log in.
    pub fn n_operators(&mut self) -> Result<u64, StoreError> {
        self.store.begin_read()?.n_operators()
    }

    /// Makes an API token for an operator; returns it (shown once, stored hashed).
    pub fn new_api_token(&mut self, name: &str, now: UnixMillis) -> Result<String, OperatorError> {
        let mut st = self.store.begin()?;
        if st.operator(name)?.is_none() {
            return Err(OperatorError::Unknown(name.to_owned()));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let token = format!("mkh_{}", hex::encode(raw));
        st.insert_api_token(&sha256(&token), name, now)?;
        st.commit()?;
        Ok(token)
    }

    /// The operator an API token belongs to.
    pub fn api_token_operator(&mut self, token: &str) -> Result<Option<String>, StoreError> {
        self.store.begin_read()?.api_token_operator(&sha256(token))
    }
}

/// Logged-in sessions, in memory (a hub restart logs everyone out).
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<SessionsInner>,
}

#[derive(Default)]
struct SessionsInner {
    /// SHA-256 of the cookie value → (operator, expiry).
    live: HashMap<[u8; 32], (String, Instant)>,
    /// Failed logins per name: (count, first failure).
    failures: HashMap<String, (u32, Instant)>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionsInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start(&self, operator: &str) -> Result<String, getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let token = hex::encode(raw);
        let mut s = self.lock();
        let now = Instant::now();
        s.live.retain(|_, (_, exp)| *exp > now);
        if s.live.len() >= MAX_SESSIONS
            && let Some(oldest) = s.live.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| *k)
        {
            s.live.remove(&oldest);
        }
        s.live
            .insert(sha256(&token), (operator.to_owned(), now + SESSION_TTL));
        Ok(token)
    }

    fn operator(&self, token: &str) -> Option<String> {
        let s = self.lock();
        s.live
            .get(&sha256(token))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(op, _)| op.clone())
    }

    fn end(&self, token: &str) {
        self.lock().live.remove(&sha256(token));
    }

    fn locked_out(&self, name: &str) -> bool {
        let mut s = self.lock();
        match s.failures.get(name) {
            Some((_, first)) if first.elapsed() >= LOCKOUT => {
                s.failures.remove(name);
                false
            }
            Some((n, _)) => *n >= MAX_FAILURES,
            None => false,
        }
    }

    fn failed(&self, name: &str) {
        let mut s = self.lock();
        if s.failures.len() >= MAX_TRACKED {
            s.failures.retain(|_, (_, first)| first.elapsed() < LOCKOUT);
        }
        if s.failures.len() < MAX_TRACKED {
            s.failures
                .entry(name.to_owned())
                .or_insert((0, Instant::now()))
                .0 += 1;
        }
    }

    fn succeeded(&self, name: &str) {
        self.lock().failures.remove(name);
    }
}

/// The operator a request is made by (set by [`require`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator(pub String);

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Lets a request through with a live session cookie or a valid API token;
/// otherwise pages redirect to the login page and the API answers 401.
pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let mut who = cookie(headers, SESSION_COOKIE).and_then(|t| state.sessions().operator(t));
    if who.is_none()
        && let Some(token) = bearer(headers).map(str::to_owned)
    {
        who = state
            .with_hub(move |hub| hub.api_token_operator(&token))
            .await
            .ok()
            .flatten();
    }
    match who {
        Some(op) => {
            req.extensions_mut().insert(Operator(op));
            next.run(req).await
        }
        None => {
            let path = req.uri().path();
            if path.starts_with("/api/") || path == "/metrics" {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    axum::Json(serde_json::json!({
                        "error": "log in at /login, or send Authorization: Bearer <token> \
                                  (make one with `mykey-hub operator token`)"
                    })),
                )
                    .into_response()
            } else {
                Redirect::to("/login").into_response()
            }
        }
    }
}

/// The login and logout routes (public).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

async fn login_page(
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LangQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    pages::with_lang_cookie(
        lang,
        q.lang.is_some(),
        Html(pages::login(lang, None)).into_response(),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers, None);
    let name = f.name.trim().to_owned();
    let fail = |lang: Lang, status: StatusCode, msg: &'static str| {
        (status, Html(pages::login(lang, Some(msg)))).into_response()
    };
    if !valid_name(&name) {
        return fail(lang, StatusCode::UNAUTHORIZED, lang.labels().login_failed);
    }
    if state.sessions().locked_out(&name) {
        return fail(
            lang,
            StatusCode::TOO_MANY_REQUESTS,
            lang.labels().login_locked,
        );
    }
    let n = name.clone();
    let ok = state
        .with_hub(move |hub| hub.check_operator(&n, &f.password))
        .await;
    match ok {
        Ok(true) => {
            state.sessions().succeeded(&name);
            let Ok(token) = state.sessions().start(&name) else {
                return fail(
                    lang,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    lang.labels().login_failed,
                );
            };
            tracing::info!(operator = %name, "operator logged in");
            let cookie = format!(
                "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                SESSION_TTL.as_secs()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Ok(false) => {
            state.sessions().failed(&name);
            tracing::warn!(operator = %name, "failed login");
            fail(lang, StatusCode::UNAUTHORIZED, lang.labels().login_failed)
        }
        Err(e) => {
            tracing::error!("login: {e}");
            fail(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                lang.labels().hub_unavailable,
            )
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = cookie(&headers, SESSION_COOKIE) {
        state.sessions().end(t);
    }
    let gone = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, gone)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn names() {
        for (name, ok) in [
            ("ops", true),
            ("a.b-c_d@x", true),
            ("", false),
            ("a b", false),
            ("名前", false),
        ] {
            assert_eq!(valid_name(name), ok, "{name}");
        }
        assert!(!valid_name(&"x".repeat(65)));
    }

    #[test]
    fn sessions_expire_on_logout_and_failures_lock_out() {
        let s = Sessions::default();
        let t = s.start("ops").unwrap();
        assert_eq!(s.operator(&t).as_deref(), Some("ops"));
        assert_eq!(s.operator("forged"), None);
        s.end(&t);
        assert_eq!(s.operator(&t), None);
        for _ in 0..MAX_FAILURES {
            assert!(!s.locked_out("ops"));
            s.failed("ops");
        }
        assert!(s.locked_out("ops"));
        s.succeeded("ops");
        assert!(!s.locked_out("ops"));
    }

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; mykey_session=abc; lang=en".parse().unwrap(),
        );
        h.insert(header::AUTHORIZATION, "Bearer mkh_xyz".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "lang"), Some("en"));
        assert_eq!(bearer(&h), Some("mkh_xyz"));
    }
}
