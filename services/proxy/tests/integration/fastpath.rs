//! The lean HTTP/1.1 pass-through path (`h1.rs`) over raw sockets, against a scripted upstream
//! that records every request exactly as it arrived: keep-alive and pipelining, reuse of SAP
//! connections, every body framing in both directions, hop-by-hop headers, interim answers,
//! SAP closing pooled connections, broken framing, and the requests the lean path must leave
//! to hyper (ambiguous framing, chunked uploads, `Expect`), none of which may smuggle a second
//! request to SAP.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use test_support::process::{ChildProcess, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// Reading HTTP/1.1 off a socket, for both ends of the test (the scripted SAP and the client).

/// Reads more into `buf`; false at the end of the stream.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> bool {
    stream.read_buf(buf).await.unwrap_or(0) > 0
}

/// Header names lowercased, values as sent, in order.
type Headers = Vec<(String, String)>;

fn lowercased(headers: &[httparse::Header<'_>]) -> Headers {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A chunked body, de-chunked (the trailer section is read and dropped).
async fn read_chunked(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let (line, size) = loop {
            if let Ok(httparse::Status::Complete((line, size))) = httparse::parse_chunk_size(buf) {
                break (line, size as usize);
            }
            if !fill(stream, buf).await {
                return None;
            }
        };
        if size == 0 {
            buf.advance(line);
            // Trailer fields up to the empty line.
            loop {
                match buf.windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        buf.advance(2);
                        return Some(body);
                    }
                    Some(n) => buf.advance(n + 2),
                    None if !fill(stream, buf).await => return None,
                    None => {}
                }
            }
        }
        while buf.len() < line + size + 2 {
            if !fill(stream, buf).await {
                return None;
            }
        }
        body.extend_from_slice(&buf[line..line + size]);
        buf.advance(line + size + 2);
    }
}

/// A body of `len` bytes.
async fn read_length(stream: &mut TcpStream, buf: &mut BytesMut, len: usize) -> Option<Vec<u8>> {
    while buf.len() < len {
        if !fill(stream, buf).await {
            return None;
        }
    }
    Some(buf.split_to(len).to_vec())
}

// ---------------------------------------------------------------------------------------------
// The scripted SAP.

/// Size of the `/huge` answer.
const HUGE: usize = 64 << 20;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    /// Which upstream connection (0, 1, ... in accept order).
    connection: usize,
    method: String,
    path: String,
    headers: Headers,
    /// The body, de-chunked.
    body: Vec<u8>,
    /// The request was chunked on the wire.
    chunked: bool,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A scripted SAP: answers by path, records what it received.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut next = 0;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(upstream_connection(stream, next, log.clone()));
                next += 1;
            }
        });
        Self { port, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn upstream_connection(mut stream: TcpStream, connection: usize, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = BytesMut::new();
    loop {
        let (method, path, headers) = loop {
            let mut h = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut h);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let head = (
                    req.method.unwrap().to_owned(),
                    req.path.unwrap().to_owned(),
                    lowercased(req.headers),
                );
                buf.advance(n);
                break head;
            }
            if !fill(&mut stream, &mut buf).await {
                return;
            }
        };
        let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let body = if chunked {
            read_chunked(&mut stream, &mut buf).await
        } else {
            let len = header(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
            read_length(&mut stream, &mut buf, len).await
        };
        let Some(body) = body else {
            return;
        };
        log.lock().unwrap().push(Seen {
            connection,
            method: method.clone(),
            path: path.clone(),
            headers,
            body: body.clone(),
            chunked,
        });
        let (answer, close): (Vec<u8>, bool) = match path.as_str() {
            "/chunked" => (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nx-trailer: t\r\n\r\n".to_vec(),
                false,
            ),
            "/bad-chunked" => (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
                false,
            ),
            "/close-delimited" => (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end".to_vec(), true),
            "/hop" => (
                b"HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                false,
            ),
            "/interim" => (
                b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                false,
            ),
            "/huge" => {
                // More than loopback's socket buffers hold, so a client that does not read
                // makes the proxy wait.
                let mut a = format!("HTTP/1.1 200 OK\r\ncontent-length: {HUGE}\r\n\r\n").into_bytes();
                a.resize(a.len() + HUGE, b'x');
                (a, false)
            }
            // Both framings at once (RFC 9112 §6.3: Transfer-Encoding wins, an intermediary
            // must drop Content-Length before forwarding).
            "/cl-te" => (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
                false,
            ),
            "/bye" => (
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbye".to_vec(),
                true,
            ),
            _ if method == "HEAD" => (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\n".to_vec(),
                false,
            ),
            _ => {
                let mut a = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nx-path: {path}\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                a.extend_from_slice(&body);
                (a, false)
            }
        };
        if stream.write_all(&answer).await.is_err() || close {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy and a raw client.

/// The proxy binary in `legacy` mode in front of the scripted upstream.
struct Proxy {
    _process: ChildProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Proxy {
    async fn start(upstream: u16, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxy"));
        cmd.env("PROXY_BIND", "127.0.0.1")
            .env("PROXY_PORT", port.to_string())
            .env("PROXY_ADMIN_PORT", admin.to_string())
            .env("SAP_URL", format!("http://127.0.0.1:{upstream}"))
            // Never called: pass-through only.
            .env(
                "ORDER_SERVICE_URL",
                format!("http://127.0.0.1:{}", free_port()),
            )
            .env("PROXY_DATA_DIR", dir.path())
            .env("PROXY_SALES_ORDERS_MODE", "legacy")
            .env("PROXY_WORKERS", "2")
            .env("ADMIN_TOKEN", "fastpath-test-token")
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let process = ChildProcess::spawn("proxy", cmd);
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(format!("http://127.0.0.1:{admin}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self {
                    _process: process,
                    port,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the proxy did not become healthy");
    }

    async fn connect(&self) -> Client {
        Client {
            stream: TcpStream::connect(("127.0.0.1", self.port)).await.unwrap(),
            buf: BytesMut::new(),
        }
    }
}

/// An answer as the client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A raw client connection.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    async fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).await.unwrap();
    }

    /// Reads one answer (`head` = it answers a HEAD request); `None` if the connection ends
    /// before a complete one.
    async fn answer(&mut self, head: bool) -> Option<Answer> {
        tokio::time::timeout(Duration::from_secs(10), self.read_answer(head))
            .await
            .expect("the proxy answers within 10 s")
    }

    async fn read_answer(&mut self, head: bool) -> Option<Answer> {
        let (stream, buf) = (&mut self.stream, &mut self.buf);
        let (status, headers) = loop {
            let mut h = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut h);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(buf) {
                let parsed = (resp.code.unwrap(), lowercased(resp.headers));
                buf.advance(n);
                break parsed;
            }
            if !fill(stream, buf).await {
                return None;
            }
        };
        let body = if head || status < 200 || status == 204 || status == 304 {
            Vec::new()
        } else if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(stream, buf).await?
        } else if let Some(len) = header(&headers, "content-length") {
            read_length(stream, buf, len.parse().unwrap()).await?
        } else {
            while fill(stream, buf).await {}
            buf.split().to_vec()
        };
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    /// True when the proxy closed the connection (nothing more to read).
    async fn closed(&mut self) -> bool {
        let more = tokio::time::timeout(
            Duration::from_secs(10),
            fill(&mut self.stream, &mut self.buf),
        )
        .await
        .expect("the proxy closes within 10 s");
        !more && self.buf.is_empty()
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: shop.example\r\n\r\n")
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_reuse_one_sap_connection_across_every_body_framing() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(sap.port, &[]).await;
    let mut c = proxy.connect().await;
    // Two requests in one write (pipelined), then a chunked answer, a HEAD, an upload.
    c.send(format!("{}{}", get("/one"), get("/two")).as_bytes())
        .await;
    let one = c.answer(false).await.unwrap();
    let two = c.answer(false).await.unwrap();
    assert_eq!((one.status, one.header("x-path")), (200, Some("/one")));
    assert_eq!((two.status, two.header("x-path")), (200, Some("/two")));
    c.send(get("/chunked").as_bytes()).await;
    let chunked = c.answer(false).await.unwrap();
    assert_eq!(chunked.status, 200);
    assert_eq!(chunked.body, b"hello");
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    c.send(b"HEAD /head HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await;
    let head = c.answer(true).await.unwrap();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("5"))
    );
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .as_bytes(),
    )
    .await;
    c.send(&upload).await;
    let echoed = c.answer(false).await.unwrap();
    assert_eq!(echoed.status, 200);
    assert_eq!(echoed.body.len(), upload.len());
    assert!(echoed.body == upload, "the upload came back changed");
    c.send(get("/last").as_bytes()).await;
    assert_eq!(
        c.answer(false).await.unwrap().header("x-path"),
        Some("/last")
    );

    let seen = sap.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/one", "/two", "/chunked", "/head", "/upload", "/last"]
    );
    // Each answer was read exactly to its end, so one SAP connection carried them all.
    assert!(
        seen.iter().all(|s| s.connection == seen[0].connection),
        "{seen:?}"
    );
    assert_eq!(
        (seen[3].method.as_str(), seen[4].method.as_str()),
        ("HEAD", "POST")
    );
    assert_eq!(seen[4].body.len(), upload.len());
    assert!(!seen[4].chunked);
    // The client's Host is kept (PROXY_PRESERVE_HOST defaults to true).
    assert_eq!(seen[0].header("host"), Some("shop.example"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_in_both_directions_and_end_to_end_ones_kept() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(sap.port, &[("PROXY_PRESERVE_HOST", "false")]).await;
    let mut c = proxy.connect().await;
    c.send(
        b"GET /hop HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eDp5\r\nCookie: SAP_SESSIONID=abc\r\nx-csrf-token: tok\r\nsap-client: 100\r\n\r\n",
    )
    .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(a.header("x-kept"), Some("yes"));
    for gone in ["x-secret", "keep-alive"] {
        assert_eq!(a.header(gone), None, "{gone} reached the client");
    }
    assert_eq!(
        a.header("connection"),
        None,
        "a keep-alive answer needs no Connection header"
    );
    let seen = &sap.seen()[0];
    for gone in ["keep-alive", "te", "proxy-authorization", "connection"] {
        assert_eq!(seen.header(gone), None, "{gone} reached SAP");
    }
    assert_eq!(seen.header("cookie"), Some("SAP_SESSIONID=abc"));
    assert_eq!(seen.header("x-csrf-token"), Some("tok"));
    assert_eq!(seen.header("sap-client"), Some("100"));
    // PROXY_PRESERVE_HOST=false: SAP sees its own authority.
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", sap.port).as_str())
    );
    assert_eq!(seen.headers.iter().filter(|(n, _)| n == "host").count(), 1);
}

#[tokio::test]
async fn interim_head_and_close_delimited_answers_keep_the_client_connection_in_step() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(sap.port, &[]).await;
    let mut c = proxy.connect().await;
    c.send(get("/interim").as_bytes()).await;
    let a = c.answer(false).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ok"[..]));
    c.send(get("/after-interim").as_bytes()).await;
    assert_eq!(
        c.answer(false).await.unwrap().header("x-path"),
        Some("/after-interim")
    );
    // An answer delimited by SAP closing: relayed whole, then the client's connection closes
    // (nothing else says where the answer ends).
    c.send(get("/close-delimited").as_bytes()).await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b"until the end");
    assert_eq!(a.header("connection"), Some("close"));
}

#[tokio::test]
async fn a_sap_connection_closed_after_its_answer_is_never_reused_and_no_request_fails() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(sap.port, &[]).await;
    let mut c = proxy.connect().await;
    for round in 0..20 {
        c.send(get("/bye").as_bytes()).await;
        let a = c.answer(false).await.unwrap();
        assert_eq!(
            (a.status, a.body.as_slice()),
            (200, &b"bye"[..]),
            "round {round}"
        );
        // Every other round at once, so the close may still be in flight when the next
        // request picks a connection.
        if round % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let seen = sap.seen();
    let bye = seen.iter().filter(|s| s.path == "/bye").count();
    assert_eq!(bye, 20, "every request reached SAP exactly once");
    let mut connections: Vec<usize> = seen.iter().map(|s| s.connection).collect();
    connections.dedup();
    assert_eq!(
        connections.len(),
        20,
        "a closed connection was used again: {seen:?}"
    );
}

#[tokio::test]
async fn an_answer_with_broken_chunked_framing_is_cut_off_and_its_sap_connection_dropped() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(sap.port, &[("PROXY_WORKERS", "1")]).await;
    let mut c = proxy.connect().await;
    c.send(get("/bad-chunked").as_bytes()).await;
    assert!(
        c.answer(false).await.is_none(),
        "a body whose end cannot be found must not be completed"
    );
    assert!(c.closed().await);
    let mut c = proxy.connect().await;
    c.send(get("/next").as_bytes()).await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
    let seen = sap.seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0].connection, seen[1].connection);
}

#[tokio::test]
async fn ambiguous_or_unusual_requests_go_to_hyper_and_never_smuggle_a_second_request() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(sap.port, &[]).await;

    // Content-Length and Transfer-Encoding together (CL.TE): chunked wins, as in hyper; the
    // bytes after the declared length never become a request of their own.
    let mut c = proxy.connect().await;
    c.send(b"POST /clte HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b"hello");
    // Two different lengths: refused, nothing reaches SAP.
    let mut c = proxy.connect().await;
    c.send(b"POST /twice HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello").await;
    assert_eq!(c.answer(false).await.unwrap().status, 400);
    // A signed length: refused.
    let mut c = proxy.connect().await;
    c.send(b"POST /signed HTTP/1.1\r\nHost: shop.example\r\nContent-Length: +5\r\n\r\nhello")
        .await;
    assert_eq!(c.answer(false).await.unwrap().status, 400);
    // A chunked upload after a lean-path request on the same connection: hyper takes over the
    // connection mid-way and the next request still works.
    let mut c = proxy.connect().await;
    c.send(get("/lean").as_bytes()).await;
    assert_eq!(
        c.answer(false).await.unwrap().header("x-path"),
        Some("/lean")
    );
    c.send(b"POST /chunked-upload HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nchunky\r\n0\r\n\r\n").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"chunky"[..]));
    c.send(get("/after-handoff").as_bytes()).await;
    assert_eq!(
        c.answer(false).await.unwrap().header("x-path"),
        Some("/after-handoff")
    );
    // Expect: 100-continue is hyper's to answer.
    let mut c = proxy.connect().await;
    c.send(b"POST /expect HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").await;
    let interim = c.answer(false).await.unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"hello").await;
    let a = c.answer(false).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));

    let seen = sap.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/clte",
            "/lean",
            "/chunked-upload",
            "/after-handoff",
            "/expect"
        ],
        "exactly the accepted requests reached SAP, one each"
    );
    for s in &seen {
        assert!(
            !(s.header("content-length").is_some() && s.header("transfer-encoding").is_some()),
            "SAP got both framings: {s:?}"
        );
    }
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[2].body, b"chunky");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_with_odata_413_and_never_reaches_sap() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(sap.port, &[("PROXY_MAX_BODY_BYTES", "1000")]).await;
    let mut c = proxy.connect().await;
    c.send(b"POST /big HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5000\r\n\r\n")
        .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 413);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert!(v["error"]["message"]["value"].is_string(), "{v}");
    assert_eq!(a.header("connection"), Some("close"));
    assert_eq!(sap.seen().len(), 0);
}

#[tokio::test]
async fn a_client_stalling_mid_upload_gets_408_and_is_not_held_against_sap() {
    let sap = Upstream::start().await;
    // One failure would open the breaker: a slow client must not count as SAP failing.
    let proxy = Proxy::start(
        sap.port,
        &[
            ("PROXY_CLIENT_BODY_TIMEOUT_MS", "300"),
            ("PROXY_BREAKER_FAILURES", "1"),
        ],
    )
    .await;
    let mut c = proxy.connect().await;
    c.send(b"POST /stall HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(a.status, 408);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed().await);
    let mut c = proxy.connect().await;
    c.send(get("/after").as_bytes()).await;
    assert_eq!(c.answer(false).await.unwrap().status, 200);
    // The incomplete upload never became a request at SAP (its connection was dropped).
    let paths: Vec<String> = sap.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/after"]);
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_disconnected_and_frees_its_slot() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(
        sap.port,
        &[
            ("PROXY_CLIENT_BODY_TIMEOUT_MS", "1500"),
            ("PROXY_MAX_CONCURRENCY", "1"),
        ],
    )
    .await;
    // On the lean path, and on hyper's (a chunked upload is handed over).
    let requests = [
        get("/huge"),
        "POST /huge HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
            .to_owned(),
    ];
    for (i, request) in requests.iter().enumerate() {
        let mut stalled = proxy.connect().await;
        stalled.send(request.as_bytes()).await;
        // The only request slot is taken while the answer is relayed to a client that reads
        // nothing ...
        test_support::eventually(
            "the huge answer is under way",
            Duration::from_secs(10),
            || async {
                (sap.seen().iter().filter(|s| s.path == "/huge").count() == i + 1).then_some(())
            },
        )
        .await;
        let mut c = proxy.connect().await;
        c.send(get("/other").as_bytes()).await;
        assert_eq!(
            c.answer(false).await.unwrap().status,
            503,
            "{request:?}: a request whose answer is still being sent holds its slot"
        );
        // ... until the client's timeout (1.5 s without progress) ends it: then the slot
        // serves others again.
        test_support::eventually(
            "the slot serves others again",
            Duration::from_secs(30),
            || {
                let proxy = &proxy;
                async move {
                    let mut c = proxy.connect().await;
                    c.send(get("/other").as_bytes()).await;
                    (c.answer(false).await?.status == 200).then_some(())
                }
            },
        )
        .await;
        // Reading now, the stalled client finds its answer cut short and the connection closed.
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(10), stalled.stream.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got += n;
        }
        assert!(
            got < HUGE,
            "{request:?}: the whole answer arrived ({got} bytes)"
        );
    }
}

#[tokio::test]
async fn an_answer_with_both_content_length_and_chunked_is_relayed_without_content_length_on_both_paths()
 {
    let sap = Upstream::start().await;
    for fast in ["true", "false"] {
        let proxy = Proxy::start(sap.port, &[("PROXY_FAST_PATH", fast)]).await;
        let mut c = proxy.connect().await;
        c.send(get("/cl-te").as_bytes()).await;
        let a = c.answer(false).await.unwrap();
        assert_eq!(
            (a.status, a.body.as_slice()),
            (200, &b"hello"[..]),
            "fast path {fast}"
        );
        assert_eq!(
            a.header("content-length"),
            None,
            "fast path {fast}: both framings relayed"
        );
        assert_eq!(
            a.header("transfer-encoding"),
            Some("chunked"),
            "fast path {fast}"
        );
        // The connection is still in step.
        c.send(get("/after").as_bytes()).await;
        assert_eq!(
            c.answer(false).await.unwrap().header("x-path"),
            Some("/after")
        );
    }
}

#[tokio::test]
async fn slow_chunked_uploads_on_the_hyper_path_never_open_sap_s_breaker() {
    let sap = Upstream::start().await;
    // One SAP failure would open the breaker.
    let proxy = Proxy::start(
        sap.port,
        &[
            ("PROXY_CLIENT_BODY_TIMEOUT_MS", "300"),
            ("PROXY_BREAKER_FAILURES", "1"),
        ],
    )
    .await;
    for _ in 0..5 {
        let mut c = proxy.connect().await;
        // Chunked uploads are served by hyper, not the lean path.
        c.send(b"POST /slow HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            .await;
        let a = c.answer(false).await;
        assert!(a.as_ref().is_none_or(|a| a.status == 408), "{a:?}");
    }
    let mut c = proxy.connect().await;
    c.send(get("/after-slow").as_bytes()).await;
    let a = c.answer(false).await.unwrap();
    assert_eq!(
        a.status,
        200,
        "SAP's breaker opened for everyone: {:?}",
        String::from_utf8_lossy(&a.body)
    );
}

#[tokio::test]
async fn a_buffered_create_trickling_its_body_is_cut_off_at_the_overall_deadline() {
    let sap = Upstream::start().await;
    let proxy = Proxy::start(
        sap.port,
        &[
            ("PROXY_CLIENT_BODY_TIMEOUT_MS", "2000"),
            ("PROXY_CLIENT_BODY_DEADLINE_MS", "800"),
        ],
    )
    .await;
    let mut c = proxy.connect().await;
    // A keyed create is read whole before SAP sees it; one byte every 100 ms never pauses
    // long enough for the idle timeout.
    c.send(b"POST /sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder HTTP/1.1\r\nHost: shop.example\r\nIdempotency-Key: trickle-1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        .await;
    // One byte every 100 ms for 4 s never pauses long enough for the idle timeout (2 s): the
    // answer must come while the client is still trickling, at the overall deadline.
    let Client { stream, buf } = &mut c;
    let (mut rd, mut wr) = stream.split();
    let trickle = async {
        for _ in 0..40 {
            if wr.write_all(b" ").await.is_err() {
                // The proxy closed the connection: wait for the answer to be read.
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let answer = async {
        loop {
            let mut h = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut h);
            if let Ok(httparse::Status::Complete(_)) = resp.parse(buf) {
                return resp.code;
            }
            let mut chunk = [0u8; 4096];
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let status = tokio::select! {
        status = answer => status,
        () = trickle => panic!("no answer while the client trickled for 4 s: no overall deadline"),
    };
    assert_eq!(status, Some(408));
    assert!(
        sap.seen().iter().all(|s| !s.path.contains("A_SalesOrder")),
        "SAP saw the create"
    );
}
