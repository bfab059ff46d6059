//! One order's journey: every step it took across the proxy, the order service, its outbox,
//! Kafka, sap-sync and SAP, with times, found by its order number, order id or a correlation
//! id of one of its requests.
//!
//! The key is widened as the sources answer: the tail and the proxy's write record turn a
//! correlation id into the order's number and id, the order service adds the SAP number, and
//! every source is then asked for all of them. Each source that cannot answer (Kafka not
//! configured, SAP down, sap-sync without the order) is listed in `unavailable` with the reason;
//! the journey is still answered.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::admin::AdminState;
use crate::insight::tail::TailEvent;
use crate::insight::writes;
use crate::routing::routes::{Mode, SALES_ORDERS};
use crate::upstreams::upstream::Upstream;

/// Most replay entries read when looking for an order's (the log is normally near empty).
const REPLAYS_SCANNED: usize = 10_000;
/// Most tail events of one order put in a journey.
const EVENTS_PER_ORDER: usize = 500;

/// The journey answer.
#[derive(Debug, Clone, Serialize)]
pub struct Journey {
    /// The key asked for.
    pub query: String,
    /// The order number, when found.
    pub order_number: Option<String>,
    /// The order id, when found.
    pub order_id: Option<String>,
    /// The steps, oldest first.
    pub steps: Vec<Step>,
    /// The sources that could not answer, and why.
    pub unavailable: Vec<Unavailable>,
}

/// One step of the journey.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// When.
    pub at: DateTime<Utc>,
    /// `proxy`, `order-service`, `outbox`, `kafka`, `sap-sync` or `sap`.
    pub system: &'static str,
    /// A short sentence.
    pub step: String,
    /// The facts behind it.
    pub detail: Value,
}

/// A source that could not answer.
#[derive(Debug, Clone, Serialize)]
pub struct Unavailable {
    /// The system.
    pub system: &'static str,
    /// Why.
    pub reason: String,
}

#[derive(Default)]
struct Keys {
    all: Vec<String>,
    number: Option<String>,
    id: Option<String>,
}

impl Keys {
    fn add(&mut self, v: Option<&str>) {
        if let Some(v) = v.map(str::trim).filter(|v| !v.is_empty())
            && !self.all.iter().any(|k| k.eq_ignore_ascii_case(v))
        {
            self.all.push(v.to_owned());
        }
    }
    fn hit(&self, v: Option<&str>) -> bool {
        v.is_some_and(|v| self.all.iter().any(|k| k.eq_ignore_ascii_case(v)))
    }
    fn learn_event(&mut self, e: &TailEvent) {
        self.add(e.order_number.as_deref());
        self.add(e.order_id.as_deref());
        self.add(e.correlation_id.as_deref());
        if self.number.is_none() {
            self.number.clone_from(&e.order_number);
        }
        if self.id.is_none() {
            self.id.clone_from(&e.order_id);
        }
    }
}

/// Builds the journey of the order `key` names.
pub async fn trace(state: &AdminState, key: &str) -> Journey {
    let mut keys = Keys::default();
    keys.add(Some(key));
    let mut unavailable = Vec::new();
    let tail = &state.insight.tail;

    // 1. Widen the key from what the proxy holds: the tail and its own write record.
    for e in tail.search(Some(key), EVENTS_PER_ORDER) {
        keys.learn_event(&e);
    }
    for w in writes::writes_for(&keys.all.clone()) {
        keys.add(Some(&w.correlation_id));
        keys.add(w.order_number.as_deref());
        if keys.number.is_none() {
            keys.number.clone_from(&w.order_number);
        }
    }
    if keys.number.is_none()
        && let Some(n) = writes::notes_for(&keys.all)
            .iter()
            .find_map(|n| n.order_number.clone())
    {
        keys.add(Some(&n));
        keys.number = Some(n);
    }

    // 2. The order service: by id, else by number, else by the key itself.
    let mut steps = Vec::new();
    let order = order_from_service(state, &keys, key).await;
    match order {
        Ok(Some(o)) => {
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            keys.add(text("id").as_deref());
            keys.add(text("order_number").as_deref());
            keys.add(text("sap_order_number").as_deref());
            keys.id = keys.id.clone().or_else(|| text("id"));
            keys.number = text("order_number").or(keys.number.clone());
            order_service_steps(&o, &mut steps);
        }
        Ok(None) => unavailable.push(Unavailable {
            system: "order-service",
            reason: "the order service has no order under this key".into(),
        }),
        Err(e) => unavailable.push(Unavailable {
            system: "order-service",
            reason: e,
        }),
    }

    // 3. The tail again with every key: the outbox rows (event time) and the records on Kafka.
    if tail.enabled() {
        let mut seen = std::collections::HashSet::new();
        let mut events: Vec<Arc<TailEvent>> = Vec::new();
        for k in keys.all.clone() {
            for e in tail.search(Some(&k), EVENTS_PER_ORDER) {
                if seen.insert((e.partition, e.offset)) {
                    keys.learn_event(&e);
                    events.push(e);
                }
            }
        }
        let status = tail.status();
        if events.is_empty() {
            let reason = match (&status.error, status.connected) {
                (Some(e), _) => format!("the event tail holds no event of this order ({e})"),
                (None, false) => "the event tail is not connected to Kafka yet".to_owned(),
                (None, true) => format!(
                    "the event tail ({} events held) has no event of this order",
                    status.held
                ),
            };
            unavailable.push(Unavailable {
                system: "kafka",
                reason,
            });
        }
        for e in events {
            event_steps(&e, &mut steps);
        }
    } else {
        for system in ["outbox", "kafka"] {
            unavailable.push(Unavailable {
                system,
                reason: "no event tail: PROXY_KAFKA_BROKERS is not configured".into(),
            });
        }
    }

    // 4. The proxy: its writes, decisions, landed replays and what is still in the replay log.
    proxy_steps(state, &keys, &mut steps, &mut unavailable).await;

    // 5. sap-sync and SAP, by order number.
    match &keys.number {
        Some(number) => {
            sap_sync_steps(state, number, &mut steps, &mut unavailable).await;
            sap_steps(state, number, &mut steps, &mut unavailable).await;
        }
        None => {
            for system in ["sap-sync", "sap"] {
                unavailable.push(Unavailable {
                    system,
                    reason: "no order number is known for this key".into(),
                });
            }
        }
    }

    steps.sort_by_key(|s| s.at);
    Journey {
        query: key.to_owned(),
        order_number: keys.number,
        order_id: keys.id,
        steps,
        unavailable,
    }
}

fn looks_like_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

async fn order_from_service(
    state: &AdminState,
    keys: &Keys,
    key: &str,
) -> Result<Option<Value>, String> {
    let id = keys
        .id
        .clone()
        .or_else(|| looks_like_uuid(key).then(|| key.to_owned()));
    if let Some(id) = id
        && let Some(o) = get_json(&state.order_upstream, &format!("/api/v1/orders/{id}")).await?
    {
        return Ok(Some(o));
    }
    let number = keys.number.clone().unwrap_or_else(|| key.to_owned());
    if number.is_empty() || number.len() > 64 || !number.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Ok(None);
    }
    state
        .orders
        .by_number(&number)
        .await
        .map_err(|e| format!("the order service did not answer: {e}"))
}

/// `GET path` on `up`: the JSON on 2xx, `None` on 404 (or 400: not a valid key there).
async fn get_json(up: &Upstream, path: &str) -> Result<Option<Value>, String> {
    let (status, bytes) = up.get(path).await?;
    if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::BAD_REQUEST {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!("{} answered {status} to GET {path}", up.name()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{} answered no JSON: {e}", up.name()))
}

fn time_of(v: &Value, field: &str) -> Option<DateTime<Utc>> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn order_service_steps(o: &Value, steps: &mut Vec<Step>) {
    let detail = json!({
        "id": o.get("id"),
        "order_number": o.get("order_number"),
        "status": o.get("status"),
        "version": o.get("version"),
        "sap_order_number": o.get("sap_order_number"),
        "created_at": o.get("created_at"),
        "updated_at": o.get("updated_at"),
    });
    let number = o.get("order_number").and_then(Value::as_str).unwrap_or("?");
    let created = time_of(o, "created_at");
    if let Some(at) = created {
        steps.push(Step {
            at,
            system: "order-service",
            step: format!("order {number} created in the order service"),
            detail: detail.clone(),
        });
    }
    if let Some(at) = time_of(o, "updated_at")
        && Some(at) != created
    {
        let sap = match o.get("sap_order_number").and_then(Value::as_str) {
            Some(s) => format!(", linked to SAP order {s}"),
            None => ", not linked to an SAP order".to_owned(),
        };
        steps.push(Step {
            at,
            system: "order-service",
            step: format!(
                "last changed: status {}, version {}{sap}",
                o.get("status").and_then(Value::as_str).unwrap_or("?"),
                o.get("version").and_then(Value::as_i64).unwrap_or(0)
            ),
            detail,
        });
    }
}

fn event_steps(e: &TailEvent, steps: &mut Vec<Step>) {
    let kind = e.event_type.as_deref().unwrap_or("an unknown event");
    let version = e
        .version
        .map_or(String::new(), |v| format!(" (version {v})"));
    let detail = json!({
        "event_id": e.event_id, "type": e.event_type, "version": e.version,
        "partition": e.partition, "offset": e.offset, "correlation_id": e.correlation_id,
        "event_time": e.event_time, "timestamp": e.timestamp,
    });
    if let Some(at) = e.event_time {
        steps.push(Step {
            at,
            system: "outbox",
            step: format!("{kind}{version} committed to the outbox with the change"),
            detail: detail.clone(),
        });
    }
    if let Some(at) = e.timestamp {
        steps.push(Step {
            at,
            system: "kafka",
            step: format!(
                "{kind}{version} published on partition {} at offset {}",
                e.partition, e.offset
            ),
            detail,
        });
    }
}

fn short_path(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

async fn proxy_steps(
    state: &AdminState,
    keys: &Keys,
    steps: &mut Vec<Step>,
    unavailable: &mut Vec<Unavailable>,
) {
    for w in writes::writes_for(&keys.all) {
        steps.push(Step {
            at: w.at,
            system: "proxy",
            step: format!(
                "{} {} received in {}; answered {} after {} ms",
                w.method,
                short_path(&w.path),
                w.mode.unwrap_or("no mode"),
                w.status,
                w.duration_ms
            ),
            detail: serde_json::to_value(&w).unwrap_or(Value::Null),
        });
    }
    for n in writes::notes_for(&keys.all) {
        let step = match n.kind {
            "dual_write" => format!(
                "dual write decided: {} (outcome table row {})",
                n.detail["outcome"].as_str().unwrap_or("?"),
                n.detail["row"].as_str().unwrap_or("?")
            ),
            "replay_landed" => format!(
                "replay {} landed after {} attempt(s)",
                n.detail["kind"].as_str().unwrap_or("?"),
                n.detail["attempts"].as_u64().unwrap_or(0)
            ),
            other => other.to_owned(),
        };
        steps.push(Step {
            at: n.at,
            system: "proxy",
            step,
            detail: n.detail.clone(),
        });
    }
    match state.store.list_replays_page(None, REPLAYS_SCANNED).await {
        Ok(entries) => {
            for e in entries
                .into_iter()
                .filter(|e| keys.hit(Some(&e.correlation_id)) || keys.hit(e.kind.order_number()))
            {
                steps.push(Step {
                    at: e.created_at,
                    system: "proxy",
                    step: format!(
                        "replay {} logged, {:?} after {} attempt(s)",
                        e.kind.label(),
                        e.state,
                        e.attempts
                    )
                    .to_lowercase(),
                    detail: json!({
                        "replay_id": e.id, "kind": e.kind.label(), "state": e.state,
                        "attempts": e.attempts, "next_attempt_at": e.next_attempt_at,
                        "last_error": e.last_error, "correlation_id": e.correlation_id,
                    }),
                });
            }
        }
        Err(e) => unavailable.push(Unavailable {
            system: "proxy",
            reason: format!("the replay log could not be read: {e}"),
        }),
    }
}

async fn sap_sync_steps(
    state: &AdminState,
    number: &str,
    steps: &mut Vec<Step>,
    unavailable: &mut Vec<Unavailable>,
) {
    let Some(up) = &state.sap_sync else {
        unavailable.push(Unavailable {
            system: "sap-sync",
            reason: "no sap-sync is configured (SAP_SYNC_URL)".into(),
        });
        return;
    };
    match get_json(up, &format!("/orders/{number}")).await {
        Ok(Some(v)) => {
            let applied = v
                .get("applied")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if applied.is_empty() {
                unavailable.push(Unavailable {
                    system: "sap-sync",
                    reason: "sap-sync has applied no event of this order lately".into(),
                });
            }
            for a in applied {
                let Some(at) = time_of(&a, "at") else {
                    continue;
                };
                steps.push(Step {
                    at,
                    system: "sap-sync",
                    step: format!(
                        "{} (version {}) {} in SAP",
                        a["type"].as_str().unwrap_or("event"),
                        a["version"],
                        a["outcome"].as_str().unwrap_or("applied")
                    ),
                    detail: a,
                });
            }
        }
        Ok(None) => unavailable.push(Unavailable {
            system: "sap-sync",
            reason: "sap-sync holds nothing about this order (it applies events only in \
                     `events` mode, and remembers the recent ones)"
                .into(),
        }),
        Err(e) => unavailable.push(Unavailable {
            system: "sap-sync",
            reason: e,
        }),
    }
}

/// A JSON date of SAP's (`/Date(1764547200000)/`, `/Date(1764547200000+0000)/`).
/// SAP's `/Date(ms)/` or `/Date(ms+0000)/` (the `sap-odata` contract's decoding).
fn sap_date(v: &Value) -> Option<DateTime<Utc>> {
    let d = sap_odata::date::JsonDate::parse(v.as_str()?).ok()?;
    Utc.timestamp_millis_opt(d.millis).single()
}

async fn sap_steps(
    state: &AdminState,
    number: &str,
    steps: &mut Vec<Step>,
    unavailable: &mut Vec<Unavailable>,
) {
    let mode = state.routes.snapshot(SALES_ORDERS).map(|r| r.mode);
    if mode == Some(Mode::Retired) {
        unavailable.push(Unavailable {
            system: "sap",
            reason: "the sales-orders route is retired: SAP is no longer fed, so it is not read"
                .into(),
        });
        return;
    }
    let Some(sap) = &state.insight.sap else {
        unavailable.push(Unavailable {
            system: "sap",
            reason: "no SAP client is configured for the journey".into(),
        });
        return;
    };
    match sap.read_by_key(number, None).await {
        Ok(Some(found)) => {
            let v: Value = serde_json::from_slice(&found.entity_body).unwrap_or(Value::Null);
            let d = &v["d"];
            let items = d["to_Item"]["results"].as_array().map_or(0, Vec::len);
            let created = sap_date(&d["CreationDate"]);
            let changed = sap_date(&d["LastChangeDateTime"]);
            let detail = json!({
                "SalesOrder": found.sales_order,
                "CreationDate": created,
                "LastChangeDateTime": changed,
                "items": items,
                "OverallSDProcessStatus": d.get("OverallSDProcessStatus"),
                "OverallDeliveryStatus": d.get("OverallDeliveryStatus"),
                "PurchaseOrderByCustomer": d.get("PurchaseOrderByCustomer"),
            });
            // CreationDate is a day; LastChangeDateTime has the time of the last change (the
            // create itself for an order never changed).
            if let Some(at) = changed.or(created) {
                steps.push(Step {
                    at,
                    system: "sap",
                    step: format!(
                        "SAP holds sales order {} with {items} item(s) (created on {}, last changed at this time)",
                        found.sales_order,
                        created.map_or("?".to_owned(), |c| c.format("%Y-%m-%d").to_string())
                    ),
                    detail,
                });
            }
        }
        Ok(None) => unavailable.push(Unavailable {
            system: "sap",
            reason: format!("SAP has no sales order {number}"),
        }),
        Err(e) => unavailable.push(Unavailable {
            system: "sap",
            reason: format!("SAP could not be read: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sap_json_dates_with_and_without_offset_are_read() {
        let at = Utc.timestamp_millis_opt(1_764_547_200_000).single();
        assert_eq!(sap_date(&json!("/Date(1764547200000)/")), at);
        assert_eq!(sap_date(&json!("/Date(1764547200000+0000)/")), at);
        assert_eq!(sap_date(&json!("/Date(x)/")), None);
        assert_eq!(sap_date(&json!(17)), None);
    }
}
