//! The proxy's durable state in one embedded redb file (`proxy.redb` under the data folder):
//! the replay log and the idempotency records.
//!
//! Every write is one redb transaction committed with `Durability::Immediate` (redb's default),
//! which fsyncs before `commit` returns. The dual write only answers a client *after* the replay
//! entry that keeps its promise is committed, so a SIGKILL at any instant loses nothing the
//! client was told succeeded.
//!
//! redb calls block, so the async API runs them on the blocking pool.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

const REPLAYS: TableDefinition<&str, &[u8]> = TableDefinition::new("replays");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

/// Storage failure.
#[derive(Debug, thiserror::Error)]
#[error("replay store: {0}")]
pub struct StoreError(String);

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError(e.into().to_string())
    }
}

/// What a replay entry must make happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplayKind {
    /// Create the order in the order service (idempotent by key), then link the SAP number.
    CreateInOrderService {
        /// Order-service create body (already translated).
        body: Value,
        /// Idempotency key sent to the order service.
        idempotency_key: String,
        /// SAP's order number, to link once created.
        sap_order_number: Option<String>,
    },
    /// Link an order to its SAP number.
    LinkSapOrderNumber {
        /// Order id in the order service.
        order_id: String,
        /// SAP order number.
        sap_order_number: String,
    },
    /// Void (compensate) an order SAP did not take.
    VoidOrder {
        /// Order id.
        order_id: String,
        /// Reason recorded on the order.
        reason: String,
    },
    /// An order-service create whose result is unknown (timed out) must not survive: create it
    /// idempotently (returns the existing one if it landed) and void it.
    CompensateUnknownCreate {
        /// The create body that was sent.
        body: Value,
        /// Its idempotency key.
        idempotency_key: String,
        /// Reason recorded on the order.
        reason: String,
    },
    /// Create the order in SAP (store-and-forward), looking it up by the stamp first, then link
    /// the number to the order-service order.
    CreateInSap {
        /// The SAP deep-insert body, stamped.
        body: Value,
        /// The stamp field and value looked up before creating (None: no lookup possible).
        stamp: Option<(String, String)>,
        /// Order-service order id to link.
        order_id: String,
    },
}

impl ReplayKind {
    /// Short label for metrics and listings.
    pub fn label(&self) -> &'static str {
        match self {
            ReplayKind::CreateInOrderService { .. } => "create_in_order_service",
            ReplayKind::LinkSapOrderNumber { .. } => "link_sap_order_number",
            ReplayKind::VoidOrder { .. } => "void_order",
            ReplayKind::CompensateUnknownCreate { .. } => "compensate_unknown_create",
            ReplayKind::CreateInSap { .. } => "create_in_sap",
        }
    }
}

/// Whether the worker still tries an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    /// Retried with back-off.
    Pending,
    /// Stopped: needs an operator (retry or discard through the admin API).
    Parked,
}

/// One durable replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayEntry {
    /// Id (UUID v7: sorts by creation).
    pub id: String,
    /// What to do.
    #[serde(flatten)]
    pub kind: ReplayKind,
    /// Route it came from.
    pub route: String,
    /// Correlation id of the client request.
    pub correlation_id: String,
    /// State.
    pub state: ReplayState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was logged.
    pub created_at: DateTime<Utc>,
    /// Not before.
    pub next_attempt_at: DateTime<Utc>,
    /// Last failure.
    pub last_error: Option<String>,
}

impl ReplayEntry {
    /// A new pending entry, due now.
    pub fn new(kind: ReplayKind, route: &str, correlation_id: &str) -> Self {
        let now = Utc::now();
        Self {
            id: Uuid::now_v7().to_string(),
            kind,
            route: route.to_owned(),
            correlation_id: correlation_id.to_owned(),
            state: ReplayState::Pending,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: None,
        }
    }
}

/// A stored HTTP answer (for idempotent replays to clients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order (end-to-end only).
    pub headers: Vec<(String, String)>,
    /// Body, base64.
    pub body_b64: String,
}

/// The state of one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IdemState {
    /// Being processed by the process with this boot id.
    InFlight {
        /// Boot id of the proxy process handling it.
        boot_id: String,
    },
    /// Finished with a definite answer.
    Completed {
        /// That answer.
        response: StoredResponse,
    },
    /// Finished without knowing whether SAP took it: the next attempt looks up first.
    Unknown,
}

/// One idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    /// Fingerprint of method, path and body.
    pub fingerprint: String,
    /// State.
    #[serde(flatten)]
    pub state: IdemState,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// How many earlier attempts ended without a definite answer.
    #[serde(default)]
    pub attempt: u32,
}

/// Result of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// New key: go ahead.
    Fresh,
    /// Seen before without a definite result (crash, or SAP unavailable): go ahead, but look
    /// up before creating. `attempt` counts the earlier attempts.
    Retry {
        /// 1 for the first retry.
        attempt: u32,
    },
    /// Finished before: answer this.
    Replay(StoredResponse),
    /// Same key, different request.
    Mismatch,
    /// Still running in this process.
    InProgress,
}

/// Backlog figures for metrics and the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Pending entries.
    pub pending: u64,
    /// Parked entries.
    pub parked: u64,
    /// Creation time of the oldest entry (pending or parked).
    pub oldest_created_at: Option<DateTime<Utc>>,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) `proxy.redb` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError(e.to_string()))?;
        let db = Database::create(data_dir.join("proxy.redb"))?;
        let tx = db.begin_write()?;
        {
            tx.open_table(REPLAYS)?;
            tx.open_table(IDEMPOTENCY)?;
        }
        tx.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError(format!("store task failed: {e}")))?
    }

    /// Writes (inserts or replaces) an entry, durably.
    pub async fn put_replay(&self, entry: ReplayEntry) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let bytes = serde_json::to_vec(&entry).map_err(|e| StoreError(e.to_string()))?;
            let tx = db.begin_write()?;
            tx.open_table(REPLAYS)?
                .insert(entry.id.as_str(), bytes.as_slice())?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Removes an entry (landed or discarded). True if it existed.
    pub async fn remove_replay(&self, id: String) -> Result<bool, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let existed = tx.open_table(REPLAYS)?.remove(id.as_str())?.is_some();
            tx.commit()?;
            Ok(existed)
        })
        .await
    }

    /// One entry.
    pub async fn get_replay(&self, id: String) -> Result<Option<ReplayEntry>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(REPLAYS)?;
            let v = t.get(id.as_str())?;
            Ok(v.and_then(|g| serde_json::from_slice(g.value()).ok()))
        })
        .await
    }

    /// Every entry, oldest first.
    pub async fn list_replays(&self) -> Result<Vec<ReplayEntry>, StoreError> {
        self.blocking(|db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(REPLAYS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (_, v) = row?;
                match serde_json::from_slice::<ReplayEntry>(v.value()) {
                    Ok(e) => out.push(e),
                    Err(e) => tracing::error!(error = %e, "unreadable replay entry skipped"),
                }
            }
            Ok(out)
        })
        .await
    }

    /// Pending entries due now, oldest first.
    pub async fn due_replays(&self, limit: usize) -> Result<Vec<ReplayEntry>, StoreError> {
        let now = Utc::now();
        let mut all = self.list_replays().await?;
        all.retain(|e| e.state == ReplayState::Pending && e.next_attempt_at <= now);
        all.truncate(limit);
        Ok(all)
    }

    /// Backlog figures.
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        let all = self.list_replays().await?;
        Ok(Backlog {
            pending: all
                .iter()
                .filter(|e| e.state == ReplayState::Pending)
                .count() as u64,
            parked: all
                .iter()
                .filter(|e| e.state == ReplayState::Parked)
                .count() as u64,
            oldest_created_at: all.iter().map(|e| e.created_at).min(),
        })
    }

    /// Claims an idempotency key for a request with this fingerprint.
    pub async fn claim_key(
        &self,
        key: String,
        fingerprint: String,
        boot_id: String,
    ) -> Result<Claim, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let claim = {
                let mut t = tx.open_table(IDEMPOTENCY)?;
                let existing: Option<IdemRecord> = t
                    .get(key.as_str())?
                    .and_then(|g| serde_json::from_slice(g.value()).ok());
                let (claim, write) = match existing {
                    None => (Claim::Fresh, true),
                    Some(r) if r.fingerprint != fingerprint => (Claim::Mismatch, false),
                    Some(r) => match r.state {
                        IdemState::Completed { response } => (Claim::Replay(response), false),
                        IdemState::InFlight { boot_id: b } if b == boot_id => {
                            (Claim::InProgress, false)
                        }
                        IdemState::InFlight { .. } | IdemState::Unknown => (
                            Claim::Retry {
                                attempt: r.attempt + 1,
                            },
                            true,
                        ),
                    },
                };
                if write {
                    let attempt = match claim {
                        Claim::Retry { attempt } => attempt,
                        _ => 0,
                    };
                    let rec = IdemRecord {
                        fingerprint,
                        state: IdemState::InFlight { boot_id },
                        created_at: Utc::now(),
                        attempt,
                    };
                    let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError(e.to_string()))?;
                    t.insert(key.as_str(), bytes.as_slice())?;
                }
                claim
            };
            tx.commit()?;
            Ok(claim)
        })
        .await
    }

    /// Removes finished idempotency records older than `ttl` (in-flight ones stay: their
    /// outcome is still being decided). Returns how many were removed.
    pub async fn expire_keys(&self, ttl: chrono::Duration) -> Result<usize, StoreError> {
        let cutoff = Utc::now() - ttl;
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let removed = {
                let mut t = tx.open_table(IDEMPOTENCY)?;
                let mut old = Vec::new();
                for row in t.iter()? {
                    let (k, v) = row?;
                    if let Ok(rec) = serde_json::from_slice::<IdemRecord>(v.value())
                        && rec.created_at < cutoff
                        && !matches!(rec.state, IdemState::InFlight { .. })
                    {
                        old.push(k.value().to_owned());
                    }
                }
                for k in &old {
                    t.remove(k.as_str())?;
                }
                old.len()
            };
            tx.commit()?;
            Ok(removed)
        })
        .await
    }

    /// Finishes a claimed key: `Some(response)` for a definite answer, `None` when the outcome
    /// is unknown (the next attempt will look up before creating).
    pub async fn finish_key(
        &self,
        key: String,
        fingerprint: String,
        attempt: u32,
        response: Option<StoredResponse>,
    ) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(IDEMPOTENCY)?;
                let rec = IdemRecord {
                    fingerprint,
                    state: match response {
                        Some(response) => IdemState::Completed { response },
                        None => IdemState::Unknown,
                    },
                    created_at: Utc::now(),
                    attempt,
                };
                let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError(e.to_string()))?;
                t.insert(key.as_str(), bytes.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store and the folder that holds it (removed when the test ends).
    fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = temp_dir();
        (Store::open(dir.path()).unwrap(), dir)
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("proxy-store-")
            .tempdir()
            .unwrap()
    }

    #[tokio::test]
    async fn a_replay_entry_survives_reopening_the_file() {
        let dir = temp_dir();
        let entry = ReplayEntry::new(
            ReplayKind::VoidOrder {
                order_id: "o-1".into(),
                reason: "sap_rejected".into(),
            },
            "sales-orders",
            "corr-1",
        );
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_replay(entry.clone()).await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.list_replays().await.unwrap(), vec![entry]);
        assert_eq!(store.backlog().await.unwrap().pending, 1);
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_its_answer_and_refuses_another_body() {
        let (store, _dir) = temp_store();
        let claim = |fp: &str| store.claim_key("k1".into(), fp.into(), "boot-1".into());
        assert_eq!(claim("fp-a").await.unwrap(), Claim::Fresh);
        assert_eq!(claim("fp-a").await.unwrap(), Claim::InProgress);
        let resp = StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body_b64: "e30=".into(),
        };
        store
            .finish_key("k1".into(), "fp-a".into(), 0, Some(resp.clone()))
            .await
            .unwrap();
        assert_eq!(claim("fp-a").await.unwrap(), Claim::Replay(resp));
        assert_eq!(claim("fp-b").await.unwrap(), Claim::Mismatch);
    }

    #[tokio::test]
    async fn finished_idempotency_records_expire_but_keys_in_flight_stay() {
        let (store, _dir) = temp_store();
        store
            .claim_key("done".into(), "fp".into(), "b".into())
            .await
            .unwrap();
        store
            .finish_key("done".into(), "fp".into(), 0, None)
            .await
            .unwrap();
        store
            .claim_key("running".into(), "fp".into(), "b".into())
            .await
            .unwrap();
        assert_eq!(
            store.expire_keys(chrono::Duration::hours(1)).await.unwrap(),
            0
        );
        assert_eq!(
            store.expire_keys(chrono::Duration::zero()).await.unwrap(),
            1
        );
        let again = store
            .claim_key("done".into(), "other".into(), "b".into())
            .await
            .unwrap();
        assert_eq!(again, Claim::Fresh, "an expired key is new again");
        let running = store
            .claim_key("running".into(), "fp".into(), "b".into())
            .await
            .unwrap();
        assert_eq!(running, Claim::InProgress);
    }

    #[tokio::test]
    async fn a_key_in_flight_in_a_crashed_process_or_with_unknown_outcome_is_retried_with_lookup() {
        let (store, _dir) = temp_store();
        let fresh = store
            .claim_key("k2".into(), "fp".into(), "boot-old".into())
            .await
            .unwrap();
        assert_eq!(fresh, Claim::Fresh);
        let after_crash = store
            .claim_key("k2".into(), "fp".into(), "boot-new".into())
            .await
            .unwrap();
        assert_eq!(after_crash, Claim::Retry { attempt: 1 });
        store
            .finish_key("k2".into(), "fp".into(), 1, None)
            .await
            .unwrap();
        let again = store
            .claim_key("k2".into(), "fp".into(), "boot-new".into())
            .await
            .unwrap();
        assert_eq!(again, Claim::Retry { attempt: 2 });
    }
}
