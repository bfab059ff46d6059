//! The connection server: accepts TCP connections, serves HTTP/1.1 with hyper, and does the
//! two things a plain `axum::serve` cannot: drop a connection on purpose (outage `reset`,
//! "response lost") and count open connections for the connection limit.
//!
//! Shutdown: when the token fires, the listener closes, every connection is asked to finish
//! its current request and close (`graceful_shutdown`), and the server waits up to the grace
//! period for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::fault_layer::{ConnectionInfo, DropConnection};
use crate::faults::Faults;

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (fault injection)")
    }
}

impl std::error::Error for ConnectionDropped {}

struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then drains for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // e.g. too many open files: back off briefly instead of spinning
                tracing::warn!(error = %e, "sap_mock_accept_failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
        let guard = OpenConnection(open.clone());
        let over_limit = faults
            .current()
            .max_connections
            .is_some_and(|limit| now_open > limit);
        let info = ConnectionInfo { over_limit };
        let router = router.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _guard = guard;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(info);
                let router = router.clone();
                async move {
                    let response = match router.oneshot(req.map(axum::body::Body::new)).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    if response.extensions().get::<DropConnection>().is_some() {
                        return Err(ConnectionDropped);
                    }
                    Ok::<_, ConnectionDropped>(response)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "sap_mock_connection_closed_with_error");
                    }
                }
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("sap_mock_shutdown_grace_expired");
    }
}
