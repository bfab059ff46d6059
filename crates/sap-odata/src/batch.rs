//! The `$batch` wire format of OData V2 as SAP Gateway speaks it: a `multipart/mixed` request
//! body of retrieve requests and changesets, and the `multipart/mixed` answer of
//! `application/http` parts. No execution: what a part *means* is the server's business (the
//! emulator runs it against its store, the proxy against the order service or SAP).
//!
//! Written against SAP Cloud SDK for JavaScript's batch serializer and parser
//! (`packages/odata-common/src/request-builder/batch/batch-request-serializer.ts`,
//! `batch-response-parser.ts`; see `docs/sap-mock.md`, "$batch"):
//!
//! - the body is a sequence of parts between `--boundary` lines, ended by `--boundary--`
//!   (CRLF or bare LF); the line break before a delimiter belongs to it;
//! - a part is either `Content-Type: application/http` with one embedded request (request line,
//!   headers, empty line, body), or `Content-Type: multipart/mixed; boundary=...`: a changeset
//!   of such requests;
//! - the answer is one part per request part, in order: an `application/http` part for a
//!   retrieve (or a failed changeset's single error), a `multipart/mixed` part with one
//!   `application/http` part per change for a changeset that succeeded. Parts carry
//!   `Content-Length`; a part's body is its last line (the SDK reads it so).
//!
//! Hostile input never panics: no byte-offset slicing without `get`, no indexing.
//!
//! ```
//! use sap_odata::batch::{self, BatchPart};
//!
//! let body = "--b\r\nContent-Type: application/http\r\n\r\nGET A_SalesOrder('1') HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n--b--\r\n";
//! let boundary = batch::boundary_of("multipart/mixed; boundary=b").unwrap();
//! let parts = batch::parse(body, &boundary).unwrap();
//! let BatchPart::Request(get) = &parts[0] else { unreachable!() };
//! assert_eq!((get.method.as_str(), get.target.as_str()), ("GET", "A_SalesOrder('1')"));
//! assert_eq!(get.header("accept"), Some("application/json"));
//! ```

use std::fmt::Write as _;

/// The SAP message id of every `$batch` wire-format refusal (Gateway's message class
/// `/IWFND/CM_MGW`).
pub const BATCH_INVALID: &str = "/IWFND/CM_MGW/004";

/// Headers of a response that an answer part carries (lower case, as written), besides the
/// `content-length` and `dataserviceversion` every part gets.
pub const PART_RESPONSE_HEADERS: [&str; 4] = ["content-type", "location", "etag", "sap-message"];

/// A `$batch` body or part SAP Gateway would refuse. The messages are the emulator's (its
/// tests pin them); [`BatchError::sap_code`] gives the message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The request's `Content-Type` is not `multipart/mixed` with a boundary.
    #[error("A $batch request needs Content-Type: multipart/mixed; boundary=...")]
    NotMultipart,
    /// The body is not UTF-8.
    #[error("The batch body is not UTF-8")]
    NotUtf8,
    /// No closing `--boundary--` line.
    #[error("The batch body does not end with the delimiter --{boundary}--")]
    Unterminated {
        /// The boundary whose closing delimiter is missing.
        boundary: String,
    },
    /// A part that is neither `application/http` nor `multipart/mixed`.
    #[error("A batch part must be application/http or multipart/mixed, not '{content_type}'")]
    NotHttp {
        /// The part's content type as sent.
        content_type: String,
    },
    /// A part without a request line.
    #[error("A batch part has no request line")]
    NoRequestLine,
    /// A request line without method and target.
    #[error("Malformed request line '{line}' in a batch part")]
    MalformedRequestLine {
        /// The line as sent.
        line: String,
    },
    /// More requests than the server takes in one batch.
    #[error("The batch holds more than {limit} requests; send at most {limit} per $batch")]
    TooManyRequests {
        /// The limit.
        limit: usize,
    },
    /// A change outside any changeset.
    #[error("{method} outside a changeset: changes must be sent in a changeset")]
    ChangeOutsideChangeset {
        /// The change's method.
        method: String,
    },
    /// A `GET` inside a changeset.
    #[error("A changeset must not contain GET requests")]
    RetrieveInChangeset,
    /// A method that is no HTTP method.
    #[error("Unknown method {method} in a batch part")]
    UnknownMethod {
        /// The method as sent.
        method: String,
    },
    /// `$n` names no entity created earlier in the changeset.
    #[error("Content-ID ${id} does not name an entity created earlier in this changeset")]
    UnknownContentId {
        /// The Content-ID referred to.
        id: String,
    },
}

impl BatchError {
    /// SAP's message id for the refusal (every one is a `400 Bad Request`).
    pub fn sap_code(&self) -> &'static str {
        BATCH_INVALID
    }
}

/// One request inside the batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRequest {
    /// `Content-ID` of the MIME part, if any.
    pub content_id: Option<String>,
    /// Method of the request line, upper case.
    pub method: String,
    /// URL of the request line (absolute, absolute path, or relative to the service root).
    pub target: String,
    /// Headers of the embedded request, in order.
    pub headers: Vec<(String, String)>,
    /// Body of the embedded request (trailing white space removed).
    pub body: String,
}

impl PartRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Whether the request is a retrieve (`GET`), the only kind allowed outside a changeset.
    pub fn is_retrieve(&self) -> bool {
        self.method == "GET"
    }
}

/// One part of the batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchPart {
    /// A request outside any changeset (a retrieve).
    Request(PartRequest),
    /// A changeset: change requests applied all or nothing.
    Changeset(Vec<PartRequest>),
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
pub fn split_multipart<'a>(body: &'a str, boundary: &str) -> Result<Vec<&'a str>, BatchError> {
    split_at_most(body, boundary, usize::MAX)
}

/// As [`split_multipart`], refusing a body of more than `max` parts before collecting them.
fn split_at_most<'a>(
    body: &'a str,
    boundary: &str,
    max: usize,
) -> Result<Vec<&'a str>, BatchError> {
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
            if parts.len() >= max {
                return Err(BatchError::TooManyRequests { limit: max });
            }
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
    Err(BatchError::Unterminated {
        boundary: boundary.to_owned(),
    })
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

/// The first value of header `name` (any case) in `headers`.
pub fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One `application/http` part: its MIME headers, then the embedded request.
fn parse_request_part(mime: &[(String, String)], content: &str) -> Result<PartRequest, BatchError> {
    let content_type = find(mime, "content-type").unwrap_or_default();
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/http")
    {
        return Err(BatchError::NotHttp {
            content_type: content_type.to_owned(),
        });
    }
    let content = content.trim_start_matches(['\r', '\n']);
    let (head, body) = split_head(content);
    let (request_line, header_lines) = head.split_first().ok_or(BatchError::NoRequestLine)?;
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(BatchError::MalformedRequestLine {
            line: (*request_line).to_owned(),
        });
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
pub fn parse(body: &str, boundary: &str) -> Result<Vec<BatchPart>, BatchError> {
    parse_at_most(body, boundary, usize::MAX)
}

/// As [`parse`], refusing a body of more than `max_requests` requests (retrieves and changes
/// together, and as many changesets) before it is parsed further.
pub fn parse_at_most(
    body: &str,
    boundary: &str,
    max_requests: usize,
) -> Result<Vec<BatchPart>, BatchError> {
    let mut parts = Vec::new();
    let mut requests = 0usize;
    for part in split_at_most(body, boundary, max_requests)? {
        let (head, content) = split_head(part);
        let mime = header_pairs(&head);
        let content_type = find(&mime, "content-type").unwrap_or_default();
        if let Some(inner) = boundary_of(content_type) {
            let left = max_requests.saturating_sub(requests);
            let changes = split_at_most(content, &inner, left).map_err(|e| match e {
                BatchError::TooManyRequests { .. } => BatchError::TooManyRequests {
                    limit: max_requests,
                },
                e => e,
            })?;
            requests += changes.len();
            let changes = changes
                .into_iter()
                .map(|p| {
                    let (head, content) = split_head(p);
                    parse_request_part(&header_pairs(&head), content)
                })
                .collect::<Result<Vec<_>, _>>()?;
            parts.push(BatchPart::Changeset(changes));
        } else {
            requests += 1;
            if requests > max_requests {
                return Err(BatchError::TooManyRequests {
                    limit: max_requests,
                });
            }
            parts.push(BatchPart::Request(parse_request_part(&mime, content)?));
        }
    }
    Ok(parts)
}

/// The path (with `root` in front) and the query a part's URL names. `target` may be absolute
/// (`http://host/<root>/...`), an absolute path with the root, or relative to the root;
/// `$n/...` names the entity created by the change with `Content-ID: n`, which `created`
/// resolves to its path below the root (a server without Content-ID references passes a
/// function that knows none).
pub fn resolve_target(
    root: &str,
    target: &str,
    created: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, String), BatchError> {
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
        let entity =
            created(id).ok_or_else(|| BatchError::UnknownContentId { id: id.to_owned() })?;
        format!("{entity}{tail}")
    } else if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok((format!("{root}{below}"), query.to_owned()))
}

/// One HTTP response as an answer part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePart {
    /// Status code.
    pub status: u16,
    /// Reason phrase of the status line (`OK`, `No Content`).
    pub reason: String,
    /// Headers, written as given (see [`PART_RESPONSE_HEADERS`] for the ones SAP writes).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl ResponsePart {
    /// The part of an answer with this status, headers and body, keeping the headers SAP
    /// writes in a part ([`PART_RESPONSE_HEADERS`]).
    pub fn of_answer(status: http::StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Self {
        Self {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or_default().to_owned(),
            headers: PART_RESPONSE_HEADERS
                .iter()
                .filter_map(|name| {
                    let v = headers.get(*name)?.to_str().ok()?;
                    Some(((*name).to_owned(), v.to_owned()))
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

/// One part of the batch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerPart {
    /// The answer to a retrieve, or a changeset's single error.
    Response(ResponsePart),
    /// The answers to a changeset that succeeded, one per change.
    Changeset {
        /// Boundary of the changeset part (`changeset_<unique>`).
        boundary: String,
        /// The answers, in the order of the changes.
        responses: Vec<ResponsePart>,
    },
}

/// The `Content-Type` of a batch answer with `boundary`.
pub fn answer_content_type(boundary: &str) -> String {
    format!("multipart/mixed; boundary={boundary}")
}

/// The batch answer's body: one part per answer, between `--boundary` lines.
pub fn render_answer(boundary: &str, parts: &[AnswerPart]) -> String {
    let mut out = String::new();
    for part in parts {
        let _ = write!(out, "--{boundary}\r\n");
        match part {
            AnswerPart::Response(r) => out.push_str(&http_part(r)),
            AnswerPart::Changeset {
                boundary: cs,
                responses,
            } => {
                let mut body = String::new();
                for r in responses {
                    let _ = write!(body, "--{cs}\r\n");
                    body.push_str(&http_part(r));
                }
                let _ = write!(body, "--{cs}--\r\n");
                let _ = write!(
                    out,
                    "Content-Type: multipart/mixed; boundary={cs}\r\nContent-Length: {}\r\n\r\n{body}\r\n",
                    body.len()
                );
            }
        }
    }
    let _ = write!(out, "--{boundary}--\r\n");
    out
}

/// A response as an `application/http` MIME part (headers, empty line, the HTTP message).
fn http_part(r: &ResponsePart) -> String {
    let mut message = format!("HTTP/1.1 {} {}\r\n", r.status, r.reason);
    for (name, value) in &r.headers {
        let _ = write!(message, "{name}: {value}\r\n");
    }
    let _ = write!(
        message,
        "content-length: {}\r\ndataserviceversion: 2.0\r\n\r\n{}",
        r.body.len(),
        r.body
    );
    format!(
        "Content-Type: application/http\r\nContent-Length: {}\r\ncontent-transfer-encoding: binary\r\n\r\n{message}\r\n",
        message.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        assert!(get.is_retrieve());
        assert_eq!(get.body, "");
        assert_eq!(get.header("accept"), Some("application/json"));
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
        assert_eq!(
            parse(&cut, "batch_1"),
            Err(BatchError::Unterminated {
                boundary: "batch_1".into()
            })
        );
        assert!(parse("", "b").is_err());
        assert!(matches!(
            parse("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "b"),
            Err(BatchError::NotHttp { .. })
        ));
    }

    #[test]
    fn more_requests_than_the_limit_are_refused_counting_changes_inside_changesets() {
        assert_eq!(parse_at_most(SDK_BODY, "batch_1", 2).unwrap().len(), 2);
        assert_eq!(
            parse_at_most(SDK_BODY, "batch_1", 1),
            Err(BatchError::TooManyRequests { limit: 1 })
        );
        let two_changes = SDK_BODY.replace(
            "--changeset_a--",
            "--changeset_a\r\nContent-Type: application/http\r\n\r\nDELETE A_SalesOrderItem(SalesOrder='1',SalesOrderItem='20') HTTP/1.1\r\n\r\n\r\n--changeset_a--",
        );
        assert_eq!(parse_at_most(&two_changes, "batch_1", 3).unwrap().len(), 2);
        assert_eq!(
            parse_at_most(&two_changes, "batch_1", 2),
            Err(BatchError::TooManyRequests { limit: 2 })
        );
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
        let created = |id: &str| ids.get(id).cloned();
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
            let (p, q) = resolve_target(root, target, &created).unwrap();
            assert_eq!(p, format!("{root}{path}"), "{target}");
            assert_eq!(q, query, "{target}");
        }
        assert_eq!(
            resolve_target(root, "$2", &created),
            Err(BatchError::UnknownContentId { id: "2".into() })
        );
    }

    /// What SAP's JavaScript client reads (batch-response-parser.ts): the boundary from the
    /// content type, parts by their content type, the status from `HTTP/x.y nnn`, the body as
    /// the part's last line.
    #[test]
    fn the_answer_has_the_shape_the_sdk_parser_reads() {
        let ok = ResponsePart {
            status: 200,
            reason: "OK".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"d":{"SalesOrder":"1"}}"#.into(),
        };
        let done = ResponsePart {
            status: 204,
            reason: "No Content".into(),
            headers: vec![("etag".into(), "W/\"2\"".into())],
            body: String::new(),
        };
        let text = render_answer(
            "batch_x",
            &[
                AnswerPart::Response(ok),
                AnswerPart::Changeset {
                    boundary: "changeset_y".into(),
                    responses: vec![done],
                },
            ],
        );
        assert!(text.ends_with("--batch_x--\r\n"));
        let parts = split_multipart(&text, "batch_x").unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("Content-Type: application/http\r\n"));
        assert_eq!(parts[0].lines().last(), Some(r#"{"d":{"SalesOrder":"1"}}"#));
        assert!(parts[0].contains("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"));
        let (head, inner) = split_head(parts[1]);
        let cs = boundary_of(find(&header_pairs(&head), "content-type").unwrap()).unwrap();
        let changes = split_multipart(inner, &cs).unwrap();
        assert_eq!(changes.len(), 1);
        assert!(changes[0].contains("HTTP/1.1 204 No Content\r\netag: W/\"2\"\r\n"));
        // Every declared length is the length that follows.
        let (head, message) = split_head(parts[0]);
        let declared: usize = find(&header_pairs(&head), "content-length")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(declared, message.len());
    }

    #[test]
    fn arbitrary_bodies_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut inputs: Vec<String> = [
            "--b",
            "--b\n",
            "--b\r\n\r\n--b--",
            "--b\n\n\n--b--",
            "--bé\n--b--",
            "\u{0}--b--",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let words = [
            "--b",
            "--b--",
            "--c",
            "--c--",
            "\r\n",
            "\n",
            "Content-Type: ",
            "application/http",
            "multipart/mixed; boundary=c",
            "GET ",
            "PATCH ",
            "$1/to_Item",
            " HTTP/1.1",
            ": ",
            "é",
            "€",
            "\u{10348}",
            "Content-Id: 1",
            "{}",
            "\r",
            " ",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(29);
        for _ in 0..20_000 {
            let n = rng.random_range(0..30);
            inputs.push(
                (0..n)
                    .map(|_| words[rng.random_range(0..words.len())])
                    .collect(),
            );
        }
        let root = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
        for body in &inputs {
            let _ = parse(body, "b");
            if let Ok(parts) = parse_at_most(body, "b", 3) {
                for part in parts {
                    let requests = match part {
                        BatchPart::Request(r) => vec![r],
                        BatchPart::Changeset(c) => c,
                    };
                    for r in requests {
                        let _ = resolve_target(root, &r.target, &|_| None);
                    }
                }
            }
            let _ = resolve_target(root, body, &|_| Some(body.clone()));
            let _ = boundary_of(body);
        }
    }
}
