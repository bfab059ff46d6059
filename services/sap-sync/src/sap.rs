//! SAP's OData API as sap-sync uses it: one logged-on session (CSRF token and the cookies it is
//! bound to, fetched once and reused), refreshed when SAP answers `403` with
//! `x-csrf-token: Required`; reads by key; writes with `If-Match`.
//!
//! The calls go through `platform::http_client` (pooled HTTP/1.1), over TLS when `SAP_URL` is
//! `https` (SAP's certificate verified against `SAP_CA_FILE` or the system's CA store).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE, ETAG, IF_MATCH};
use http::{HeaderValue, Method, Request, StatusCode};
use platform::http_client::{HttpClient, HttpError, HttpResponse};
use serde_json::Value;
use tokio::sync::Mutex;

/// The service root below `SAP_URL`.
pub const SERVICE_ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

/// How a SAP call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SapError {
    /// SAP refused the request (4xx): the change is wrong for SAP; retrying cannot help.
    #[error("SAP refused ({status}) {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// SAP's message code (`V1/018`, ...), empty when the body had none.
        code: String,
        /// SAP's message text.
        message: String,
    },
    /// The entity changed since it was read (`412`): read again and plan again.
    #[error("SAP's order changed since it was read")]
    Stale,
    /// No usable answer (5xx, timeout, connection): SAP may or may not have the effect.
    #[error("SAP unavailable: {0}")]
    Unavailable(String),
}

impl SapError {
    /// True when the answer says SAP already has an order under this number.
    pub fn is_number_taken(&self) -> bool {
        matches!(self, SapError::Refused { code, message, .. }
            if code == "V1/018" || message.contains("already exists"))
    }
}

/// SAP's order as read by key, with its entity tag.
#[derive(Debug, Clone)]
pub struct SapOrder {
    /// The `d` of the answer (header with `to_Item` expanded).
    pub entity: Value,
    /// The `ETag` answered (for `If-Match`).
    pub etag: Option<String>,
}

/// Who to call, and as whom.
#[derive(Debug, Clone)]
pub struct SapSettings {
    /// `SAP_URL` (scheme, host, port), without a trailing slash.
    pub url: String,
    /// TLS for an `https` [`SapSettings::url`] (`SAP_CA_FILE` or the system's CA store);
    /// `None` for plain `http`.
    pub tls: Option<Arc<platform::tls::ClientConfig>>,
    /// `SAP_USER` / `SAP_PASSWORD`.
    pub credentials: Option<(String, String)>,
    /// `SAP_CLIENT` (the `sap-client` of the logon), when set.
    pub client: Option<String>,
    /// Longest a call may take.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
struct Session {
    token: String,
    cookies: String,
}

/// One SAP session shared by every lane.
#[derive(Debug)]
pub struct Sap {
    http: HttpClient,
    settings: SapSettings,
    /// `Basic ...` of `SAP_USER` / `SAP_PASSWORD`, built once.
    authorization: Option<HeaderValue>,
    session: Mutex<Option<Session>>,
}

/// What a successful write answered.
#[derive(Debug, Clone)]
pub struct Written {
    /// HTTP status.
    pub status: u16,
    /// The new `ETag`, when SAP sent one.
    pub etag: Option<String>,
}

/// Headers that travel from the event into every call (correlation, trace context).
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// `x-correlation-id`.
    pub correlation_id: Option<String>,
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
}

/// The OpenTelemetry CLIENT span of one call to SAP (HTTP conventions: named by the method),
/// `None` when traces are off.
fn client_span<B>(req: &Request<B>) -> Option<platform::otel::ActiveSpan> {
    if !platform::otel::enabled() {
        return None;
    }
    let attributes = platform::otel::http_client_attributes(
        req.method(),
        &req.uri().to_string(),
        req.uri().host().unwrap_or_default(),
        req.uri().port_u16(),
        "sap",
        req.headers(),
    );
    platform::otel::start(
        req.method().as_str().to_owned(),
        platform::otel::SpanKind::Client,
        platform::otel::Parent::from_headers(req.headers()),
        attributes,
    )
}

impl Sap {
    /// A client for `settings`.
    pub fn new(settings: SapSettings) -> anyhow::Result<Self> {
        let http = HttpClient::new(settings.tls.clone(), 64);
        let authorization = match &settings.credentials {
            Some((u, p)) => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                let mut v = HeaderValue::from_str(&format!("Basic {token}"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            http,
            settings,
            authorization,
            session: Mutex::new(None),
        })
    }

    fn request(&self, method: Method, path: &str, ctx: &CallContext) -> http::request::Builder {
        let mut r = Request::builder()
            .method(method)
            .uri(format!("{}{SERVICE_ROOT}{path}", self.settings.url))
            .header(ACCEPT, "application/json");
        if let Some(a) = &self.authorization {
            r = r.header(AUTHORIZATION, a.clone());
        }
        if let Some(c) = &self.settings.client {
            r = r.header("sap-client", c);
        }
        if let Some(c) = &ctx.correlation_id {
            r = r.header("x-correlation-id", c);
        }
        if let Some(t) = &ctx.traceparent {
            r = r.header("traceparent", t);
        }
        r
    }

    /// Sends a prepared request and reads the whole answer within `SAP_TIMEOUT_MS`.
    async fn send(&self, r: http::request::Builder, body: Bytes) -> Result<HttpResponse, SapError> {
        let mut req = r
            .body(body)
            .map_err(|e| SapError::Unavailable(format!("request not sendable: {e}")))?;
        // With traces on: a CLIENT span under the event's span (the `traceparent` the call
        // context put on the request), and SAP gets this span's `traceparent` instead (with
        // the trace's `tracestate`, when it has one).
        let span = client_span(&req);
        if let Some(span) = &span {
            span.inject(req.headers_mut());
        }
        let sent = std::time::Instant::now();
        let result = self
            .http
            .send(req, self.settings.timeout)
            .await
            .map_err(unavailable);
        crate::forward::stage("http", sent);
        if let Some(span) = &span {
            match &result {
                Ok(r) => span.set_http_status(r.status.as_u16(), true),
                Err(e) => span.fail("unavailable", e.to_string()),
            }
        }
        result
    }

    async fn session(&self, ctx: &CallContext) -> Result<Session, SapError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref() {
            return Ok(s.clone());
        }
        let r = self
            .send(
                self.request(Method::HEAD, "/A_SalesOrder", ctx)
                    .header("x-csrf-token", "Fetch"),
                Bytes::new(),
            )
            .await?;
        if r.status.is_server_error() {
            return Err(SapError::Unavailable(format!("CSRF fetch: {}", r.status)));
        }
        if !r.status.is_success() {
            return Err(SapError::Unavailable(format!(
                "CSRF fetch refused ({}): check SAP_USER / SAP_PASSWORD",
                r.status
            )));
        }
        let (token, cookies) = sap_odata::csrf_session(&r.headers);
        let s = Session {
            token: token.unwrap_or_default(),
            cookies,
        };
        *guard = Some(s.clone());
        metrics::counter!("sap_sync_csrf_fetches_total").increment(1);
        Ok(s)
    }

    async fn forget_session(&self) {
        *self.session.lock().await = None;
    }

    /// `GET A_SalesOrder('n')?$expand=to_Item`; `None` on 404.
    pub async fn read(
        &self,
        number: &str,
        ctx: &CallContext,
    ) -> Result<Option<SapOrder>, SapError> {
        let r = self
            .send(
                self.request(
                    Method::GET,
                    &format!("/A_SalesOrder('{number}')?$expand=to_Item"),
                    ctx,
                ),
                Bytes::new(),
            )
            .await?;
        let status = r.status;
        count_call("read", status);
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let etag = etag_of(&r);
        if !status.is_success() {
            return Err(error_of(status, &r.body));
        }
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| SapError::Unavailable(format!("unreadable order: {e}")))?;
        let entity = v["d"].clone();
        let etag = etag.or_else(|| entity["__metadata"]["etag"].as_str().map(str::to_owned));
        Ok(Some(SapOrder { entity, etag }))
    }

    /// `GET` of a collection below the service root (path and query), its `results`.
    pub async fn list(
        &self,
        path_and_query: &str,
        ctx: &CallContext,
    ) -> Result<Vec<Value>, SapError> {
        let r = self
            .send(self.request(Method::GET, path_and_query, ctx), Bytes::new())
            .await?;
        let status = r.status;
        count_call("list", status);
        if !status.is_success() {
            return Err(error_of(status, &r.body));
        }
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| SapError::Unavailable(format!("unreadable list: {e}")))?;
        Ok(v["d"]["results"].as_array().cloned().unwrap_or_default())
    }

    /// A write (`POST`, `PATCH`, `DELETE`) in the session, with `If-Match` when given; the
    /// session is fetched again once when SAP says its token is no longer valid.
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
        ctx: &CallContext,
        what: &'static str,
    ) -> Result<Written, SapError> {
        for attempt in 0..2 {
            let session = self.session(ctx).await?;
            let mut r = self
                .request(method.clone(), path, ctx)
                .header("x-csrf-token", &session.token);
            if !session.cookies.is_empty() {
                r = r.header(COOKIE, &session.cookies);
            }
            if let Some(m) = if_match {
                r = r.header(IF_MATCH, m);
            }
            let payload = match body {
                Some(b) => {
                    r = r.header(CONTENT_TYPE, "application/json");
                    Bytes::from(serde_json::to_vec(b).unwrap_or_default())
                }
                None => Bytes::new(),
            };
            let resp = self.send(r, payload).await?;
            let status = resp.status;
            count_call(what, status);
            let csrf_required = status == StatusCode::FORBIDDEN
                && resp
                    .headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("required"));
            if csrf_required && attempt == 0 {
                self.forget_session().await;
                continue;
            }
            let etag = etag_of(&resp);
            if status.is_success() {
                return Ok(Written {
                    status: status.as_u16(),
                    etag,
                });
            }
            return Err(error_of(status, &resp.body));
        }
        Err(SapError::Unavailable(
            "SAP keeps refusing the CSRF token".into(),
        ))
    }
}

fn etag_of(r: &HttpResponse) -> Option<String> {
    r.headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// No answer: SAP may be down, or (TLS) its certificate was not accepted; both wait and retry
/// (a certificate fixed by the operator, or SAP's renewed one, lets the backlog drain).
fn unavailable(e: HttpError) -> SapError {
    SapError::Unavailable(e.to_string())
}

fn count_call(what: &'static str, status: StatusCode) {
    let outcome = if status.is_success() || status == StatusCode::NOT_FOUND {
        "ok"
    } else if status.is_client_error() {
        "refused"
    } else {
        "failed"
    };
    metrics::counter!("sap_sync_sap_calls_total", "call" => what, "outcome" => outcome)
        .increment(1);
}

/// SAP's OData error JSON as an error: 412 stale, other 4xx refused (except the ones a retry
/// can cure: 401/403 logon, 408, 429), the rest unavailable.
fn error_of(status: StatusCode, body: &[u8]) -> SapError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or_default().to_owned();
    let message = v["error"]["message"]["value"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    match status.as_u16() {
        412 => SapError::Stale,
        401 | 403 | 408 | 429 => SapError::Unavailable(format!("{status}: {code} {message}")),
        400..=499 => SapError::Refused {
            status: status.as_u16(),
            code,
            message,
        },
        _ => SapError::Unavailable(format!("{status}: {code} {message}")),
    }
}

/// The path of an item.
pub fn item_path(number: &str, item: &str) -> String {
    format!("/A_SalesOrderItem(SalesOrder='{number}',SalesOrderItem='{item}')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sap_errors_are_classified_by_what_a_retry_can_do() {
        let body = br#"{"error":{"code":"V1/018","message":{"lang":"en","value":"SD document 8000000001 already exists"}}}"#;
        let e = error_of(StatusCode::BAD_REQUEST, body);
        assert!(e.is_number_taken());
        assert!(matches!(
            error_of(StatusCode::PRECONDITION_FAILED, b""),
            SapError::Stale
        ));
        assert!(matches!(
            error_of(StatusCode::SERVICE_UNAVAILABLE, b""),
            SapError::Unavailable(_)
        ));
        assert!(matches!(
            error_of(StatusCode::UNAUTHORIZED, b""),
            SapError::Unavailable(_)
        ));
        let refused = error_of(
            StatusCode::BAD_REQUEST,
            br#"{"error":{"code":"V1/392","message":{"value":"Material X does not exist"}}}"#,
        );
        assert!(matches!(refused, SapError::Refused { ref code, .. } if code == "V1/392"));
        assert!(!refused.is_number_taken());
    }
}
