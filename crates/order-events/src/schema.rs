//! The JSON Schema (draft 2020-12) of every event type and version, from `schemas/`.
//!
//! Each schema describes a whole event (envelope and `data`), so a consumer validates the Kafka
//! value as it arrives. Its `$id` equals the event's `dataschema`.

use crate::envelope::EventType;

/// `(type, version, file name, schema text)` of every schema in the repository.
pub const SCHEMAS: [(EventType, u32, &str, &str); 4] = [
    (
        EventType::OrderCreated,
        1,
        "order.created.v1.json",
        include_str!("../schemas/order.created.v1.json"),
    ),
    (
        EventType::OrderUpdated,
        1,
        "order.updated.v1.json",
        include_str!("../schemas/order.updated.v1.json"),
    ),
    (
        EventType::OrderStatusChanged,
        1,
        "order.status_changed.v1.json",
        include_str!("../schemas/order.status_changed.v1.json"),
    ),
    (
        EventType::OrderCancelled,
        1,
        "order.cancelled.v1.json",
        include_str!("../schemas/order.cancelled.v1.json"),
    ),
];

/// The schema text of `event_type` at `version`, if the repository has it.
pub fn schema_text(event_type: EventType, version: u32) -> Option<&'static str> {
    SCHEMAS
        .iter()
        .find(|(t, v, _, _)| *t == event_type && *v == version)
        .map(|(_, _, _, text)| *text)
}

/// The schema of the version this crate produces for `event_type`, parsed.
pub fn current_schema(event_type: EventType) -> serde_json::Value {
    let text = schema_text(event_type, event_type.schema_version())
        .expect("every event type has a schema for its current version");
    serde_json::from_str(text).expect("schema files are valid JSON")
}
