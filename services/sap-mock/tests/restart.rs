//! The real `sap-mock` binary: its data survives SIGKILL and a restart, a lost response's
//! order is durable, and SIGTERM drains and exits cleanly.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ROOT, client, eventually, order_body};
use reqwest::StatusCode;
use serde_json::Value;
use test_support::process::free_port;

struct Binary {
    child: Child,
    base: String,
}

async fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Binary {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sap-mock"));
    cmd.env("SAP_MOCK_BIND", "127.0.0.1")
        .env("SAP_MOCK_PORT", port.to_string())
        .env("SAP_MOCK_DATA_DIR", data_dir)
        .env("SAP_MOCK_USERS", "tester:pw")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    let health = format!("{base}/sap-mock/health");
    eventually(Duration::from_secs(20), async || {
        c.get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    Binary { child, base }
}

impl Binary {
    fn url(&self, p: &str) -> String {
        format!("{}{ROOT}{p}", self.base)
    }

    /// CSRF fetch as SAP's client does it: the token and the `cookie` header value.
    async fn csrf(&self) -> reqwest::Result<(String, String)> {
        let head = client()
            .head(self.url("/A_SalesOrder/"))
            .basic_auth("tester", Some("pw"))
            .header("x-csrf-token", "Fetch")
            .send()
            .await?;
        let token = head.headers()["x-csrf-token"].to_str().unwrap().to_owned();
        let cookie: Vec<String> = head
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect();
        Ok((token, cookie.join(";")))
    }

    async fn create(&self, body: &Value) -> reqwest::Result<reqwest::Response> {
        let (token, cookie) = self.csrf().await?;
        client()
            .post(self.url("/A_SalesOrder"))
            .basic_auth("tester", Some("pw"))
            .header("x-csrf-token", token)
            .header("cookie", cookie)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
    }

    async fn get_json(&self, p: &str) -> Value {
        let r = client()
            .get(self.url(p))
            .basic_auth("tester", Some("pw"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p}");
        r.json().await.unwrap()
    }

    async fn count(&self) -> usize {
        let r = client()
            .get(self.url("/A_SalesOrder/$count"))
            .basic_auth("tester", Some("pw"))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap().parse().unwrap()
    }

    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn every_order_survives_sigkill_and_a_restart_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), &[]).await;
    let mut created = Vec::new();
    for i in 0..25 {
        let r = first
            .create(&order_body(
                &format!("KILL-{i}"),
                &[("TG11", "1"), ("TG12", &(i + 1).to_string())],
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        created.push(v["d"].clone());
    }
    // a change and a delete must survive too
    let deleted = created.pop().unwrap();
    let (token, cookie) = first.csrf().await.unwrap();
    let del = client()
        .delete(first.url(&format!(
            "/A_SalesOrder('{}')",
            deleted["SalesOrder"].as_str().unwrap()
        )))
        .basic_auth("tester", Some("pw"))
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        // S/4 requires the ETag on a delete of an order (428 without)
        .header("if-match", deleted["__metadata"]["etag"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert_eq!(first.count().await, 24);
    first.sigkill();

    let second = start(dir.path(), &[]).await;
    assert_eq!(second.count().await, 24, "every order is still there");
    for before in &created {
        let n = before["SalesOrder"].as_str().unwrap();
        let after = second
            .get_json(&format!("/A_SalesOrder('{n}')?$expand=to_Item"))
            .await;
        let after = &after["d"];
        for field in [
            "PurchaseOrderByCustomer",
            "TotalNetAmount",
            "LastChangeDateTime",
            "CreationDate",
            "SoldToParty",
        ] {
            assert_eq!(after[field], before[field], "{n} {field}");
        }
        assert_eq!(
            after["__metadata"]["etag"], before["__metadata"]["etag"],
            "ETag stable across restarts"
        );
        // items equal in every property (URIs differ only by the new port)
        let props = |v: &Value| -> Vec<Value> {
            v["to_Item"]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    let mut i = i.as_object().unwrap().clone();
                    i.retain(|k, _| !k.starts_with("__") && !k.starts_with("to_"));
                    Value::Object(i)
                })
                .collect()
        };
        assert_eq!(props(after).len(), 2);
        assert_eq!(props(after), props(before), "{n} items");
    }
    let gone = client()
        .get(second.url(&format!(
            "/A_SalesOrder('{}')",
            deleted["SalesOrder"].as_str().unwrap()
        )))
        .basic_auth("tester", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let next = second
        .create(&order_body("AFTER", &[("TG11", "1")]))
        .await
        .unwrap();
    let v: Value = next.json().await.unwrap();
    assert_eq!(v["d"]["SalesOrder"], "1000026", "numbers are never reused");
}

impl Binary {
    /// `POST /sap-mock/admin/<step>` for order `number`; the document it created.
    async fn fulfil(&self, step: &str, number: &str) -> String {
        let r = client()
            .post(format!("{}/sap-mock/admin/{step}", self.base))
            .json(&serde_json::json!({ "SalesOrder": number }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{step}");
        let v: Value = r.json().await.unwrap();
        v["SubsequentDocument"].as_str().unwrap().to_owned()
    }

    /// The order's document flow with the item flow inside its items, without URIs (which
    /// name the port).
    async fn flow(&self, number: &str) -> (Value, Value) {
        let v = self
            .get_json(&format!(
                "/A_SalesOrder('{number}')?$expand=to_SubsequentProcFlowDoc,to_Item/to_SubsequentProcFlowDocItem"
            ))
            .await;
        let strip = |rows: &Value| -> Value {
            Value::Array(
                rows["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        let mut r = r.as_object().unwrap().clone();
                        r.retain(|k, _| !k.starts_with("__") && !k.starts_with("to_"));
                        Value::Object(r)
                    })
                    .collect(),
            )
        };
        (
            strip(&v["d"]["to_SubsequentProcFlowDoc"]),
            strip(&v["d"]["to_Item"]["results"][0]["to_SubsequentProcFlowDocItem"]),
        )
    }
}

#[tokio::test]
async fn the_document_flow_survives_sigkill_and_its_numbers_continue_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), &[]).await;
    let mut numbers = Vec::new();
    for i in 0..2 {
        let r = first
            .create(&order_body(&format!("FLOW-{i}"), &[("TG11", "1")]))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        numbers.push(v["d"]["SalesOrder"].as_str().unwrap().to_owned());
    }
    let delivery = first.fulfil("deliveries", &numbers[0]).await;
    let invoice = first.fulfil("billing", &numbers[0]).await;
    let before = first.flow(&numbers[0]).await;
    assert_eq!(before.0.as_array().unwrap().len(), 2);
    assert_eq!(before.1.as_array().unwrap().len(), 2);
    first.sigkill();

    let second = start(dir.path(), &[]).await;
    let after = second.flow(&numbers[0]).await;
    assert_eq!(after, before, "the flow is stored with the order");
    assert_eq!(after.0[0]["SubsequentDocument"], delivery.as_str());
    assert_eq!(after.0[1]["SubsequentDocument"], invoice.as_str());
    // the ranges continue where they were: no number is handed out twice
    let next_delivery = second.fulfil("deliveries", &numbers[1]).await;
    let next_invoice = second.fulfil("billing", &numbers[1]).await;
    assert_eq!(
        next_delivery.parse::<u64>().unwrap(),
        delivery.parse::<u64>().unwrap() + 1
    );
    assert_eq!(
        next_invoice.parse::<u64>().unwrap(),
        invoice.parse::<u64>().unwrap() + 1
    );
}

#[tokio::test]
async fn the_order_behind_a_lost_response_is_durable_and_stays_single_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let lossy = start(dir.path(), &[("SAP_MOCK_LOST_RESPONSE_RATE", "1")]).await;
    let lost = lossy.create(&order_body("LOST", &[("TG11", "2")])).await;
    assert!(lost.is_err(), "the caller got no answer");
    lossy.sigkill();
    let healthy = start(dir.path(), &[]).await;
    assert_eq!(healthy.count().await, 1);
    let v = healthy
        .get_json("/A_SalesOrder?$filter=PurchaseOrderByCustomer%20eq%20'LOST'")
        .await;
    assert_eq!(v["d"]["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = start(dir.path(), &[]).await;
    let status = Command::new("kill")
        .args(["-TERM", &b.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    eventually(Duration::from_secs(10), async || {
        exit = b.child.try_wait().unwrap();
        exit.is_some()
    })
    .await;
    assert!(exit.unwrap().success(), "{exit:?}");
}

#[tokio::test]
async fn a_bad_environment_is_reported_in_full_and_stops_the_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_sap-mock"))
        .env("SAP_MOCK_PORT", "eighty")
        .env("SAP_MOCK_ERROR_RATE", "7")
        .env("SAP_MOCK_USERS", "nopassword")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["SAP_MOCK_PORT", "error_rate", "SAP_MOCK_USERS"] {
        assert!(err.contains(name), "{name} missing in: {err}");
    }
}
