//! The emulator's persistent store: sales orders in an embedded redb database under the data
//! folder, mirrored in memory for queries.
//!
//! Each order is one row (`orders`: sales order number → JSON), and the number range's next
//! number sits in `meta`; both change in one write transaction, committed durably before the
//! caller is answered, so an order survives SIGKILL the moment it was reported created (and a
//! "lost response" still leaves it behind, as on real SAP). Reads never touch the disk: the
//! whole data set is loaded at start and kept in a `BTreeMap` by number.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sap_odata::schema::EntityType;
use sap_odata::{EdmValue, SALES_ORDER, SALES_ORDER_ITEM};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};

const ORDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("orders");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_NUMBER: &str = "next_sales_order";

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

    /// Sets `name`; unknown names are ignored (callers use schema names).
    pub fn set(&mut self, name: &str, value: EdmValue) {
        if let Some(i) = self.index(name) {
            self.values[i] = value;
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

    fn to_json(&self) -> Value {
        Value::Object(
            self.iter()
                .map(|(k, v)| (k.to_owned(), v.to_json()))
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

/// A stored sales order: header, items and the precise time of its last change (ETag source).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Header values (`A_SalesOrder`).
    pub header: Record,
    /// Items (`A_SalesOrderItem`), in item number order.
    pub items: Vec<Record>,
    /// `LastChangeDateTime` at full precision.
    pub changed_at: DateTime<Utc>,
}

impl Order {
    /// The sales order number.
    pub fn number(&self) -> &str {
        self.header.get_str("SalesOrder")
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("header".into(), self.header.to_json());
        m.insert(
            "items".into(),
            Value::Array(self.items.iter().map(Record::to_json).collect()),
        );
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
        let changed_at = v["changed_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .ok_or(StoreError::Corrupt("changed_at missing"))?
            .with_timezone(&Utc);
        Ok(Self {
            header,
            items,
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
    /// The number range is used up.
    #[error("number range exhausted")]
    NumberRangeExhausted,
    /// A blocking task failed.
    #[error("storage task failed: {0}")]
    Task(String),
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
    first_number: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` and loads every order into memory.
    pub fn open(dir: &Path, first_number: u64) -> Result<Self, StoreError> {
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
        Ok(Self {
            db: Arc::new(db),
            orders: Arc::new(RwLock::new(orders)),
            write_lock: Arc::new(Mutex::new(())),
            first_number,
        })
    }

    /// Every order, in number order.
    pub async fn all(&self) -> Vec<Arc<Order>> {
        self.orders.read().await.values().cloned().collect()
    }

    /// The order numbered `number`.
    pub async fn get(&self, number: &str) -> Option<Arc<Order>> {
        let n = parse_number(number)?;
        self.orders.read().await.get(&n).cloned()
    }

    /// How many orders and items are stored.
    pub async fn counts(&self) -> (usize, usize) {
        let orders = self.orders.read().await;
        (orders.len(), orders.values().map(|o| o.items.len()).sum())
    }

    /// Creates an order: draws the next number, lets `build` fill it in, commits durably.
    /// `build` may refuse (returning `Err`), in which case nothing is stored and no number used.
    pub async fn create<E: Send + 'static>(
        &self,
        build: impl FnOnce(String) -> Result<Order, E> + Send + 'static,
    ) -> Result<Result<Arc<Order>, E>, StoreError> {
        let _guard = self.write_lock.lock().await;
        let db = self.db.clone();
        let first = self.first_number;
        let outcome =
            tokio::task::spawn_blocking(move || -> Result<Result<(u64, Order), E>, StoreError> {
                let tx = db.begin_write().map_err(db_err)?;
                let result = {
                    let mut meta = tx.open_table(META).map_err(db_err)?;
                    let next = meta
                        .get(NEXT_NUMBER)
                        .map_err(db_err)?
                        .map_or(first, |g| g.value());
                    if next > 9_999_999_999 {
                        return Err(StoreError::NumberRangeExhausted);
                    }
                    match build(next.to_string()) {
                        Err(e) => Err(e),
                        Ok(order) => {
                            meta.insert(NEXT_NUMBER, next + 1).map_err(db_err)?;
                            let mut table = tx.open_table(ORDERS).map_err(db_err)?;
                            table
                                .insert(next, order.to_bytes().as_slice())
                                .map_err(db_err)?;
                            Ok((next, order))
                        }
                    }
                };
                match result {
                    Ok(done) => {
                        tx.commit().map_err(db_err)?;
                        Ok(Ok(done))
                    }
                    Err(e) => {
                        tx.abort().map_err(db_err)?;
                        Ok(Err(e))
                    }
                }
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        match outcome {
            Err(e) => Ok(Err(e)),
            Ok((n, order)) => {
                let order = Arc::new(order);
                self.orders.write().await.insert(n, order.clone());
                Ok(Ok(order))
            }
        }
    }

    /// Replaces an order after `change` edited a copy of it. `change` may refuse. Returns
    /// `None` when there is no such order.
    pub async fn update<E: Send + 'static>(
        &self,
        number: &str,
        change: impl FnOnce(&mut Order) -> Result<(), E> + Send + 'static,
    ) -> Result<Option<Result<Arc<Order>, E>>, StoreError> {
        let Some(n) = parse_number(number) else {
            return Ok(None);
        };
        let _guard = self.write_lock.lock().await;
        let Some(current) = self.orders.read().await.get(&n).cloned() else {
            return Ok(None);
        };
        let mut order = (*current).clone();
        if let Err(e) = change(&mut order) {
            return Ok(Some(Err(e)));
        }
        let bytes = order.to_bytes();
        self.write_blocking(move |tx| {
            let mut table = tx.open_table(ORDERS).map_err(db_err)?;
            table.insert(n, bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await?;
        let order = Arc::new(order);
        self.orders.write().await.insert(n, order.clone());
        Ok(Some(Ok(order)))
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

/// A sales order number as stored (digits only, SAP's leading zeros ignored).
fn parse_number(number: &str) -> Option<u64> {
    (!number.is_empty() && number.len() <= 10 && number.bytes().all(|b| b.is_ascii_digit()))
        .then(|| number.parse().ok())
        .flatten()
}
