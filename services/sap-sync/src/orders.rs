//! The order service as sap-sync uses it: the current version of an order (so an event that a
//! later one supersedes is not applied after it), and the backward direction's writes (statuses
//! and rejections SAP reports).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use serde_json::{Value, json};

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

    async fn send(&self, r: reqwest::RequestBuilder) -> Result<Option<Value>, OrdersError> {
        let resp = r
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OrdersError::Unavailable(e.to_string()))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| OrdersError::Unavailable(e.to_string()))?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if status.is_client_error() {
            return Err(OrdersError::Refused(status.as_u16(), text));
        }
        if !status.is_success() {
            return Err(OrdersError::Unavailable(format!("{status}: {text}")));
        }
        Ok(Some(serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// The current versions of `order_ids` (one call; unknown ids are left out).
    pub async fn versions(
        &self,
        order_ids: &[String],
    ) -> Result<HashMap<String, i64>, OrdersError> {
        let answer = self
            .send(
                self.http
                    .post(format!("{}/api/v1/order-versions", self.base))
                    .json(&json!({ "order_ids": order_ids })),
            )
            .await?
            .unwrap_or(Value::Null);
        Ok(answer["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["order_id"].as_str()?.to_owned(), v["version"].as_i64()?)))
            .collect())
    }

    /// The order by its number; `None` when unknown.
    pub async fn by_number(&self, number: &str) -> Result<Option<Value>, OrdersError> {
        self.send(
            self.http
                .get(format!("{}/api/v1/orders/by-number/{number}", self.base)),
        )
        .await
    }

    /// Reports a status SAP shows (`delivered`, `billed`); idempotent on the service's side.
    pub async fn report_status(
        &self,
        order_id: &str,
        status: &str,
        correlation_id: &str,
    ) -> Result<(), OrdersError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/orders/{order_id}/status", self.base))
                .header("x-correlation-id", correlation_id)
                .json(&json!({"status": status, "source": "sap"})),
        )
        .await
        .map(|_| ())
    }

    /// Sets a line's rejection reason as a clerk set it in SAP (`""` lifts it).
    pub async fn reject_item(
        &self,
        order_id: &str,
        version: i64,
        item_number: &str,
        reason: &str,
        correlation_id: &str,
    ) -> Result<(), OrdersError> {
        let reason = if reason.is_empty() {
            Value::Null
        } else {
            json!(reason)
        };
        self.send(
            self.http
                .patch(format!(
                    "{}/api/v1/orders/{order_id}/items/{item_number}",
                    self.base
                ))
                .header("if-match", format!("W/\"{version}\""))
                .header("x-correlation-id", correlation_id)
                .json(&json!({ "rejection_reason": reason })),
        )
        .await
        .map(|_| ())
    }
}

/// Largest look-up the order service takes at once.
const MAX_LOOKUP: usize = 500;

type Ask = (String, oneshot::Sender<Result<Option<i64>, String>>);

/// Versions asked by many workers at once, answered by one call per batch. An event's version
/// is asked when it is fetched and read when a worker takes it, which during a drain is
/// hundreds of events later: so a batch is sent once a worker waits for an answer, once it is
/// full, or after [`LINGER`], whichever comes first. Under load one call serves many events
/// (a trickle of asks as workers free room in the queue would otherwise go out a few ids at a
/// time, each a round trip to the order service and a query); an event a worker waits for
/// goes out at once.
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
                let mut ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
                ids.sort_unstable();
                ids.dedup();
                metrics::histogram!("sap_sync_version_lookup_batch").record(ids.len() as f64);
                let answer = orders.versions(&ids).await.map_err(|e| e.to_string());
                for (id, reply) in batch {
                    let _ = reply.send(match &answer {
                        Ok(v) => Ok(v.get(&id).copied()),
                        Err(e) => Err(e.clone()),
                    });
                }
            }
        });
        Self { tx, wanted }
    }

    /// Asks for the order's current version now; the answer comes with the batch it joins.
    pub fn ask(&self, order_id: &str) -> Asked {
        let (reply, answer) = oneshot::channel();
        // A send fails only once the batching task is gone; the answer then says so.
        let _ = self.tx.send((order_id.to_owned(), reply));
        Asked {
            answer,
            wanted: self.wanted.clone(),
        }
    }

    /// The order's current version in the order service (`None`: unknown there).
    pub async fn get(&self, order_id: &str) -> Result<Option<i64>, String> {
        self.ask(order_id).answer().await
    }
}

/// A version asked for and not yet read ([`Versions::ask`]).
pub struct Asked {
    answer: oneshot::Receiver<Result<Option<i64>, String>>,
    wanted: Arc<Notify>,
}

impl Asked {
    /// The answer (`None`: the order service does not know the order). Not there yet: the
    /// batch it waits in goes out now.
    pub async fn answer(mut self) -> Result<Option<i64>, String> {
        match self.answer.try_recv() {
            Ok(a) => return a,
            Err(oneshot::error::TryRecvError::Closed) => {
                return Err("version look-up stopped".to_owned());
            }
            Err(oneshot::error::TryRecvError::Empty) => self.wanted.notify_one(),
        }
        self.answer
            .await
            .map_err(|_| "version look-up stopped".to_owned())?
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
            asked.push(versions.ask(&format!("order-{i}")));
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
        assert_eq!(versions.get("order-1").await, Ok(Some(7)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The order service down: the answer says so (the event is then applied).
        let down = Versions::start(Orders::new("http://127.0.0.1:9").unwrap());
        assert!(down.get("order-1").await.is_err());
    }
}
