//! Signed SAP sessions: the session cookie and the CSRF token a retired route hands out,
//! checked without a session table.
//!
//! The cookie `SAP_SESSIONID_<SID>_<client>` carries `issued-at ‖ nonce ‖ user` and an
//! HMAC-SHA256 over it (and over the cookie's name, so a session of one client is not one of
//! another); the token is an HMAC of the cookie's value. A write is accepted when its cookie's
//! MAC holds, the session is younger than [`SESSION_LIFETIME`], and the token is the one
//! derived from that cookie.
//!
//! Why signed rather than a table in memory as SAP keeps it: the key lives in a file
//! (`PROXY_SESSION_KEY_FILE`, created in the data folder on first start), so a token fetched
//! before a proxy restart still works after it, and replicas given the same key file accept
//! each other's tokens (a client's HEAD and its POST may land on different replicas; SAP's
//! JavaScript client does not refetch on a 403). The price: a session cannot be ended early
//! (there is no logoff); it expires after [`SESSION_LIFETIME`], SAP's default
//! `http/security_session_timeout`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How long a session (and its token) is accepted: 30 minutes, SAP's default security
/// session timeout (profile parameter `http/security_session_timeout`).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Longest user name a session carries (SAP user names are at most 12 characters; aliases 40).
const MAX_USER_LEN: usize = 64;

/// The secret that signs sessions.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A fresh random key (tests).
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self(k)
    }

    /// The key in `path` (64 hex digits), created with a fresh random key (mode 0600) when the
    /// file does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(text.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: expected 64 hex digits (a 32-byte session key)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &key.to_hex())?;
                tracing::info!(path = %path.display(), "created the SAP session key");
                Ok(key)
            }
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(k))
    }

    fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A session opened by a CSRF fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The session cookie's value.
    pub session: String,
    /// The CSRF token bound to it.
    pub token: String,
}

/// Signs and checks the sessions of one SAP system and client (one cookie name).
#[derive(Debug, Clone)]
pub struct SignedSessions {
    key: SessionKey,
    cookie_name: String,
}

impl SignedSessions {
    /// Sessions named `cookie_name` (`SAP_SESSIONID_<SID>_<client>`), signed with `key`.
    pub fn new(key: SessionKey, cookie_name: String) -> Self {
        Self { key, cookie_name }
    }

    /// The session cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// A new session for `user`, issued now.
    pub fn open(&self, user: &str) -> Issued {
        self.open_at(user, SystemTime::now())
    }

    fn open_at(&self, user: &str, now: SystemTime) -> Issued {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut payload = Vec::with_capacity(20 + user.len());
        payload.extend_from_slice(&secs.to_be_bytes());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(user.as_bytes());
        let mac = self
            .key
            .mac(&[b"session", self.cookie_name.as_bytes(), &payload]);
        let session = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&mac[..16])
        );
        let token = self.token_of(&session);
        Issued { session, token }
    }

    fn token_of(&self, session: &str) -> String {
        let mac = self
            .key
            .mac(&[b"csrf", self.cookie_name.as_bytes(), session.as_bytes()]);
        STANDARD.encode(&mac[..16])
    }

    /// The user of a session cookie value whose signature holds and that has not expired.
    pub fn user_of(&self, session: &str) -> Option<String> {
        self.user_of_at(session, SystemTime::now())
    }

    fn user_of_at(&self, session: &str, now: SystemTime) -> Option<String> {
        let (payload, mac) = session.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if payload.len() < 20 || payload.len() > 20 + MAX_USER_LEN || mac.len() != 16 {
            return None;
        }
        let want = self
            .key
            .mac(&[b"session", self.cookie_name.as_bytes(), &payload]);
        if !bool::from(want[..16].ct_eq(&mac)) {
            return None;
        }
        let secs = u64::from_be_bytes(payload[..8].try_into().ok()?);
        let issued = UNIX_EPOCH + Duration::from_secs(secs);
        // A session from the future (clock moved back) is as suspect as an expired one.
        let age = now.duration_since(issued).ok()?;
        if age > SESSION_LIFETIME {
            return None;
        }
        String::from_utf8(payload[20..].to_vec()).ok()
    }

    /// Whether `token` is the token of session cookie value `session`, and the session holds.
    pub fn token_matches(&self, session: &str, token: &str) -> bool {
        self.user_of(session).is_some()
            && bool::from(
                self.token_of(session)
                    .as_bytes()
                    .ct_eq(token.trim().as_bytes()),
            )
    }

    /// The session (cookie value and its token) again, when it still holds: a fetch within a
    /// session gets the same token, as from SAP.
    pub fn reissue(&self, session: &str) -> Issued {
        Issued {
            session: session.to_owned(),
            token: self.token_of(session),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> SignedSessions {
        SignedSessions::new(SessionKey::random(), "SAP_SESSIONID_MCK_100".into())
    }

    #[test]
    fn a_token_holds_only_with_its_own_session_and_key() {
        let s = sessions();
        let a = s.open("ALICE");
        assert_eq!(s.user_of(&a.session).as_deref(), Some("ALICE"));
        assert!(s.token_matches(&a.session, &a.token));
        let b = s.open("ALICE");
        assert!(!s.token_matches(&b.session, &a.token), "another session");
        assert!(!s.token_matches(&a.session, "forged"));
        // another key (another proxy's), another client's cookie name
        let other = SignedSessions::new(SessionKey::random(), "SAP_SESSIONID_MCK_100".into());
        assert!(other.user_of(&a.session).is_none());
        let client = SignedSessions::new(s.key.clone(), "SAP_SESSIONID_MCK_200".into());
        assert!(client.user_of(&a.session).is_none());
        // a changed user name breaks the signature
        let (payload, mac) = a.session.split_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
        *raw.last_mut().unwrap() = b'X';
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(raw));
        assert!(s.user_of(&forged).is_none());
        assert_eq!(s.reissue(&a.session), a);
    }

    #[test]
    fn a_session_expires_after_its_lifetime() {
        let s = sessions();
        let then = SystemTime::now() - SESSION_LIFETIME - Duration::from_secs(1);
        let old = s.open_at("ALICE", then);
        assert!(s.user_of(&old.session).is_none());
        assert!(!s.token_matches(&old.session, &old.token));
    }

    #[test]
    fn the_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = SessionKey::load_or_create(&path).unwrap();
        let b = SessionKey::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        std::fs::write(dir.path().join("bad"), "zz").unwrap();
        assert!(SessionKey::load_or_create(&dir.path().join("bad")).is_err());
    }

    #[test]
    fn hostile_cookie_values_are_refused_without_panic() {
        let s = sessions();
        for v in [
            "",
            ".",
            "a.b",
            "....",
            "AAAA.AAAA",
            "é.é",
            &"A".repeat(10_000),
        ] {
            assert!(s.user_of(v).is_none());
            assert!(!s.token_matches(v, v));
        }
    }
}
