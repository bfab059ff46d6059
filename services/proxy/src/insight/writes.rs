//! A bounded in-memory record of the recent writes on the SAP face (creates and changes of
//! the sales order route; never reads, and nothing on the lean pass-through path), of the
//! dual-write decisions and of the replays that landed: the proxy's part of an order's journey.
//!
//! Process-wide, like the outcome counters in [`crate::observe`], so the request path needs no
//! new state to record into; one proxy process serves one stack.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Most write requests held.
pub const WRITES_HELD: usize = 10_000;
/// Most dual-write decisions and landed replays held.
pub const NOTES_HELD: usize = 10_000;

/// One write request on the SAP face.
#[derive(Debug, Clone, Serialize)]
pub struct WriteRecord {
    /// When the request arrived (its head was read).
    pub at: DateTime<Utc>,
    /// The effective method (`X-HTTP-Method` resolved).
    pub method: String,
    /// The path.
    pub path: String,
    /// The route's mode for this request.
    pub mode: Option<&'static str>,
    /// The status the client got.
    pub status: u16,
    /// The request's correlation id.
    pub correlation_id: String,
    /// The order number: the key in a change's path, or the `Location` of a create's answer.
    pub order_number: Option<String>,
    /// How long the proxy took, milliseconds.
    pub duration_ms: u64,
}

/// Something the proxy decided or finished for a write after the fact.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// When.
    pub at: DateTime<Utc>,
    /// `dual_write` (a decision of the outcome table) or `replay_landed`.
    pub kind: &'static str,
    /// The correlation id of the client request.
    pub correlation_id: String,
    /// The order number, when known.
    pub order_number: Option<String>,
    /// What: the outcome class and table row, or the replay's kind and attempts.
    pub detail: serde_json::Value,
}

/// A write request seen at its start, recorded when its answer is ready.
#[derive(Debug)]
pub struct PendingWrite {
    received: DateTime<Utc>,
    method: String,
    path: String,
    correlation_id: String,
}

impl PendingWrite {
    /// Notes a write request. A request without a correlation id gets one in
    /// `X-Correlation-ID` here, so the dual write, the order service, the outbox and Kafka
    /// carry the same id this record does.
    pub fn begin<B>(req: &mut http::Request<B>) -> Self {
        let headers = req.headers();
        let had = headers.contains_key(&platform::correlation::CORRELATION_HEADER)
            || headers.contains_key(&platform::correlation::IDEMPOTENCY_HEADER);
        let correlation_id = platform::correlation::correlation_from_headers(headers).0;
        if !had && let Ok(v) = http::HeaderValue::from_str(&correlation_id) {
            req.headers_mut()
                .insert(platform::correlation::CORRELATION_HEADER, v);
        }
        let method = crate::face::write::effective_method(req.method(), req.headers());
        Self {
            received: Utc::now(),
            method: method.to_string(),
            path: req.uri().path().to_owned(),
            correlation_id,
        }
    }

    /// The write's correlation id (the client's, or the one given it here).
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Records the write with the answer the client gets.
    pub fn finish<B>(
        self,
        mode: Option<&'static str>,
        resp: &http::Response<B>,
        start: std::time::Instant,
    ) {
        let order_number = number_in_path(&self.path).or_else(|| {
            resp.headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(number_in_path)
        });
        record_write(WriteRecord {
            at: self.received,
            method: self.method,
            path: self.path,
            mode,
            status: resp.status().as_u16(),
            correlation_id: self.correlation_id,
            order_number,
            duration_ms: start.elapsed().as_millis() as u64,
        });
    }
}

static WRITES: Mutex<VecDeque<WriteRecord>> = Mutex::new(VecDeque::new());
static NOTES: Mutex<VecDeque<Note>> = Mutex::new(VecDeque::new());

fn push<T>(ring: &Mutex<VecDeque<T>>, held: usize, item: T) {
    let mut r = ring.lock().unwrap_or_else(|p| p.into_inner());
    if r.len() >= held {
        r.pop_front();
    }
    r.push_back(item);
}

/// Records a write request.
pub fn record_write(record: WriteRecord) {
    push(&WRITES, WRITES_HELD, record);
}

/// Records a note.
pub fn note(
    kind: &'static str,
    correlation_id: &str,
    order_number: Option<&str>,
    detail: serde_json::Value,
) {
    push(
        &NOTES,
        NOTES_HELD,
        Note {
            at: Utc::now(),
            kind,
            correlation_id: correlation_id.to_owned(),
            order_number: order_number.map(str::to_owned),
            detail,
        },
    );
}

/// Write requests whose order number or correlation id is one of `keys` (ignoring case),
/// oldest first.
pub fn writes_for(keys: &[String]) -> Vec<WriteRecord> {
    let hit = |v: &str| keys.iter().any(|k| k.eq_ignore_ascii_case(v));
    WRITES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|w| hit(&w.correlation_id) || w.order_number.as_deref().is_some_and(hit))
        .cloned()
        .collect()
}

/// Notes whose order number or correlation id is one of `keys` (ignoring case), oldest first.
pub fn notes_for(keys: &[String]) -> Vec<Note> {
    let hit = |v: &str| keys.iter().any(|k| k.eq_ignore_ascii_case(v));
    NOTES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|n| hit(&n.correlation_id) || n.order_number.as_deref().is_some_and(hit))
        .cloned()
        .collect()
}

/// The sales order number in a path such as `.../A_SalesOrder('4711')` or
/// `.../A_SalesOrderItem(SalesOrder='4711',SalesOrderItem='10')`.
pub fn number_in_path(path: &str) -> Option<String> {
    let (_, rest) = path.split_once("A_SalesOrder")?;
    let open = rest.find('(')?;
    let inner = &rest[open + 1..];
    let inner = &inner[..inner.find(')')?];
    let value = inner
        .split(',')
        .find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k.trim() == "SalesOrder" => Some(v),
            Some(_) => None,
            None => Some(kv),
        })?
        .trim();
    let value = value.strip_prefix('\'')?.strip_suffix('\'')?;
    (!value.is_empty()).then(|| value.replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_number_is_found_in_entity_and_item_paths() {
        let root = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
        assert_eq!(
            number_in_path(&format!("{root}/A_SalesOrder('4711')")).as_deref(),
            Some("4711")
        );
        assert_eq!(
            number_in_path(&format!(
                "{root}/A_SalesOrderItem(SalesOrder='4711',SalesOrderItem='10')"
            ))
            .as_deref(),
            Some("4711")
        );
        assert_eq!(number_in_path(&format!("{root}/A_SalesOrder")), None);
        assert_eq!(number_in_path("/A_SalesOrder('')"), None);
        assert_eq!(number_in_path("/A_SalesOrder(é"), None);
    }
}
