//! Operator accounts, login sessions and API tokens.
//!
//! Passwords are stored only as argon2id hashes (PHC strings) in the hub
//! database; API tokens only as their SHA-256 (they are 256 random bits, so
//! a fast hash is enough), with a public id (12 hex digits of that hash), a
//! scope and an expiry. A login gives a session cookie (`HttpOnly`,
//! `SameSite=Strict`, 8 hours; over TLS `Secure` and named
//! `__Host-mykey_session`); API clients and Prometheus send
//! `Authorization: Bearer <token>`. Every request looks its operator up
//! again, so a removed operator or a revoked token stops at once, even
//! when the CLI changed it in another process.
//!
//! A login takes its failure before the password is checked
//! ([`super::throttle::LoginThrottle`]), checks the password on a small
//! bounded pool outside the hub lock, and does the same argon2 work for an
//! unknown name (against a dummy hash), so the answer's timing does not
//! tell whether a name exists. Over the limits it answers 429 with
//! `Retry-After`.

use super::i18n::{Lang, lang_of};
use super::pages::layout::{esc, login as login_html, with_lang_cookie};
pub use super::session::{Operator, SECURE_SESSION_COOKIE, SESSION_COOKIE, Sessions};
use super::session::{SESSION_TTL, sha256};
use super::state::{AppState, HubAccessError, now};
use super::throttle::retry_after_secs;
use crate::Hub;
use crate::access::{Access, Capability, Role, Scope, TokenInfo};
use crate::store::StoreError;
use crate::store::status::OperatorRow;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use mykey_sync_proto::UnixMillis;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Operator names: 1..=64 characters of letters, digits, `._-@`.
const MAX_NAME: usize = 64;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password checked (argon2 takes any length; a megabyte form field
/// should not be hashed).
const MAX_PASSWORD: usize = 1024;

/// Why an operator could not be added or a token made.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The name is not usable.
    #[error("operator name {0:?} is not valid: use 1–64 letters, digits, '.', '_', '-' or '@'")]
    BadName(String),
    /// The password is too short.
    #[error("the password is too short: use at least {MIN_PASSWORD} characters")]
    WeakPassword,
    /// The password is too long.
    #[error("the password is too long: use at most {MAX_PASSWORD} characters")]
    LongPassword,
    /// No such operator.
    #[error("no operator named {0:?}: add one with `mykey-hub operator add`")]
    Unknown(String),
    /// The staff role names a municipality the hub does not serve.
    #[error(
        "municipality {0} is not registered at this hub: add it first with `mykey-hub municipality add`"
    )]
    UnknownMunicipality(mykey_sync_proto::MunicipalityCode),
    /// The expiry is not in the future.
    #[error("the token would expire at once: give --expires a duration such as 90d, or never")]
    Expired,
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

/// A hash with the same parameters as real ones, checked for names that do
/// not exist so both cost the same argon2 work. Its password is irrelevant:
/// an unknown name never logs in, whatever the check says.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        SaltString::encode_b64(b"mykey-no-such-operator")
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(b"no such operator", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
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

/// A token just made: shown once, stored hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The bearer token (`mkh_` and 64 hex digits).
    pub token: String,
    /// What the registry keeps of it.
    pub info: TokenInfo,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewToken({:?})", self.info)
    }
}

impl Hub {
    /// Adds an operator with a role, or sets a new password and role for an existing one.
    pub fn set_operator(
        &mut self,
        name: &str,
        password: &str,
        role: Role,
        now: UnixMillis,
    ) -> Result<(), OperatorError> {
        if !valid_name(name) {
            return Err(OperatorError::BadName(name.to_owned()));
        }
        if password.chars().count() < MIN_PASSWORD {
            return Err(OperatorError::WeakPassword);
        }
        if password.len() > MAX_PASSWORD {
            return Err(OperatorError::LongPassword);
        }
        let password_hash = hash_password(password)?;
        let mut st = self.store.begin()?;
        if let Some(m) = role.municipality()
            && st.municipality(m)?.is_none()
        {
            return Err(OperatorError::UnknownMunicipality(m));
        }
        st.upsert_operator(&OperatorRow {
            name: name.to_owned(),
            password_hash,
            role,
            created_at: now,
        })?;
        st.commit()?;
        Ok(())
    }

    /// An operator's role (`None`: no such operator).
    pub fn operator_role(&mut self, name: &str) -> Result<Option<Role>, StoreError> {
        Ok(self.store.begin_read()?.operator(name)?.map(|o| o.role))
    }

    /// Removes an operator and every token of theirs; their sessions end
    /// at their next request. False if there was none.
    pub fn remove_operator(&mut self, name: &str) -> Result<bool, StoreError> {
        let mut st = self.store.begin()?;
        let done = st.remove_operator(name)?;
        st.commit()?;
        Ok(done)
    }

    /// Checks an operator's password (argon2: tens of milliseconds; the
    /// dashboard does this off the hub lock, on a bounded pool).
    pub fn check_operator(&mut self, name: &str, password: &str) -> Result<bool, StoreError> {
        let op = self.store.begin_read()?.operator(name)?;
        Ok(op.is_some_and(|o| verify_password(password, &o.password_hash)))
    }

    /// An operator's password hash, for a check made elsewhere.
    fn password_hash(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .begin_read()?
            .operator(name)?
            .map(|o| o.password_hash))
    }

    /// How many operators can log in.
    pub fn n_operators(&mut self) -> Result<u64, StoreError> {
        self.store.begin_read()?.n_operators()
    }

    /// Makes an API token for an operator with a scope and an expiry
    /// (`None`: never); returns it (shown once, stored hashed).
    pub fn new_api_token(
        &mut self,
        name: &str,
        scope: Scope,
        expires_at: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Result<NewToken, OperatorError> {
        if expires_at.is_some_and(|e| e <= now) {
            return Err(OperatorError::Expired);
        }
        let mut st = self.store.begin()?;
        if st.operator(name)?.is_none() {
            return Err(OperatorError::Unknown(name.to_owned()));
        }
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let token = format!("mkh_{}", hex::encode(raw));
        let sha = sha256(&token);
        let info = TokenInfo {
            id: hex::encode(&sha[..6]),
            operator: name.to_owned(),
            scope,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        st.insert_api_token(&sha, &info)?;
        st.commit()?;
        Ok(NewToken { token, info })
    }

    /// API tokens (of one operator, or all), oldest first; never the tokens.
    pub fn api_tokens(&mut self, operator: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        self.store.begin_read()?.api_tokens(operator)
    }

    /// Revokes a token by its public id; false if no unrevoked token has it.
    pub fn revoke_api_token(&mut self, id: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let mut st = self.store.begin()?;
        let done = st.revoke_api_token(id, now)?;
        st.commit()?;
        Ok(done)
    }

    /// What a bearer token may do at `now`: `None` if it is unknown,
    /// revoked or expired, or its operator is gone.
    pub fn token_access(
        &mut self,
        token: &str,
        now: UnixMillis,
    ) -> Result<Option<Access>, StoreError> {
        let mut st = self.store.begin_read()?;
        let Some(t) = st.api_token(&sha256(token))? else {
            return Ok(None);
        };
        if !t.live(now) {
            return Ok(None);
        }
        Ok(st.operator(&t.operator)?.map(|o| Access {
            operator: o.name,
            role: o.role,
            scope: t.scope,
        }))
    }

    /// What a logged-in operator may do (their whole role); `None` if they
    /// were removed.
    pub fn session_access(&mut self, name: &str) -> Result<Option<Access>, StoreError> {
        Ok(self.store.begin_read()?.operator(name)?.map(|o| Access {
            operator: o.name,
            role: o.role,
            scope: Scope::Admin,
        }))
    }
}

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

/// The session cookie's name as this hub serves it.
fn session_cookie(state: &AppState) -> &'static str {
    if state.config().tls {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// A `Set-Cookie` value for the session (empty value and `max_age` 0: logout).
fn session_set_cookie(state: &AppState, value: &str, max_age: u64) -> String {
    let secure = if state.config().tls { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        session_cookie(state)
    )
}

/// What a request needs, from its method and path. Anything but GET and
/// HEAD changes something; unknown paths need the most a reader can have.
pub fn capability_of(method: &Method, path: &str) -> Capability {
    if method != Method::GET && method != Method::HEAD {
        return Capability::Act;
    }
    match path {
        "/metrics" => Capability::Fleet,
        "/api/nodes" | "/api/alerts" | "/api/settlement" | "/api/openapi.json" => {
            Capability::Status
        }
        // What to do about an alert is for whoever sees the alert.
        "/help" => Capability::Status,
        p if p.starts_with("/api/nodes/")
            || p.starts_with("/nodes/")
            || p.starts_with("/events/nodes/") =>
        {
            Capability::Status
        }
        _ => Capability::Reports,
    }
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// Lets a request through with a live session cookie or a valid API token
/// whose role and scope allow it (the [`Access`] and the [`Operator`] go in
/// its extensions); otherwise pages redirect to the login page and the API
/// answers 401, or 403 when the operator or token may not do this.
pub async fn require(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let session = cookie(headers, session_cookie(&state))
        .and_then(|t| state.sessions().operator(t).map(|op| (t.to_owned(), op)));
    let access = match (session, bearer(headers).map(str::to_owned)) {
        (Some((cookie_value, name)), _) => {
            let found = state.with_hub(move |hub| hub.session_access(&name)).await;
            if matches!(found, Ok(None)) {
                // The operator was removed: the session ends with them.
                state.sessions().end(&cookie_value);
            }
            found
        }
        (None, Some(token)) => {
            let now = now();
            state
                .with_hub(move |hub| hub.token_access(&token, now))
                .await
        }
        (None, None) => Ok(None),
    };
    let path = req.uri().path().to_owned();
    let access = match access {
        Ok(Some(a)) => a,
        Ok(None) => return unauthenticated(&path),
        Err(e) => {
            tracing::error!("authentication: {e}");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({
                    "error": "the hub's database is unavailable; try again shortly"
                })),
            )
                .into_response();
        }
    };
    let need = capability_of(req.method(), &path);
    if !access.can(need) {
        tracing::warn!(operator = %access.operator, role = %access.role, scope = %access.scope, %path, "refused: not allowed");
        return forbidden(&access, &path);
    }
    req.extensions_mut()
        .insert(Operator(access.operator.clone()));
    req.extensions_mut().insert(access);
    next.run(req).await
}

fn unauthenticated(path: &str) -> Response {
    if is_api(path) {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({
                "error": "log in at /login, or send Authorization: Bearer <token> \
                          (make one with `mykey-hub operator token`); the token may have \
                          expired or been revoked"
            })),
        )
            .into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

/// 403: the operator's role or the token's scope does not allow this.
pub fn forbidden(access: &Access, path: &str) -> Response {
    let message = format!(
        "operator {} ({}, with a {} token or session) may not do this; \
         ask an admin for a token with a wider --scope or another role",
        access.operator, access.role, access.scope
    );
    if is_api(path) {
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": message })),
        )
            .into_response()
    } else {
        (StatusCode::FORBIDDEN, Html(esc(&message))).into_response()
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
    with_lang_cookie(
        lang,
        q.lang.is_some(),
        Html(login_html(lang, None)).into_response(),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

fn login_answer(lang: Lang, status: StatusCode, msg: &'static str) -> Response {
    (status, Html(login_html(lang, Some(msg)))).into_response()
}

fn locked(lang: Lang, wait: Duration) -> Response {
    let mut resp = login_answer(
        lang,
        StatusCode::TOO_MANY_REQUESTS,
        lang.labels().login_locked,
    );
    if let Ok(v) = retry_after_secs(wait).to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

async fn login(
    State(state): State<AppState>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers, None);
    let addr = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip());
    let name = f.name.trim().to_owned();
    let now = Instant::now();
    if let Some(wait) = state.logins().address_blocked(addr, now) {
        tracing::warn!(%addr, "login refused: too many failures from this address");
        return locked(lang, wait);
    }
    let hash = if valid_name(&name) {
        let n = name.clone();
        match state.with_hub(move |hub| hub.password_hash(&n)).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("login: {e}");
                return login_answer(
                    lang,
                    StatusCode::SERVICE_UNAVAILABLE,
                    lang.labels().hub_unavailable,
                );
            }
        }
    } else {
        None
    };
    let known = hash.is_some();
    // The failure is taken now, before the check, so concurrent guesses
    // past the limit are refused without one.
    let attempt = match state.logins().begin(&name, known, addr, Instant::now()) {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!(operator = %name, %addr, "login refused: too many failures");
            return locked(lang, wait);
        }
    };
    let password = f.password;
    let ok = state
        .password_check(move || {
            let password = &password[..password.len().min(MAX_PASSWORD)];
            match hash {
                Some(h) => verify_password(password, &h),
                None => {
                    // The same work for a name that does not exist.
                    let _ = verify_password(password, dummy_hash());
                    false
                }
            }
        })
        .await;
    match ok {
        Ok(true) => {
            state.logins().succeeded(attempt);
            let Ok(token) = state.sessions().start(&name) else {
                return login_answer(
                    lang,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    lang.labels().login_failed,
                );
            };
            tracing::info!(operator = %name, "operator logged in");
            let cookie = session_set_cookie(&state, &token, SESSION_TTL.as_secs());
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Ok(false) => {
            state.logins().failed(attempt);
            tracing::warn!(operator = %name, %addr, "failed login");
            login_answer(lang, StatusCode::UNAUTHORIZED, lang.labels().login_failed)
        }
        Err(HubAccessError::Busy) => {
            state.logins().cancel(attempt);
            tracing::warn!(%addr, "login refused: too many password checks waiting");
            let mut resp = login_answer(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                lang.labels().login_busy,
            );
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            resp
        }
        Err(e) => {
            state.logins().cancel(attempt);
            tracing::error!("login: {e}");
            login_answer(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                lang.labels().hub_unavailable,
            )
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(t) = cookie(&headers, session_cookie(&state)) {
        state.sessions().end(t);
    }
    let gone = session_set_cookie(&state, "", 0);
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
        // The dummy has the real hashes' parameters, so it costs the same.
        let params = |phc: &str| phc.split('$').nth(3).unwrap().to_owned();
        assert_eq!(params(dummy_hash()), params(&h));
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
    fn what_each_route_needs() {
        use Capability::*;
        for (method, path, need) in [
            (Method::GET, "/metrics", Fleet),
            (Method::GET, "/api/nodes", Status),
            (Method::GET, "/api/nodes/ab", Status),
            (Method::GET, "/nodes/ab", Status),
            (Method::GET, "/api/openapi.json", Status),
            (Method::GET, "/", Reports),
            // A page's live stream needs what the page needs.
            (Method::GET, "/events", Reports),
            (Method::GET, "/events/nodes/ab", Status),
            (Method::GET, "/help", Status),
            (Method::GET, "/api/economy/liabilities", Reports),
            (Method::GET, "/api/escrow", Reports),
            (Method::POST, "/api/economy/settle", Act),
            (Method::POST, "/api/nodes", Act),
            (Method::DELETE, "/metrics", Act),
        ] {
            assert_eq!(capability_of(&method, path), need, "{method} {path}");
        }
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
