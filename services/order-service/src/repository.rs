//! PostgreSQL access for orders. Every change runs in one transaction that also appends its
//! event to the outbox ([`crate::outbox::append`]), so an order change and its event are
//! committed together or not at all.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use order_domain::{CurrencyCode, Money, NewOrder, OrderNumber, OrderRequest, OrderStatus, Unit};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::error::ServiceError;
use crate::lane::Lane;
use crate::master_data::MasterDataStore;
use crate::model::{ItemRow, Order, OrderItem, OrderRow};
use crate::outbox::{self, EventRow, OrderChange};

mod edits;
pub mod search;
pub use edits::{HeaderPatch, ItemPatch, OrderEdit, OrderKey, ReportOutcome};

/// Who asked for a change: travels into the order row and the outbox.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request's correlation id.
    pub correlation_id: String,
    /// The client's `Idempotency-Key`, when sent.
    pub idempotency_key: Option<String>,
    /// The caller's W3C `traceparent`, when sent and well-formed.
    pub traceparent: Option<String>,
}

/// What a create did.
#[derive(Debug)]
pub enum PlaceOutcome {
    /// A new order was stored.
    Created(Order),
    /// The same request was seen before; this is the order it created.
    Replayed(Order, ReplayedBy),
}

/// What told a repeated create from a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayedBy {
    /// The client's `Idempotency-Key`.
    IdempotencyKey,
    /// The reserved `order_number` the create named.
    OrderNumber,
}

/// SAP's pricing of an order, adopted with its SAP link: each value given replaces ours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SapPricing {
    /// SAP's `TransactionCurrency`.
    pub currency: Option<CurrencyCode>,
    /// SAP's `TotalNetAmount`.
    pub total_net_amount: Option<Money>,
    /// SAP's item values.
    pub items: Vec<SapItemPricing>,
}

/// SAP's values for one item.
#[derive(Debug, Clone, PartialEq)]
pub struct SapItemPricing {
    /// The item (10, 20, ...).
    pub item_number: i32,
    /// SAP's `RequestedQuantityUnit`.
    pub unit: Option<Unit>,
    /// Price per unit.
    pub unit_price: Option<Money>,
    /// SAP's `NetAmount`.
    pub net_amount: Option<Money>,
}

/// A requested status change.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// Target status.
    pub to: OrderStatus,
    /// The version the caller last saw; `None` skips the check (compensation only).
    pub expected_version: Option<i64>,
    /// Why (for cancel and void).
    pub reason: Option<String>,
}

/// Filters of the order list; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Exact customer.
    pub customer_id: Option<String>,
    /// Exact customer reference.
    pub customer_reference: Option<String>,
    /// Exact status.
    pub status: Option<OrderStatus>,
    /// Exact linked SAP order number.
    pub sap_order_number: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub created_before: Option<DateTime<Utc>>,
    /// Continue after this position (exclusive).
    pub after: Option<Cursor>,
    /// Page size.
    pub limit: i64,
}

/// An order's current version, as [`OrderRepository::versions`] tells it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OrderVersion {
    /// The order id.
    pub order_id: Uuid,
    /// The order number.
    #[schema(example = "8000000123")]
    pub order_number: String,
    /// The version (1 after the create, one more per change).
    pub version: i64,
    /// The status.
    #[schema(example = "created")]
    pub status: String,
}

/// A keyset position: the (created_at, id) of the last order of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last order shown.
    pub created_at: DateTime<Utc>,
    /// `id` of the last order shown.
    pub id: Uuid,
}

impl Cursor {
    /// Text form: `<created_at in microseconds since 1970>_<id as 32 lower-case hex digits>`.
    /// Any text of that shape is a position in the keyset order (the page after it), so the
    /// OpenAPI document can state a cursor exactly (`^[0-9]{1,16}_[0-9a-f]{32}$`).
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.timestamp_micros().max(0),
            self.id.simple()
        )
    }

    /// Parses [`Cursor::encode`]'s form; anything else is `None`.
    pub fn decode(raw: &str) -> Option<Self> {
        let (micros, id) = raw.split_once('_')?;
        let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
            n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
        };
        let hex = id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !digits(micros, 1..=16) || !hex {
            return None;
        }
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// The order store.
#[derive(Debug, Clone)]
pub struct OrderRepository {
    pool: PgPool,
    /// The create statement's own connections (no health-check round trips; see `lane`).
    lane: Lane,
    numbers: OrderNumbers,
    master_data: MasterDataStore,
}

/// The create statement: order, items and outbox row in one atomic statement. `ON CONFLICT DO
/// NOTHING` on the order (a repeated idempotency key or correlation id) leaves the items and the
/// event out too, because they are selected from the inserted order. Returns the new order's id,
/// or no row on a conflict. `orderctl bench order-create` runs this statement through pgbench.
pub const CREATE_ORDER_SQL: &str = "\
WITH o AS ( \
  INSERT INTO orders (id, order_number, status, customer_id, customer_reference, currency, \
    sales_organization, distribution_channel, division, order_type, requested_delivery_date, \
    total_net_amount, specifications, correlation_id, idempotency_key, request_hash, \
    created_at, updated_at) \
  VALUES ($1, $2, 'created', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
  ON CONFLICT DO NOTHING \
  RETURNING id), \
i AS ( \
  INSERT INTO order_items (order_id, item_number, sku, quantity, unit, unit_price, net_amount, \
    specifications) \
  SELECT o.id, t.* FROM o CROSS JOIN UNNEST($17::int4[], $18::text[], $19::numeric[], \
    $20::text[], $21::numeric[], $22::numeric[], $23::jsonb[]) AS t), \
e AS ( \
  INSERT INTO outbox (event_id, aggregate_id, order_version, event_type, envelope, \
    correlation_id, traceparent) \
  SELECT $24, o.id, 1, $25, $26, $13, $27 FROM o) \
SELECT id FROM o";

/// Order numbers drawn from the `order_number_seq` range in blocks, so a create needs no round
/// trip of its own for its number (as SAP buffers its number ranges). Numbers left in a block
/// when the process stops are never used: gaps, never duplicates.
///
/// Also the guard of reserved numbers: a create may name a number only if the sequence already
/// issued it (at or above the sequence's start, at most its `last_value`). The highest number
/// this process saw issued is kept, so a named number below it is checked without a round trip.
#[derive(Debug, Clone)]
pub struct OrderNumbers {
    buffer: Arc<tokio::sync::Mutex<std::collections::VecDeque<i64>>>,
    /// Highest value known to be issued (-1: none known yet).
    issued: Arc<AtomicI64>,
    /// The sequence's start value (`i64::MAX`: not read yet).
    start: Arc<AtomicI64>,
}

impl Default for OrderNumbers {
    fn default() -> Self {
        Self {
            buffer: Arc::default(),
            issued: Arc::new(AtomicI64::new(-1)),
            start: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }
}

/// Most numbers one `POST /api/v1/order-numbers` reserves.
pub const MAX_RESERVATION: i64 = 10_000;

fn sequence_error(e: order_domain::ValueError) -> ServiceError {
    ServiceError::Database(sqlx::Error::Protocol(e.0))
}

impl OrderNumbers {
    /// How many numbers one refill draws.
    pub const BLOCK: i64 = 64;

    fn saw_issued(&self, values: &[i64]) {
        if let Some(max) = values.iter().max() {
            self.issued.fetch_max(*max, Ordering::AcqRel);
        }
    }

    async fn draw(pool: &PgPool, count: i64) -> Result<Vec<i64>, ServiceError> {
        let mut values: Vec<i64> =
            sqlx::query_scalar("SELECT nextval('order_number_seq') FROM generate_series(1, $1)")
                .bind(count)
                .fetch_all(pool)
                .await?;
        values.sort_unstable();
        Ok(values)
    }

    /// The next order number.
    pub async fn next(&self, pool: &PgPool) -> Result<String, ServiceError> {
        let mut buffer = self.buffer.lock().await;
        if buffer.is_empty() {
            let block = Self::draw(pool, Self::BLOCK).await?;
            self.saw_issued(&block);
            buffer.extend(block);
        }
        let value = buffer.pop_front().ok_or_else(|| {
            ServiceError::Database(sqlx::Error::Protocol("order number range exhausted".into()))
        })?;
        OrderNumber::from_sequence(value)
            .map(|n| n.as_str().to_owned())
            .map_err(sequence_error)
    }

    /// Reserves `count` numbers for a caller (ascending). The sequence never hands them out
    /// again, so the service itself will never use them.
    pub async fn reserve(&self, pool: &PgPool, count: i64) -> Result<Vec<String>, ServiceError> {
        let values = Self::draw(pool, count).await?;
        self.saw_issued(&values);
        values
            .into_iter()
            .map(|v| {
                OrderNumber::from_sequence(v)
                    .map(|n| n.as_str().to_owned())
                    .map_err(sequence_error)
            })
            .collect()
    }

    /// Refuses a named number the sequence has not issued (409, naming `order_number`), and takes
    /// it out of this process's own buffer if it sits there, so it is never drawn here too.
    pub async fn check_issued(
        &self,
        pool: &PgPool,
        number: &OrderNumber,
    ) -> Result<(), ServiceError> {
        let value: i64 = number
            .as_str()
            .parse()
            .map_err(|_| ServiceError::field("order_number", "must be exactly 10 digits"))?;
        let known = |s: &Self| {
            value >= s.start.load(Ordering::Acquire) && value <= s.issued.load(Ordering::Acquire)
        };
        if !known(self) {
            let (start, last): (i64, i64) = sqlx::query_as(
                "SELECT s.seqstart,                    (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END                     FROM order_number_seq)                  FROM pg_sequence s WHERE s.seqrelid = 'order_number_seq'::regclass",
            )
            .fetch_one(pool)
            .await?;
            self.start.store(start, Ordering::Release);
            self.saw_issued(&[last]);
            if !known(self) {
                return Err(ServiceError::OrderNumberNotReserved {
                    order_number: number.as_str().to_owned(),
                    first: start,
                    last,
                });
            }
        }
        let mut buffer = self.buffer.lock().await;
        buffer.retain(|v| *v != value);
        Ok(())
    }
}

/// Now, at PostgreSQL's timestamp precision (microseconds), so the order returned equals the
/// order read back.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// SHA-256 of the validated request as sent: tells a replay (same body) from a reused key or
/// number. Taken before master data completes the order, so a replay after a master-data
/// change is still a replay.
fn request_hash(request: &OrderRequest) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

/// The hash orders created before migration 0009 carry: of the completed order. Accepted too, so
/// a client retry that spans the upgrade is still recognized as a replay.
fn legacy_request_hash(order: &NewOrder) -> String {
    let canonical = serde_json::to_vec(order).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation() && d.constraint() == Some(constraint))
}

impl OrderRepository {
    /// A repository on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            lane: Lane::beside(&pool),
            master_data: MasterDataStore::new(pool.clone()),
            pool,
            numbers: OrderNumbers::default(),
        }
    }

    /// The master data the create path completes orders from.
    pub fn master_data(&self) -> &MasterDataStore {
        &self.master_data
    }

    /// Reserves `count` order numbers for a caller (see [`OrderNumbers::reserve`]).
    pub async fn reserve_numbers(&self, count: i64) -> Result<Vec<String>, ServiceError> {
        self.numbers.reserve(&self.pool, count).await
    }

    /// The create statement's connections (for metrics).
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// The pool (for readiness checks and metrics).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores a new order with its items and its `order.created` event, atomically.
    ///
    /// The whole create is one SQL statement ([`CREATE_ORDER_SQL`]): the order, its items and
    /// its outbox row are inserted together or not at all, in one round trip. The order is
    /// therefore built here, in full, before the statement runs: id (UUID v7), order number
    /// (the caller's reserved one, else from the [`OrderNumbers`] buffer), what master data
    /// completes (looked up only when the caller left something out), timestamps, items and
    /// the event.
    ///
    /// A request whose idempotency key, or whose named order number, was seen before creates
    /// nothing: with the same body it returns the first order ([`PlaceOutcome::Replayed`]),
    /// with another body it is refused. Concurrent duplicates are serialized by the unique
    /// indexes: the second insert waits for the first to commit and then finds its row. The
    /// correlation id plays no part (it is for tracing only).
    pub async fn place_order(
        &self,
        request: &OrderRequest,
        ctx: &RequestContext,
    ) -> Result<PlaceOutcome, ServiceError> {
        let hash = request_hash(request);
        if let Some(number) = &request.order_number {
            self.numbers.check_issued(&self.pool, number).await?;
        }
        let master = self.master_data.for_order(request).await?;
        let order = request.complete(&master)?;
        // A number this process drew can have been named by a caller meanwhile (a number only
        // ever reserved ones should name): then the next one is drawn.
        for _ in 0..3 {
            let number = match &order.order_number {
                Some(n) => n.as_str().to_owned(),
                None => self.numbers.next(&self.pool).await?,
            };
            let created = Self::build(&order, number, ctx);
            if self.insert(&created, &hash, ctx).await? {
                return Ok(PlaceOutcome::Created(created));
            }
            if let Some(outcome) = self.find_replay(&order, &hash, ctx).await? {
                return Ok(outcome);
            }
            tracing::warn!(order_number = %created.order_number, "drawn order number already taken, drawing another");
        }
        Err(ServiceError::Database(sqlx::Error::Protocol(
            "order insert conflicted, but no order owns the request keys".into(),
        )))
    }

    fn build(order: &NewOrder, order_number: String, ctx: &RequestContext) -> Order {
        let now = now_micros();
        Order {
            id: Uuid::now_v7(),
            order_number,
            status: OrderStatus::Created.as_str().to_owned(),
            status_reason: None,
            version: 1,
            customer_id: order.customer_id.as_str().to_owned(),
            customer_reference: order
                .customer_reference
                .as_ref()
                .map(|v| v.as_str().to_owned()),
            currency: order.currency.as_str().to_owned(),
            sales_organization: order
                .sales_organization
                .as_ref()
                .map(|v| v.as_str().to_owned()),
            distribution_channel: order
                .distribution_channel
                .as_ref()
                .map(|v| v.as_str().to_owned()),
            division: order.division.as_ref().map(|v| v.as_str().to_owned()),
            order_type: order.order_type.as_ref().map(|v| v.as_str().to_owned()),
            requested_delivery_date: order.requested_delivery_date,
            total_net_amount: order.total_net_amount.map(|m| m.value()),
            sap_order_number: None,
            specifications: order.specifications.clone(),
            correlation_id: ctx.correlation_id.clone(),
            items: order
                .lines
                .iter()
                .map(|l| OrderItem {
                    item_number: l.item_number,
                    sku: l.sku.as_str().to_owned(),
                    quantity: l.quantity.value(),
                    unit: l.unit.as_str().to_owned(),
                    unit_price: l.unit_price.map(|m| m.value()),
                    net_amount: l.net_amount.map(|m| m.value()),
                    specifications: l.specifications.clone(),
                    rejection_reason: None,
                })
                .collect(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Runs the create statement; `false` when a unique index refused the order.
    async fn insert(
        &self,
        created: &Order,
        hash: &str,
        ctx: &RequestContext,
    ) -> Result<bool, ServiceError> {
        let event = EventRow::new(OrderChange::Created, created, ctx);
        let items = &created.items;
        // The create is one statement (order, items and outbox row in one transaction).
        let db_span = platform::otel::start(
            "INSERT orders",
            platform::otel::SpanKind::Client,
            platform::otel::Parent::Current,
            vec![
                platform::otel::KeyValue::new("db.system.name", "postgresql"),
                platform::otel::KeyValue::new("db.operation.name", "INSERT"),
                platform::otel::KeyValue::new("db.collection.name", "orders"),
                platform::otel::KeyValue::new("order_number", created.order_number.clone()),
            ],
        );
        let mut lease = self.lane.lease().await?;
        let result = sqlx::query_scalar(CREATE_ORDER_SQL)
            .bind(created.id)
            .bind(&created.order_number)
            .bind(&created.customer_id)
            .bind(created.customer_reference.as_deref())
            .bind(&created.currency)
            .bind(created.sales_organization.as_deref())
            .bind(created.distribution_channel.as_deref())
            .bind(created.division.as_deref())
            .bind(created.order_type.as_deref())
            .bind(created.requested_delivery_date)
            .bind(created.total_net_amount)
            .bind(sqlx::types::Json(&created.specifications))
            .bind(&created.correlation_id)
            .bind(ctx.idempotency_key.as_deref())
            .bind(hash)
            .bind(created.created_at)
            .bind(items.iter().map(|i| i.item_number).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.quantity).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.unit.as_str()).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.unit_price).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.net_amount).collect::<Vec<_>>())
            .bind(
                items
                    .iter()
                    .map(|i| sqlx::types::Json(&i.specifications))
                    .collect::<Vec<_>>(),
            )
            .bind(event.event_id)
            .bind(event.event_type)
            .bind(&event.envelope)
            .bind(&event.traceparent)
            .fetch_optional(lease.conn())
            .await;
        if let (Some(span), Err(e)) = (&db_span, &result) {
            span.fail("db_error", e.to_string());
        }
        drop(db_span);
        let inserted: Option<Uuid> = lease.finished(result)?;
        Ok(inserted.is_some())
    }

    /// After a refused insert: the order that owns the request's idempotency key, else its
    /// named order number, as a replay (same body) or a refusal (another body). `None` when
    /// neither owns it (the conflict was on a number this process drew).
    async fn find_replay(
        &self,
        order: &NewOrder,
        hash: &str,
        ctx: &RequestContext,
    ) -> Result<Option<PlaceOutcome>, ServiceError> {
        let same_body = |row: &OrderRow| {
            row.request_hash == hash || row.request_hash == legacy_request_hash(order)
        };
        if let Some(key) = &ctx.idempotency_key {
            let row: Option<OrderRow> =
                sqlx::query_as("SELECT * FROM orders WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = row {
                if !same_body(&row) {
                    return Err(ServiceError::IdempotencyKeyReused { order_id: row.id });
                }
                let order = self.with_items(row).await?;
                return Ok(Some(PlaceOutcome::Replayed(
                    order,
                    ReplayedBy::IdempotencyKey,
                )));
            }
        }
        if let Some(number) = &order.order_number {
            let row: Option<OrderRow> =
                sqlx::query_as("SELECT * FROM orders WHERE order_number = $1")
                    .bind(number.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = row {
                if !same_body(&row) {
                    return Err(ServiceError::OrderNumberTaken {
                        order_number: number.as_str().to_owned(),
                        order_id: row.id,
                    });
                }
                let order = self.with_items(row).await?;
                return Ok(Some(PlaceOutcome::Replayed(order, ReplayedBy::OrderNumber)));
            }
        }
        Ok(None)
    }

    async fn with_items(&self, row: OrderRow) -> Result<Order, ServiceError> {
        let items: Vec<ItemRow> =
            sqlx::query_as("SELECT * FROM order_items WHERE order_id = $1 ORDER BY item_number")
                .bind(row.id)
                .fetch_all(&self.pool)
                .await?;
        Ok(row.into_order(items.into_iter().map(OrderItem::from).collect()))
    }

    async fn items_in_tx(
        tx: &mut Transaction<'_, Postgres>,
        row: OrderRow,
    ) -> Result<Order, ServiceError> {
        let items: Vec<ItemRow> =
            sqlx::query_as("SELECT * FROM order_items WHERE order_id = $1 ORDER BY item_number")
                .bind(row.id)
                .fetch_all(&mut **tx)
                .await?;
        Ok(row.into_order(items.into_iter().map(OrderItem::from).collect()))
    }

    /// One order by id.
    pub async fn get(&self, id: Uuid) -> Result<Order, ServiceError> {
        let row: Option<OrderRow> = sqlx::query_as("SELECT * FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or_else(|| ServiceError::OrderNotFound(id.to_string()))?;
        self.with_items(row).await
    }

    /// The current version and status of each of `ids` that exists (one query, any order):
    /// what a consumer needs to tell whether an event it holds is the order's latest.
    pub async fn versions(&self, ids: &[Uuid]) -> Result<Vec<OrderVersion>, ServiceError> {
        let rows: Vec<(Uuid, String, i64, String)> = sqlx::query_as(
            "SELECT id, order_number, version, status FROM orders WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(order_id, order_number, version, status)| OrderVersion {
                order_id,
                order_number,
                version,
                status,
            })
            .collect())
    }

    /// One order by its order number.
    pub async fn get_by_number(&self, number: &str) -> Result<Order, ServiceError> {
        let row: Option<OrderRow> = sqlx::query_as("SELECT * FROM orders WHERE order_number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or_else(|| ServiceError::OrderNotFound(number.to_owned()))?;
        self.with_items(row).await
    }

    /// A page of orders, newest first, and the cursor of the next page if there is one.
    pub async fn list(&self, f: &ListFilter) -> Result<(Vec<Order>, Option<Cursor>), ServiceError> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT * FROM orders WHERE TRUE");
        if let Some(v) = &f.customer_id {
            q.push(" AND customer_id = ").push_bind(v.clone());
        }
        if let Some(v) = &f.customer_reference {
            q.push(" AND customer_reference = ").push_bind(v.clone());
        }
        if let Some(v) = f.status {
            q.push(" AND status = ").push_bind(v.as_str());
        }
        if let Some(v) = &f.sap_order_number {
            q.push(" AND sap_order_number = ").push_bind(v.clone());
        }
        if let Some(v) = f.created_after {
            q.push(" AND created_at >= ").push_bind(v);
        }
        if let Some(v) = f.created_before {
            q.push(" AND created_at < ").push_bind(v);
        }
        if let Some(c) = f.after {
            q.push(" AND (created_at, id) < (")
                .push_bind(c.created_at)
                .push(", ")
                .push_bind(c.id)
                .push(")");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(f.limit + 1);
        let mut rows: Vec<OrderRow> = q.build_query_as().fetch_all(&self.pool).await?;
        let more = rows.len() as i64 > f.limit;
        rows.truncate(f.limit.max(0) as usize);
        let next = more.then(|| {
            rows.last().map(|r| Cursor {
                created_at: r.created_at,
                id: r.id,
            })
        });
        let orders = self.attach_items(rows).await?;
        Ok((orders, next.flatten()))
    }

    /// The orders of `rows`, with their lines (one query for all of them).
    async fn attach_items(&self, rows: Vec<OrderRow>) -> Result<Vec<Order>, ServiceError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let items: Vec<ItemRow> = sqlx::query_as(
            "SELECT * FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, item_number",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_order: std::collections::HashMap<Uuid, Vec<OrderItem>> =
            std::collections::HashMap::new();
        for item in items {
            by_order.entry(item.order_id).or_default().push(item.into());
        }
        Ok(rows
            .into_iter()
            .map(|r| {
                let items = by_order.remove(&r.id).unwrap_or_default();
                r.into_order(items)
            })
            .collect())
    }

    /// The orders a search matches, in its order and window, with the count of every match
    /// when asked (see [`search`] for how the filter becomes SQL).
    pub async fn search(
        &self,
        query: &search::SearchQuery,
    ) -> Result<(Vec<Order>, Option<i64>), ServiceError> {
        let rows: Vec<OrderRow> = search::select_statement("", query)
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        let orders = if query.include_items {
            self.attach_items(rows).await?
        } else {
            rows.into_iter().map(|r| r.into_order(Vec::new())).collect()
        };
        let count = if query.count {
            let (n,): (i64,) = search::count_statement("", query)
                .build_query_as()
                .fetch_one(&self.pool)
                .await?;
            Some(n)
        } else {
            None
        };
        Ok((orders, count))
    }

    /// Locks the order for a change.
    async fn lock(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<OrderRow, ServiceError> {
        let row: Option<OrderRow> = sqlx::query_as("SELECT * FROM orders WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        row.ok_or_else(|| ServiceError::OrderNotFound(id.to_string()))
    }

    fn check_version(row: &OrderRow, expected: Option<i64>) -> Result<(), ServiceError> {
        match expected {
            Some(given) if given != row.version => Err(ServiceError::StaleVersion {
                given,
                current: row.version,
            }),
            _ => Ok(()),
        }
    }

    fn current_status(row: &OrderRow) -> Result<OrderStatus, ServiceError> {
        row.status.parse().map_err(|e: String| {
            ServiceError::Database(sqlx::Error::Protocol(format!("stored status: {e}")))
        })
    }

    /// Moves an order through the state machine, checking the caller's version.
    ///
    /// Voiding an order that is already voided changes nothing and succeeds (compensation is
    /// retried by the proxy until it lands).
    pub async fn change_status(
        &self,
        id: Uuid,
        change: &StatusChange,
        ctx: &RequestContext,
    ) -> Result<Order, ServiceError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::lock(&mut tx, id).await?;
        let current = Self::current_status(&row)?;
        if change.to == OrderStatus::Voided && current == OrderStatus::Voided {
            tx.rollback().await?;
            return self.with_items(row).await;
        }
        Self::check_version(&row, change.expected_version)?;
        let next = current.transition_to(change.to)?;
        let row: OrderRow = sqlx::query_as(
            "UPDATE orders SET status = $2, status_reason = COALESCE($3, status_reason), \
               version = version + 1, updated_at = now() \
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(next.as_str())
        .bind(change.reason.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        let order = Self::items_in_tx(&mut tx, row).await?;
        let change = OrderChange::Status { previous: current };
        outbox::append(&mut tx, change, &order, ctx).await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Links the SAP sales order number and, when given, adopts SAP's pricing (currency, total,
    /// item units, prices and net amounts) in the same transaction, with one `order.updated`
    /// event naming the changed fields. Linking the same number with the same values again
    /// changes nothing and writes no event; a different number, or a number already linked to
    /// another order, is a conflict.
    pub async fn link_sap_order(
        &self,
        id: Uuid,
        sap_order_number: &str,
        pricing: Option<&SapPricing>,
        ctx: &RequestContext,
    ) -> Result<Order, ServiceError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::lock(&mut tx, id).await?;
        if let Some(existing) = row.sap_order_number.as_deref()
            && existing != sap_order_number
        {
            return Err(ServiceError::SapNumberConflict(format!(
                "order {id} is already linked to SAP order {existing}"
            )));
        }
        let mut changed_fields = Vec::new();
        if row.sap_order_number.is_none() {
            changed_fields.push("sap_order_number");
        }
        let mut currency = row.currency.clone();
        let mut total = row.total_net_amount;
        let mut items: Vec<ItemRow> =
            sqlx::query_as("SELECT * FROM order_items WHERE order_id = $1 ORDER BY item_number")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let mut items_changed = false;
        if let Some(p) = pricing {
            if let Some(c) = &p.currency
                && c.as_str() != currency
            {
                currency = c.as_str().to_owned();
                changed_fields.push("currency");
            }
            if let Some(t) = p.total_net_amount
                && Some(t.value()) != total
            {
                total = Some(t.value());
                changed_fields.push("total_net_amount");
            }
            let mut errors = Vec::new();
            for (i, given) in p.items.iter().enumerate() {
                let Some(item) = items
                    .iter_mut()
                    .find(|it| it.item_number == given.item_number)
                else {
                    errors.push(order_domain::FieldError::new(
                        format!("pricing.items[{i}].item_number"),
                        format!("order {id} has no item {}", given.item_number),
                    ));
                    continue;
                };
                if let Some(u) = &given.unit
                    && u.as_str() != item.unit
                {
                    item.unit = u.as_str().to_owned();
                    items_changed = true;
                }
                if let Some(v) = given.unit_price
                    && Some(v.value()) != item.unit_price
                {
                    item.unit_price = Some(v.value());
                    items_changed = true;
                }
                if let Some(v) = given.net_amount
                    && Some(v.value()) != item.net_amount
                {
                    item.net_amount = Some(v.value());
                    items_changed = true;
                }
            }
            if !errors.is_empty() {
                return Err(ServiceError::SapPricingItemUnknown(errors));
            }
            if items_changed {
                changed_fields.push("items");
            }
        }
        if changed_fields.is_empty() {
            tx.rollback().await?;
            return Ok(row.into_order(items.into_iter().map(OrderItem::from).collect()));
        }
        let updated: Result<OrderRow, sqlx::Error> = sqlx::query_as(
            "UPDATE orders SET sap_order_number = $2, currency = $3, total_net_amount = $4, \
               version = version + 1, updated_at = now() \
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(sap_order_number)
        .bind(&currency)
        .bind(total)
        .fetch_one(&mut *tx)
        .await;
        let row = match updated {
            Err(e) if is_unique_violation(&e, "orders_sap_order_number_key") => {
                return Err(ServiceError::SapNumberConflict(format!(
                    "SAP order {sap_order_number} is already linked to another order"
                )));
            }
            other => other?,
        };
        if items_changed {
            sqlx::query(
                "UPDATE order_items AS i SET unit = t.unit, unit_price = t.unit_price, \
                   net_amount = t.net_amount \
                 FROM UNNEST($2::int4[], $3::text[], $4::numeric[], $5::numeric[]) \
                   AS t(item_number, unit, unit_price, net_amount) \
                 WHERE i.order_id = $1 AND i.item_number = t.item_number",
            )
            .bind(id)
            .bind(items.iter().map(|i| i.item_number).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.unit.as_str()).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.unit_price).collect::<Vec<_>>())
            .bind(items.iter().map(|i| i.net_amount).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        let order = row.into_order(items.into_iter().map(OrderItem::from).collect());
        let change = OrderChange::Updated { changed_fields };
        outbox::append(&mut tx, change, &order, ctx).await?;
        tx.commit().await?;
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_795_478_400_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
        assert_eq!(Cursor::decode(""), None);
        assert_eq!(Cursor::decode(&c.encode().to_uppercase()), None);
        assert_eq!(Cursor::decode(&format!("+1_{}", c.id.simple())), None);
        // Any text of the documented shape is a position, made up or not.
        assert!(Cursor::decode("0_00000000000000000000000000000000").is_some());
        assert!(Cursor::decode(&format!("9999999999999999_{}", c.id.simple())).is_some());
    }
}
