//! `orderctl master-data import` against the real order service (and, for `--from-sap`, the
//! real SAP emulator): every entry lands, the output says how many, a bad file stores nothing.
//!
//! Needs the `sap-mock` and `order-service` binaries built next to this test's target folder
//! (`cargo test --workspace`, as `scripts/test` runs it, builds them).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

fn orderctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orderctl"))
        .args(args)
        .env_remove("SAP_USER")
        .output()
        .unwrap()
}

fn write_file(body: &Value) -> PathBuf {
    let dir = test_support::workspace_root().join(".data/tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "master-data-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, serde_json::to_vec(body).unwrap()).unwrap();
    path
}

fn sample() -> Value {
    json!({
        "materials": [
            {"sku": "TG11", "base_unit": "PC", "iso_unit": "PCE", "price": "12.50", "currency": "EUR", "description": "Trading Good 11"},
            {"sku": "TG12", "base_unit": "PC", "iso_unit": "PCE", "price": "3.10", "currency": "EUR"},
            {"sku": "TG13", "base_unit": "KG", "iso_unit": "KGM"}
        ],
        "customers": [
            {"customer_id": "17100001", "name": "Domestic Customer DE 1",
             "sales_areas": [{"sales_organization": "1010", "distribution_channel": "10", "division": "00", "currency": "EUR"}]}
        ]
    })
}

#[tokio::test]
async fn importing_a_file_stores_every_entry_and_says_how_many() {
    let sys = Systems::start().await;
    let file = write_file(&sample());
    let path = file.display().to_string();
    let out = orderctl(&[
        "master-data",
        "import",
        "--file",
        &path,
        "--orders-url",
        &sys.orders,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "Imported 3 materials, 1 customers and 1 sales areas into the order service."
    );
    let m = get_json(
        &sys.client,
        &format!("{}/api/v1/master-data/materials/TG11", sys.orders),
    )
    .await;
    assert_eq!(m["price"], "12.50");
    assert_eq!(m["iso_unit"], "PCE");
    let c = get_json(
        &sys.client,
        &format!("{}/api/v1/master-data/customers/17100001", sys.orders),
    )
    .await;
    assert_eq!(c["sales_areas"][0]["currency"], "EUR");

    // Again, as JSON and one entry per batch: the same counts, progress on stderr.
    let out = orderctl(&[
        "master-data",
        "import",
        "--file",
        &path,
        "--orders-url",
        &sys.orders,
        "--json",
        "--batch",
        "1",
    ]);
    assert!(out.status.success());
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        counts,
        json!({"materials": 3, "customers": 1, "sales_areas": 1, "skipped": []})
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("materials 3 of 3 (3/4 batches)"),
        "{progress}"
    );

    // An order leaving the unit and price out is now completed from the import.
    let r = sys
        .client
        .post(format!("{}/api/v1/orders", sys.orders))
        .json(&json!({"customer_id": "17100001", "items": [{"sku": "TG12", "quantity": "2"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["items"][0]["unit"], "PC");
    assert_eq!(order["total_net_amount"], "6.20");
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_bad_file_is_refused_naming_its_entries_and_imports_nothing() {
    let sys = Systems::start().await;
    let mut body = sample();
    body["materials"][2]["base_unit"] = json!("KILOGRAM");
    body["customers"][0]["sales_areas"][0]["currency"] = json!("XYZ");
    let file = write_file(&body);
    let out = orderctl(&[
        "master-data",
        "import",
        "--file",
        &file.display().to_string(),
        "--orders-url",
        &sys.orders,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(stderr.contains("materials[2].base_unit"), "{stderr}");
    assert!(
        stderr.contains("customers[0].sales_areas[0].currency"),
        "{stderr}"
    );
    let r = sys
        .client
        .get(format!("{}/api/v1/master-data/materials/TG11", sys.orders))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "not even the good entries");
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn importing_from_sap_reads_products_customers_and_prices_from_the_emulator() {
    let sys = Systems::start().await;
    let out = orderctl(&[
        "master-data",
        "import",
        "--from-sap",
        "--sap-url",
        &sys.sap,
        "--orders-url",
        &sys.orders,
        "--json",
        "--page",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(counts["materials"].as_u64().unwrap() >= 2, "{counts}");
    assert!(counts["customers"].as_u64().unwrap() >= 1, "{counts}");
    // SAP's best-practice demo data: trading good TG11 in pieces, customer 17100001 in 1010/10/00.
    let m = get_json(
        &sys.client,
        &format!("{}/api/v1/master-data/materials/TG11", sys.orders),
    )
    .await;
    assert_eq!(m["base_unit"], "PC", "{m}");
    assert!(m["price"].is_string(), "a PPR0 price was found: {m}");
    let c = get_json(
        &sys.client,
        &format!("{}/api/v1/master-data/customers/17100001", sys.orders),
    )
    .await;
    assert!(
        c["sales_areas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["sales_organization"] == "1010" && a["currency"] == "EUR"),
        "{c}"
    );
}
