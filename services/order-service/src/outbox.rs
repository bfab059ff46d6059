//! The transactional outbox: every order change appends its event here, inside the change's
//! own transaction, so the event exists exactly when the change does; relays publish the rows
//! to Kafka.
//!
//! ```text
//! repository tx ─► append (one row: event id fixed here) ─► COMMIT
//!                                                             │ (relay polls, backing off when idle)
//! relay: claim orders (advisory lock per order) ─► fetch their pending rows in version order
//!        ─► produce (idempotent, acks=all, key = order id) ─► wait for every ack
//!        ─► mark published ─► unlock
//! ```
//!
//! - [`append`]: the one function every change calls (create, update, status change,
//!   cancel/void, SAP-number link).
//! - [`relay`]: the publisher; several may run at once (in each service instance and as the
//!   `outbox-relay` binary).
//! - [`kafka`]: producer settings, topic provisioning, the broker connectivity probe.
//! - [`maintenance`]: backlog figures for `/ready` and `/metrics`, pruning of published rows.
//!
//! Guarantees and why they hold:
//!
//! - **Nothing lost.** A row is marked published only after the broker acknowledged it
//!   (`acks=all`). A relay that dies before marking leaves the row pending; the next relay sends
//!   it again with the same event id (consumers drop duplicates by id).
//! - **No gap.** Relays never keep a high-water mark of ids: each pass looks at *all* pending
//!   rows, so a row whose id is lower than an already published one (its transaction committed
//!   later) is still found.
//! - **Order per order.** A relay publishes an order's events only while it holds that order's
//!   advisory lock, all of them in `order_version` order through one idempotent producer (which
//!   keeps a partition's order across retries), and re-reads the pending rows *after* taking the
//!   lock, so it never sees a row another relay already published. Event n+1 of an order is
//!   marked only if event n was acknowledged; with no delivery timeout (the default) an event is
//!   never given up while a later one of the same order gets through.

pub mod kafka;
pub mod maintenance;
pub mod relay;

use order_domain::OrderStatus;
use order_events::{
    CloudEvent, OrderCancelled, OrderEventData, OrderItem as EventItem, OrderSnapshot,
    OrderStatusChanged, OrderUpdated, traceparent,
};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::error::ServiceError;
use crate::model::Order;
use crate::repository::RequestContext;

/// What changed, with what the event needs beyond the order after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderChange {
    /// A new order.
    Created,
    /// Fields changed without a status change (header fields, the SAP link).
    Updated {
        /// Names of the changed fields, as in the event payload (`sap_order_number`, ...).
        changed_fields: Vec<&'static str>,
    },
    /// The status moved forward (confirmed, shipped, delivered), or to cancelled/voided.
    Status {
        /// The status before the change.
        previous: OrderStatus,
    },
}

/// One outbox row, ready to be inserted: the event id is fixed here, once, so every resend of
/// the event carries it.
#[derive(Debug)]
pub struct EventRow {
    /// The event id (UUID v7).
    pub event_id: Uuid,
    /// The CloudEvents type.
    pub event_type: &'static str,
    /// The event as it goes on the wire (CloudEvents structured JSON), stored in the row's
    /// `envelope` (migration 0007) and shipped unchanged by the relay.
    pub envelope: String,
    /// A span of its own within the caller's trace (or a new trace), so the consumer's work
    /// links back to the request that made the change.
    pub traceparent: String,
}

impl EventRow {
    /// The row for `order`'s change (the order as it is after the change; the event's `time`
    /// is the change's, `order.updated_at`).
    pub fn new(change: OrderChange, order: &Order, ctx: &RequestContext) -> Self {
        let data = event_data(change, order);
        let event_id = Uuid::now_v7();
        let event_type = data.event_type();
        // With traces on, the request's own span (the relay's producer span becomes its child);
        // else a span id of its own within the caller's trace.
        let traceparent = platform::otel::current_traceparent()
            .unwrap_or_else(|| traceparent::child_of(ctx.traceparent.as_deref()));
        let event = CloudEvent::for_order(
            event_id,
            order.id,
            event_type,
            order.updated_at,
            data,
            Some(ctx.correlation_id.clone()),
            Some(traceparent.clone()),
        );
        Self {
            event_id,
            event_type: event_type.as_str(),
            envelope: serde_json::to_string(&event).expect("order events serialize to JSON"),
            traceparent,
        }
    }
}

/// Appends the event for `order`'s change to the outbox in `tx` and returns its event id.
///
/// `order` is the order as it is after the change, read inside `tx` after its row was locked
/// and its version bumped, so the row's `order_version` orders this event after every earlier
/// event of the order. (A create writes its row in the same statement as the order instead:
/// see `repository::place_order`.)
pub async fn append(
    tx: &mut Transaction<'_, Postgres>,
    change: OrderChange,
    order: &Order,
    ctx: &RequestContext,
) -> Result<Uuid, ServiceError> {
    let row = EventRow::new(change, order, ctx);
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_id, order_version, event_type, envelope, \
           correlation_id, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.event_id)
    .bind(order.id)
    .bind(order.version)
    .bind(row.event_type)
    .bind(&row.envelope)
    .bind(&ctx.correlation_id)
    .bind(&row.traceparent)
    .execute(&mut **tx)
    .await?;
    Ok(row.event_id)
}

/// The event payload for a change: the order after it, plus what the type adds.
pub fn event_data(change: OrderChange, order: &Order) -> OrderEventData {
    let snapshot = snapshot(order);
    match change {
        OrderChange::Created => OrderEventData::Created(snapshot),
        OrderChange::Updated { changed_fields } => OrderEventData::Updated(OrderUpdated {
            order: snapshot,
            changed_fields: changed_fields.into_iter().map(str::to_owned).collect(),
        }),
        OrderChange::Status { previous } => {
            let ended = matches!(
                order.status.parse::<OrderStatus>(),
                Ok(OrderStatus::Cancelled | OrderStatus::Voided)
            );
            if ended {
                OrderEventData::Cancelled(OrderCancelled {
                    reason: order.status_reason.clone(),
                    order: snapshot,
                    previous_status: previous.as_str().to_owned(),
                })
            } else {
                OrderEventData::StatusChanged(OrderStatusChanged {
                    order: snapshot,
                    previous_status: previous.as_str().to_owned(),
                })
            }
        }
    }
}

fn snapshot(order: &Order) -> OrderSnapshot {
    OrderSnapshot {
        order_id: order.id,
        order_number: order.order_number.clone(),
        status: order.status.clone(),
        version: order.version,
        customer_id: order.customer_id.clone(),
        currency: order.currency.clone(),
        customer_reference: order.customer_reference.clone(),
        sales_organization: order.sales_organization.clone(),
        distribution_channel: order.distribution_channel.clone(),
        division: order.division.clone(),
        order_type: order.order_type.clone(),
        requested_delivery_date: order.requested_delivery_date,
        sap_order_number: order.sap_order_number.clone(),
        total_net_amount: order.total_net_amount.map(|d| d.to_string()),
        specifications: order.specifications.clone(),
        items: order
            .items
            .iter()
            .map(|i| EventItem {
                item_number: i.item_number,
                sku: i.sku.clone(),
                quantity: i.quantity.to_string(),
                unit: i.unit.clone(),
                unit_price: i.unit_price.map(|d| d.to_string()),
                net_amount: i.net_amount.map(|d| d.to_string()),
                specifications: i.specifications.clone(),
                rejection_reason: i.rejection_reason.clone(),
            })
            .collect(),
        created_at: order.created_at,
        updated_at: order.updated_at,
    }
}

/// What publishes and tends the outbox in the background: topic provisioning, the relay (when
/// enabled), the broker probe and the pruner. Prepared at build, started with the service.
pub struct OutboxWorkers {
    pool: sqlx::PgPool,
    kafka: crate::config::KafkaSettings,
    outbox: crate::config::OutboxSettings,
    grace: std::time::Duration,
    producer: Option<kafka::RelayProducer>,
    health: kafka::KafkaHealth,
}

impl OutboxWorkers {
    /// Creates the producer (no connection yet) when the relay is enabled.
    pub fn prepare(
        pool: sqlx::PgPool,
        config: &crate::Config,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let (producer, health) = if config.outbox.relay_enabled {
            let producer = kafka::producer(&config.kafka, "order-service-outbox")?;
            (Some(producer), kafka::KafkaHealth::unknown())
        } else {
            (None, kafka::KafkaHealth::disabled())
        };
        Ok(Self {
            pool,
            kafka: config.kafka.clone(),
            outbox: config.outbox.clone(),
            grace: config.shutdown_grace,
            producer,
            health,
        })
    }

    /// The broker health the probe keeps current.
    pub fn health(&self) -> kafka::KafkaHealth {
        self.health.clone()
    }

    /// Starts the background tasks; they stop when `shutdown` fires.
    pub fn spawn(self, shutdown: platform::shutdown::CancellationToken) {
        tokio::spawn(maintenance::run_pruner(
            self.pool.clone(),
            self.outbox.retention,
            self.outbox.prune_interval,
            shutdown.clone(),
        ));
        let Some(producer) = self.producer else {
            return;
        };
        // The probe has a client of its own: the relay replaces its producer after a fatal
        // error, and a probe holding the old one would go on reporting on a dead client.
        let probe = kafka::producer(&self.kafka, "order-service-probe").unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot build the Kafka probe's own client; sharing the relay's");
            producer.clone()
        });
        tokio::spawn(self.health.run_probe(
            probe,
            self.kafka.topic.clone(),
            std::time::Duration::from_secs(2),
            shutdown.clone(),
        ));
        let relay = relay::Relay::new(
            self.pool,
            producer,
            self.kafka.topic.clone(),
            self.outbox.batch_size,
        )
        .with_mark_delay(self.outbox.mark_delay)
        .renew_producer_with(kafka::producer_factory(&self.kafka, "order-service-outbox"));
        let settings = self.kafka;
        let poll = self.outbox.poll_interval;
        let grace = self.grace;
        tokio::spawn(async move {
            // The relay waits for the topic: with automatic topic creation off, records for a
            // missing topic would fail.
            if kafka::provision_topic_with_retry(&settings, &shutdown)
                .await
                .is_some()
            {
                relay.run(poll, grace, shutdown).await;
            }
        });
    }
}
