use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use test_support::kafka::TestTopic;
use test_support::postgres::{TestDatabase, fresh_database};
use test_support::process::{ChildProcess, built_binaries, free_port};

pub const WAIT: Duration = Duration::from_secs(60);
pub const ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

pub fn bins() -> &'static std::path::Path {
    built_binaries(&["order-service", "sap-mock", "orderctl", "proxy"])
}

fn log_to(dir: &std::path::Path, name: &str) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// What sap-sync trusts when the emulator is behind TLS ([`Stack::start_behind_tls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SapTls {
    /// `SAP_CA_FILE` names the CA that signed SAP's certificate.
    CaFile,
    /// `SAP_CA_FILE` names another CA: SAP's certificate is unknown to sap-sync.
    StrangerCa,
}

/// The emulator's TLS front (a test CA's certificate for `localhost` and 127.0.0.1) and the
/// CAs of a test.
pub struct SapFront {
    pub ca: test_support::tls::TestCa,
    pub stranger: test_support::tls::TestCa,
    pub front: test_support::tls::TlsTerminator,
    /// What the next sap-sync started trusts.
    pub trust: SapTls,
}

/// Order service (relay on, publishing to a fresh topic), emulator, and sap-sync instances.
pub struct Stack {
    pub db: TestDatabase,
    pub topic: TestTopic,
    pub group: String,
    pub dir: PathBuf,
    pub sap: Option<ChildProcess>,
    pub sap_port: u16,
    pub sap_env: Vec<(&'static str, String)>,
    pub orders: Option<ChildProcess>,
    pub orders_port: u16,
    pub syncs: Vec<(Option<ChildProcess>, u16)>,
    pub proxy: Option<(ChildProcess, u16)>,
    pub proxy_admin: u16,
    pub sync_env: Vec<(&'static str, String)>,
    /// More environment for the order service (set last, so it wins).
    pub orders_env: Vec<(&'static str, String)>,
    pub http: reqwest::Client,
    /// With [`Stack::start_behind_tls`]: sap-sync reaches the emulator through this front.
    pub sap_tls: Option<SapFront>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (p, _) in &mut self.syncs {
            drop(p.take());
        }
        drop(self.proxy.take());
        drop(self.orders.take());
        drop(self.sap.take());
        drop(self.sap_tls.take());
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Stack {
    pub async fn start(
        sap_env: Vec<(&'static str, String)>,
        sync_env: Vec<(&'static str, String)>,
    ) -> Stack {
        Self::start_with(sap_env, sync_env, vec![], None).await
    }

    /// As [`Stack::start`], with more environment for the order service too.
    pub async fn start_with_orders_env(
        sap_env: Vec<(&'static str, String)>,
        sync_env: Vec<(&'static str, String)>,
        orders_env: Vec<(&'static str, String)>,
    ) -> Stack {
        Self::start_with(sap_env, sync_env, orders_env, None).await
    }

    /// As [`Stack::start`], the emulator behind a TLS terminator: sap-sync gets
    /// `SAP_URL=https://localhost:<port>` and trusts what `trust` says. Tests still reach the
    /// emulator directly over plain http ([`Stack::sap_url`]).
    pub async fn start_behind_tls(
        sap_env: Vec<(&'static str, String)>,
        sync_env: Vec<(&'static str, String)>,
        trust: SapTls,
    ) -> Stack {
        Self::start_with(sap_env, sync_env, vec![], Some(trust)).await
    }

    async fn start_with(
        sap_env: Vec<(&'static str, String)>,
        sync_env: Vec<(&'static str, String)>,
        orders_env: Vec<(&'static str, String)>,
        tls: Option<SapTls>,
    ) -> Stack {
        let _ = bins();
        let db = fresh_database().await;
        let topic = test_support::kafka::fresh_topic(6).await;
        let dir =
            std::env::temp_dir().join(format!("sap-sync-it-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Stack {
            db,
            group: format!("sap-sync-{}", uuid::Uuid::new_v4().simple()),
            topic,
            dir,
            sap: None,
            sap_port: free_port(),
            sap_env,
            orders: None,
            orders_port: free_port(),
            syncs: Vec::new(),
            proxy: None,
            proxy_admin: 0,
            sync_env,
            orders_env,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            sap_tls: None,
        };
        s.start_sap().await;
        if let Some(trust) = tls {
            let ca = test_support::tls::TestCa::new("sap-sync test SAP CA");
            let front = test_support::tls::TlsTerminator::start(&ca, s.sap_port).await;
            s.sap_tls = Some(SapFront {
                ca,
                stranger: test_support::tls::TestCa::new("a CA SAP does not use"),
                front,
                trust,
            });
        }
        s.start_order_service().await;
        s.start_sync().await;
        s
    }

    pub fn sap_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sap_port)
    }
    pub fn orders_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.orders_port)
    }
    /// SAP as sap-sync is told to reach it: the emulator, or its TLS front (by name, so the
    /// certificate's DNS name is what is checked).
    pub fn sync_sap_url(&self) -> String {
        match &self.sap_tls {
            Some(f) => format!("https://localhost:{}", f.front.port()),
            None => self.sap_url(),
        }
    }
    /// The emulator's TLS front (with [`Stack::start_behind_tls`]).
    pub fn sap_tls_front(&self) -> &test_support::tls::TlsTerminator {
        &self.sap_tls.as_ref().expect("started behind TLS").front
    }
    /// The log of sap-sync instance `i`.
    pub fn sync_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("sap-sync-{i}.log"))).unwrap_or_default()
    }
    pub fn sync_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.syncs[i].1)
    }

    async fn wait_ok(&self, url: String, what: &str) {
        test_support::eventually(what, WAIT, || async {
            match self.http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        })
        .await;
    }

    pub async fn start_sap(&mut self) {
        let mut cmd = Command::new(bins().join("sap-mock"));
        cmd.env("SAP_MOCK_BIND", "127.0.0.1")
            .env("SAP_MOCK_PORT", self.sap_port.to_string())
            .env("SAP_MOCK_DATA_DIR", self.dir.join("sap"))
            .env("RUST_LOG", "warn")
            .stdout(log_to(&self.dir, "sap-mock.log"))
            .stderr(log_to(&self.dir, "sap-mock.log"));
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

    pub fn stop_sap(&mut self) {
        if let Some(mut p) = self.sap.take() {
            p.kill_hard();
        }
    }

    pub async fn start_order_service(&mut self) {
        self.start_order_service_relaying(true).await;
    }

    /// The order service with its outbox relay on or off (off: changes commit with their
    /// events, which wait in the outbox).
    pub async fn start_order_service_relaying(&mut self, relay: bool) {
        let mut cmd = Command::new(bins().join("order-service"));
        cmd.env("ORDER_SERVICE_HOST", "127.0.0.1")
            .env("ORDER_SERVICE_PORT", self.orders_port.to_string())
            .env("DATABASE_URL", &self.db.url)
            .env("KAFKA_BROKERS", &self.topic.brokers)
            .env("KAFKA_TOPIC", &self.topic.name)
            .env("OUTBOX_RELAY_ENABLED", relay.to_string())
            .env("RUST_LOG", "warn")
            .stdout(log_to(&self.dir, "order-service.log"))
            .stderr(log_to(&self.dir, "order-service.log"));
        for (k, v) in &self.orders_env {
            cmd.env(k, v);
        }
        self.orders = Some(ChildProcess::spawn("order-service", cmd));
        self.wait_ok(
            format!("{}/health", self.orders_url()),
            "order-service healthy",
        )
        .await;
    }

    /// Starts one more sap-sync instance in the test's group; returns its index.
    pub async fn start_sync(&mut self) -> usize {
        let port = free_port();
        let i = self.syncs.len();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sap-sync"));
        cmd.env("KAFKA_BROKERS", &self.topic.brokers)
            .env("KAFKA_TOPIC", &self.topic.name)
            .env("SAP_SYNC_GROUP", &self.group)
            .env("SAP_URL", self.sync_sap_url())
            .env("ORDER_SERVICE_URL", self.orders_url())
            .env("SAP_SYNC_BIND", "127.0.0.1")
            .env("SAP_SYNC_PORT", port.to_string())
            .env("SAP_SYNC_BACKOFF_BASE_MS", "100")
            .env("SAP_SYNC_BACKOFF_MAX_MS", "1000")
            .env("SAP_SYNC_POLL_MS", "300")
            .env("SAP_TIMEOUT_MS", "3000")
            .env("RUST_LOG", "info")
            .stdout(log_to(&self.dir, &format!("sap-sync-{i}.log")))
            .stderr(log_to(&self.dir, &format!("sap-sync-{i}.log")));
        if let Some(f) = &self.sap_tls {
            let ca = match f.trust {
                SapTls::CaFile => &f.ca,
                SapTls::StrangerCa => &f.stranger,
            };
            cmd.env("SAP_CA_FILE", ca.pem_file());
        }
        for (k, v) in &self.sync_env {
            cmd.env(k, v);
        }
        self.syncs
            .push((Some(ChildProcess::spawn("sap-sync", cmd)), port));
        self.wait_ok(format!("{}/ready", self.sync_url(i)), "sap-sync ready")
            .await;
        i
    }

    /// Starts the proxy in front of the emulator and the order service, the sales order route
    /// in `mode`, sap-sync's status for its readiness; returns its base URL.
    pub async fn start_proxy(&mut self, mode: &str) -> String {
        self.start_proxy_at(mode, free_port(), &[]).await
    }

    /// As [`Stack::start_proxy`], its admin API on `admin` (a port chosen before sap-sync was
    /// started with `PROXY_ADMIN_URL` pointing at it).
    pub async fn start_proxy_on(&mut self, mode: &str, admin: u16) -> String {
        self.start_proxy_at(mode, admin, &[]).await
    }

    /// As [`Stack::start_proxy`], with more environment for the proxy (set last, so it wins).
    pub async fn start_proxy_with(&mut self, mode: &str, env: &[(&str, String)]) -> String {
        self.start_proxy_at(mode, free_port(), env).await
    }

    async fn start_proxy_at(&mut self, mode: &str, admin: u16, env: &[(&str, String)]) -> String {
        let port = free_port();
        let mut cmd = Command::new(bins().join("proxy"));
        cmd.env("PROXY_BIND", "127.0.0.1")
            .env("PROXY_PORT", port.to_string())
            .env("PROXY_ADMIN_PORT", admin.to_string())
            .env("SAP_URL", self.sap_url())
            .env("ORDER_SERVICE_URL", self.orders_url())
            .env("SAP_SYNC_URL", self.sync_url(0))
            .env("ADMIN_TOKEN", "e2e-admin-token")
            .env("PROXY_DATA_DIR", self.dir.join("proxy"))
            .env("PROXY_SALES_ORDERS_MODE", mode)
            .env("PROXY_RETURN_POLL_MS", "200")
            .env("RUST_LOG", "info")
            .stdout(log_to(&self.dir, "proxy.log"))
            .stderr(log_to(&self.dir, "proxy.log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.proxy = Some((ChildProcess::spawn("proxy", cmd), port));
        self.proxy_admin = admin;
        self.wait_ok(format!("http://127.0.0.1:{admin}/health"), "proxy healthy")
            .await;
        format!("http://127.0.0.1:{port}")
    }

    /// Switches the proxy's sales order route (`force` as given); the answer's status.
    pub async fn switch(&self, mode: &str, force: bool) -> u16 {
        self.http
            .put(format!(
                "http://127.0.0.1:{}/admin/v1/routes/sales-orders/mode",
                self.proxy_admin
            ))
            .bearer_auth("e2e-admin-token")
            .json(&json!({"mode": mode, "force": force}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub fn kill_sync(&mut self, i: usize) {
        if let Some(mut p) = self.syncs[i].0.take() {
            p.kill_hard();
        }
    }

    /// Replaces the emulator's fault knobs.
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
            r.status()
        );
    }

    /// Creates an order through the order service's REST API: (id, order number).
    pub async fn create_order(&self, reference: &str, sku: &str) -> (String, String) {
        let r = self
            .http
            .post(format!("{}/api/v1/orders", self.orders_url()))
            .header("idempotency-key", reference)
            .json(&json!({
                "customer_id": "17100001", "currency": "EUR", "customer_reference": reference,
                "order_type": "OR", "sales_organization": "1010", "distribution_channel": "10",
                "division": "00",
                "items": [
                    {"sku": sku, "quantity": "2", "unit": "PC", "unit_price": "12.50"},
                    {"sku": "TG12", "quantity": "1", "unit": "PC", "unit_price": "9.00"}
                ]
            }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{status}: {v}");
        (
            v["id"].as_str().unwrap().to_owned(),
            v["order_number"].as_str().unwrap().to_owned(),
        )
    }

    /// A change through the order service's REST API with the order's current version
    /// (`If-Match`); the answer's status and body.
    pub async fn change(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let order = self.order_by_path(path).await;
        let mut r = self
            .http
            .request(
                method,
                format!("{}/api/v1/orders/{path}", self.orders_url()),
            )
            .header("if-match", format!("W/\"{}\"", order["version"]));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn order_by_path(&self, path: &str) -> Value {
        let id = path.split('/').next().unwrap();
        self.order(id).await
    }

    /// The order service's id of the order numbered `number`.
    pub async fn order_id_by_number(&self, number: &str) -> String {
        let v: Value = self
            .http
            .get(format!(
                "{}/api/v1/orders/by-number/{number}",
                self.orders_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["id"].as_str().unwrap().to_owned()
    }

    /// The order service's order by id.
    pub async fn order(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/api/v1/orders/{id}", self.orders_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// SAP's order by number (`d`, items expanded), `None` on 404.
    pub async fn sap_order(&self, number: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!(
                "{}{ROOT}/A_SalesOrder('{number}')?$expand=to_Item",
                self.sap_url()
            ))
            .header("accept", "application/json")
            .send()
            .await
            .ok()?;
        if r.status() == 404 {
            return None;
        }
        r.json::<Value>().await.ok().map(|v| v["d"].clone())
    }

    /// Every SAP order (numbers), counted by the emulator's own list.
    pub async fn sap_numbers(&self) -> Vec<String> {
        let r = self
            .http
            .get(format!(
                "{}{ROOT}/A_SalesOrder?$select=SalesOrder&$top=100000",
                self.sap_url()
            ))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["d"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["SalesOrder"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Orders and items the emulator stores (its admin API answers during an outage too).
    pub async fn sap_stored(&self) -> (u64, u64) {
        let v: Value = self
            .http
            .get(format!("{}/sap-mock/admin/stats", self.sap_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["orders"].as_u64().unwrap(), v["items"].as_u64().unwrap())
    }

    /// The emulator's count of a recorded event (e.g. `sap_mock_order_created`).
    pub async fn sap_event_count(&self, event: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.sap_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("sap_mock_events_total{{event=\"{event}\"}}");
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// A Prometheus sample (the line starting with `series`, e.g. `outbox_published_total`) from
    /// `url`'s `/metrics`; 0 when absent.
    pub async fn metric(&self, url: &str, series: &str) -> f64 {
        let text = match self.http.get(format!("{url}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }

    pub async fn status(&self, i: usize) -> Value {
        self.http
            .get(format!("{}/status", self.sync_url(i)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until SAP holds every number.
    pub async fn wait_in_sap(&self, numbers: &[String]) {
        test_support::eventually("every order in SAP", WAIT, || async {
            let have = self.sap_numbers().await;
            numbers.iter().all(|n| have.contains(n)).then_some(())
        })
        .await;
    }

    /// Waits until some instance reports the group's lag at zero.
    pub async fn wait_drained(&self, i: usize) {
        test_support::eventually("lag drained to zero", WAIT, || async {
            let s = self.status(i).await;
            (s["lag_messages"] == 0).then_some(())
        })
        .await;
    }
}

impl Stack {
    /// Runs `orderctl` against this stack (Kafka, SAP, order service); (exit success, output).
    pub fn orderctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(bins().join("orderctl"))
            .args(args)
            .env("KAFKA_BROKERS", &self.topic.brokers)
            .env("KAFKA_TOPIC", &self.topic.name)
            .env("SAP_URL", self.sap_url())
            .env("ORDER_SERVICE_URL", self.orders_url())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

pub fn unique(tag: &str) -> String {
    format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
