//! SAP calls the proxy makes on its own (replays and look-ups), as SAP's own clients make them:
//! a CSRF token fetched with `HEAD .../A_SalesOrder/` before every write, its cookies sent back
//! on the write, JSON chosen by `Accept`.
//!
//! SAP has no idempotency key, so a create the proxy repeats could make a second sales order.
//! Every create the proxy sends names its order number (`SalesOrder`, from the external number
//! range, see [`crate::dual_write::numbers`]); SAP refuses a second create of a number it has, and whether
//! an earlier attempt landed is a read by key. Orders stamped by earlier versions (a field such
//! as `ExternalDocumentID`, which S/4 does not even store from a create) are still found by
//! their stamp.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::error::UpstreamFailure;
use crate::serve::body::{empty, full};
use crate::upstreams::upstream::Upstream;

/// The service root of `API_SALES_ORDER_SRV`.
pub const SERVICE_ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

/// How a proxy-originated SAP call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SapCallError {
    /// SAP refused the request (4xx): a retry will not help.
    #[error("SAP rejected the request ({status}): {body}")]
    Rejected {
        /// Status.
        status: u16,
        /// Error body.
        body: String,
    },
    /// SAP answered 5xx.
    #[error("SAP failed ({status})")]
    ServerError {
        /// Status.
        status: u16,
    },
    /// No answer.
    #[error("SAP unreachable: {0}")]
    Unavailable(UpstreamFailure),
    /// The answer could not be understood.
    #[error("unexpected SAP answer: {0}")]
    Protocol(String),
}

/// Client for the proxy's own SAP calls.
#[derive(Debug, Clone)]
pub struct SapClient {
    upstream: Arc<Upstream>,
    technical_auth: Option<HeaderValue>,
}

/// An entity found by a look-up.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundOrder {
    /// SAP's order number.
    pub sales_order: String,
    /// The entity as a single-entity body (`{"d":{...}}`), items expanded.
    pub entity_body: Bytes,
}

impl SapClient {
    /// Over the SAP upstream, with optional technical credentials.
    pub fn new(upstream: Arc<Upstream>, credentials: Option<(String, String)>) -> Self {
        let technical_auth = credentials.and_then(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            HeaderValue::from_str(&format!("Basic {token}")).ok()
        });
        Self {
            upstream,
            technical_auth,
        }
    }

    fn auth<'a>(&'a self, caller: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        caller.or(self.technical_auth.as_ref())
    }

    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        auth: Option<&HeaderValue>,
        extra: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), SapCallError> {
        let mut b = Request::builder()
            .method(method)
            .uri(self.upstream.uri_for(path_and_query))
            .header(header::ACCEPT, "application/json");
        if let Some(a) = self.auth(auth) {
            b = b.header(header::AUTHORIZATION, a);
        }
        for (k, v) in extra {
            b = b.header(*k, v.as_str());
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(full(serde_json::to_vec(v).expect("json serialises"))),
            None => b.body(empty()),
        }
        .map_err(|e| SapCallError::Protocol(e.to_string()))?;
        let resp = self
            .upstream
            .send(req)
            .await
            .map_err(SapCallError::Unavailable)?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| SapCallError::Unavailable(UpstreamFailure::Broken(e.to_string())))?
            .to_bytes();
        if parts.status.is_server_error() {
            return Err(SapCallError::ServerError {
                status: parts.status.as_u16(),
            });
        }
        Ok((parts.status, parts.headers, bytes))
    }

    /// Fetches a CSRF token and the session cookies (`name=value;name=value`).
    pub async fn fetch_csrf(
        &self,
        auth: Option<&HeaderValue>,
    ) -> Result<(Option<String>, String), SapCallError> {
        let (_, headers, _) = self
            .call(
                Method::HEAD,
                &format!("{SERVICE_ROOT}/A_SalesOrder/"),
                auth,
                &[("x-csrf-token", "Fetch".to_owned())],
                None,
            )
            .await?;
        Ok(sap_odata::csrf_session(&headers))
    }

    /// Looks a sales order up by a stamp field; the first match, with items.
    pub async fn find_by_stamp(
        &self,
        field: &str,
        value: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<FoundOrder>, SapCallError> {
        let literal = odata_string_literal(value);
        let path = format!(
            "{SERVICE_ROOT}/A_SalesOrder?$select=*,to_Item/*&$expand=to_Item&$filter=({field}%20eq%20{literal})&$top=1"
        );
        let Some((v, _)) = self.get_json(&path, auth).await? else {
            return Ok(None);
        };
        let first = v
            .get("d")
            .and_then(|d| d.get("results"))
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .cloned();
        Ok(first.and_then(|entity| {
            let number = entity.get("SalesOrder")?.as_str()?.to_owned();
            let body = serde_json::to_vec(&serde_json::json!({ "d": entity })).ok()?;
            Some(FoundOrder {
                sales_order: number,
                entity_body: Bytes::from(body),
            })
        }))
    }

    /// A GET answered with JSON (the value and its bytes); `None` on 404, an error on any other
    /// refusal.
    async fn get_json(
        &self,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<(Value, Bytes)>, SapCallError> {
        let (status, _, bytes) = self.call(Method::GET, path, auth, &[], None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(SapCallError::Rejected {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        let v =
            serde_json::from_slice(&bytes).map_err(|e| SapCallError::Protocol(e.to_string()))?;
        Ok(Some((v, bytes)))
    }

    /// Reads one sales order by its key, with items; `None` when SAP has no such order.
    pub async fn read_by_key(
        &self,
        number: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<FoundOrder>, SapCallError> {
        let key = odata_string_literal(number);
        let path = format!("{SERVICE_ROOT}/A_SalesOrder({key})?$expand=to_Item");
        let Some((v, bytes)) = self.get_json(&path, auth).await? else {
            return Ok(None);
        };
        let entity = v.get("d").cloned().unwrap_or(Value::Null);
        let found = entity
            .get("SalesOrder")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(found.map(|sales_order| FoundOrder {
            sales_order,
            entity_body: bytes,
        }))
    }

    /// Creates a sales order (CSRF fetched first) and returns SAP's number. A create naming
    /// its number (`SalesOrder` in `body`) that SAP refuses is read back by that key: SAP
    /// refuses a number it has, so a refusal of an order SAP holds under our number means an
    /// earlier attempt made it, and it counts as created.
    pub async fn create(&self, body: &Value) -> Result<String, SapCallError> {
        let named = body
            .get("SalesOrder")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        match self.create_once(body).await {
            Err(SapCallError::Rejected { status, body: text }) => match named {
                Some(n) => match self.read_by_key(&n, None).await? {
                    Some(found) => Ok(found.sales_order),
                    None => Err(SapCallError::Rejected { status, body: text }),
                },
                None => Err(SapCallError::Rejected { status, body: text }),
            },
            other => other,
        }
    }

    async fn create_once(&self, body: &Value) -> Result<String, SapCallError> {
        let named = body
            .get("SalesOrder")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let (token, cookies) = self.fetch_csrf(None).await?;
        let mut extra = Vec::new();
        if let Some(t) = token {
            extra.push(("x-csrf-token", t));
        }
        if !cookies.is_empty() {
            extra.push(("cookie", cookies));
        }
        if let Some(n) = named {
            let mut h = http::HeaderMap::new();
            repeatability_headers(&mut h, n);
            for name in [REQUEST_ID, REPEATABILITY_CREATION] {
                if let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) {
                    extra.push((name, v.to_owned()));
                }
            }
        }
        let (status, _, bytes) = self
            .call(
                Method::POST,
                &format!("{SERVICE_ROOT}/A_SalesOrder"),
                None,
                &extra,
                Some(body),
            )
            .await?;
        if !status.is_success() {
            return Err(SapCallError::Rejected {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        if let Some(n) = body
            .get("SalesOrder")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Ok(n.to_owned());
        }
        order_acl::sales_order_number(&bytes)
            .ok_or_else(|| SapCallError::Protocol("create answer without SalesOrder".into()))
    }
}

/// SAP Gateway's repeatability request headers (SAP Help "Idempotency"; Gateway interface
/// `/IWBEP/IF_MGW_CORE_SRV_RUNTIME`).
const REQUEST_ID: &str = "requestid";
const REPEATABILITY_CREATION: &str = "repeatabilitycreation";

/// Sets `RequestID` (a 32-character GUID, the same for every attempt that names `number`) and
/// `RepeatabilityCreation` (this attempt's time, HTTP-date) unless the caller sent its own:
/// where SAP's administrator enabled repeatable requests, a repeat gets the first answer.
pub fn repeatability_headers(headers: &mut http::HeaderMap, number: &str) {
    if headers.contains_key(REQUEST_ID) {
        return;
    }
    let id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("sales-order:{number}").as_bytes(),
    )
    .simple()
    .to_string()
    .to_uppercase();
    let created = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    for (name, value) in [(REQUEST_ID, id), (REPEATABILITY_CREATION, created)] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// An OData string literal for a `$filter`, quotes doubled and the rest percent-encoded the
/// way SAP's SDK does (quotes stay raw).
pub fn odata_string_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    let mut out = String::from("'");
    for b in escaped.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'\'' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attempt_under_one_number_carries_the_same_request_id_and_a_client_s_own_is_kept() {
        let id = |n: &str| {
            let mut h = http::HeaderMap::new();
            repeatability_headers(&mut h, n);
            assert!(h.contains_key(REPEATABILITY_CREATION));
            h[REQUEST_ID].to_str().unwrap().to_owned()
        };
        assert_eq!(id("8000000001"), id("8000000001"));
        assert_ne!(id("8000000001"), id("8000000002"));
        assert_eq!(id("8000000001").len(), 32);
        assert!(id("8000000001").bytes().all(|b| b.is_ascii_hexdigit()));
        let mut own = http::HeaderMap::new();
        own.insert(REQUEST_ID, HeaderValue::from_static("CLIENTS-OWN"));
        repeatability_headers(&mut own, "8000000001");
        assert_eq!(own[REQUEST_ID], "CLIENTS-OWN");
    }

    #[test]
    fn filter_literals_double_quotes_and_percent_encode_the_rest() {
        assert_eq!(odata_string_literal("A'B C"), "'A''B%20C'");
        assert_eq!(odata_string_literal("0192f-ab"), "'0192f-ab'");
    }
}
