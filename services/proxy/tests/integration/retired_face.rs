//! A retired route with SAP frozen (SIGSTOP): the proxy alone answers SAP's session layer
//! (logon, CSRF tokens and their session cookies, `$metadata`, the service document), and a
//! refused write stores nothing (counted over the test's whole database).

use base64::Engine;
use reqwest::Method;

use crate::common::*;

const USER: &str = "shop";
const PASSWORD: &str = "correct horse battery staple";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Rows of the test's own database: orders, items, outbox events.
async fn rows(s: &Stack) -> (i64, i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };
    (
        count("SELECT count(*) FROM orders").await,
        count("SELECT count(*) FROM order_items").await,
        count("SELECT count(*) FROM outbox").await,
    )
}

/// A retired stack whose users file holds [`USER`] (or nobody).
async fn retired_stack(with_user: bool) -> (Stack, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut proxy_env = Vec::new();
    if with_user {
        let path = dir.path().join("users");
        let hash = proxy::face::session::users::hash_password(PASSWORD).unwrap();
        std::fs::write(&path, format!("# SAP face users\n{USER}:{hash}\n")).unwrap();
        proxy_env.push(("PROXY_USERS_FILE", path.display().to_string()));
    }
    let s = Stack::start(Options {
        mode: "retired",
        proxy_env,
        ..Options::default()
    })
    .await;
    s.import_master_data_from_sap();
    (s, dir)
}

async fn send(
    s: &Stack,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Resp {
    let mut r = s
        .http
        .request(method, format!("{}{ROOT}{path}", s.proxy_url()));
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b);
    }
    into_resp(r.send().await.unwrap()).await
}

/// The token and the cookies of a fetch answer, the cookies joined as SAP's SDK joins them.
fn session_of(r: &Resp) -> (String, String) {
    let token = r
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cookies = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .collect::<Vec<_>>()
        .join(";");
    (token, cookies)
}

async fn fetch(s: &Stack, method: Method, path: &str) -> (String, String) {
    let r = send(
        s,
        method.clone(),
        path,
        &[
            ("authorization", basic(USER, PASSWORD)),
            ("x-csrf-token", "Fetch".into()),
            ("accept", "application/json".into()),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{method} {path}: {:?}", r.body);
    let (token, cookies) = session_of(&r);
    assert!(!token.is_empty(), "{method} {path}: no token");
    assert!(
        cookies.contains("SAP_SESSIONID_MCK_100=") && cookies.contains("sap-usercontext="),
        "{method} {path}: {cookies}"
    );
    (token, cookies)
}

async fn create(s: &Stack, session: Option<(&str, &str)>, reference: &str) -> Resp {
    let mut headers = vec![
        ("authorization", basic(USER, PASSWORD)),
        ("accept", "application/json".into()),
    ];
    if let Some((token, cookies)) = session {
        headers.push(("x-csrf-token", token.to_owned()));
        headers.push(("cookie", cookies.to_owned()));
    }
    send(
        s,
        Method::POST,
        "/A_SalesOrder",
        &headers,
        Some(serde_json::to_vec(&order_body(reference)).unwrap()),
    )
    .await
}

#[tokio::test]
async fn with_sap_frozen_a_retired_route_logs_on_hands_out_tokens_and_serves_metadata_itself() {
    let (mut s, _users) = retired_stack(true).await;
    s.freeze_sap(true);

    // Every fetch form SAP's clients use: HEAD and GET, with and without the trailing slash.
    for (method, path) in [
        (Method::HEAD, "/A_SalesOrder/"),
        (Method::HEAD, "/A_SalesOrder"),
        (Method::HEAD, "/"),
        (Method::GET, "/"),
        (Method::GET, ""),
        (Method::GET, "/$metadata"),
    ] {
        fetch(&s, method, path).await;
    }

    // A create with a fetched token, then a key read (a GET fetch on the entity too).
    let (token, cookies) = fetch(&s, Method::HEAD, "/A_SalesOrder/").await;
    let created = create(&s, Some((&token, &cookies)), &unique("RET")).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let number = created.json()["d"]["SalesOrder"]
        .as_str()
        .unwrap()
        .to_owned();
    // S/4's create answer: the entity's ETag in the header too, the save as `sap-message`.
    assert_eq!(
        created.headers["etag"].to_str().unwrap(),
        created.json()["d"]["__metadata"]["etag"].as_str().unwrap()
    );
    let saved: serde_json::Value =
        serde_json::from_str(created.headers["sap-message"].to_str().unwrap()).unwrap();
    assert_eq!(saved["code"], "V1/311");
    assert_eq!(
        saved["message"],
        format!("Standard Order {number} has been saved")
    );
    let read = send(
        &s,
        Method::GET,
        &format!("/A_SalesOrder('{number}')"),
        &[
            ("authorization", basic(USER, PASSWORD)),
            ("accept", "application/json".into()),
            ("x-csrf-token", "fetch".into()),
        ],
        None,
    )
    .await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    assert_eq!(read.json()["d"]["SalesOrder"], number.as_str());
    assert!(!session_of(&read).0.is_empty(), "a GET fetch on an entity");

    // Refused writes: stale token, no token, token without its cookie, another session's
    // cookie. Each 403 `Required` (as S/4), and nothing stored.
    let before = rows(&s).await;
    let (other_token, other_cookies) = fetch(&s, Method::HEAD, "/A_SalesOrder/").await;
    for session in [
        Some(("c3RhbGUgdG9rZW4=", cookies.as_str())),
        None,
        Some((token.as_str(), "sap-usercontext=sap-client=100")),
        Some((token.as_str(), other_cookies.as_str())),
    ] {
        let r = create(&s, session, &unique("RET-REFUSED")).await;
        assert_eq!(r.status, 403, "{session:?}: {:?}", r.body);
        assert_eq!(r.headers["x-csrf-token"], "Required");
        assert_eq!(&r.body[..], b"CSRF token validation failed");
    }
    // A change and a $batch are writes too.
    let r = send(
        &s,
        Method::PATCH,
        &format!("/A_SalesOrder('{number}')"),
        &[
            ("authorization", basic(USER, PASSWORD)),
            ("if-match", "*".into()),
        ],
        Some(br#"{"PurchaseOrderByCustomer":"X"}"#.to_vec()),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = send(
        &s,
        Method::POST,
        "/$batch",
        &[("authorization", basic(USER, PASSWORD))],
        Some(b"--b--".to_vec()),
    )
    .await;
    assert_eq!(r.status, 403);

    // Logon: none, a wrong password, an unknown user, another client: 401 with SAP's realm.
    for auth in [
        None,
        Some(basic(USER, "wrong")),
        Some(basic("nobody", PASSWORD)),
    ] {
        let mut headers = vec![("x-csrf-token", "Fetch".to_owned())];
        if let Some(a) = auth.clone() {
            headers.push(("authorization", a));
        }
        let r = send(&s, Method::HEAD, "/A_SalesOrder/", &headers, None).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(
            r.headers["www-authenticate"],
            "Basic realm=\"SAP NetWeaver Application Server [MCK/100]\""
        );
        assert!(r.headers.get("x-csrf-token").is_none());
        let r = create(&s, None, &unique("RET-401")).await;
        assert_eq!(r.status, 403, "authenticated but without token");
    }
    let r = send(
        &s,
        Method::GET,
        "/$metadata",
        &[
            ("authorization", basic(USER, PASSWORD)),
            ("sap-client", "200".into()),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(rows(&s).await, before, "a refused write stored something");

    // Refetch and recover, as SAP's clients do after a 403.
    let (token2, cookies2) = fetch(&s, Method::HEAD, "/A_SalesOrder").await;
    let again = create(&s, Some((&token2, &cookies2)), &unique("RET")).await;
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(rows(&s).await.0, before.0 + 1);
    // The other session's own token still works (sessions are independent).
    let other = create(&s, Some((&other_token, &other_cookies)), &unique("RET")).await;
    assert_eq!(other.status, 201, "{:?}", other.body);

    // $metadata: the emulator's document, byte for byte, with S/4's headers.
    let meta = send(
        &s,
        Method::GET,
        "/$metadata",
        &[("authorization", basic(USER, PASSWORD))],
        None,
    )
    .await;
    assert_eq!(meta.status, 200);
    assert_eq!(&meta.body[..], sap_odata::metadata::edmx().as_bytes());
    assert_eq!(meta.headers["content-type"], "application/xml");
    assert_eq!(meta.headers["dataserviceversion"], "2.0");
    // The service document, JSON and AtomPub.
    let doc = send(
        &s,
        Method::GET,
        "/",
        &[
            ("authorization", basic(USER, PASSWORD)),
            ("accept", "application/json".into()),
        ],
        None,
    )
    .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json()["d"]["EntitySets"][0], "A_SalesOrder");
    let atom = send(
        &s,
        Method::GET,
        "",
        &[
            ("authorization", basic(USER, PASSWORD)),
            ("accept", "application/xml".into()),
        ],
        None,
    )
    .await;
    assert_eq!(atom.status, 200);
    let text = String::from_utf8_lossy(&atom.body);
    assert!(text.contains("<app:service"), "{text}");
    assert!(text.contains(r#"href="A_SalesOrder""#));

    // A token fetched before a proxy restart still works after it (the signing key is in the
    // data folder).
    let (token3, cookies3) = fetch(&s, Method::HEAD, "/A_SalesOrder/").await;
    s.kill_proxy();
    s.start_proxy().await;
    let after = create(&s, Some((&token3, &cookies3)), &unique("RET")).await;
    assert_eq!(after.status, 201, "{:?}", after.body);

    // Nothing of the above was sent to SAP: it is still stopped and nothing waits on its port.
    assert!(s.sap_is_stopped());
    assert_eq!(s.sap_unread_on_wire(), 0, "something was sent to SAP");
    s.freeze_sap(false);
    let log = s.proxy_log();
    assert!(!log.contains(PASSWORD), "a password reached the log");
}

#[tokio::test]
async fn a_retired_route_without_users_refuses_every_client_and_says_so_at_start() {
    let (s, _users) = retired_stack(false).await;
    s.freeze_sap(true);
    let before = rows(&s).await;
    for (method, path) in [
        (Method::HEAD, "/A_SalesOrder/"),
        (Method::GET, "/$metadata"),
        (Method::GET, "/"),
        (Method::POST, "/A_SalesOrder"),
    ] {
        let r = send(
            &s,
            method.clone(),
            path,
            &[
                ("authorization", basic(USER, PASSWORD)),
                ("x-csrf-token", "Fetch".into()),
            ],
            Some(serde_json::to_vec(&order_body(&unique("NOUSERS"))).unwrap()),
        )
        .await;
        assert_eq!(r.status, 401, "{method} {path}");
        assert!(r.headers.contains_key("www-authenticate"));
    }
    assert_eq!(rows(&s).await, before);
    s.freeze_sap(false);
    assert!(
        s.proxy_log().contains("no SAP-face users configured"),
        "no startup warning"
    );
}

/// SAP's JavaScript client drives `e2e/sap-sdk/retired/` through the proxy: create, reads with
/// `$select`/`$expand`/`$filter`/`$top`/`$count`, a quantity change (still priced, total = lines),
/// a line rejection, an unknown reason refused, refused creates, a wrong password. SAP is frozen
/// throughout, and the test checks that nothing was sent to it (the kernel's queues on its port
/// stay empty, and it answered no OData request once thawed), so no step can pass by SAP.
#[tokio::test]
async fn sap_s_javascript_client_passes_an_order_s_whole_life_against_a_retired_route_with_sap_frozen()
 {
    let (s, _users) = retired_stack(true).await;
    let sap_answered = s.sap_odata_requests().await;
    s.freeze_sap(true);
    // SIGSTOP is delivered asynchronously: stopped before the first request of the run.
    test_support::eventually("SAP stopped", WAIT, || async {
        s.sap_is_stopped().then_some(())
    })
    .await;
    let before = rows(&s).await;
    let script = test_support::workspace_root().join("e2e/sap-sdk/run.sh");
    let url = s.proxy_url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(&script)
            .env("SAP_URL", url)
            .env("SAP_USER", USER)
            .env("SAP_PASSWORD", PASSWORD)
            .env("SAP_CLIENT", "100")
            .env("SAP_SDK_TESTS", "retired/")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    // Still frozen at the end, with nothing waiting for SAP on its port: no connection, no
    // request byte reached it during the run.
    let stopped_throughout = s.sap_is_stopped();
    let unread = s.sap_unread_on_wire();
    // The probe is not blind: a request sent to the frozen SAP now waits on its port.
    let control = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let _ = control
        .get(format!("{}/sap-mock/health", s.sap_url()))
        .send()
        .await;
    let control_seen = s.sap_unread_on_wire();
    s.freeze_sap(false);
    assert!(control_seen > 0, "a request to the frozen SAP was not seen");
    assert!(stopped_throughout, "SAP was thawed during the run");
    assert_eq!(unread, 0, "something was sent to SAP during the run");
    assert_eq!(
        s.sap_odata_requests().await,
        sap_answered,
        "SAP answered an OData request of the run"
    );
    assert!(
        out.status.success(),
        "SAP's client against the retired route:\n{text}"
    );
    assert!(
        text.contains("13 passed") && text.contains("0 failed"),
        "{text}"
    );
    // One order from the client's create; the refused ones stored nothing.
    let after = rows(&s).await;
    assert_eq!(after.0, before.0 + 1, "orders");
    assert_eq!(after.1, before.1 + 2, "order lines");
}
