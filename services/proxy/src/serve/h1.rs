//! The lean HTTP/1.1 pass-through path: the requests the proxy only relays to SAP, served
//! without building a hyper request and response for each.
//!
//! Pass-through is most of the traffic in every phase, and for it hyper's machinery (a header
//! map per message on both sides, a task and a channel per upstream connection, a boxed body
//! per response) was the proxy's whole cost beyond the kernel's: 6 to 7 µs of user time per
//! request against nginx's 3.5 µs (see `docs/benchmarks.md`). This path parses the head with
//! `httparse` (the parser hyper itself uses), writes the upstream request head straight into
//! a buffer, relays the answer from a per-thread pool of plain keep-alive connections, and
//! keeps every guard of the hyper path: admission, the breaker, the upstream timeout and
//! concurrency bound, the body limit, header and body timeouts, metrics.
//!
//! It serves only what it can serve unambiguously, and hands everything else to hyper:
//!
//! - the request must parse completely and strictly as HTTP/1.1 with an origin-form target;
//! - its framing must be plain: no `Transfer-Encoding`, at most one `Content-Length` made only
//!   of digits, no `Expect`, no `Upgrade`, no `Connection` option other than `close` and
//!   `keep-alive` (so no header is made hop-by-hop by name);
//! - and the proxy must have decided to pass it through ([`Plan::PassThrough`]): creates in
//!   `dual-write`, shadowed reads and reads the order service answers all go through hyper.
//!
//! A request that does not qualify is not answered here: the connection, with every byte
//! already read, goes to hyper for the rest of its life ([`ClientIo`]). So a malformed or
//! ambiguous request meets exactly the parser and the checks it met before this path existed,
//! and the request SAP receives is always re-encoded from what was parsed (never the client's
//! raw bytes), so the proxy and SAP cannot disagree on where a request ends.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::error::{ProxyError, Side, UpstreamFailure};
use crate::routing::routes::{Mode, SALES_ORDERS};
use crate::routing::sales_orders::{Operation, classify};
use crate::serve::passthrough::is_hop_by_hop;
use crate::serve::server::{Plan, ProxyState, observe};
use crate::upstreams::upstream::RawConn;

/// Headers per message (hyper's default limit; more goes to hyper, which answers 431).
const MAX_HEADERS: usize = 100;
/// Size of a message head.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Read size.
const READ_CHUNK: usize = 16 * 1024;

/// Serves a client connection on the lean path until it closes (`None`) or a request needs
/// hyper: then the connection and the bytes read but not served come back. Idle, it closes
/// when `shutdown` fires; a request in progress finishes first, and once `draining` is set
/// its answer says `connection: close`.
pub async fn serve(
    mut client: TcpStream,
    state: &Arc<ProxyState>,
    shutdown: &CancellationToken,
    draining: &AtomicBool,
) -> Option<(TcpStream, BytesMut)> {
    let config = &state.config;
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(1024);
    let mut idle = IdleTimer::new(config.keepalive_timeout);
    // Registered once for the connection's life, not once per request.
    let mut stopping = std::pin::pin!(shutdown.cancelled());
    loop {
        // A complete request head.
        let mut head_deadline = None;
        let fwd = loop {
            if !rbuf.is_empty() {
                match analyse(state, &rbuf, &mut out) {
                    Head::Forward(f) => break f,
                    Head::HandOff => return Some((client, rbuf)),
                    Head::Partial if rbuf.len() >= MAX_HEAD_BYTES => return Some((client, rbuf)),
                    Head::Partial => {}
                }
            }
            rbuf.reserve(READ_CHUNK);
            let read = if rbuf.is_empty() {
                // Between requests: until the keep-alive timeout or shutdown.
                tokio::select! {
                    biased;
                    r = client.read_buf(&mut rbuf) => r,
                    () = &mut stopping => return None,
                    () = idle.expired() => return None,
                }
            } else {
                // The head has begun: the rest must come within the header timeout.
                let deadline = *head_deadline
                    .get_or_insert_with(|| Instant::now() + config.client_header_timeout);
                match tokio::time::timeout_at(deadline, client.read_buf(&mut rbuf)).await {
                    Ok(r) => r,
                    Err(_) => return None,
                }
            };
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        };
        rbuf.advance(fwd.head_len);
        let start = std::time::Instant::now();
        let close = fwd.close || draining.load(Ordering::Acquire);
        let result = {
            // Admission, then the body limit, as on the hyper path.
            match state.inflight.try_acquire() {
                Err(_) => Err(Failed::Answer(ProxyError::Overloaded)),
                Ok(_slot) if fwd.body_len > config.max_body_bytes as u64 => {
                    Err(Failed::Answer(ProxyError::BodyTooLarge {
                        limit: config.max_body_bytes,
                    }))
                }
                Ok(_slot) => relay(state, &mut client, &mut rbuf, &mut out, &fwd, close).await,
            }
        };
        match result {
            Ok(Relayed { status, keep_alive }) => {
                observe(fwd.op, fwd.mode, status, start);
                if !keep_alive || close {
                    return None;
                }
            }
            Err(Failed::Answer(error)) => {
                // Nothing was sent to the client yet. The client's body was not read: the
                // connection cannot carry another request, unless there was none.
                let keep = fwd.body_len == 0 && !close;
                let status =
                    write_error(&mut client, error, !keep, fwd.head_method, &mut out).await;
                observe(fwd.op, fwd.mode, status, start);
                if !keep {
                    return None;
                }
            }
            Err(Failed::Drop(status)) => {
                observe(fwd.op, fwd.mode, status, start);
                return None;
            }
        }
        idle.touch();
    }
}

/// A request the lean path serves.
#[derive(Debug)]
struct Forward {
    /// Length of the client's head.
    head_len: usize,
    /// Length of its body.
    body_len: u64,
    /// `HEAD`: the answer has no body whatever its headers say.
    head_method: bool,
    /// May be sent again on another connection if a pooled one turns out closed.
    retryable: bool,
    /// The client asked to close after this exchange.
    close: bool,
    op: Operation,
    mode: Option<Mode>,
}

enum Head {
    Partial,
    HandOff,
    Forward(Forward),
}

/// Parses a request head and, when the lean path serves it, writes the head SAP gets into
/// `out`.
fn analyse(state: &ProxyState, buf: &[u8], out: &mut Vec<u8>) -> Head {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::HandOff,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Head::HandOff;
    };
    if !target.starts_with('/') || !plain_target(target.as_bytes()) {
        return Head::HandOff;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Head::HandOff;
    };
    if method == Method::CONNECT {
        return Head::HandOff;
    }
    let mut body_len = None;
    let mut close = false;
    let mut idempotency_key = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            match (body_len, digits(h.value)) {
                (None, Some(n)) => body_len = Some(n),
                _ => return Head::HandOff,
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Head::HandOff;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
            // A tunnelled method (`X-HTTP-Method`) is classified by what it tunnels.
            || name.eq_ignore_ascii_case("x-http-method")
        {
            return Head::HandOff;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(platform::correlation::IDEMPOTENCY_HEADER.as_str()) {
            idempotency_key = true;
        }
    }
    if hosts > 1 {
        return Head::HandOff;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let op = classify(&method, path);
    let mode = match op {
        Operation::PassThrough => None,
        _ => state.routes.mode(SALES_ORDERS),
    };
    if state.plan(op, mode, path, idempotency_key) != Plan::PassThrough {
        return Head::HandOff;
    }
    // A retired route's session layer is the proxy's own (crate::face::session).
    if crate::face::session::target(path).is_some()
        && state.routes.mode(SALES_ORDERS) == Some(crate::routing::routes::Mode::Retired)
    {
        return Head::HandOff;
    }
    // The head SAP gets: the same request line (behind the upstream's base path), the
    // end-to-end headers in the client's order, `Host` as configured.
    let sap = &state.sap;
    let keep_host = state.config.preserve_host && hosts == 1;
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(sap.prefix().as_bytes());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !keep_host {
        push_header(out, b"host", sap.host_header().as_bytes());
    }
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name) || (!keep_host && h.name.eq_ignore_ascii_case("host")) {
            continue;
        }
        push_header(out, h.name.as_bytes(), h.value);
    }
    out.extend_from_slice(b"\r\n");
    let body_len = body_len.unwrap_or(0);
    Head::Forward(Forward {
        head_len,
        body_len,
        head_method: method == Method::HEAD,
        retryable: body_len == 0 && method.is_idempotent(),
        close,
        op,
        mode,
    })
}

/// Bytes of RFC 3986's path and query (unreserved, sub-delims, `:@/?%`): what SAP's clients
/// send, OData's `('key')`, `$filter=…` and percent-encoding included. A target with any
/// other byte goes to hyper, whose URI parser then decides as it did before this path existed.
const TARGET_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=:@/?%";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

fn plain_target(target: &[u8]) -> bool {
    target.iter().all(|b| TARGET_BYTES[*b as usize])
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Content-Length` value: digits only (no sign, no list, no spaces), no overflow.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A relayed exchange.
struct Relayed {
    status: u16,
    /// The client connection is in step for another request.
    keep_alive: bool,
}

enum Failed {
    /// Nothing reached the client yet: answer with this error.
    Answer(ProxyError),
    /// The exchange broke once the answer had begun (or the client went away): close.
    Drop(u16),
}

impl Failed {
    fn sap(failure: UpstreamFailure) -> Self {
        Failed::Answer(ProxyError::Upstream {
            side: Side::Sap,
            failure,
        })
    }
}

/// What went wrong while sending a request on a connection or waiting for its head.
enum SendError {
    /// The (pooled) connection was closed before any answer: the request may be retried if
    /// it is [`Forward::retryable`].
    Closed(String),
    /// The client stopped sending its body.
    Client(ProxyError),
    Upstream(UpstreamFailure),
}

/// The answer's head, already rewritten for the client into `out`.
struct ResponseHead {
    status: u16,
    head_len: usize,
    framing: Framing,
    /// SAP keeps the connection open after this answer.
    reusable: bool,
    /// The client's connection closes after this answer.
    close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Sends the request to SAP and relays the answer.
async fn relay(
    state: &ProxyState,
    client: &mut TcpStream,
    rbuf: &mut BytesMut,
    out: &mut Vec<u8>,
    fwd: &Forward,
    close: bool,
) -> Result<Relayed, Failed> {
    let sap = &state.sap;
    let config = &state.config;
    let call = sap.begin().map_err(Failed::sap)?;
    // The upstream timeout covers the wait for a slot and for the answer's head.
    let deadline = Instant::now() + sap.timeout();
    let attempt = async {
        let _slot = sap.slot().await;
        loop {
            let (mut conn, pooled) = match sap.take_raw().await {
                Some(c) => (c, true),
                None => (sap.connect_raw().await.map_err(SendError::Upstream)?, false),
            };
            match send(
                &mut conn,
                client,
                rbuf,
                out,
                fwd,
                config.client_body_timeout,
            )
            .await
            {
                Ok(()) => {}
                Err(SendError::Closed(_)) if pooled && fwd.retryable => continue,
                Err(e) => return Err(e),
            }
            match read_head(&mut conn, out, fwd, close).await {
                Ok(head) => return Ok((conn, head)),
                Err(SendError::Closed(_)) if pooled && fwd.retryable => continue,
                Err(e) => return Err(e),
            }
        }
    };
    let (mut conn, head) = match tokio::time::timeout_at(deadline, attempt).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let failure = match e {
                SendError::Client(err) => {
                    call.client_failed();
                    return Err(Failed::Answer(err));
                }
                SendError::Closed(why) => UpstreamFailure::Broken(why),
                SendError::Upstream(f) => f,
            };
            call.failed(&failure);
            return Err(Failed::sap(failure));
        }
        Err(_) => {
            call.failed(&UpstreamFailure::Timeout);
            return Err(Failed::sap(UpstreamFailure::Timeout));
        }
    };
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    call.answered(status);
    conn.buf.advance(head.head_len);
    let idle = Idle {
        sap: sap.timeout(),
        client: config.client_body_timeout,
    };
    if let Err(cut) = relay_body(&mut conn, client, out, head.framing, idle).await {
        match cut {
            Cut::Client => tracing::debug!("client went away or stopped reading the answer"),
            Cut::Sap(why) => tracing::warn!(
                reason = why,
                status = head.status,
                "SAP's answer was cut off"
            ),
        }
        return Err(Failed::Drop(head.status));
    }
    if head.reusable {
        sap.put_raw(conn);
    }
    Ok(Relayed {
        status: head.status,
        keep_alive: !head.close,
    })
}

/// Writes the request head (in `out`) and body to SAP.
async fn send(
    conn: &mut RawConn,
    client: &mut TcpStream,
    rbuf: &mut BytesMut,
    out: &[u8],
    fwd: &Forward,
    body_timeout: Duration,
) -> Result<(), SendError> {
    // The head and as much of the body as has arrived, in one write.
    let here = fwd.body_len.min(rbuf.len() as u64) as usize;
    write_two(&mut conn.stream, out, &rbuf[..here])
        .await
        .map_err(|e| SendError::Closed(e.to_string()))?;
    rbuf.advance(here);
    let mut remaining = fwd.body_len - here as u64;
    while remaining > 0 {
        rbuf.reserve(READ_CHUNK);
        match tokio::time::timeout(body_timeout, client.read_buf(rbuf)).await {
            Err(_) => return Err(SendError::Client(ProxyError::ClientTooSlow)),
            Ok(Ok(0)) => {
                return Err(SendError::Client(ProxyError::ClientBody(
                    "the client closed the connection before the end of its body".into(),
                )));
            }
            Ok(Err(e)) => return Err(SendError::Client(ProxyError::ClientBody(e.to_string()))),
            Ok(Ok(_)) => {}
        }
        let take = remaining.min(rbuf.len() as u64) as usize;
        conn.stream
            .write_all(&rbuf[..take])
            .await
            .map_err(|e| SendError::Upstream(UpstreamFailure::Broken(e.to_string())))?;
        rbuf.advance(take);
        remaining -= take as u64;
    }
    Ok(())
}

/// Reads SAP's answer head (skipping interim 1xx answers) and writes the client's into `out`.
async fn read_head(
    conn: &mut RawConn,
    out: &mut Vec<u8>,
    fwd: &Forward,
    close: bool,
) -> Result<ResponseHead, SendError> {
    let mut received = false;
    loop {
        if !conn.buf.is_empty() {
            match parse_response(&conn.buf, fwd.head_method, close, out) {
                Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                    conn.buf.advance(head.head_len);
                    continue;
                }
                Ok(Some(head)) if head.status == 101 => {
                    return Err(SendError::Upstream(UpstreamFailure::Broken(
                        "switching protocols without an upgrade request".into(),
                    )));
                }
                Ok(Some(head)) => return Ok(head),
                Ok(None) if conn.buf.len() >= MAX_HEAD_BYTES => {
                    return Err(SendError::Upstream(UpstreamFailure::Broken(
                        "response head too large".into(),
                    )));
                }
                Ok(None) => {}
                Err(why) => {
                    return Err(SendError::Upstream(UpstreamFailure::Broken(why.into())));
                }
            }
        }
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) if !received => return Err(SendError::Closed("closed before answering".into())),
            Ok(0) => {
                return Err(SendError::Upstream(UpstreamFailure::Broken(
                    "closed in the middle of the response head".into(),
                )));
            }
            Err(e) if !received => return Err(SendError::Closed(e.to_string())),
            Err(e) => return Err(SendError::Upstream(UpstreamFailure::Broken(e.to_string()))),
            Ok(_) => received = true,
        }
    }
}

/// Parses an answer head; for a final answer writes the client's head into `out`: the same
/// status line and end-to-end headers, hop-by-hop ones dropped (with those `Connection`
/// names), the body's framing restated.
fn parse_response(
    buf: &[u8],
    head_method: bool,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, &'static str> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("invalid response head"),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err("invalid response head");
    };
    if (100..200).contains(&status) {
        return Ok(Some(ResponseHead {
            status,
            head_len,
            framing: Framing::Empty,
            reusable: false,
            close: false,
        }));
    }
    let mut length: Option<u64> = None;
    let mut transfer: Option<bool> = None; // Some(last coding is chunked)
    let mut upstream_close = version == 0;
    let mut named: [&[u8]; 8] = [&[]; 8];
    let mut named_count = 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = digits(h.value).ok_or("invalid content-length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length");
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(&[]);
            transfer = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    upstream_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    upstream_close &= version != 0;
                } else if !token.is_empty() {
                    if named_count == named.len() {
                        return Err("too many Connection options");
                    }
                    named[named_count] = token;
                    named_count += 1;
                }
            }
        }
    }
    let framing = if head_method || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (transfer, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    let close = close_client || framing == Framing::UntilClose;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse reads exactly three digits.
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let keep_coding =
            framing == Framing::UntilClose && h.name.eq_ignore_ascii_case("transfer-encoding");
        // RFC 9112 §6.3: with Transfer-Encoding present, Content-Length is not the framing
        // and an intermediary removes it before forwarding.
        let stale_length = transfer.is_some() && h.name.eq_ignore_ascii_case("content-length");
        if (is_hop_by_hop(h.name) && !keep_coding)
            || stale_length
            || named[..named_count]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h.name.as_bytes()))
        {
            continue;
        }
        push_header(out, h.name.as_bytes(), h.value);
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        status,
        head_len,
        framing,
        reusable: !upstream_close
            && transfer.is_none_or(|chunked| chunked)
            && framing != Framing::UntilClose,
        close,
    }))
}

/// Why an answer could not be relayed to its end.
enum Cut {
    /// Writing to the client failed, or the client stopped reading for longer than its
    /// timeout.
    Client,
    /// SAP's side: broken framing, a closed connection, the idle timeout.
    Sap(&'static str),
}

/// The longest pauses allowed while an answer is relayed.
#[derive(Debug, Clone, Copy)]
struct Idle {
    /// SAP sending the body.
    sap: Duration,
    /// The client reading it (a client that stops reading must not hold its slot for ever).
    client: Duration,
}

/// Sends the client's head (in `out`) and relays the body as it comes.
async fn relay_body(
    conn: &mut RawConn,
    client: &mut TcpStream,
    out: &[u8],
    framing: Framing,
    idle: Idle,
) -> Result<(), Cut> {
    let mut chunked = ChunkedEnd::default();
    let mut remaining = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut head = Some(out);
    loop {
        // What of the buffer belongs to this answer, and whether it ends there.
        let (take, done) = match framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let t = remaining.min(conn.buf.len() as u64) as usize;
                (t, t as u64 == remaining)
            }
            Framing::Chunked => match chunked.feed(&conn.buf) {
                Ok(Some(end)) => (end, true),
                Ok(None) => (conn.buf.len(), false),
                Err(why) => return Err(Cut::Sap(why)),
            },
            Framing::UntilClose => (conn.buf.len(), false),
        };
        // The timer is only armed when the write has to wait (a write the kernel takes at
        // once completes before the timeout is first polled).
        let sent = match head.take() {
            Some(h) => {
                tokio::time::timeout(idle.client, write_two(client, h, &conn.buf[..take])).await
            }
            None => tokio::time::timeout(idle.client, client.write_all(&conn.buf[..take])).await,
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(Cut::Client),
        }
        conn.buf.advance(take);
        remaining = remaining.saturating_sub(take as u64);
        if done {
            return Ok(());
        }
        conn.buf.reserve(READ_CHUNK);
        match tokio::time::timeout(idle.sap, conn.stream.read_buf(&mut conn.buf)).await {
            Ok(Ok(0)) if framing == Framing::UntilClose => return Ok(()),
            Ok(Ok(0)) => return Err(Cut::Sap("closed before the end of the body")),
            Ok(Err(_)) => return Err(Cut::Sap("connection broke during the body")),
            Err(_) => {
                return Err(Cut::Sap(
                    "idle for longer than the SAP timeout during the body",
                ));
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// Writes `a` then `b` with as few system calls as the kernel allows (one, normally).
async fn write_two(stream: &mut TcpStream, mut a: &[u8], mut b: &[u8]) -> std::io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    Ok(())
}

/// Writes an error answer the proxy makes itself (the same OData error the hyper path sends;
/// to a `HEAD` request without the body).
async fn write_error(
    client: &mut TcpStream,
    error: ProxyError,
    close: bool,
    head_method: bool,
    out: &mut Vec<u8>,
) -> u16 {
    let (parts, body) = error.to_response().into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_LENGTH {
            push_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    push_header(out, b"content-length", body.len().to_string().as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let body: &[u8] = if head_method { &[] } else { &body };
    let _ = write_two(client, out, body).await;
    status.as_u16()
}

/// The keep-alive timer of a connection: one timer per idle period, not one per request.
/// Each request only notes the time; the timer, when it fires, moves itself to the last
/// activity plus the timeout if the connection was used meanwhile.
struct IdleTimer {
    timeout: Duration,
    last: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            last: Instant::now(),
            sleep: None,
        }
    }

    fn touch(&mut self) {
        self.last = Instant::now();
    }

    async fn expired(&mut self) {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(self.last + timeout)));
        loop {
            sleep.as_mut().await;
            let due = self.last + timeout;
            if Instant::now() >= due {
                return;
            }
            sleep.as_mut().reset(due);
        }
    }
}

/// Finds where a chunked body ends (RFC 9112 §7.1), strictly: hex sizes without overflow,
/// CRLF line ends, the data's trailing CRLF, the trailer section.
#[derive(Debug, Default)]
struct ChunkedEnd {
    state: ChunkState,
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
}

impl ChunkedEnd {
    /// Feeds the next bytes: `Some(n)` when the body ends after `n` of them.
    fn feed(&mut self, buf: &[u8]) -> Result<Option<usize>, &'static str> {
        use ChunkState::*;
        let mut i = 0;
        while i < buf.len() {
            if self.state == Data {
                let skip = self.size.min((buf.len() - i) as u64);
                self.size -= skip;
                i += skip as usize;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = buf[i];
            i += 1;
            self.state = match (self.state, b) {
                (Size, b) if b.is_ascii_hexdigit() => {
                    if self.digits == 16 {
                        return Err("chunk size too large");
                    }
                    self.digits += 1;
                    self.size = self.size * 16 + u64::from((b as char).to_digit(16).unwrap_or(0));
                    Size
                }
                (Size, b';' | b' ' | b'\t') if self.digits > 0 => Extension,
                (Size, b'\r') if self.digits > 0 => SizeLf,
                (Extension, b'\r') => SizeLf,
                (Extension, b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => Extension,
                (SizeLf, b'\n') if self.size == 0 => TrailerStart,
                (SizeLf, b'\n') => Data,
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.digits = 0;
                    Size
                }
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart | Trailer, b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => Trailer,
                (Trailer, b'\r') => TrailerLf,
                (TrailerLf, b'\n') => TrailerStart,
                (EndLf, b'\n') => return Ok(Some(i)),
                _ => return Err("invalid chunked framing"),
            };
        }
        Ok(None)
    }
}

/// A client connection as hyper gets it: the bytes the lean path read but did not serve come
/// first, and a write that cannot progress for `write_timeout` fails (a client that stops
/// reading its answer must not hold its request slot for ever; hyper has no such timeout of
/// its own). The timer is only armed while a write waits.
pub struct ClientIo {
    prefix: Bytes,
    inner: TcpStream,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl ClientIo {
    /// `prefix`, then the rest of `inner`.
    pub fn new(prefix: Bytes, inner: TcpStream, write_timeout: Duration) -> Self {
        Self {
            prefix,
            inner,
            write_timeout,
            stalled: None,
        }
    }

    /// Passes a write's progress through; while it waits, the stall timer runs.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `check` of every input, naming the one that fails.
    fn assert_each(inputs: &[&[u8]], check: impl Fn(&[u8]) -> bool, what: &str) {
        for input in inputs {
            assert!(check(input), "{what}: {:?}", String::from_utf8_lossy(input));
        }
    }

    const BODY: &[u8] = b"4;name=\"v\"\r\nWiki\r\n5\r\npedia\r\n0\r\nx-trailer: 1\r\n\r\nGET /next";

    #[test]
    fn the_end_of_a_chunked_body_is_found_however_the_bytes_are_split() {
        let end = BODY.len() - b"GET /next".len();
        for split in 0..BODY.len() {
            let mut scan = ChunkedEnd::default();
            let first = scan.feed(&BODY[..split]).unwrap();
            let found = match first {
                Some(n) => n,
                None => split + scan.feed(&BODY[split..]).unwrap().expect("end found"),
            };
            assert_eq!(found, end, "split at {split}");
        }
        assert_eq!(ChunkedEnd::default().feed(b"0\r\n\r\n").unwrap(), Some(5));
    }

    #[test]
    fn broken_chunked_framing_is_an_error_not_a_guess() {
        assert_each(
            &[
                &b"zz\r\nhello\r\n0\r\n\r\n"[..],
                b"5\nhello\r\n0\r\n\r\n",
                b"5\r\nhelloXX0\r\n\r\n",
                b"\r\n",
                b"11111111111111111\r\n",
                b"0\r\nbad\ntrailer\r\n\r\n",
            ],
            |bad| ChunkedEnd::default().feed(bad).is_err(),
            "accepted",
        );
    }

    #[test]
    fn only_plain_rfc_3986_targets_stay_on_the_lean_path() {
        assert_each(
            &[
                &b"/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('1')"[..],
                b"/x/A_SalesOrder?$filter=(PurchaseOrderByCustomer%20eq%20'A-1')&$top=5",
                b"/x/A_SalesOrder(SalesOrder=%271%27)?$select=*,to_Item/*&$expand=to_Item",
                b"/a;b=c/~d@e:f!g+h",
            ],
            plain_target,
            "handed over",
        );
        assert_each(
            &[
                &b"/a b"[..],
                b"/a#frag",
                b"/a{b}",
                b"/a|b",
                b"/a\\b",
                b"/a\"b",
                b"/a<b>",
                b"/a^b",
                b"/a`b",
                b"/\xc3\xa4",
                b"/a\tb",
            ],
            |t| !plain_target(t),
            "kept on the lean path",
        );
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"1234"), Some(1234));
        assert_each(
            &[
                &b""[..],
                b"+5",
                b"-1",
                b" 5",
                b"5 ",
                b"5,5",
                b"0x10",
                b"99999999999999999999",
            ],
            |bad| digits(bad).is_none(),
            "accepted",
        );
    }

    fn parsed(raw: &[u8], head_method: bool, close: bool) -> (ResponseHead, String) {
        let mut out = Vec::new();
        let head = parse_response(raw, head_method, close, &mut out)
            .unwrap()
            .unwrap();
        (head, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_client_head_keeps_status_and_end_to_end_headers_and_restates_the_framing() {
        let (h, out) = parsed(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: x-hop\r\nx-hop: 1\r\nKeep-Alive: 5\r\nTransfer-Encoding: chunked\r\nset-cookie: a=1\r\n\r\n",
            false,
            false,
        );
        assert_eq!(h.status, 201);
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.reusable && !h.close);
        assert_eq!(
            out,
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nset-cookie: a=1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // HEAD: no body whatever the headers say; the length is the client's information.
        let (h, out) = parsed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            true,
            false,
        );
        assert_eq!(h.framing, Framing::Empty);
        assert!(out.contains("Content-Length: 10\r\n"));
        // No length: until SAP closes, and the client's connection closes after it.
        let (h, out) = parsed(b"HTTP/1.1 200 OK\r\n\r\n", false, false);
        assert_eq!(h.framing, Framing::UntilClose);
        assert!(h.close && !h.reusable);
        assert!(out.ends_with("connection: close\r\n\r\n"));
        // HTTP/1.0 and `Connection: close` answers are not pooled; the client asked to close.
        let (h, _) = parsed(
            b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            false,
        );
        assert!(!h.reusable);
        let (h, out) = parsed(
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            false,
            true,
        );
        assert!(!h.reusable && h.close);
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(out, "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
    }

    #[test]
    fn conflicting_lengths_and_garbage_heads_are_refused() {
        let mut out = Vec::new();
        assert_each(
            &[
                &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
                b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
                b"HTTP/1.1 2000 OK\r\n\r\n",
                b"HTTX/1.1 200 OK\r\n\r\n",
            ],
            |bad| parse_response(bad, false, false, &mut Vec::new()).is_err(),
            "accepted",
        );
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Le", false, false, &mut out),
            Ok(None)
        ));
    }
}
