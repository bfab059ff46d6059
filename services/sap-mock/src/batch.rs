//! `POST .../$batch`: several requests in one `multipart/mixed` body, as OData V2 defines it
//! (odata.org, "Batch Processing", V2) and SAP Gateway answers it.
//!
//! The body is a sequence of parts: a retrieve request (`application/http`, a `GET`) or a
//! changeset (`multipart/mixed` with its own boundary) of change requests. Each part is served
//! exactly as the same request sent alone would be ([`crate::odata::serve`]), with the logon,
//! client and CSRF check of the `$batch` request itself. A changeset is atomic: its changes run
//! inside one [`Store::changeset`](crate::store::Store::changeset), and if one fails nothing of
//! the changeset is stored and its answer is that single error response. The answer is
//! `202 Accepted` with one `multipart/mixed` part per request part, in order.
//!
//! Content-ID referencing: a change with `Content-ID: n` that creates an entity can be named
//! `$n` by the URL of a later change of the same changeset.

use std::collections::HashMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use crate::error::{SapError, codes};
use crate::events::{Event, record};
use crate::odata::{RequestContext, effective_method, serve as serve_one};
use crate::store::ChangesetOutcome;

/// One request inside the batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRequest {
    /// `Content-ID` of the MIME part, if any.
    pub content_id: Option<String>,
    /// Method of the request line.
    pub method: String,
    /// URL of the request line (absolute, absolute path, or relative to the service root).
    pub target: String,
    /// Headers of the embedded request.
    pub headers: Vec<(String, String)>,
    /// Body of the embedded request.
    pub body: String,
}

/// One part of the batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchPart {
    /// A request outside any changeset (a retrieve).
    Request(PartRequest),
    /// A changeset: change requests applied all or nothing.
    Changeset(Vec<PartRequest>),
}

fn invalid(message: impl Into<String>) -> SapError {
    SapError::bad_request(codes::BATCH_INVALID, message)
}

/// The `boundary` parameter of a `multipart/mixed` content type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// Lines of `text` with their byte offsets (each line without its `\r\n` / `\n`).
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str, usize)> {
    let mut offset = 0;
    text.split_inclusive('\n').map(move |line| {
        let start = offset;
        offset += line.len();
        (start, line.trim_end_matches(['\r', '\n']), offset)
    })
}

/// The parts between `--boundary` delimiter lines up to `--boundary--`; the line break before
/// a delimiter belongs to it.
pub fn split_multipart<'a>(body: &'a str, boundary: &str) -> Result<Vec<&'a str>, SapError> {
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut start = None;
    for (line_start, line, line_end) in lines_with_offsets(body) {
        let line = line.trim_end();
        if line != delimiter && line != close {
            continue;
        }
        if let Some(s) = start {
            let content = body.get(s..line_start).unwrap_or_default();
            let content = content
                .strip_suffix("\r\n")
                .or_else(|| content.strip_suffix('\n'))
                .unwrap_or(content);
            parts.push(content);
        }
        if line == close {
            return Ok(parts);
        }
        start = Some(line_end);
    }
    Err(invalid(format!(
        "The batch body does not end with the delimiter --{boundary}--"
    )))
}

/// Splits a MIME part or an HTTP message at its first empty line: header lines, then body.
fn split_head(text: &str) -> (Vec<&str>, &str) {
    let mut head = Vec::new();
    for (_, line, end) in lines_with_offsets(text) {
        if line.trim().is_empty() {
            return (head, text.get(end..).unwrap_or_default());
        }
        head.push(line);
    }
    (head, "")
}

fn header_pairs(lines: &[&str]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One `application/http` part: its MIME headers, then the embedded request.
fn parse_request_part(mime: &[(String, String)], content: &str) -> Result<PartRequest, SapError> {
    let content_type = find(mime, "content-type").unwrap_or_default();
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/http")
    {
        return Err(invalid(format!(
            "A batch part must be application/http or multipart/mixed, not '{content_type}'"
        )));
    }
    let content = content.trim_start_matches(['\r', '\n']);
    let (head, body) = split_head(content);
    let (request_line, header_lines) = head
        .split_first()
        .ok_or_else(|| invalid("A batch part has no request line"))?;
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(invalid(format!(
            "Malformed request line '{request_line}' in a batch part"
        )));
    };
    Ok(PartRequest {
        content_id: find(mime, "content-id").map(str::to_owned),
        method: method.to_ascii_uppercase(),
        target: target.to_owned(),
        headers: header_pairs(header_lines),
        body: body.trim_end().to_owned(),
    })
}

/// Parses a batch body with the top-level `boundary`.
pub fn parse(body: &str, boundary: &str) -> Result<Vec<BatchPart>, SapError> {
    let mut parts = Vec::new();
    for part in split_multipart(body, boundary)? {
        let (head, content) = split_head(part);
        let mime = header_pairs(&head);
        let content_type = find(&mime, "content-type").unwrap_or_default();
        if let Some(inner) = boundary_of(content_type) {
            let requests = split_multipart(content, &inner)?
                .into_iter()
                .map(|p| {
                    let (head, content) = split_head(p);
                    parse_request_part(&header_pairs(&head), content)
                })
                .collect::<Result<Vec<_>, _>>()?;
            parts.push(BatchPart::Changeset(requests));
        } else {
            parts.push(BatchPart::Request(parse_request_part(&mime, content)?));
        }
    }
    Ok(parts)
}

/// Answers `POST .../$batch`.
pub(crate) async fn serve(ctx: &RequestContext<'_>, body: Body) -> Result<Response, SapError> {
    if ctx.method != Method::POST {
        return Err(SapError::method_not_allowed(ctx.method.as_str()));
    }
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = boundary_of(content_type).ok_or_else(|| {
        SapError::new(
            StatusCode::BAD_REQUEST,
            codes::BATCH_INVALID,
            "A $batch request needs Content-Type: multipart/mixed; boundary=...",
        )
    })?;
    let max = ctx.app.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        SapError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!("The request body exceeds the maximum size of {max} bytes"),
        )
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("The batch body is not UTF-8"))?;
    let parts = parse(text, &boundary)?;

    let answer_boundary = format!("batch_{}", uuid::Uuid::new_v4());
    let mut out = String::new();
    for part in &parts {
        out.push_str(&format!("--{answer_boundary}\r\n"));
        match part {
            BatchPart::Request(r) => {
                let response = if r.method == "GET" {
                    run_part(ctx, r, &HashMap::new()).await
                } else {
                    invalid(format!(
                        "{} outside a changeset: changes must be sent in a changeset",
                        r.method
                    ))
                    .into_response()
                };
                out.push_str(&http_part(response).await);
            }
            BatchPart::Changeset(requests) => {
                out.push_str(&run_changeset(ctx, requests).await?);
            }
        }
    }
    out.push_str(&format!("--{answer_boundary}--\r\n"));
    let mut r = (StatusCode::ACCEPTED, out).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={answer_boundary}")) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(r)
}

/// Runs a changeset inside one store changeset; answers the multipart of its responses, or
/// the first failure alone (and nothing stored).
async fn run_changeset(
    ctx: &RequestContext<'_>,
    requests: &[PartRequest],
) -> Result<String, SapError> {
    let work = async {
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut responses = Vec::new();
        for r in requests {
            let response = if r.method == "GET" {
                invalid("A changeset must not contain GET requests").into_response()
            } else {
                run_part(ctx, r, &ids).await
            };
            if response.status().is_client_error() || response.status().is_server_error() {
                return (Err(response), ChangesetOutcome::Discard);
            }
            if let (Some(id), Some(location)) = (
                &r.content_id,
                response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok()),
            ) && let Some((_, below)) = location.split_once(ctx.root)
            {
                ids.insert(id.clone(), below.to_owned());
            }
            responses.push(response);
        }
        (Ok(responses), ChangesetOutcome::Commit)
    };
    let outcome = ctx.app.store.changeset(work).await.map_err(|e| {
        tracing::error!(error = %e, "sap_mock_storage_failed");
        SapError::internal()
    })?;
    match outcome {
        Err(failed) => Ok(http_part(failed).await),
        Ok(responses) => {
            let cs = format!("changeset_{}", uuid::Uuid::new_v4());
            let mut body = String::new();
            for r in responses {
                body.push_str(&format!("--{cs}\r\n"));
                body.push_str(&http_part(r).await);
            }
            body.push_str(&format!("--{cs}--\r\n"));
            Ok(format!(
                "Content-Type: multipart/mixed; boundary={cs}\r\nContent-Length: {}\r\n\r\n{body}\r\n",
                body.len()
            ))
        }
    }
}

/// The path below the service root and the query of a part's URL; `$n` names the entity
/// created by the change with `Content-ID: n`.
fn resolve_target(
    root: &str,
    target: &str,
    ids: &HashMap<String, String>,
) -> Result<(String, String), SapError> {
    let mut t = target;
    for scheme in ["http://", "https://"] {
        if let Some(rest) = t.strip_prefix(scheme) {
            t = rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/");
        }
    }
    let (path, query) = t.split_once('?').unwrap_or((t, ""));
    let below = if let Some(rest) = path.strip_prefix(root) {
        rest.to_owned()
    } else if let Some(reference) = path.strip_prefix('$') {
        let end = reference.find(['/', '(']).unwrap_or(reference.len());
        let (id, tail) = reference.split_at(end);
        let entity = ids.get(id).ok_or_else(|| {
            invalid(format!(
                "Content-ID ${id} does not name an entity created earlier in this changeset"
            ))
        })?;
        format!("{entity}{tail}")
    } else if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((format!("{root}{below}"), query.to_owned()))
}

/// Serves one part as if it had been sent alone, with the batch's logon.
async fn run_part(
    ctx: &RequestContext<'_>,
    r: &PartRequest,
    ids: &HashMap<String, String>,
) -> Response {
    let answer = async {
        let (path, query) = resolve_target(ctx.root, &r.target, ids)?;
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        if let Some(host) = ctx.headers.get(header::HOST) {
            headers.entry(header::HOST).or_insert(host.clone());
        }
        let method = Method::from_bytes(r.method.as_bytes())
            .map_err(|_| invalid(format!("Unknown method {} in a batch part", r.method)))?;
        let method = effective_method(&method, &headers);
        let inner = RequestContext {
            app: ctx.app,
            root: ctx.root,
            method: &method,
            headers: &headers,
            raw_path: &path,
            raw_query: &query,
            principal: ctx.principal,
        };
        serve_one(&inner, Body::from(r.body.clone())).await
    };
    match answer.await {
        Ok(r) => r,
        Err(e) => {
            record(Event::Refused(e.status.as_u16(), e.code));
            e.into_response()
        }
    }
}

/// A response as an `application/http` MIME part (headers, empty line, the HTTP message).
async fn http_part(r: Response) -> String {
    let (parts, body) = r.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body);
    let status = parts.status;
    let mut message = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    );
    for name in [
        header::CONTENT_TYPE,
        header::LOCATION,
        header::ETAG,
        HeaderName::from_static("sap-message"),
    ] {
        if let Some(v) = parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            message.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    message.push_str(&format!(
        "content-length: {}\r\ndataserviceversion: 2.0\r\n\r\n{body}",
        body.len()
    ));
    format!(
        "Content-Type: application/http\r\nContent-Length: {}\r\ncontent-transfer-encoding: binary\r\n\r\n{message}\r\n",
        message.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape SAP's JavaScript client serializes (batch-request-serializer.ts), with CRLF.
    const SDK_BODY: &str = "--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_a\r\n\r\n--changeset_a\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-Id: 1\r\n\r\nPATCH /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10') HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n\r\n{\"RequestedQuantity\":\"3\"}\r\n\r\n--changeset_a--\r\n--batch_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('1') HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--batch_1--\r\n";

    #[test]
    fn the_sdk_batch_body_parses_into_a_changeset_and_a_retrieve() {
        let parts = parse(SDK_BODY, "batch_1").unwrap();
        assert_eq!(parts.len(), 2);
        let BatchPart::Changeset(changes) = &parts[0] else {
            panic!("{parts:?}")
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].method, "PATCH");
        assert_eq!(changes[0].content_id.as_deref(), Some("1"));
        assert_eq!(changes[0].body, "{\"RequestedQuantity\":\"3\"}");
        let BatchPart::Request(get) = &parts[1] else {
            panic!("{parts:?}")
        };
        assert_eq!(get.method, "GET");
        assert_eq!(get.body, "");
        assert_eq!(find(&get.headers, "accept"), Some("application/json"));
    }

    #[test]
    fn bare_line_feeds_parse_too() {
        let lf = SDK_BODY.replace("\r\n", "\n");
        assert_eq!(
            parse(&lf, "batch_1").unwrap(),
            parse(SDK_BODY, "batch_1").unwrap()
        );
    }

    #[test]
    fn a_body_without_its_closing_delimiter_is_refused() {
        let cut = SDK_BODY.replace("--batch_1--", "");
        assert!(parse(&cut, "batch_1").is_err());
        assert!(parse("", "b").is_err());
        assert!(parse("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "b").is_err());
    }

    #[test]
    fn boundaries_come_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/mixed; boundary=batch_x").as_deref(),
            Some("batch_x")
        );
        assert_eq!(
            boundary_of("Multipart/Mixed;boundary=\"b 1\"").as_deref(),
            Some("b 1")
        );
        assert_eq!(boundary_of("application/json"), None);
        assert_eq!(boundary_of("multipart/mixed"), None);
    }

    #[test]
    fn part_urls_resolve_below_the_root_in_every_form_the_sdk_sends() {
        let root = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
        let ids = HashMap::from([("1".to_owned(), "/A_SalesOrder('8000000001')".to_owned())]);
        for (target, path, query) in [
            (
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder?$top=1",
                "/A_SalesOrder",
                "$top=1",
            ),
            (
                "http://h:1/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder",
                "/A_SalesOrder",
                "",
            ),
            ("/A_SalesOrder", "/A_SalesOrder", ""),
            ("A_SalesOrder", "/A_SalesOrder", ""),
            ("$1/to_Item", "/A_SalesOrder('8000000001')/to_Item", ""),
        ] {
            let (p, q) = resolve_target(root, target, &ids).unwrap();
            assert_eq!(p, format!("{root}{path}"), "{target}");
            assert_eq!(q, query, "{target}");
        }
        assert!(resolve_target(root, "$2", &ids).is_err());
    }

    #[test]
    fn arbitrary_bodies_never_panic() {
        for body in [
            "--b",
            "--b\n",
            "--b\r\n\r\n--b--",
            "--b\n\n\n--b--",
            "--bé\n--b--",
            "\u{0}--b--",
        ] {
            let _ = parse(body, "b");
        }
    }
}
