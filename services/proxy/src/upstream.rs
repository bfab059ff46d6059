//! One upstream (SAP or the order service): a pooled keep-alive HTTP/1.1 client with a timeout,
//! a circuit breaker, a concurrency bound and a latency histogram.
//!
//! The layers apply in this order, outermost first, and the order matters:
//! 1. the breaker, so an upstream known to be down costs nothing (no wait, no connection);
//! 2. the timeout, which covers waiting for a concurrency slot *and* the call, so a saturated
//!    upstream cannot hold a request longer than the timeout;
//! 3. the concurrency bound, so a slow upstream cannot absorb unbounded connections;
//! 4. the pooled client.

use std::cell::Cell;
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;

use crate::body::ProxyBody;
use crate::breaker::{Breaker, BreakerState};
use crate::error::UpstreamFailure;

/// Settings of one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Label in logs and metrics (`sap`, `order-service`).
    pub name: &'static str,
    /// Base URL.
    pub base: Uri,
    /// Time allowed until the response head.
    pub timeout: Duration,
    /// Failures that open the breaker.
    pub breaker_failures: u32,
    /// Breaker cool-down.
    pub breaker_cooldown: Duration,
    /// Calls in flight at once.
    pub max_concurrency: usize,
    /// Proxy worker threads (each gets a connection pool of its own).
    pub workers: usize,
}

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the current thread as proxy worker `index`: its upstream calls use that worker's own
/// connection pool, so a request and its upstream connection live on one thread (no
/// cross-thread wake-ups, the way nginx workers keep their own upstream connections).
pub fn set_worker_index(index: usize) {
    WORKER.with(|w| w.set(Some(index)));
}

/// A configured upstream.
#[derive(Debug)]
pub struct Upstream {
    name: &'static str,
    scheme: Scheme,
    authority: Authority,
    prefix: String,
    /// One pool per worker thread, plus one for every other thread (admin, replays).
    clients: Vec<Client<HttpConnector, ProxyBody>>,
    timeout: Duration,
    breaker: Breaker,
    slots: Semaphore,
    /// Latency histograms by outcome, registered once (no key building per call).
    histograms: [metrics::Histogram; 5],
}

const OUTCOMES: [&str; 5] = [
    "response",
    "server_error",
    "timeout",
    "connect_error",
    "broken",
];

/// Records the breaker outcome exactly once, even when the caller's future is dropped (a probe
/// abandoned half-way must not leave the breaker half-open for ever).
struct BreakerGuard<'a> {
    breaker: &'a Breaker,
    done: bool,
}

impl BreakerGuard<'_> {
    fn record(mut self, success: bool) {
        self.done = true;
        self.breaker.record(success);
    }
}

impl Drop for BreakerGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(false);
        }
    }
}

impl Upstream {
    /// Builds the client (no connection is made yet).
    pub fn new(s: UpstreamSettings) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        connector.set_connect_timeout(Some(s.timeout));
        let clients = (0..=s.workers)
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector.clone())
            })
            .collect();
        let parts = s.base.clone().into_parts();
        let prefix = parts
            .path_and_query
            .as_ref()
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Self {
            name: s.name,
            scheme: parts.scheme.unwrap_or(Scheme::HTTP),
            authority: parts.authority.expect("config validated the authority"),
            prefix,
            clients,
            timeout: s.timeout,
            breaker: Breaker::new(s.breaker_failures, s.breaker_cooldown),
            slots: Semaphore::new(s.max_concurrency),
            histograms: OUTCOMES.map(|o| {
                metrics::histogram!("proxy_upstream_duration_seconds", "upstream" => s.name, "outcome" => o)
            }),
        }
    }

    fn client(&self) -> &Client<HttpConnector, ProxyBody> {
        let last = self.clients.len() - 1;
        let i = WORKER.with(Cell::get).map_or(last, |i| i.min(last));
        &self.clients[i]
    }

    /// The label of this upstream.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The upstream's authority (`host:port`).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The full URI for a path-and-query as the client sent it.
    pub fn uri_for(&self, path_and_query: &str) -> Uri {
        let pq = if self.prefix.is_empty() {
            path_and_query.to_owned()
        } else {
            format!("{}{}", self.prefix, path_and_query)
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(
                pq.parse::<PathAndQuery>()
                    .unwrap_or_else(|_| PathAndQuery::from_static("/")),
            )
            .build()
            .expect("scheme, authority and path make a URI")
    }

    /// The full URI for a client's request URI; without a base path prefix the client's
    /// path-and-query is reused as is (no copy, no re-parse).
    pub fn uri_for_client(&self, uri: &Uri) -> Uri {
        match uri.path_and_query() {
            Some(pq) if self.prefix.is_empty() => Uri::builder()
                .scheme(self.scheme.clone())
                .authority(self.authority.clone())
                .path_and_query(pq.clone())
                .build()
                .expect("scheme, authority and path make a URI"),
            Some(pq) => self.uri_for(pq.as_str()),
            None => self.uri_for("/"),
        }
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Sends one request. A 5xx answer counts as a breaker failure but is returned as a
    /// response: what it means is the caller's decision.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, UpstreamFailure> {
        if !self.breaker.allow() {
            metrics::counter!("proxy_upstream_breaker_rejections_total", "upstream" => self.name)
                .increment(1);
            return Err(UpstreamFailure::BreakerOpen);
        }
        let guard = BreakerGuard {
            breaker: &self.breaker,
            done: false,
        };
        let start = Instant::now();
        let call = async {
            let _slot = self.slots.acquire().await.expect("semaphore never closed");
            self.client().request(req).await
        };
        let result = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(UpstreamFailure::Timeout),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamFailure::Connect(error_chain(&e))),
            Ok(Err(e)) => Err(UpstreamFailure::Broken(error_chain(&e))),
            Ok(Ok(resp)) => Ok(resp),
        };
        match &result {
            Ok(resp) => {
                let ok = !resp.status().is_server_error();
                guard.record(ok);
                self.histograms[if ok { 0 } else { 1 }].record(start.elapsed().as_secs_f64());
            }
            Err(f) => {
                guard.record(false);
                let i = match f {
                    UpstreamFailure::Timeout => 2,
                    UpstreamFailure::Connect(_) => 3,
                    _ => 4,
                };
                self.histograms[i].record(start.elapsed().as_secs_f64());
            }
        }
        result
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
