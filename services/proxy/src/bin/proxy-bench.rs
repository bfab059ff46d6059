//! `proxy-bench`: the proxy's pass-through against nginx and against calling the upstream
//! directly, in one run on this machine, plus the dual-write latency check.
//!
//! What it starts (all on loopback, all stopped at the end):
//! - a fixed upstream in a child process of its own (`proxy-bench upstream ...`): a SAP-like
//!   HTTP/1.1 server answering reads with a 1 KiB JSON entity and creates after a set delay,
//!   and an order-service-like server answering creates after another delay;
//! - nginx (Debian package; installed with `apt-get install -y nginx` when missing) from a
//!   temporary configuration: a plain reverse proxy with upstream keep-alive, access log off;
//! - the release `proxy` binary (legacy mode, and a second one in dual-write mode).
//!
//! What it measures:
//! 1. throughput, closed loop (N keep-alive connections as fast as they go): direct, nginx,
//!    proxy; two alternating rounds for nginx and the proxy; the ratio proxy / nginx;
//! 2. latency at a fixed 1,000 requests/s (open loop, latency counted from the scheduled send
//!    time, so queueing is not hidden): p50/p99/p99.9 for each; added p99 = target - direct;
//! 3. dual write at a fixed rate: p50 of SAP's create alone, of the order service's create
//!    alone, and of the proxy's dual write; the goal is p50 ≤ max(both) + 2 ms.
//!
//! Run: `cargo build --release -p proxy --bins && target/release/proxy-bench`
//! (options: `--seconds N`, `--connections N`, `--rate N`, `--rounds N`, `--dual-rate N`,
//! `--sap-create-ms N`, `--order-create-ms N`, `--proxy-env NAME=VALUE`, `--throughput-only`,
//! `--latency-seconds N`, `--latency-rounds N`, `--pin`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const SERVICE: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
const CREATE_BODY: &str = r#"{"SalesOrderType":"OR","SalesOrganization":"1010","DistributionChannel":"10","OrganizationDivision":"00","SoldToParty":"17100001","PurchaseOrderByCustomer":"BENCH-1","CustomerPurchaseOrderDate":"/Date(1795478400000+0000)/","to_Item":[{"Material":"TG11","RequestedQuantity":"2","RequestedQuantityUnit":"PC"},{"Material":"TG12","RequestedQuantity":"5","RequestedQuantityUnit":"PC"}]}"#;
const ORDER_BODY: &str = r#"{"customer_id":"17100001","currency":"EUR","customer_reference":"BENCH-1","items":[{"sku":"TG11","quantity":"2","unit":"PC"}]}"#;

struct Options {
    seconds: u64,
    connections: usize,
    rate: u64,
    dual_rate: u64,
    sap_create_ms: u64,
    order_create_ms: u64,
    rounds: u64,
    proxy_env: Vec<(String, String)>,
    throughput_only: bool,
    latency_seconds: Option<u64>,
    latency_rounds: Option<u64>,
    pin: bool,
}

const USAGE: &str = "usage: proxy-bench [--seconds N] [--rounds N] [--connections N] [--rate N]
                   [--latency-seconds N] [--latency-rounds N] [--dual-rate N]
                   [--sap-create-ms N] [--order-create-ms N] [--proxy-env NAME=VALUE]...
                   [--throughput-only] [--pin]
documented run: proxy-bench --seconds 2 --rounds 10 --latency-seconds 5 --latency-rounds 4
--pin puts the load generator and the upstream on CPU 0 and each proxy (one worker) on CPU 1;
on a two-core machine CPU 0 then saturates first (see docs/benchmarks.md).";

fn parse_options() -> anyhow::Result<Options> {
    let mut o = Options {
        seconds: 6,
        connections: 32,
        rate: 1000,
        dual_rate: 100,
        sap_create_ms: 20,
        order_create_ms: 30,
        rounds: 3,
        proxy_env: Vec::new(),
        throughput_only: false,
        latency_seconds: None,
        latency_rounds: None,
        pin: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || -> anyhow::Result<u64> {
            it.next()
                .context("option needs a value")?
                .parse()
                .context("not a number")
        };
        match a.as_str() {
            "--seconds" => o.seconds = v()?,
            "--connections" => o.connections = v()? as usize,
            "--rate" => o.rate = v()?,
            "--dual-rate" => o.dual_rate = v()?,
            "--sap-create-ms" => o.sap_create_ms = v()?,
            "--order-create-ms" => o.order_create_ms = v()?,
            "--rounds" => o.rounds = v()?.max(1),
            "--throughput-only" => o.throughput_only = true,
            "--pin" => o.pin = true,
            "--latency-seconds" => o.latency_seconds = Some(v()?),
            "--latency-rounds" => o.latency_rounds = Some(v()?.max(1)),
            "--proxy-env" => {
                let kv = it.next().context("--proxy-env NAME=VALUE")?;
                let (k, v) = kv.split_once('=').context("--proxy-env NAME=VALUE")?;
                o.proxy_env.push((k.to_owned(), v.to_owned()));
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown option {other}\n\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("upstream") {
        return run_upstream(&args[2..]);
    }
    let opts = parse_options()?;
    if opts.pin {
        // Load generator and upstream on CPU 0; the proxy under test (nginx or ours, one worker
        // each) alone on CPU 1: a per-core comparison less exposed to scheduling luck.
        let ok = Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()?
            .success();
        if !ok {
            bail!("taskset failed");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(opts))
}

// ---------------------------------------------------------------------------------------------
// The fixed upstream (child process).

fn run_upstream(args: &[String]) -> anyhow::Result<()> {
    let get = |i: usize| -> anyhow::Result<u64> {
        args.get(i)
            .context("upstream <sap-port> <order-port> <sap-ms> <order-ms>")?
            .parse()
            .context("number")
    };
    let (sap_port, order_port, sap_ms, order_ms) = (get(0)?, get(1)?, get(2)?, get(3)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sap = TcpListener::bind(("127.0.0.1", sap_port as u16)).await?;
        let orders = TcpListener::bind(("127.0.0.1", order_port as u16)).await?;
        let entity = Bytes::from(entity_json());
        let counter = Arc::new(AtomicU64::new(1_000_000));
        let sap_task = serve_fn(sap, move |req| {
            let entity = entity.clone();
            let counter = counter.clone();
            async move {
                if req.method() == Method::POST {
                    tokio::time::sleep(Duration::from_millis(sap_ms)).await;
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let body =
                        format!(r#"{{"d":{{"SalesOrder":"{n}","SoldToParty":"17100001"}}}}"#);
                    return respond(StatusCode::CREATED, Bytes::from(body));
                }
                respond(StatusCode::OK, entity)
            }
        });
        let reserved = Arc::new(AtomicU64::new(8_000_000_000));
        let order_task = serve_fn(orders, move |req| {
            let reserved = reserved.clone();
            async move {
                // The proxy reserves the order numbers it names in blocks, as from the real
                // service (at once: it is not on the measured path).
                if req.method() == Method::POST && req.uri().path() == "/api/v1/order-numbers" {
                    let first = reserved.fetch_add(1000, Ordering::Relaxed);
                    let numbers: Vec<String> =
                        (first..first + 1000).map(|n| format!("\"{n}\"")).collect();
                    let body = format!(r#"{{"numbers":[{}]}}"#, numbers.join(","));
                    return respond(StatusCode::CREATED, Bytes::from(body));
                }
                if req.method() == Method::POST {
                    tokio::time::sleep(Duration::from_millis(order_ms)).await;
                    let body = format!(
                        r#"{{"id":"{}","order_number":"8000000001","status":"created"}}"#,
                        uuid::Uuid::new_v4()
                    );
                    return respond(StatusCode::CREATED, Bytes::from(body));
                }
                respond(StatusCode::OK, Bytes::from_static(b"{}"))
            }
        });
        tokio::try_join!(sap_task, order_task)?;
        anyhow::Ok(())
    })
}

fn entity_json() -> String {
    let mut fields = String::new();
    for i in 0..30 {
        fields.push_str(&format!(r#","Field{i:02}":"value-{i:04}""#));
    }
    format!(
        r#"{{"d":{{"__metadata":{{"uri":"http://127.0.0.1{SERVICE}/A_SalesOrder('1000001')","type":"API_SALES_ORDER_SRV.A_SalesOrder"}},"SalesOrder":"1000001","SoldToParty":"17100001","TotalNetAmount":"52.50"{fields}}}}}"#
    )
}

fn respond(
    status: StatusCode,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    Ok(r)
}

async fn serve_fn<F, Fut>(listener: TcpListener, f: F) -> anyhow::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, std::convert::Infallible>>
        + Send
        + 'static,
{
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let f = f.clone();
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(f))
                .await;
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Processes.

struct Proc(Child);

/// The run's scratch folder (configs, logs, replay stores), removed when the run ends; declared
/// before the processes so it is dropped after them.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops the process with SIGTERM, and SIGKILL if it is still there after 3 s. SIGTERM first
/// matters for nginx: a master killed outright leaves its workers running, orphaned.
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time (user + kernel) a process and its direct children have used so far, in µs (nginx's
/// work is done by its worker processes; the proxy's threads are counted in its own entry).
fn process_tree_cpu(pid: u32) -> CpuTime {
    let ticks_per_s = clock_ticks_per_second();
    let stat = |p: &str| -> Option<(u32, u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // Fields after the command (which may contain spaces) in parentheses.
        let rest = &text[text.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ppid = f.get(1)?.parse().ok()?;
        Some((ppid, f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
    };
    let (mut user, mut kernel) = stat(&pid.to_string()).map_or((0, 0), |(_, u, k)| (u, k));
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.bytes().all(|b| b.is_ascii_digit())
                && let Some((ppid, u, k)) = stat(&name)
                && ppid == pid
            {
                user += u;
                kernel += k;
            }
        }
    }
    CpuTime {
        user: user * 1_000_000 / ticks_per_s,
        kernel: kernel * 1_000_000 / ticks_per_s,
    }
}

/// CPU time in µs.
#[derive(Default, Clone, Copy)]
struct CpuTime {
    user: u64,
    kernel: u64,
}

impl CpuTime {
    fn since(self, before: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(before.user),
            kernel: self.kernel.saturating_sub(before.kernel),
        }
    }
}

fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time and requests summed over rounds.
#[derive(Default)]
struct CpuPerRequest {
    cpu: CpuTime,
    requests: u64,
}

impl CpuPerRequest {
    fn add(&mut self, cpu: CpuTime, requests: u64) {
        self.cpu.user += cpu.user;
        self.cpu.kernel += cpu.kernel;
        self.requests += requests;
    }
}

impl std::fmt::Display for CpuPerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.requests.max(1) as f64;
        write!(
            f,
            "{:.1} µs (user {:.1}, kernel {:.1})",
            (self.cpu.user + self.cpu.kernel) as f64 / n,
            self.cpu.user as f64 / n,
            self.cpu.kernel as f64 / n
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn wait_listening(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} did not start listening on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn nginx_binary() -> anyhow::Result<PathBuf> {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    eprintln!("nginx missing: installing the Debian package");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "nginx"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?
        .success();
    if !ok {
        bail!("apt-get install -y nginx failed");
    }
    Ok(PathBuf::from("/usr/sbin/nginx"))
}

fn start_nginx(dir: &Path, port: u16, upstream_port: u16, pin: bool) -> anyhow::Result<Proc> {
    let workers = if pin { 1 } else { 2 };
    let conf = format!(
        r#"worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream sap {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://sap;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(nginx_binary()?);
        c
    } else {
        Command::new(nginx_binary()?)
    };
    let child = cmd
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx")?;
    Ok(Proc(child))
}

#[allow(clippy::too_many_arguments)]
fn start_proxy(
    dir: &Path,
    port: u16,
    admin_port: u16,
    sap_port: u16,
    order_port: u16,
    mode: &str,
    extra_env: &[(String, String)],
    pin: bool,
) -> anyhow::Result<Proc> {
    let exe = std::env::current_exe()?.with_file_name("proxy");
    if !exe.exists() {
        bail!(
            "{} missing: build with `cargo build --release -p proxy --bins`",
            exe.display()
        );
    }
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(&exe).env("PROXY_WORKERS", "1");
        c
    } else {
        Command::new(&exe)
    };
    let child = cmd
        .env("PROXY_PORT", port.to_string())
        .env("PROXY_BIND", "127.0.0.1")
        .env("PROXY_ADMIN_PORT", admin_port.to_string())
        .env("SAP_URL", format!("http://127.0.0.1:{sap_port}"))
        .env(
            "ORDER_SERVICE_URL",
            format!("http://127.0.0.1:{order_port}"),
        )
        .env("PROXY_DATA_DIR", dir)
        .env("PROXY_SALES_ORDERS_MODE", mode)
        .env("RUST_LOG", "warn")
        .envs(extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting proxy")?;
    Ok(Proc(child))
}

// ---------------------------------------------------------------------------------------------
// Load generation.

#[derive(Clone)]
struct Call {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
}

impl Call {
    fn request(&self, addr: SocketAddr) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .header("host", addr.to_string())
            .header("accept", "application/json");
        if self.body.is_some() {
            b = b.header("content-type", "application/json");
        }
        b.body(Full::new(Bytes::from_static(
            self.body.unwrap_or("").as_bytes(),
        )))
        .expect("request")
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on a kept-alive connection, reconnecting when the server closed it.
async fn call_once(
    sender: &mut Option<Sender>,
    addr: SocketAddr,
    call: &Call,
) -> anyhow::Result<StatusCode> {
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        *sender = Some(connect(addr).await?);
    }
    let s = sender.as_mut().expect("connected");
    s.ready().await?;
    let resp = s.send_request(call.request(addr)).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    Ok(status)
}

struct LoadResult {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl LoadResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

async fn closed_loop(addr: SocketAddr, call: Call, conns: usize, dur: Duration) -> LoadResult {
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = new_hist();
            let mut sender = None;
            let (mut n, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                match call_once(&mut sender, addr, &call).await {
                    Ok(s) if s.is_success() => {
                        n += 1;
                        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                    }
                    _ => {
                        errors += 1;
                        sender = None;
                    }
                }
            }
            (n, errors, hist)
        }));
    }
    let mut out = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        hist: new_hist(),
    };
    for t in tasks {
        let (n, e, h) = t.await.expect("load task");
        out.requests += n;
        out.errors += e;
        out.hist.add(h).expect("same bounds");
    }
    out.elapsed = start.elapsed();
    out
}

/// Open loop: requests scheduled at a fixed rate; latency from the scheduled instant.
async fn open_loop(
    addr: SocketAddr,
    call: Call,
    rate: u64,
    conns: usize,
    dur: Duration,
) -> LoadResult {
    let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(100_000);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let call = call.clone();
        let rx = rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = new_hist();
            let mut sender = None;
            let (mut n, mut errors) = (0u64, 0u64);
            loop {
                let next = rx.lock().await.recv().await;
                let Some(scheduled) = next else { break };
                match call_once(&mut sender, addr, &call).await {
                    Ok(s) if s.is_success() => {
                        n += 1;
                        let _ = hist.record(scheduled.elapsed().as_micros().max(1) as u64);
                    }
                    _ => {
                        errors += 1;
                        sender = None;
                    }
                }
            }
            (n, errors, hist)
        }));
    }
    let start = Instant::now();
    let total = rate * dur.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..total {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        if tx.send(at).await.is_err() {
            break;
        }
    }
    drop(tx);
    let mut out = LoadResult {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        hist: new_hist(),
    };
    for t in tasks {
        let (n, e, h) = t.await.expect("load task");
        out.requests += n;
        out.errors += e;
        out.hist.add(h).expect("same bounds");
    }
    out.elapsed = start.elapsed();
    out
}

// ---------------------------------------------------------------------------------------------
// The run.

async fn bench(o: Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _scratch = Scratch(dir.clone());
    let (sap_port, order_port) = (free_port(), free_port());
    let (nginx_port, proxy_port, proxy_admin) = (free_port(), free_port(), free_port());
    let (dual_port, dual_admin) = (free_port(), free_port());
    let _upstream = Proc(
        Command::new(std::env::current_exe()?)
            .args([
                "upstream",
                &sap_port.to_string(),
                &order_port.to_string(),
                &o.sap_create_ms.to_string(),
                &o.order_create_ms.to_string(),
            ])
            .spawn()?,
    );
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let nginx = start_nginx(&nginx_dir, nginx_port, sap_port, o.pin)?;
    let proxy = start_proxy(
        &dir.join("legacy"),
        proxy_port,
        proxy_admin,
        sap_port,
        order_port,
        "legacy",
        &o.proxy_env,
        o.pin,
    )?;
    let _dual = start_proxy(
        &dir.join("dual"),
        dual_port,
        dual_admin,
        sap_port,
        order_port,
        "dual-write",
        &o.proxy_env,
        o.pin,
    )?;
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    for (p, what) in [
        (sap_port, "upstream"),
        (order_port, "upstream"),
        (nginx_port, "nginx"),
        (proxy_port, "proxy"),
        (dual_port, "dual-write proxy"),
    ] {
        wait_listening(addr(p), what).await?;
    }
    let read = Call {
        method: Method::GET,
        path: "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('1000001')",
        body: None,
    };
    let targets = [
        ("direct", sap_port),
        ("nginx", nginx_port),
        ("proxy", proxy_port),
    ];
    let dur = Duration::from_secs(o.seconds);

    println!(
        "# proxy-bench: {} s per step, {} connections, machine: {} cores",
        o.seconds,
        o.connections,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    for (_, p) in targets {
        closed_loop(addr(p), read.clone(), o.connections, Duration::from_secs(1)).await;
    }

    println!(
        "\n## Throughput (closed loop, GET of a 1 KiB entity, {} rounds)\n",
        o.rounds
    );
    println!("| target | round | req/s | errors | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    let direct = closed_loop(addr(sap_port), read.clone(), o.connections, dur).await;
    println!(
        "| direct | 1 | {:.0} | {} | {:.2} | {:.2} |",
        direct.rps(),
        direct.errors,
        direct.ms(0.5),
        direct.ms(0.99)
    );
    let (mut nginx_rps, mut proxy_rps) = (Vec::new(), Vec::new());
    // CPU time per request of each proxy (all its processes/threads, user + kernel), from /proc:
    // steadier than throughput on a shared machine, and it says where a gap comes from.
    let (mut nginx_cpu, mut proxy_cpu) = (CpuPerRequest::default(), CpuPerRequest::default());
    let nginx_pid = nginx.0.id();
    let proxy_pid = proxy.0.id();
    for round in 1..=o.rounds {
        // Alternate who goes first, so drift in the machine's load hits both alike.
        let order = if round % 2 == 1 {
            [("nginx", nginx_port), ("proxy", proxy_port)]
        } else {
            [("proxy", proxy_port), ("nginx", nginx_port)]
        };
        for (name, p) in order {
            let pid = if name == "nginx" {
                nginx_pid
            } else {
                proxy_pid
            };
            let before = process_tree_cpu(pid);
            let r = closed_loop(addr(p), read.clone(), o.connections, dur).await;
            let used = process_tree_cpu(pid).since(before);
            if name == "nginx" {
                nginx_cpu.add(used, r.requests)
            } else {
                proxy_cpu.add(used, r.requests)
            }
            println!(
                "| {name} | {round} | {:.0} | {} | {:.2} | {:.2} |",
                r.rps(),
                r.errors,
                r.ms(0.5),
                r.ms(0.99)
            );
            if name == "nginx" {
                nginx_rps.push(r.rps())
            } else {
                proxy_rps.push(r.rps())
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&proxy_rps) / mean(&nginx_rps);
    let per_round: Vec<String> = proxy_rps
        .iter()
        .zip(&nginx_rps)
        .map(|(p, n)| format!("{:.2}", p / n))
        .collect();
    println!(
        "\nthroughput ratio proxy / nginx = {ratio:.2} (mean of rounds; per round {}) (goal ≥ 1.0: {})",
        per_round.join(", "),
        if ratio >= 1.0 { "met" } else { "NOT met" }
    );
    println!(
        "CPU per request (user + kernel, all rounds): nginx {}, proxy {}",
        nginx_cpu, proxy_cpu
    );

    if o.throughput_only {
        return Ok(());
    }
    let lat_rounds = o.latency_rounds.unwrap_or(o.rounds);
    let lat_dur = Duration::from_secs(o.latency_seconds.unwrap_or(o.seconds));
    println!(
        "\n## Latency at {} requests/s (open loop, {} rounds of {} s)\n",
        o.rate,
        lat_rounds,
        lat_dur.as_secs()
    );
    println!("| target | round | sent | errors | p50 ms | p99 ms | p99.9 ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut best: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
    for round in 1..=lat_rounds {
        for (name, p) in targets {
            let r = open_loop(addr(p), read.clone(), o.rate, o.connections, lat_dur).await;
            println!(
                "| {name} | {round} | {} | {} | {:.2} | {:.2} | {:.2} |",
                r.requests,
                r.errors,
                r.ms(0.5),
                r.ms(0.99),
                r.ms(0.999)
            );
            let e = best.entry(name).or_insert((f64::MAX, f64::MAX));
            e.0 = e.0.min(r.ms(0.5));
            e.1 = e.1.min(r.ms(0.99));
        }
    }
    let (d50, d99) = best["direct"];
    println!("\n| target | best p50 ms | best p99 ms | added p50 ms | added p99 ms |");
    println!("|---|---|---|---|---|");
    for name in ["direct", "nginx", "proxy"] {
        let (p50, p99) = best[name];
        println!(
            "| {name} | {p50:.2} | {p99:.2} | {:.2} | {:.2} |",
            p50 - d50,
            p99 - d99
        );
    }
    let proxy_added = best["proxy"].1 - d99;
    println!(
        "\nadded p99 of the proxy = {proxy_added:.2} ms (best round of each target; goal ≤ 1 ms: {})",
        if proxy_added <= 1.0 { "met" } else { "NOT met" }
    );

    println!(
        "\n## Dual write at {} requests/s (SAP create {} ms, order-service create {} ms)\n",
        o.dual_rate, o.sap_create_ms, o.order_create_ms
    );
    let sap_create = Call {
        method: Method::POST,
        path: "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder",
        body: Some(CREATE_BODY),
    };
    let order_create = Call {
        method: Method::POST,
        path: "/api/v1/orders",
        body: Some(ORDER_BODY),
    };
    println!("| call | sent | errors | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    let s = open_loop(
        addr(sap_port),
        sap_create.clone(),
        o.dual_rate,
        o.connections,
        dur,
    )
    .await;
    println!(
        "| SAP create alone | {} | {} | {:.2} | {:.2} |",
        s.requests,
        s.errors,
        s.ms(0.5),
        s.ms(0.99)
    );
    let n = open_loop(
        addr(order_port),
        order_create,
        o.dual_rate,
        o.connections,
        dur,
    )
    .await;
    println!(
        "| order-service create alone | {} | {} | {:.2} | {:.2} |",
        n.requests,
        n.errors,
        n.ms(0.5),
        n.ms(0.99)
    );
    let d = open_loop(addr(dual_port), sap_create, o.dual_rate, o.connections, dur).await;
    println!(
        "| proxy dual write | {} | {} | {:.2} | {:.2} |",
        d.requests,
        d.errors,
        d.ms(0.5),
        d.ms(0.99)
    );
    let slower = s.ms(0.5).max(n.ms(0.5));
    let over = d.ms(0.5) - slower;
    println!(
        "\ndual-write p50 = slower side p50 + {over:.2} ms (goal ≤ 2 ms: {})",
        if over <= 2.0 { "met" } else { "NOT met" }
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
