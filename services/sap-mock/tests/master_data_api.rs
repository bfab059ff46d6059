//! The master data APIs (`API_PRODUCT_SRV`, `API_BUSINESS_PARTNER`,
//! `API_SLSPRICINGCONDITIONRECORD_SRV`) over real HTTP: what each set lists, paging, `$filter`,
//! `$expand`, logon, and the refusals of a read-only service.

mod common;

use common::{TestEmulator, assert_odata_error};
use reqwest::{Method, StatusCode};
use sap_mock::config::User;
use serde_json::Value;

const PRODUCT: &str = "/sap/opu/odata/sap/API_PRODUCT_SRV";
const PARTNER: &str = "/sap/opu/odata/sap/API_BUSINESS_PARTNER";
const PRICING: &str = "/sap/opu/odata/sap/API_SLSPRICINGCONDITIONRECORD_SRV";

fn request(e: &TestEmulator, method: Method, path: &str) -> reqwest::RequestBuilder {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{}{path}", e.base)
    };
    let mut r = e
        .client
        .request(method, url)
        .header("accept", "application/json");
    if let Some((u, p)) = &e.auth {
        r = r.basic_auth(u, Some(p));
    }
    r
}

async fn get(e: &TestEmulator, path: &str) -> Value {
    let r = request(e, Method::GET, path).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn results(v: &Value) -> &Vec<Value> {
    v["d"]["results"].as_array().expect("a collection")
}

fn strings<'a>(v: &'a Value, property: &str) -> Vec<&'a str> {
    results(v)
        .iter()
        .map(|r| r[property].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_set_lists_the_emulators_master_data_under_sap_names_and_types() {
    let e = TestEmulator::start().await;
    let md = e.state.master.clone();

    let products = get(&e, &format!("{PRODUCT}/A_Product")).await;
    assert_eq!(
        strings(&products, "Product"),
        md.materials.keys().map(String::as_str).collect::<Vec<_>>()
    );
    let tg11 = &results(&products)[1];
    assert_eq!(tg11["Product"], "TG11");
    assert_eq!(tg11["BaseUnit"], "PC");
    assert_eq!(tg11["ProductType"], "HAWA");
    assert_eq!(tg11["GrossWeight"], "1.000");
    assert_eq!(tg11["__metadata"]["type"], "API_PRODUCT_SRV.A_ProductType");
    assert!(
        tg11["__metadata"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/sap/opu/odata/sap/API_PRODUCT_SRV/A_Product('TG11')"),
        "{tg11}"
    );
    assert!(tg11["to_Description"]["__deferred"]["uri"].is_string());

    let texts = get(&e, &format!("{PRODUCT}/A_ProductDescription")).await;
    assert_eq!(results(&texts).len(), md.materials.len());
    assert_eq!(results(&texts)[1]["Language"], "EN");
    assert_eq!(
        results(&texts)[1]["ProductDescription"],
        "Trading Good 11, PD, Reorder Point"
    );

    let customers = get(&e, &format!("{PARTNER}/A_Customer")).await;
    assert_eq!(results(&customers).len(), md.customers.len());
    assert_eq!(results(&customers)[0]["Customer"], "17100001");
    assert_eq!(
        results(&customers)[0]["CustomerName"],
        "Domestic Customer DE 1"
    );
    assert_eq!(
        results(&customers)[0]["__metadata"]["type"],
        "API_BUSINESS_PARTNER.A_CustomerType"
    );

    let areas = get(&e, &format!("{PARTNER}/A_CustomerSalesArea")).await;
    assert_eq!(
        results(&areas).len(),
        md.customers.len() * md.sales_areas.len(),
        "every customer in every sales area"
    );
    let first = &results(&areas)[0];
    for (p, v) in [
        ("Customer", "17100001"),
        ("SalesOrganization", "1010"),
        ("DistributionChannel", "10"),
        ("Division", "00"),
        ("Currency", "EUR"),
        ("CustomerPaymentTerms", "0004"),
    ] {
        assert_eq!(first[p], v, "{p}: {first}");
    }
    assert!(
        first["__metadata"]["uri"].as_str().unwrap().ends_with(
            "A_CustomerSalesArea(Customer='17100001',SalesOrganization='1010',DistributionChannel='10',Division='00')"
        ),
        "{first}"
    );

    let records = get(&e, &format!("{PRICING}/A_SlsPrcgConditionRecord")).await;
    assert_eq!(results(&records).len(), md.materials.len());
    let r = &results(&records)[1];
    for (p, v) in [
        ("ConditionType", "PPR0"),
        ("ConditionRateValue", "12.500"),
        ("ConditionRateValueUnit", "EUR"),
        ("ConditionQuantity", "1"),
        ("ConditionQuantityUnit", "PC"),
        ("ConditionValidityStartDate", "/Date(1577836800000)/"),
        ("ConditionValidityEndDate", "/Date(253402214400000)/"),
    ] {
        assert_eq!(r[p], v, "{p}: {r}");
    }
    assert_eq!(r["ConditionIsDeleted"], false);
    assert_eq!(
        r["__metadata"]["type"],
        "API_SLSPRICINGCONDITIONRECORD_SRV.A_SlsPrcgConditionRecordType"
    );

    let validities = get(&e, &format!("{PRICING}/A_SlsPrcgCndnRecdValidity")).await;
    assert_eq!(
        strings(&validities, "Material"),
        md.materials.keys().map(String::as_str).collect::<Vec<_>>()
    );
    e.stop().await;
}

#[tokio::test]
async fn paging_with_top_1_goes_on_by_skip_and_a_cut_page_by_next() {
    let e = TestEmulator::start().await;
    let one = get(
        &e,
        &format!("{PRODUCT}/A_Product?$top=1&$inlinecount=allpages"),
    )
    .await;
    assert_eq!(strings(&one, "Product"), ["TG10"]);
    assert_eq!(one["d"]["__count"], "6");
    assert!(
        one["d"]["__next"].is_null(),
        "$top asked for one: no __next"
    );
    let second = get(&e, &format!("{PRODUCT}/A_Product?$top=1&$skip=1")).await;
    assert_eq!(strings(&second, "Product"), ["TG11"]);
    let ordered = get(
        &e,
        &format!("{PARTNER}/A_Customer?$orderby=Customer%20desc&$top=1&$select=Customer"),
    )
    .await;
    assert_eq!(strings(&ordered, "Customer"), ["17100010"]);
    e.stop().await;

    // A server page of one: every answer carries __next until the set is read.
    let e = TestEmulator::start_with(|c| c.page_size = 1).await;
    let mut next = Some(format!(
        "{PRICING}/A_SlsPrcgConditionRecord?$filter=ConditionType%20eq%20'PPR0'&$expand=to_SlsPrcgCndnRecdValidity"
    ));
    let mut materials = Vec::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        let page = get(&e, &url).await;
        assert_eq!(results(&page).len(), 1, "{page}");
        materials.push(
            results(&page)[0]["to_SlsPrcgCndnRecdValidity"]["results"][0]["Material"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        next = page["d"]["__next"].as_str().map(str::to_owned);
        if let Some(n) = &next {
            assert!(n.contains("/API_SLSPRICINGCONDITIONRECORD_SRV/A_SlsPrcgConditionRecord?"));
            assert!(n.contains("$skiptoken="), "{n}");
        }
        pages += 1;
        assert!(pages <= 6, "paging does not end");
    }
    assert_eq!(materials, ["TG10", "TG11", "TG12", "TG13", "TG14", "TG15"]);
    e.stop().await;
}

#[tokio::test]
async fn filter_on_the_condition_type_and_other_properties_selects_the_records() {
    let e = TestEmulator::start().await;
    let ppr0 = get(
        &e,
        &format!("{PRICING}/A_SlsPrcgConditionRecord?$filter=ConditionType%20eq%20'PPR0'"),
    )
    .await;
    assert_eq!(results(&ppr0).len(), 6);
    let pr00 = get(
        &e,
        &format!("{PRICING}/A_SlsPrcgConditionRecord?$filter=ConditionType%20eq%20'PR00'"),
    )
    .await;
    assert!(results(&pr00).is_empty());
    let cheap = get(
        &e,
        &format!(
            "{PRICING}/A_SlsPrcgConditionRecord?$filter=ConditionRateValue%20lt%2020M%20and%20ConditionIsDeleted%20eq%20false"
        ),
    )
    .await;
    assert_eq!(results(&cheap).len(), 3, "TG10, TG11, TG12");
    let valid = get(
        &e,
        &format!(
            "{PRICING}/A_SlsPrcgCndnRecdValidity?$filter=Material%20eq%20'TG13'%20and%20ConditionValidityStartDate%20le%20datetime'2026-06-01T00:00:00'"
        ),
    )
    .await;
    assert_eq!(strings(&valid, "Material"), ["TG13"]);
    let r = request(
        &e,
        Method::GET,
        &format!("{PRICING}/A_SlsPrcgCndnRecdValidity/$count?$filter=Customer%20eq%20''"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.text().await.unwrap(), "6");
    e.stop().await;
}

#[tokio::test]
async fn expand_writes_descriptions_and_validities_inline_with_nested_selections() {
    let e = TestEmulator::start().await;
    let products = get(
        &e,
        &format!(
            "{PRODUCT}/A_Product?$select=Product,BaseUnit,to_Description/Language,to_Description/ProductDescription&$expand=to_Description&$orderby=Product"
        ),
    )
    .await;
    let tg11 = &results(&products)[1];
    // only the selected properties (serde_json sorts the keys)
    let keys: Vec<&String> = tg11.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["BaseUnit", "Product", "__metadata", "to_Description"],
        "{tg11}"
    );
    let text = &tg11["to_Description"]["results"][0];
    assert_eq!(text["Language"], "EN");
    assert_eq!(
        text["ProductDescription"],
        "Trading Good 11, PD, Reorder Point"
    );
    assert!(text.get("Product").is_none(), "not selected: {text}");
    assert_eq!(
        text["__metadata"]["type"],
        "API_PRODUCT_SRV.A_ProductDescriptionType"
    );

    let records = get(
        &e,
        &format!("{PRICING}/A_SlsPrcgConditionRecord?$expand=to_SlsPrcgCndnRecdValidity"),
    )
    .await;
    let v = &results(&records)[1]["to_SlsPrcgCndnRecdValidity"]["results"][0];
    for (p, value) in [
        ("Material", "TG11"),
        ("SalesOrganization", "1010"),
        ("DistributionChannel", "10"),
        ("Customer", ""),
        ("ConditionType", "PPR0"),
        ("ConditionValidityStartDate", "/Date(1577836800000)/"),
        ("ConditionValidityEndDate", "/Date(253402214400000)/"),
    ] {
        assert_eq!(v[p], value, "{p}: {v}");
    }
    assert!(
        v["__metadata"]["uri"].as_str().unwrap().ends_with(
            "A_SlsPrcgCndnRecdValidity(ConditionRecord='0000000002',ConditionValidityEndDate=datetime'9999-12-31T00%3A00%3A00')"
        ),
        "{v}"
    );

    // An entity by key and its navigation, as SAP's clients also address them.
    let one = get(
        &e,
        &format!("{PARTNER}/A_Customer('17100002')?$expand=to_CustomerSalesArea"),
    )
    .await;
    assert_eq!(one["d"]["Customer"], "17100002");
    assert_eq!(
        one["d"]["to_CustomerSalesArea"]["results"][0]["Currency"],
        "EUR"
    );
    let texts = get(&e, &format!("{PRODUCT}/A_Product('TG12')/to_Description")).await;
    assert_eq!(strings(&texts, "Product"), ["TG12"]);
    e.stop().await;
}

#[tokio::test]
async fn with_users_configured_the_master_data_needs_a_logon_and_the_right_client() {
    let e = TestEmulator::start_with(|c| {
        c.users = vec![User {
            name: "alice".into(),
            password: "s3cret".into(),
        }]
    })
    .await;
    for root in [PRODUCT, PARTNER, PRICING] {
        let url = format!("{}{root}/", e.base);
        let anonymous = e.client.get(&url).send().await.unwrap();
        assert!(
            anonymous.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=")
        );
        assert_odata_error(anonymous, StatusCode::UNAUTHORIZED).await;
        let wrong = e
            .client
            .get(&url)
            .basic_auth("alice", Some("nope"))
            .send()
            .await
            .unwrap();
        assert_odata_error(wrong, StatusCode::UNAUTHORIZED).await;
    }
    let other_client = request(
        &e,
        Method::GET,
        &format!("{PARTNER}/A_Customer?sap-client=999"),
    )
    .send()
    .await
    .unwrap();
    assert_odata_error(other_client, StatusCode::UNAUTHORIZED).await;
    let ok = get(
        &e,
        &format!("{PARTNER}/A_CustomerSalesArea?sap-client=100&$top=1"),
    )
    .await;
    assert_eq!(results(&ok).len(), 1);
    e.stop().await;
}

#[tokio::test]
async fn the_services_are_read_only_and_refuse_unknown_names_with_odata_errors() {
    let e = TestEmulator::start().await;
    let doc = get(&e, &format!("{PRICING}/")).await;
    assert_eq!(
        doc["d"]["EntitySets"],
        serde_json::json!(["A_SlsPrcgConditionRecord", "A_SlsPrcgCndnRecdValidity"])
    );
    for (root, ty) in [
        (PRODUCT, "A_ProductType"),
        (PARTNER, "A_CustomerSalesAreaType"),
        (PRICING, "A_SlsPrcgCndnRecdValidityType"),
    ] {
        let r = request(&e, Method::GET, &format!("{root}/$metadata"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let xml = r.text().await.unwrap();
        assert!(
            xml.contains(&format!(r#"<EntityType Name="{ty}""#)),
            "{xml}"
        );
    }

    // A write, even with a valid CSRF token, is not allowed.
    let (token, cookie) = e.csrf().await;
    let post = request(&e, Method::POST, &format!("{PRODUCT}/A_Product"))
        .header("x-csrf-token", token)
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body(r#"{"Product":"NEW"}"#)
        .send()
        .await
        .unwrap();
    assert_odata_error(post, StatusCode::METHOD_NOT_ALLOWED).await;
    let patch = request(&e, Method::PATCH, &format!("{PRODUCT}/A_Product('TG11')"))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let head = request(&e, Method::HEAD, &format!("{PRODUCT}/A_Product"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);

    for (path, status) in [
        (format!("{PRODUCT}/A_Nope"), StatusCode::NOT_FOUND),
        (format!("{PRODUCT}/A_Customer"), StatusCode::NOT_FOUND),
        (
            format!("{PRODUCT}/A_Product('NOPE')"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("{PRODUCT}/A_Product?$select=BaseISOUnit"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{PRODUCT}/A_Product?$select=to_Description/Nope&$expand=to_Description"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{PRODUCT}/A_Product?$expand=to_Plant"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{PARTNER}/A_Customer?$orderby=Nope"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{PRICING}/A_SlsPrcgConditionRecord?$filter=Nope%20eq%20'PPR0'"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{PRICING}/A_SlsPrcgConditionRecord?$filter=ConditionType%20eq"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = request(&e, Method::GET, &path).send().await.unwrap();
        let v = assert_odata_error(r, status).await;
        assert!(v["error"]["message"]["value"].is_string(), "{path}: {v}");
    }
    e.stop().await;
}

#[tokio::test]
async fn the_fault_knobs_apply_to_the_master_data_services_too() {
    let e = TestEmulator::start().await;
    e.set_faults(serde_json::json!({"error_rate": 1.0, "error_status": "503"}))
        .await;
    let r = request(&e, Method::GET, &format!("{PRODUCT}/A_Product"))
        .send()
        .await
        .unwrap();
    assert_odata_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    e.stop().await;
}
