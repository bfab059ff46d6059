//! `orderctl backfill` and `orderctl reconcile` against an `https` SAP: the real emulator
//! behind a TLS terminator with a certificate from a CA made for the test
//! (`test_support::tls`), `--sap-url https://localhost:<port>` and `--sap-ca-file`.
//!
//! Needs the `sap-mock` and `order-service` binaries built next to this test's target folder
//! (`cargo test --workspace`, as `scripts/test` runs it, builds them).

mod common;

use common::*;
use serde_json::{Value, json};
use test_support::tls::{TestCa, TlsTerminator};

/// Runs `orderctl` with `args` (no SAP credentials): (exit code, stdout, stderr). Awaited,
/// not blocking: the TLS terminator runs on this test's runtime.
async fn orderctl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderctl"))
        .args(args)
        .env_remove("SAP_USER")
        .env_remove("SAP_CA_FILE")
        .env_remove("RUST_BACKTRACE")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn backfill_and_reconcile_read_an_https_sap_they_are_given_the_ca_of_and_refuse_another() {
    let sys = Systems::start().await;
    let sap_1 = sap_create(&sys.client, &sys.sap, sap_body("TLS-1", "2", None)).await;
    let sap_2 = sap_create(&sys.client, &sys.sap, sap_body("TLS-2", "1", None)).await;
    let ca = TestCa::new("orderctl test SAP CA");
    let port: u16 = sys.sap.rsplit(':').next().unwrap().parse().unwrap();
    let front = TlsTerminator::start(&ca, port).await;
    let https = format!("https://localhost:{}", front.port());
    let ca_file = ca.pem_file().display().to_string();

    let (code, out, err) = orderctl(&[
        "backfill",
        "--json",
        "--sap-url",
        &https,
        "--sap-ca-file",
        &ca_file,
        "--orders-url",
        &sys.orders,
    ])
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut copied = vec![sap_1, sap_2];
    copied.sort();
    assert_eq!(v["sap_orders"], 2, "{v}");
    assert_eq!(v["copied"], json!(copied), "{v}");

    let (code, out, err) = orderctl(&[
        "reconcile",
        "--json",
        "--sap-url",
        &https,
        "--sap-ca-file",
        &ca_file,
        "--orders-url",
        &sys.orders,
    ])
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["drift"], 0, "{v}");
    assert_eq!(v["report"]["sap_orders"], 2, "{v}");
    let handshakes = front.handshakes();
    assert!(handshakes >= 2, "both commands went through TLS");
    assert!(front.refusals().is_empty(), "{:?}", front.refusals());

    // A CA that did not sign SAP's certificate: refused at the handshake, said so, exit 1.
    let stranger = TestCa::new("a CA SAP does not use");
    let (code, out, err) = orderctl(&[
        "reconcile",
        "--sap-url",
        &https,
        "--sap-ca-file",
        &stranger.pem_file().display().to_string(),
        "--orders-url",
        &sys.orders,
    ])
    .await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("TLS handshake failed") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(
        front.handshakes(),
        handshakes,
        "nothing got past the handshake"
    );
    assert!(!front.refusals().is_empty());

    // A CA file that is not there: named before anything is read.
    let (code, _, err) = orderctl(&[
        "backfill",
        "--sap-url",
        &https,
        "--sap-ca-file",
        "/nonexistent/sap-ca.pem",
        "--orders-url",
        &sys.orders,
    ])
    .await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains("SAP_CA_FILE") && err.contains("/nonexistent/sap-ca.pem"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
