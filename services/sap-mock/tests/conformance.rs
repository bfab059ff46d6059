//! Conformance of the emulator's OData face: every query option, keys, CSRF, logon, ETags and
//! the error format, with malformed and hostile input. Every refusal of a write is checked to
//! have stored nothing by counting orders.

mod common;

use common::{TestEmulator, assert_odata_error, order_body};
use reqwest::{Method, StatusCode};
use sap_mock::config::User;
use serde_json::{Value, json};

fn results(v: &Value) -> &Vec<Value> {
    v["d"]["results"].as_array().expect("a collection")
}

fn numbers(v: &Value) -> Vec<String> {
    results(v)
        .iter()
        .map(|o| o["SalesOrder"].as_str().unwrap().to_owned())
        .collect()
}

/// Three orders: PO-A (TG11 x2 = 25.00), PO-B (TG12 x5 = 90.00, customer 17100002),
/// PO-C (TG10 x1 + TG15 x1 = 40.00).
async fn three_orders(e: &TestEmulator) -> Vec<String> {
    let a = e.create_ok(&order_body("PO-A", &[("TG11", "2")])).await;
    let mut b_body = order_body("PO-B", &[("TG12", "5")]);
    b_body["SoldToParty"] = json!("17100002");
    let b = e.create_ok(&b_body).await;
    let c = e
        .create_ok(&order_body("PO-C", &[("TG10", "1"), ("TG15", "1")]))
        .await;
    [a, b, c]
        .iter()
        .map(|o| o["SalesOrder"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_service_document_and_metadata_describe_the_entity_sets() {
    let e = TestEmulator::start().await;
    let doc = e.get_json("/").await;
    assert_eq!(
        doc["d"]["EntitySets"],
        json!([
            "A_SalesOrder",
            "A_SalesOrderItem",
            "A_SalesOrderItmSubsqntProcFlow",
            "A_SalesOrderSubsqntProcFlow"
        ])
    );
    let r = e.get("/$metadata").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml")
    );
    let xml = r.text().await.unwrap();
    assert!(xml.contains(r#"<EntityType Name="A_SalesOrder""#));
    assert!(xml.contains(r#"<EntityType Name="A_SalesOrderItem""#));
    assert!(xml.contains(r#"<NavigationProperty Name="to_Item""#));
    assert!(xml.contains(r#"<EntityType Name="A_SalesOrderSubsqntProcFlow""#));
    assert!(xml.contains(r#"<EntityType Name="A_SalesOrderItmSubsqntProcFlow""#));
    assert!(xml.contains(r#"<NavigationProperty Name="to_SubsequentProcFlowDoc""#));
    assert!(xml.contains(r#"<NavigationProperty Name="to_SubsequentProcFlowDocItem""#));
}

#[tokio::test]
async fn a_create_answers_201_with_location_etag_number_priced_items_and_the_full_entity() {
    let e = TestEmulator::start().await;
    let r = e
        .create(&order_body("PO-1", &[("TG11", "2"), ("TG12", "5")]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["dataserviceversion"], "2.0");
    let message: Value =
        serde_json::from_str(r.headers()["sap-message"].to_str().unwrap()).unwrap();
    assert_eq!(message["code"], "V1/311");
    assert_eq!(message["severity"], "success");
    assert_eq!(message["message"], "Standard Order 1000001 has been saved");
    let v: Value = r.json().await.unwrap();
    let d = &v["d"];
    assert_eq!(d["SalesOrder"], "1000001");
    assert!(location.ends_with("/A_SalesOrder('1000001')"), "{location}");
    assert_eq!(d["__metadata"]["etag"], etag.as_str());
    assert!(etag.starts_with("W/\"datetimeoffset'"), "{etag}");
    assert_eq!(d["__metadata"]["type"], "API_SALES_ORDER_SRV.A_SalesOrder");
    assert_eq!(
        d.as_object().unwrap().len(),
        1 + 92 + 9,
        "metadata, 92 properties, 9 navigations"
    );
    assert_eq!(d["TotalNetAmount"], "115.00");
    assert_eq!(d["TransactionCurrency"], "EUR");
    assert_eq!(d["LastChangeDate"], Value::Null);
    assert!(d["CreationDate"].as_str().unwrap().starts_with("/Date("));
    assert!(
        d["LastChangeDateTime"]
            .as_str()
            .unwrap()
            .ends_with("+0000)/")
    );
    assert_eq!(d["CustomerPurchaseOrderDate"], "/Date(1795478400000)/");
    let items = d["to_Item"]["results"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["SalesOrderItem"], "10");
    assert_eq!(items[1]["SalesOrderItem"], "20");
    assert_eq!(items[0]["NetAmount"], "25.00");
    assert_eq!(items[1]["RequestedQuantity"], "5");
    assert!(items[0]["to_SalesOrder"]["__deferred"]["uri"].is_string());
    assert!(
        d["to_Partner"]["__deferred"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/to_Partner")
    );
    // the number range moves on
    let second = e.create_ok(&order_body("PO-2", &[("TG11", "1")])).await;
    assert_eq!(second["SalesOrder"], "1000002");
    assert_eq!(e.count().await, 2);
}

#[tokio::test]
async fn named_positional_and_sdk_encoded_keys_address_the_same_order() {
    let e = TestEmulator::start().await;
    let n = &three_orders(&e).await[0];
    for path in [
        format!("/A_SalesOrder(SalesOrder='{n}')"),
        format!("/A_SalesOrder('{n}')"),
        format!("/A_SalesOrder(SalesOrder=%27{n}%27)"),
        format!("/A_SalesOrder('000{n}')"),
    ] {
        let v = e.get_json(&path).await;
        assert_eq!(v["d"]["SalesOrder"], n.as_str(), "{path}");
        assert!(
            v["d"]["to_Item"]["__deferred"].is_object(),
            "items deferred unless expanded"
        );
    }
    let missing = e.get("/A_SalesOrder('9999999')").await;
    let err = assert_odata_error(missing, StatusCode::NOT_FOUND).await;
    assert_eq!(err["error"]["code"], "V1/302");
    let bad_key = e.get("/A_SalesOrder(Foo='1')").await;
    assert_odata_error(bad_key, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn select_star_with_item_star_expands_every_item_property_as_the_sdk_reads() {
    let e = TestEmulator::start().await;
    let n = &three_orders(&e).await[2];
    let v = e
        .get_json(&format!(
            "/A_SalesOrder(SalesOrder=%27{n}%27)?$select=*,to_Item/*&$expand=to_Item"
        ))
        .await;
    let d = &v["d"];
    assert_eq!(d["SoldToParty"], "17100001");
    let items = d["to_Item"]["results"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["Material"], "TG15");
    assert_eq!(items[1]["NetAmount"], "30.00");
    assert_eq!(
        items[0].as_object().unwrap().len(),
        1 + 104 + 9,
        "metadata, 104 properties, 9 navigations"
    );
}

#[tokio::test]
async fn select_keeps_only_the_named_properties_at_header_and_item_level() {
    let e = TestEmulator::start().await;
    three_orders(&e).await;
    let v = e
        .get_json("/A_SalesOrder?$select=SalesOrder,PurchaseOrderByCustomer,to_Item/SalesOrderItem,to_Item/Material,to_Item/RequestedQuantity&$expand=to_Item&$filter=(PurchaseOrderByCustomer%20eq%20'PO-C')&$top=5")
        .await;
    let list = results(&v);
    assert_eq!(list.len(), 1);
    let o = list[0].as_object().unwrap();
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "PurchaseOrderByCustomer",
            "SalesOrder",
            "__metadata",
            "to_Item"
        ]
    );
    let item = list[0]["to_Item"]["results"][0].as_object().unwrap();
    let mut item_keys: Vec<&str> = item.keys().map(String::as_str).collect();
    item_keys.sort_unstable();
    assert_eq!(
        item_keys,
        [
            "Material",
            "RequestedQuantity",
            "SalesOrderItem",
            "__metadata"
        ]
    );
    // a plain property selection without navigation leaves navigation out entirely
    let v = e.get_json("/A_SalesOrder?$select=SalesOrder").await;
    assert!(
        results(&v)
            .iter()
            .all(|o| o.as_object().unwrap().len() == 2)
    );
}

#[tokio::test]
async fn filter_supports_every_operator_function_and_literal_form() {
    let e = TestEmulator::start().await;
    let n = three_orders(&e).await;
    let (a, b, c) = (&n[0], &n[1], &n[2]);
    let cases: &[(&str, Vec<&String>)] = &[
        ("PurchaseOrderByCustomer eq 'PO-A'", vec![a]),
        ("(PurchaseOrderByCustomer eq 'PO-A')", vec![a]),
        ("PurchaseOrderByCustomer ne 'PO-A'", vec![b, c]),
        ("TotalNetAmount gt 40M", vec![b]),
        ("TotalNetAmount ge 40.00M", vec![b, c]),
        ("TotalNetAmount lt 40", vec![a]),
        ("TotalNetAmount le 40.0M", vec![a, c]),
        (
            "SoldToParty eq '17100001' and TotalNetAmount gt 30M",
            vec![c],
        ),
        (
            "SoldToParty eq '17100002' or PurchaseOrderByCustomer eq 'PO-A'",
            vec![a, b],
        ),
        ("not (SoldToParty eq '17100001')", vec![b]),
        (
            "not SoldToParty eq '17100001' or (TotalNetAmount lt 30M and SalesOrderType eq 'OR')",
            vec![a, b],
        ),
        ("substringof('O-B', PurchaseOrderByCustomer)", vec![b]),
        (
            "substringof('O-B', PurchaseOrderByCustomer) eq true",
            vec![b],
        ),
        ("startswith(PurchaseOrderByCustomer, 'PO-')", vec![a, b, c]),
        ("endswith(PurchaseOrderByCustomer, 'C')", vec![c]),
        ("tolower(PurchaseOrderByCustomer) eq 'po-a'", vec![a]),
        (
            "CreationDate ge datetime'2000-01-01T00:00:00.000'",
            vec![a, b, c],
        ),
        (
            "CreationDate lt datetime'2000-01-01T00%3A00%3A00.000'",
            vec![],
        ),
        (
            "CustomerPurchaseOrderDate eq datetime'2026-11-24T00:00:00'",
            vec![a, b, c],
        ),
        (
            "LastChangeDateTime gt datetimeoffset'2000-01-01T00:00:00Z'",
            vec![a, b, c],
        ),
        ("LastChangeDate eq null", vec![a, b, c]),
        ("PurchaseOrderByCustomer eq 'x'' or ''1''=''1'", vec![]),
    ];
    for (filter, expected) in cases {
        let encoded = filter.replace(' ', "%20");
        let v = e
            .get_json(&format!("/A_SalesOrder?$filter={encoded}"))
            .await;
        let got = numbers(&v);
        let want: Vec<String> = expected.iter().map(|s| (*s).clone()).collect();
        assert_eq!(got, want, "{filter}");
    }
}

#[tokio::test]
async fn orderby_top_skip_and_inlinecount_shape_the_list() {
    let e = TestEmulator::start().await;
    let n = three_orders(&e).await;
    let v = e.get_json("/A_SalesOrder?$orderby=SalesOrder%20desc").await;
    assert_eq!(numbers(&v), vec![n[2].clone(), n[1].clone(), n[0].clone()]);
    let v = e
        .get_json("/A_SalesOrder?$orderby=TotalNetAmount%20desc,SalesOrder")
        .await;
    assert_eq!(numbers(&v), vec![n[1].clone(), n[2].clone(), n[0].clone()]);
    let v = e
        .get_json("/A_SalesOrder?$orderby=SoldToParty,TotalNetAmount%20asc")
        .await;
    assert_eq!(numbers(&v), vec![n[0].clone(), n[2].clone(), n[1].clone()]);
    let v = e.get_json("/A_SalesOrder?$top=1&$skip=1").await;
    assert_eq!(numbers(&v), vec![n[1].clone()]);
    assert!(v["d"].get("__count").is_none());
    let v = e
        .get_json("/A_SalesOrder?$top=1&$inlinecount=allpages")
        .await;
    assert_eq!(v["d"]["__count"], "3");
    assert_eq!(results(&v).len(), 1);
    let v = e.get_json("/A_SalesOrder?$skip=10").await;
    assert!(results(&v).is_empty());
}

#[tokio::test]
async fn server_side_paging_hands_out_next_links_that_walk_every_order_once() {
    let e = TestEmulator::start_with(|c| c.page_size = 2).await;
    for i in 0..5 {
        e.create_ok(&order_body(&format!("PAGE-{i}"), &[("TG11", "1")]))
            .await;
    }
    let mut seen = Vec::new();
    let mut next = Some(e.url("/A_SalesOrder?$select=SalesOrder&$inlinecount=allpages"));
    let mut pages = 0;
    while let Some(url) = next {
        let v: Value = e
            .client
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["d"]["__count"], "5");
        seen.extend(numbers(&v));
        next = v["d"]["__next"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages <= 3, "too many pages");
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        (1_000_001..=1_000_005)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
    );
    // $top smaller than a page: no next link
    let v = e.get_json("/A_SalesOrder?$top=2").await;
    assert!(v["d"].get("__next").is_none());
}

#[tokio::test]
async fn count_items_and_item_navigation_follow_the_key_and_filter() {
    let e = TestEmulator::start().await;
    let n = three_orders(&e).await;
    let c = &n[2];
    let count = |path: String| {
        let e = &e;
        async move { e.get(&path).await.text().await.unwrap() }
    };
    assert_eq!(count("/A_SalesOrder/$count".into()).await, "3");
    assert_eq!(
        count("/A_SalesOrder/$count?$filter=TotalNetAmount%20gt%2030M".into()).await,
        "2"
    );
    assert_eq!(
        count(format!("/A_SalesOrder('{c}')/to_Item/$count")).await,
        "2"
    );
    assert_eq!(count("/A_SalesOrderItem/$count".into()).await, "4");
    let v = e
        .get_json(&format!(
            "/A_SalesOrder('{c}')/to_Item?$filter=Material%20eq%20'TG15'"
        ))
        .await;
    assert_eq!(results(&v).len(), 1);
    assert_eq!(results(&v)[0]["SalesOrderItem"], "20");
    let item = e
        .get_json(&format!(
            "/A_SalesOrderItem(SalesOrder='{c}',SalesOrderItem='20')"
        ))
        .await;
    assert_eq!(item["d"]["Material"], "TG15");
    assert!(
        item["d"]["__metadata"]["uri"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "A_SalesOrderItem(SalesOrder='{c}',SalesOrderItem='20')"
            ))
    );
    let positional = e.get_json(&format!("/A_SalesOrderItem('{c}','10')")).await;
    assert_eq!(positional["d"]["Material"], "TG10");
    let header = e
        .get_json(&format!(
            "/A_SalesOrderItem(SalesOrder='{c}',SalesOrderItem='20')/to_SalesOrder"
        ))
        .await;
    assert_eq!(header["d"]["SalesOrder"], c.as_str());
    let all_tg = e
        .get_json("/A_SalesOrderItem?$filter=startswith(Material,'TG1')&$orderby=NetAmount%20desc")
        .await;
    let materials: Vec<&str> = results(&all_tg)
        .iter()
        .map(|i| i["Material"].as_str().unwrap())
        .collect();
    assert_eq!(materials, ["TG12", "TG15", "TG11", "TG10"]);
    let partners = e
        .get_json(&format!("/A_SalesOrder('{c}')/to_Partner"))
        .await;
    assert!(results(&partners).is_empty());
    let missing_item = e
        .get(&format!(
            "/A_SalesOrderItem(SalesOrder='{c}',SalesOrderItem='90')"
        ))
        .await;
    assert_odata_error(missing_item, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn json_is_chosen_by_accept_or_format_and_xml_only_requests_are_refused() {
    let e = TestEmulator::start().await;
    let plain = e
        .client
        .get(e.url("/A_SalesOrder?$format=json"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // XML asked for: Atom, a feed for a set, an entry for one entity, SAP's error document.
    let created = e.create_ok(&order_body("PO-ATOM", &[("TG11", "2")])).await;
    let number = created["SalesOrder"].as_str().unwrap().to_owned();
    for (path, accept, content_type, needle) in [
        (
            "/A_SalesOrder".to_owned(),
            "application/atom+xml",
            "application/atom+xml;type=feed",
            "<feed".to_owned(),
        ),
        (
            "/A_SalesOrder?$format=xml".to_owned(),
            "",
            "application/atom+xml;type=feed",
            "<feed".to_owned(),
        ),
        (
            format!("/A_SalesOrder('{number}')?$expand=to_Item"),
            "application/xml",
            "application/atom+xml;type=entry",
            format!("<d:SalesOrder>{number}</d:SalesOrder>"),
        ),
        (
            "/A_SalesOrder('0')".to_owned(),
            "application/atom+xml",
            "application/xml",
            "<code>".to_owned(),
        ),
    ] {
        let mut req = e.client.get(e.url(&path));
        if !accept.is_empty() {
            req = req.header("accept", accept);
        }
        let r = req.send().await.unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        let body = r.text().await.unwrap();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        assert!(
            body.starts_with("<?xml") && body.contains(&needle),
            "{path}: {body}"
        );
    }
    let html_only = e
        .client
        .get(e.url("/A_SalesOrder"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_odata_error(html_only, StatusCode::NOT_ACCEPTABLE).await;
}

#[tokio::test]
async fn sap_client_is_accepted_as_header_or_query_parameter_and_a_foreign_client_is_refused() {
    let e = TestEmulator::start().await;
    assert_eq!(
        e.request(Method::GET, "/A_SalesOrder")
            .header("sap-client", "100")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        e.get("/A_SalesOrder?sap-client=100").await.status(),
        StatusCode::OK
    );
    let foreign = e.get("/A_SalesOrder?sap-client=200").await;
    assert_odata_error(foreign, StatusCode::UNAUTHORIZED).await;
    let foreign_header = e
        .request(Method::GET, "/A_SalesOrder")
        .header("sap-client", "999")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_header.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn csrf_a_write_without_a_valid_token_and_cookie_is_403_required_and_stores_nothing() {
    let e = TestEmulator::start().await;
    let body = serde_json::to_vec(&order_body("CSRF", &[("TG11", "1")])).unwrap();
    let (token, cookie) = e.csrf().await;
    let (other_token, _) = e.csrf().await;
    let attempts = [
        (None, None),
        (Some(token.clone()), None),
        (None, Some(cookie.clone())),
        (Some("forged".to_owned()), Some(cookie.clone())),
        (Some(other_token), Some(cookie.clone())),
        (Some("Fetch".to_owned()), Some(cookie.clone())),
    ];
    for (t, c) in attempts {
        let mut r = e
            .request(Method::POST, "/A_SalesOrder")
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(t) = &t {
            r = r.header("x-csrf-token", t);
        }
        if let Some(c) = &c {
            r = r.header("cookie", c);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{t:?} {c:?}");
        assert_eq!(r.headers()["x-csrf-token"], "Required");
        assert_eq!(r.text().await.unwrap(), "CSRF token validation failed");
    }
    assert_eq!(e.count().await, 0);
    // the right pair works, with the cookie header written with or without spaces
    for sep in [";", "; "] {
        let (token, cookie) = e.csrf().await;
        let r = e
            .request(Method::POST, "/A_SalesOrder")
            .header("content-type", "application/json")
            .header("x-csrf-token", token)
            .header("cookie", cookie.replace(';', sep))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    assert_eq!(e.count().await, 2);
}

#[tokio::test]
async fn csrf_tokens_are_fetched_by_head_or_get_in_any_case_and_reused_within_a_session() {
    let e = TestEmulator::start().await;
    for path in [
        "/A_SalesOrder/",
        "/A_SalesOrder",
        "/",
        "/A_SalesOrder('1')/",
    ] {
        let r = e
            .request(Method::HEAD, path)
            .header("x-csrf-token", "fetch")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers().get("x-csrf-token").is_some(), "{path}");
        assert!(r.headers().get_all("set-cookie").iter().count() >= 1);
    }
    let r = e
        .request(Method::GET, "/A_SalesOrder")
        .header("x-csrf-token", "FETCH")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.headers()["x-csrf-token"].to_str().unwrap().to_owned();
    let cookie: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let again = e
        .request(Method::HEAD, "/A_SalesOrder/")
        .header("x-csrf-token", "Fetch")
        .header("cookie", cookie.join(";"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()["x-csrf-token"].to_str().unwrap(), token);
    // without Fetch, no token is handed out
    let r = e.get("/A_SalesOrder").await;
    assert!(r.headers().get("x-csrf-token").is_none());
}

#[tokio::test]
async fn with_users_configured_every_request_needs_valid_basic_auth_or_a_session() {
    let e = TestEmulator::start_with(|c| {
        c.users = vec![User {
            name: "alice".into(),
            password: "s3cret".into(),
        }]
    })
    .await;
    let anonymous = e
        .client
        .get(e.url("/A_SalesOrder"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let challenge = anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    assert_odata_error(anonymous, StatusCode::UNAUTHORIZED).await;
    let wrong = e
        .client
        .get(e.url("/A_SalesOrder"))
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown = e
        .client
        .head(e.url("/A_SalesOrder/"))
        .basic_auth("mallory", Some("s3cret"))
        .header("x-csrf-token", "Fetch")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(unknown.headers().get("x-csrf-token").is_none());
    let post = e
        .client
        .post(e.url("/A_SalesOrder"))
        .json(&order_body("NOAUTH", &[("TG11", "1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(e.count().await, 0);
    let created = e.create_ok(&order_body("AUTH", &[("TG11", "1")])).await;
    assert_eq!(created["CreatedByUser"], "ALICE");
    // the session cookie alone also logs on
    let (_, cookie) = e.csrf().await;
    let by_cookie = e
        .client
        .get(e.url("/A_SalesOrder/$count"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    assert_eq!(by_cookie.text().await.unwrap(), "1");
}

#[tokio::test]
async fn etag_updates_need_the_current_etag_and_a_stale_one_gets_412() {
    let e = TestEmulator::start().await;
    let created = e.create_ok(&order_body("ETAG", &[("TG11", "1")])).await;
    let n = created["SalesOrder"].as_str().unwrap().to_owned();
    let etag0 = created["__metadata"]["etag"].as_str().unwrap().to_owned();
    let path = format!("/A_SalesOrder('{n}')");
    let patch = |method: Method, if_match: Option<String>, body: Value| {
        let e = &e;
        let path = path.clone();
        async move {
            let (token, cookie) = e.csrf().await;
            let mut r = e
                .request(method, &path)
                .header("x-csrf-token", token)
                .header("cookie", cookie)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
            if let Some(m) = if_match {
                r = r.header("if-match", m);
            }
            r.send().await.unwrap()
        }
    };
    let missing = patch(Method::PATCH, None, json!({"PurchaseOrderByCustomer": "X"})).await;
    assert_odata_error(missing, StatusCode::PRECONDITION_REQUIRED).await;
    let ok = patch(
        Method::PATCH,
        Some(etag0.clone()),
        json!({"PurchaseOrderByCustomer": "ETAG-2"}),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    let etag1 = ok.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag1, etag0);
    let stale = patch(
        Method::PATCH,
        Some(etag0.clone()),
        json!({"PurchaseOrderByCustomer": "LOST"}),
    )
    .await;
    assert_odata_error(stale, StatusCode::PRECONDITION_FAILED).await;
    let merge = patch(
        Method::from_bytes(b"MERGE").unwrap(),
        Some(etag1.clone()),
        json!({"CustomerPurchaseOrderType": "EDI"}),
    )
    .await;
    assert_eq!(merge.status(), StatusCode::NO_CONTENT);
    let star = patch(
        Method::PATCH,
        Some("*".into()),
        json!({"ShippingCondition": "02"}),
    )
    .await;
    assert_eq!(star.status(), StatusCode::NO_CONTENT);
    let fixed = patch(
        Method::PATCH,
        Some("*".into()),
        json!({"SoldToParty": "17100002"}),
    )
    .await;
    let err = assert_odata_error(fixed, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        err["error"]["innererror"]["errordetails"][0]["propertyref"],
        "SoldToParty"
    );
    let v = e.get_json(&path).await;
    let d = &v["d"];
    assert_eq!(d["PurchaseOrderByCustomer"], "ETAG-2");
    assert_eq!(d["CustomerPurchaseOrderType"], "EDI");
    assert_eq!(d["ShippingCondition"], "02");
    assert_eq!(d["SoldToParty"], "17100001");
    assert!(d["LastChangeDate"].is_string());
    // delete: stale ETag refused, current accepted, then gone
    let current = d["__metadata"]["etag"].as_str().unwrap().to_owned();
    let (token, cookie) = e.csrf().await;
    let del_stale = e
        .request(Method::DELETE, &path)
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        .header("if-match", etag0)
        .send()
        .await
        .unwrap();
    assert_eq!(del_stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(e.count().await, 1);
    let del = e
        .request(Method::DELETE, &path)
        .header("x-csrf-token", &token)
        .header("cookie", &cookie)
        .header("if-match", current)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert_eq!(e.count().await, 0);
    assert_odata_error(e.get(&path).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn malformed_and_hostile_create_bodies_are_400_odata_errors_and_store_nothing() {
    let e = TestEmulator::start().await;
    let good = order_body("HOSTILE", &[("TG11", "1")]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = good.clone();
        f(&mut b);
        serde_json::to_vec(&b).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated JSON",
            b"{\"SoldToParty\":\"1710".to_vec(),
            "CX_SXML_PARSE_ERROR",
        ),
        ("not JSON", b"<xml/>".to_vec(), "CX_SXML_PARSE_ERROR"),
        ("empty body", Vec::new(), "CX_SXML_PARSE_ERROR"),
        ("JSON array", b"[1,2]".to_vec(), "CX_SXML_PARSE_ERROR"),
        (
            "d envelope",
            serde_json::to_vec(&json!({"d": good})).unwrap(),
            "/IWBEP/CM_MGW_RT/021",
        ),
        (
            "deeply nested",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            "CX_SXML_PARSE_ERROR",
        ),
        (
            "unknown property",
            with(&|b| b["Hack"] = json!("1")),
            "/IWBEP/CM_MGW_RT/021",
        ),
        (
            "number for a string",
            with(&|b| b["SoldToParty"] = json!(17100001)),
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            "string for a boolean",
            with(&|b| b["CompleteDeliveryIsDefined"] = json!("true")),
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            "object for a decimal",
            with(&|b| b["to_Item"][0]["RequestedQuantity"] = json!({"v": 1})),
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            "word for a decimal",
            with(&|b| b["to_Item"][0]["RequestedQuantity"] = json!("two")),
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            "ISO date",
            with(&|b| b["CustomerPurchaseOrderDate"] = json!("2026-11-24")),
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            "too many decimals",
            with(&|b| b["to_Item"][0]["RequestedQuantity"] = json!("1.0001")),
            "/IWBEP/CM_MGW_RT/022",
        ),
        (
            "value too long",
            with(&|b| b["PurchaseOrderByCustomer"] = json!("X".repeat(36))),
            "/IWBEP/CM_MGW_RT/120",
        ),
        (
            "huge string value",
            with(&|b| {
                b["PurchaseOrderByCustomer"] = json!("'; DROP TABLE orders;--".repeat(20_000))
            }),
            "/IWBEP/CM_MGW_RT/120",
        ),
        (
            "items not a list",
            with(&|b| b["to_Item"] = json!("TG11")),
            "CX_SXML_PARSE_ERROR",
        ),
        (
            "unsupported deep insert",
            with(&|b| b["to_Partner"] = json!([])),
            "/IWBEP/CM_MGW_RT/021",
        ),
        (
            "missing sold-to party",
            with(&|b| b["SoldToParty"] = json!("")),
            "V1/320",
        ),
        (
            "absent sold-to party",
            with(&|b| {
                b.as_object_mut().unwrap().remove("SoldToParty");
            }),
            "V1/320",
        ),
        (
            "unknown customer",
            with(&|b| b["SoldToParty"] = json!("99999999")),
            "V1/317",
        ),
        (
            "injection-looking customer",
            with(&|b| b["SoldToParty"] = json!("1' OR '1")),
            "V1/317",
        ),
        (
            "unknown material",
            with(&|b| b["to_Item"][0]["Material"] = json!("NOPE")),
            "V1/392",
        ),
        (
            "item without material",
            with(&|b| b["to_Item"][0] = json!({"RequestedQuantity": "1"})),
            "V1/391",
        ),
        (
            "zero quantity",
            with(&|b| b["to_Item"][0]["RequestedQuantity"] = json!("0")),
            "V1/084",
        ),
        (
            "negative quantity",
            with(&|b| b["to_Item"][0]["RequestedQuantity"] = json!("-3")),
            "V1/084",
        ),
        (
            "missing quantity",
            with(&|b| {
                b["to_Item"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("RequestedQuantity");
            }),
            "V1/084",
        ),
        (
            "wrong unit",
            with(&|b| b["to_Item"][0]["RequestedQuantityUnit"] = json!("KG")),
            "V1/802",
        ),
        (
            "unknown order type",
            with(&|b| b["SalesOrderType"] = json!("ZZ")),
            "V1/898",
        ),
        (
            "unknown sales area",
            with(&|b| b["SalesOrganization"] = json!("9999")),
            "V1/314",
        ),
        (
            "a number outside the external range",
            with(&|b| b["SalesOrder"] = json!("42")),
            "V1/017",
        ),
        (
            "foreign currency",
            with(&|b| b["TransactionCurrency"] = json!("USD")),
            "V1/803",
        ),
        (
            "a bad item among many",
            with(&|b| {
                let mut items: Vec<Value> = (0..500)
                    .map(|_| json!({"Material": "TG11", "RequestedQuantity": "1"}))
                    .collect();
                items.push(json!({"Material": "TG11", "RequestedQuantity": "0"}));
                b["to_Item"] = Value::Array(items);
            }),
            "V1/084",
        ),
    ];
    for (what, body, code) in cases {
        let r = e
            .write(Method::POST, "/A_SalesOrder", Some(body))
            .await
            .unwrap();
        let err = assert_odata_error(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(err["error"]["code"], code, "{what}: {err}");
        assert!(err["error"]["innererror"]["transactionid"].is_string());
    }
    assert_eq!(e.count().await, 0, "nothing stored on any error");
    // the same order, well-formed, is accepted: the refusals were about the input
    e.create_ok(&good).await;
    assert_eq!(e.count().await, 1);
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_refused_with_an_odata_error_and_stores_nothing() {
    let e = TestEmulator::start_with(|c| c.max_body_bytes = 64 * 1024).await;
    let mut body = order_body("HUGE", &[]);
    body["to_Item"] = Value::Array(
        (0..5000)
            .map(|_| json!({"Material": "TG11", "RequestedQuantity": "1"}))
            .collect(),
    );
    let r = e
        .write(
            Method::POST,
            "/A_SalesOrder",
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
        .unwrap();
    assert_odata_error(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    let xml = e
        .write(Method::POST, "/A_SalesOrder", Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        xml.status(),
        StatusCode::BAD_REQUEST,
        "empty object misses the sold-to party"
    );
    let (token, cookie) = e.csrf().await;
    let wrong_type = e
        .request(Method::POST, "/A_SalesOrder")
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/atom+xml")
        .body("<entry/>")
        .send()
        .await
        .unwrap();
    assert_odata_error(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(e.count().await, 0);
}

#[tokio::test]
async fn broken_or_hostile_query_options_are_400_odata_errors() {
    let e = TestEmulator::start().await;
    e.create_ok(&order_body("Q", &[("TG11", "1")])).await;
    let cases = [
        (
            "$filter=(PurchaseOrderByCustomer%20eq%20'x'",
            "005056A509B11EE1B9A8FEC11C21578E",
        ),
        (
            "$filter=PurchaseOrderByCustomer%20eq",
            "005056A509B11EE1B9A8FEC11C21578E",
        ),
        (
            "$filter=PurchaseOrderByCustomer%20==%20'x'",
            "005056A509B11EE1B9A8FEC11C21578E",
        ),
        (
            "$filter=PurchaseOrderByCustomer%20eq%20'x';DROP%20TABLE%20orders",
            "005056A509B11EE1B9A8FEC11C21578E",
        ),
        (
            "$filter=1%20eq%201)%20or%20(1%20eq%201",
            "005056A509B11EE1B9A8FEC11C21578E",
        ),
        ("$filter=NoSuchField%20eq%20'x'", "/IWBEP/CM_MGW_RT/001"),
        (
            "$filter=SoldToParty%20eq%2017100001",
            "/IWBEP/CM_MGW_RT/001",
        ),
        (
            "$filter=TotalNetAmount%20gt%20'abc'",
            "/IWBEP/CM_MGW_RT/001",
        ),
        ("$filter=SoldToParty", "/IWBEP/CM_MGW_RT/001"),
        ("$filter=exec('x')", "/IWBEP/CM_MGW_RT/001"),
        ("$filter=%ZZ", "/IWBEP/CM_MGW_RT/001"),
        ("$top=-1", "/IWBEP/CM_MGW_RT/001"),
        ("$top=abc", "/IWBEP/CM_MGW_RT/001"),
        ("$skip=1e3", "/IWBEP/CM_MGW_RT/001"),
        ("$orderby=SalesOrder%20sideways", "/IWBEP/CM_MGW_RT/001"),
        ("$orderby=NoSuchField", "/IWBEP/CM_MGW_RT/001"),
        ("$select=NoSuchField", "/IWBEP/CM_MGW_RT/001"),
        (
            "$select=to_Item/NoSuchField&$expand=to_Item",
            "/IWBEP/CM_MGW_RT/001",
        ),
        ("$expand=to_Nothing", "/IWBEP/CM_MGW_RT/001"),
        ("$inlinecount=some", "/IWBEP/CM_MGW_RT/001"),
        ("$unknown=1", "/IWBEP/CM_MGW_RT/001"),
        ("$top=1&$top=2", "/IWBEP/CM_MGW_RT/001"),
        ("$skiptoken=abc", "/IWBEP/CM_MGW_RT/001"),
    ];
    for (query, code) in cases {
        let r = e.get(&format!("/A_SalesOrder?{query}")).await;
        let err = assert_odata_error(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(err["error"]["code"], code, "{query}: {err}");
    }
    let deep = format!(
        "$filter={}SoldToParty%20eq%20'1'{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert_odata_error(
        e.get(&format!("/A_SalesOrder?{deep}")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e.count().await, 1);
}

#[tokio::test]
async fn unknown_resources_and_methods_get_odata_errors() {
    let e = TestEmulator::start().await;
    assert_odata_error(e.get("/A_Nothing").await, StatusCode::NOT_FOUND).await;
    assert_odata_error(
        e.get("/A_SalesOrder('1')/to_Nothing").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_odata_error(e.get("/A_SalesOrder('1'").await, StatusCode::BAD_REQUEST).await;
    let unknown_service = e
        .client
        .get(format!("{}/sap/opu/odata/sap/OTHER_SRV/X", e.base))
        .send()
        .await
        .unwrap();
    assert_odata_error(unknown_service, StatusCode::NOT_FOUND).await;
    let r = e
        .write(Method::DELETE, "/A_SalesOrder", None)
        .await
        .unwrap();
    assert_odata_error(r, StatusCode::METHOD_NOT_ALLOWED).await;
    let r = e
        .write(Method::PUT, "/A_SalesOrderItem", Some(b"{}".to_vec()))
        .await
        .unwrap();
    assert_odata_error(r, StatusCode::METHOD_NOT_ALLOWED).await;
    let r = e
        .write(Method::POST, "/A_SalesOrderItem", Some(b"{}".to_vec()))
        .await
        .unwrap();
    let err = assert_odata_error(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        err["error"]["code"], "V1/323",
        "an item needs its sales order"
    );
    assert_eq!(e.count().await, 0);
}

#[tokio::test]
async fn a_repeated_create_makes_a_second_order_because_sap_has_no_idempotency() {
    let e = TestEmulator::start().await;
    let body = order_body("SAME-PO", &[("TG11", "1")]);
    let first = e.create_ok(&body).await;
    let second = e.create_ok(&body).await;
    assert_ne!(first["SalesOrder"], second["SalesOrder"]);
    let v = e
        .get_json("/A_SalesOrder?$filter=PurchaseOrderByCustomer%20eq%20'SAME-PO'")
        .await;
    assert_eq!(results(&v).len(), 2);
}

#[tokio::test]
async fn master_data_from_a_file_extends_the_demo_catalogue_for_checks_and_pricing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master-data.json");
    std::fs::write(
        &file,
        r#"{"customers":[{"id":"17100099","name":"File Customer"}],
            "materials":[{"id":"TG99","description":"File Good","base_unit":"PC","iso_unit":"PCE","price":"9.99","currency":"EUR"},
                         {"id":"TG11","description":"Repriced","base_unit":"PC","iso_unit":"PCE","price":"1.00","currency":"EUR"}]}"#,
    )
    .unwrap();
    let e = TestEmulator::start_with(|c| c.master_data_file = Some(file.clone())).await;
    let mut body = order_body("MD", &[("TG99", "3"), ("TG11", "2"), ("TG12", "1")]);
    body["SoldToParty"] = json!("17100099");
    let created = e.create_ok(&body).await;
    let items = created["to_Item"]["results"].as_array().unwrap();
    assert_eq!(items[0]["NetAmount"], "29.97");
    assert_eq!(items[0]["SalesOrderItemText"], "File Good");
    assert_eq!(
        items[1]["NetAmount"], "2.00",
        "the file overrides the demo price"
    );
    assert_eq!(items[2]["NetAmount"], "18.00", "demo entries stay");
    assert_eq!(created["TotalNetAmount"], "49.97");
    let catalogue: Value = e
        .admin(Method::GET, "/sap-mock/admin/master-data", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(catalogue["customers"]["17100099"]["name"], "File Customer");
    assert!(catalogue["customers"]["17100001"].is_object());
}

#[tokio::test]
async fn items_are_added_changed_and_removed_with_repricing_and_the_order_etag_moves() {
    let e = TestEmulator::start().await;
    let created = e.create_ok(&order_body("ITEMS", &[("TG11", "2")])).await;
    let n = created["SalesOrder"].as_str().unwrap().to_owned();
    let etag0 = created["__metadata"]["etag"].as_str().unwrap().to_owned();
    let order = async || {
        e.get_json(&format!("/A_SalesOrder('{n}')?$expand=to_Item"))
            .await["d"]
            .clone()
    };
    let item_path = |i: &str| format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='{i}')");
    let body = |v: Value| Some(serde_json::to_vec(&v).unwrap());

    let added = e
        .write(
            Method::POST,
            &format!("/A_SalesOrder('{n}')/to_Item"),
            body(json!({"Material": "TG12", "RequestedQuantity": "1"})),
        )
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    assert!(
        added.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("SalesOrderItem='20')")
    );
    let item: Value = added.json().await.unwrap();
    assert_eq!(item["d"]["NetAmount"], "18.00");
    assert_eq!(order().await["TotalNetAmount"], "43.00");

    let changed = e
        .write(
            Method::PATCH,
            &item_path("10"),
            body(json!({"RequestedQuantity": "4"})),
        )
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let after = order().await;
    assert_eq!(after["TotalNetAmount"], "68.00");
    assert_eq!(after["to_Item"]["results"][0]["NetAmount"], "50.00");
    assert_eq!(
        after["to_Item"]["results"][0]["Material"], "TG11",
        "merge keeps what was not sent"
    );
    assert_ne!(after["__metadata"]["etag"], etag0.as_str());

    let (token, cookie) = e.csrf().await;
    let stale = e
        .request(Method::PATCH, &item_path("10"))
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .header("if-match", &etag0)
        .body(r#"{"RequestedQuantity":"9"}"#)
        .send()
        .await
        .unwrap();
    assert_odata_error(stale, StatusCode::PRECONDITION_FAILED).await;
    let zero = e
        .write(
            Method::PATCH,
            &item_path("10"),
            body(json!({"RequestedQuantity": "0"})),
        )
        .await
        .unwrap();
    let err = assert_odata_error(zero, StatusCode::BAD_REQUEST).await;
    assert_eq!(err["error"]["code"], "V1/084");
    let rekey = e
        .write(
            Method::PATCH,
            &item_path("10"),
            body(json!({"SalesOrderItem": "30"})),
        )
        .await
        .unwrap();
    assert_odata_error(rekey, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        order().await["TotalNetAmount"],
        "68.00",
        "refused changes change nothing"
    );

    let removed = e
        .write(Method::DELETE, &item_path("20"), None)
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let after = order().await;
    assert_eq!(after["TotalNetAmount"], "50.00");
    assert_eq!(after["to_Item"]["results"].as_array().unwrap().len(), 1);
    assert_odata_error(e.get(&item_path("20")).await, StatusCode::NOT_FOUND).await;
    let missing = e
        .write(Method::DELETE, &item_path("90"), None)
        .await
        .unwrap();
    assert_odata_error(missing, StatusCode::NOT_FOUND).await;

    let by_set = e
        .write(
            Method::POST,
            "/A_SalesOrderItem",
            body(json!({"SalesOrder": n, "Material": "TG10", "RequestedQuantity": "1"})),
        )
        .await
        .unwrap();
    assert_eq!(by_set.status(), StatusCode::CREATED);
    assert_eq!(order().await["TotalNetAmount"], "60.00");
    assert_eq!(e.count().await, 1);
}

#[tokio::test]
async fn put_replaces_the_header_resetting_what_was_not_sent_while_patch_merges() {
    let e = TestEmulator::start().await;
    let mut body = order_body("PUT", &[("TG11", "1")]);
    body["CustomerPurchaseOrderType"] = json!("EDI");
    body["SalesDistrict"] = json!("NORTH");
    let created = e.create_ok(&body).await;
    let n = created["SalesOrder"].as_str().unwrap().to_owned();
    let path = format!("/A_SalesOrder('{n}')");
    let send = async |method: Method, v: Value| {
        let (token, cookie) = e.csrf().await;
        e.request(method, &path)
            .header("x-csrf-token", token)
            .header("cookie", cookie)
            .header("content-type", "application/json")
            .header("if-match", "*")
            .body(serde_json::to_vec(&v).unwrap())
            .send()
            .await
            .unwrap()
    };
    assert_eq!(
        send(Method::PATCH, json!({"SalesDistrict": "SOUTH"}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let d = e.get_json(&path).await["d"].clone();
    assert_eq!(
        (
            d["SalesDistrict"].as_str(),
            d["CustomerPurchaseOrderType"].as_str()
        ),
        (Some("SOUTH"), Some("EDI"))
    );
    assert_eq!(
        send(
            Method::PUT,
            json!({"SoldToParty": "17100001", "SalesDistrict": "WEST"})
        )
        .await
        .status(),
        StatusCode::NO_CONTENT
    );
    let d = e.get_json(&path).await["d"].clone();
    assert_eq!(d["SalesDistrict"], "WEST");
    assert_eq!(
        d["CustomerPurchaseOrderType"], "",
        "not sent in PUT: back to initial"
    );
    assert_eq!(d["PurchaseOrderByCustomer"], "");
    assert_eq!(d["SoldToParty"], "17100001", "fixed fields stay");
    assert_eq!(d["TotalNetAmount"], "12.50", "computed fields stay");
}
