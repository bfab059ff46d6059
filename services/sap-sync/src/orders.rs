//! The order service as sap-sync uses it: the current version of an order (so an event that a
//! later one supersedes is not applied after it), and the backward direction's writes (statuses
//! and rejections SAP reports).
//!
//! With traces on, every call is a CLIENT span (`{METHOD} {url.template}`,
//! `peer.service=order-service`) whose `traceparent` the request carries, so the order
//! service's server span is its child. A write-back hangs under the span it is made in (the
//! backward poll's, [`CallContext::traceparent`]); a version look-up under the span of the one
//! event it serves, or, serving several events at once, in a trace of its own with a link to
//! each event's span ([`Versions`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use platform::otel::{ActiveSpan, KeyValue, LinkTo, Parent, SpanKind};
use tokio::sync::{Notify, mpsc, oneshot};

use serde_json::{Value, json};

use crate::sap::CallContext;

/// The order service's REST API.
#[derive(Debug, Clone)]
pub struct Orders {
    http: reqwest::Client,
    base: String,
}

/// An order-service call that failed.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// Refused (4xx) with its problem detail.
    #[error("order service refused ({0}): {1}")]
    Refused(u16, String),
    /// No usable answer.
    #[error("order service unavailable: {0}")]
    Unavailable(String),
}

/// Where one call goes in the trace.
struct Call<'a> {
    /// The route called (`url.template`), which names the span.
    route: &'static str,
    /// The span it is made in (`None`: a trace of its own).
    parent: Option<&'a str>,
    /// Spans it is made for besides (a look-up serving several events).
    links: Vec<LinkTo<'a>>,
    /// More attributes (the order, the look-up's size).
    attributes: Vec<KeyValue>,
}

/// The CLIENT span of one call; `None` when traces are off.
fn client_span(req: &reqwest::Request, call: Call<'_>) -> Option<ActiveSpan> {
    if !platform::otel::enabled() {
        return None;
    }
    let url = req.url();
    let mut attributes = platform::otel::http_client_attributes(
        req.method(),
        url.as_str(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default(),
        "order-service",
        req.headers(),
    );
    attributes.push(KeyValue::new("url.template", call.route));
    attributes.extend(call.attributes);
    platform::otel::start_with_links(
        format!("{} {}", req.method(), call.route),
        SpanKind::Client,
        Parent::traceparent(call.parent),
        call.links,
        attributes,
    )
}

impl Orders {
    /// For `ORDER_SERVICE_URL`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends one call as [`Call`] says; with traces on as a CLIENT span whose `traceparent`
    /// (and the trace's `tracestate`) the request carries.
    async fn send(
        &self,
        r: reqwest::RequestBuilder,
        call: Call<'_>,
    ) -> Result<Option<Value>, OrdersError> {
        self.send_traced(r, call).await.0
    }

    /// As [`Orders::send`], with the `traceparent` of the call's span (traces on).
    async fn send_traced(
        &self,
        r: reqwest::RequestBuilder,
        call: Call<'_>,
    ) -> (Result<Option<Value>, OrdersError>, Option<String>) {
        let mut req = match r.header("accept", "application/json").build() {
            Ok(req) => req,
            Err(e) => return (Err(OrdersError::Unavailable(e.to_string())), None),
        };
        let span = client_span(&req, call);
        if let Some(span) = &span {
            span.inject(req.headers_mut());
        }
        let answer = self.exchange(req).await;
        if let Some(span) = &span {
            match &answer {
                Ok((status, _)) => span.set_http_status(*status, true),
                Err(e) => span.fail("unavailable", e.to_string()),
            }
        }
        (
            answer.and_then(|(status, text)| judge(status, text)),
            span.map(|s| s.traceparent()),
        )
    }

    /// The status and body text of one request.
    async fn exchange(&self, req: reqwest::Request) -> Result<(u16, String), OrdersError> {
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| OrdersError::Unavailable(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| OrdersError::Unavailable(e.to_string()))?;
        Ok((status, text))
    }

    /// The current versions of `order_ids` (one call; unknown ids are left out), the call a
    /// child of `parent` and linked to `links` (traces on); with the `traceparent` of the
    /// call's span.
    async fn versions(
        &self,
        order_ids: &[String],
        parent: Option<&str>,
        links: Vec<LinkTo<'_>>,
    ) -> (Result<HashMap<String, i64>, OrdersError>, Option<String>) {
        let (answer, call) = self
            .send_traced(
                self.http
                    .post(format!("{}/api/v1/order-versions", self.base))
                    .json(&json!({ "order_ids": order_ids })),
                Call {
                    route: "/api/v1/order-versions",
                    parent,
                    links,
                    attributes: vec![KeyValue::new(
                        "sap_sync.lookup.orders",
                        order_ids.len() as i64,
                    )],
                },
            )
            .await;
        let versions = answer.map(|a| {
            a.unwrap_or(Value::Null)["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| Some((v["order_id"].as_str()?.to_owned(), v["version"].as_i64()?)))
                .collect()
        });
        (versions, call)
    }

    /// The order by its number; `None` when unknown. Under `ctx`'s span.
    pub async fn by_number(
        &self,
        number: &str,
        ctx: &CallContext,
    ) -> Result<Option<Value>, OrdersError> {
        self.send(
            with_context(
                self.http
                    .get(format!("{}/api/v1/orders/by-number/{number}", self.base)),
                ctx,
            ),
            Call {
                route: "/api/v1/orders/by-number/{number}",
                parent: ctx.traceparent.as_deref(),
                links: Vec::new(),
                attributes: vec![KeyValue::new("order_number", number.to_owned())],
            },
        )
        .await
    }

    /// Reports a status SAP shows (`delivered`, `billed`); idempotent on the service's side.
    /// Under `ctx`'s span, with its correlation id.
    pub async fn report_status(
        &self,
        order_id: &str,
        status: &str,
        ctx: &CallContext,
    ) -> Result<(), OrdersError> {
        self.send(
            with_context(
                self.http
                    .post(format!("{}/api/v1/orders/{order_id}/status", self.base))
                    .json(&json!({"status": status, "source": "sap"})),
                ctx,
            ),
            Call {
                route: "/api/v1/orders/{id}/status",
                parent: ctx.traceparent.as_deref(),
                links: Vec::new(),
                attributes: vec![KeyValue::new("order_id", order_id.to_owned())],
            },
        )
        .await
        .map(|_| ())
    }

    /// Sets a line's rejection reason as a clerk set it in SAP (`""` lifts it). Under `ctx`'s
    /// span, with its correlation id.
    pub async fn reject_item(
        &self,
        order_id: &str,
        version: i64,
        item_number: &str,
        reason: &str,
        ctx: &CallContext,
    ) -> Result<(), OrdersError> {
        let reason = if reason.is_empty() {
            Value::Null
        } else {
            json!(reason)
        };
        self.send(
            with_context(
                self.http
                    .patch(format!(
                        "{}/api/v1/orders/{order_id}/items/{item_number}",
                        self.base
                    ))
                    .header("if-match", format!("W/\"{version}\""))
                    .json(&json!({ "rejection_reason": reason })),
                ctx,
            ),
            Call {
                route: "/api/v1/orders/{id}/items/{item}",
                parent: ctx.traceparent.as_deref(),
                links: Vec::new(),
                attributes: vec![KeyValue::new("order_id", order_id.to_owned())],
            },
        )
        .await
        .map(|_| ())
    }
}

/// What an answer means: the body (`None` for 404), or the failure.
fn judge(status: u16, text: String) -> Result<Option<Value>, OrdersError> {
    if status == 404 {
        return Ok(None);
    }
    if (400..500).contains(&status) {
        return Err(OrdersError::Refused(status, text));
    }
    if !(200..300).contains(&status) {
        return Err(OrdersError::Unavailable(format!("{status}: {text}")));
    }
    Ok(Some(serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// The correlation id of `ctx` on a request (its trace context is the call's span's, set when
/// it is sent).
fn with_context(r: reqwest::RequestBuilder, ctx: &CallContext) -> reqwest::RequestBuilder {
    match &ctx.correlation_id {
        Some(c) => r.header("x-correlation-id", c),
        None => r,
    }
}

/// Largest look-up the order service takes at once.
const MAX_LOOKUP: usize = 500;

/// The span a version is asked for, by its `traceparent` (traces on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskedFor {
    /// An event just fetched: the span that produced it (its creation context).
    Event(String),
    /// The span the asker is in (a worker handling the event).
    Span(String),
    /// No span known.
    Nothing,
}

impl AskedFor {
    fn traceparent(&self) -> Option<&str> {
        match self {
            AskedFor::Event(t) | AskedFor::Span(t) => Some(t),
            AskedFor::Nothing => None,
        }
    }
}

/// A version's answer, and the `traceparent` of the look-up's span (traces on).
type Answer = (Result<Option<i64>, String>, Option<String>);

struct Ask {
    order_id: String,
    asked_for: AskedFor,
    reply: oneshot::Sender<Answer>,
}

/// Where a batch's look-up goes in the trace: under the one span every ask of the batch names
/// (one event: its span is the parent, as the messaging conventions make the creation context
/// the parent of work on a single message), else in a trace of its own with a link to each
/// event's span (work done for a batch).
fn lookup_trace(batch: &[Ask]) -> (Option<&str>, Vec<LinkTo<'_>>) {
    let mut spans: Vec<(&str, &str)> = batch
        .iter()
        .filter_map(|a| Some((a.asked_for.traceparent()?, a.order_id.as_str())))
        .collect();
    spans.sort_unstable();
    spans.dedup_by(|a, b| a.0 == b.0);
    if let [(only, _)] = spans[..]
        && batch
            .iter()
            .all(|a| a.asked_for.traceparent() == Some(only))
    {
        return (Some(only), Vec::new());
    }
    let links = spans
        .into_iter()
        .map(|(traceparent, order_id)| LinkTo {
            traceparent,
            attributes: vec![KeyValue::new("order_id", order_id.to_owned())],
        })
        .collect();
    (None, links)
}

/// Versions asked by many workers at once, answered by one call per batch. An event's version
/// is asked when it is fetched and read when a worker takes it, which during a drain is
/// hundreds of events later: so a batch is sent once a worker waits for an answer, once it is
/// full, or after [`LINGER`], whichever comes first. Under load one call serves many events
/// (a trickle of asks as workers free room in the queue would otherwise go out a few ids at a
/// time, each a round trip to the order service and a query); an event a worker waits for
/// goes out at once.
///
/// With traces on, the call of a batch is a child of the span its asks name when they all name
/// the same one, and otherwise a span of its own linked to each event's span
/// ([`lookup_trace`]); each answer carries the call's `traceparent`, so the event's span can
/// link back to it.
#[derive(Clone)]
pub struct Versions {
    tx: mpsc::UnboundedSender<Ask>,
    wanted: Arc<Notify>,
}

/// Longest a version asked for waits for others to share its call when no one waits for it.
const LINGER: Duration = Duration::from_millis(50);

impl Versions {
    /// Starts the batching task (it ends when every handle is dropped).
    pub fn start(orders: Orders) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Ask>();
        let wanted = Arc::new(Notify::new());
        let orders = Arc::new(orders);
        let demand = wanted.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::sleep(LINGER);
                tokio::pin!(deadline);
                while batch.len() < MAX_LOOKUP {
                    // What is queued already joins without waiting.
                    if let Ok(a) = rx.try_recv() {
                        batch.push(a);
                        continue;
                    }
                    tokio::select! {
                        biased;
                        _ = demand.notified() => break,
                        _ = &mut deadline => break,
                        a = rx.recv() => match a {
                            Some(a) => batch.push(a),
                            None => break,
                        },
                    }
                }
                let mut ids: Vec<String> = batch.iter().map(|a| a.order_id.clone()).collect();
                ids.sort_unstable();
                ids.dedup();
                metrics::histogram!("sap_sync_version_lookup_batch").record(ids.len() as f64);
                let (parent, links) = lookup_trace(&batch);
                let (answer, call) = orders.versions(&ids, parent, links).await;
                let answer = answer.map_err(|e| e.to_string());
                for a in batch {
                    let version = match &answer {
                        Ok(v) => Ok(v.get(&a.order_id).copied()),
                        Err(e) => Err(e.clone()),
                    };
                    let _ = a.reply.send((version, call.clone()));
                }
            }
        });
        Self { tx, wanted }
    }

    /// Asks for the order's current version now, for `asked_for`; the answer comes with the
    /// batch it joins.
    pub fn ask(&self, order_id: &str, asked_for: AskedFor) -> Asked {
        let (reply, answer) = oneshot::channel();
        // A send fails only once the batching task is gone; the answer then says so.
        let _ = self.tx.send(Ask {
            order_id: order_id.to_owned(),
            asked_for,
            reply,
        });
        Asked {
            answer,
            wanted: self.wanted.clone(),
        }
    }

    /// The order's current version in the order service (`None`: unknown there), asked from
    /// within `asked_for`.
    pub async fn get(&self, order_id: &str, asked_for: AskedFor) -> Result<Option<i64>, String> {
        self.ask(order_id, asked_for).answer().await
    }
}

/// A version asked for and not yet read ([`Versions::ask`]).
pub struct Asked {
    answer: oneshot::Receiver<Answer>,
    wanted: Arc<Notify>,
}

impl Asked {
    /// The answer (`None`: the order service does not know the order). Not there yet: the
    /// batch it waits in goes out now.
    pub async fn answer(self) -> Result<Option<i64>, String> {
        self.answer_traced().await.0
    }

    /// As [`Asked::answer`], with the `traceparent` of the look-up's span (traces on).
    pub async fn answer_traced(mut self) -> Answer {
        match self.answer.try_recv() {
            Ok(a) => return a,
            Err(oneshot::error::TryRecvError::Closed) => {
                return (Err("version look-up stopped".to_owned()), None);
            }
            Err(oneshot::error::TryRecvError::Empty) => self.wanted.notify_one(),
        }
        match self.answer.await {
            Ok(a) => a,
            Err(_) => (Err("version look-up stopped".to_owned()), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stand-in for the order service's `POST /api/v1/order-versions`: every id it is asked
    /// about is at version 7, and it counts the calls and the ids per call.
    async fn fake_order_service() -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<usize>>>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, s) = (calls.clone(), sizes.clone());
        let app = axum::Router::new().route(
            "/api/v1/order-versions",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let (c, s) = (c.clone(), s.clone());
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    let ids = body["order_ids"].as_array().cloned().unwrap_or_default();
                    s.lock().unwrap().push(ids.len());
                    let versions: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"order_id": id, "version": 7}))
                        .collect();
                    axum::Json(json!({ "versions": versions }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls, sizes)
    }

    #[tokio::test]
    async fn versions_asked_while_no_one_waits_share_one_call() {
        let (url, calls, sizes) = fake_order_service().await;
        let versions = Versions::start(Orders::new(&url).unwrap());
        // Asked as a draining fetch asks them: one at a time as workers free room in the
        // queue (the batching task runs between two asks), and read much later.
        let mut asked = Vec::new();
        for i in 0..40 {
            asked.push(versions.ask(&format!("order-{i}"), AskedFor::Nothing));
            tokio::task::yield_now().await;
        }
        for a in asked {
            assert_eq!(a.answer().await, Ok(Some(7)));
        }
        // One call took them all (sent as each came, they would go out a few per call).
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "ids per call: {:?}",
            sizes.lock().unwrap()
        );
        assert_eq!(*sizes.lock().unwrap(), vec![40]);
    }

    #[tokio::test]
    async fn a_version_a_worker_waits_for_is_answered_and_an_unknown_order_is_none() {
        let (url, calls, _) = fake_order_service().await;
        let versions = Versions::start(Orders::new(&url).unwrap());
        assert_eq!(
            versions.get("order-1", AskedFor::Nothing).await,
            Ok(Some(7))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The order service down: the answer says so (the event is then applied).
        let down = Versions::start(Orders::new("http://127.0.0.1:9").unwrap());
        assert!(down.get("order-1", AskedFor::Nothing).await.is_err());
    }
}
