//! The read side of the SAP face served by the order service: every query option SAP's clients
//! send, answered in `retired` as the emulator answers the same request for the same orders
//! (compared field by field), and refusals in SAP's terms that store nothing.

use serde_json::{Value, json};

use crate::common::*;

/// Fields whose values legitimately differ between the emulator and the order-service face,
/// with the reason. Everything else must be equal.
const DIFFERS: &[(&str, &str)] = &[
    // S/4's ETag is its LastChangeDateTime; the face's is the order service's version
    // (If-Match carries it back to the order service).
    (
        "etag",
        "ETag source: SAP's timestamp vs the order service's version",
    ),
    // Timestamps are each system's own clock.
    ("LastChangeDateTime", "each system's own change time"),
    (
        "CreationDate",
        "SAP's creation date vs the order service's (same day but may cross midnight)",
    ),
    // What SAP derives at create and the order service does not hold (order-acl renders S/4's
    // empty value for it).
    ("CreatedByUser", "SAP's logon user"),
    ("SalesOrderDate", "SAP defaults it to the creation date"),
    ("PricingDate", "SAP defaults it to the creation date"),
    (
        "RequestedDeliveryDate",
        "SAP defaults it to the creation date",
    ),
    ("LastChangeDate", "SAP's own change date"),
    ("TotalCreditCheckStatus", "SAP's credit check"),
    ("TotalBlockStatus", "SAP's block status"),
    ("OverallSDDocReferenceStatus", "SAP's reference status"),
    ("ShippingCondition", "SAP derives it from the customer"),
    ("CustomerPaymentTerms", "SAP derives it from the customer"),
    (
        "IncotermsClassification",
        "SAP derives it from the customer",
    ),
    ("IncotermsLocation1", "SAP derives it from the customer"),
    ("PaymentMethod", "SAP derives it from the customer"),
    ("CustomerGroup", "SAP derives it from the customer"),
    ("SalesDistrict", "SAP derives it from the customer"),
    ("PriceListType", "SAP derives it from the customer"),
    ("CustomerPriceGroup", "SAP derives it from the customer"),
    (
        "CustomerTaxClassification1",
        "SAP derives it from the customer",
    ),
    (
        "SalesOrderItemCategory",
        "SAP's item category determination",
    ),
    ("SalesOrderItemText", "SAP takes the material's text"),
    ("MaterialGroup", "SAP takes the material's group"),
    ("ProductionPlant", "SAP's plant determination"),
    ("ShippingPoint", "SAP's shipping point determination"),
    ("ItemGrossWeight", "SAP takes the material's weight"),
    ("ItemNetWeight", "SAP takes the material's weight"),
    ("ItemWeightUnit", "SAP takes the material's weight"),
    ("ConfdDelivQtyInOrderQtyUnit", "SAP's availability check"),
    ("RequestedQuantityISOUnit", "SAP's ISO unit of the unit"),
    ("OrderQuantityUnit", "SAP's unit conversion"),
    ("OrderQuantitySAPUnit", "SAP's unit conversion"),
    ("OrderQuantityISOUnit", "SAP's unit conversion"),
    ("ItemBillingBlockReason", "SAP's billing block"),
    ("DeliveryStatus", "SAP's delivery status of the line"),
    (
        "OrderRelatedBillingStatus",
        "SAP's billing status of the line",
    ),
    (
        "TotalSDDocReferenceStatus",
        "SAP's reference status of the line",
    ),
    ("SDDocReferenceStatus", "SAP's reference status of the line"),
    ("ItemGeneralIncompletionStatus", "SAP's incompletion log"),
    ("ItemBillingIncompletionStatus", "SAP's incompletion log"),
    ("PricingIncompletionStatus", "SAP's incompletion log"),
    ("ItemDeliveryIncompletionStatus", "SAP's incompletion log"),
    (
        "PurchaseOrderByCustomer",
        "SAP copies the header's reference to each line",
    ),
    (
        "TransactionCurrency",
        "SAP copies the header's currency to each line",
    ),
    ("Subtotal1Amount", "SAP's pricing subtotals"),
    ("Subtotal2Amount", "SAP's pricing subtotals"),
    ("Subtotal3Amount", "SAP's pricing subtotals"),
    ("Subtotal4Amount", "SAP's pricing subtotals"),
    ("Subtotal5Amount", "SAP's pricing subtotals"),
    ("Subtotal6Amount", "SAP's pricing subtotals"),
    ("NetPriceAmount", "SAP's pricing"),
    ("NetPriceQuantity", "SAP's pricing"),
    ("NetPriceQuantityUnit", "SAP's pricing"),
    ("TaxAmount", "SAP's tax"),
    ("CostAmount", "SAP's cost"),
    (
        "CustomerPurchaseOrderDate",
        "the face renders the date as the client sent it",
    ),
    ("ItemWeightISOUnit", "SAP takes the material's weight unit"),
    ("ItemWeightSAPUnit", "SAP takes the material's weight unit"),
    ("RequestedQuantitySAPUnit", "SAP's unit conversion"),
];

/// Walks both answers and lists `path: sap vs face` for every difference, with the URIs'
/// authority (the emulator's and the proxy's host) taken out and `innererror` (transaction id,
/// timestamp) left out.
fn diff(path: &str, sap: &Value, face: &Value, hosts: &(String, String), out: &mut Vec<String>) {
    match (sap, face) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                if k == "innererror" {
                    continue;
                }
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => diff(&p, va, vb, hosts, out),
                    None => out.push(format!("{p}: missing at the face")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: only at the face"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path}: {} vs {} entries", a.len(), b.len()));
            }
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), va, vb, hosts, out);
            }
        }
        (Value::String(a), Value::String(b))
            if a.replace(&hosts.0, "HOST") != b.replace(&hosts.1, "HOST") =>
        {
            out.push(format!("{path}: {a:?} vs {b:?}"));
        }
        (Value::String(_), Value::String(_)) => {}
        (a, b) if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// Whether a difference is one of [`DIFFERS`] (`item:` entries only on lines: inside `to_Item`
/// or in a read of lines).
fn legitimate(request: &str, line: &str) -> bool {
    let on_line = line.contains("to_Item")
        || request.contains("to_Item")
        || request.contains("A_SalesOrderItem");
    let field = line
        .split(':')
        .next()
        .unwrap_or("")
        .rsplit('.')
        .next()
        .unwrap_or("");
    DIFFERS.iter().any(|(f, _)| match f.strip_prefix("item:") {
        Some(f) => on_line && f == field,
        None => *f == field,
    })
}

async fn get_text(s: &Stack, url: &str) -> (u16, String, String) {
    let r = s.get(url.to_owned()).await;
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (r.status, ct, String::from_utf8_lossy(&r.body).into_owned())
}

/// Sends `path` (below the service root) to the emulator and to the proxy, and compares; a
/// difference beyond [`DIFFERS`] is added to `failures`.
async fn conform(s: &Stack, path: &str, failures: &mut Vec<String>) -> Value {
    let hosts = (
        format!("127.0.0.1:{}", s.sap_port),
        format!("127.0.0.1:{}", s.proxy_port),
    );
    let (sap_status, sap_ct, sap_body) = get_text(s, &format!("{}{ROOT}{path}", s.sap_url())).await;
    let (face_status, face_ct, face_body) =
        get_text(s, &format!("{}{ROOT}{path}", s.proxy_url())).await;
    if sap_status != face_status {
        failures.push(format!(
            "{path}: status {sap_status} vs {face_status}\n SAP:  {sap_body}\n face: {face_body}"
        ));
        return Value::Null;
    }
    if sap_ct.starts_with("text/plain") {
        if sap_body != face_body {
            failures.push(format!("{path}: $count {sap_body} vs {face_body}"));
        }
        return Value::Null;
    }
    let (a, b): (Value, Value) = (
        serde_json::from_str(&sap_body).unwrap_or(Value::Null),
        serde_json::from_str(&face_body).unwrap_or(Value::Null),
    );
    assert!(
        a.is_object() && b.is_object(),
        "{path}: {sap_body} / {face_body}"
    );
    let _ = face_ct;
    let mut out = Vec::new();
    diff("", &a, &b, &hosts, &mut out);
    let wrong: Vec<&String> = out.iter().filter(|l| !legitimate(path, l)).collect();
    if !wrong.is_empty() {
        failures.push(format!(
            "{path}: fields differ beyond the listed ones:\n{}",
            wrong
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    b
}

#[tokio::test]
async fn the_face_in_retired_answers_every_query_option_as_the_emulator_does() {
    let page = vec![("SAP_MOCK_PAGE_SIZE", "2".to_owned())];
    let s = Stack::start(Options {
        mode: "dual-write",
        sap_env: page,
        proxy_env: vec![("PROXY_ODATA_PAGE_SIZE", "2".to_owned())],
        sap_face_user: true,
        ..Options::default()
    })
    .await;
    let tag = unique("CF");
    let mut numbers = Vec::new();
    for (i, quantity) in ["2", "5", "1"].into_iter().enumerate() {
        let mut body = order_body(&format!("{tag}-{i}"));
        body["to_Item"][0]["RequestedQuantity"] = json!(quantity);
        let r = s.sdk_create(&s.proxy_url(), &body, &[]).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        numbers.push(r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned());
    }
    s.wait_replays_drained().await;
    let r = s.set_mode("events", true).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s.set_mode("retired", true).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let n = &numbers[0];
    let mine = format!("startswith(PurchaseOrderByCustomer,'{tag}')");
    let paths = [
        // key reads, both predicate forms, with and without items
        format!("/A_SalesOrder('{n}')"),
        format!("/A_SalesOrder(SalesOrder='{n}')?$select=*,to_Item/*&$expand=to_Item"),
        format!("/A_SalesOrder(SalesOrder=%27{n}%27)?$select=SalesOrder,SoldToParty"),
        // the SDK's filtered lists
        format!("/A_SalesOrder?$filter=(PurchaseOrderByCustomer%20eq%20'{tag}-1')"),
        format!(
            "/A_SalesOrder?$select=SalesOrder,PurchaseOrderByCustomer,to_Item/SalesOrderItem,to_Item/Material,to_Item/RequestedQuantity&$expand=to_Item&$filter=(PurchaseOrderByCustomer%20eq%20'{tag}-1')&$top=5"
        ),
        // order, window, count, paging
        format!(
            "/A_SalesOrder?$filter={mine}&$orderby=SalesOrder%20desc&$top=2&$skip=1&$inlinecount=allpages&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}&$orderby=PurchaseOrderByCustomer%20desc&$select=SalesOrder,PurchaseOrderByCustomer"
        ),
        format!("/A_SalesOrder?$filter={mine}&$select=SalesOrder&$skiptoken=2"),
        format!("/A_SalesOrder/$count?$filter={mine}"),
        // operators and literal forms
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20SoldToParty%20ne%20'X''Y'&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20not%20(PurchaseOrderByCustomer%20eq%20'{tag}-0'%20or%20PurchaseOrderByCustomer%20eq%20'{tag}-2')&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20substringof('-1',PurchaseOrderByCustomer)&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20endswith(PurchaseOrderByCustomer,'-2')&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20CreationDate%20ge%20datetime'2020-01-31T00%3A00%3A00.000'&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20LastChangeDateTime%20gt%20datetimeoffset'2020-01-31T00%3A00%3A00Z'&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20SalesOrder%20ge%20'{n}'%20and%20SalesOrder%20le%20'{n}'&$select=SalesOrder"
        ),
        format!(
            "/A_SalesOrder?$filter={mine}%20and%20OverallSDProcessStatus%20eq%20'A'&$select=SalesOrder,OverallSDProcessStatus"
        ),
        format!("/A_SalesOrder?$filter={mine}%20and%20TotalNetAmount%20ge%200M&$select=SalesOrder"),
        // lines
        format!("/A_SalesOrder('{n}')/to_Item"),
        format!("/A_SalesOrder('{n}')/to_Item/$count"),
        format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='10')"),
        format!(
            "/A_SalesOrderItem?$filter=SalesOrder%20eq%20'{n}'&$select=SalesOrder,SalesOrderItem,Material,RequestedQuantity"
        ),
        format!(
            "/A_SalesOrderItem?$filter=SalesOrder%20eq%20'{n}'%20and%20Material%20eq%20'TG12'&$select=SalesOrderItem,Material"
        ),
        // refusals, in SAP's terms
        "/A_SalesOrder?$filter=Nope%20eq%20'1'".to_owned(),
        "/A_SalesOrder?$filter=SoldToParty%20eq".to_owned(),
        "/A_SalesOrder?$filter=SoldToParty%20eq%201M".to_owned(),
        "/A_SalesOrder?$top=abc".to_owned(),
        "/A_SalesOrder?$orderby=Nope".to_owned(),
        "/A_SalesOrder?$select=to_Item/Nope&$expand=to_Item".to_owned(),
        "/A_SalesOrder('0000000000')".to_owned(),
        format!("/A_SalesOrderItem(SalesOrder='{n}',SalesOrderItem='990')"),
    ];
    let mut failures = Vec::new();
    for p in &paths {
        conform(&s, p, &mut failures).await;
    }
    // paging: the first page names the next one, as S/4 does
    let first = conform(
        &s,
        &format!("/A_SalesOrder?$filter={mine}&$select=SalesOrder"),
        &mut failures,
    )
    .await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let next = first["d"]["__next"].as_str().expect("a __next link");
    assert!(next.contains("$skiptoken=2"), "{next}");
    assert_eq!(first["d"]["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn in_retired_a_refused_or_untranslatable_read_answers_in_sap_terms_and_stores_nothing() {
    let s = Stack::start(Options {
        mode: "retired",
        sap_face_user: true,
        ..Options::default()
    })
    .await;
    s.import_master_data_from_sap();
    let tag = unique("RT");
    let r = s
        .sdk_create(&s.proxy_url(), &order_body(&format!("{tag}-0")), &[])
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let n = r.json()["d"]["SalesOrder"].as_str().unwrap().to_owned();
    let s = &s;
    let rows = || async {
        sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items), (SELECT count(*) FROM outbox)",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap()
    };
    let before = rows().await;
    let get = |path: String| {
        let url = format!("{}{ROOT}{path}", s.proxy_url());
        async move { s.get(url).await }
    };
    // a list the face can answer
    let r = get(format!(
        "/A_SalesOrder?$filter=(PurchaseOrderByCustomer%20eq%20'{tag}-0')&$inlinecount=allpages&$select=SalesOrder,SoldToParty"
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["d"]["__count"], "1");
    assert_eq!(r.json()["d"]["results"][0]["SalesOrder"], n.as_str());
    assert!(
        r.json()["d"]["results"][0]
            .get("PurchaseOrderByCustomer")
            .is_none()
    );
    let r = get("/A_SalesOrder/$count?$filter=SoldToParty%20eq%20'17100001'".to_owned()).await;
    assert_eq!(String::from_utf8_lossy(&r.body), "1");
    // refusals name SAP's property, never the REST field
    for (path, status, code, needle) in [
        (
            "/A_SalesOrder?$filter=customer_id%20eq%20'1'",
            400,
            "/IWBEP/CM_MGW_RT/001",
            "customer_id",
        ),
        (
            "/A_SalesOrder?$filter=SalesGroup%20eq%20'1'",
            501,
            "/IWBEP/CM_MGW_RT/004",
            "SalesGroup",
        ),
        (
            "/A_SalesOrder?$orderby=SalesGroup",
            501,
            "/IWBEP/CM_MGW_RT/004",
            "SalesGroup",
        ),
        (
            "/A_SalesOrder?$filter=(SoldToParty%20eq%20'1'",
            400,
            "005056A509B11EE1B9A8FEC11C21578E",
            "position",
        ),
        (
            "/A_SalesOrderItem?$filter=Material%20eq%20'TG11'",
            501,
            "/IWBEP/CM_MGW_RT/004",
            "SalesOrder",
        ),
    ] {
        let r = get(path.to_owned()).await;
        assert_eq!(r.status, status, "{path}: {:?}", r.body);
        let e = r.json();
        assert_eq!(e["error"]["code"], code, "{path}: {e}");
        let text = e["error"]["message"]["value"].as_str().unwrap_or("");
        assert!(text.contains(needle), "{path}: {text}");
        for rest in ["customer_reference", "sales_order_number", "created_date"] {
            assert!(!text.contains(rest), "{path}: {text}");
        }
    }
    assert_eq!(rows().await, before, "a read stored something");
}
