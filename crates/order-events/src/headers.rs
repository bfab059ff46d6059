//! Kafka record headers of an order event.
//!
//! The value is a complete structured CloudEvent; the headers repeat what a consumer needs
//! *before* parsing the value (dedupe by id, route by type, trace and correlate), following the
//! CloudEvents Kafka binding's `ce_` prefix for event attributes. `content-type` marks the record
//! as structured mode, so a CloudEvents SDK reads the value and ignores the `ce_` copies.
//!
//! | header           | value                                   |
//! |------------------|-----------------------------------------|
//! | `content-type`   | `application/cloudevents+json`          |
//! | `ce_id`          | the event id (same as the value's `id`) |
//! | `ce_type`        | e.g. `order.created`                    |
//! | `ce_specversion` | `1.0`                                   |
//! | `correlation_id` | the request's correlation id, when known |
//! | `traceparent`    | W3C trace context, when known           |
//!
//! The record key is the order id.

/// Structured-mode content type header.
pub const CONTENT_TYPE: &str = "content-type";
/// Event id header.
pub const EVENT_ID: &str = "ce_id";
/// Event type header.
pub const EVENT_TYPE: &str = "ce_type";
/// CloudEvents spec version header.
pub const SPEC_VERSION: &str = "ce_specversion";
/// Correlation id header.
pub const CORRELATION_ID: &str = "correlation_id";
/// W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";
