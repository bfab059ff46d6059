//! A pooled HTTP/1.1 client to one upstream, plain or over TLS, for the callers that send and
//! receive whole bodies (sap-sync's and orderctl's SAP calls).
//!
//! The client's kind is fixed when it is built: given a TLS configuration
//! ([`crate::tls::client_config`], for an `https://` upstream) it speaks only `https` (a URL
//! that says `http` is refused rather than sent in the clear, credentials and all); without
//! one it speaks only plain `http`, and no TLS code runs at all.
//!
//! The proxy does not use this: it streams bodies and keeps its own per-thread connection
//! pools, over the same TLS configuration (`services/proxy/src/upstream.rs`).
//!
//! reqwest is not used for these calls on purpose: its rustls backend without aws-lc-rs
//! panics in every `reqwest::Client` built anywhere in the workspace (tests included) unless a
//! process-wide crypto provider was installed first, and cargo's feature unification would
//! switch that backend on for all of them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::tls::ClientConfig;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// A pooled client; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("tls", &matches!(self.inner, Inner::Tls(_)))
            .finish()
    }
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body, read to its end.
    pub body: Bytes,
}

/// How a call failed without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// No whole answer within the call's time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The TLS handshake failed (the upstream's certificate was not accepted, no common
    /// protocol, ...): nothing was sent.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The connection could not be made or broke (the whole cause chain).
    #[error("{0}")]
    Connection(String),
}

impl HttpClient {
    /// A client speaking `https` with `tls`, or plain `http` without; at most
    /// `max_idle_per_host` idle connections are kept per host.
    pub fn new(tls: Option<Arc<ClientConfig>>, max_idle_per_host: usize) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(max_idle_per_host);
        let inner = match tls {
            None => Inner::Plain(builder.build(http)),
            Some(config) => {
                // The TLS connector checks the scheme itself.
                http.enforce_http(false);
                // hyper-rustls sets ALPN from the protocols enabled below (none for HTTP/1.1
                // alone) and refuses a configuration that names some already.
                let mut config = (*config).clone();
                config.alpn_protocols.clear();
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_only()
                    .enable_http1()
                    .wrap_connector(http);
                Inner::Tls(builder.build(connector))
            }
        };
        Self { inner }
    }

    /// Whether this client speaks TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// Sends `req` and reads the whole answer, all within `timeout`.
    pub async fn send(
        &self,
        req: Request<Bytes>,
        timeout: Duration,
    ) -> Result<HttpResponse, HttpError> {
        let req = req.map(Full::new);
        let call = async {
            let resp = match &self.inner {
                Inner::Plain(c) => c.request(req).await,
                Inner::Tls(c) => c.request(req).await,
            }
            .map_err(|e| failure(&e))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| failure(&e))?.to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or(Err(HttpError::Timeout(timeout)))
    }
}

/// A failed call in its own words: a TLS failure named as such, anything else with its whole
/// cause chain (`client error (Connect): tcp connect error: Connection refused`).
fn failure(e: &(dyn std::error::Error + 'static)) -> HttpError {
    if let Some(tls) = crate::tls::tls_failure(e) {
        return HttpError::Tls(tls);
    }
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cur = c.source();
    }
    HttpError::Connection(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_connection_error_with_its_cause() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = HttpClient::new(None, 1);
        let req = Request::get(format!("http://127.0.0.1:{port}/"))
            .body(Bytes::new())
            .unwrap();
        match c.send(req, Duration::from_secs(5)).await {
            Err(HttpError::Connection(why)) => assert!(why.contains("refused"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_tls_client_never_sends_plain_http() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let path = std::env::temp_dir().join(format!(
            "platform-http-ca-{}.pem",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        let tls = crate::tls::client_config(Some(&path)).unwrap();
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = HttpClient::new(Some(tls), 1);
        assert!(c.is_tls());
        let req = Request::get(format!("http://127.0.0.1:{port}/"))
            .body(Bytes::new())
            .unwrap();
        let r = c.send(req, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(HttpError::Connection(_))), "{r:?}");
        // Nothing reached the listener.
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a plain connection was made");
    }
}
