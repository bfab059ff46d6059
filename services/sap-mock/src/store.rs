//! The emulator's persistent store: sales orders in an embedded redb database under the data
//! folder, mirrored in memory for queries.
//!
//! Each order is one row (`orders`: sales order number → JSON, its document flow included),
//! and the number ranges' next numbers (sales orders, outbound deliveries, billing documents)
//! sit in `meta`; both change in one write transaction, committed durably before the
//! caller is answered, so an order survives SIGKILL the moment it was reported created (and a
//! "lost response" still leaves it behind, as on real SAP). Concurrent creates share one
//! transaction (group commit by a writer thread). Reads never touch the disk: the whole data
//! set is loaded at start and kept in a `BTreeMap` by number.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sap_odata::date::JsonDate;
use sap_odata::schema::EntityType;
use sap_odata::schema::{SALES_ORDER_ITM_SUBSQNT_PROC_FLOW, SALES_ORDER_SUBSQNT_PROC_FLOW};
use sap_odata::{EdmValue, SALES_ORDER, SALES_ORDER_ITEM};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

use crate::numbering::{Numbering, parse_number};

const ORDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("orders");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_NUMBER: &str = "next_sales_order";
const NEXT_DELIVERY: &str = "next_delivery";
const NEXT_BILLING_DOCUMENT: &str = "next_billing_document";

/// First number of the outbound delivery range (S/4's usual internal range for deliveries).
pub const FIRST_DELIVERY: u64 = 80_000_000;
/// First number of the billing document range (S/4's usual internal range for invoices).
pub const FIRST_BILLING_DOCUMENT: u64 = 90_000_000;

/// The next numbers of the subsequent documents' ranges, drawn by a fulfilment step
/// ([`Store::fulfil`]) and stored with the order that got them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentNumbers {
    next_delivery: u64,
    next_billing_document: u64,
}

impl DocumentNumbers {
    /// The next outbound delivery number (`80000000`, `80000001`, ...).
    pub fn draw_delivery(&mut self) -> String {
        self.next_delivery += 1;
        (self.next_delivery - 1).to_string()
    }

    /// The next billing document number (`90000000`, ...).
    pub fn draw_billing_document(&mut self) -> String {
        self.next_billing_document += 1;
        (self.next_billing_document - 1).to_string()
    }
}

/// Name of the database file inside the data folder.
pub const DB_FILE: &str = "sap-mock.redb";

/// One entity's values, one per property of its type, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    entity: &'static EntityType,
    values: Vec<EdmValue>,
}

impl Record {
    /// A record of `entity` with every property unset (S/4's empty values).
    pub fn empty(entity: &'static EntityType) -> Self {
        Self {
            entity,
            values: entity
                .properties
                .iter()
                .map(|p| EdmValue::unset(p.edm))
                .collect(),
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.entity.properties.iter().position(|p| p.name == name)
    }

    /// The value of `name` (`Null` for unknown names).
    pub fn get(&self, name: &str) -> &EdmValue {
        static NULL: EdmValue = EdmValue::Null;
        self.index(name).map_or(&NULL, |i| &self.values[i])
    }

    /// The string value of `name`, or `""`.
    pub fn get_str(&self, name: &str) -> &str {
        self.get(name).as_str().unwrap_or_default()
    }

    /// Sets `name`; unknown names are ignored (callers use schema names). Every `Edm.DateTime`
    /// of this service is a date (ABAP `DATS`), so SAP keeps only the day: the time of day is
    /// dropped, as S/4 does, and the date comes back as midnight UTC.
    pub fn set(&mut self, name: &str, value: EdmValue) {
        if let Some(i) = self.index(name) {
            self.values[i] = match value {
                EdmValue::DateTime(d) => EdmValue::DateTime(JsonDate::from_millis(
                    d.millis - d.millis.rem_euclid(86_400_000),
                )),
                other => other,
            };
        }
    }

    /// Properties and values in schema order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &EdmValue)> {
        self.entity
            .properties
            .iter()
            .map(|p| p.name)
            .zip(self.values.iter())
    }

    /// The stored form: only the properties that differ from S/4's empty value (most of the
    /// 169 are empty), which keeps rows small; [`Record::from_json`] fills the rest back in.
    fn to_json(&self) -> Value {
        Value::Object(
            self.entity
                .properties
                .iter()
                .zip(self.values.iter())
                .map(|(p, v)| (p, v.to_json()))
                .filter(|(p, json)| *json != EdmValue::unset(p.edm).to_json())
                .map(|(p, json)| (p.name.to_owned(), json))
                .collect(),
        )
    }

    fn from_json(entity: &'static EntityType, json: &Value) -> Result<Self, StoreError> {
        let mut r = Self::empty(entity);
        let object = json
            .as_object()
            .ok_or(StoreError::Corrupt("record is not an object"))?;
        for p in entity.properties {
            if let Some(v) = object.get(p.name) {
                let value = EdmValue::from_json(p, v)
                    .map_err(|_| StoreError::Corrupt("stored value does not fit its property"))?;
                r.set(p.name, value);
            }
        }
        Ok(r)
    }
}

/// A stored sales order: header, items, its document flow and the precise time of its last
/// change (ETag source).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Header values (`A_SalesOrder`).
    pub header: Record,
    /// Items (`A_SalesOrderItem`), in item number order.
    pub items: Vec<Record>,
    /// The documents that follow the order (`A_SalesOrderSubsqntProcFlow`), oldest first.
    pub flow: Vec<Record>,
    /// The document items that follow its items (`A_SalesOrderItmSubsqntProcFlow`), oldest
    /// first; each names its order item in `SalesOrderItem`.
    pub item_flow: Vec<Record>,
    /// `LastChangeDateTime` at full precision.
    pub changed_at: DateTime<Utc>,
}

impl Order {
    /// A new order without document flow.
    pub fn new(header: Record, items: Vec<Record>, changed_at: DateTime<Utc>) -> Self {
        Self {
            header,
            items,
            flow: Vec::new(),
            item_flow: Vec::new(),
            changed_at,
        }
    }

    /// The sales order number.
    pub fn number(&self) -> &str {
        self.header.get_str("SalesOrder")
    }

    /// The document flow of item `item_no` (`to_SubsequentProcFlowDocItem`).
    pub fn item_flow_of<'a>(&'a self, item_no: &'a str) -> impl Iterator<Item = &'a Record> {
        self.item_flow
            .iter()
            .filter(move |r| r.get_str("SalesOrderItem") == item_no)
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("header".into(), self.header.to_json());
        m.insert(
            "items".into(),
            Value::Array(self.items.iter().map(Record::to_json).collect()),
        );
        // an order without flow is stored as before the flow existed
        if !self.flow.is_empty() {
            m.insert(
                "flow".into(),
                Value::Array(self.flow.iter().map(Record::to_json).collect()),
            );
            m.insert(
                "item_flow".into(),
                Value::Array(self.item_flow.iter().map(Record::to_json).collect()),
            );
        }
        m.insert(
            "changed_at".into(),
            Value::String(
                self.changed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
        );
        serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt("row is not JSON"))?;
        let header = Record::from_json(&SALES_ORDER, &v["header"])?;
        let items = v["items"]
            .as_array()
            .ok_or(StoreError::Corrupt("items missing"))?
            .iter()
            .map(|i| Record::from_json(&SALES_ORDER_ITEM, i))
            .collect::<Result<_, _>>()?;
        // rows written before the document flow existed have none
        let records = |key: &str, entity| -> Result<Vec<Record>, StoreError> {
            match &v[key] {
                Value::Null => Ok(Vec::new()),
                Value::Array(rows) => rows.iter().map(|r| Record::from_json(entity, r)).collect(),
                _ => Err(StoreError::Corrupt("document flow is not a list")),
            }
        };
        let flow = records("flow", &SALES_ORDER_SUBSQNT_PROC_FLOW)?;
        let item_flow = records("item_flow", &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW)?;
        let changed_at = v["changed_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or(StoreError::Corrupt("changed_at missing"))?
            .with_timezone(&Utc);
        Ok(Self {
            header,
            items,
            flow,
            item_flow,
            changed_at,
        })
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    /// A stored row does not decode.
    #[error("corrupt store: {0}")]
    Corrupt(&'static str),
    /// The internal number range is used up.
    #[error("number range exhausted")]
    NumberRangeExhausted,
    /// A blocking task failed.
    #[error("storage task failed: {0}")]
    Task(String),
    /// The write transaction of a batch of creates failed.
    #[error("commit failed: {0}")]
    Commit(String),
}

/// Why a create stored nothing (besides storage failures).
#[derive(Debug, PartialEq, Eq)]
pub enum CreateRefused<E> {
    /// The build step refused the order.
    Invalid(E),
    /// The externally given number belongs to an order already.
    NumberTaken(u64),
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into())
}

/// The store: redb on disk, a `BTreeMap` in memory, writes serialized.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    orders: Arc<RwLock<BTreeMap<u64, Arc<Order>>>>,
    write_lock: Arc<Mutex<()>>,
    /// Held shared by every create until it is answered, exclusively by a changeset: a
    /// changeset numbers its creates without racing the writer thread.
    create_gate: Arc<RwLock<()>>,
    first_number: u64,
    last_internal: u64,
    creates: std::sync::mpsc::Sender<CreateJob>,
}

/// The writes of a `$batch` changeset so far: applied to copies, stored only at the end.
#[derive(Debug, Default)]
struct Staged {
    /// Changed (`Some`) and deleted (`None`) orders by number.
    orders: BTreeMap<u64, Option<Arc<Order>>>,
    /// The next internal number once a create of the changeset drew one.
    next_internal: Option<u64>,
}

tokio::task_local! {
    /// Set while a changeset runs on this task: writes go to it instead of the database.
    static CHANGESET: Arc<std::sync::Mutex<Staged>>;
}

fn staged() -> Option<Arc<std::sync::Mutex<Staged>>> {
    CHANGESET.try_with(Clone::clone).ok()
}

fn lock_staged(s: &std::sync::Mutex<Staged>) -> std::sync::MutexGuard<'_, Staged> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a changeset's writes are kept or thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangesetOutcome {
    /// Every change succeeded: store them all, in one transaction.
    Commit,
    /// A change failed: store none of them.
    Discard,
}

/// What the writer thread calls once the batch's commit succeeded (`Ok`) or failed.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// One create waiting for the writer thread.
type CreateJob = Box<dyn for<'t> FnOnce(&mut Batch<'t>) -> Completion + Send>;

/// The creates of one write transaction. Rows go into the transaction's `orders` table as they
/// are accepted, so a later create of the same batch sees them, and the "number taken" check of
/// an external number reads the very transaction that will commit it.
struct Batch<'t> {
    next: Result<u64, String>,
    last_internal: u64,
    table: Result<redb::Table<'t, u64, &'static [u8]>, String>,
    added: Vec<(u64, Arc<Order>)>,
    internal_used: bool,
}

impl Batch<'_> {
    fn next_number(&self) -> Result<u64, StoreError> {
        match &self.next {
            Ok(n) if *n > self.last_internal => Err(StoreError::NumberRangeExhausted),
            Ok(n) => Ok(*n),
            Err(e) => Err(StoreError::Commit(e.clone())),
        }
    }

    /// Whether an order numbered `n` exists (committed, or accepted earlier in this batch).
    fn taken(&self, n: u64) -> Result<bool, StoreError> {
        let table = self
            .table
            .as_ref()
            .map_err(|e| StoreError::Commit(e.clone()))?;
        Ok(table.get(n).map_err(db_err)?.is_some())
    }

    fn add(&mut self, n: u64, order: Arc<Order>, internal: bool) -> Result<(), StoreError> {
        let table = self
            .table
            .as_mut()
            .map_err(|e| StoreError::Commit(e.clone()))?;
        table
            .insert(n, order.to_bytes().as_slice())
            .map_err(db_err)?;
        self.added.push((n, order));
        if internal {
            self.next = Ok(n + 1);
            self.internal_used = true;
        }
        Ok(())
    }
}

/// Most creates committed in one transaction.
const MAX_BATCH: usize = 256;

/// The writer thread: takes every waiting create, commits them together, then answers.
fn write_creates(
    db: Arc<Database>,
    orders: Arc<RwLock<BTreeMap<u64, Arc<Order>>>>,
    first_number: u64,
    last_internal: u64,
    jobs: std::sync::mpsc::Receiver<CreateJob>,
) {
    while let Ok(job) = jobs.recv() {
        let mut waiting = vec![job];
        while waiting.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => waiting.push(j),
                Err(_) => break,
            }
        }
        // Creates per commit: how much of the flush concurrent creates share.
        metrics::counter!("sap_mock_create_batches_total").increment(1);
        metrics::counter!("sap_mock_create_batched_total").increment(waiting.len() as u64);
        let tx = db.begin_write().map_err(|e| db_err(e).to_string());
        let next = tx.as_ref().map_err(Clone::clone).and_then(|tx| {
            let meta = tx.open_table(META).map_err(|e| db_err(e).to_string())?;
            let next = meta
                .get(NEXT_NUMBER)
                .map_err(|e| db_err(e).to_string())?
                .map_or(first_number, |g| g.value());
            Ok(next)
        });
        let (completions, added, next, internal_used) = {
            let table = tx
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|tx| tx.open_table(ORDERS).map_err(|e| db_err(e).to_string()));
            let mut batch = Batch {
                next,
                last_internal,
                table,
                added: Vec::new(),
                internal_used: false,
            };
            let completions: Vec<Completion> = waiting.into_iter().map(|j| j(&mut batch)).collect();
            (completions, batch.added, batch.next, batch.internal_used)
        };
        let committed = match tx {
            Err(e) => Err(e),
            Ok(tx) if added.is_empty() => tx.abort().map_err(|e| db_err(e).to_string()),
            Ok(tx) => (|| -> Result<(), StoreError> {
                if internal_used && let Ok(next) = next {
                    let mut meta = tx.open_table(META).map_err(db_err)?;
                    meta.insert(NEXT_NUMBER, next).map_err(db_err)?;
                }
                let flushing = std::time::Instant::now();
                let committed = tx.commit().map_err(db_err);
                metrics::counter!("sap_mock_create_commit_micros_total")
                    .increment(flushing.elapsed().as_micros() as u64);
                committed
            })()
            .map_err(|e| e.to_string()),
        };
        if committed.is_ok() && !added.is_empty() {
            let mut map = orders.blocking_write();
            for (n, order) in added {
                map.insert(n, order);
            }
        }
        if let Err(e) = &committed {
            tracing::error!(error = %e, "sap_mock_create_batch_failed");
        }
        for c in completions {
            c(committed.clone());
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` and loads every order into memory. Internal
    /// numbering starts at `first_number` in an empty store and ends at `last_internal`.
    pub fn open(dir: &Path, first_number: u64, last_internal: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| db_err(redb::StorageError::Io(e)))?;
        let db = Database::create(dir.join(DB_FILE)).map_err(db_err)?;
        {
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(ORDERS).map_err(db_err)?;
            tx.open_table(META).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        let mut orders = BTreeMap::new();
        {
            let tx = db.begin_read().map_err(db_err)?;
            let table = tx.open_table(ORDERS).map_err(db_err)?;
            for row in table.iter().map_err(db_err)? {
                let (k, v) = row.map_err(db_err)?;
                orders.insert(k.value(), Arc::new(Order::from_bytes(v.value())?));
            }
        }
        let db = Arc::new(db);
        let orders = Arc::new(RwLock::new(orders));
        let (creates, jobs) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sap-mock-writer".to_owned())
            .spawn({
                let db = db.clone();
                let orders = orders.clone();
                move || write_creates(db, orders, first_number, last_internal, jobs)
            })
            .map_err(|e| db_err(redb::StorageError::Io(e)))?;
        Ok(Self {
            db,
            orders,
            write_lock: Arc::new(Mutex::new(())),
            create_gate: Arc::new(RwLock::new(())),
            first_number,
            last_internal,
            creates,
        })
    }

    /// Runs `work` as one changeset: every create, update and delete it makes through this
    /// store is applied to copies (later ones see earlier ones), and stored in one durable
    /// transaction only if `work` says [`ChangesetOutcome::Commit`]; otherwise nothing is
    /// stored. Other writers wait while it runs; readers see the state before it until it is
    /// stored. Returns what `work` returned.
    pub async fn changeset<T>(
        &self,
        work: impl std::future::Future<Output = (T, ChangesetOutcome)>,
    ) -> Result<T, StoreError> {
        let _creates = self.create_gate.write().await;
        let _writes = self.write_lock.lock().await;
        let staged = Arc::new(std::sync::Mutex::new(Staged::default()));
        let (value, outcome) = CHANGESET.scope(staged.clone(), work).await;
        let staged = std::mem::take(&mut *lock_staged(&staged));
        if outcome == ChangesetOutcome::Discard || staged.orders.is_empty() {
            return Ok(value);
        }
        let rows: Vec<(u64, Option<Vec<u8>>)> = staged
            .orders
            .iter()
            .map(|(n, o)| (*n, o.as_ref().map(|o| o.to_bytes())))
            .collect();
        let next = staged.next_internal;
        self.write_blocking(move |tx| {
            let mut table = tx.open_table(ORDERS).map_err(db_err)?;
            for (n, row) in &rows {
                match row {
                    Some(bytes) => {
                        table.insert(*n, bytes.as_slice()).map_err(db_err)?;
                    }
                    None => {
                        table.remove(*n).map_err(db_err)?;
                    }
                }
            }
            if let Some(next) = next {
                let mut meta = tx.open_table(META).map_err(db_err)?;
                meta.insert(NEXT_NUMBER, next).map_err(db_err)?;
            }
            Ok(())
        })
        .await?;
        let mut map = self.orders.write().await;
        for (n, order) in staged.orders {
            match order {
                Some(o) => map.insert(n, o),
                None => map.remove(&n),
            };
        }
        Ok(value)
    }

    /// The order numbered `n` as this task sees it: a changeset's copy first.
    async fn current(&self, n: u64) -> Option<Arc<Order>> {
        if let Some(s) = staged()
            && let Some(o) = lock_staged(&s).orders.get(&n)
        {
            return o.clone();
        }
        self.orders.read().await.get(&n).cloned()
    }

    /// A create inside a changeset: numbered and checked against the changeset's copies.
    async fn create_staged<E>(
        &self,
        staged: &std::sync::Mutex<Staged>,
        numbering: Numbering,
        build: impl FnOnce(String) -> Result<Order, E>,
    ) -> Result<Result<Arc<Order>, CreateRefused<E>>, StoreError> {
        let committed_next = self.next_number()?;
        let (n, internal) = match numbering {
            Numbering::Internal => {
                let n = lock_staged(staged).next_internal.unwrap_or(committed_next);
                if n > self.last_internal {
                    return Err(StoreError::NumberRangeExhausted);
                }
                (n, true)
            }
            Numbering::External(n) => {
                if self.current(n).await.is_some() {
                    return Ok(Err(CreateRefused::NumberTaken(n)));
                }
                (n, false)
            }
        };
        let order = match build(n.to_string()) {
            Ok(o) => Arc::new(o),
            Err(e) => return Ok(Err(CreateRefused::Invalid(e))),
        };
        let mut s = lock_staged(staged);
        s.orders.insert(n, Some(order.clone()));
        if internal {
            s.next_internal = Some(n + 1);
        }
        Ok(Ok(order))
    }

    /// Every order, in number order.
    pub async fn all(&self) -> Vec<Arc<Order>> {
        self.orders.read().await.values().cloned().collect()
    }

    /// The order numbered `number` (inside a changeset: as the changeset left it).
    pub async fn get(&self, number: &str) -> Option<Arc<Order>> {
        let n = parse_number(number)?;
        self.current(n).await
    }

    /// How many orders and items are stored.
    pub async fn counts(&self) -> (usize, usize) {
        let orders = self.orders.read().await;
        (orders.len(), orders.values().map(|o| o.items.len()).sum())
    }

    /// Creates an order numbered as `numbering` says: the next internal number, or the given
    /// external one if no order has it. `build` fills the order in and may refuse; on any refusal
    /// nothing is stored and no internal number is used.
    ///
    /// Creates are *group-committed*: one writer thread takes every create waiting at that
    /// moment, numbers and stores them in one write transaction and one fsync, and only then
    /// answers each of them. Durability per order is unchanged (no answer before its commit),
    /// but concurrent creates share the cost of the disk flush. Because the writer is the only
    /// place orders are created, and the "number taken" check reads the same transaction that
    /// inserts the row, two creates of one external number cannot both succeed.
    pub async fn create<E: Send + 'static>(
        &self,
        numbering: Numbering,
        build: impl FnOnce(String) -> Result<Order, E> + Send + 'static,
    ) -> Result<Result<Arc<Order>, CreateRefused<E>>, StoreError> {
        if let Some(staged) = staged() {
            return self.create_staged(&staged, numbering, build).await;
        }
        let _gate = self.create_gate.read().await;
        type Answer<E> = Result<Result<Arc<Order>, CreateRefused<E>>, StoreError>;
        let (tx, rx) = tokio::sync::oneshot::channel::<Answer<E>>();
        let job: CreateJob = Box::new(move |batch: &mut Batch<'_>| -> Completion {
            // either an answer now (refused, or failed before the commit) or an accepted order
            // whose answer waits for the batch's commit
            let accepted: Result<Arc<Order>, Answer<E>> = (|| {
                let (n, internal) = match numbering {
                    Numbering::Internal => (batch.next_number().map_err(Err)?, true),
                    Numbering::External(n) => {
                        if batch.taken(n).map_err(Err)? {
                            return Err(Ok(Err(CreateRefused::NumberTaken(n))));
                        }
                        (n, false)
                    }
                };
                let order =
                    Arc::new(build(n.to_string()).map_err(|e| Ok(Err(CreateRefused::Invalid(e))))?);
                batch.add(n, order.clone(), internal).map_err(Err)?;
                Ok(order)
            })();
            match accepted {
                Err(answer) => Box::new(move |_| {
                    let _ = tx.send(answer);
                }),
                Ok(order) => Box::new(move |committed: Result<(), String>| {
                    let _ = tx.send(committed.map(|()| Ok(order)).map_err(StoreError::Commit));
                }),
            }
        });
        self.creates
            .send(job)
            .map_err(|_| StoreError::Task("the writer thread has stopped".to_owned()))?;
        rx.await
            .map_err(|_| StoreError::Task("the writer thread dropped a create".to_owned()))?
    }

    /// Replaces an order after `change` edited a copy of it. `change` may refuse; what it
    /// returns comes back with the stored order. `None` when there is no such order.
    pub async fn update<R, E: Send + 'static>(
        &self,
        number: &str,
        change: impl FnOnce(&mut Order) -> Result<R, E> + Send + 'static,
    ) -> Result<Option<Result<(Arc<Order>, R), E>>, StoreError> {
        let Some(n) = parse_number(number) else {
            return Ok(None);
        };
        if let Some(staged) = staged() {
            let Some(current) = self.current(n).await else {
                return Ok(None);
            };
            let mut order = (*current).clone();
            let outcome = match change(&mut order) {
                Ok(r) => r,
                Err(e) => return Ok(Some(Err(e))),
            };
            let order = Arc::new(order);
            lock_staged(&staged).orders.insert(n, Some(order.clone()));
            return Ok(Some(Ok((order, outcome))));
        }
        let _guard = self.write_lock.lock().await;
        let Some(current) = self.orders.read().await.get(&n).cloned() else {
            return Ok(None);
        };
        let mut order = (*current).clone();
        let outcome = match change(&mut order) {
            Ok(r) => r,
            Err(e) => return Ok(Some(Err(e))),
        };
        let bytes = order.to_bytes();
        self.write_blocking(move |tx| {
            let mut table = tx.open_table(ORDERS).map_err(db_err)?;
            table.insert(n, bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await?;
        let order = Arc::new(order);
        self.orders.write().await.insert(n, order.clone());
        Ok(Some(Ok((order, outcome))))
    }

    /// Like [`Store::update`], for a fulfilment step that creates subsequent documents: `change`
    /// draws their numbers from `DocumentNumbers`, and the order and the ranges' next numbers
    /// are stored in one durable transaction, so a number is never handed out twice, also
    /// across restarts. Not inside a `$batch` changeset (fulfilment is an admin call).
    pub async fn fulfil<R, E: Send + 'static>(
        &self,
        number: &str,
        change: impl FnOnce(&mut Order, &mut DocumentNumbers) -> Result<R, E> + Send + 'static,
    ) -> Result<Option<Result<(Arc<Order>, R), E>>, StoreError> {
        if staged().is_some() {
            return Err(StoreError::Task(
                "fulfilment cannot run inside a changeset".to_owned(),
            ));
        }
        let Some(n) = parse_number(number) else {
            return Ok(None);
        };
        let _guard = self.write_lock.lock().await;
        let Some(current) = self.orders.read().await.get(&n).cloned() else {
            return Ok(None);
        };
        let before = self.document_numbers()?;
        let mut numbers = before;
        let mut order = (*current).clone();
        let outcome = match change(&mut order, &mut numbers) {
            Ok(r) => r,
            Err(e) => return Ok(Some(Err(e))),
        };
        let bytes = order.to_bytes();
        self.write_blocking(move |tx| {
            let mut table = tx.open_table(ORDERS).map_err(db_err)?;
            table.insert(n, bytes.as_slice()).map_err(db_err)?;
            if numbers != before {
                let mut meta = tx.open_table(META).map_err(db_err)?;
                meta.insert(NEXT_DELIVERY, numbers.next_delivery)
                    .map_err(db_err)?;
                meta.insert(NEXT_BILLING_DOCUMENT, numbers.next_billing_document)
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await?;
        let order = Arc::new(order);
        self.orders.write().await.insert(n, order.clone());
        Ok(Some(Ok((order, outcome))))
    }

    /// The next numbers of the delivery and billing document ranges, as stored.
    pub fn document_numbers(&self) -> Result<DocumentNumbers, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        let get = |key: &str, first: u64| -> Result<u64, StoreError> {
            Ok(meta.get(key).map_err(db_err)?.map_or(first, |g| g.value()))
        };
        Ok(DocumentNumbers {
            next_delivery: get(NEXT_DELIVERY, FIRST_DELIVERY)?,
            next_billing_document: get(NEXT_BILLING_DOCUMENT, FIRST_BILLING_DOCUMENT)?,
        })
    }

    /// Deletes an order if `check` allows it. `None` when there is no such order.
    pub async fn delete<E: Send + 'static>(
        &self,
        number: &str,
        check: impl FnOnce(&Order) -> Result<(), E>,
    ) -> Result<Option<Result<(), E>>, StoreError> {
        let Some(n) = parse_number(number) else {
            return Ok(None);
        };
        if let Some(staged) = staged() {
            let Some(current) = self.current(n).await else {
                return Ok(None);
            };
            if let Err(e) = check(&current) {
                return Ok(Some(Err(e)));
            }
            lock_staged(&staged).orders.insert(n, None);
            return Ok(Some(Ok(())));
        }
        let _guard = self.write_lock.lock().await;
        let Some(current) = self.orders.read().await.get(&n).cloned() else {
            return Ok(None);
        };
        if let Err(e) = check(&current) {
            return Ok(Some(Err(e)));
        }
        self.write_blocking(move |tx| {
            let mut table = tx.open_table(ORDERS).map_err(db_err)?;
            table.remove(n).map_err(db_err)?;
            Ok(())
        })
        .await?;
        self.orders.write().await.remove(&n);
        Ok(Some(Ok(())))
    }

    /// The number the next created order gets.
    pub fn next_number(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        Ok(meta
            .get(NEXT_NUMBER)
            .map_err(db_err)?
            .map_or(self.first_number, |g| g.value()))
    }

    async fn write_blocking(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(db_err)?;
            f(&tx)?;
            tx.commit().map_err(db_err)?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(number: String) -> Order {
        let mut header = Record::empty(&SALES_ORDER);
        header.set("SalesOrder", EdmValue::String(number));
        Order::new(header, Vec::new(), Utc::now())
    }

    #[test]
    fn dates_keep_only_the_day_as_sap_does() {
        let mut r = Record::empty(&SALES_ORDER);
        r.set(
            "CustomerPurchaseOrderDate",
            EdmValue::DateTime(JsonDate::from_millis(
                1_795_478_400_000 + 13 * 3_600_000 + 5,
            )),
        );
        assert_eq!(
            r.get("CustomerPurchaseOrderDate").to_json(),
            "/Date(1795478400000)/"
        );
        r.set(
            "CustomerPurchaseOrderDate",
            EdmValue::DateTime(JsonDate::from_millis(-1)),
        );
        assert_eq!(
            r.get("CustomerPurchaseOrderDate").to_json(),
            "/Date(-86400000)/"
        );
        let at = JsonDate::from_millis(1_795_478_400_123);
        r.set("LastChangeDateTime", EdmValue::DateTimeOffset(at));
        assert_eq!(r.get("LastChangeDateTime"), &EdmValue::DateTimeOffset(at));
    }

    #[test]
    fn a_stored_order_comes_back_exactly_though_empty_values_are_not_written() {
        let body = br#"{"SalesOrderType":"OR","SalesOrganization":"1010","DistributionChannel":"10","OrganizationDivision":"00","SoldToParty":"17100001","CompleteDeliveryIsDefined":true,"to_Item":[{"Material":"TG11","RequestedQuantity":"2.500"}]}"#;
        let req = sap_odata::payload::parse_sales_order_create(body).unwrap();
        let mut o = crate::sales_order::build_order(
            &req,
            "1000001".into(),
            &crate::master_data::MasterData::demo(),
            "u",
            &crate::sales_order::Customizing::default(),
            Utc::now(),
        )
        .unwrap();
        o.header.set(
            "TotalNetAmount",
            EdmValue::Decimal(rust_decimal::Decimal::new(0, 2)),
        );
        let bytes = o.to_bytes();
        let back = Order::from_bytes(&bytes).unwrap();
        let json = |r: &Record| -> Vec<(String, Value)> {
            r.iter().map(|(k, v)| (k.to_owned(), v.to_json())).collect()
        };
        assert!(json(&back.header) == json(&o.header), "header differs");
        assert!(json(&back.items[0]) == json(&o.items[0]), "item differs");
        assert_eq!(back.changed_at, o.changed_at);
        assert_eq!(back.header.get("TotalNetAmount").to_json(), "0.00");
        assert_eq!(
            back.header.get("CompleteDeliveryIsDefined"),
            &EdmValue::Boolean(true)
        );
        assert!(bytes.len() < 2500, "compact row: {} bytes", bytes.len());
    }

    #[tokio::test]
    async fn concurrent_creates_get_unique_gapless_numbers_and_refusals_use_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100, 999).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .create(Numbering::Internal, move |n| {
                        if i % 5 == 0 { Err(i) } else { Ok(order(n)) }
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut numbers = Vec::new();
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(o) => numbers.push(o.number().parse::<u64>().unwrap()),
                Err(_) => refused += 1,
            }
        }
        numbers.sort_unstable();
        assert_eq!(refused, 40);
        assert_eq!(numbers, (100..260).collect::<Vec<u64>>());
        assert_eq!(store.counts().await.0, 160);
        drop(store);
        // the writer thread lets go of the file once the store is dropped; reopen until it can
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let reopened = loop {
            match Store::open(dir.path(), 100, 999) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(reopened.counts().await.0, 160);
        assert_eq!(reopened.next_number().unwrap(), 260);
    }

    #[tokio::test]
    async fn concurrent_creates_of_one_external_number_store_exactly_one_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 100, 999).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .create(Numbering::External(8_000_000_000), |n| {
                        Ok::<_, ()>(order(n))
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut created = 0;
        let mut taken = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(o) => {
                    assert_eq!(o.number(), "8000000000");
                    created += 1;
                }
                Err(CreateRefused::NumberTaken(8_000_000_000)) => taken += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!((created, taken), (1, 49));
        assert_eq!(store.counts().await.0, 1);
        // an external number leaves the internal range where it was
        assert_eq!(store.next_number().unwrap(), 100);
        let internal = store
            .create(Numbering::Internal, |n| Ok::<_, ()>(order(n)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(internal.number(), "100");
    }

    #[tokio::test]
    async fn an_exhausted_internal_range_refuses_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 5, 5).unwrap();
        let first = store
            .create(Numbering::Internal, |n| Ok::<_, ()>(order(n)))
            .await
            .unwrap();
        assert_eq!(first.unwrap().number(), "5");
        let second = store
            .create(Numbering::Internal, |n| Ok::<_, ()>(order(n)))
            .await;
        assert!(matches!(second, Err(StoreError::NumberRangeExhausted)));
        assert_eq!(store.counts().await.0, 1);
    }
}
