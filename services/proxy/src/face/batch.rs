//! `POST .../API_SALES_ORDER_SRV/$batch` from `dual-write` on: served part by part, every part
//! exactly as the same request alone in the route's mode.
//!
//! In `dual-write` a read by key is shadowed, a change goes to SAP and then the order service
//! ([`crate::dual_write::change`]), a create is buffered and written to both; a changeset of
//! several changes is refused (`501`, nothing reaches SAP): sent to SAP as one it would bypass
//! the dual write, sent one by one it would not be one unit. Where the order service serves the
//! route (`events`, `retired`) a changeset of several changes of existing orders is applied in
//! one order-service transaction.
//!
//! The body is read whole within the proxy's body limits and parsed with the shared wire
//! format ([`sap_odata::batch`], the emulator's parser), at most `PROXY_BATCH_MAX_PARTS`
//! requests. Then every part is served **as the same request sent alone** would be in the
//! route's mode (snapshotted once for the whole batch): classified and planned by the same
//! code, and handed to [`ProxyState::serve_planned`]. So a read is answered by the order service
//! or, for a read shape it cannot answer, passed to SAP in `events`, and a change goes through
//! [`crate::face::write`] or the create.
//!
//! | part | answer |
//! |---|---|
//! | `GET` outside a changeset | the single request's answer |
//! | a change outside a changeset | `400` in its part (as the emulator) |
//! | changeset of one change | the single request's answer: a success inside a changeset part, an error alone |
//! | changeset of several changes of existing orders (`events`, `retired`) | each change's answer inside a changeset part, all applied in one order-service transaction ([`crate::face::write::ChangesetPart`], `POST /api/v1/changesets`); or the refused change's error alone, nothing applied |
//! | changeset of several holding a create (or a read), or any of several in `dual-write` | one error part (`501`; `400` for a read), nothing applied |
//!
//! Each part carries the logon, `Host`, `sap-client`, CSRF token, cookies and correlation id of
//! the `$batch` request and its own `Accept`, `Content-Type`, `If-Match` and other headers.
//! Content-ID references (`$1/to_Item`) are not served: they name an entity a create in the
//! changeset made. The answer is `202 Accepted`, `multipart/mixed`, one part per request part,
//! rendered by the shared code; the answers' bodies together stay within the body limit.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sap_odata::batch::{
    AnswerPart, BatchError, BatchPart, PartRequest, ResponsePart, answer_content_type, boundary_of,
    parse_at_most, render_answer, resolve_target,
};

use crate::error::{ProxyError, Side, UpstreamFailure, odata_error};
use crate::routing::routes::Route;
use crate::routing::sales_orders::classify;
use crate::serve::body::{ProxyBody, full};
use crate::serve::server::{Inbound, ProxyState};

/// The message of a changeset holding a create beside other changes (or a request the SAP face
/// does not change orders with).
pub const SEVERAL_CHANGES: &str = "A changeset that creates a sales order beside other changes is not available while the order service serves this route; send the create in a changeset of its own";

/// The message of a changeset of several changes in `dual-write`: SAP would take them as one
/// unit apart from the dual write, and one by one they would not be one unit.
pub const SEVERAL_CHANGES_IN_DUAL_WRITE: &str = "A changeset with more than one change is not available while the sales order route is in dual-write; send one change per changeset";

/// Outer headers a part does not inherit: they describe the `$batch` request's own body and
/// answer, or a precondition or key of one request.
const NOT_INHERITED: [&str; 11] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "accept",
    "accept-encoding",
    "expect",
    "if-match",
    "if-none-match",
    "x-http-method",
    "idempotency-key",
];

/// A wire-format refusal as SAP Gateway answers it.
fn refusal(e: &BatchError) -> Response<ProxyBody> {
    odata_error(StatusCode::BAD_REQUEST, e.sap_code(), &e.to_string())
}

impl ProxyState {
    /// Serves a `$batch` from `dual-write` on (see the module documentation).
    pub(crate) async fn batch_by_parts(
        &self,
        outer: http::request::Parts,
        body: Incoming,
        route: &Route,
    ) -> Response<ProxyBody> {
        let boundary = outer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(boundary_of);
        let Some(boundary) = boundary else {
            return refusal(&BatchError::NotMultipart);
        };
        let bytes = match self.whole_body(&outer, Inbound::Streaming(body)).await {
            Ok(b) => b,
            Err(refused) => return refused,
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return refusal(&BatchError::NotUtf8);
        };
        let parts = match parse_at_most(text, &boundary, self.config.batch_max_parts) {
            Ok(p) => p,
            Err(e) => return refusal(&e),
        };
        let root = service_root_of(outer.uri.path());
        let mut budget = self.config.max_body_bytes;
        let mut answers = Vec::with_capacity(parts.len());
        for part in &parts {
            let answer = match part {
                BatchPart::Request(r) if r.is_retrieve() => {
                    let resp = self.serve_part(&outer, root, r, route).await;
                    AnswerPart::Response(answer_part(resp, &mut budget).await)
                }
                BatchPart::Request(r) => {
                    let e = BatchError::ChangeOutsideChangeset {
                        method: r.method.clone(),
                    };
                    AnswerPart::Response(answer_part(refusal(&e), &mut budget).await)
                }
                BatchPart::Changeset(changes) => {
                    match self
                        .serve_changeset(&outer, root, changes, route, &mut budget)
                        .await
                    {
                        Ok(answer) => answer,
                        // SAP refused the session's CSRF token: its answer is the batch's, as
                        // S/4 refuses a batch with a bad token whole (nothing was written: every
                        // part carries the same token, and reads before it write nothing), so
                        // the client fetches a new token and sends the batch again.
                        Err(whole) => return *whole,
                    }
                }
            };
            answers.push(answer);
        }
        let answer_boundary = format!("batch_{}", uuid::Uuid::new_v4());
        let mut resp = Response::new(full(render_answer(&answer_boundary, &answers)));
        *resp.status_mut() = StatusCode::ACCEPTED;
        if let Ok(v) = HeaderValue::from_str(&answer_content_type(&answer_boundary)) {
            resp.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        resp.headers_mut()
            .insert("dataserviceversion", HeaderValue::from_static("2.0"));
        resp
    }

    /// A changeset: of one change, that change as if sent alone; of several, applied whole or
    /// refused whole (see the module documentation). `Err`: SAP refused the batch's CSRF
    /// token, and its answer is the whole batch's.
    async fn serve_changeset(
        &self,
        outer: &http::request::Parts,
        root: &str,
        changes: &[PartRequest],
        route: &Route,
        budget: &mut usize,
    ) -> Result<AnswerPart, Box<Response<ProxyBody>>> {
        let resp = match changes {
            [] => {
                return Ok(AnswerPart::Changeset {
                    boundary: changeset_boundary(),
                    responses: Vec::new(),
                });
            }
            [one] if one.is_retrieve() => refusal(&BatchError::RetrieveInChangeset),
            [one] => {
                let resp = self.serve_part(outer, root, one, route).await;
                if csrf_refused(&resp) {
                    return Err(Box::new(resp));
                }
                resp
            }
            several if route.mode == crate::routing::routes::Mode::DualWrite => {
                crate::observe::batch_changeset_refused(several.len());
                ProxyError::NotSupported(SEVERAL_CHANGES_IN_DUAL_WRITE.into()).to_response()
            }
            several => match self.face_changes(outer, root, several) {
                Ok(parts) => match self.sales_orders.change_set(&parts).await {
                    Ok(answers) => {
                        let mut responses = Vec::with_capacity(answers.len());
                        for a in answers {
                            responses.push(answer_part(a, budget).await);
                        }
                        return Ok(AnswerPart::Changeset {
                            boundary: changeset_boundary(),
                            responses,
                        });
                    }
                    Err(refused) => *refused,
                },
                Err(refused) => *refused,
            },
        };
        let failed = resp.status().is_client_error() || resp.status().is_server_error();
        let part = answer_part(resp, budget).await;
        Ok(if failed {
            // SAP answers a failed changeset with its error alone.
            AnswerPart::Response(part)
        } else {
            AnswerPart::Changeset {
                boundary: changeset_boundary(),
                responses: vec![part],
            }
        })
    }

    /// The changes of a changeset of several, each as the SAP face takes it alone; refused
    /// whole (nothing applied) when one is not a change of an existing order: a read (`400`,
    /// as the emulator), a part that is no request, or a create (`501`: a create with other
    /// changes in one changeset is not served by the order service yet).
    fn face_changes(
        &self,
        outer: &http::request::Parts,
        root: &str,
        changes: &[PartRequest],
    ) -> Result<Vec<crate::face::write::ChangesetPart>, Box<Response<ProxyBody>>> {
        let mut parts = Vec::with_capacity(changes.len());
        for r in changes {
            if r.is_retrieve() {
                return Err(Box::new(refusal(&BatchError::RetrieveInChangeset)));
            }
            let head = part_head(outer, root, r).map_err(|e| Box::new(e.to_response()))?;
            let method = crate::face::write::effective_method(&head.method, &head.headers);
            let below = crate::face::write::below_root(head.uri.path());
            let change = match classify(&method, head.uri.path()) {
                crate::routing::sales_orders::Operation::SalesOrderChange => {
                    crate::face::write::change_of(&method, &below)
                }
                _ => None,
            };
            let Some(change) = change else {
                crate::observe::batch_changeset_refused(changes.len());
                return Err(Box::new(
                    ProxyError::NotSupported(SEVERAL_CHANGES.into()).to_response(),
                ));
            };
            parts.push(crate::face::write::ChangesetPart {
                parts: head,
                change,
                body: Bytes::from(r.body.clone().into_bytes()),
            });
        }
        Ok(parts)
    }

    /// One part, classified, planned and handled exactly as the same request alone.
    async fn serve_part(
        &self,
        outer: &http::request::Parts,
        root: &str,
        r: &PartRequest,
        route: &Route,
    ) -> Response<ProxyBody> {
        let head = match part_head(outer, root, r) {
            Ok(h) => h,
            Err(refused) => return refused.to_response(),
        };
        let method = crate::face::write::effective_method(&head.method, &head.headers);
        let op = classify(&method, head.uri.path());
        let plan = self.plan(
            op,
            Some(route.mode),
            head.uri.path(),
            head.headers
                .contains_key(&platform::correlation::IDEMPOTENCY_HEADER),
        );
        let body = Bytes::from(r.body.clone().into_bytes());
        self.serve_planned(plan, op, Some(route), head, Inbound::Whole(body))
            .await
    }
}

/// SAP's refusal of a session's CSRF token: `403` with `x-csrf-token: Required`.
fn csrf_refused(resp: &Response<ProxyBody>) -> bool {
    resp.status() == StatusCode::FORBIDDEN
        && resp
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("required"))
}

fn changeset_boundary() -> String {
    format!("changeset_{}", uuid::Uuid::new_v4())
}

/// The service root a `$batch` was sent to: its path without the last segment
/// (`.../API_SALES_ORDER_SRV/$batch/` → `.../API_SALES_ORDER_SRV`).
fn service_root_of(batch_path: &str) -> &str {
    let trimmed = batch_path.trim_end_matches('/');
    trimmed.rsplit_once('/').map_or("", |(root, _)| root)
}

/// Why a part cannot become a request of its own.
#[derive(Debug)]
pub(crate) enum PartRefused {
    /// Refused by the wire format (unknown method, Content-ID reference).
    Wire(BatchError),
    /// A URL that is no URI.
    Unparsable,
}

impl PartRefused {
    fn to_response(&self) -> Response<ProxyBody> {
        match self {
            PartRefused::Wire(e) => refusal(e),
            PartRefused::Unparsable => odata_error(
                StatusCode::BAD_REQUEST,
                "/IWFND/CM_MGW/025",
                "The resource path could not be parsed",
            ),
        }
    }
}

/// The head of a part as a request of its own: the part's method, URL (below the batch's
/// service root, with the batch's `sap-client`) and headers over the batch's inherited ones.
pub(crate) fn part_head(
    outer: &http::request::Parts,
    root: &str,
    r: &PartRequest,
) -> Result<http::request::Parts, PartRefused> {
    let (path, query) = resolve_target(root, &r.target, &|_| None).map_err(PartRefused::Wire)?;
    let method = Method::from_bytes(r.method.as_bytes()).map_err(|_| {
        PartRefused::Wire(BatchError::UnknownMethod {
            method: r.method.clone(),
        })
    })?;
    let query = with_sap_client(&query, outer.uri.query().unwrap_or_default());
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let uri: http::Uri = target.parse().map_err(|_| PartRefused::Unparsable)?;
    let mut headers = outer.headers.clone();
    for name in NOT_INHERITED {
        headers.remove(name);
    }
    let mut own = HeaderMap::new();
    for (k, v) in &r.headers {
        let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) else {
            continue;
        };
        // The part's body is framed by the batch; its encoding is the proxy's to ask for
        // (answers are embedded as text), and it is sent to the batch's host.
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::ACCEPT_ENCODING,
            header::HOST,
        ]
        .contains(&k)
        {
            continue;
        }
        own.append(k, v);
    }
    for name in own.keys() {
        headers.remove(name);
    }
    for (k, v) in &own {
        headers.append(k, v.clone());
    }
    if !r.body.is_empty() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.body.len()));
    }
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req.into_parts().0)
}

/// The part's query with the batch's `sap-client` added when the part names none (SAP applies
/// the batch's client to every part).
fn with_sap_client(part_query: &str, batch_query: &str) -> String {
    let is_client = |p: &&str| p.to_ascii_lowercase().starts_with("sap-client=");
    let client = batch_query.split('&').find(is_client);
    match client {
        Some(c) if !part_query.split('&').any(|p| is_client(&p)) => {
            if part_query.is_empty() {
                c.to_owned()
            } else {
                format!("{part_query}&{c}")
            }
        }
        _ => part_query.to_owned(),
    }
}

/// A response as an answer part: its status, the headers SAP carries in parts, and its body,
/// read within what is left of the batch's answer `budget` (a part beyond it is answered with
/// an error instead, so a batch of large reads cannot grow the answer without bound).
async fn answer_part(resp: Response<ProxyBody>, budget: &mut usize) -> ResponsePart {
    let (head, mut body) = resp.into_parts();
    let limit = *budget;
    let mut bytes = Vec::new();
    let failure = loop {
        match body.frame().await {
            None => break None,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > limit {
                    break Some(ProxyError::NotSupported(format!(
                        "The answers of this $batch exceed {limit} bytes in all; send this request alone"
                    )));
                }
                bytes.extend_from_slice(&data);
            }
            Some(Err(e)) => {
                break Some(ProxyError::Upstream {
                    side: Side::Sap,
                    failure: UpstreamFailure::Broken(e.to_string()),
                });
            }
        }
    };
    match failure {
        None => {
            *budget = budget.saturating_sub(bytes.len());
            part_of(&head, &bytes)
        }
        Some(refused) => {
            let (head, body) = refused.to_response().into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            part_of(&head, &bytes)
        }
    }
}

fn part_of(head: &http::response::Parts, body: &[u8]) -> ResponsePart {
    ResponsePart::of_answer(head.status, &head.headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outer(query: &str) -> http::request::Parts {
        let mut req = Request::new(());
        *req.method_mut() = Method::POST;
        *req.uri_mut() = format!("/sap/opu/odata/sap/API_SALES_ORDER_SRV/$batch{query}")
            .parse()
            .unwrap();
        let h = req.headers_mut();
        h.insert("authorization", HeaderValue::from_static("Basic eDp5"));
        h.insert("cookie", HeaderValue::from_static("SAP_SESSIONID=1"));
        h.insert("host", HeaderValue::from_static("proxy:8080"));
        h.insert(
            "content-type",
            HeaderValue::from_static("multipart/mixed; boundary=b"),
        );
        h.insert("accept", HeaderValue::from_static("multipart/mixed"));
        h.insert("idempotency-key", HeaderValue::from_static("k"));
        req.into_parts().0
    }

    fn part(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> PartRequest {
        PartRequest {
            content_id: None,
            method: method.into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.into(),
        }
    }

    #[test]
    fn a_part_carries_the_batch_logon_and_its_own_headers_under_the_batch_root() {
        let o = outer("?sap-client=100");
        let root = service_root_of(o.uri.path());
        assert_eq!(root, "/sap/opu/odata/sap/API_SALES_ORDER_SRV");
        assert_eq!(
            service_root_of("/sap/opu/odata/sap/API_SALES_ORDER_SRV/%24batch/"),
            root
        );
        let p = part(
            "PATCH",
            "A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10')",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
                ("Content-Length", "999"),
                ("If-Match", "W/\"3\""),
            ],
            "{\"RequestedQuantity\":\"3\"}",
        );
        let head = part_head(&o, root, &p).unwrap();
        assert_eq!(head.method, Method::PATCH);
        assert_eq!(
            head.uri.to_string(),
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10')?sap-client=100"
        );
        let h = &head.headers;
        assert_eq!(h["authorization"], "Basic eDp5");
        assert_eq!(h["cookie"], "SAP_SESSIONID=1");
        assert_eq!(h["host"], "proxy:8080");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["if-match"], "W/\"3\"");
        assert_eq!(h["content-length"], p.body.len().to_string().as_str());
        assert!(
            !h.contains_key("idempotency-key"),
            "the batch's key is its own"
        );
        let get = part("GET", "/A_SalesOrder('1')?$expand=to_Item", &[], "");
        let head = part_head(&o, root, &get).unwrap();
        assert_eq!(
            head.uri.query(),
            Some("$expand=to_Item&sap-client=100"),
            "the batch's client"
        );
        assert!(!head.headers.contains_key("accept"));
        assert!(!head.headers.contains_key("content-length"));
    }

    #[test]
    fn a_part_sap_could_not_parse_is_refused_in_its_part() {
        let o = outer("");
        for p in [
            part("GET", "$1/to_Item", &[], ""),
            part("GE(T", "A_SalesOrder", &[], ""),
            part("GET", "A_SalesOrder('\u{1}')", &[], ""),
        ] {
            let r = part_head(&o, "/r", &p).unwrap_err().to_response();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{p:?}");
        }
    }

    #[test]
    fn no_part_input_panics_the_part_head() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "/%'()=,?&$A_SalesOrder:é€\u{10348} \r\n\u{0}1"
            .chars()
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(31);
        let o = outer("?sap-client=100");
        for _ in 0..5_000 {
            let mut text = || -> String {
                let n = rng.random_range(0..24);
                (0..n)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            };
            let (m, t, k, v) = (text(), text(), text(), text());
            let _ = part_head(
                &o,
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV",
                &part(&m, &t, &[(&k, &v)], ""),
            );
            let _ = with_sap_client(&t, &k);
            let _ = service_root_of(&t);
        }
    }
}
