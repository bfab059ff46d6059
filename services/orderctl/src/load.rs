//! A closed-loop HTTP load driver: N workers, each on its own keep-alive HTTP/1.1 connection,
//! sending its next request as soon as the previous one answers, for a fixed time. Latency goes
//! into an HDR histogram (microseconds).
//!
//! The driver uses hyper's connection API directly (no pool, no redirect or cookie handling):
//! on a 2-core machine the load generator shares the CPU with what it measures, so it must be
//! as light as the peer tools it is compared with (pgbench, wrk).

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// What a load run measured.
pub struct LoadReport {
    /// Requests answered as expected.
    pub ok: u64,
    /// Requests that failed or answered unexpectedly.
    pub errors: u64,
    /// Wall time of the measured phase.
    pub elapsed: Duration,
    /// Latency of successful requests, microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

/// One request, sent again and again: method, path, headers and body.
#[derive(Clone)]
pub struct RequestSpec {
    /// `host:port` on loopback.
    pub authority: String,
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Bytes,
    /// The status that counts as success.
    pub expect: http::StatusCode,
}

/// One keep-alive HTTP/1.1 connection on loopback, for callers that build their own requests.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    /// Connects to `authority` (`host:port`), with `TCP_NODELAY`.
    pub async fn open(authority: &str) -> anyhow::Result<Self> {
        connect(authority).await
    }

    /// Sends `req` and reads the whole answer.
    pub async fn request(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> anyhow::Result<http::Response<Bytes>> {
        self.sender.ready().await?;
        let response = self.sender.send_request(req).await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, bytes))
    }
}

/// One keep-alive connection to `authority` that reconnects after an error (the failed request
/// is answered with its error; the next one opens a new connection).
pub struct Reconnecting {
    authority: String,
    connection: Option<Connection>,
}

impl Reconnecting {
    /// Connects lazily, on the first request.
    pub fn new(authority: String) -> Self {
        Self {
            authority,
            connection: None,
        }
    }

    /// `method path` with `headers` and `body` (and `Host`), the whole answer read.
    pub async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<http::Response<Bytes>> {
        if self.connection.is_none() {
            self.connection = Some(Connection::open(&self.authority).await?);
        }
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body))?;
        let Some(connection) = self.connection.as_mut() else {
            anyhow::bail!("no connection");
        };
        match connection.request(req).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.connection = None;
                Err(e)
            }
        }
    }
}

async fn connect(authority: &str) -> anyhow::Result<Connection> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(Connection { sender })
}

async fn send(conn: &mut Connection, spec: &RequestSpec) -> anyhow::Result<bool> {
    let mut req = http::Request::builder()
        .method(spec.method.clone())
        .uri(&spec.path)
        .header(http::header::HOST, &spec.authority);
    for (k, v) in &spec.headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(spec.body.clone()))?;
    conn.sender.ready().await?;
    let response = conn.sender.send_request(req).await?;
    let ok = response.status() == spec.expect;
    // Read the whole body so the connection can carry the next request.
    response.into_body().collect().await?;
    Ok(ok)
}

/// Runs `concurrency` workers for `duration`, each sending `spec` on its own connection
/// (reconnecting after an error, which counts as a failed request).
pub async fn closed_loop(concurrency: usize, duration: Duration, spec: RequestSpec) -> LoadReport {
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let spec = spec.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let (mut ok, mut errors) = (0_u64, 0_u64);
            let mut conn: Option<Connection> = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                if conn.is_none() {
                    conn = connect(&spec.authority).await.ok();
                }
                let success = match conn.as_mut() {
                    Some(c) => match send(c, &spec).await {
                        Ok(ok) => ok,
                        Err(_) => {
                            conn = None;
                            false
                        }
                    },
                    None => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        false
                    }
                };
                if success {
                    ok += 1;
                    let _ = hist.record(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (ok, errors, hist)
        }));
    }
    let mut report = LoadReport {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds"),
    };
    for w in workers {
        if let Ok((ok, errors, hist)) = w.await {
            report.ok += ok;
            report.errors += errors;
            let _ = report.latency_us.add(&hist);
        }
    }
    report.elapsed = start.elapsed();
    report
}
