//! Where the idempotency keys live: the local store (one proxy), or the shared state database
//! when replicas share them (`PROXY_STATE_DATABASE_URL`), so a retry that lands on another
//! replica finds what the first one did. Both decide a claim the same way
//! ([`crate::dual_write::store::decide_claim`]).

use std::sync::Arc;

use crate::dual_write::store::{Claim, Store, StoreError, StoredResponse};
use crate::shared_state::SharedState;

/// The idempotency key store.
#[derive(Clone, Debug)]
pub enum Keys {
    /// In this proxy's `proxy.redb`.
    Local(Store),
    /// In the shared state database.
    Shared(Arc<SharedState>),
}

impl Keys {
    /// Whether the keys live in the shared state database (a failure there is an outage of
    /// that database, not of this proxy).
    pub fn is_shared(&self) -> bool {
        matches!(self, Keys::Shared(_))
    }

    /// Claims `key` for a new attempt (see [`Store::claim_key`]).
    pub async fn claim_key(
        &self,
        key: String,
        fingerprint: String,
        boot_id: String,
        number: Option<String>,
    ) -> Result<(Claim, Option<String>), StoreError> {
        match self {
            Keys::Local(s) => s.claim_key(key, fingerprint, boot_id, number).await,
            Keys::Shared(s) => s.claim_key(key, fingerprint, boot_id, number).await,
        }
    }

    /// Records the end of an attempt (see [`Store::finish_key`]).
    pub async fn finish_key(
        &self,
        key: String,
        fingerprint: String,
        attempt: u32,
        response: Option<StoredResponse>,
        number: Option<String>,
    ) -> Result<(), StoreError> {
        match self {
            Keys::Local(s) => {
                s.finish_key(key, fingerprint, attempt, response, number)
                    .await
            }
            Keys::Shared(s) => {
                s.finish_key(key, fingerprint, attempt, response, number)
                    .await
            }
        }
    }

    /// Forgets `number` on the key's record (see [`Store::release_key_number`]).
    pub async fn release_key_number(
        &self,
        key: String,
        number: String,
    ) -> Result<bool, StoreError> {
        match self {
            Keys::Local(s) => s.release_key_number(key, number).await,
            Keys::Shared(s) => s.release_key_number(key, number).await,
        }
    }

    /// Removes finished records older than `ttl` (see [`Store::expire_keys`]).
    pub async fn expire_keys(&self, ttl: chrono::Duration) -> Result<usize, StoreError> {
        match self {
            Keys::Local(s) => s.expire_keys(ttl).await,
            Keys::Shared(s) => s.expire_keys(ttl).await,
        }
    }
}
