//! `orderctl up --demo`: realistic traffic through the proxy, so the stack shows a live
//! migration: what a shop sends through SAP's API, the way SAP's own clients send it.
//!
//! Every tick (at `--demo-rate` per second) the demo takes one step:
//!
//! - mostly **creates** (a deep insert of one to three lines, random customer and materials of
//!   the emulator's demo master data), each preceded, once per session, by the CSRF fetch SAP's
//!   clients make (`HEAD` with `x-csrf-token: Fetch`, the session cookies sent back);
//! - **reads by key** of recent orders (in `dual-write` these feed the shadow comparison);
//! - **quantity changes** and **line rejections** (`PATCH A_SalesOrderItem`, reason `01`) of
//!   recent orders (in `dual-write` the proxy applies what SAP accepted to the order service
//!   too);
//! - now and then a **bad create** (no `SoldToParty`), which must be refused with SAP's `400`;
//! - once a minute **SAP slowness**: the emulator's latency knob (300 ms ± 200 ms) for ten
//!   seconds, while the route still calls SAP.
//!
//! When the route is in `legacy`, the demo first switches it to `dual-write` through the admin
//! API (the forward gate still applies), so orders reach the order service, Kafka and SAP.
//! One line of counts every ten seconds; every failure is counted with its reason, never
//! hidden.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Mutex;

const ODATA_ROOT: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
/// Orders remembered for reads and changes.
const RECENT: usize = 200;

/// Where the demo sends its traffic.
#[derive(Debug, Clone)]
pub struct Target {
    /// The proxy (`http://127.0.0.1:8080`).
    pub proxy: String,
    /// The proxy's admin API.
    pub admin: String,
    /// The admin token.
    pub admin_token: String,
    /// The SAP emulator (its fault knobs), when the stack runs one.
    pub emulator: Option<String>,
    /// A user of the proxy's SAP face (retired routes), sent as SAP's clients send it.
    pub user: Option<(String, String)>,
}

/// What the demo did so far.
#[derive(Debug, Default)]
pub struct Counts {
    /// Creates answered `201`.
    pub created: AtomicU64,
    /// Reads answered `200`.
    pub read: AtomicU64,
    /// Quantity changes answered `204`.
    pub changed: AtomicU64,
    /// Line rejections answered `204`.
    pub rejected: AtomicU64,
    /// Bad creates refused with `400`, as they must be.
    pub refused: AtomicU64,
    /// Anything else: an unexpected status or no answer.
    pub failed: AtomicU64,
}

struct Session {
    token: String,
    cookies: String,
}

struct Demo {
    http: reqwest::Client,
    target: Target,
    counts: Arc<Counts>,
    session: Mutex<Option<Session>>,
    recent: Mutex<Vec<String>>,
    mode: Mutex<String>,
    last_failure: Mutex<Option<String>>,
}

/// Runs until the task is dropped or aborted; `counts` is shared so the caller can report.
pub async fn run(target: Target, rate: f64, counts: Arc<Counts>) {
    let demo = Arc::new(Demo {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client"),
        target,
        counts,
        session: Mutex::new(None),
        recent: Mutex::new(Vec::new()),
        mode: Mutex::new(String::new()),
        last_failure: Mutex::new(None),
    });
    demo.refresh_mode().await;
    if demo.mode.lock().await.as_str() == "legacy" {
        demo.switch_to_dual_write().await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    let mut mode_check = tokio::time::interval(Duration::from_secs(5));
    let started = Instant::now();
    let mut slow_until: Option<Instant> = None;
    let mut next_slow = started + Duration::from_secs(30);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let d = demo.clone();
                tokio::spawn(async move { d.step().await });
            }
            _ = mode_check.tick() => demo.refresh_mode().await,
            _ = report.tick() => {
                let slow = slow_until.is_some_and(|t| t > Instant::now());
                crate::say!("{}", demo.summary(slow).await);
            }
        }
        let now = Instant::now();
        if let Some(until) = slow_until
            && now >= until
        {
            demo.sap_latency(0, 0).await;
            slow_until = None;
        }
        if slow_until.is_none() && now >= next_slow {
            if demo.mode.lock().await.as_str() != "retired" {
                demo.sap_latency(300, 200).await;
                slow_until = Some(now + Duration::from_secs(10));
            }
            next_slow = now + Duration::from_secs(60);
        }
    }
}

/// Puts the emulator's latency knob back (the demo may have been stopped while SAP was slow).
pub async fn reset_emulator(emulator: &str) {
    let _ = reqwest::Client::new()
        .patch(format!("{emulator}/sap-mock/admin/faults"))
        .json(&json!({"latency_ms": 0, "latency_jitter_ms": 0}))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
}

impl Demo {
    async fn summary(&self, slow: bool) -> String {
        let c = &self.counts;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut line = format!(
            "demo ({}): {} created, {} read, {} quantity changes, {} rejections, {} bad creates refused as SAP refuses them, {} failed",
            self.mode.lock().await,
            n(&c.created),
            n(&c.read),
            n(&c.changed),
            n(&c.rejected),
            n(&c.refused),
            n(&c.failed)
        );
        if slow {
            line.push_str("; SAP is slow right now (300 ms ± 200 ms)");
        }
        if let Some(f) = self.last_failure.lock().await.take() {
            line.push_str(&format!("; last failure: {f}"));
        }
        line
    }

    async fn fail(&self, what: String) {
        self.counts.failed.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().await = Some(what);
    }

    async fn refresh_mode(&self) {
        let url = format!("{}/admin/v1/routes", self.target.admin);
        if let Ok(r) = self
            .http
            .get(&url)
            .bearer_auth(&self.target.admin_token)
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
            && let Some(mode) = v
                .as_array()
                .or_else(|| v["routes"].as_array())
                .and_then(|routes| routes.iter().find(|r| r["name"] == "sales-orders"))
                .and_then(|r| r["mode"].as_str())
        {
            *self.mode.lock().await = mode.to_owned();
        }
    }

    async fn switch_to_dual_write(&self) {
        let r = self
            .http
            .put(format!(
                "{}/admin/v1/routes/sales-orders/mode",
                self.target.admin
            ))
            .bearer_auth(&self.target.admin_token)
            .json(&json!({"mode": "dual-write"}))
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                crate::say!(
                    "demo: switched sales-orders from legacy to dual-write, so orders reach the order service and Kafka too"
                );
                *self.mode.lock().await = "dual-write".into();
            }
            Ok(r) => crate::say!(
                "demo: the switch to dual-write was refused ({}); the demo runs in legacy",
                r.status()
            ),
            Err(e) => {
                crate::say!("demo: the admin API did not answer ({e}); the demo runs in legacy")
            }
        }
    }

    async fn sap_latency(&self, ms: u64, jitter: u64) {
        if let Some(e) = &self.target.emulator {
            let _ = self
                .http
                .patch(format!("{e}/sap-mock/admin/faults"))
                .json(&json!({"latency_ms": ms, "latency_jitter_ms": jitter}))
                .send()
                .await;
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{ODATA_ROOT}{path}", self.target.proxy))
            .header("accept", "application/json");
        if let Some((u, p)) = &self.target.user {
            r = r.basic_auth(u, Some(p));
        }
        r
    }

    /// The CSRF token and cookies of this demo's session, fetched once (and again after a 403).
    async fn session(&self) -> Option<(String, String)> {
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            let r = self
                .request(reqwest::Method::HEAD, "/A_SalesOrder")
                .header("x-csrf-token", "Fetch")
                .send()
                .await
                .ok()?;
            let (token, cookies) = sap_odata::csrf_session(r.headers());
            *guard = Some(Session {
                token: token.unwrap_or_default(),
                cookies,
            });
        }
        guard.as_ref().map(|s| (s.token.clone(), s.cookies.clone()))
    }

    async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Option<(u16, Value)> {
        let (token, cookies) = self.session().await?;
        let r = self
            .request(method, path)
            .header("x-csrf-token", token)
            .header("cookie", cookies)
            .json(body)
            .send()
            .await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                if status == 403 {
                    *self.session.lock().await = None;
                }
                let body = r.json::<Value>().await.unwrap_or(Value::Null);
                Some((status, body))
            }
            Err(e) => {
                self.fail(format!("no answer: {e}")).await;
                None
            }
        }
    }

    async fn step(&self) {
        let roll: u32 = rand::rng().random_range(0..100);
        match roll {
            0..=3 => self.bad_create().await,
            4..=19 => self.read().await,
            20..=27 => self.change_quantity().await,
            28..=31 => self.reject_line().await,
            _ => self.create().await,
        }
    }

    async fn create(&self) {
        let body = {
            let mut rng = rand::rng();
            let lines = rng.random_range(1..=3);
            let items: Vec<Value> = (0..lines)
                .map(|_| {
                    json!({
                        "Material": format!("TG1{}", rng.random_range(0..=5)),
                        "RequestedQuantity": rng.random_range(1..=10).to_string(),
                        "RequestedQuantityUnit": "PC",
                    })
                })
                .collect();
            json!({
                "SalesOrderType": "OR", "SalesOrganization": "1010",
                "DistributionChannel": "10", "OrganizationDivision": "00",
                "SoldToParty": format!("171000{:02}", rng.random_range(1..=10)),
                // SAP's limit is 35 characters.
                "PurchaseOrderByCustomer": format!("DEMO-{}", &uuid::Uuid::new_v4().simple().to_string()[..20]),
                "to_Item": items,
            })
        };
        match self
            .write(reqwest::Method::POST, "/A_SalesOrder", &body)
            .await
        {
            Some((201, v)) => {
                self.counts.created.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = v["d"]["SalesOrder"].as_str() {
                    let mut recent = self.recent.lock().await;
                    if recent.len() >= RECENT {
                        recent.remove(0);
                    }
                    recent.push(n.to_owned());
                }
            }
            Some((s, v)) => {
                self.fail(format!("create answered {s}: {}", message(&v)))
                    .await
            }
            None => {}
        }
    }

    async fn bad_create(&self) {
        let body = json!({
            "SalesOrderType": "OR", "SalesOrganization": "1010",
            "DistributionChannel": "10", "OrganizationDivision": "00",
            "to_Item": [{"Material": "TG11", "RequestedQuantity": "1"}],
        });
        match self
            .write(reqwest::Method::POST, "/A_SalesOrder", &body)
            .await
        {
            Some((400, _)) => {
                self.counts.refused.fetch_add(1, Ordering::Relaxed);
            }
            Some((s, v)) => {
                self.fail(format!(
                    "a create without SoldToParty answered {s}, not 400: {}",
                    message(&v)
                ))
                .await
            }
            None => {}
        }
    }

    async fn pick(&self) -> Option<String> {
        let recent = self.recent.lock().await;
        if recent.is_empty() {
            return None;
        }
        let i = rand::rng().random_range(0..recent.len());
        Some(recent[i].clone())
    }

    async fn read(&self) {
        let Some(n) = self.pick().await else {
            return self.create().await;
        };
        let r = self
            .request(
                reqwest::Method::GET,
                &format!("/A_SalesOrder('{n}')?$expand=to_Item"),
            )
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                self.counts.read.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => {
                self.fail(format!("a read of {n} answered {}", r.status()))
                    .await
            }
            Err(e) => self.fail(format!("a read of {n}: no answer: {e}")).await,
        }
    }

    async fn change_item(&self, fields: Value, counter: &AtomicU64, what: &str) {
        let Some(n) = self.pick().await else {
            return self.create().await;
        };
        let path = format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='10')");
        match self.write(reqwest::Method::PATCH, &path, &fields).await {
            Some((204, _)) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            // A line rejected or delivered already cannot change: SAP's refusal, as it should.
            Some((400, v)) if !message(&v).is_empty() => {
                self.counts.refused.fetch_add(1, Ordering::Relaxed);
            }
            Some((s, v)) => {
                self.fail(format!("a {what} of {n} answered {s}: {}", message(&v)))
                    .await
            }
            None => {}
        }
    }

    async fn change_quantity(&self) {
        let q = rand::rng().random_range(1..=12).to_string();
        self.change_item(
            json!({"RequestedQuantity": q}),
            &self.counts.changed,
            "quantity change",
        )
        .await;
    }

    async fn reject_line(&self) {
        self.change_item(
            json!({"SalesDocumentRjcnReason": "01"}),
            &self.counts.rejected,
            "rejection",
        )
        .await;
    }
}

/// SAP's message text of an OData error body, or "" when there is none.
fn message(v: &Value) -> String {
    v["error"]["message"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
