//! The whole stack for one test, from the real binaries: `sap-mock` (its own temp data
//! folder), `order-service` (a fresh PostgreSQL database), and the `proxy` (its own temp data
//! folder), each on free loopback ports. Helpers talk to them the way SAP's SDK does and count
//! what each system holds, querying each one directly.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use test_support::postgres::{TestDatabase, fresh_database};
use test_support::process::{ChildProcess, free_port};

pub const TOKEN: &str = "test-admin-token";
pub const ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
pub const WAIT: Duration = Duration::from_secs(30);

/// Builds the other services' binaries once per test process and returns the target dir.
/// `PROXY_IT_PREBUILT=1` uses the binaries already in the target dir (e.g. when `scripts/test`
/// built them just before).
pub fn binaries() -> &'static Path {
    test_support::process::built_binaries(&["order-service", "sap-mock", "orderctl"])
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("proxy-it-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// How to start the stack.
#[derive(Clone)]
pub struct Options {
    pub mode: &'static str,
    pub policy: &'static str,
    pub proxy_env: Vec<(&'static str, String)>,
    pub sap_env: Vec<(&'static str, String)>,
    /// More environment for the order service, applied last (e.g. its outbox relay on, with
    /// `KAFKA_BROKERS` and a test topic).
    pub order_env: Vec<(&'static str, String)>,
    /// What a stand-in for sap-sync's `/status` answers (the proxy's tests do not run
    /// sap-sync; its own tests do). `None`: no sap-sync configured.
    pub sap_sync_status: Option<Value>,
    /// Put the emulator behind TLS (a test CA's certificate for 127.0.0.1, see
    /// [`test_support::tls`]) and give the proxy `SAP_URL=https://...`, trusting what
    /// [`SapTls`] says. Tests still reach the emulator directly over plain http
    /// ([`Stack::sap_url`]).
    pub sap_tls: Option<SapTls>,
    /// Give the proxy's SAP face (retired routes) the user [`FACE_USER`] and have every request
    /// of [`Stack::http`] log on as it (basic, as SAP's clients do; the emulator ignores it).
    pub sap_face_user: bool,
}

/// The SAP face's test user (see [`Options::sap_face_user`]).
pub const FACE_USER: &str = "shop";
/// Its password.
pub const FACE_PASSWORD: &str = "correct horse battery staple";

/// What the proxy trusts when SAP is behind TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SapTls {
    /// `SAP_CA_FILE` names the CA that signed SAP's certificate.
    CaFile,
    /// `SAP_CA_FILE` is unset: the system's store, which for this proxy is the CA's file
    /// (`SSL_CERT_FILE`, read by rustls-native-certs as the system's bundle).
    SystemStore,
    /// `SAP_CA_FILE` names another CA: SAP's certificate is signed by one the proxy does not
    /// know.
    StrangerCa,
}

/// The emulator's TLS front and the CAs of a test.
pub struct SapFront {
    pub ca: test_support::tls::TestCa,
    pub stranger: test_support::tls::TestCa,
    pub front: test_support::tls::TlsTerminator,
    pub trust: SapTls,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: "dual-write",
            policy: "strict",
            proxy_env: Vec::new(),
            sap_env: Vec::new(),
            order_env: Vec::new(),
            sap_sync_status: None,
            sap_tls: None,
            sap_face_user: false,
        }
    }
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub struct Stack {
    pub db: TestDatabase,
    pub sap: Option<ChildProcess>,
    pub sap_port: u16,
    pub sap_dir: PathBuf,
    pub sap_env: Vec<(&'static str, String)>,
    pub orders: Option<ChildProcess>,
    pub orders_port: u16,
    pub proxy: Option<ChildProcess>,
    pub proxy_port: u16,
    pub admin_port: u16,
    pub proxy_dir: PathBuf,
    pub opts: Options,
    pub http: reqwest::Client,
    pub pool: sqlx::PgPool,
    pub sap_sync_stub: Option<(u16, tokio::task::JoinHandle<()>)>,
    /// What the stand-in for sap-sync answers now ([`Stack::set_sap_sync_status`]).
    pub sap_sync_answer: std::sync::Arc<std::sync::Mutex<Value>>,
    /// The TLS terminator in front of the emulator and the CAs, with `Options::sap_tls`.
    pub sap_tls: Option<SapFront>,
}

/// sap-sync's `/status` when it keeps up and nothing is parked.
pub fn healthy_sap_sync() -> Option<Value> {
    Some(
        json!({"joined": true, "lag_messages": 0, "lag_seconds": 0.0, "parked_orders": 0,
                "partitions": [0, 1, 2, 3, 4, 5]}),
    )
}

/// Answers every request with `200` and what `body` holds at the time (a stand-in for
/// sap-sync's `/status`).
async fn status_stub(
    body: std::sync::Arc<std::sync::Mutex<Value>>,
) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let text = body.lock().unwrap().to_string();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    if c.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, task)
}

/// A passing test leaves nothing behind in the temp folder; a failing one keeps its data folders
/// (logs, replay store) so the failure can be read afterwards.
impl Drop for Stack {
    fn drop(&mut self) {
        drop(self.proxy.take());
        drop(self.orders.take());
        drop(self.sap.take());
        drop(self.sap_tls.take());
        if let Some((_, t)) = self.sap_sync_stub.take() {
            t.abort();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.proxy_dir);
            let _ = std::fs::remove_dir_all(&self.sap_dir);
        }
    }
}

impl Stack {
    pub async fn start(mut opts: Options) -> Stack {
        let bins = binaries();
        let _ = bins;
        let mut headers = HeaderMap::new();
        if opts.sap_face_user {
            let path = temp_dir("users").join("users");
            let hash = proxy::face::session::users::hash_password(FACE_PASSWORD).unwrap();
            std::fs::write(&path, format!("{FACE_USER}:{hash}\n")).unwrap();
            opts.proxy_env
                .push(("PROXY_USERS_FILE", path.display().to_string()));
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{FACE_USER}:{FACE_PASSWORD}"));
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Basic {basic}").parse().unwrap(),
            );
        }
        let db = fresh_database().await;
        let sap_sync_answer = std::sync::Arc::new(std::sync::Mutex::new(
            opts.sap_sync_status.clone().unwrap_or(Value::Null),
        ));
        let sap_sync_stub = match &opts.sap_sync_status {
            Some(_) => Some(status_stub(sap_sync_answer.clone()).await),
            None => None,
        };
        let mut s = Stack {
            sap_sync_stub,
            sap_sync_answer,
            sap_tls: None,
            pool: sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect_lazy(&db.url)
                .unwrap(),
            db,
            sap: None,
            sap_port: free_port(),
            sap_dir: temp_dir("sap"),
            sap_env: opts.sap_env.clone(),
            orders: None,
            orders_port: free_port(),
            proxy: None,
            proxy_port: free_port(),
            admin_port: free_port(),
            proxy_dir: temp_dir("proxy"),
            opts,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .default_headers(headers)
                .build()
                .unwrap(),
        };
        s.start_sap().await;
        if let Some(trust) = s.opts.sap_tls {
            let ca = test_support::tls::TestCa::new("proxy test SAP CA");
            let front = test_support::tls::TlsTerminator::start(&ca, s.sap_port).await;
            s.sap_tls = Some(SapFront {
                ca,
                stranger: test_support::tls::TestCa::new("a CA SAP does not use"),
                front,
                trust,
            });
        }
        s.start_order_service().await;
        s.start_proxy().await;
        s
    }

    /// The TLS terminator in front of the emulator (with `Options::sap_tls`).
    pub fn sap_tls_front(&self) -> &test_support::tls::TlsTerminator {
        &self.sap_tls.as_ref().expect("started with sap_tls").front
    }

    /// SAP as the proxy is told to reach it: the emulator, or its TLS front.
    pub fn proxy_sap_url(&self) -> String {
        match &self.sap_tls {
            Some(f) => format!("https://127.0.0.1:{}", f.front.port()),
            None => self.sap_url(),
        }
    }

    pub fn sap_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sap_port)
    }
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy_port)
    }
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }
    pub fn orders_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.orders_port)
    }

    pub async fn wait_ok(&self, url: String, what: &str) {
        let http = self.http.clone();
        test_support::eventually(what, WAIT, || {
            let http = http.clone();
            let url = url.clone();
            async move {
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
    }

    pub async fn start_sap(&mut self) {
        let mut cmd = Command::new(binaries().join("sap-mock"));
        cmd.env("SAP_MOCK_BIND", "127.0.0.1")
            .env("SAP_MOCK_PORT", self.sap_port.to_string())
            .env("SAP_MOCK_DATA_DIR", &self.sap_dir)
            .env("RUST_LOG", "warn")
            .stdout(log_file(&self.sap_dir, "sap-mock.log"))
            .stderr(log_file(&self.sap_dir, "sap-mock.log"));
        for (k, v) in &self.sap_env {
            cmd.env(k, v);
        }
        self.sap = Some(ChildProcess::spawn("sap-mock", cmd));
        self.wait_ok(
            format!("{}/sap-mock/health", self.sap_url()),
            "sap-mock healthy",
        )
        .await;
    }

    pub async fn start_order_service(&mut self) {
        let mut cmd = Command::new(binaries().join("order-service"));
        cmd.env("ORDER_SERVICE_HOST", "127.0.0.1")
            .env("ORDER_SERVICE_PORT", self.orders_port.to_string())
            .env("DATABASE_URL", &self.db.url)
            .env("OUTBOX_RELAY_ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdout(log_file(&self.proxy_dir, "order-service.log"))
            .stderr(log_file(&self.proxy_dir, "order-service.log"));
        for (k, v) in &self.opts.order_env {
            cmd.env(k, v);
        }
        self.orders = Some(ChildProcess::spawn("order-service", cmd));
        self.wait_ok(
            format!("{}/health", self.orders_url()),
            "order-service healthy",
        )
        .await;
    }

    pub fn stop_order_service(&mut self) {
        if let Some(mut p) = self.orders.take() {
            p.kill_hard();
        }
    }

    /// SIGSTOP / SIGCONT: the order service stops answering without closing its port.
    pub fn freeze_order_service(&self, frozen: bool) {
        let pid = self.orders.as_ref().expect("order service running").id();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        assert!(
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGSTOP / SIGCONT: SAP (the emulator) stops answering without closing its port, as a
    /// system that hangs.
    pub fn freeze_sap(&self, frozen: bool) {
        let pid = self.sap.as_ref().expect("sap-mock running").id();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        assert!(
            Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    /// What an operator does before retiring a route: the order service's master data
    /// (materials, prices, customers and their sales areas) imported from SAP with `orderctl
    /// master-data import --from-sap`. A retired route prices and checks creates from it.
    pub fn import_master_data_from_sap(&self) {
        let out = Command::new(binaries().join("orderctl"))
            .args([
                "master-data",
                "import",
                "--from-sap",
                "--sap-url",
                &self.sap_url(),
                "--orders-url",
                &self.orders_url(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "master data import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether SAP (the emulator) is stopped by a signal right now (`T` in `/proc/<pid>/stat`).
    pub fn sap_is_stopped(&self) -> bool {
        let pid = self.sap.as_ref().expect("sap-mock running").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // `pid (comm) state ...`: the state follows the last `)`.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            == Some("T")
    }

    /// What is waiting for SAP (the emulator) in the kernel: connections not yet accepted
    /// (a listening socket's receive queue is its accept backlog) plus unread request bytes on
    /// connections it accepted earlier, summed over every TCP socket on its port
    /// (`/proc/net/tcp`). While SAP is frozen, anything sent to it stays here, so `0` at the end
    /// of a frozen run proves that nothing was sent to SAP during it.
    pub fn sap_unread_on_wire(&self) -> u64 {
        let port = format!("{:04X}", self.sap_port);
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp readable");
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1)?.rsplit(':').next()?;
                let rx = fields.get(4)?.split(':').nth(1)?;
                (local_port == port).then(|| u64::from_str_radix(rx, 16).ok())?
            })
            .sum()
    }

    /// Requests SAP (the emulator) has answered on its OData service
    /// (`http_requests_total` on its routes below the service root).
    pub async fn sap_odata_requests(&self) -> f64 {
        let metrics = self.get(format!("{}/metrics", self.sap_url())).await;
        String::from_utf8_lossy(&metrics.body)
            .lines()
            .filter(|l| l.starts_with("http_requests_total{") && l.contains(ROOT))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn start_proxy(&mut self) {
        let cmd = self.proxy_command(self.proxy_port, self.admin_port, &self.proxy_dir);
        self.proxy = Some(ChildProcess::spawn("proxy", cmd));
        self.wait_ok(format!("{}/health", self.admin_url()), "proxy healthy")
            .await;
    }

    /// The proxy's command as this stack starts it, on the given ports and data folder (a
    /// second replica gets its own).
    pub fn proxy_command(&self, port: u16, admin_port: u16, dir: &Path) -> Command {
        let proxy_dir = dir;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxy"));
        cmd.env("PROXY_BIND", "127.0.0.1")
            .env("PROXY_PORT", port.to_string())
            .env("PROXY_ADMIN_PORT", admin_port.to_string())
            .env("SAP_URL", self.proxy_sap_url())
            .env("ORDER_SERVICE_URL", self.orders_url())
            .env("ADMIN_TOKEN", TOKEN)
            .env("PROXY_DATA_DIR", proxy_dir)
            .env("PROXY_SALES_ORDERS_MODE", self.opts.mode)
            .env("PROXY_SALES_ORDERS_POLICY", self.opts.policy)
            .env("PROXY_REPLAY_BASE_MS", "100")
            .env("PROXY_REPLAY_MAX_MS", "1000")
            .env("PROXY_REPLAY_POLL_MS", "100")
            .env("PROXY_SAP_TIMEOUT_MS", "5000")
            // SAP (the emulator) can no longer commit a silent create once the proxy's call
            // timed out and the emulator's own latency is over: a short horizon.
            .env("PROXY_SAP_COMMIT_HORIZON_MS", "1500")
            .env("PROXY_ORDER_SERVICE_TIMEOUT_MS", "3000")
            .env("PROXY_BREAKER_FAILURES", "1000")
            .env("RUST_LOG", "info")
            .stdout(log_file(proxy_dir, "proxy.log"))
            .stderr(log_file(proxy_dir, "proxy.log"));
        if let Some((port, _)) = &self.sap_sync_stub {
            cmd.env("SAP_SYNC_URL", format!("http://127.0.0.1:{port}"));
        }
        match &self.sap_tls {
            Some(f) if f.trust == SapTls::CaFile => {
                cmd.env("SAP_CA_FILE", f.ca.pem_file());
            }
            Some(f) if f.trust == SapTls::SystemStore => {
                cmd.env_remove("SAP_CA_FILE")
                    .env_remove("SSL_CERT_DIR")
                    .env("SSL_CERT_FILE", f.ca.pem_file());
            }
            Some(f) => {
                cmd.env("SAP_CA_FILE", f.stranger.pem_file());
            }
            None => {}
        }
        for (k, v) in &self.opts.proxy_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn kill_proxy(&mut self) {
        if let Some(mut p) = self.proxy.take() {
            p.kill_hard();
        }
    }

    /// Replaces sap-mock's fault knobs (`{}` = none).
    pub async fn sap_faults(&self, knobs: Value) {
        let r = self
            .http
            .put(format!("{}/sap-mock/admin/faults", self.sap_url()))
            .json(&knobs)
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "fault knobs refused: {}",
            r.text().await.unwrap()
        );
    }

    /// A create as SAP's SDK sends it: CSRF fetch with `HEAD .../A_SalesOrder/`, then the POST
    /// with the token and the cookies.
    pub async fn sdk_create(&self, base: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let session = self.csrf(base).await;
        self.create_in_session(base, &session, body, headers).await
    }

    /// The create of [`Stack::sdk_create`] with a CSRF session fetched earlier.
    pub async fn create_in_session(
        &self,
        base: &str,
        (token, cookies): &(String, String),
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .http
            .post(format!("{base}{ROOT}/A_SalesOrder"))
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("x-csrf-token", token)
            .header("cookie", cookies)
            .body(serde_json::to_vec(body).unwrap());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_resp(req.send().await.unwrap()).await
    }

    /// How many requests SAP (the emulator) has held for its latency knob so far: each one
    /// reached SAP whole.
    pub async fn sap_requests_delayed(&self) -> f64 {
        self.sap_event_count("sap_mock_fault_latency").await
    }

    /// How often the emulator recorded `event` (its `sap_mock_events_total` counter).
    pub async fn sap_event_count(&self, event: &str) -> f64 {
        let metrics = self.get(format!("{}/metrics", self.sap_url())).await;
        let prefix = format!("sap_mock_events_total{{event=\"{event}\"}}");
        String::from_utf8_lossy(&metrics.body)
            .lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    }

    /// A CSRF token and the session cookies it is bound to, fetched as SAP's SDK does
    /// (`HEAD .../A_SalesOrder/` with `x-csrf-token: Fetch`).
    pub async fn csrf(&self, base: &str) -> (String, String) {
        let head = self
            .http
            .head(format!("{base}{ROOT}/A_SalesOrder/"))
            .header("x-csrf-token", "Fetch")
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let token = head
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let cookies = head
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .collect::<Vec<_>>()
            .join(";");
        (token, cookies)
    }

    pub async fn get(&self, url: String) -> Resp {
        into_resp(
            self.http
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// SAP's orders with this `PurchaseOrderByCustomer`, asked of SAP directly.
    pub async fn sap_orders(&self, reference: &str) -> Vec<Value> {
        let url = format!(
            "{}{ROOT}/A_SalesOrder?$select=SalesOrder,PurchaseOrderByCustomer,ExternalDocumentID&$filter=(PurchaseOrderByCustomer%20eq%20'{reference}')",
            self.sap_url()
        );
        let r = self.get(url).await;
        assert_eq!(r.status, 200, "SAP list failed: {:?}", r.body);
        r.json()["d"]["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Every SAP order.
    pub async fn sap_all(&self) -> Vec<Value> {
        let url = format!(
            "{}{ROOT}/A_SalesOrder?$select=SalesOrder,PurchaseOrderByCustomer,ExternalDocumentID&$top=10000",
            self.sap_url()
        );
        let r = self.get(url).await;
        assert_eq!(r.status, 200, "SAP list failed: {:?}", r.body);
        r.json()["d"]["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The order service's rows with this `customer_reference`, read from PostgreSQL:
    /// (status, sap_order_number, specifications).
    pub async fn db_orders(&self, reference: &str) -> Vec<(String, Option<String>, Value)> {
        sqlx::query_as::<_, (String, Option<String>, Value)>(
            "SELECT status, sap_order_number, specifications FROM orders WHERE customer_reference = $1 ORDER BY created_at",
        )
        .bind(reference)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    /// Every row: (customer_reference, status, sap_order_number).
    pub async fn db_all(&self) -> Vec<(Option<String>, String, Option<String>)> {
        sqlx::query_as("SELECT customer_reference, status, sap_order_number FROM orders")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.admin_url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_resp(req.send().await.unwrap()).await
    }

    pub async fn set_mode(&self, mode: &str, force: bool) -> Resp {
        self.admin(
            reqwest::Method::PUT,
            "/admin/v1/routes/sales-orders/mode",
            Some(json!({"mode": mode, "force": force})),
            Some(TOKEN),
        )
        .await
    }

    /// Changes what the stand-in for sap-sync's `/status` answers (started with
    /// `Options::sap_sync_status`).
    pub fn set_sap_sync_status(&self, status: Value) {
        assert!(
            self.sap_sync_stub.is_some(),
            "started without a sap-sync stand-in"
        );
        *self.sap_sync_answer.lock().unwrap() = status;
    }

    /// The sales order route as `GET /admin/routes` lists it.
    pub async fn sales_orders_route(&self) -> Value {
        let r = self
            .admin(reqwest::Method::GET, "/admin/routes", None, Some(TOKEN))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.json()["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "sales-orders")
            .cloned()
            .unwrap()
    }

    /// Runs the `orderctl` binary against this proxy's admin API; (exit success, stdout, stderr).
    /// Awaited, not blocking: the stand-in for sap-sync runs on the test's runtime.
    pub async fn orderctl(&self, args: &[&str], admin_url: &str) -> (bool, String, String) {
        let out = tokio::process::Command::new(binaries().join("orderctl"))
            .args(args)
            .env("PROXY_ADMIN_URL", admin_url)
            .env("ADMIN_TOKEN", TOKEN)
            .env_remove("RUST_BACKTRACE")
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub async fn replays(&self) -> Vec<Value> {
        let r = self
            .admin(reqwest::Method::GET, "/admin/v1/replays", None, Some(TOKEN))
            .await;
        r.json()["replays"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until the replay log is empty.
    pub async fn wait_replays_drained(&self) {
        test_support::eventually("replay log drained", WAIT, || async {
            self.replays().await.is_empty().then_some(())
        })
        .await;
    }

    pub fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.proxy_dir.join("proxy.log")).unwrap_or_default()
    }
}

pub async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

/// A deep insert as SAP's SDK sends it, with a unique reference.
pub fn order_body(reference: &str) -> Value {
    json!({
        "SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
        "OrganizationDivision": "00", "SoldToParty": "17100001",
        "PurchaseOrderByCustomer": reference,
        "CustomerPurchaseOrderDate": "/Date(1795478400000+0000)/",
        "to_Item": [
            {"Material": "TG11", "RequestedQuantity": "2", "RequestedQuantityUnit": "PC"},
            {"Material": "TG12", "RequestedQuantity": "5", "RequestedQuantityUnit": "PC"}
        ]
    })
}

pub fn unique(tag: &str) -> String {
    format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

// `$batch` requests as SAP's JavaScript client builds them, and reading their answers.

/// One `application/http` part as SAP's JavaScript client serializes it (batch-request-
/// serializer.ts: absolute path with the service root, title-case headers, one-line JSON).
pub fn http_part(method: &str, path: &str, body: Option<&Value>) -> String {
    let mut s = String::from("Content-Type: application/http\nContent-Transfer-Encoding: binary\n");
    if method != "GET" {
        s.push_str("Content-Id: 1\n");
    }
    s.push_str(&format!(
        "\n{method} {ROOT}{path} HTTP/1.1\nContent-Type: application/json\nAccept: application/json\n\n"
    ));
    if let Some(b) = body {
        s.push_str(&b.to_string());
    }
    s.push('\n');
    s
}

pub fn changeset(name: &str, parts: &[String]) -> String {
    format!(
        "Content-Type: multipart/mixed; boundary={name}\n\n--{name}\n{}\n--{name}--",
        parts.join(&format!("\n--{name}\n"))
    )
}

/// A batch body of `parts`, CRLF as the SDK sends it.
pub fn batch_body(parts: &[String]) -> String {
    format!("--batch_t\n{}\n--batch_t--\n", parts.join("\n--batch_t\n")).replace('\n', "\r\n")
}

pub async fn post_batch(s: &Stack, body: String) -> Resp {
    let (token, cookies) = s.csrf(&s.proxy_url()).await;
    into_resp(
        s.http
            .post(format!("{}{ROOT}/$batch", s.proxy_url()))
            .header("x-csrf-token", token)
            .header("cookie", cookies)
            .header("accept", "multipart/mixed")
            .header("content-type", "multipart/mixed; boundary=batch_t")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The status of each answer part, in order (`HTTP/1.1 204 No Content` → 204).
pub fn statuses(body: &str) -> Vec<u16> {
    body.lines()
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .filter_map(|l| l.get(..3)?.parse().ok())
        .collect()
}

/// The JSON of each top-level answer part, in order: the part's last line, as SAP's
/// JavaScript client reads it (batch-response-parser.ts).
pub fn part_jsons(body: &str, boundary: &str) -> Vec<Value> {
    body.split(&format!("--{boundary}"))
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "--")
        .map(|p| serde_json::from_str(p.lines().last().unwrap_or_default()).unwrap_or(Value::Null))
        .collect()
}
