//! The order event contract: what the order service publishes on Kafka and what consumers
//! (sap-sync, analytics, ...) may rely on. No I/O.
//!
//! Layout:
//!
//! - [`envelope`]: the CloudEvents 1.0 structured-mode JSON envelope ([`CloudEvent`]) and the
//!   event types ([`EventType`]), each with a schema version and a `dataschema` URI.
//! - [`payload`]: the `data` of each event type ([`OrderSnapshot`], [`OrderStatusChanged`], ...).
//! - [`schema`]: the JSON Schema of every event type, kept as files in `schemas/` and compiled
//!   into the crate so a consumer can validate without the repository at hand.
//! - [`headers`]: the Kafka header names, and [`DEFAULT_TOPIC`].
//! - [`traceparent`]: W3C Trace Context `traceparent` values.
//!
//! Wire rules (also in `schemas/README.md`):
//!
//! - The Kafka **value** is the whole event as structured JSON (`application/cloudevents+json`).
//! - The Kafka **key** is the order id (UUID text), so every event of one order lands on one
//!   partition and keeps its order.
//! - The event `id` is fixed when the change is committed (it is written in the outbox row), so
//!   a re-sent event keeps its id; consumers drop duplicates by `id`.
//! - Per order, `data.version` (the order's optimistic-lock version after the change) increases
//!   by one with every event: a consumer can detect a gap or a replay without extra state.
//! - Breaking changes to a payload get a new schema version (`order.created.v2.json`) and a new
//!   `dataschema`; the `type` stays the same.

pub mod envelope;
pub mod headers;
pub mod payload;
pub mod schema;
pub mod traceparent;

pub use envelope::{CloudEvent, DecodeError, EventType, SPEC_VERSION, STRUCTURED_CONTENT_TYPE};
pub use payload::{
    OrderCancelled, OrderEventData, OrderItem, OrderSnapshot, OrderStatusChanged, OrderUpdated,
};

/// The Kafka topic order events are published to unless configured otherwise.
pub const DEFAULT_TOPIC: &str = "order-events";

/// The CloudEvents `source` of events published by the order service.
pub const ORDER_SERVICE_SOURCE: &str = "/order-service";
