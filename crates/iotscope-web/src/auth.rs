//! Accounts, sessions and API tokens.
//!
//! Passwords are argon2id PHC strings. A login gives a random session token
//! in an `HttpOnly; SameSite=Strict` cookie (and `Secure` behind TLS) plus a
//! CSRF token that every state-changing request must echo in
//! `X-CSRF-Token`. API tokens (`Authorization: Bearer ...`, made with
//! `iotscope users token`) carry no ambient authority, so they need no CSRF
//! token. Only SHA-256 hashes of tokens are stored.

use std::net::SocketAddr;
use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use iotscope_store::{SessionRecord, UserRecord};
use serde::Deserialize;
use sha2::Digest;

use crate::{ApiError, App};

const COOKIE: &str = "iotscope_session";

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> String {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .expect("argon2 with default parameters and a random salt")
}

/// True when `password` matches the PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// 32 random bytes, hex: a session, CSRF or API token.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"),
        &mut b,
    )
    .expect("/dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What the store keeps of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Equal without telling by timing where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The signed-in account of a request; extracting it answers 401 when
/// there is none.
pub(crate) struct Caller {
    pub user: UserRecord,
    pub session: SessionRecord,
}

impl Caller {
    /// Operators see everything; an ISP account only its own addresses.
    pub fn may_see(&self, app: &App, ip: &str) -> bool {
        match self.user.role.as_str() {
            "operator" => true,
            "isp" => match (&self.user.isp, app.isp_of(ip)) {
                // The account holds the ISP's id (or, made before ids, its
                // name; both are unique in the table).
                (Some(mine), Some(owner)) => owner.id() == mine || &owner.name == mine,
                _ => false,
            },
            _ => false,
        }
    }

    /// A state-changing request from a cookie session must carry the
    /// session's CSRF token.
    pub fn check_csrf(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.session.kind != "session" {
            return Ok(());
        }
        let sent = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if same(sent, &self.session.csrf) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token header (log in again to get one)",
            ))
        }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string())
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let (token, kind) = match (bearer_token(&parts.headers), cookie_token(&parts.headers)) {
            (Some(t), _) => (t, "token"),
            (None, Some(t)) => (t, "session"),
            (None, None) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "log in first (POST /api/login) or send Authorization: Bearer <token>",
                ))
            }
        };
        let hash = token_hash(&token);
        let found = app
            .store(move |s| s.session(&hash, now_ns()))
            .await?
            .filter(|(s, _)| s.kind == kind);
        match found {
            Some((session, user)) => Ok(Caller { user, session }),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the session or token is unknown or has expired: log in again",
            )),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Login {
    name: String,
    password: String,
}

fn me_json(user: &UserRecord, csrf: &str) -> serde_json::Value {
    serde_json::json!({
        "name": user.name,
        "role": user.role,
        "isp": user.isp,
        "csrf": csrf,
    })
}

/// `POST /api/login {"name", "password"}`: a session cookie and the CSRF
/// token. Attempts are rate limited per client address.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let client = app.client(peer.ip(), &headers);
    let Json(login) =
        body.map_err(|e| ApiError::json_body(e, r#"{"name": ..., "password": ...}"#))?;
    if let Err(wait) = app.login_limit.admit(crate::client::limit_key(client.ip)) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many login attempts from your address: wait {wait} s"),
        )
        .retry_after(wait));
    }
    let name = login.name.clone();
    let users = app.store(|s| s.users()).await?;
    let user = users.into_iter().find(|u| u.name == name);
    // Verify against something even for an unknown name, so the answer
    // takes as long either way.
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_string());
    let password = login.password;
    let ok = app.verify(password, phc).await?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong name or password",
        ));
    };
    let token = new_token();
    let session = SessionRecord {
        token_hash: token_hash(&token),
        user: user.name.clone(),
        kind: "session".into(),
        csrf: new_token(),
        created: iotscope_store::now_rfc3339(),
        expires_ns: now_ns() + app.session_ttl.as_nanos() as i64,
    };
    let csrf = session.csrf.clone();
    app.store(move |s| s.put_session(&session, now_ns()))
        .await?;
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        app.session_ttl.as_secs(),
        if app.secure_cookies || client.https {
            "; Secure"
        } else {
            ""
        }
    );
    Ok(([(header::SET_COOKIE, cookie)], Json(me_json(&user, &csrf))).into_response())
}

/// A fixed argon2id hash of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1JhzRRsDAzFOJaH0CrQ38Q0rVv9hD8oWl3yKT1xUUQo";

/// `POST /api/logout`: ends the session (CSRF-checked).
pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.check_csrf(&headers)?;
    let hash = caller.session.token_hash.clone();
    app.store(move |s| s.delete_session(&hash)).await?;
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({"ok": true})),
    )
        .into_response())
}

/// `GET /api/me`: the account and its CSRF token (for a reloaded page).
pub(crate) async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(me_json(&caller.user, &caller.session.csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("anything", DUMMY_HASH));
        assert_eq!(new_token().len(), 64);
        assert_ne!(new_token(), new_token());
        assert_eq!(token_hash("abc").len(), 64);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("ab", "abc"));
    }
}
