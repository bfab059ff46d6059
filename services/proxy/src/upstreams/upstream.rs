//! One upstream (SAP or the order service): pooled keep-alive HTTP/1.1 connections with a
//! timeout, a circuit breaker, a concurrency bound and a latency histogram.
//!
//! An `https://` upstream (SAP_URL, with the TLS configuration of `platform::tls`) gets each
//! new connection through a TLS handshake that verifies SAP's certificate and name; after
//! that the pool, the layers and hyper are the same. A plain `http://` upstream never touches
//! TLS: the connector is `None` and its only cost is one branch per new connection. The lean
//! path's raw sockets ([`RawConn`]) are plain only: the configuration turns that path off
//! when SAP is `https` (see `PROXY_FAST_PATH` in `config`).
//!
//! The layers apply in this order, outermost first, and the order matters:
//! 1. the breaker, so an upstream known to be down costs nothing (no wait, no connection);
//! 2. the timeout, which covers waiting for a concurrency slot *and* the call, so a saturated
//!    upstream cannot hold a request longer than the timeout;
//! 3. the concurrency bound, so a slow upstream cannot absorb unbounded connections;
//! 4. the connection pool.
//!
//! The pool is per thread (each proxy worker thread keeps its own idle connections, as each
//! nginx worker keeps its own upstream keep-alive cache): taking and returning a connection is a
//! push/pop on a thread-local list, no lock, no task. A connection goes back to the pool when
//! its response body has been read to the end (before that it is busy); one the server closed
//! while idle is skipped, and a request it refused before sending is retried on a fresh one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::error::{ClientBodyFault, UpstreamFailure};
use crate::serve::body::ProxyBody;
use crate::upstreams::breaker::{Breaker, BreakerState};

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
    /// TLS client configuration, for an `https` base URL (and only then).
    pub tls: Option<Arc<platform::tls::ClientConfig>>,
}

/// How new connections to an `https` upstream are secured.
struct Tls {
    connector: TlsConnector,
    /// The name SAP's certificate must carry (the base URL's host: a DNS name or an IP).
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Idle connections kept per upstream and thread.
const MAX_IDLE_PER_THREAD: usize = 512;

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// A thread's idle connections of one kind, by pool (one pool per upstream).
type IdleLists<T> = &'static std::thread::LocalKey<RefCell<HashMap<u64, Vec<T>>>>;

thread_local! {
    /// Connections driven by hyper (the hyper path's calls).
    static IDLE: RefCell<HashMap<u64, Vec<SendRequest<ProxyBody>>>> = RefCell::new(HashMap::new());
    /// Plain sockets (the lean pass-through path, [`crate::serve::h1`]).
    static RAW_IDLE: RefCell<HashMap<u64, Vec<RawConn>>> = RefCell::new(HashMap::new());
}

/// The most recently parked connection of `pool` on this thread.
fn unpark<T>(lists: IdleLists<T>, pool: u64) -> Option<T> {
    lists.with(|l| l.borrow_mut().get_mut(&pool)?.pop())
}

/// Parks a connection for reuse on this thread, unless the pool is full.
fn park<T>(lists: IdleLists<T>, pool: u64, conn: T) {
    lists.with(|l| {
        let mut l = l.borrow_mut();
        let list = l.entry(pool).or_default();
        if list.len() < MAX_IDLE_PER_THREAD {
            list.push(conn);
        }
    });
}

fn take_idle(pool: u64) -> Option<SendRequest<ProxyBody>> {
    std::iter::from_fn(|| unpark(&IDLE, pool)).find(|s| !s.is_closed())
}

fn put_idle(pool: u64, sender: SendRequest<ProxyBody>) {
    if !sender.is_closed() {
        park(&IDLE, pool, sender);
    }
}

/// A response body from an upstream; when it has been read to the end its connection returns
/// to the pool.
pub struct UpstreamBody {
    inner: Incoming,
    sender: Option<SendRequest<ProxyBody>>,
    pool: u64,
}

impl UpstreamBody {
    fn new(inner: Incoming, sender: SendRequest<ProxyBody>, pool: u64) -> Self {
        let mut b = Self {
            inner,
            sender: Some(sender),
            pool,
        };
        if b.inner.is_end_stream() {
            b.release();
        }
        b
    }

    fn release(&mut self) {
        if let Some(s) = self.sender.take() {
            put_idle(self.pool, s);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.sender = None,
            _ => {}
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

/// A configured upstream.
#[derive(Debug)]
pub struct Upstream {
    name: &'static str,
    scheme: Scheme,
    authority: Authority,
    host_header: HeaderValue,
    prefix: String,
    pool: u64,
    timeout: Duration,
    breaker: Breaker,
    slots: Semaphore,
    /// `Some` for an `https` upstream.
    tls: Option<Tls>,
    /// Latency histograms by outcome, registered once (no key building per call).
    histograms: [metrics::Histogram; 6],
}

const OUTCOMES: [&str; 6] = [
    "response",
    "server_error",
    "timeout",
    "connect_error",
    "broken",
    "tls_error",
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
    /// Prepares the upstream (no connection is made yet).
    ///
    /// # Panics
    ///
    /// When the base URL has no authority, or an `https` base URL comes without a TLS
    /// configuration or a host a certificate can name: the configuration checked both.
    pub fn new(s: UpstreamSettings) -> Self {
        let parts = s.base.clone().into_parts();
        let prefix = parts
            .path_and_query
            .as_ref()
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let authority = parts.authority.expect("config validated the authority");
        let scheme = parts.scheme.unwrap_or(Scheme::HTTP);
        let tls = (scheme == Scheme::HTTPS).then(|| {
            let config = s
                .tls
                .clone()
                .expect("config built the TLS settings of an https upstream");
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            Tls {
                connector: TlsConnector::from(config),
                server_name: ServerName::try_from(host.to_owned())
                    .expect("a URL's host is a DNS name or an IP address"),
            }
        });
        Self {
            name: s.name,
            tls,
            scheme,
            host_header: HeaderValue::from_str(authority.as_str()).expect("an authority is a valid header"),
            authority,
            prefix,
            pool: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            timeout: s.timeout,
            breaker: Breaker::new(s.breaker_failures, s.breaker_cooldown),
            slots: Semaphore::new(s.max_concurrency),
            histograms: OUTCOMES.map(|o| {
                metrics::histogram!("proxy_upstream_duration_seconds", "upstream" => s.name, "outcome" => o)
            }),
        }
    }

    async fn connect_stream(&self) -> Result<TcpStream, UpstreamFailure> {
        let host = self.authority.host();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        let port = self.authority.port_u16().unwrap_or(default_port);
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| UpstreamFailure::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self) -> Result<SendRequest<ProxyBody>, UpstreamFailure> {
        let stream = self.connect_stream().await?;
        match &self.tls {
            None => self.handshake(stream).await,
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .map_err(|e| {
                        UpstreamFailure::Tls(
                            platform::tls::tls_failure(&e).unwrap_or_else(|| error_chain(&e)),
                        )
                    })?;
                self.handshake(stream).await
            }
        }
    }

    /// HTTP/1.1 over an established stream (plain or TLS); the connection is driven by its
    /// own task.
    async fn handshake<S>(&self, stream: S) -> Result<SendRequest<ProxyBody>, UpstreamFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamFailure::Connect(error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Sends on a pooled connection (or a new one). A pooled connection that the server closed
    /// before the request went out gives the request back, and it is tried on another one.
    async fn call(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamFailure> {
        loop {
            let (mut sender, pooled) = match take_idle(self.pool) {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            if sender.ready().await.is_err() {
                if pooled {
                    continue;
                }
                return Err(UpstreamFailure::Broken(
                    "connection closed before use".into(),
                ));
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let pool = self.pool;
                    return Ok(resp.map(|b| UpstreamBody::new(b, sender, pool)));
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if pooled => req = back,
                    _ => return Err(classify_send_error(e.error())),
                },
            }
        }
    }

    /// `GET path` (`Accept: application/json`) for the admin side's reads of other services
    /// (the console, the journey): the status and the whole body, or why there was none.
    pub async fn get(&self, path: &str) -> Result<(http::StatusCode, Bytes), String> {
        let req = Request::get(self.uri_for(path))
            .header(http::header::ACCEPT, "application/json")
            .body(crate::serve::body::empty())
            .map_err(|e| e.to_string())?;
        let resp = self
            .send(req)
            .await
            .map_err(|e| format!("{} did not answer: {e}", self.name))?;
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| format!("{}'s answer was cut off: {e}", self.name))?
            .to_bytes();
        Ok((status, body))
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
        mut req: Request<ProxyBody>,
    ) -> Result<Response<UpstreamBody>, UpstreamFailure> {
        // HTTP/1.1 to an origin server: origin-form target, Host from the URI unless set.
        if !req.headers().contains_key(HOST) {
            req.headers_mut().insert(HOST, self.host_header.clone());
        }
        let origin = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(origin);
        let span = self.client_span(&mut req);
        let call = self.begin()?;
        let attempt = async {
            let _slot = self.slot().await;
            self.call(req).await
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => Err(UpstreamFailure::Timeout),
            Ok(r) => r,
        };
        match &result {
            Ok(resp) => call.answered(resp.status()),
            Err(UpstreamFailure::ClientBody(_)) => call.client_failed(),
            Err(f) => call.failed(f),
        }
        if let Some(span) = &span {
            match &result {
                Ok(resp) => span.set_http_status(resp.status().as_u16(), true),
                Err(f) => span.fail("upstream_failure", f.to_string()),
            }
        }
        result
    }

    /// With traces on: the CLIENT span of one call (a child of the span in effect: the
    /// request's server span, or a replay's span), whose `traceparent` replaces any the request
    /// carried, with the trace's `tracestate` (the client's, passed on). `None` when traces are
    /// off.
    fn client_span(&self, req: &mut Request<ProxyBody>) -> Option<platform::otel::ActiveSpan> {
        use platform::otel::KeyValue;
        if !platform::otel::enabled() {
            return None;
        }
        let mut attributes = vec![
            KeyValue::new("http.request.method", req.method().as_str().to_owned()),
            KeyValue::new("url.path", req.uri().path().to_owned()),
            KeyValue::new("server.address", self.authority.host().to_owned()),
            KeyValue::new("peer.service", self.name),
        ];
        if let Some(port) = self.authority.port_u16() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = platform::otel::start(
            format!("{} {}", req.method(), self.name),
            platform::otel::SpanKind::Client,
            platform::otel::Parent::Current,
            attributes,
        )?;
        span.inject(req.headers_mut());
        Some(span)
    }

    /// Starts a call: refused at once while the breaker is open; otherwise the returned
    /// [`Call`] records the outcome (breaker and latency histogram) exactly once.
    pub(crate) fn begin(&self) -> Result<Call<'_>, UpstreamFailure> {
        if !self.breaker.allow() {
            metrics::counter!("proxy_upstream_breaker_rejections_total", "upstream" => self.name)
                .increment(1);
            return Err(UpstreamFailure::BreakerOpen);
        }
        Ok(Call {
            upstream: self,
            guard: BreakerGuard {
                breaker: &self.breaker,
                done: false,
            },
            start: Instant::now(),
        })
    }

    /// One of the upstream's concurrency slots (waits while all are taken).
    pub(crate) async fn slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.slots.acquire().await.expect("semaphore never closed")
    }

    /// Time allowed until the response head.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The base URL's path, without a trailing slash (empty for none).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The `Host` header for requests to this upstream.
    pub(crate) fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// An idle raw connection of this thread's pool that still looks open (judged from the
    /// readiness the event loop already has, so no system call in the common case), or
    /// `None`.
    pub(crate) async fn take_raw(&self) -> Option<RawConn> {
        loop {
            let conn = unpark(&RAW_IDLE, self.pool)?;
            if conn.looks_open().await {
                return Some(conn);
            }
        }
    }

    /// A new raw connection (plain TCP: never used for an `https` upstream, see the module
    /// documentation; refused there rather than sending SAP's traffic in the clear).
    pub(crate) async fn connect_raw(&self) -> Result<RawConn, UpstreamFailure> {
        if self.tls.is_some() {
            return Err(UpstreamFailure::Tls(
                "the lean path has no TLS (PROXY_FAST_PATH is off for https)".into(),
            ));
        }
        Ok(RawConn {
            stream: self.connect_stream().await?,
            buf: BytesMut::with_capacity(RAW_BUFFER),
        })
    }

    /// Returns a raw connection whose last response was read to its end.
    pub(crate) fn put_raw(&self, conn: RawConn) {
        // Bytes nobody asked for: not a connection to reuse.
        if conn.buf.is_empty() {
            park(&RAW_IDLE, self.pool, conn);
        }
    }
}

/// A call in progress (see [`Upstream::begin`]). Dropped without an outcome (the caller gave
/// up), it counts as a breaker failure.
pub(crate) struct Call<'a> {
    upstream: &'a Upstream,
    guard: BreakerGuard<'a>,
    start: Instant,
}

impl Call<'_> {
    /// The upstream answered; a 5xx counts as a breaker failure.
    pub(crate) fn answered(self, status: http::StatusCode) {
        let ok = !status.is_server_error();
        self.guard.record(ok);
        self.upstream.histograms[if ok { 0 } else { 1 }].record(self.start.elapsed().as_secs_f64());
    }

    /// The client failed the call (its body stopped or broke off): SAP took the connection
    /// and the bytes, so this is no evidence against SAP and does not count towards opening
    /// the breaker.
    pub(crate) fn client_failed(self) {
        self.guard.record(true);
        self.upstream.histograms[4].record(self.start.elapsed().as_secs_f64());
    }

    /// The call failed without an answer.
    pub(crate) fn failed(self, f: &UpstreamFailure) {
        self.guard.record(false);
        let i = match f {
            UpstreamFailure::Timeout => 2,
            UpstreamFailure::Connect(_) => 3,
            UpstreamFailure::Tls(_) => 5,
            _ => 4,
        };
        self.upstream.histograms[i].record(self.start.elapsed().as_secs_f64());
    }
}

/// Read buffer size of a raw upstream connection.
const RAW_BUFFER: usize = 16 * 1024;

/// A plain keep-alive connection to an upstream, used by the lean pass-through path
/// ([`crate::serve::h1`]): the socket and the bytes read from it but not yet consumed.
#[derive(Debug)]
pub(crate) struct RawConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

impl RawConn {
    /// False when the server closed the connection (or sent bytes nobody asked for) while it
    /// was idle. The event loop learnt of either through the socket's readiness; only then is a
    /// read tried to tell them apart from a stale readiness flag.
    async fn looks_open(&self) -> bool {
        let readable =
            std::future::poll_fn(|cx| Poll::Ready(self.stream.poll_read_ready(cx).is_ready()))
                .await;
        if !readable {
            return true;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// What a failed send means: the client's own body failing while it streamed (the guard's
/// idle timeout or limit, or the client going away) is the client's fault, anything else broke
/// the upstream connection after the request was sent.
fn classify_send_error(e: &hyper::Error) -> UpstreamFailure {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(g) = c.downcast_ref::<crate::serve::body::BodyGuardError>() {
            return UpstreamFailure::ClientBody(match g {
                crate::serve::body::BodyGuardError::Idle(_) => ClientBodyFault::Stalled,
                crate::serve::body::BodyGuardError::TooLarge(n) => ClientBodyFault::TooLarge(*n),
            });
        }
        cur = c.source();
    }
    if e.is_user() {
        // hyper's own word for "the request body stream failed" (the client broke off).
        return UpstreamFailure::ClientBody(ClientBodyFault::Broken(error_chain(e)));
    }
    UpstreamFailure::Broken(error_chain(e))
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
