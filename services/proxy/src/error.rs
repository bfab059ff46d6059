//! One error type for the proxy, recording which side failed, and the one place where errors
//! become responses at the SAP face (OData V2 error JSON).
//!
//! Pingora's habit: every failure is classified by *side* (the client, SAP, the order service,
//! or the proxy itself) when it happens, so logs, metrics and the status code all agree.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::serve::body::{ProxyBody, full};

/// Which party a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The calling client (bad request, too large, too slow).
    Client,
    /// SAP (or its emulator).
    Sap,
    /// The new order service.
    OrderService,
    /// The proxy itself (storage, overload).
    Proxy,
}

impl Side {
    /// Label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Sap => "sap",
            Side::OrderService => "order-service",
            Side::Proxy => "proxy",
        }
    }
}

/// How a call to an upstream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamFailure {
    /// The circuit breaker is open: the call was not attempted.
    #[error("circuit breaker open")]
    BreakerOpen,
    /// The connection could not be made (refused, unreachable): nothing was sent.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The TLS handshake failed (the upstream's certificate was not accepted: unknown issuer,
    /// wrong name, expired; or no common protocol): nothing was sent.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// No response head within the upstream's timeout. The request may have been processed.
    #[error("timed out")]
    Timeout,
    /// The connection broke after the request was sent. The request may have been processed.
    #[error("connection broke: {0}")]
    Broken(String),
    /// The client's body failed while it was streamed to the upstream (it stalled, grew past
    /// the limit or broke off): the client's fault, no evidence against the upstream, and the
    /// upstream never had a whole request to act on.
    #[error("the client's body failed: {0}")]
    ClientBody(ClientBodyFault),
}

/// How a client's streamed body failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyFault {
    /// It paused longer than the idle timeout.
    #[error("it stalled")]
    Stalled,
    /// It grew past the limit.
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    /// It broke off (the client went away).
    #[error("{0}")]
    Broken(String),
}

impl From<ClientBodyFault> for ProxyError {
    fn from(f: ClientBodyFault) -> Self {
        match f {
            ClientBodyFault::Stalled => ProxyError::ClientTooSlow,
            ClientBodyFault::TooLarge(limit) => ProxyError::BodyTooLarge { limit },
            ClientBodyFault::Broken(e) => ProxyError::ClientBody(e),
        }
    }
}

impl UpstreamFailure {
    /// True when the upstream may have acted on the request even though no answer came.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, UpstreamFailure::Timeout | UpstreamFailure::Broken(_))
    }
}

/// Every way a request through the proxy can fail.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client's body exceeds the limit.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client paused too long while sending its body.
    #[error("client sent its body too slowly")]
    ClientTooSlow,
    /// The client's body could not be read.
    #[error("reading the request body failed: {0}")]
    ClientBody(String),
    /// The same `Idempotency-Key` came with a different request.
    #[error("Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is still being processed.
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    /// A create under an idempotency key needs an order number and none could be reserved
    /// (the order service is unreachable and the proxy's reserve is used up).
    #[error("no order number available for a create under an idempotency key")]
    NoOrderNumber,
    /// Too many requests at once.
    #[error("proxy overloaded")]
    Overloaded,
    /// An upstream failed.
    #[error("{} {failure}", side.as_str())]
    Upstream {
        /// SAP or the order service.
        side: Side,
        /// How.
        failure: UpstreamFailure,
    },
    /// The operation is not available in this route's mode.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The proxy's own storage failed.
    #[error("proxy storage failed: {0}")]
    Storage(String),
    /// The state database the replicas share (`PROXY_STATE_DATABASE_URL`) did not answer: a
    /// create under an idempotency key cannot be told apart from another replica's, so it is
    /// refused as temporarily unavailable (nothing was sent anywhere; the client may retry).
    #[error("shared state database unavailable: {0}")]
    StateUnavailable(String),
}

impl ProxyError {
    /// Which side the failure belongs to.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::BodyTooLarge { .. }
            | ProxyError::ClientTooSlow
            | ProxyError::ClientBody(_)
            | ProxyError::IdempotencyKeyReused
            | ProxyError::IdempotencyInProgress
            | ProxyError::NotSupported(_) => Side::Client,
            ProxyError::Overloaded
            | ProxyError::Storage(_)
            | ProxyError::StateUnavailable(_)
            | ProxyError::NoOrderNumber => Side::Proxy,
            ProxyError::Upstream { side, .. } => *side,
        }
    }

    /// The HTTP status at the SAP face.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTooSlow => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProxyError::IdempotencyInProgress => StatusCode::CONFLICT,
            ProxyError::NoOrderNumber => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            ProxyError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::StateUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Upstream { failure, .. } => match failure {
                UpstreamFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
                UpstreamFailure::BreakerOpen => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamFailure::Connect(_)
                | UpstreamFailure::Tls(_)
                | UpstreamFailure::Broken(_) => StatusCode::BAD_GATEWAY,
                UpstreamFailure::ClientBody(f) => ProxyError::from(f.clone()).status(),
            },
        }
    }

    /// The OData error code (SAP's message-class style, prefixed so operators can tell the
    /// proxy's errors from SAP's own).
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BodyTooLarge { .. } => "PROXY/413",
            ProxyError::ClientTooSlow => "PROXY/408",
            ProxyError::ClientBody(_) => "PROXY/400",
            ProxyError::IdempotencyKeyReused => "PROXY/422",
            ProxyError::IdempotencyInProgress => "PROXY/409",
            ProxyError::NoOrderNumber => "PROXY/503N",
            ProxyError::Overloaded => "PROXY/503",
            ProxyError::NotSupported(_) => "PROXY/501",
            ProxyError::Storage(_) => "PROXY/500",
            ProxyError::StateUnavailable(_) => "PROXY/503S",
            ProxyError::Upstream { failure, .. } => match failure {
                UpstreamFailure::Timeout => "PROXY/504",
                UpstreamFailure::BreakerOpen => "PROXY/503",
                UpstreamFailure::Connect(_) | UpstreamFailure::Broken(_) => "PROXY/502",
                UpstreamFailure::Tls(_) => "PROXY/502T",
                UpstreamFailure::ClientBody(f) => ProxyError::from(f.clone()).code(),
            },
        }
    }

    /// The message shown to the client. 5xx messages stay generic; the cause is logged.
    pub fn client_message(&self) -> String {
        match self {
            ProxyError::Upstream {
                side: Side::Sap,
                failure,
            } => match failure {
                UpstreamFailure::Timeout => "The SAP system did not answer in time".to_owned(),
                // Says which kind of failure, not why: the certificate's details are logged.
                UpstreamFailure::Tls(_) => {
                    "The SAP system could not be reached securely (TLS handshake failed)".to_owned()
                }
                _ => "The SAP system is not available".to_owned(),
            },
            ProxyError::Upstream { .. } => "A backend system is not available".to_owned(),
            ProxyError::Storage(_) => "Internal error in the gateway".to_owned(),
            ProxyError::StateUnavailable(_) => {
                "The gateway cannot check this Idempotency-Key now; nothing was created, retry later"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The OData error response for this failure.
    pub fn to_response(&self) -> Response<ProxyBody> {
        let (status, headers, body) = self.to_parts();
        let mut resp = Response::new(full(body));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }

    /// The OData error answer as status, headers and body (logged once).
    pub fn to_parts(&self) -> (StatusCode, http::HeaderMap, Bytes) {
        if self.status().is_server_error() {
            tracing::warn!(side = self.side().as_str(), error = %self, "request failed");
        } else {
            tracing::info!(side = self.side().as_str(), error = %self, "request refused");
        }
        odata_error_parts(self.status(), self.code(), &self.client_message())
    }
}

/// An OData V2 error response (`{"error":{"code","message":{"lang","value"},"innererror"}}`,
/// built by the shared wire contract), the shape SAP's own clients read
/// `error.message.value` from.
pub fn odata_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let (status, headers, body) = odata_error_parts(status, code, message);
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// [`odata_error`] as status, headers and body.
pub fn odata_error_parts(
    status: StatusCode,
    code: &str,
    message: &str,
) -> (StatusCode, http::HeaderMap, Bytes) {
    odata_error_parts_on(status, code, message, None)
}

/// [`odata_error_parts`] about one property (`innererror.errordetails[].propertyref`, as SAP
/// Gateway names the property a message is about).
pub fn odata_error_parts_on(
    status: StatusCode,
    code: &str,
    message: &str,
    property: Option<&str>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let body = sap_odata::error::ODataError::new(code, message).with_inner_error(
        uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        chrono::Utc::now(),
        property,
    );
    let bytes = Bytes::from(serde_json::to_vec(&body).expect("json serialises"));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    headers.insert("dataserviceversion", HeaderValue::from_static("1.0"));
    (status, headers, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn sap_timeouts_become_odata_504_with_a_readable_message() {
        let e = ProxyError::Upstream {
            side: Side::Sap,
            failure: UpstreamFailure::Timeout,
        };
        assert_eq!(e.side(), Side::Sap);
        let resp = e.to_response();
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["error"]["message"]["value"],
            "The SAP system did not answer in time"
        );
    }

    #[tokio::test]
    async fn a_refused_sap_certificate_is_an_odata_502_that_says_tls() {
        let e = ProxyError::Upstream {
            side: Side::Sap,
            failure: UpstreamFailure::Tls("invalid peer certificate: UnknownIssuer".into()),
        };
        let resp = e.to_response();
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "PROXY/502T");
        let message = v["error"]["message"]["value"].as_str().unwrap();
        assert!(message.contains("TLS"), "{message}");
        assert!(
            !message.contains("UnknownIssuer"),
            "details stay in the log: {message}"
        );
    }

    #[test]
    fn only_timeouts_and_broken_connections_are_ambiguous() {
        assert!(UpstreamFailure::Timeout.is_ambiguous());
        assert!(UpstreamFailure::Broken("reset".into()).is_ambiguous());
        assert!(!UpstreamFailure::Connect("refused".into()).is_ambiguous());
        assert!(!UpstreamFailure::Tls("UnknownIssuer".into()).is_ambiguous());
        assert!(!UpstreamFailure::BreakerOpen.is_ambiguous());
    }
}
