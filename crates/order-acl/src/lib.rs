//! The anti-corruption layer between SAP's OData deep insert and the order service's model.
//!
//! Nothing is lost in either direction. Fields with a modern home go there
//! (`SoldToParty` → `customer_id`, `PurchaseOrderByCustomer` → `customer_reference`,
//! `TransactionCurrency` → `currency`, the sales area and order type, `RequestedDeliveryDate` →
//! `requested_delivery_date`; per item `Material` → `sku`, `RequestedQuantity` → `quantity`,
//! `RequestedQuantityUnit` → `unit`). Every other property, navigation properties included, is
//! kept under its SAP name in `specifications` (header or item), with its SAP wire value, so the
//! reverse direction can rebuild it exactly.

use chrono::{NaiveDate, Utc};
use sap_odata::date::JsonDate;
use serde_json::{Map, Value, json};

/// Why a deep insert could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The body is not a JSON object.
    #[error("the request body is not a JSON object")]
    NotAnObject,
    /// A property has a type the order service cannot hold.
    #[error("property {0} has an unexpected type")]
    BadType(&'static str),
}

/// Options of the translation.
#[derive(Debug, Clone)]
pub struct TranslateOptions {
    /// Currency used when the request names none (SAP takes it from the customer master).
    pub default_currency: String,
}

const HEADER_MAP: &[(&str, &str)] = &[
    ("SoldToParty", "customer_id"),
    ("PurchaseOrderByCustomer", "customer_reference"),
    ("TransactionCurrency", "currency"),
    ("SalesOrganization", "sales_organization"),
    ("DistributionChannel", "distribution_channel"),
    ("OrganizationDivision", "division"),
    ("SalesOrderType", "order_type"),
];

const ITEM_MAP: &[(&str, &str)] = &[
    ("Material", "sku"),
    ("RequestedQuantity", "quantity"),
    ("RequestedQuantityUnit", "unit"),
];

/// Translates an `A_SalesOrder` deep insert into an order-service create body.
pub fn deep_insert_to_order(
    body: &Value,
    opts: &TranslateOptions,
) -> Result<Value, TranslateError> {
    let obj = body.as_object().ok_or(TranslateError::NotAnObject)?;
    let mut out = Map::new();
    let mut specs = Map::new();
    let mut items = Vec::new();
    for (k, v) in obj {
        if let Some((_, modern)) = HEADER_MAP.iter().find(|(sap, _)| sap == k) {
            match v {
                Value::String(s) => {
                    out.insert((*modern).to_owned(), Value::String(s.clone()));
                }
                Value::Null => {}
                _ => return Err(TranslateError::BadType(leak_name(k))),
            }
            continue;
        }
        match k.as_str() {
            "__metadata" => {}
            "RequestedDeliveryDate" => match v.as_str().and_then(parse_odata_date) {
                Some(d) => {
                    out.insert(
                        "requested_delivery_date".into(),
                        Value::String(d.format("%Y-%m-%d").to_string()),
                    );
                }
                None if v.is_null() => {}
                None => {
                    specs.insert(k.clone(), v.clone());
                }
            },
            "to_Item" => {
                let list = match v {
                    Value::Array(a) => a.as_slice(),
                    Value::Object(o) => match o.get("results") {
                        Some(Value::Array(a)) => a.as_slice(),
                        _ => return Err(TranslateError::BadType("to_Item")),
                    },
                    Value::Null => &[],
                    _ => return Err(TranslateError::BadType("to_Item")),
                };
                for item in list {
                    items.push(item_to_order(item)?);
                }
            }
            _ => {
                specs.insert(k.clone(), v.clone());
            }
        }
    }
    // An empty default leaves the currency to the order service, which derives it from the
    // customer's master data as SAP does.
    if !opts.default_currency.is_empty() {
        out.entry("currency")
            .or_insert_with(|| Value::String(opts.default_currency.clone()));
    }
    out.insert("items".into(), Value::Array(items));
    if !specs.is_empty() {
        out.insert("specifications".into(), Value::Object(specs));
    }
    Ok(Value::Object(out))
}

fn item_to_order(item: &Value) -> Result<Value, TranslateError> {
    let obj = item.as_object().ok_or(TranslateError::BadType("to_Item"))?;
    let mut out = Map::new();
    let mut specs = Map::new();
    for (k, v) in obj {
        if let Some((_, modern)) = ITEM_MAP.iter().find(|(sap, _)| sap == k) {
            match v {
                Value::String(s) => {
                    out.insert((*modern).to_owned(), Value::String(s.clone()));
                }
                // Clients may send decimals as numbers; the order service wants strings.
                Value::Number(n) => {
                    out.insert((*modern).to_owned(), Value::String(n.to_string()));
                }
                Value::Null => {}
                _ => return Err(TranslateError::BadType(leak_name(k))),
            }
        } else if k != "__metadata" {
            specs.insert(k.clone(), v.clone());
        }
    }
    if !specs.is_empty() {
        out.insert("specifications".into(), Value::Object(specs));
    }
    Ok(Value::Object(out))
}

fn leak_name(k: &str) -> &'static str {
    HEADER_MAP
        .iter()
        .chain(ITEM_MAP)
        .map(|(s, _)| *s)
        .find(|s| *s == k)
        .unwrap_or("property")
}

/// What SAP derived for an order it holds, in the order service's terms (its `pricing` on a
/// link): currency, total, and per item its unit, unit price and net amount. `entity` is an
/// `A_SalesOrder` as SAP answers it (the object inside `d`), items expanded. `None` when the
/// entity lacks what is needed (no items, no amounts).
pub fn sap_pricing(entity: &Value) -> Option<Value> {
    let currency = entity.get("TransactionCurrency")?.as_str()?;
    let total = entity.get("TotalNetAmount")?.as_str()?;
    let items = match entity.get("to_Item")? {
        Value::Array(a) => a,
        Value::Object(o) => o.get("results")?.as_array()?,
        _ => return None,
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let number: u32 = item.get("SalesOrderItem")?.as_str()?.parse().ok()?;
        let unit = item.get("RequestedQuantityUnit")?.as_str()?;
        let net = item.get("NetAmount")?.as_str()?;
        let quantity = item.get("RequestedQuantity")?.as_str()?;
        let unit_price = divide_decimal(net, quantity)?;
        out.push(json!({
            "item_number": number,
            "unit": unit,
            "unit_price": unit_price,
            "net_amount": net,
        }));
    }
    (!out.is_empty()).then(|| {
        json!({
            "currency": currency,
            "total_net_amount": total,
            "items": out,
        })
    })
}

/// `net / quantity` at two decimals (SAP's net price per unit), from decimal strings.
fn divide_decimal(net: &str, quantity: &str) -> Option<String> {
    let n: f64 = net.parse().ok()?;
    let q: f64 = quantity.parse().ok()?;
    if q <= 0.0 || !n.is_finite() {
        return None;
    }
    // Amounts are at most 16 digits with 3 decimals: f64 holds them exactly enough to round
    // to cents.
    Some(format!("{:.2}", (n / q * 100.0).round() / 100.0))
}

/// Parses an OData V2 `/Date(<ms>[+-hhmm])/` value into its UTC date.
pub fn parse_odata_date(s: &str) -> Option<NaiveDate> {
    JsonDate::parse(s).ok()?.to_utc().map(|t| t.date_naive())
}

/// Formats a date as OData V2 `/Date(<ms>)/` (midnight UTC).
pub fn format_odata_date(d: NaiveDate) -> String {
    JsonDate::from_date(d).to_datetime_string()
}

/// SAP's order number from a create (or read) response body: `d.SalesOrder`.
pub fn sales_order_number(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("d")?
        .get("SalesOrder")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A legacy-shaped `A_SalesOrder` entity (`{"d":{...}}`) built from an order-service order,
/// for answers the order service gives alone (store-and-forward, `events`, `retired`).
/// `SalesOrder` is SAP's number once linked, else the order service's `order_number`.
pub fn order_to_entity(order: &Value, service_root: &str) -> Value {
    let s = |k: &str| {
        order
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let number = order
        .get("sap_order_number")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| s("order_number"));
    let created = order
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let entity_uri = format!("{service_root}/A_SalesOrder('{number}')");
    let mut d = Map::new();
    let mut meta =
        json!({"id": entity_uri, "uri": entity_uri, "type": "API_SALES_ORDER_SRV.A_SalesOrder"});
    if let Some(etag) = order_etag(order) {
        meta["etag"] = json!(etag);
    }
    d.insert("__metadata".into(), meta);
    d.insert("SalesOrder".into(), json!(number));
    d.insert("SalesOrderType".into(), json!(s("order_type")));
    d.insert("SalesOrganization".into(), json!(s("sales_organization")));
    d.insert(
        "DistributionChannel".into(),
        json!(s("distribution_channel")),
    );
    d.insert("OrganizationDivision".into(), json!(s("division")));
    d.insert("SoldToParty".into(), json!(s("customer_id")));
    d.insert(
        "PurchaseOrderByCustomer".into(),
        json!(s("customer_reference")),
    );
    d.insert("TransactionCurrency".into(), json!(s("currency")));
    d.insert(
        "TotalNetAmount".into(),
        json!(
            order
                .get("total_net_amount")
                .and_then(Value::as_str)
                .unwrap_or("0.00")
        ),
    );
    d.insert(
        "CreationDate".into(),
        created.map_or(Value::Null, |t| json!(format_odata_date(t.date_naive()))),
    );
    d.insert(
        "RequestedDeliveryDate".into(),
        order
            .get("requested_delivery_date")
            .and_then(Value::as_str)
            .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
            .map_or(Value::Null, |t| json!(format_odata_date(t))),
    );
    for (k, v) in derived_statuses(order) {
        d.insert(k.into(), json!(v));
    }
    if let Some(Value::Object(specs)) = order.get("specifications") {
        for (k, v) in specs {
            d.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let items: Vec<Value> = order
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|it| item_to_entity(it, &number, service_root))
                .collect()
        })
        .unwrap_or_default();
    d.insert("to_Item".into(), json!({ "results": items }));
    json!({ "d": d })
}

/// The ETag of an order-service order as the SAP face gives it (`W/"<version>"`); `If-Match`
/// carries it back.
pub fn order_etag(order: &Value) -> Option<String> {
    order
        .get("version")
        .and_then(Value::as_i64)
        .map(order_domain::version_etag)
}

/// The order-service version an `If-Match` names, when it is one of [`order_etag`]'s tags
/// (`None` for `*`, a list, or a tag SAP issued).
pub fn parse_order_etag(tag: &str) -> Option<i64> {
    order_domain::parse_version_etag(tag)
}

/// The header properties [`derived_statuses`] computes from the order's lines (the others
/// come from its status): a read that selects none of them, nor `to_Item`, needs no lines.
pub const LINE_DERIVED_PROPERTIES: [&str; 2] =
    ["OverallSDDocumentRejectionSts", "OverallSDProcessStatus"];

/// The statuses S/4 derives for an order, from the order service's order: rejection
/// (`OverallSDDocumentRejectionSts` `A` none / `B` some / `C` every line rejected), delivery
/// (`OverallDeliveryStatus`, `OverallTotalDeliveryStatus`: `C` once delivered, else `A`),
/// order-related billing (`OverallOrdReltdBillgStatus`: `C` once billed), and the overall
/// processing status (`OverallSDProcessStatus`: `C` when nothing is left open).
pub fn derived_statuses(order: &Value) -> Vec<(&'static str, &'static str)> {
    let empty = Vec::new();
    let items = order
        .get("items")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let rejected = items.iter().filter(|i| item_rejected(i)).count();
    let rejection = match rejected {
        0 => "A",
        n if n == items.len() => "C",
        _ => "B",
    };
    let status = order.get("status").and_then(Value::as_str).unwrap_or("");
    let delivered = matches!(status, "delivered" | "billed");
    let billed = status == "billed";
    let process = if rejection == "C" || billed {
        "C"
    } else if delivered || rejected > 0 {
        "B"
    } else {
        "A"
    };
    vec![
        ("OverallSDDocumentRejectionSts", rejection),
        ("OverallDeliveryStatus", if delivered { "C" } else { "A" }),
        (
            "OverallTotalDeliveryStatus",
            if delivered { "C" } else { "A" },
        ),
        ("OverallOrdReltdBillgStatus", if billed { "C" } else { "" }),
        ("OverallSDProcessStatus", process),
    ]
}

fn item_rejected(item: &Value) -> bool {
    item.get("rejection_reason")
        .and_then(Value::as_str)
        .is_some_and(|r| !r.is_empty())
}

/// One order-service line as SAP's `A_SalesOrderItem` entity.
pub fn item_to_entity(item: &Value, number: &str, service_root: &str) -> Value {
    let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let item_no = match item.get("item_number") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(v)) => v.clone(),
        _ => String::new(),
    };
    let uri = format!(
        "{service_root}/A_SalesOrderItem(SalesOrder='{number}',SalesOrderItem='{item_no}')"
    );
    let mut m = Map::new();
    m.insert(
        "__metadata".into(),
        json!({"id": uri, "uri": uri, "type": "API_SALES_ORDER_SRV.A_SalesOrderItem"}),
    );
    m.insert("SalesOrder".into(), json!(number));
    m.insert("SalesOrderItem".into(), json!(item_no));
    m.insert("Material".into(), json!(s("sku")));
    m.insert("RequestedQuantity".into(), json!(s("quantity")));
    m.insert("RequestedQuantityUnit".into(), json!(s("unit")));
    if let Some(net) = item.get("net_amount").and_then(Value::as_str) {
        m.insert("NetAmount".into(), json!(net));
    }
    let reason = item
        .get("rejection_reason")
        .and_then(Value::as_str)
        .unwrap_or("");
    m.insert("SalesDocumentRjcnReason".into(), json!(reason));
    m.insert(
        "SDProcessStatus".into(),
        json!(if reason.is_empty() { "A" } else { "C" }),
    );
    if let Some(Value::Object(specs)) = item.get("specifications") {
        for (k, v) in specs {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TranslateOptions {
        TranslateOptions {
            default_currency: "EUR".into(),
        }
    }

    const SDK_BODY: &str = r#"{"SalesOrderType":"OR","SalesOrganization":"1010","DistributionChannel":"10","OrganizationDivision":"00","SoldToParty":"17100001","PurchaseOrderByCustomer":"SDK-1795530057332","CustomerPurchaseOrderDate":"/Date(1795478400000+0000)/","to_Item":[{"Material":"TG11","RequestedQuantity":"2","RequestedQuantityUnit":"PC"},{"Material":"TG12","RequestedQuantity":"5","RequestedQuantityUnit":"PC"}]}"#;

    #[test]
    fn the_sdk_deep_insert_maps_to_the_order_service_body_keeping_unmapped_fields() {
        let v: Value = serde_json::from_str(SDK_BODY).unwrap();
        let out = deep_insert_to_order(&v, &opts()).unwrap();
        assert_eq!(
            out,
            json!({
                "order_type": "OR", "sales_organization": "1010", "distribution_channel": "10",
                "division": "00", "customer_id": "17100001",
                "customer_reference": "SDK-1795530057332", "currency": "EUR",
                "specifications": {"CustomerPurchaseOrderDate": "/Date(1795478400000+0000)/"},
                "items": [
                    {"sku": "TG11", "quantity": "2", "unit": "PC"},
                    {"sku": "TG12", "quantity": "5", "unit": "PC"}
                ]
            })
        );
    }

    #[test]
    fn item_extras_nav_properties_and_results_wrapped_items_are_all_kept() {
        let v = json!({
            "SoldToParty": "17100001", "TransactionCurrency": "USD",
            "RequestedDeliveryDate": "/Date(1796083200000)/",
            "to_Partner": [{"PartnerFunction": "SH", "Customer": "17100002"}],
            "to_Item": {"results": [{"Material": "TG11", "RequestedQuantity": 2.5,
                "RequestedQuantityUnit": "PC", "SalesOrderItemText": "gift wrap"}]}
        });
        let out = deep_insert_to_order(&v, &opts()).unwrap();
        assert_eq!(out["currency"], "USD");
        assert_eq!(out["requested_delivery_date"], "2026-12-01");
        assert_eq!(
            out["specifications"]["to_Partner"][0]["Customer"],
            "17100002"
        );
        assert_eq!(out["items"][0]["quantity"], "2.5");
        assert_eq!(
            out["items"][0]["specifications"]["SalesOrderItemText"],
            "gift wrap"
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_untranslatable() {
        assert_eq!(
            deep_insert_to_order(&json!([1]), &opts()),
            Err(TranslateError::NotAnObject)
        );
    }

    #[test]
    fn odata_dates_parse_with_and_without_offset_and_round_trip() {
        let d = parse_odata_date("/Date(1795478400000+0000)/").unwrap();
        assert_eq!(d.to_string(), "2026-11-24");
        assert_eq!(parse_odata_date(&format_odata_date(d)), Some(d));
        assert_eq!(parse_odata_date("2026-11-24"), None);
    }

    #[test]
    fn an_order_service_order_becomes_a_legacy_entity_with_its_specifications_restored() {
        let order = json!({
            "id": "0192", "order_number": "8000000001", "sap_order_number": null,
            "customer_id": "17100001", "currency": "EUR", "customer_reference": "PO-1",
            "sales_organization": "1010", "distribution_channel": "10", "division": "00",
            "order_type": "OR", "requested_delivery_date": "2026-12-01",
            "total_net_amount": "25.00", "created_at": "2026-11-24T15:00:00Z",
            "specifications": {"CustomerPurchaseOrderDate": "/Date(1795478400000+0000)/"},
            "items": [{"item_number": 10, "sku": "TG11", "quantity": "2", "unit": "PC",
                "net_amount": "25.00", "specifications": {"SalesOrderItemText": "x"}}]
        });
        let e = order_to_entity(&order, "/sap/opu/odata/sap/API_SALES_ORDER_SRV");
        assert_eq!(e["d"]["SalesOrder"], "8000000001");
        assert_eq!(e["d"]["RequestedDeliveryDate"], "/Date(1796083200000)/");
        assert_eq!(
            e["d"]["CustomerPurchaseOrderDate"],
            "/Date(1795478400000+0000)/"
        );
        assert_eq!(e["d"]["to_Item"]["results"][0]["SalesOrderItem"], "10");
        assert_eq!(e["d"]["to_Item"]["results"][0]["SalesOrderItemText"], "x");
    }
}

/// The deep insert that creates an order-service order (its JSON, as the REST API or an event
/// snapshot carries it) in SAP under the order's own number (`SalesOrder` = `order_number`, from
/// SAP's external range), with only the fields S/4 accepts on create: the mapped fields, and
/// every `specifications` entry the service metadata marks creatable (others, e.g. statuses or
/// `TotalNetAmount`, are SAP's to derive and are left out). Prices are not sent: SAP prices the
/// order from its own conditions. A line's `rejection_reason` travels as
/// `SalesDocumentRjcnReason`.
pub fn order_to_deep_insert(order: &Value) -> Value {
    let s = |k: &str| {
        order
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let mut d = Map::new();
    if let Some(Value::Object(specs)) = order.get("specifications") {
        for (k, v) in specs {
            if sap_odata::SALES_ORDER
                .property(k)
                .is_some_and(|p| p.creatable && !p.key)
            {
                d.insert(k.clone(), v.clone());
            }
        }
    }
    for (sap, ours) in [
        ("SalesOrder", "order_number"),
        ("SalesOrderType", "order_type"),
        ("SalesOrganization", "sales_organization"),
        ("DistributionChannel", "distribution_channel"),
        ("OrganizationDivision", "division"),
        ("SoldToParty", "customer_id"),
        ("PurchaseOrderByCustomer", "customer_reference"),
        ("TransactionCurrency", "currency"),
    ] {
        if let Some(v) = s(ours) {
            d.insert(sap.into(), json!(v));
        }
    }
    if let Some(date) =
        s("requested_delivery_date").and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
    {
        d.insert(
            "RequestedDeliveryDate".into(),
            json!(format_odata_date(date)),
        );
    }
    let items: Vec<Value> = order
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(item_to_deep_insert).collect())
        .unwrap_or_default();
    d.insert("to_Item".into(), json!({ "results": items }));
    Value::Object(d)
}

/// One line of [`order_to_deep_insert`], also the body of a line added later
/// (`POST A_SalesOrder('n')/to_Item`).
pub fn item_to_deep_insert(item: &Value) -> Value {
    let mut m = Map::new();
    if let Some(Value::Object(specs)) = item.get("specifications") {
        for (k, v) in specs {
            if sap_odata::SALES_ORDER_ITEM
                .property(k)
                .is_some_and(|p| p.creatable && !p.key)
            {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    m.insert("SalesOrderItem".into(), json!(item_number_text(item)));
    for (sap, ours) in [
        ("Material", "sku"),
        ("RequestedQuantity", "quantity"),
        ("RequestedQuantityUnit", "unit"),
        ("SalesDocumentRjcnReason", "rejection_reason"),
    ] {
        if let Some(v) = item
            .get(ours)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            m.insert(sap.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// A line's number as SAP writes it (`"10"`), from the order service's `item_number` (`10`).
pub fn item_number_text(item: &Value) -> String {
    match item.get("item_number") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(v)) => v.trim_start_matches('0').to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod to_sap_tests {
    use super::*;

    #[test]
    fn a_create_for_sap_names_the_number_and_carries_only_creatable_fields() {
        let order = json!({
            "order_number": "8000000042", "order_type": "OR", "sales_organization": "1010",
            "distribution_channel": "10", "division": "00", "customer_id": "17100001",
            "customer_reference": "PO-1", "currency": "EUR",
            "requested_delivery_date": "2026-12-24",
            "specifications": {"ShippingCondition": "01", "TotalNetAmount": "99.00",
                               "OverallSDProcessStatus": "A"},
            "items": [
                {"item_number": 10, "sku": "TG11", "quantity": "2", "unit": "PC",
                 "unit_price": "12.50", "rejection_reason": null,
                 "specifications": {"NetAmount": "25.00", "PurchaseOrderByCustomer": "x"}},
                {"item_number": 20, "sku": "TG12", "quantity": "1", "unit": "PC",
                 "rejection_reason": "05", "specifications": {}}
            ]
        });
        let d = order_to_deep_insert(&order);
        assert_eq!(d["SalesOrder"], "8000000042");
        assert_eq!(d["SoldToParty"], "17100001");
        assert_eq!(d["ShippingCondition"], "01");
        assert!(d.get("TotalNetAmount").is_none(), "not creatable: {d}");
        assert!(d.get("OverallSDProcessStatus").is_none());
        assert!(
            d["RequestedDeliveryDate"]
                .as_str()
                .unwrap()
                .starts_with("/Date(")
        );
        let items = d["to_Item"]["results"].as_array().unwrap();
        assert_eq!(items[0]["SalesOrderItem"], "10");
        assert_eq!(items[0]["RequestedQuantity"], "2");
        assert!(items[0].get("NetAmount").is_none());
        assert!(items[0].get("SalesDocumentRjcnReason").is_none());
        assert_eq!(items[1]["SalesDocumentRjcnReason"], "05");
        // Every key sent is creatable in S/4's metadata.
        for k in d.as_object().unwrap().keys().filter(|k| *k != "to_Item") {
            assert!(
                sap_odata::SALES_ORDER.property(k).unwrap().creatable || k == "SalesOrder",
                "{k}"
            );
        }
    }
}
