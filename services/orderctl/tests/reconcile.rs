//! `orderctl reconcile` against the real SAP emulator and the real order service: agreeing
//! orders are paired, and each kind of drift is named by order.
//!
//! Needs the `sap-mock` and `order-service` binaries built next to this test's target folder
//! (`cargo test --workspace`, as `scripts/test` runs it, builds them).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use test_support::process::{ChildProcess, free_port};

const SERVICE: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

fn workspace_binary(name: &str) -> PathBuf {
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

async fn start(name: &str, port: u16, env: &[(&str, String)]) -> (ChildProcess, String) {
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
async fn sap_create(client: &reqwest::Client, sap: &str, body: Value) -> String {
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

async fn new_create(client: &reqwest::Client, orders: &str, reference: &str, qty: &str) -> Value {
    let r = client
        .post(format!("{orders}/api/v1/orders"))
        .json(
            &json!({"customer_id": "17100001", "currency": "EUR", "customer_reference": reference,
                       "items": [{"sku": "TG11", "quantity": qty, "unit": "PC"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn link(client: &reqwest::Client, orders: &str, order: &Value, sap_number: &str) {
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

/// Runs `orderctl reconcile FLAG` against the two systems (no SAP credentials).
fn reconcile(sap: &str, orders: &str, flag: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orderctl"))
        .args(["reconcile", flag, "--sap-url", sap, "--orders-url", orders])
        .env_remove("SAP_USER")
        .output()
        .unwrap()
}

fn sap_body(reference: &str, qty: &str, external: Option<&str>) -> Value {
    let mut body = json!({"SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
        "OrganizationDivision": "00", "SoldToParty": "17100001", "PurchaseOrderByCustomer": reference,
        "TransactionCurrency": "EUR",
        "to_Item": [{"Material": "TG11", "RequestedQuantity": qty, "RequestedQuantityUnit": "PC"}]});
    if let Some(e) = external {
        body["ExternalDocumentID"] = json!(e);
    }
    body
}

#[tokio::test]
async fn reconcile_pairs_agreeing_orders_and_names_each_kind_of_drift() {
    let db = test_support::postgres::fresh_database().await;
    let sap_dir = test_support::workspace_root()
        .join(".data/tmp")
        .join(format!("sap-{}", uuid::Uuid::new_v4().simple()));
    let (sap_port, orders_port) = (free_port(), free_port());
    let (_sap, sap) = start(
        "sap-mock",
        sap_port,
        &[
            ("SAP_MOCK_PORT", sap_port.to_string()),
            ("SAP_MOCK_DATA_DIR", sap_dir.display().to_string()),
        ],
    )
    .await;
    let (_orders, orders) = start(
        "order-service",
        orders_port,
        &[
            ("ORDER_SERVICE_PORT", orders_port.to_string()),
            ("DATABASE_URL", db.url.clone()),
            ("OUTBOX_RELAY_ENABLED", "false".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();

    // Agreeing pair, linked by number (as dual write links them); quantities at other scales.
    let a = new_create(&client, &orders, "AGREE", "2.000").await;
    let sap_a = sap_create(&client, &sap, sap_body("AGREE", "2", None)).await;
    link(&client, &orders, &a, &sap_a).await;
    // Agreeing pair found through the proxy's stamp (ExternalDocumentID = correlation id).
    let b = new_create(&client, &orders, "STAMPED", "1").await;
    let sap_b = sap_create(
        &client,
        &sap,
        sap_body("STAMPED", "1", b["correlation_id"].as_str()),
    )
    .await;
    // Mismatch: quantities differ.
    let c = new_create(&client, &orders, "MISMATCH", "3").await;
    let sap_c = sap_create(&client, &sap, sap_body("MISMATCH", "4", None)).await;
    link(&client, &orders, &c, &sap_c).await;
    // Duplicate: two SAP orders carry the same stamp.
    let d = new_create(&client, &orders, "DUP", "1").await;
    let sap_d1 = sap_create(
        &client,
        &sap,
        sap_body("DUP", "1", d["correlation_id"].as_str()),
    )
    .await;
    let sap_d2 = sap_create(
        &client,
        &sap,
        sap_body("DUP", "1", d["correlation_id"].as_str()),
    )
    .await;
    // Missing on each side.
    let e = new_create(&client, &orders, "ONLY-NEW", "1").await;
    let sap_f = sap_create(&client, &sap, sap_body("ONLY-SAP", "1", None)).await;

    let out = reconcile(&sap, &orders, "--json");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &result["report"];
    assert_eq!(r["sap_orders"], 6);
    assert_eq!(r["new_orders"], 5);
    assert_eq!(r["paired"], 4, "{r}");
    assert_eq!(r["missing_in_sap"], json!([e["order_number"]]));
    assert_eq!(r["missing_in_order_service"], json!([sap_f]));
    assert_eq!(
        r["duplicates"][d["order_number"].as_str().unwrap()],
        json!([sap_d1, sap_d2])
    );
    assert_eq!(r["mismatches"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["mismatches"][0][0], c["order_number"]);
    assert_eq!(result["drift"], 4);
    assert_eq!(
        r["unlinked"],
        json!([{"order_id": b["id"], "order_number": b["order_number"], "sap_number": sap_b}]),
        "the stamped pair is listed as unlinked (the duplicate's pairs are drift already)"
    );

    // --repair-links sets SAP's number on the unlinked order, and a second run finds none.
    let repaired = reconcile(&sap, &orders, "--repair-links");
    assert!(
        String::from_utf8_lossy(&repaired.stdout).contains("linked 1 of 1 unlinked orders"),
        "{}",
        String::from_utf8_lossy(&repaired.stdout)
    );
    let b_now: Value = client
        .get(format!(
            "{orders}/api/v1/orders/{}",
            b["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b_now["sap_order_number"], json!(sap_b));
    let again = reconcile(&sap, &orders, "--json");
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["report"]["unlinked"], json!([]));
    assert_eq!(again["drift"], 4, "repairing links changes no drift");

    let failing = reconcile(&sap, &orders, "--fail-on-drift");
    assert_eq!(
        failing.status.code(),
        Some(1),
        "drift makes --fail-on-drift exit 1"
    );
    let _ = std::fs::remove_dir_all(sap_dir);
}
