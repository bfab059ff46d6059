//! TLS to SAP: the emulator behind a TLS terminator with a certificate from a CA made for the
//! test, sap-sync given `SAP_URL=https://localhost:<port>`.

use crate::common::*;

#[tokio::test]
async fn orders_reach_an_https_sap_whose_ca_sap_sync_is_given() {
    let s = Stack::start_behind_tls(vec![], vec![], SapTls::CaFile).await;
    let mut numbers = Vec::new();
    for i in 0..2 {
        let (_, n) = s.create_order(&unique(&format!("TLS-{i}")), "TG11").await;
        numbers.push(n);
    }
    s.wait_in_sap(&numbers).await;
    s.wait_drained(0).await;
    for n in &numbers {
        let o = s.sap_order(n).await.expect("in SAP");
        assert_eq!(o["to_Item"]["results"].as_array().unwrap().len(), 2);
    }
    assert_eq!(s.sap_stored().await, (2, 4));
    let front = s.sap_tls_front();
    assert!(front.handshakes() >= 1, "nothing went through TLS");
    assert!(front.refusals().is_empty(), "{:?}", front.refusals());
}

#[tokio::test]
async fn a_sap_sync_that_does_not_trust_sap_s_certificate_applies_nothing_says_why_and_catches_up_once_trusted()
 {
    let mut s = Stack::start_behind_tls(vec![], vec![], SapTls::StrangerCa).await;
    let (_, number) = s.create_order(&unique("TLS-REFUSED"), "TG11").await;
    // Refused like an outage: sap-sync waits, the event stays unapplied (lag), nothing parks.
    let status = test_support::eventually("sap-sync paused with lag", WAIT, || async {
        let st = s.status(0).await;
        (st["paused"] == true && st["lag_messages"].as_i64().unwrap_or(0) > 0).then_some(st)
    })
    .await;
    assert_eq!(status["parked_orders"], 0, "{status}");
    assert_eq!(s.sap_stored().await, (0, 0));
    let front = s.sap_tls_front();
    assert_eq!(front.handshakes(), 0, "a request got past the handshake");
    assert!(
        front.refusals().iter().any(|r| r.contains("UnknownCA")),
        "{:?}",
        front.refusals()
    );
    let log = s.sync_log(0);
    assert!(
        log.contains("TLS handshake failed") && log.contains("UnknownIssuer"),
        "{log}"
    );
    // Its offsets were not stored: once sap-sync trusts SAP's CA, the order lands, once.
    s.kill_sync(0);
    s.sap_tls.as_mut().unwrap().trust = SapTls::CaFile;
    let i = s.start_sync().await;
    s.wait_in_sap(std::slice::from_ref(&number)).await;
    s.wait_drained(i).await;
    assert_eq!(s.sap_stored().await, (1, 2));
}

#[tokio::test]
async fn a_bad_sap_ca_file_stops_sap_sync_at_start_naming_the_variable() {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_sap-sync"))
            .env("SAP_URL", "https://localhost:44300")
            .env("SAP_CA_FILE", "/nonexistent/sap-ca.pem")
            .env_remove("RUST_BACKTRACE")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sap-sync should exit at once on a bad configuration")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SAP_CA_FILE") && stderr.contains("/nonexistent/sap-ca.pem"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
