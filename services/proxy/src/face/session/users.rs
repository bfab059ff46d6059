//! The users a retired route logs on by itself, once SAP's user store is gone: names with
//! argon2 password hashes (PHC strings, `name:$argon2id$v=19$...` one a line in
//! `PROXY_USERS_FILE`), never a password in clear. `orderctl users hash` makes a line.
//!
//! SAP's clients send basic authentication on every request, and an argon2 check costs tens
//! of milliseconds of CPU by design: a check that succeeded is remembered for
//! [`VERIFIED_TTL`] under a keyed hash of name and password (the key random per process, so
//! the memo holds no password and nothing usable elsewhere), and checks run off the event
//! loop, a few at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::Semaphore;

/// How long a successful check is remembered.
pub const VERIFIED_TTL: Duration = Duration::from_secs(5 * 60);
/// Most remembered checks; the memo is emptied beyond (a check then runs again).
const MAX_VERIFIED: usize = 10_000;

/// One configured user.
#[derive(Clone)]
struct User {
    name: String,
    /// The PHC string, checked to parse at load.
    hash: String,
}

/// Why a logon failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogonFailure {
    /// No credentials, and no session.
    Missing,
    /// Unknown user or wrong password (not told apart, as SAP does not).
    Wrong,
    /// No user is configured: the retired route refuses everyone (fails closed).
    NoUsers,
}

/// The configured users and the memo of recent successful checks.
pub struct Users {
    users: Vec<User>,
    /// A hash of a random password, checked for an unknown user so that a wrong name costs
    /// the same time as a wrong password.
    dummy: String,
    memo_key: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    checks: Arc<Semaphore>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("count", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// A password hash in argon2's PHC format (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), with
/// argon2id's recommended default parameters and a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

impl Users {
    /// No users: every logon fails closed.
    pub fn none() -> Self {
        Self::from_lines("").expect("no lines parse")
    }

    /// Users from `path`; an unreadable file or a bad line is an error naming the line number
    /// (never its content, which holds a hash).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::from_lines(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Users from `name:$argon2...` lines; blank lines and `#` comments are skipped.
    pub fn from_lines(text: &str) -> anyhow::Result<Self> {
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, hash)) = line.split_once(':') else {
                anyhow::bail!("line {}: expected name:$argon2id$...", i + 1);
            };
            let name = name.trim();
            if name.is_empty() || PasswordHash::new(hash.trim()).is_err() {
                anyhow::bail!(
                    "line {}: expected name:<argon2 PHC string> (make one with `orderctl users hash`)",
                    i + 1
                );
            }
            if users
                .iter()
                .any(|u: &User| u.name.eq_ignore_ascii_case(name))
            {
                anyhow::bail!("line {}: user {name} is named twice", i + 1);
            }
            users.push(User {
                name: name.to_owned(),
                hash: hash.trim().to_owned(),
            });
        }
        let mut random = [0u8; 24];
        rand::rng().fill_bytes(&mut random);
        let dummy = if users.is_empty() {
            String::new()
        } else {
            hash_password(&base64_of(&random))?
        };
        let mut memo_key = [0u8; 32];
        rand::rng().fill_bytes(&mut memo_key);
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            users,
            dummy,
            memo_key,
            verified: Mutex::new(HashMap::new()),
            checks: Arc::new(Semaphore::new(parallel)),
        })
    }

    /// Whether any user is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The configured name of `user` (SAP user names are case-insensitive), if configured.
    pub fn canonical(&self, user: &str) -> Option<&str> {
        self.users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(user))
            .map(|u| u.name.as_str())
    }

    /// Checks `user`'s `password`; `Ok` carries the configured name.
    pub async fn verify(
        self: &Arc<Self>,
        user: &str,
        password: &str,
    ) -> Result<String, LogonFailure> {
        if self.users.is_empty() {
            return Err(LogonFailure::NoUsers);
        }
        let memo = self.memo_of(user, password);
        let found = self
            .users
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(user))
            .cloned();
        if let Some(u) = &found
            && self.remembered(&memo)
        {
            return Ok(u.name.clone());
        }
        let hash = found
            .as_ref()
            .map_or(self.dummy.clone(), |u| u.hash.clone());
        let password = password.to_owned();
        let Ok(_slot) = self.checks.clone().acquire_owned().await else {
            return Err(LogonFailure::Wrong);
        };
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        match found {
            Some(u) if ok => {
                self.remember(memo);
                Ok(u.name)
            }
            _ => Err(LogonFailure::Wrong),
        }
    }

    fn memo_of(&self, user: &str, password: &str) -> [u8; 32] {
        let mut m =
            Hmac::<Sha256>::new_from_slice(&self.memo_key).expect("HMAC takes any key length");
        m.update(user.to_ascii_lowercase().as_bytes());
        m.update(&[0]);
        m.update(password.as_bytes());
        m.finalize().into_bytes().into()
    }

    fn remembered(&self, memo: &[u8; 32]) -> bool {
        let table = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        table.get(memo).is_some_and(|t| t.elapsed() < VERIFIED_TTL)
    }

    fn remember(&self, memo: [u8; 32]) {
        let mut table = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_VERIFIED {
            table.retain(|_, t| t.elapsed() < VERIFIED_TTL);
            if table.len() >= MAX_VERIFIED {
                table.clear();
            }
        }
        table.insert(memo, Instant::now());
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_configured_user_logs_on_with_the_right_password_only() {
        let line = format!(
            "alice:{}\n# a comment\n\n",
            hash_password("s3cret").unwrap()
        );
        let users = Arc::new(Users::from_lines(&line).unwrap());
        assert_eq!(
            users.verify("ALICE", "s3cret").await.as_deref(),
            Ok("alice")
        );
        // remembered now, and still only for the right password
        assert_eq!(
            users.verify("alice", "s3cret").await.as_deref(),
            Ok("alice")
        );
        assert_eq!(
            users.verify("alice", "wrong").await,
            Err(LogonFailure::Wrong)
        );
        assert_eq!(
            users.verify("bob", "s3cret").await,
            Err(LogonFailure::Wrong)
        );
        let none = Arc::new(Users::none());
        assert_eq!(
            none.verify("alice", "s3cret").await,
            Err(LogonFailure::NoUsers)
        );
    }

    #[test]
    fn a_bad_line_is_refused_without_echoing_it() {
        let err = Users::from_lines("alice:plaintext-password").unwrap_err();
        assert!(err.to_string().contains("line 1"));
        assert!(!err.to_string().contains("plaintext-password"));
        assert!(Users::from_lines("no-colon").is_err());
        let h = hash_password("x").unwrap();
        assert!(
            Users::from_lines(&format!("a:{h}\nA:{h}")).is_err(),
            "named twice"
        );
    }
}
