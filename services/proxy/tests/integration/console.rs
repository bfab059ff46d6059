//! The migration console's page and read models on the admin listener: the page is public and
//! holds no data, every read model needs the token, live series count what went through, and a
//! shadow difference is shown field by field with both values.

use reqwest::Method;
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn the_page_is_served_without_the_token_and_every_number_behind_it_needs_it() {
    let s = Stack::start(Options::default()).await;
    let page = s
        .http
        .get(format!("{}/console", s.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/console/assets/uPlot.iife.min.js"),
        "charts library linked"
    );
    for asset in [
        "console.js",
        "alpine.min.js",
        "uPlot.iife.min.js",
        "console.css",
    ] {
        let r = s
            .http
            .get(format!("{}/console/assets/{asset}", s.admin_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(
            r.bytes().await.unwrap().len() > 500,
            "{asset} is embedded whole"
        );
    }
    let missing = s
        .http
        .get(format!("{}/console/assets/nothing.js", s.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    for path in [
        "/admin/v1/console/overview",
        "/admin/v1/console/series",
        "/console/assets/../../admin/v1/replays",
    ] {
        let r = s.admin(Method::GET, path, None, None).await;
        assert!(matches!(r.status, 401 | 404), "{path}: {}", r.status);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("replays\""),
            "{path} reveals nothing"
        );
    }
    let wrong = s
        .admin(
            Method::GET,
            "/admin/v1/console/overview",
            None,
            Some("not-the-token"),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let refused = s
        .admin(
            Method::POST,
            "/admin/v1/sap-sync/parked/1/redrive",
            None,
            None,
        )
        .await;
    assert_eq!(refused.status, 401);
    // The order service's maintenance task sets its outbox gauges on its own schedule: the
    // overview shows the backlog once the first is set.
    let ov = test_support::eventually(
        "the order service's outbox backlog in the overview",
        WAIT,
        || async {
            let r = s
                .admin(Method::GET, "/admin/v1/console/overview", None, Some(TOKEN))
                .await;
            assert_eq!(r.status, 200);
            let ov = r.json();
            ov["outbox"]["backlog"].is_number().then_some(ov)
        },
    )
    .await;
    assert_eq!(ov["breakers"]["sap"], "closed", "{ov}");
    assert_eq!(ov["replay_backlog"]["pending"], 0, "{ov}");
}

/// Requests counted by the series of one route over every interval.
fn counted(series: &Value, route: &str) -> f64 {
    series["routes"][route]["requests"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_f64).sum::<f64>())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn the_series_count_what_went_through_and_a_shadow_difference_shows_both_values() {
    let s = Stack::start(Options::default()).await;
    let reference = unique("CONSOLE");
    let created = s
        .sdk_create(&s.proxy_url(), &order_body(&reference), &[])
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let n = created.json()["d"]["SalesOrder"]
        .as_str()
        .unwrap()
        .to_owned();
    test_support::eventually("linked", WAIT, || async {
        let rows = s.db_orders(&reference).await;
        (rows.len() == 1 && rows[0].1.is_some()).then_some(())
    })
    .await;
    // The new side's copy drifts: its first line's quantity differs from SAP's.
    sqlx::query(
        "UPDATE order_items SET quantity = quantity + 5 WHERE order_id = \
         (SELECT id FROM orders WHERE order_number = $1) AND item_number = 10",
    )
    .bind(&n)
    .execute(&s.pool)
    .await
    .unwrap();
    let reads = 12;
    for _ in 0..reads {
        let r = s
            .get(format!(
                "{}{ROOT}/A_SalesOrder('{n}')?$expand=to_Item",
                s.proxy_url()
            ))
            .await;
        assert_eq!(r.status, 200);
    }
    let series = test_support::eventually("the reads in the console's series", WAIT, || async {
        let r = s
            .admin(Method::GET, "/admin/v1/console/series", None, Some(TOKEN))
            .await;
        let v = r.json();
        (counted(&v, "sales-orders") >= f64::from(reads + 1)).then_some(v)
    })
    .await;
    let sap_calls: f64 = series["upstreams"]["sap"]["rate"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .sum();
    assert!(sap_calls > 0.0, "SAP's calls are charted: {series}");
    assert!(
        series["routes"]["sales-orders"]["p99_ms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_f64().is_some_and(|ms| ms > 0.0)),
        "a latency percentile for the intervals with requests: {series}"
    );
    assert!(
        series["upstreams"].get("sap-sync").is_none(),
        "only the traffic's upstreams are charted"
    );
    let both_ok: f64 = series["dual_write"]["both_ok"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_f64).sum::<f64>() * 2.0)
        .unwrap_or(0.0);
    assert!(
        (0.5..=1.5).contains(&both_ok),
        "the one create's dual write: {series}"
    );
    let diff = test_support::eventually("the difference in the overview", WAIT, || async {
        let ov = s
            .admin(Method::GET, "/admin/v1/console/overview", None, Some(TOKEN))
            .await
            .json();
        ov["shadow"]["recent_differences"]
            .as_array()?
            .iter()
            .find(|d| d["sales_order"] == n.as_str())
            .cloned()
    })
    .await;
    assert_eq!(diff["result"], "mismatch", "{diff}");
    let field = diff["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "to_Item[0].RequestedQuantity")
        .unwrap_or_else(|| panic!("the quantity differs: {diff}"));
    let (sap, new) = (
        field["sap"].as_str().unwrap().parse::<f64>().unwrap(),
        field["new"].as_str().unwrap().parse::<f64>().unwrap(),
    );
    assert_eq!(
        new - sap,
        5.0,
        "both values, as each system holds them: {field}"
    );
}
