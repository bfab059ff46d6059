//! The client-facing listener and the request path, as named phases (pingora's habit):
//!
//! 1. **admit**: take a concurrency slot or shed load with an OData 503;
//! 2. **classify**: what the request is (sales order create, sales order read, anything else);
//! 3. **route**: snapshot the route's mode (a switch during the request does not affect it);
//! 4. **handle**: pass through, dual write, or answer from the order service;
//! 5. **log**: one latency observation per request, by route, mode and status.
//!
//! Connections are HTTP/1.1 with keep-alive; the head must arrive within the header timeout
//! (slow-loris guard). At shutdown the listener closes, in-flight requests finish within the
//! grace period, idle keep-alive connections are closed.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ProxyConfig;
use crate::dual_write::shadow::{self, ShadowStats, Tee};
use crate::error::ProxyError;
use crate::routing::routes::{Mode, RouteTable, SALES_ORDERS};
use crate::routing::sales_orders::{Operation, SalesOrders, classify};
use crate::serve::body::{ProxyBody, collect_limited};
use crate::serve::passthrough::{self, declared_length};
use crate::upstreams::order_client::OrderService;
use crate::upstreams::upstream::Upstream;
use http_body_util::BodyExt;

/// State of the client-facing side.
pub struct ProxyState {
    /// Configuration.
    pub config: Arc<ProxyConfig>,
    /// SAP.
    pub sap: Arc<Upstream>,
    /// Route table.
    pub routes: RouteTable,
    /// The sales order route's handlers.
    pub sales_orders: Arc<SalesOrders>,
    /// Request slots (shared with the admin API, which reports how many are taken).
    pub inflight: Arc<Semaphore>,
    /// The order service (shadow reads).
    pub orders: Arc<dyn OrderService>,
    /// Shadow read counts.
    pub shadow: Arc<ShadowStats>,
    /// SAP's session layer while the route is retired.
    pub sap_face: Arc<crate::face::session::SapFace>,
}

impl ProxyState {
    /// Handles one request: [`Self::handle_phases`] in its `request` log span (every line
    /// logged while serving it carries the correlation id, the order number once known, and
    /// with traces on the trace and span ids, as the order service's lines do), under an
    /// OpenTelemetry SERVER span when traces are on (a child of the client's `traceparent`
    /// with its `tracestate`, or a new trace), which the calls to SAP and the order service
    /// hang under ([`Upstream::send`]). The span ends when the answer's head is ready (a
    /// streamed body is not waited for).
    pub async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        use tracing::Instrument as _;
        let log_span = tracing::info_span!(
            "request",
            method = %req.method(),
            correlation_id = tracing::field::Empty,
            order_number = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        let server = if platform::otel::enabled() {
            server_span(&req)
        } else {
            None
        };
        let Some(span) = server else {
            return self.handle_phases(req).instrument(log_span).await;
        };
        log_span.record("trace_id", span.trace_id());
        log_span.record("span_id", span.span_id());
        use platform::otel::FutureExt as _;
        let resp = self
            .handle_phases(req)
            .with_context(span.context())
            .instrument(log_span)
            .await;
        span.set_http_status(resp.status().as_u16(), false);
        resp
    }

    /// Handles one request through the phases above.
    async fn handle_phases(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let start = Instant::now();
        // Phase 1: admit. The slot is held until the answer's body has been sent.
        let Ok(slot) = self.inflight.clone().try_acquire_owned() else {
            return ProxyError::Overloaded.to_response();
        };
        // Phase 2: classify.
        let op = classify(
            &crate::face::write::effective_method(req.method(), req.headers()),
            req.uri().path(),
        );
        // A write of the route is recorded for its journey (reads never are).
        let write = matches!(
            op,
            Operation::SalesOrderCreate | Operation::SalesOrderChange
        )
        .then(|| crate::insight::writes::PendingWrite::begin(&mut req));
        // The request's log span gets the correlation id (a write's, generated when the client
        // sent none; another request's only when the client sent one) and the order number of
        // a request by key.
        let correlation = match &write {
            Some(w) => Some(w.correlation_id().to_owned()),
            None => {
                let h = req.headers();
                (h.contains_key(&platform::correlation::CORRELATION_HEADER)
                    || h.contains_key(&platform::correlation::IDEMPOTENCY_HEADER))
                .then(|| platform::correlation::correlation_from_headers(h).0)
            }
        };
        if let Some(c) = correlation {
            tracing::Span::current().record("correlation_id", c.as_str());
        }
        if op != Operation::PassThrough
            && let Some(n) = crate::insight::writes::number_in_path(req.uri().path())
        {
            crate::observe::order_known(&n);
        }
        // Phase 2b: while the route is retired, SAP's session layer (client, logon, CSRF,
        // `$metadata`, service document) is the proxy's own.
        let session = match self.sap_face.gate(&req, &self.routes).await {
            crate::face::session::Gate::Answer(resp) => {
                observe(op, Some(Mode::Retired), resp.status().as_u16(), start);
                return resp;
            }
            crate::face::session::Gate::Proceed(session) => session,
        };
        // Phase 3: route.
        let route = match op {
            Operation::PassThrough => None,
            _ => self.routes.snapshot(SALES_ORDERS),
        };
        let mode = route.as_ref().map(|r| r.mode);
        let plan = self.plan(
            op,
            mode,
            req.uri().path(),
            req.headers()
                .contains_key(&platform::correlation::IDEMPOTENCY_HEADER),
        );
        // Phase 4: handle.
        let (parts, body) = req.into_parts();
        let resp = match (plan, route) {
            (Plan::BatchByParts, Some(route)) => self.batch_by_parts(parts, body, &route).await,
            (plan, route) => {
                self.serve_planned(plan, op, route.as_deref(), parts, Inbound::Streaming(body))
                    .await
            }
        };
        let mut resp = resp;
        if let Some(session) = session {
            session.apply(resp.headers_mut());
        }
        // Phase 5: log.
        observe(op, mode, resp.status().as_u16(), start);
        if let Some(w) = write {
            w.finish(mode.map(Mode::as_str), &resp, start);
        }
        if hyper::body::Body::is_end_stream(resp.body()) {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        Response::from_parts(
            parts,
            crate::serve::body::Holding::new(body, slot).boxed_unsync(),
        )
    }

    /// Phase 4 for one request (a whole request, or one part of a `$batch`): the handler its
    /// plan names. A `$batch` itself is served by [`Self::batch_by_parts`], which comes
    /// back here for each of its parts.
    pub(crate) async fn serve_planned(
        &self,
        plan: Plan,
        op: Operation,
        route: Option<&crate::routing::routes::Route>,
        parts: http::request::Parts,
        body: Inbound,
    ) -> Response<ProxyBody> {
        match (plan, route) {
            (Plan::BufferedCreate, Some(route)) => self.buffered_create(parts, body, route).await,
            (Plan::Refuse, route) => match op {
                Operation::Batch => ProxyError::NotSupported(format!(
                    "$batch is not available while the sales order route is in mode '{}'; send the requests one by one",
                    route.map_or("unknown", |r| r.mode.as_str())
                ))
                .to_response(),
                _ => crate::error::odata_error(
                    http::StatusCode::BAD_REQUEST,
                    "/IWFND/CM_MGW/025",
                    "The resource path could not be parsed",
                ),
            },
            // Only a part of a batch gets here: batches do not nest.
            (Plan::BatchByParts, _) => crate::error::odata_error(
                http::StatusCode::BAD_REQUEST,
                sap_odata::batch::BATCH_INVALID,
                "A $batch cannot be sent inside a $batch",
            ),
            (Plan::ShadowedRead, _) => self.shadowed_read(parts, body).await,
            (Plan::OrderServiceChange, _) => self.order_service_change(parts, body).await,
            (Plan::DualWriteChange, _) => self.dual_write_change(parts, body).await,
            (Plan::OrderServiceRead, route) => {
                use crate::face::read::Read;
                match self.sales_orders.read_from_order_service(&parts).await {
                    Read::Served(resp) => *resp,
                    Read::Untranslatable(_) if route.is_some_and(|r| r.mode == Mode::Events) => {
                        self.pass_through(parts, body).await
                    }
                    Read::Untranslatable(what) => crate::face::read::not_implemented(&what),
                }
            }
            _ => self.pass_through(parts, body).await,
        }
    }

    /// Phase 4's decision for a request: what handles it. The lean HTTP/1.1 path
    /// ([`crate::serve::h1`]) serves exactly the requests planned [`Plan::PassThrough`].
    pub(crate) fn plan(
        &self,
        op: Operation,
        mode: Option<Mode>,
        path: &str,
        has_idempotency_key: bool,
    ) -> Plan {
        match (op, mode) {
            // In legacy mode a create streams through unless an idempotency key (header or
            // natural) must be honoured, which needs the body and the answer in hand.
            (Operation::SalesOrderCreate, Some(m))
                if m != Mode::Legacy
                    || has_idempotency_key
                    || !self.config.natural_key_fields.is_empty() =>
            {
                Plan::BufferedCreate
            }
            (Operation::SalesOrderRead, Some(m))
                if m == Mode::DualWrite && is_entity_read(path) =>
            {
                Plan::ShadowedRead
            }
            (Operation::SalesOrderRead, Some(m)) if m >= Mode::Events => Plan::OrderServiceRead,
            (Operation::SalesOrderChange, Some(m)) if m >= Mode::Events => Plan::OrderServiceChange,
            // SAP is the system of record; the order service gets what SAP accepted. Legacy
            // leaves changes to SAP alone.
            (Operation::SalesOrderChange, Some(Mode::DualWrite)) => Plan::DualWriteChange,
            // From dual-write on, a batch's parts are served one by one as the same requests
            // alone would be: in dual-write each change is dual-written, each create buffered and
            // written to both, each read by key shadowed (SAP alone must not take a changeset
            // behind the dual write's back). Legacy is SAP alone anyway.
            (Operation::Batch, Some(m)) if m >= Mode::DualWrite => Plan::BatchByParts,
            (Operation::Batch | Operation::Malformed, Some(m)) if m != Mode::Legacy => Plan::Refuse,
            _ => Plan::PassThrough,
        }
    }

    async fn buffered_create(
        &self,
        parts: http::request::Parts,
        body: Inbound,
        route: &crate::routing::routes::Route,
    ) -> Response<ProxyBody> {
        let body = match self.whole_body(&parts, body).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        self.sales_orders.create(parts, body, route.clone()).await
    }

    /// A request body read whole within the limits: the whole body must arrive within the
    /// deadline, however it trickles, so a slow client does not hold a slot (and no upstream
    /// sees a request before its body is complete).
    pub(crate) async fn whole_body(
        &self,
        parts: &http::request::Parts,
        body: Inbound,
    ) -> Result<bytes::Bytes, Response<ProxyBody>> {
        let body = match body {
            Inbound::Whole(b) => return Ok(b),
            Inbound::Streaming(b) => b,
        };
        let collected = tokio::time::timeout(
            self.config.client_body_deadline,
            collect_limited(
                body,
                declared_length(&parts.headers),
                self.config.max_body_bytes,
                self.config.client_body_timeout,
            ),
        )
        .await;
        match collected {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) => Err(e.to_response()),
            Err(_) => Err(ProxyError::ClientTooSlow.to_response()),
        }
    }

    /// A change in `events`/`retired`: the body read whole (within the same limits as a
    /// create), then translated to the order service ([`crate::face::write`]).
    async fn order_service_change(
        &self,
        parts: http::request::Parts,
        body: Inbound,
    ) -> Response<ProxyBody> {
        let method = crate::face::write::effective_method(&parts.method, &parts.headers);
        let Some(change) = crate::face::write::change_of(
            &method,
            &crate::face::write::below_root(parts.uri.path()),
        ) else {
            return crate::error::odata_error(
                http::StatusCode::BAD_REQUEST,
                "/IWFND/CM_MGW/025",
                "The resource path could not be parsed",
            );
        };
        let body = match self.whole_body(&parts, body).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        self.sales_orders.change(&parts, change, body).await
    }

    /// A change in `dual-write`: the body read whole (within the same limits as a create),
    /// sent to SAP, and what SAP accepted applied to the order service too
    /// ([`crate::dual_write::change`]). A write the SAP face does not know goes to SAP alone.
    async fn dual_write_change(
        &self,
        parts: http::request::Parts,
        body: Inbound,
    ) -> Response<ProxyBody> {
        let method = crate::face::write::effective_method(&parts.method, &parts.headers);
        let resource = crate::face::write::below_root(parts.uri.path());
        let Some(change) = crate::face::write::change_of(&method, &resource) else {
            return self.pass_through(parts, body).await;
        };
        let body = match self.whole_body(&parts, body).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        // A shadow read of this order in the next moments may see SAP and the order service
        // apart while the change goes to one, then the other.
        self.shadow
            .note_change(crate::face::write::number_of(&change));
        self.sales_orders
            .dual_write_change(parts, change, method, resource, body)
            .await
    }

    /// A dual-write read by key: SAP answers, a copy is compared with the order service after
    /// the client has it.
    async fn shadowed_read(
        &self,
        parts: http::request::Parts,
        body: Inbound,
    ) -> Response<ProxyBody> {
        let resp = self.pass_through(parts, body).await;
        if resp.status() != http::StatusCode::OK {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let encoding = shadow::Encoding::of(&parts.headers);
        let (tee, copy) = Tee::new(body);
        let orders = self.orders.clone();
        let stats = self.shadow.clone();
        tokio::spawn(async move {
            if let Ok(bytes) = copy.await {
                shadow::compare(bytes, encoding, orders, stats).await;
            }
        });
        Response::from_parts(parts, tee.boxed_unsync())
    }

    async fn pass_through(
        &self,
        parts: http::request::Parts,
        body: Inbound,
    ) -> Response<ProxyBody> {
        let sent = match body {
            Inbound::Streaming(body) => {
                passthrough::forward(
                    Request::from_parts(parts, body),
                    &self.sap,
                    self.config.preserve_host,
                    self.config.client_body_timeout,
                    self.config.max_body_bytes,
                    self.config.sap_timeout,
                )
                .await
            }
            Inbound::Whole(bytes) => {
                let body = if bytes.is_empty() {
                    crate::serve::body::empty()
                } else {
                    crate::serve::body::full(bytes)
                };
                passthrough::send(
                    parts,
                    body,
                    &self.sap,
                    self.config.preserve_host,
                    self.config.sap_timeout,
                )
                .await
            }
        };
        match sent {
            Ok(r) => r,
            Err(e) => e.to_response(),
        }
    }
}

/// A request's body: still arriving from the client (streamed, or read whole within the
/// limits where a handler needs it whole), or already whole (a part of a `$batch`).
pub(crate) enum Inbound {
    /// The client's body, not read yet.
    Streaming(Incoming),
    /// A body in hand.
    Whole(bytes::Bytes),
}

/// What handles a request (see [`ProxyState::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Straight to SAP.
    PassThrough,
    /// A create read whole first (dual write, idempotency keys).
    BufferedCreate,
    /// Answered with an OData error: the mode cannot serve it (yet), and SAP alone must not.
    Refuse,
    /// A read SAP answers and the order service's copy is compared with.
    ShadowedRead,
    /// A read answered by the order service (`events`, `retired`).
    OrderServiceRead,
    /// A change served by the order service (`events`, `retired`; [`crate::face::write`]).
    OrderServiceChange,
    /// A change in `dual-write`: SAP first, then the order service ([`crate::dual_write::change`]).
    DualWriteChange,
    /// A `$batch` whose parts are served one by one as the same requests alone
    /// (`dual-write`, `events`, `retired`; [`crate::face::batch`]).
    BatchByParts,
}

/// Phase 5: one latency observation for a request, by route, operation, mode and status.
pub(crate) fn observe(op: Operation, mode: Option<Mode>, status: u16, start: Instant) {
    let route_label = match op {
        Operation::PassThrough => "passthrough",
        _ => SALES_ORDERS,
    };
    let op_label = match op {
        Operation::SalesOrderCreate => "create",
        Operation::SalesOrderRead => "read",
        Operation::Batch => "batch",
        Operation::Malformed => "malformed",
        Operation::SalesOrderChange => "change",
        Operation::PassThrough => "other",
    };
    request_histogram(op, route_label, op_label, mode, status)
        .record(start.elapsed().as_secs_f64());
}

/// The request histogram for this label set, registered on first use and then reused (building
/// a metrics key per request would cost an allocation and a registry look-up each time).
fn request_histogram(
    op: Operation,
    route: &'static str,
    op_label: &'static str,
    mode: Option<Mode>,
    status: u16,
) -> &'static metrics::Histogram {
    const N: usize = 6 * 5 * 5;
    static CELLS: [OnceLock<metrics::Histogram>; N] = [const { OnceLock::new() }; N];
    let o = match op {
        Operation::PassThrough => 0,
        Operation::SalesOrderCreate => 1,
        Operation::SalesOrderRead => 2,
        Operation::Batch => 3,
        Operation::Malformed => 4,
        Operation::SalesOrderChange => 5,
    };
    let m = match mode {
        None => 0,
        Some(Mode::Legacy) => 1,
        Some(Mode::DualWrite) => 2,
        Some(Mode::Events) => 3,
        Some(Mode::Retired) => 4,
    };
    let class = status_class(status);
    let c = match class {
        "1xx" => 0,
        "2xx" => 1,
        "3xx" => 2,
        "4xx" => 3,
        _ => 4,
    };
    CELLS[(o * 5 + m) * 5 + c].get_or_init(|| {
        metrics::histogram!(
            "proxy_request_duration_seconds",
            "route" => route,
            "operation" => op_label,
            "mode" => mode.map_or("none", Mode::as_str),
            "status" => class,
        )
    })
}

/// `.../A_SalesOrder(<key>)` with nothing after the key (query aside).
fn is_entity_read(path: &str) -> bool {
    path.rsplit_once("/A_SalesOrder(")
        .is_some_and(|(_, rest)| rest.ends_with(')') && !rest.contains('/'))
}

fn status_class(s: u16) -> &'static str {
    match s {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The SERVER span of one request at the SAP face (HTTP conventions: `{method} {route}`, the
/// route being the operation the request was classified as).
fn server_span(req: &Request<Incoming>) -> Option<platform::otel::ActiveSpan> {
    use platform::otel::KeyValue;
    let op = classify(
        &crate::face::write::effective_method(req.method(), req.headers()),
        req.uri().path(),
    );
    let mut attributes = vec![
        KeyValue::new("http.request.method", req.method().as_str().to_owned()),
        KeyValue::new("url.path", req.uri().path().to_owned()),
        KeyValue::new("proxy.operation", format!("{op:?}")),
    ];
    let headers = req.headers();
    if headers.contains_key(&platform::correlation::CORRELATION_HEADER)
        || headers.contains_key(&platform::correlation::IDEMPOTENCY_HEADER)
    {
        let id = platform::correlation::correlation_from_headers(headers).0;
        attributes.push(KeyValue::new("correlation_id", id));
    }
    platform::otel::start(
        format!("{} {op:?}", req.method()),
        platform::otel::SpanKind::Server,
        platform::otel::Parent::from_headers(req.headers()),
        attributes,
    )
}

/// Accepts connections until `shutdown`, then drains in-flight requests for up to `grace`.
///
/// Each connection starts on the lean HTTP/1.1 pass-through path ([`crate::serve::h1`]) when it is
/// enabled; the first request that path does not serve itself hands the connection, with the
/// bytes already read, to hyper for the rest of its life.
pub async fn serve(listener: TcpListener, state: Arc<ProxyState>, shutdown: CancellationToken) {
    let grace = state.config.shutdown_grace;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.client_header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let connections = TaskTracker::new();
    // Set when this worker stops accepting: a plain flag each request can read without the
    // token's lock, which all workers share.
    let draining = Arc::new(AtomicBool::new(false));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let (stream, _peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            state.clone(),
            builder.clone(),
            shutdown.clone(),
            draining.clone(),
        ));
    }
    draining.store(true, Ordering::Release);
    drop(listener);
    connections.close();
    tokio::select! {
        () = connections.wait() => tracing::info!("all client connections drained"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    // Creates run to their decided end even when the grace period is over: each is bounded by
    // the upstream timeouts, and cutting one between its decision and its durable follow-ups
    // would break a promise (the client may have had its answer already).
    let writes = &state.sales_orders.writes;
    writes.close();
    let bound = state.config.sap_timeout * 2 + state.config.order_service_timeout * 2;
    if !writes.is_empty() {
        tracing::info!(in_flight = writes.len(), "waiting for creates to finish");
    }
    if tokio::time::timeout(bound, writes.wait()).await.is_err() {
        tracing::error!(in_flight = writes.len(), "creates still running at exit");
    }
}

/// One client connection, from accept to close.
async fn connection(
    stream: TcpStream,
    state: Arc<ProxyState>,
    builder: Arc<hyper::server::conn::http1::Builder>,
    shutdown: CancellationToken,
    draining: Arc<AtomicBool>,
) {
    // With traces on every request goes through hyper and `ProxyState::handle` (its server
    // span and the `traceparent` toward SAP); the lean path relays heads without parsing
    // headers into a map, so it cannot inject one. With traces off nothing changes here.
    let (stream, read) = if state.config.fast_path && !platform::otel::enabled() {
        match crate::serve::h1::serve(stream, &state, &shutdown, &draining).await {
            Some(handed_over) => handed_over,
            None => return,
        }
    } else {
        (stream, bytes::BytesMut::new())
    };
    let st = state.clone();
    let service = service_fn(move |req| {
        let st = st.clone();
        async move { Ok::<_, Infallible>(st.handle(req).await) }
    });
    let io =
        crate::serve::h1::ClientIo::new(read.freeze(), stream, state.config.client_body_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            // Finish the request in progress, then close (idle connections close at once).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}
