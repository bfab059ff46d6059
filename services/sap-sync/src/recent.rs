//! What sap-sync did lately with each order's events, for an order's journey (the proxy's
//! `GET /admin/v1/journey/{key}`, `orderctl trace`): a bounded in-memory ring, served as
//! `GET /orders/{number}`. Process-wide, like the metrics; lost at restart (the durable facts
//! are in SAP and in the state topic).

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Most outcomes held (the oldest are dropped first).
pub const HELD: usize = 20_000;

/// One event's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// When the outcome was known.
    pub at: DateTime<Utc>,
    /// The order id.
    pub order_id: String,
    /// The order number (SAP's key).
    pub order_number: String,
    /// SAP's number of the order, when it differs or is linked (a backfilled order).
    pub sap_number: Option<String>,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The order version the event carries.
    pub version: i64,
    /// `applied`, `duplicate`, `not_for_sap`, `superseded`, `parked`, `waiting_behind_parked`.
    pub outcome: &'static str,
    /// The correlation id.
    pub correlation_id: String,
    /// Kafka partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

static RING: Mutex<VecDeque<Outcome>> = Mutex::new(VecDeque::new());

/// Records an outcome.
pub fn record(outcome: Outcome) {
    let mut r = RING.lock().unwrap_or_else(|p| p.into_inner());
    if r.len() >= HELD {
        r.pop_front();
    }
    r.push_back(outcome);
}

/// The outcomes held for order `key` (its number, id or SAP number), oldest first.
pub fn of_order(key: &str) -> Vec<Outcome> {
    RING.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|o| {
            o.order_number.eq_ignore_ascii_case(key)
                || o.order_id.eq_ignore_ascii_case(key)
                || o.sap_number
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(key))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orders_outcomes_are_found_by_number_or_id_and_only_its_own() {
        let o = |n: &str, v| Outcome {
            at: Utc::now(),
            order_id: format!("id-{n}"),
            order_number: n.to_owned(),
            sap_number: None,
            event_type: "order.created".into(),
            version: v,
            outcome: "applied",
            correlation_id: "c".into(),
            partition: 0,
            offset: v,
        };
        record(o("recent-test-1", 1));
        record(o("recent-test-2", 1));
        record(o("recent-test-1", 2));
        let mine = of_order("recent-test-1");
        assert_eq!(
            mine.iter().map(|o| o.version).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(of_order("ID-recent-test-2").len(), 1);
        assert!(of_order("recent-test-3").is_empty());
    }
}
