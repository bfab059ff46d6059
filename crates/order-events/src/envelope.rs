//! The CloudEvents 1.0 envelope in structured JSON mode, and the event types.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::payload::OrderEventData;

/// The CloudEvents specification version every event carries.
pub const SPEC_VERSION: &str = "1.0";

/// Content type of a whole event in structured mode (the Kafka `content-type` header).
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Content type of the `data` member.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The kinds of order events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// An order was placed. Data: [`crate::OrderSnapshot`].
    #[serde(rename = "order.created")]
    OrderCreated,
    /// Order fields changed without a status change (e.g. the SAP order number was linked).
    /// Data: [`crate::OrderUpdated`].
    #[serde(rename = "order.updated")]
    OrderUpdated,
    /// The order moved along its lifecycle (confirmed, shipped, delivered).
    /// Data: [`crate::OrderStatusChanged`].
    #[serde(rename = "order.status_changed")]
    OrderStatusChanged,
    /// The order was cancelled by the business or voided by the migration machinery
    /// (compensation). Data: [`crate::OrderCancelled`].
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 4] = [
        Self::OrderCreated,
        Self::OrderUpdated,
        Self::OrderStatusChanged,
        Self::OrderCancelled,
    ];

    /// The CloudEvents `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderCreated => "order.created",
            Self::OrderUpdated => "order.updated",
            Self::OrderStatusChanged => "order.status_changed",
            Self::OrderCancelled => "order.cancelled",
        }
    }

    /// The payload schema version this crate produces for the type.
    pub fn schema_version(self) -> u32 {
        1
    }

    /// The CloudEvents `dataschema` attribute: names the schema file
    /// `schemas/<type>.v<version>.json` (the same URI is that file's `$id`).
    pub fn dataschema(self) -> &'static str {
        match self {
            Self::OrderCreated => "urn:order-events:schema:order.created.v1",
            Self::OrderUpdated => "urn:order-events:schema:order.updated.v1",
            Self::OrderStatusChanged => "urn:order-events:schema:order.status_changed.v1",
            Self::OrderCancelled => "urn:order-events:schema:order.cancelled.v1",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown event type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// One event, CloudEvents 1.0 structured JSON. `T` is the `data` member: [`OrderEventData`]
/// for typed use, `serde_json::Value` for pass-through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent<T = serde_json::Value> {
    /// Always [`SPEC_VERSION`].
    pub specversion: String,
    /// Unique per committed change (UUID v7, fixed in the outbox row); the deduplication key.
    pub id: String,
    /// Producer, e.g. [`crate::ORDER_SERVICE_SOURCE`].
    pub source: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The order id (also the Kafka key).
    pub subject: String,
    /// When the change was committed (RFC 3339, UTC).
    pub time: DateTime<Utc>,
    /// Always [`DATA_CONTENT_TYPE`].
    pub datacontenttype: String,
    /// [`EventType::dataschema`] of the payload version.
    pub dataschema: String,
    /// Extension: the correlation id of the request that caused the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// Extension (CloudEvents distributed tracing): W3C `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The payload.
    pub data: T,
}

/// Where and why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not a CloudEvent of a known order event type.
    #[error("not an order CloudEvent: {0}")]
    Envelope(#[source] serde_json::Error),
    /// A specversion other than 1.0.
    #[error("unsupported CloudEvents specversion {0:?}")]
    SpecVersion(String),
    /// The `data` does not match the type's payload.
    #[error("{event_type} data does not match its payload: {source}")]
    Data {
        /// The event's type.
        event_type: EventType,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

impl<T> CloudEvent<T> {
    /// The event of type `event_type` for one committed change of order `order_id`, with any
    /// representation of its data: [`OrderEventData`] (see [`Self::for_order_change`]), a
    /// reference to it, or the stored JSON as a `RawValue`.
    ///
    /// `id` is the outbox row's event id (fixed at commit), `time` the change's time.
    pub fn for_order(
        id: Uuid,
        order_id: Uuid,
        event_type: EventType,
        time: DateTime<Utc>,
        data: T,
        correlationid: Option<String>,
        traceparent: Option<String>,
    ) -> Self {
        CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: id.to_string(),
            source: crate::ORDER_SERVICE_SOURCE.to_owned(),
            event_type,
            subject: order_id.to_string(),
            time,
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            dataschema: event_type.dataschema().to_owned(),
            correlationid,
            traceparent,
            data,
        }
    }
}

impl<T: Serialize> CloudEvent<T> {
    /// The structured JSON bytes (the Kafka value).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_vec(self).expect("order events serialize to JSON")
    }
}

impl CloudEvent<OrderEventData> {
    /// Builds the event for one committed order change.
    ///
    /// `id` is the outbox row's event id (fixed at commit), `time` the commit time.
    pub fn for_order_change(
        id: Uuid,
        time: DateTime<Utc>,
        data: OrderEventData,
        correlationid: Option<String>,
        traceparent: Option<String>,
    ) -> Self {
        let (order_id, event_type) = (data.order().order_id, data.event_type());
        Self::for_order(
            id,
            order_id,
            event_type,
            time,
            data,
            correlationid,
            traceparent,
        )
    }

    /// Decodes a Kafka value (structured JSON) into a typed event.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let raw: CloudEvent<serde_json::Value> =
            serde_json::from_slice(bytes).map_err(DecodeError::Envelope)?;
        if raw.specversion != SPEC_VERSION {
            return Err(DecodeError::SpecVersion(raw.specversion));
        }
        let event_type = raw.event_type;
        let data = OrderEventData::from_json(event_type, raw.data)
            .map_err(|source| DecodeError::Data { event_type, source })?;
        Ok(CloudEvent {
            specversion: raw.specversion,
            id: raw.id,
            source: raw.source,
            event_type,
            subject: raw.subject,
            time: raw.time,
            datacontenttype: raw.datacontenttype,
            dataschema: raw.dataschema,
            correlationid: raw.correlationid,
            traceparent: raw.traceparent,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip_through_from_str_and_serde() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert!(
                t.dataschema()
                    .ends_with(&format!("{}.v{}", t, t.schema_version()))
            );
        }
        assert!("order.deleted".parse::<EventType>().is_err());
    }
}
