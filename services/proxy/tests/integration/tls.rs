//! TLS to SAP: the emulator behind a TLS terminator with a certificate from a CA made for the
//! test (`test_support::tls`), the proxy given `SAP_URL=https://127.0.0.1:<port>`. Each test
//! counts what reached SAP through the terminator and queries the emulator directly.

use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn in_legacy_a_create_and_a_read_pass_through_to_an_https_sap_the_system_store_trusts() {
    let s = Stack::start(Options {
        mode: "legacy",
        sap_tls: Some(SapTls::SystemStore),
        ..Options::default()
    })
    .await;
    let reference = unique("TLS-LEGACY");
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    // SAP (asked directly) holds exactly this order.
    let sap = s.sap_orders(&reference).await;
    assert_eq!(sap.len(), 1, "{sap:?}");
    assert_eq!(sap[0]["SalesOrder"], number.as_str());
    // A read through the proxy comes back from SAP over TLS.
    let read = s
        .get(format!(
            "{}{ROOT}/A_SalesOrder('{number}')?$expand=to_Item",
            s.proxy_url()
        ))
        .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(
        read.json()["d"]["PurchaseOrderByCustomer"],
        reference.as_str()
    );
    assert_eq!(
        read.json()["d"]["to_Item"]["results"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // It all went through the TLS front, and no handshake failed.
    let front = s.sap_tls_front();
    assert!(front.handshakes() >= 1, "nothing went through TLS");
    assert!(front.refusals().is_empty(), "{:?}", front.refusals());
    // With TLS to SAP the lean (plain-socket) path is off.
    let log = without_colours(&s.proxy_log());
    assert!(
        log.contains("sap_tls=true") && log.contains("lean_path=false"),
        "{log}"
    );
}

#[tokio::test]
async fn in_dual_write_a_create_lands_in_the_https_sap_and_the_order_service_linked() {
    let s = Stack::start(Options {
        mode: "dual-write",
        sap_tls: Some(SapTls::CaFile),
        ..Options::default()
    })
    .await;
    let reference = unique("TLS-DUAL");
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let number = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    let sap = s.sap_orders(&reference).await;
    assert_eq!(sap.len(), 1, "{sap:?}");
    assert_eq!(sap[0]["SalesOrder"], number.as_str());
    let linked = test_support::eventually("order linked to SAP's number", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.as_deref() == Some(number.as_str())).then_some(rows)
    })
    .await;
    assert_eq!(linked[0].0, "created");
    s.wait_replays_drained().await;
    assert!(s.sap_tls_front().handshakes() >= 1);
    assert!(s.sap_tls_front().refusals().is_empty());
}

#[tokio::test]
async fn a_proxy_that_does_not_trust_sap_s_ca_answers_odata_502_and_sends_sap_nothing() {
    let s = Stack::start(Options {
        mode: "legacy",
        sap_tls: Some(SapTls::StrangerCa),
        ..Options::default()
    })
    .await;
    let reference = unique("TLS-REFUSED");
    // The CSRF fetch and the create both meet SAP's certificate and refuse it.
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(r.status, 502, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], "PROXY/502T", "{v}");
    let message = v["error"]["message"]["value"].as_str().unwrap_or_default();
    assert!(message.contains("TLS"), "{message}");
    let read = s
        .get(format!("{}{ROOT}/A_SalesOrder?$top=1", s.proxy_url()))
        .await;
    assert_eq!(read.status, 502, "{:?}", read.body);
    // Nothing reached SAP: no handshake completed, and SAP holds no order.
    let front = s.sap_tls_front();
    assert_eq!(front.handshakes(), 0);
    let refusals = front.refusals();
    assert!(
        !refusals.is_empty() && refusals.iter().all(|r| r.contains("UnknownCA")),
        "the client should abort with an unknown-CA alert: {refusals:?}"
    );
    assert!(s.sap_orders(&reference).await.is_empty());
    // The operator reads why in the proxy's log.
    let log = test_support::eventually("the cause logged", WAIT, || async {
        let log = s.proxy_log();
        log.contains("UnknownIssuer").then_some(log)
    })
    .await;
    assert!(log.contains("TLS handshake failed"), "{log}");
}

/// The log as text, without the terminal colour codes tracing writes.
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts the proxy binary with `env` and waits for it to exit: (exit code, stderr).
async fn proxy_refusing_to_start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_proxy"));
    cmd.env("PROXY_BIND", "127.0.0.1")
        .env("PROXY_PORT", "0")
        .env("PROXY_ADMIN_PORT", "0")
        .env(
            "PROXY_DATA_DIR",
            std::env::temp_dir().join("proxy-it-never-started"),
        )
        .env_remove("RUST_BACKTRACE")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("the proxy should exit at once on a bad configuration")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_sap_ca_file_stops_the_proxy_at_start_naming_the_variable() {
    let dir = std::env::temp_dir().join(format!("proxy-it-ca-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("sap.der");
    std::fs::write(&not_pem, b"\x30\x82\x03\x00 binary").unwrap();
    let key_only = dir.join("key.pem");
    std::fs::write(
        &key_only,
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    for (file, says) in [
        ("/nonexistent/sap-ca.pem".to_owned(), "cannot read"),
        (not_pem.display().to_string(), "not a PEM file"),
        (key_only.display().to_string(), "holds no certificate"),
    ] {
        let (code, stderr) = proxy_refusing_to_start(&[
            ("SAP_URL", "https://127.0.0.1:44300"),
            ("SAP_CA_FILE", &file),
        ])
        .await;
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("SAP_CA_FILE") && stderr.contains(&file) && stderr.contains(says),
            "{stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
