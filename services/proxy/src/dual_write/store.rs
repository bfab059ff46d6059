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
/// Pending replay entries by when they are due: `(next_attempt_at in ms, id)`. The worker reads
/// the head of this index, so the cost of a poll does not grow with the backlog.
const REPLAY_DUE: TableDefinition<(i64, &str), ()> = TableDefinition::new("replay_due");
/// Parked replay entries (ids), so the backlog counts are read, not computed.
const REPLAY_PARKED: TableDefinition<&str, ()> = TableDefinition::new("replay_parked");
/// Every entry that concerns one order, by `(order number, id)`: a change of an order queues
/// behind whatever is logged for that order before it (ids are UUID v7: creation order).
/// Rebuilt from the log at every open (so a log of an earlier version is indexed too).
const REPLAY_BY_ORDER: TableDefinition<(&str, &str), ()> = TableDefinition::new("replay_by_order");
/// Order numbers reserved from the order service and not yet handed out (ascending).
const NUMBERS: TableDefinition<&str, ()> = TableDefinition::new("order_numbers");

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
        /// What SAP derived (currency, prices, net amounts), adopted with that link.
        #[serde(default)]
        pricing: Option<Value>,
    },
    /// Link an order to its SAP number.
    LinkSapOrderNumber {
        /// Order id in the order service.
        order_id: String,
        /// SAP order number.
        sap_order_number: String,
        /// What SAP derived (currency, prices, net amounts), adopted with the link.
        #[serde(default)]
        pricing: Option<Value>,
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
    /// Create the order in SAP (store-and-forward) under the number it names, then link the
    /// number to the order-service order. A repeat is safe: SAP refuses a number it has, and
    /// the order is then read by key.
    CreateInSap {
        /// The SAP deep-insert body, naming its `SalesOrder`.
        body: Value,
        /// Entries written by earlier versions: the stamp field and value looked up before
        /// creating.
        stamp: Option<(String, String)>,
        /// Order-service order id to link.
        order_id: String,
    },
    /// A change SAP accepted in `dual-write` (`PATCH`/`MERGE`/`PUT` of the header or a line,
    /// a line added or removed), to apply to the order service's order with that number
    /// through the same translation as the SAP face of `events` (`face::write`). It waits
    /// behind every entry logged earlier for the same order (its create, earlier changes).
    ApplyChange {
        /// The order number (SAP's and ours).
        sales_order: String,
        /// The effective HTTP method of the SAP request (`X-HTTP-Method` resolved).
        method: String,
        /// The SAP request's path below the service root (`/A_SalesOrderItem(...)`).
        resource: String,
        /// The SAP request body, base64.
        body_b64: String,
    },
    /// A create SAP went silent on, decided once SAP can no longer commit it: SAP holds
    /// `sales_order` → the order service keeps (or gets) the order and is linked; it does not
    /// → the new order is voided (or a create that may have landed is compensated).
    ResolveSilentSap {
        /// The number the create named.
        sales_order: String,
        /// The new order, when the order service answered.
        order_id: Option<String>,
        /// The order-service create body, when the order service did not answer.
        order_body: Option<Value>,
        /// The order service's idempotency key for that create.
        idempotency_key: String,
        /// The client's idempotency key, whose number is released when SAP does not hold it.
        client_key: Option<String>,
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
            ReplayKind::ResolveSilentSap { .. } => "resolve_silent_sap",
            ReplayKind::ApplyChange { .. } => "apply_change",
        }
    }

    /// The order number this entry concerns, for the per-order queue: the order a create
    /// makes (SAP's number, else the one it names), a silent create's number, a change's.
    pub fn order_number(&self) -> Option<&str> {
        match self {
            ReplayKind::CreateInOrderService {
                body,
                sap_order_number,
                ..
            } => sap_order_number
                .as_deref()
                .or_else(|| body["order_number"].as_str()),
            ReplayKind::LinkSapOrderNumber {
                sap_order_number, ..
            } => Some(sap_order_number),
            ReplayKind::CreateInSap { body, .. } => body["SalesOrder"].as_str(),
            ReplayKind::ResolveSilentSap { sales_order, .. }
            | ReplayKind::ApplyChange { sales_order, .. } => Some(sales_order),
            ReplayKind::VoidOrder { .. } | ReplayKind::CompensateUnknownCreate { .. } => None,
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
    /// The W3C `traceparent` of the request that logged it (traces on), so each attempt
    /// continues that request's trace. Entries logged with traces off, or by earlier versions,
    /// have none: their attempts start a trace of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `tracestate` of that trace, passed on with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl ReplayEntry {
    /// A new pending entry, due now, recording the trace context of the running request (the
    /// span in effect, with traces on).
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
            traceparent: platform::otel::current_traceparent(),
            tracestate: platform::otel::current_tracestate(),
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
    /// The order number this key's attempts name in SAP (and in the order service); kept
    /// across attempts while an earlier attempt may have created it.
    #[serde(default)]
    pub number: Option<String>,
}

impl IdemRecord {
    /// The record of an attempt that ended: with its answer (replayed to later requests with
    /// the key), or `None` when the outcome is unknown (the next request retries).
    pub fn finished(
        fingerprint: String,
        attempt: u32,
        response: Option<StoredResponse>,
        number: Option<String>,
    ) -> Self {
        IdemRecord {
            fingerprint,
            state: match response {
                Some(response) => IdemState::Completed { response },
                None => IdemState::Unknown,
            },
            created_at: Utc::now(),
            attempt,
            number,
        }
    }
}

/// Result of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// New key: go ahead.
    Fresh,
    /// Seen before without a definite result (crash, or SAP silent): go ahead under the same
    /// order number, so SAP refuses a second create of an order an earlier attempt made.
    /// `attempt` counts the earlier attempts.
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

/// What claiming a key finds, given its record (`None`: no record): the claim, the order
/// number in effect (the record's, else `number`), and the attempt to record as in flight
/// (`None`: nothing to write). `running` tells whether the attempt in flight under a boot id
/// is still running (this process, or with shared state another replica that is alive); an
/// attempt whose process is gone ended without a definite answer, so the claim retries it.
/// One decision for the local store and the shared one, so both answer alike.
pub fn decide_claim(
    existing: Option<IdemRecord>,
    fingerprint: &str,
    number: Option<String>,
    running: impl Fn(&str) -> bool,
) -> (Claim, Option<String>, Option<u32>) {
    let (claim, kept) = match existing {
        None => (Claim::Fresh, None),
        Some(r) if r.fingerprint != fingerprint => (Claim::Mismatch, r.number),
        Some(r) => match r.state {
            IdemState::Completed { response } => (Claim::Replay(response), r.number),
            IdemState::InFlight { boot_id: b } if running(&b) => (Claim::InProgress, r.number),
            IdemState::InFlight { .. } | IdemState::Unknown => (
                Claim::Retry {
                    attempt: r.attempt + 1,
                },
                r.number,
            ),
        },
    };
    let attempt = match claim {
        Claim::Retry { attempt } => Some(attempt),
        Claim::Fresh => Some(0),
        _ => None,
    };
    (claim, kept.or(number), attempt)
}

impl StoreError {
    /// A failure of another store (the shared state database).
    pub fn other(message: impl std::fmt::Display) -> Self {
        StoreError(message.to_string())
    }
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
            let replays = tx.open_table(REPLAYS)?;
            tx.open_table(IDEMPOTENCY)?;
            tx.open_table(NUMBERS)?;
            let mut due = tx.open_table(REPLAY_DUE)?;
            let mut parked = tx.open_table(REPLAY_PARKED)?;
            let mut by_order = tx.open_table(REPLAY_BY_ORDER)?;
            by_order.retain(|_, _| false)?;
            for row in replays.iter()? {
                let (k, v) = row?;
                if let Ok(e) = serde_json::from_slice::<ReplayEntry>(v.value())
                    && let Some(n) = e.kind.order_number()
                {
                    by_order.insert((n, k.value()), ())?;
                }
            }
            // A log written before the indexes existed: index it once.
            use redb::ReadableTableMetadata;
            if due.len()? == 0 && parked.len()? == 0 && replays.len()? > 0 {
                for row in replays.iter()? {
                    let (k, v) = row?;
                    if let Ok(e) = serde_json::from_slice::<ReplayEntry>(v.value()) {
                        match e.state {
                            ReplayState::Pending => {
                                due.insert((e.next_attempt_at.timestamp_millis(), k.value()), ())?;
                            }
                            ReplayState::Parked => {
                                parked.insert(k.value(), ())?;
                            }
                        }
                    }
                }
            }
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

    /// Writes (inserts or replaces) a replay entry, durably, with its index rows.
    pub async fn put_replay(&self, entry: ReplayEntry) -> Result<(), StoreError> {
        self.put_replays(vec![entry]).await
    }

    /// Writes several replay entries in one durable transaction.
    pub async fn put_replays(&self, entries: Vec<ReplayEntry>) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(REPLAYS)?;
                let mut due = tx.open_table(REPLAY_DUE)?;
                let mut parked = tx.open_table(REPLAY_PARKED)?;
                let mut by_order = tx.open_table(REPLAY_BY_ORDER)?;
                for entry in &entries {
                    let bytes = serde_json::to_vec(entry).map_err(|e| StoreError(e.to_string()))?;
                    let old: Option<ReplayEntry> = t
                        .insert(entry.id.as_str(), bytes.as_slice())?
                        .and_then(|g| serde_json::from_slice(g.value()).ok());
                    if let Some(old) = old {
                        unindex(&old, &mut due, &mut parked, &mut by_order)?;
                    }
                    if let Some(n) = entry.kind.order_number() {
                        by_order.insert((n, entry.id.as_str()), ())?;
                    }
                    match entry.state {
                        ReplayState::Pending => {
                            due.insert(
                                (entry.next_attempt_at.timestamp_millis(), entry.id.as_str()),
                                (),
                            )?;
                        }
                        ReplayState::Parked => {
                            parked.insert(entry.id.as_str(), ())?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Removes an entry (landed, or discarded by an operator). `false` if it was not there.
    pub async fn remove_replay(&self, id: String) -> Result<bool, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let existed = {
                let mut t = tx.open_table(REPLAYS)?;
                let mut due = tx.open_table(REPLAY_DUE)?;
                let mut parked = tx.open_table(REPLAY_PARKED)?;
                let mut by_order = tx.open_table(REPLAY_BY_ORDER)?;
                let old: Option<ReplayEntry> = t
                    .remove(id.as_str())?
                    .and_then(|g| serde_json::from_slice(g.value()).ok());
                match old {
                    Some(old) => {
                        unindex(&old, &mut due, &mut parked, &mut by_order)?;
                        true
                    }
                    None => false,
                }
            };
            tx.commit()?;
            Ok(existed)
        })
        .await
    }

    /// One entry by id.
    pub async fn get_replay(&self, id: String) -> Result<Option<ReplayEntry>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(REPLAYS)?;
            let v = t.get(id.as_str())?;
            Ok(v.and_then(|g| serde_json::from_slice(g.value()).ok()))
        })
        .await
    }

    /// Entries oldest first (ids are UUID v7, so key order is creation order), at most
    /// `limit`, optionally only one state: what the admin API lists.
    pub async fn list_replays_page(
        &self,
        state: Option<ReplayState>,
        limit: usize,
    ) -> Result<Vec<ReplayEntry>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(REPLAYS)?;
            let mut out = Vec::new();
            if state == Some(ReplayState::Parked) {
                let parked = tx.open_table(REPLAY_PARKED)?;
                for row in parked.iter()? {
                    let (k, _) = row?;
                    if let Some(e) = read_entry(&t, k.value())? {
                        out.push(e);
                    }
                    if out.len() >= limit {
                        break;
                    }
                }
                return Ok(out);
            }
            for row in t.iter()? {
                let (_, v) = row?;
                match serde_json::from_slice::<ReplayEntry>(v.value()) {
                    Ok(e) if state.is_none_or(|s| s == e.state) => out.push(e),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "unreadable replay entry skipped"),
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    /// Every entry, oldest first (tests and small logs; the worker never calls this).
    pub async fn list_replays(&self) -> Result<Vec<ReplayEntry>, StoreError> {
        self.list_replays_page(None, usize::MAX).await
    }

    /// Pending entries whose next attempt is due, earliest due first, at most `limit`: read
    /// from the head of the due index, so a poll costs the same at ten entries or a million.
    pub async fn due_replays(&self, limit: usize) -> Result<Vec<ReplayEntry>, StoreError> {
        let now = Utc::now().timestamp_millis();
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let t = tx.open_table(REPLAYS)?;
            let due = tx.open_table(REPLAY_DUE)?;
            let mut out = Vec::new();
            for row in due.range(..=(now, "\u{10ffff}"))? {
                let (k, _) = row?;
                let (_, id) = k.value();
                if let Some(e) = read_entry(&t, id)? {
                    out.push(e);
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    /// The id of the oldest entry (pending or parked) logged for order `number`: a change of
    /// that order queues behind it. One range read of the per-order index.
    pub async fn first_for_order(&self, number: String) -> Result<Option<String>, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let by_order = tx.open_table(REPLAY_BY_ORDER)?;
            let first = by_order
                .range((number.as_str(), "")..=(number.as_str(), "\u{10ffff}"))?
                .next()
                .transpose()?
                .map(|(k, _)| k.value().1.to_owned());
            Ok(first)
        })
        .await
    }

    /// Backlog figures, read from the index sizes and the oldest key (constant cost).
    pub async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.blocking(|db| {
            use redb::ReadableTableMetadata;
            let tx = db.begin_read()?;
            let t = tx.open_table(REPLAYS)?;
            let due = tx.open_table(REPLAY_DUE)?;
            let parked = tx.open_table(REPLAY_PARKED)?;
            let oldest_created_at = match t.first()? {
                Some((_, v)) => serde_json::from_slice::<ReplayEntry>(v.value())
                    .ok()
                    .map(|e| e.created_at),
                None => None,
            };
            Ok(Backlog {
                pending: due.len()?,
                parked: parked.len()?,
                oldest_created_at,
            })
        })
        .await
    }

    /// Claims `key` for a new attempt (see [`Claim`]), durably. `number` is the order number
    /// this attempt would name if the key has none yet; the number in effect is returned with
    /// the claim (an earlier attempt's, while that attempt may have created the order).
    pub async fn claim_key(
        &self,
        key: String,
        fingerprint: String,
        boot_id: String,
        number: Option<String>,
    ) -> Result<(Claim, Option<String>), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let claimed = {
                let mut t = tx.open_table(IDEMPOTENCY)?;
                let existing: Option<IdemRecord> = t
                    .get(key.as_str())?
                    .and_then(|g| serde_json::from_slice(g.value()).ok());
                let (claim, number, attempt) =
                    decide_claim(existing, &fingerprint, number, |b| b == boot_id);
                if let Some(attempt) = attempt {
                    let rec = IdemRecord {
                        fingerprint,
                        state: IdemState::InFlight { boot_id },
                        created_at: Utc::now(),
                        attempt,
                        number: number.clone(),
                    };
                    let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError(e.to_string()))?;
                    t.insert(key.as_str(), bytes.as_slice())?;
                }
                (claim, number)
            };
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    /// Removes finished idempotency records older than `ttl`; keys in flight stay.
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

    /// Records the end of an attempt: its answer (replayed to later requests with the key),
    /// or `None` when the outcome is unknown (the next request retries). `number` is the order
    /// number later attempts must name (`None` once no attempt can have created it: the next
    /// attempt gets a fresh one).
    pub async fn finish_key(
        &self,
        key: String,
        fingerprint: String,
        attempt: u32,
        response: Option<StoredResponse>,
        number: Option<String>,
    ) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(IDEMPOTENCY)?;
                let rec = IdemRecord::finished(fingerprint, attempt, response, number);
                let bytes = serde_json::to_vec(&rec).map_err(|e| StoreError(e.to_string()))?;
                t.insert(key.as_str(), bytes.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Forgets `number` on the key's record so its next attempt gets a fresh number, but only
    /// while no attempt is running or finished with an answer (`false`: try again later). Used
    /// when an order under `number` was voided because SAP never made it.
    pub async fn release_key_number(
        &self,
        key: String,
        number: String,
    ) -> Result<bool, StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let released = {
                let mut t = tx.open_table(IDEMPOTENCY)?;
                let rec: Option<IdemRecord> = t
                    .get(key.as_str())?
                    .and_then(|g| serde_json::from_slice(g.value()).ok());
                match rec {
                    Some(mut r) if r.number.as_deref() == Some(number.as_str()) => {
                        if matches!(r.state, IdemState::Unknown) {
                            r.number = None;
                            let bytes =
                                serde_json::to_vec(&r).map_err(|e| StoreError(e.to_string()))?;
                            t.insert(key.as_str(), bytes.as_slice())?;
                            true
                        } else {
                            false
                        }
                    }
                    // Expired, or already on another number: nothing to release.
                    _ => true,
                }
            };
            tx.commit()?;
            Ok(released)
        })
        .await
    }

    /// Adds reserved order numbers to the pool, durably.
    pub async fn add_numbers(&self, numbers: Vec<String>) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            {
                let mut t = tx.open_table(NUMBERS)?;
                for n in &numbers {
                    t.insert(n.as_str(), ())?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// How many reserved numbers the pool holds.
    pub async fn count_numbers(&self) -> Result<u64, StoreError> {
        self.blocking(|db| {
            use redb::ReadableTableMetadata;
            let tx = db.begin_read()?;
            Ok(tx.open_table(NUMBERS)?.len()?)
        })
        .await
    }

    /// Takes up to `count` numbers out of the pool, durably (lowest first), and tells how many
    /// are left. Numbers taken are never handed out again, even if the process dies before
    /// using them: gaps, never duplicates.
    pub async fn take_numbers(&self, count: usize) -> Result<(Vec<String>, u64), StoreError> {
        self.blocking(move |db| {
            use redb::ReadableTableMetadata;
            let tx = db.begin_write()?;
            let taken = {
                let mut t = tx.open_table(NUMBERS)?;
                let mut taken = Vec::with_capacity(count);
                for row in t.iter()?.take(count) {
                    let (k, _) = row?;
                    taken.push(k.value().to_owned());
                }
                for n in &taken {
                    t.remove(n.as_str())?;
                }
                (taken, t.len()?)
            };
            tx.commit()?;
            Ok(taken)
        })
        .await
    }
}

/// The entry stored under `id`, if readable.
fn read_entry(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<ReplayEntry>, StoreError> {
    Ok(t.get(id)?
        .and_then(|g| match serde_json::from_slice(g.value()) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!(error = %e, "unreadable replay entry skipped");
                None
            }
        }))
}

/// Removes an entry's index rows.
fn unindex(
    old: &ReplayEntry,
    due: &mut redb::Table<(i64, &'static str), ()>,
    parked: &mut redb::Table<&'static str, ()>,
    by_order: &mut redb::Table<(&'static str, &'static str), ()>,
) -> Result<(), StoreError> {
    due.remove((old.next_attempt_at.timestamp_millis(), old.id.as_str()))?;
    parked.remove(old.id.as_str())?;
    if let Some(n) = old.kind.order_number() {
        by_order.remove((n, old.id.as_str()))?;
    }
    Ok(())
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

    #[test]
    fn an_entry_stored_before_trace_contexts_were_kept_still_reads_and_one_without_is_stored_as_before()
     {
        // As a proxy of the previous version wrote it into the `replays` table.
        let old = r#"{"id":"0190f6a2-7c1e-7000-8000-000000000001","kind":"void_order",
            "order_id":"o-1","reason":"sap_rejected","route":"sales-orders",
            "correlation_id":"corr-1","state":"pending","attempts":2,
            "created_at":"2026-01-05T10:00:00Z","next_attempt_at":"2026-01-05T10:00:05Z",
            "last_error":"order service unreachable"}"#;
        let entry: ReplayEntry = serde_json::from_str(old).expect("an old entry reads");
        assert_eq!(entry.traceparent, None);
        assert_eq!(entry.tracestate, None);
        assert_eq!(entry.attempts, 2);
        // Without a trace context nothing new is written (an older proxy reads it as before).
        let written = serde_json::to_value(&entry).unwrap();
        assert!(written.get("traceparent").is_none() && written.get("tracestate").is_none());
        // With one, it comes back as stored.
        let mut traced = entry.clone();
        traced.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        traced.tracestate = Some("congo=t61rcWkgMzE".into());
        let back: ReplayEntry =
            serde_json::from_slice(&serde_json::to_vec(&traced).unwrap()).unwrap();
        assert_eq!(back, traced);
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
    async fn a_change_queues_behind_the_oldest_entry_of_its_order_even_after_reopening() {
        let dir = temp_dir();
        let change = |n: &str| {
            ReplayEntry::new(
                ReplayKind::ApplyChange {
                    sales_order: n.into(),
                    method: "PATCH".into(),
                    resource: format!("/A_SalesOrder('{n}')"),
                    body_b64: String::new(),
                },
                "sales-orders",
                "c",
            )
        };
        let create = ReplayEntry::new(
            ReplayKind::CreateInOrderService {
                body: serde_json::json!({"order_number": "8000000001"}),
                idempotency_key: "k".into(),
                sap_order_number: None,
                pricing: None,
            },
            "sales-orders",
            "c",
        );
        let (first, second, other) = (
            change("8000000001"),
            change("8000000001"),
            change("8000000002"),
        );
        {
            let store = Store::open(dir.path()).unwrap();
            for e in [&create, &first, &second, &other] {
                store.put_replay(e.clone()).await.unwrap();
            }
            let head = store.first_for_order("8000000001".into()).await.unwrap();
            assert_eq!(head.as_deref(), Some(create.id.as_str()));
            store.remove_replay(create.id.clone()).await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let head = store.first_for_order("8000000001".into()).await.unwrap();
        assert_eq!(head.as_deref(), Some(first.id.as_str()));
        let head = store.first_for_order("8000000002".into()).await.unwrap();
        assert_eq!(head.as_deref(), Some(other.id.as_str()));
        store.remove_replay(other.id.clone()).await.unwrap();
        assert_eq!(
            store.first_for_order("8000000002".into()).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_its_answer_and_refuses_another_body() {
        let (store, _dir) = temp_store();
        let claim = |fp: &str| {
            let (store, fp) = (store.clone(), fp.to_owned());
            async move {
                store
                    .claim_key("k1".into(), fp, "boot-1".into(), None)
                    .await
                    .map(|c| c.0)
            }
        };
        assert_eq!(claim("fp-a").await.unwrap(), Claim::Fresh);
        assert_eq!(claim("fp-a").await.unwrap(), Claim::InProgress);
        let resp = StoredResponse {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body_b64: "e30=".into(),
        };
        store
            .finish_key("k1".into(), "fp-a".into(), 0, Some(resp.clone()), None)
            .await
            .unwrap();
        assert_eq!(claim("fp-a").await.unwrap(), Claim::Replay(resp));
        assert_eq!(claim("fp-b").await.unwrap(), Claim::Mismatch);
    }

    #[tokio::test]
    async fn finished_idempotency_records_expire_but_keys_in_flight_stay() {
        let (store, _dir) = temp_store();
        store
            .claim_key(
                "done".into(),
                "fp".into(),
                "b".into(),
                Some("8000000001".into()),
            )
            .await
            .unwrap();
        store
            .finish_key("done".into(), "fp".into(), 0, None, None)
            .await
            .unwrap();
        store
            .claim_key(
                "running".into(),
                "fp".into(),
                "b".into(),
                Some("8000000001".into()),
            )
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
            .claim_key(
                "done".into(),
                "other".into(),
                "b".into(),
                Some("8000000001".into()),
            )
            .await
            .unwrap()
            .0;
        assert_eq!(again, Claim::Fresh, "an expired key is new again");
        let running = store
            .claim_key(
                "running".into(),
                "fp".into(),
                "b".into(),
                Some("8000000001".into()),
            )
            .await
            .unwrap()
            .0;
        assert_eq!(running, Claim::InProgress);
    }

    #[tokio::test]
    async fn a_key_in_flight_in_a_crashed_process_or_with_unknown_outcome_is_retried_with_lookup() {
        let (store, _dir) = temp_store();
        let fresh = store
            .claim_key(
                "k2".into(),
                "fp".into(),
                "boot-old".into(),
                Some("8000000001".into()),
            )
            .await
            .unwrap()
            .0;
        assert_eq!(fresh, Claim::Fresh);
        let after_crash = store
            .claim_key(
                "k2".into(),
                "fp".into(),
                "boot-new".into(),
                Some("8000000001".into()),
            )
            .await
            .unwrap()
            .0;
        assert_eq!(after_crash, Claim::Retry { attempt: 1 });
        store
            .finish_key("k2".into(), "fp".into(), 1, None, Some("8000000001".into()))
            .await
            .unwrap();
        let again = store
            .claim_key(
                "k2".into(),
                "fp".into(),
                "boot-new".into(),
                Some("8000000001".into()),
            )
            .await
            .unwrap()
            .0;
        assert_eq!(again, Claim::Retry { attempt: 2 });
    }

    #[tokio::test]
    async fn a_retry_names_the_number_of_the_attempt_that_may_have_landed_until_it_is_released() {
        let (store, _dir) = temp_store();
        let claim = |n: &str| {
            let (store, n) = (store.clone(), n.to_owned());
            async move {
                store
                    .claim_key("k".into(), "fp".into(), "boot-new".into(), Some(n))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            claim("8000000001").await,
            (Claim::Fresh, Some("8000000001".into()))
        );
        store
            .finish_key("k".into(), "fp".into(), 0, None, Some("8000000001".into()))
            .await
            .unwrap();
        // The retry offers a fresh number but must name the first one.
        assert_eq!(
            claim("8000000002").await,
            (Claim::Retry { attempt: 1 }, Some("8000000001".into()))
        );
        // While that retry runs, the number cannot be released.
        assert!(
            !store
                .release_key_number("k".into(), "8000000001".into())
                .await
                .unwrap()
        );
        store
            .finish_key("k".into(), "fp".into(), 1, None, Some("8000000001".into()))
            .await
            .unwrap();
        assert!(
            store
                .release_key_number("k".into(), "8000000001".into())
                .await
                .unwrap()
        );
        assert_eq!(
            claim("8000000003").await,
            (Claim::Retry { attempt: 2 }, Some("8000000003".into()))
        );
    }

    #[tokio::test]
    async fn due_entries_come_from_the_index_earliest_first_and_backlog_counts_follow_every_change()
    {
        let (store, _dir) = temp_store();
        let mut entries = Vec::new();
        for i in 0..5 {
            let mut e = ReplayEntry::new(
                ReplayKind::VoidOrder {
                    order_id: format!("o-{i}"),
                    reason: "r".into(),
                },
                "sales-orders",
                "c",
            );
            // Due in reverse creation order; the last one not due yet.
            e.next_attempt_at = Utc::now() - chrono::Duration::seconds(10 - i64::from(i));
            if i == 4 {
                e.next_attempt_at = Utc::now() + chrono::Duration::hours(1);
            }
            entries.push(e);
        }
        store.put_replays(entries.clone()).await.unwrap();
        let due = store.due_replays(10).await.unwrap();
        assert_eq!(
            due.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            entries[..4]
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(store.due_replays(2).await.unwrap().len(), 2);
        // Rescheduling moves the entry in the index; parking takes it out of it.
        let mut later = entries[0].clone();
        later.next_attempt_at = Utc::now() + chrono::Duration::hours(2);
        store.put_replay(later).await.unwrap();
        let mut parked = entries[1].clone();
        parked.state = ReplayState::Parked;
        store.put_replay(parked).await.unwrap();
        assert_eq!(
            store
                .due_replays(10)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>(),
            vec![entries[2].id.clone(), entries[3].id.clone()]
        );
        let b = store.backlog().await.unwrap();
        assert_eq!((b.pending, b.parked), (4, 1));
        assert_eq!(b.oldest_created_at, Some(entries[0].created_at));
        assert!(store.remove_replay(entries[2].id.clone()).await.unwrap());
        assert!(!store.remove_replay(entries[2].id.clone()).await.unwrap());
        let b = store.backlog().await.unwrap();
        assert_eq!((b.pending, b.parked), (3, 1));
        assert_eq!(
            store
                .list_replays_page(Some(ReplayState::Parked), 10)
                .await
                .unwrap()[0]
                .id,
            entries[1].id
        );
    }

    #[tokio::test]
    async fn numbers_taken_from_the_pool_are_never_handed_out_again_even_after_reopening() {
        let dir = temp_dir();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .add_numbers((1..=5).map(|i| format!("800000000{i}")).collect())
                .await
                .unwrap();
            let (taken, left) = store.take_numbers(2).await.unwrap();
            assert_eq!(taken, vec!["8000000001", "8000000002"]);
            assert_eq!(left, 3);
        }
        let store = Store::open(dir.path()).unwrap();
        let (taken, left) = store.take_numbers(10).await.unwrap();
        assert_eq!(taken, vec!["8000000003", "8000000004", "8000000005"]);
        assert_eq!(left, 0);
        assert!(store.take_numbers(1).await.unwrap().0.is_empty());
    }
}
