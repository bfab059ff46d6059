//! Pass-through to SAP: everything the proxy does not handle itself goes to SAP untouched.
//!
//! Method, path and query (the exact bytes the client sent), every end-to-end header (cookies,
//! `x-csrf-token`, authorization, `sap-client`, ...) and the body travel as they are, streamed
//! in both directions. Only hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and the headers it
//! names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are dropped,
//! because they describe one connection, not the message.

use std::time::Duration;

use http::header::{CONNECTION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use crate::error::{ProxyError, Side, UpstreamFailure};
use crate::serve::body::{Guarded, ProxyBody};
use crate::upstreams::upstream::{Upstream, UpstreamBody};

/// Hop-by-hop headers, never forwarded.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a header is hop-by-hop by its name (any case; those named in `Connection` are the
/// callers' to add). Both paths use it: here on header maps, in [`crate::serve::h1`] on raw heads.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names (no hashing) settles that.
    if !headers.keys().any(|n| is_hop_by_hop(n.as_str())) {
        return;
    }
    // RFC 9112 §6.3: a message with Transfer-Encoding is framed by it; an intermediary
    // removes Content-Length before forwarding (both together are a smuggling shape).
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    for name in named {
        headers.remove(name);
    }
}

/// The request to send upstream for a client request's head and (already guarded) body.
pub fn upstream_request(
    parts: &http::request::Parts,
    body: ProxyBody,
    upstream: &Upstream,
    preserve_host: bool,
) -> Request<ProxyBody> {
    upstream_request_owned(
        parts.method.clone(),
        &parts.uri,
        parts.headers.clone(),
        body,
        upstream,
        preserve_host,
    )
}

/// As [`upstream_request`], taking the head's parts by value (no header copy on the hot path).
pub fn upstream_request_owned(
    method: http::Method,
    uri: &http::Uri,
    mut headers: HeaderMap,
    body: ProxyBody,
    upstream: &Upstream,
    preserve_host: bool,
) -> Request<ProxyBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = upstream.uri_for_client(uri);
    *req.version_mut() = Version::HTTP_11;
    strip_hop_by_hop(&mut headers);
    if (!preserve_host || !headers.contains_key(HOST))
        && let Ok(v) = HeaderValue::from_str(upstream.authority().as_str())
    {
        headers.insert(HOST, v);
    }
    *req.headers_mut() = headers;
    req
}

/// The client's response for an upstream response: status and end-to-end headers as they came,
/// the body streamed (with an idle guard, so a stalled upstream body cannot pin the
/// connection).
pub fn client_response(resp: Response<UpstreamBody>, idle: Duration) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.version = Version::HTTP_11;
    let body = Guarded::new(body, idle, usize::MAX).boxed_unsync();
    Response::from_parts(parts, body)
}

/// Forwards a request to SAP and streams the answer back.
pub async fn forward(
    req: Request<Incoming>,
    sap: &Upstream,
    preserve_host: bool,
    client_body_timeout: Duration,
    max_body: usize,
    upstream_idle: Duration,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (parts, body) = req.into_parts();
    if let Some(len) = declared_length(&parts.headers)
        && len > max_body as u64
    {
        return Err(ProxyError::BodyTooLarge { limit: max_body });
    }
    // A complete (empty) body needs no guard: no timer, no allocation.
    let body = if body.is_end_stream() {
        crate::serve::body::empty()
    } else {
        Guarded::new(body, client_body_timeout, max_body).boxed_unsync()
    };
    send(parts, body, sap, preserve_host, upstream_idle).await
}

/// Sends a request whose body is in hand (or already guarded) to SAP and streams the answer
/// back: the second half of [`forward`], also used for the parts of a `$batch` the proxy
/// passes to SAP one by one.
pub async fn send(
    parts: http::request::Parts,
    body: ProxyBody,
    sap: &Upstream,
    preserve_host: bool,
    upstream_idle: Duration,
) -> Result<Response<ProxyBody>, ProxyError> {
    let upstream_req = upstream_request_owned(
        parts.method,
        &parts.uri,
        parts.headers,
        body,
        sap,
        preserve_host,
    );
    let resp = sap
        .send(upstream_req)
        .await
        .map_err(|failure| match failure {
            // The client's own upload failed: its error (408, 413, 400), not SAP's.
            UpstreamFailure::ClientBody(fault) => ProxyError::from(fault),
            failure => ProxyError::Upstream {
                side: Side::Sap,
                failure,
            },
        })?;
    Ok(client_response(resp, upstream_idle))
}

/// The `Content-Length` a request declares, if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_dropped_but_cookies_and_csrf_stay() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("cookie", HeaderValue::from_static("a=1;b=2"));
        h.insert("x-csrf-token", HeaderValue::from_static("tok"));
        h.insert("authorization", HeaderValue::from_static("Basic eDp5"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(names, ["authorization", "cookie", "x-csrf-token"]);
        assert_eq!(h["cookie"], "a=1;b=2");
    }
}
