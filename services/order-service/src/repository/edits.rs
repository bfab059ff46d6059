//! The order's life after its create: header changes, line quantity changes, added, removed
//! and rejected lines, cancellation, and the statuses SAP reports back.
//!
//! Every change is one transaction: lock the order row, check the caller's version
//! (`If-Match`), check the state rules, apply the change to the lines in memory, reprice,
//! write the order and its lines, append one outbox event, commit. A change that changes
//! nothing bumps no version and writes no event. Refusals happen before any write, and the
//! transaction is rolled back, so a refused change stores nothing.
//!
//! Pricing rule after any change: a line whose quantity or price changed, or that was added,
//! gets `net_amount = quantity × unit_price` (rounded to the currency's decimals) when priced;
//! the order's `total_net_amount` is the sum of the net amounts of the priced lines that are
//! not rejected (SAP leaves rejected lines out of the net value), `null` when no line is priced
//! ([`order_domain::open_total`]).

use chrono::NaiveDate;
use order_domain::{
    CompletionError, CurrencyCode, CustomerId, DistributionChannel, Division, FieldError, Money,
    OrderStatus, OrderType, Quantity, RejectionReason, RequestedLine, SalesOrganization,
    StatusReport,
    order::{MAX_LINES, net_amount},
};
use serde_json::{Map, Value};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{OrderRepository, RequestContext};
use crate::error::ServiceError;
use crate::model::{ItemRow, Order, OrderItem, OrderRow};
use crate::outbox::{self, OrderChange};

/// How a caller addresses an order: by id, or by its order number (the SAP-facing proxy and
/// sap-sync hold only the number, which is SAP's `SalesOrder` too).
#[derive(Debug, Clone)]
pub enum OrderKey {
    /// The order id.
    Id(Uuid),
    /// The 10-digit order number.
    Number(String),
}

impl std::fmt::Display for OrderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

/// A change to an order's header.
#[derive(Debug, Clone, Default)]
pub struct HeaderPatch {
    /// New customer reference (`Some(None)` clears it).
    pub customer_reference: Option<Option<String>>,
    /// New requested delivery date (`Some(None)` clears it).
    pub requested_delivery_date: Option<Option<NaiveDate>>,
    /// Keys to merge into the header specifications (`null` removes a key).
    pub specifications: Option<Map<String, Value>>,
}

/// A change to one line.
#[derive(Debug, Clone, Default)]
pub struct ItemPatch {
    /// New quantity.
    pub quantity: Option<Quantity>,
    /// New rejection reason (`Some(None)` reopens a rejected line).
    pub rejection_reason: Option<Option<RejectionReason>>,
}

/// One change of an order's life.
#[derive(Debug, Clone)]
pub enum OrderEdit {
    /// Header fields.
    Header(HeaderPatch),
    /// One line's quantity and/or rejection.
    Item {
        /// The line.
        item_number: i32,
        /// What changes.
        patch: ItemPatch,
    },
    /// A new line (its item number is assigned here; what SAP derives is completed from
    /// master data as on create).
    AddItem(RequestedLine),
    /// Remove a line.
    RemoveItem {
        /// The line.
        item_number: i32,
    },
    /// Cancel the order: status `cancelled` with `reason`, and every open line rejected with
    /// `rejection` (SAP cancels an order by rejecting all of its lines).
    Cancel {
        /// Why (free text, kept as `status_reason`).
        reason: Option<String>,
        /// The code put on every open line.
        rejection: RejectionReason,
    },
}

/// What a status report from SAP did.
#[derive(Debug)]
pub enum ReportOutcome {
    /// The order moved to the reported status (one `order.status_changed`).
    Applied(Order),
    /// The order already had the status (or a later one): nothing changed, no event.
    AlreadyThere(Order),
}

/// The version each order had when a transaction's first change of it was made.
type Started = std::collections::HashMap<Uuid, i64>;

const ITEMS_SQL: &str = "SELECT * FROM order_items WHERE order_id = $1 ORDER BY item_number";

impl OrderRepository {
    /// Locks the order addressed by `key` for a change.
    async fn lock_key(
        tx: &mut Transaction<'_, Postgres>,
        key: &OrderKey,
    ) -> Result<OrderRow, ServiceError> {
        let row: Option<OrderRow> = match key {
            OrderKey::Id(id) => {
                sqlx::query_as("SELECT * FROM orders WHERE id = $1 FOR UPDATE")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            OrderKey::Number(n) => {
                sqlx::query_as("SELECT * FROM orders WHERE order_number = $1 FOR UPDATE")
                    .bind(n)
                    .fetch_optional(&mut **tx)
                    .await?
            }
        };
        row.ok_or_else(|| ServiceError::OrderNotFound(key.to_string()))
    }

    /// One order by id or number.
    pub async fn get_by_key(&self, key: &OrderKey) -> Result<Order, ServiceError> {
        match key {
            OrderKey::Id(id) => self.get(*id).await,
            OrderKey::Number(n) => self.get_by_number(n).await,
        }
    }

    /// Applies one change to the order addressed by `key`, if `expected_version` is its
    /// version (else 412), in one transaction with its event: `order.updated` naming the
    /// changed fields, or `order.cancelled` for a cancellation. A change that changes nothing
    /// answers the order as it is (no version bump, no event).
    pub async fn edit(
        &self,
        key: &OrderKey,
        expected_version: i64,
        edit: &OrderEdit,
        ctx: &RequestContext,
    ) -> Result<Order, ServiceError> {
        let mut tx = self.pool.begin().await?;
        let order = self
            .edit_in(
                &mut tx,
                key,
                expected_version,
                edit,
                ctx,
                &mut Started::new(),
            )
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Applies `changes` in one transaction, all or none: each as [`Self::edit`] would, in
    /// the order given, each with its own version and event. Every change names the version
    /// its order had when the changeset began (as SAP checks each change of a changeset
    /// against the document as read), so several changes of one order name the same version.
    /// The orders are locked first, in one order (by id), so two changesets over the same
    /// orders wait for each other instead of deadlocking. A refusal names the change (its
    /// index) and nothing is stored.
    pub async fn edit_many(
        &self,
        changes: &[(OrderKey, i64, OrderEdit)],
        ctx: &RequestContext,
    ) -> Result<Vec<Order>, ServiceError> {
        let mut tx = self.pool.begin().await?;
        let (ids, numbers): (Vec<Uuid>, Vec<String>) = {
            let mut ids = Vec::new();
            let mut numbers = Vec::new();
            for (key, _, _) in changes {
                match key {
                    OrderKey::Id(id) => ids.push(*id),
                    OrderKey::Number(n) => numbers.push(n.clone()),
                }
            }
            (ids, numbers)
        };
        sqlx::query(
            "SELECT id FROM orders WHERE id = ANY($1) OR order_number = ANY($2) \
             ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .bind(&numbers)
        .execute(&mut *tx)
        .await?;
        let mut started = Started::new();
        let mut orders = Vec::with_capacity(changes.len());
        for (index, (key, version, edit)) in changes.iter().enumerate() {
            let order = self
                .edit_in(&mut tx, key, *version, edit, ctx, &mut started)
                .await
                .map_err(|error| ServiceError::InChangeset {
                    index,
                    error: Box::new(error),
                })?;
            orders.push(order);
        }
        tx.commit().await?;
        Ok(orders)
    }

    /// One change inside `tx` (see [`Self::edit`]); `started` holds the version each order had
    /// when the transaction's first change of it was made, which is what `expected_version`
    /// is checked against.
    async fn edit_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        key: &OrderKey,
        expected_version: i64,
        edit: &OrderEdit,
        ctx: &RequestContext,
        started: &mut Started,
    ) -> Result<Order, ServiceError> {
        let row = Self::lock_key(tx, key).await?;
        // A line add repeated under its Idempotency-Key (a replay after a lost answer) adds
        // nothing: the order as it is now (the version has moved on since the first add).
        if let (OrderEdit::AddItem(_), Some(k)) = (edit, &ctx.idempotency_key) {
            let seen: Option<(i32,)> = sqlx::query_as(
                "SELECT item_number FROM order_line_adds WHERE idempotency_key = $1",
            )
            .bind(k)
            .fetch_optional(&mut **tx)
            .await?;
            if seen.is_some() {
                return Self::items_in_tx(tx, row).await;
            }
        }
        let first_version = *started.entry(row.id).or_insert(row.version);
        if expected_version != first_version {
            return Err(ServiceError::StaleVersion {
                given: expected_version,
                current: first_version,
            });
        }
        let status = Self::current_status(&row)?;
        let next_status = match edit {
            OrderEdit::Cancel { .. } => status.transition_to(OrderStatus::Cancelled)?,
            _ if !status.is_editable() => return Err(ServiceError::OrderNotEditable(status)),
            _ => status,
        };
        let id = row.id;
        let decimals = CurrencyCode::parse(&row.currency)
            .map(|c| c.decimals())
            .unwrap_or(order_domain::values::DECIMAL_SCALE);
        let mut items: Vec<ItemRow> = sqlx::query_as(ITEMS_SQL)
            .bind(id)
            .fetch_all(&mut **tx)
            .await?;
        let highest_before = items.iter().map(|i| i.item_number).max().unwrap_or(0);
        let mut reference = row.customer_reference.clone();
        let mut date = row.requested_delivery_date;
        let mut specifications = row.specifications.0.clone();
        let mut status_reason = row.status_reason.clone();
        let mut changed: Vec<&'static str> = Vec::new();
        let mut items_changed = false;
        let not_found = |item_number: i32| ServiceError::ItemNotFound {
            order: key.to_string(),
            item_number,
        };
        match edit {
            OrderEdit::Header(p) => {
                if let Some(r) = &p.customer_reference {
                    reference = r.clone();
                }
                if let Some(d) = p.requested_delivery_date {
                    date = d;
                }
                if let Some(changes) = &p.specifications {
                    for (k, v) in changes {
                        if v.is_null() {
                            specifications.remove(k);
                        } else {
                            specifications.insert(k.clone(), v.clone());
                        }
                    }
                }
                if reference != row.customer_reference {
                    changed.push("customer_reference");
                }
                if date != row.requested_delivery_date {
                    changed.push("requested_delivery_date");
                }
                if specifications != row.specifications.0 {
                    changed.push("specifications");
                }
            }
            OrderEdit::Item { item_number, patch } => {
                let item = items
                    .iter_mut()
                    .find(|i| i.item_number == *item_number)
                    .ok_or_else(|| not_found(*item_number))?;
                let reason_after = match &patch.rejection_reason {
                    Some(r) => r.as_ref().map(|r| r.as_str().to_owned()),
                    None => item.rejection_reason.clone(),
                };
                // A rejected line's quantity may change, as in S/4 (the emulator takes it, and
                // in dual-write the proxy applies what SAP took): it stays rejected, its net
                // amount follows, the total still leaves it out.
                if let Some(q) = patch.quantity
                    && q.value() != item.quantity
                {
                    item.quantity = q.value();
                    item.net_amount = reprice(item, decimals)?;
                    items_changed = true;
                }
                if reason_after != item.rejection_reason {
                    item.rejection_reason = reason_after;
                    items_changed = true;
                }
            }
            OrderEdit::AddItem(line) => {
                if items.len() >= MAX_LINES {
                    return Err(ServiceError::field(
                        "items",
                        format!("the order has {MAX_LINES} lines already, the most it may have"),
                    ));
                }
                let highest = row.last_item_number.unwrap_or(0).max(highest_before);
                let item_number = (highest / 10 + 1) * 10;
                let mut line = line.clone();
                line.item_number = item_number;
                if let Some(k) = &ctx.idempotency_key {
                    sqlx::query(
                        "INSERT INTO order_line_adds (idempotency_key, order_id, item_number) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(k)
                    .bind(id)
                    .bind(item_number)
                    .execute(&mut **tx)
                    .await?;
                }
                items.push(self.complete_line(&row, line).await?);
                items_changed = true;
            }
            OrderEdit::RemoveItem { item_number } => {
                let at = items
                    .iter()
                    .position(|i| i.item_number == *item_number)
                    .ok_or_else(|| not_found(*item_number))?;
                let open_left = items
                    .iter()
                    .filter(|i| i.item_number != *item_number && i.rejection_reason.is_none())
                    .count();
                if open_left == 0 {
                    return Err(ServiceError::LastOpenItem {
                        item_number: *item_number,
                    });
                }
                items.remove(at);
                items_changed = true;
            }
            OrderEdit::Cancel { reason, rejection } => {
                for item in items.iter_mut().filter(|i| i.rejection_reason.is_none()) {
                    item.rejection_reason = Some(rejection.as_str().to_owned());
                    items_changed = true;
                }
                if reason.is_some() {
                    status_reason = reason.clone();
                }
            }
        }
        let total = order_domain::open_total(items.iter().map(|i| {
            let net = i.net_amount.and_then(|n| Money::try_from(n).ok());
            (net, i.rejection_reason.is_some())
        }))
        .map_err(|e| ServiceError::field("items", e.0))?
        .map(Money::value);
        if items_changed {
            changed.push("items");
        }
        if total != row.total_net_amount {
            changed.push("total_net_amount");
        }
        if changed.is_empty() && next_status == status {
            return Ok(row.into_order(items.into_iter().map(OrderItem::from).collect()));
        }
        let updated: OrderRow = sqlx::query_as(
            "UPDATE orders SET customer_reference = $2, requested_delivery_date = $3, \
               specifications = $4, total_net_amount = $5, status = $6, status_reason = $7, \
               last_item_number = GREATEST(COALESCE(last_item_number, 0), $8), \
               version = version + 1, updated_at = now() \
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(&reference)
        .bind(date)
        .bind(sqlx::types::Json(&specifications))
        .bind(total)
        .bind(next_status.as_str())
        .bind(&status_reason)
        .bind(highest_before.max(items.iter().map(|i| i.item_number).max().unwrap_or(0)))
        .fetch_one(&mut **tx)
        .await?;
        if items_changed {
            Self::write_items(tx, id, &items).await?;
        }
        let order = updated.into_order(items.into_iter().map(OrderItem::from).collect());
        let change = if next_status == status {
            OrderChange::Updated {
                changed_fields: changed,
            }
        } else {
            OrderChange::Status { previous: status }
        };
        outbox::append(tx, change, &order, ctx).await?;
        Ok(order)
    }

    /// Makes the stored lines of order `id` exactly `items`: removes the others, inserts new
    /// ones, updates the rest.
    async fn write_items(
        tx: &mut Transaction<'_, Postgres>,
        id: Uuid,
        items: &[ItemRow],
    ) -> Result<(), ServiceError> {
        let numbers: Vec<i32> = items.iter().map(|i| i.item_number).collect();
        sqlx::query("DELETE FROM order_items WHERE order_id = $1 AND item_number <> ALL($2)")
            .bind(id)
            .bind(&numbers)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO order_items (order_id, item_number, sku, quantity, unit, unit_price, \
               net_amount, specifications, rejection_reason) \
             SELECT $1, t.* FROM UNNEST($2::int4[], $3::text[], $4::numeric[], $5::text[], \
               $6::numeric[], $7::numeric[], $8::jsonb[], $9::text[]) AS t \
             ON CONFLICT (order_id, item_number) DO UPDATE SET sku = EXCLUDED.sku, \
               quantity = EXCLUDED.quantity, unit = EXCLUDED.unit, \
               unit_price = EXCLUDED.unit_price, net_amount = EXCLUDED.net_amount, \
               specifications = EXCLUDED.specifications, \
               rejection_reason = EXCLUDED.rejection_reason",
        )
        .bind(id)
        .bind(&numbers)
        .bind(items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.quantity).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.unit.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.unit_price).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.net_amount).collect::<Vec<_>>())
        .bind(
            items
                .iter()
                .map(|i| Value::Object(i.specifications.0.clone()))
                .collect::<Vec<_>>(),
        )
        .bind(
            items
                .iter()
                .map(|i| i.rejection_reason.clone())
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Completes a new line as a create would (unit, price from master data, in the order's
    /// currency and sales area) and prices it.
    async fn complete_line(
        &self,
        row: &OrderRow,
        line: RequestedLine,
    ) -> Result<ItemRow, ServiceError> {
        let stored = |e: order_domain::ValueError| {
            ServiceError::Database(sqlx::Error::Protocol(format!("stored order value: {e}")))
        };
        let opt = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let request = order_domain::OrderRequest {
            order_number: None,
            customer_id: CustomerId::parse(&row.customer_id).map_err(stored)?,
            currency: Some(CurrencyCode::parse(&row.currency).map_err(stored)?),
            customer_reference: None,
            sales_organization: opt(&row.sales_organization)
                .map(|s| SalesOrganization::parse(&s))
                .transpose()
                .map_err(stored)?,
            distribution_channel: opt(&row.distribution_channel)
                .map(|s| DistributionChannel::parse(&s))
                .transpose()
                .map_err(stored)?,
            division: opt(&row.division)
                .map(|s| Division::parse(&s))
                .transpose()
                .map_err(stored)?,
            order_type: opt(&row.order_type)
                .map(|s| OrderType::parse(&s))
                .transpose()
                .map_err(stored)?,
            requested_delivery_date: None,
            specifications: Map::new(),
            lines: vec![line],
        };
        let master = self.master_data.for_order(&request).await?;
        let mut order = request.complete(&master).map_err(|e| match e {
            CompletionError::Invalid(errors) => {
                ServiceError::Validation(errors.into_iter().map(unprefix).collect())
            }
            CompletionError::MasterDataIncomplete(errors) => {
                ServiceError::MasterDataIncomplete(errors.into_iter().map(unprefix).collect())
            }
        })?;
        let line = order.lines.remove(0);
        Ok(ItemRow {
            order_id: row.id,
            item_number: line.item_number,
            sku: line.sku.as_str().to_owned(),
            quantity: line.quantity.value(),
            unit: line.unit.as_str().to_owned(),
            unit_price: line.unit_price.map(Money::value),
            net_amount: line.net_amount.map(Money::value),
            specifications: sqlx::types::Json(line.specifications),
            rejection_reason: None,
        })
    }

    /// Applies a status SAP reports (`delivered`, `billed`). Idempotent: a status the order has
    /// (or has passed) answers the order unchanged, with no event, whatever `expected_version`
    /// says. Otherwise `expected_version`, when given, must be the order's version (412).
    pub async fn report_status(
        &self,
        key: &OrderKey,
        reported: OrderStatus,
        expected_version: Option<i64>,
        ctx: &RequestContext,
    ) -> Result<ReportOutcome, ServiceError> {
        let mut tx = self.pool.begin().await?;
        let row = Self::lock_key(&mut tx, key).await?;
        let current = Self::current_status(&row)?;
        let next = match current.apply_report(reported)? {
            StatusReport::AlreadyThere => {
                tx.rollback().await?;
                return Ok(ReportOutcome::AlreadyThere(self.with_items(row).await?));
            }
            StatusReport::Applied(next) => next,
        };
        Self::check_version(&row, expected_version)?;
        let row: OrderRow = sqlx::query_as(
            "UPDATE orders SET status = $2, version = version + 1, updated_at = now() \
             WHERE id = $1 RETURNING *",
        )
        .bind(row.id)
        .bind(next.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let order = Self::items_in_tx(&mut tx, row).await?;
        outbox::append(
            &mut tx,
            OrderChange::Status { previous: current },
            &order,
            ctx,
        )
        .await?;
        tx.commit().await?;
        Ok(ReportOutcome::Applied(order))
    }
}

/// Reprices a line after its quantity changed: `quantity × unit_price` when priced.
fn reprice(item: &ItemRow, decimals: u32) -> Result<Option<rust_decimal::Decimal>, ServiceError> {
    let Some(price) = item.unit_price else {
        return Ok(None);
    };
    let q = Quantity::try_from(item.quantity).map_err(|e| ServiceError::field("quantity", e.0))?;
    let p = Money::try_from(price).map_err(|e| ServiceError::field("quantity", e.0))?;
    net_amount(q, p, decimals)
        .map(|m| Some(m.value()))
        .map_err(|e| ServiceError::field("quantity", e.0))
}

/// A create's field path for its one line (`items[0].unit`) as the add-item body names it
/// (`unit`).
fn unprefix(e: FieldError) -> FieldError {
    match e.field.strip_prefix("items[0].") {
        Some(rest) => FieldError::new(rest, e.message),
        None => e,
    }
}
