//! Logon and CSRF protection, as SAP's ICF and Gateway do them.
//!
//! - **Logon**: with `SAP_MOCK_USERS` set, every request needs HTTP basic authentication of one
//!   of those users, or the session cookie of an earlier logon. Without users, anyone may call
//!   (the user name from a basic header, if any, is still recorded as `CreatedByUser`).
//! - **CSRF**: `GET`/`HEAD` with `x-csrf-token: Fetch` (any case) opens a session: the answer
//!   carries `x-csrf-token: <token>` and the cookies `SAP_SESSIONID_<SID>_<client>` and
//!   `sap-usercontext`. A write must send that token *and* that cookie; otherwise it gets
//!   `403` with `x-csrf-token: Required` and SAP's plain-text body
//!   `CSRF token validation failed`. Cookies are parsed with or without spaces after `;`.
//!   Sessions live in memory, like SAP's, so a restart invalidates every token. The wire
//!   conventions (cookie names and parsing, basic logon) are `sap_odata::session`'s, shared
//!   with the proxy's SAP face.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use http::HeaderMap;
use rand::RngCore;
use sap_odata::session::{basic_credentials, cookie, session_cookie_name, session_set_cookies};

use crate::config::User;

/// Most sessions kept; beyond that the oldest are dropped (benchmarks open one per write).
const MAX_SESSIONS: usize = 100_000;
/// Idle sessions older than this are dropped when the table is full.
const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name as given (SAP upper-cases it for display).
    pub user: String,
}

/// Why a logon failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogonFailure {
    /// No credentials and no session.
    Missing,
    /// Unknown user or wrong password.
    Wrong,
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    token: String,
    created: Instant,
}

/// The session table.
#[derive(Debug)]
pub struct Sessions {
    cookie_name: String,
    client: String,
    users: Vec<User>,
    table: Mutex<HashMap<String, Session>>,
}

/// A CSRF token handed out, with the cookies that bind it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token (`x-csrf-token` response header).
    pub token: String,
    /// `set-cookie` values.
    pub cookies: Vec<String>,
}

impl Sessions {
    /// Sessions for SAP system `system_id`, client `client`, with these users.
    pub fn new(system_id: &str, client: &str, users: Vec<User>) -> Self {
        Self {
            cookie_name: session_cookie_name(system_id, client),
            client: client.to_owned(),
            users,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Name of the session cookie.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// Whether logon is required at all.
    pub fn logon_required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Authenticates a request by basic auth or session cookie.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, LogonFailure> {
        let basic = basic_credentials(headers);
        if self.users.is_empty() {
            let user = basic.map_or_else(|| "ANONYMOUS".to_owned(), |(u, _)| u);
            return Ok(Principal { user });
        }
        if let Some((user, password)) = basic {
            return self
                .users
                .iter()
                .find(|u| u.name.eq_ignore_ascii_case(&user) && u.password == password)
                .map(|u| Principal {
                    user: u.name.clone(),
                })
                .ok_or(LogonFailure::Wrong);
        }
        match self.session_of(headers) {
            Some(s) => Ok(Principal { user: s.user }),
            None => Err(LogonFailure::Missing),
        }
    }

    fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, &self.cookie_name)?;
        self.table().get(&id).cloned()
    }

    /// Hands out the CSRF token of the caller's session, opening a session when the request
    /// carries none (or one of another user).
    pub fn fetch_token(&self, headers: &HeaderMap, principal: &Principal) -> IssuedToken {
        if let Some(id) = cookie(headers, &self.cookie_name)
            && let Some(s) = self.table().get(&id)
            && s.user == principal.user
        {
            return IssuedToken {
                token: s.token.clone(),
                cookies: Vec::new(),
            };
        }
        let id = random_base64(24);
        let token = random_base64(16);
        {
            let mut table = self.table();
            if table.len() >= MAX_SESSIONS {
                table.retain(|_, s| s.created.elapsed() < SESSION_TTL);
                if table.len() >= MAX_SESSIONS {
                    table.clear();
                }
            }
            table.insert(
                id.clone(),
                Session {
                    user: principal.user.clone(),
                    token: token.clone(),
                    created: Instant::now(),
                },
            );
        }
        IssuedToken {
            token,
            cookies: session_set_cookies(&self.cookie_name, &self.client, &id).to_vec(),
        }
    }

    /// Whether a write carries the token of the session its cookie names, for this user.
    pub fn token_valid(&self, headers: &HeaderMap, principal: &Principal) -> bool {
        let Some(sent) = headers
            .get(sap_odata::session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        match self.session_of(headers) {
            Some(s) => s.token == sent && s.user == principal.user,
            None => false,
        }
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn random_base64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn users() -> Vec<User> {
        vec![User {
            name: "alice".into(),
            password: "secret".into(),
        }]
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {enc}")).unwrap(),
        );
        h
    }

    #[test]
    fn basic_auth_is_checked_against_the_configured_users() {
        let s = Sessions::new("MCK", "100", users());
        assert!(s.authenticate(&basic("ALICE", "secret")).is_ok());
        assert_eq!(
            s.authenticate(&basic("alice", "wrong")),
            Err(LogonFailure::Wrong)
        );
        assert_eq!(
            s.authenticate(&HeaderMap::new()),
            Err(LogonFailure::Missing)
        );
    }

    #[test]
    fn a_token_is_valid_only_with_its_session_cookie_sent_the_sdk_way() {
        let s = Sessions::new("MCK", "100", users());
        let h = basic("alice", "secret");
        let who = s.authenticate(&h).unwrap();
        let issued = s.fetch_token(&h, &who);
        let pairs: Vec<String> = issued
            .cookies
            .iter()
            .map(|c| c.split(';').next().unwrap().to_owned())
            .collect();
        let mut write = basic("alice", "secret");
        write.insert("cookie", HeaderValue::from_str(&pairs.join(";")).unwrap());
        write.insert(
            "x-csrf-token",
            HeaderValue::from_str(&issued.token).unwrap(),
        );
        assert!(s.token_valid(&write, &who));
        // the cookie alone also logs on
        let mut cookie_only = HeaderMap::new();
        cookie_only.insert("cookie", HeaderValue::from_str(&pairs.join("; ")).unwrap());
        assert_eq!(s.authenticate(&cookie_only).unwrap(), who);
        // wrong token, missing cookie
        write.insert("x-csrf-token", HeaderValue::from_static("forged"));
        assert!(!s.token_valid(&write, &who));
        let mut no_cookie = basic("alice", "secret");
        no_cookie.insert(
            "x-csrf-token",
            HeaderValue::from_str(&issued.token).unwrap(),
        );
        assert!(!s.token_valid(&no_cookie, &who));
    }
}
