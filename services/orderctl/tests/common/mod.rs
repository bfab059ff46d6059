//! What the orderctl integration tests share: the real SAP emulator and order service as child
//! processes (fresh database, own data folder), and ways to create orders on each side.

#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use test_support::process::{ChildProcess, free_port};

pub const SERVICE: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

pub fn workspace_binary(name: &str) -> PathBuf {
    // target/debug/deps/reconcile-<hash> → target/debug/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (cargo test --workspace builds it)",
        path.display()
    );
    path
}

pub async fn start(name: &str, port: u16, env: &[(&str, String)]) -> (ChildProcess, String) {
    let mut cmd = Command::new(workspace_binary(name));
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = ChildProcess::spawn(name, cmd);
    let base = format!("http://127.0.0.1:{port}");
    test_support::eventually(
        &format!("{name} listening"),
        Duration::from_secs(30),
        || {
            let url = format!("{base}/");
            async move { reqwest::get(url).await.ok().map(|_| ()) }
        },
    )
    .await;
    (child, base)
}

/// Creates an SAP order the way SAP's clients do (CSRF fetch, then the deep insert).
pub async fn sap_create(client: &reqwest::Client, sap: &str, body: Value) -> String {
    let url = format!("{sap}{SERVICE}/A_SalesOrder");
    let head = client
        .head(format!("{url}/"))
        .header("x-csrf-token", "Fetch")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let token = head.headers()["x-csrf-token"].to_str().unwrap().to_owned();
    let cookies: Vec<String> = head
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let r = client
        .post(&url)
        .header("x-csrf-token", token)
        .header("cookie", cookies.join(";"))
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    created["d"]["SalesOrder"].as_str().unwrap().to_owned()
}

pub async fn new_create(
    client: &reqwest::Client,
    orders: &str,
    reference: &str,
    qty: &str,
) -> Value {
    let r = client
        .post(format!("{orders}/api/v1/orders"))
        .json(
            // Priced as SAP prices TG11 (12.50 per piece), as a dual write leaves it.
            &json!({"customer_id": "17100001", "currency": "EUR", "customer_reference": reference,
                       "items": [{"sku": "TG11", "quantity": qty, "unit": "PC", "unit_price": "12.50"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

pub async fn link(client: &reqwest::Client, orders: &str, order: &Value, sap_number: &str) {
    let r = client
        .put(format!(
            "{orders}/api/v1/orders/{}/sap-order-number",
            order["id"].as_str().unwrap()
        ))
        .json(&json!({ "sap_order_number": sap_number }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// An SAP deep insert; `number` names the `SalesOrder` (external numbering), else SAP numbers it.
pub fn sap_body(reference: &str, qty: &str, number: Option<&str>) -> Value {
    let mut body = json!({"SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
        "OrganizationDivision": "00", "SoldToParty": "17100001", "PurchaseOrderByCustomer": reference,
        "TransactionCurrency": "EUR",
        "to_Item": [{"Material": "TG11", "RequestedQuantity": qty, "RequestedQuantityUnit": "PC"}]});
    if let Some(n) = number {
        body["SalesOrder"] = json!(n);
    }
    body
}

/// A GET answered with JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// sap-mock and the order service, started for one test; stopped (and the emulator's data
/// folder removed) when dropped.
pub struct Systems {
    pub sap: String,
    pub orders: String,
    pub client: reqwest::Client,
    _sap: ChildProcess,
    _orders: ChildProcess,
    _db: test_support::postgres::TestDatabase,
    sap_dir: PathBuf,
}

impl Systems {
    pub async fn start() -> Systems {
        let db = test_support::postgres::fresh_database().await;
        let sap_dir = test_support::workspace_root()
            .join(".data/tmp")
            .join(format!("sap-{}", uuid::Uuid::new_v4().simple()));
        let (sap_port, orders_port) = (free_port(), free_port());
        let (sap_proc, sap) = start(
            "sap-mock",
            sap_port,
            &[
                ("SAP_MOCK_PORT", sap_port.to_string()),
                ("SAP_MOCK_DATA_DIR", sap_dir.display().to_string()),
            ],
        )
        .await;
        let (orders_proc, orders) = start(
            "order-service",
            orders_port,
            &[
                ("ORDER_SERVICE_PORT", orders_port.to_string()),
                ("DATABASE_URL", db.url.clone()),
                ("OUTBOX_RELAY_ENABLED", "false".into()),
            ],
        )
        .await;
        Systems {
            sap,
            orders,
            client: reqwest::Client::new(),
            _sap: sap_proc,
            _orders: orders_proc,
            _db: db,
            sap_dir,
        }
    }
}

impl Drop for Systems {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.sap_dir);
    }
}
