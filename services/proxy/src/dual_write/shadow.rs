//! Shadow reads in `dual-write`: SAP answers the client; a copy of SAP's answer to an
//! entity-by-key read is compared, after the client has it, with what the order service holds
//! for the same SAP number. The match rate is a readiness criterion for leaving dual-write.
//!
//! Only the fields both systems own are compared (customer, reference, currency, and per item
//! material, quantity, unit), and only those present in SAP's answer (a `$select` narrows it).
//! The comparison never delays or changes the client's answer: the body is teed while it
//! streams, and the comparison runs in a task of its own.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::serve::body::{BoxError, ProxyBody};
use crate::upstreams::order_client::OrderService;

/// Largest SAP answer copied for comparison.
const MAX_COPY: usize = 1024 * 1024;

/// Result of one shadow comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowResult {
    /// Same values.
    Match,
    /// Different values in these fields.
    Mismatch(Vec<String>),
    /// The order service has no order with this SAP number.
    Missing,
    /// The two differed, and the order service's order changed around SAP's answer: a change
    /// crossed the read (SAP answered before or after it landed there), so the comparison says
    /// nothing about drift. Not counted in the match rate; counted on its own.
    Changed(Vec<String>),
}

/// Shadow comparison counts since start, and the latest differences.
#[derive(Debug, Default)]
pub struct ShadowStats {
    matched: AtomicU64,
    mismatched: AtomicU64,
    missing: AtomicU64,
    changed: AtomicU64,
    recent: Mutex<VecDeque<ShadowDifference>>,
    /// When a dual-write change of an order last came through this proxy, by SAP number.
    changes: Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
    /// Size of `changes` at which it is next pruned of changes older than the window.
    prune_at: std::sync::atomic::AtomicUsize,
}

/// Fewest noted changes before `changes` is pruned.
const PRUNE_AT_LEAST: usize = 4096;

/// Differences kept for the console.
const RECENT_DIFFERENCES: usize = 50;

/// One field that differed, with both values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldDifference {
    /// SAP's property (`to_Item[0].RequestedQuantity`).
    pub field: String,
    /// SAP's value.
    pub sap: String,
    /// The order service's value (empty when it has none).
    pub new: String,
}

/// A comparison that did not match: the order, when, and field by field.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShadowDifference {
    /// SAP's order number.
    pub sales_order: String,
    /// When it was compared.
    pub at: chrono::DateTime<chrono::Utc>,
    /// `mismatch` or `missing` (no order with that number in the order service).
    pub result: &'static str,
    /// The fields that differ (empty for `missing`).
    pub fields: Vec<FieldDifference>,
}

impl ShadowStats {
    /// (matched, compared) since start.
    pub fn counts(&self) -> (u64, u64) {
        let m = self.matched.load(Ordering::Relaxed);
        let total =
            m + self.mismatched.load(Ordering::Relaxed) + self.missing.load(Ordering::Relaxed);
        (m, total)
    }

    /// Notes that a dual-write change of `sales_order` is on its way (SAP first, then the
    /// order service).
    pub fn note_change(&self, sales_order: &str) {
        let now = tokio::time::Instant::now();
        let mut m = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        // Pruned when it has doubled since the last pruning, so a burst of changes to many
        // orders costs one pass per doubling, not one per change.
        if m.len() >= self.prune_at.load(Ordering::Relaxed) {
            m.retain(|_, at| now.duration_since(*at) < CROSSING_WINDOW);
            self.prune_at
                .store((m.len() * 2).max(PRUNE_AT_LEAST), Ordering::Relaxed);
        }
        m.insert(sales_order.to_owned(), now);
    }

    /// Whether a change of `sales_order` came through since `since`.
    fn changed_since(&self, sales_order: &str, since: tokio::time::Instant) -> bool {
        let m = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        m.get(sales_order).is_some_and(|at| *at >= since)
    }

    /// Comparisons a change crossed ([`ShadowResult::Changed`]), left out of [`Self::counts`].
    pub fn crossed(&self) -> u64 {
        self.changed.load(Ordering::Relaxed)
    }

    /// The latest differences, newest first.
    pub fn recent(&self) -> Vec<ShadowDifference> {
        let q = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().rev().cloned().collect()
    }

    fn remember(&self, d: ShadowDifference) {
        let mut q = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == RECENT_DIFFERENCES {
            q.pop_front();
        }
        q.push_back(d);
    }

    fn record(&self, r: &ShadowResult, sales_order: &str, fields: Vec<FieldDifference>) {
        let label = match r {
            ShadowResult::Match => {
                self.matched.fetch_add(1, Ordering::Relaxed);
                "match"
            }
            ShadowResult::Mismatch(fields) => {
                self.mismatched.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sales_order, ?fields, "shadow_mismatch");
                "mismatch"
            }
            ShadowResult::Missing => {
                self.missing.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sales_order, "shadow_missing");
                "missing"
            }
            ShadowResult::Changed(fields) => {
                self.changed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(sales_order, ?fields, "shadow_crossed_by_a_change");
                "changed"
            }
        };
        if label == "mismatch" || label == "missing" {
            self.remember(ShadowDifference {
                sales_order: sales_order.to_owned(),
                at: chrono::Utc::now(),
                result: label,
                fields,
            });
        }
        metrics::counter!("proxy_shadow_reads_total", "result" => label).increment(1);
    }
}

/// A body that passes frames through and, at the end, hands a copy to `done`.
pub struct Tee {
    inner: ProxyBody,
    copy: BytesMut,
    done: Option<oneshot::Sender<Bytes>>,
}

impl Tee {
    /// Wraps `inner`; the receiver gets the whole body once it has been sent to the client.
    pub fn new(inner: ProxyBody) -> (Self, oneshot::Receiver<Bytes>) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                inner,
                copy: BytesMut::new(),
                done: Some(tx),
            },
            rx,
        )
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    if this.copy.len() + d.len() <= MAX_COPY {
                        this.copy.extend_from_slice(d);
                    } else {
                        this.done = None; // too large: no comparison
                    }
                }
                if this.inner.is_end_stream()
                    && let Some(tx) = this.done.take()
                {
                    let _ = tx.send(std::mem::take(&mut this.copy).freeze());
                }
            }
            Poll::Ready(None) => {
                if let Some(tx) = this.done.take() {
                    let _ = tx.send(std::mem::take(&mut this.copy).freeze());
                }
            }
            Poll::Ready(Some(Err(_))) => this.done = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How SAP's answer body is encoded (SAP's ICM gzips answers for clients that accept it when
/// HTTP compression is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// Something the comparison cannot read.
    Other,
}

impl Encoding {
    /// The encoding an answer's headers declare.
    pub fn of(headers: &http::HeaderMap) -> Self {
        match headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
        {
            None => Encoding::Identity,
            Some(v) if v.trim().eq_ignore_ascii_case("identity") => Encoding::Identity,
            Some(v) if v.trim().eq_ignore_ascii_case("gzip") => Encoding::Gzip,
            Some(_) => Encoding::Other,
        }
    }

    /// The body as sent before encoding (at most [`MAX_COPY`] bytes), if it can be read.
    pub fn decode(self, body: Bytes) -> Option<Bytes> {
        use std::io::Read;
        match self {
            Encoding::Identity => Some(body),
            Encoding::Other => None,
            Encoding::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(body.as_ref())
                    .take(MAX_COPY as u64 + 1)
                    .read_to_end(&mut out)
                    .ok()?;
                (out.len() <= MAX_COPY).then(|| Bytes::from(out))
            }
        }
    }
}

/// Further look-ups of an order not found (yet) by its SAP number, and the pause before each.
const MISSING_LOOKUPS: u32 = 5;
const MISSING_LOOKUP_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// Further reads of the order service after a difference, and the pause before each. Dual
/// write changes SAP first and the order service next, so a read SAP answers in between
/// differs for a moment; the order service then catches up.
const MISMATCH_RECHECKS: u32 = 5;
const MISMATCH_RECHECK_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// How long before the comparison began a dual-write change of the order still counts as
/// crossing SAP's answer: the change goes to SAP, then to the order service (directly, or
/// through the replay log after a retry).
const CROSSING_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Compares SAP's entity with the order service's order for the same SAP number, records the
/// result, and returns it. A body that cannot be read is counted as unreadable, never silently
/// skipped.
///
/// A difference is looked at again ([`MISMATCH_RECHECKS`]): it is a mismatch only if it stays,
/// and no dual-write change of the order came through this proxy around SAP's answer (within
/// [`CROSSING_WINDOW`] before the comparison began, or during it). With such a change it is
/// [`ShadowResult::Changed`]: SAP may have answered before the change, so the difference is the
/// change, not drift. A difference on an order nobody changes through this proxy (a fresh
/// create included, and changes through another replica) stays a mismatch.
pub async fn compare(
    sap_body: Bytes,
    encoding: Encoding,
    orders: Arc<dyn OrderService>,
    stats: Arc<ShadowStats>,
) -> Option<ShadowResult> {
    let began = tokio::time::Instant::now();
    let Some(v) = encoding
        .decode(sap_body)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        metrics::counter!("proxy_shadow_reads_total", "result" => "unreadable").increment(1);
        tracing::warn!("shadow_unreadable: SAP's answer could not be read for comparison");
        return None;
    };
    let entity = v.get("d")?;
    let number = entity.get("SalesOrder")?.as_str()?.to_owned();
    let query = format!("sap_order_number={number}&limit=1");
    let mut found = orders.list(&query).await.ok()?;
    // The proxy links SAP's number to the new order right after answering the client, so a
    // client that reads its order at once (SAP's SDK: create, then read by key) is compared
    // before the link lands. Look again for a moment before calling the order missing (this
    // runs after the client has its answer).
    for _ in 0..MISSING_LOOKUPS {
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(MISSING_LOOKUP_PAUSE).await;
        found = orders.list(&query).await.ok()?;
    }
    let (result, fields) = match found.into_iter().next() {
        None => (ShadowResult::Missing, Vec::new()),
        Some(mut order) => {
            let mut fields = diff_values(entity, &order);
            for _ in 0..MISMATCH_RECHECKS {
                if fields.is_empty() {
                    break;
                }
                tokio::time::sleep(MISMATCH_RECHECK_PAUSE).await;
                match orders
                    .list(&query)
                    .await
                    .ok()
                    .and_then(|f| f.into_iter().next())
                {
                    Some(again) => order = again,
                    None => break,
                }
                fields = diff_values(entity, &order);
            }
            let names: Vec<String> = fields.iter().map(|f| f.field.clone()).collect();
            let crossed =
                stats.changed_since(&number, began.checked_sub(CROSSING_WINDOW).unwrap_or(began));
            if !names.is_empty() && crossed {
                (ShadowResult::Changed(names), fields)
            } else {
                (ShadowResult::from_diff(names), fields)
            }
        }
    };
    stats.record(&result, &number, fields);
    Some(result)
}

fn norm_decimal(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

/// The fields that differ between SAP's entity and the order (only fields SAP's answer has).
pub fn diff(sap: &Value, order: &Value) -> Vec<String> {
    diff_values(sap, order)
        .into_iter()
        .map(|d| d.field)
        .collect()
}

/// [`diff`] with both values of every field that differs.
pub fn diff_values(sap: &Value, order: &Value) -> Vec<FieldDifference> {
    let mut out = Vec::new();
    let same = |sv: &str, ov: &str, decimal: bool| {
        if decimal {
            norm_decimal(sv) == norm_decimal(ov)
        } else {
            sv == ov
        }
    };
    // What SAP derives (currency, amounts) is compared too: the new side must hold SAP's values.
    let pairs = [
        ("SoldToParty", "customer_id", false),
        ("PurchaseOrderByCustomer", "customer_reference", false),
        ("TransactionCurrency", "currency", false),
        ("TotalNetAmount", "total_net_amount", true),
    ];
    for (s, o, decimal) in pairs {
        if let Some(sv) = sap.get(s).and_then(Value::as_str) {
            let ov = order.get(o).and_then(Value::as_str).unwrap_or("");
            if !same(sv, ov, decimal) {
                out.push(FieldDifference {
                    field: s.to_owned(),
                    sap: sv.to_owned(),
                    new: ov.to_owned(),
                });
            }
        }
    }
    let sap_items = sap
        .get("to_Item")
        .and_then(|i| i.get("results").or(Some(i)))
        .and_then(Value::as_array);
    let order_items = order.get("items").and_then(Value::as_array);
    if let (Some(si), Some(oi)) = (sap_items, order_items) {
        if si.len() != oi.len() {
            out.push(FieldDifference {
                field: "to_Item".to_owned(),
                sap: format!("{} lines", si.len()),
                new: format!("{} lines", oi.len()),
            });
        } else {
            for (n, (s, o)) in si.iter().zip(oi).enumerate() {
                for (sk, ok, decimal) in [
                    ("Material", "sku", false),
                    ("RequestedQuantity", "quantity", true),
                    ("RequestedQuantityUnit", "unit", false),
                    ("NetAmount", "net_amount", true),
                ] {
                    if let Some(sv) = s.get(sk).and_then(Value::as_str) {
                        let ov = o.get(ok).and_then(Value::as_str).unwrap_or("");
                        if !same(sv, ov, decimal) {
                            out.push(FieldDifference {
                                field: format!("to_Item[{n}].{sk}"),
                                sap: sv.to_owned(),
                                new: ov.to_owned(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

impl ShadowResult {
    /// From a diff.
    pub fn from_diff(fields: Vec<String>) -> Self {
        if fields.is_empty() {
            ShadowResult::Match
        } else {
            ShadowResult::Mismatch(fields)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstreams::order_client::fake::FakeOrders;
    use serde_json::json;

    fn fake(answers: Vec<Value>) -> Arc<FakeOrders> {
        Arc::new(FakeOrders::listing(answers))
    }

    fn sap_answer(quantity: &str) -> Bytes {
        Bytes::from(
            json!({"d": {"SalesOrder": "7", "SoldToParty": "17100001",
                "to_Item": {"results": [{"Material": "TG11", "RequestedQuantity": quantity}]}}})
            .to_string(),
        )
    }

    fn new_side(quantity: &str) -> Value {
        json!({"customer_id": "17100001",
               "items": [{"sku": "TG11", "quantity": quantity}]})
    }

    #[tokio::test(start_paused = true)]
    async fn noted_changes_older_than_the_window_are_pruned_once_per_doubling() {
        let stats = ShadowStats::default();
        for i in 0..PRUNE_AT_LEAST {
            stats.note_change(&format!("old-{i}"));
        }
        tokio::time::advance(CROSSING_WINDOW * 2).await;
        for i in 0..2 * PRUNE_AT_LEAST {
            stats.note_change(&format!("new-{i}"));
        }
        // Pruned at 4 096 (all fresh, none gone) and at 8 192 (the old 4 096 gone).
        let len = stats.changes.lock().unwrap().len();
        assert!(len <= 2 * PRUNE_AT_LEAST, "{len}");
        assert!(!stats.changed_since("old-1", tokio::time::Instant::now() - CROSSING_WINDOW * 3));
        assert!(stats.changed_since("new-1", tokio::time::Instant::now() - CROSSING_WINDOW));
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_crossing_the_read_is_no_mismatch_and_lasting_drift_is_one() {
        let compare_with = |sap: Bytes, orders: Arc<FakeOrders>, stats: Arc<ShadowStats>| {
            compare(sap, Encoding::Identity, orders, stats)
        };
        let stats = Arc::new(ShadowStats::default());

        // SAP already has quantity 3, the order service gets it a moment later: a match.
        let orders = fake(vec![new_side("2"), new_side("2"), new_side("3")]);
        let r = compare_with(sap_answer("3"), orders.clone(), stats.clone()).await;
        assert_eq!(r, Some(ShadowResult::Match));
        assert_eq!(orders.reads.load(Ordering::SeqCst), 3);

        // SAP answered 2 before a change to 3 (through this proxy) reached both.
        stats.note_change("7");
        let orders = fake(vec![new_side("3")]);
        let r = compare_with(sap_answer("2"), orders, stats.clone()).await;
        assert_eq!(
            r,
            Some(ShadowResult::Changed(vec![
                "to_Item[0].RequestedQuantity".into()
            ]))
        );

        // A difference on an order nobody changed stays after every look: a mismatch.
        let stats_of_another = Arc::new(ShadowStats::default());
        let orders = fake(vec![new_side("2")]);
        let r = compare_with(sap_answer("3"), orders.clone(), stats_of_another.clone()).await;
        assert!(matches!(r, Some(ShadowResult::Mismatch(_))), "{r:?}");
        assert_eq!(stats_of_another.counts(), (0, 1));
        // The same on an order changed through this proxy long before.
        tokio::time::advance(CROSSING_WINDOW * 2).await;
        let orders = fake(vec![new_side("2")]);
        let r = compare_with(sap_answer("3"), orders.clone(), stats.clone()).await;
        assert_eq!(
            r,
            Some(ShadowResult::Mismatch(vec![
                "to_Item[0].RequestedQuantity".into()
            ]))
        );
        assert_eq!(
            orders.reads.load(Ordering::SeqCst),
            1 + u64::from(MISMATCH_RECHECKS)
        );

        // The rate counts the match and the mismatch; the crossed one on its own, and only
        // the mismatch among the differences shown.
        assert_eq!(stats.counts(), (1, 2));
        assert_eq!(stats.crossed(), 1);
        let recent = stats.recent();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].result, "mismatch");
    }

    #[test]
    fn equal_orders_match_even_with_differently_padded_decimals() {
        let sap = json!({"SoldToParty": "17100001", "PurchaseOrderByCustomer": "PO-1",
            "TransactionCurrency": "EUR",
            "to_Item": {"results": [{"Material": "TG11", "RequestedQuantity": "2", "RequestedQuantityUnit": "PC"}]}});
        let order = json!({"customer_id": "17100001", "customer_reference": "PO-1", "currency": "EUR",
            "items": [{"sku": "TG11", "quantity": "2.000", "unit": "PC"}]});
        assert_eq!(
            ShadowResult::from_diff(diff(&sap, &order)),
            ShadowResult::Match
        );
    }

    #[test]
    fn a_different_quantity_or_missing_item_is_a_mismatch_naming_the_field() {
        let sap = json!({"SoldToParty": "17100001",
            "to_Item": {"results": [{"Material": "TG11", "RequestedQuantity": "3"}]}});
        let order = json!({"customer_id": "17100001", "items": [{"sku": "TG11", "quantity": "2"}]});
        assert_eq!(diff(&sap, &order), ["to_Item[0].RequestedQuantity"]);
        let fewer = json!({"customer_id": "17100001", "items": []});
        assert_eq!(diff(&sap, &fewer), ["to_Item"]);
    }

    #[test]
    fn fields_absent_from_a_narrowed_sap_answer_are_not_compared() {
        let sap = json!({"SalesOrder": "1"});
        let order = json!({"customer_id": "x"});
        assert!(diff(&sap, &order).is_empty());
    }

    #[test]
    fn amounts_sap_derived_and_the_new_side_lacks_are_a_mismatch() {
        let sap = json!({"TransactionCurrency": "EUR", "TotalNetAmount": "25.00",
            "to_Item": {"results": [{"Material": "TG11", "RequestedQuantity": "2",
                "RequestedQuantityUnit": "PC", "NetAmount": "25.00"}]}});
        let lacking = json!({"currency": "EUR", "total_net_amount": null,
            "items": [{"sku": "TG11", "quantity": "2", "unit": "PC", "net_amount": null}]});
        assert_eq!(
            diff(&sap, &lacking),
            vec![
                "TotalNetAmount".to_owned(),
                "to_Item[0].NetAmount".to_owned()
            ]
        );
        let priced = json!({"currency": "EUR", "total_net_amount": "25.0",
            "items": [{"sku": "TG11", "quantity": "2", "unit": "PC", "net_amount": "25"}]});
        assert!(diff(&sap, &priced).is_empty());
    }
}
