//! The create of the SAP face where the order service serves it (`events` and `retired`, one
//! implementation): S/4's checks of a deep insert before the order service is asked, and the
//! order service's refusals put in S/4's terms (SAP's message ids, texts and property names,
//! never the REST API's `customer_id` or `items[0].unit`).
//!
//! S/4 refuses a create it cannot save with `400` and an OData error naming SAP's message
//! (`error.code` = message class and number, `error.message.value` = the text SAP's clients
//! show, `innererror.errordetails[].propertyref` = the property), and saves nothing. So here, in
//! the order S/4 checks (`docs/proxy.md`, "Refused creates"):
//!
//! 1. the body, with the emulator's own parser (`sap_odata::payload`): malformed JSON, unknown
//!    properties, wrong types and lengths get SAP Gateway's ids;
//! 2. what S/4 requires without master data: order type and sales area, the sold-to party
//!    (`V1/320` "Enter a sold-to party", the message SAP's Cloud SDK tutorials show), per line a
//!    material and a positive quantity;
//! 3. in `retired` only, the master data the order service holds (imported from SAP, the
//!    system of record for it once SAP is gone): an unknown sold-to party or one outside the
//!    sales area (`V1/317`), an unknown material (`V1/392`). In `events` SAP still checks its own
//!    master data when sap-sync brings the order (a refusal there parks the order), and the
//!    order service may not hold master data at all;
//! 4. whatever the order service still refuses, translated by [`from_order_service`].

use http::StatusCode;
use serde_json::Value;

use crate::upstreams::order_client::{OrderService, OrderServiceError};
use sap_odata::payload::{PropertyMap, SalesOrderCreate, parse_sales_order_create};

/// A create refused in S/4's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRefusal {
    /// HTTP status (S/4: `400` for every business refusal).
    pub status: StatusCode,
    /// SAP's message id, `CLASS/NUMBER`.
    pub code: &'static str,
    /// The text (`error.message.value`).
    pub message: String,
    /// The SAP property the message is about (`errordetails[].propertyref`).
    pub property: Option<String>,
}

impl CreateRefusal {
    fn bad_request(code: &'static str, message: impl Into<String>, property: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            property: (!property.is_empty()).then(|| property.to_owned()),
        }
    }
}

/// SAP's message ids used here: SAP's own where SAP's material names them (`V1/320`), else the
/// ids the emulator uses (`services/sap-mock/src/error.rs`), so both faces answer alike.
mod codes {
    pub const FIELD_MISSING: &str = "V1/323";
    pub const SOLD_TO_MISSING: &str = "V1/320";
    pub const CUSTOMER_UNKNOWN: &str = "V1/317";
    pub const MATERIAL_MISSING: &str = "V1/391";
    pub const MATERIAL_UNKNOWN: &str = "V1/392";
    pub const QUANTITY_NOT_POSITIVE: &str = "V1/084";
    pub const PRICING_FAILED: &str = "V1/803";
    pub const DOCUMENT_ALREADY_EXISTS: &str = "V1/018";
    pub const VALUE_INVALID: &str = "/IWBEP/CM_MGW_RT/022";
}

fn text<'a>(map: &'a PropertyMap, name: &str) -> &'a str {
    map.get_str(name).unwrap_or_default()
}

/// The item number S/4 gives line `index` (the one sent, else 10, 20, ...), for messages.
fn item_label(create: &SalesOrderCreate, index: usize) -> String {
    create
        .items
        .get(index)
        .and_then(|i| i.get_str("SalesOrderItem"))
        .filter(|s| !s.is_empty())
        .map_or_else(|| ((index + 1) * 10).to_string(), str::to_owned)
}

/// Steps 1 and 2: the body parsed as S/4 parses it, and what S/4 requires of it.
pub fn check(body: &[u8]) -> Result<SalesOrderCreate, CreateRefusal> {
    let create = parse_sales_order_create(body).map_err(|e| CreateRefusal {
        status: StatusCode::BAD_REQUEST,
        code: e.sap_code(),
        message: e.to_string(),
        property: e.property().map(str::to_owned),
    })?;
    let h = &create.header;
    for (field, what) in [
        ("SalesOrderType", "a sales document type"),
        ("SalesOrganization", "a sales organization"),
        ("DistributionChannel", "a distribution channel"),
        ("OrganizationDivision", "a division"),
    ] {
        if text(h, field).is_empty() {
            return Err(CreateRefusal::bad_request(
                codes::FIELD_MISSING,
                format!("Enter {what}"),
                field,
            ));
        }
    }
    if text(h, "SoldToParty").is_empty() {
        return Err(CreateRefusal::bad_request(
            codes::SOLD_TO_MISSING,
            "Enter a sold-to party",
            "SoldToParty",
        ));
    }
    for (i, item) in create.items.iter().enumerate() {
        let label = item_label(&create, i);
        if text(item, "Material").is_empty() {
            return Err(CreateRefusal::bad_request(
                codes::MATERIAL_MISSING,
                format!("Enter a material for item {label}"),
                "Material",
            ));
        }
        let positive = item
            .get("RequestedQuantity")
            .and_then(sap_odata::EdmValue::as_decimal)
            .is_some_and(|q| q.is_sign_positive() && !q.is_zero());
        if !positive {
            return Err(CreateRefusal::bad_request(
                codes::QUANTITY_NOT_POSITIVE,
                format!("Enter a positive order quantity for item {label}"),
                "RequestedQuantity",
            ));
        }
    }
    Ok(create)
}

fn customer_unknown(h: &PropertyMap) -> CreateRefusal {
    CreateRefusal::bad_request(
        codes::CUSTOMER_UNKNOWN,
        format!(
            "Sold-to party {} is not defined for sales area {} {} {}",
            text(h, "SoldToParty"),
            text(h, "SalesOrganization"),
            text(h, "DistributionChannel"),
            text(h, "OrganizationDivision")
        ),
        "SoldToParty",
    )
}

fn material_unknown(h: &PropertyMap, material: &str) -> CreateRefusal {
    CreateRefusal::bad_request(
        codes::MATERIAL_UNKNOWN,
        format!(
            "Material {material} is not defined for sales org.{}, distr.chan.{}, language EN",
            text(h, "SalesOrganization"),
            text(h, "DistributionChannel")
        ),
        "Material",
    )
}

/// Step 3 (`retired`): the sold-to party in the order's sales area and every material, in the
/// order service's master data. `Err(Ok(refusal))` is S/4's refusal; `Err(Err(e))` means the
/// order service could not be asked.
pub async fn check_master_data(
    orders: &dyn OrderService,
    create: &SalesOrderCreate,
) -> Result<(), Result<CreateRefusal, OrderServiceError>> {
    let h = &create.header;
    let customer = orders
        .master_data("customers", text(h, "SoldToParty"))
        .await
        .map_err(Err)?;
    let in_area = customer.as_ref().is_some_and(|c| {
        c["sales_areas"].as_array().is_some_and(|areas| {
            areas.iter().any(|a| {
                a["sales_organization"] == text(h, "SalesOrganization")
                    && a["distribution_channel"] == text(h, "DistributionChannel")
                    && a["division"] == text(h, "OrganizationDivision")
            })
        })
    });
    if !in_area {
        return Err(Ok(customer_unknown(h)));
    }
    let mut seen: Vec<&str> = Vec::new();
    for item in &create.items {
        let material = text(item, "Material");
        if seen.contains(&material) {
            continue;
        }
        seen.push(material);
        if orders
            .master_data("materials", material)
            .await
            .map_err(Err)?
            .is_none()
        {
            return Err(Ok(material_unknown(h, material)));
        }
    }
    Ok(())
}

/// SAP's property (and line, for `items[i].…`) behind a field the order service names.
fn sap_property(field: &str) -> (String, Option<usize>) {
    if let Some(rest) = field.strip_prefix("items[")
        && let Some((index, rest)) = rest.split_once(']')
        && let Ok(index) = index.parse::<usize>()
    {
        let name = match rest.trim_start_matches('.') {
            "sku" => "Material",
            "quantity" => "RequestedQuantity",
            "unit" => "RequestedQuantityUnit",
            "unit_price" => "NetPriceAmount",
            "" => "to_Item",
            other => other.strip_prefix("specifications.").unwrap_or(other),
        };
        return (name.to_owned(), Some(index));
    }
    let name = match field {
        "customer_id" => "SoldToParty",
        "currency" => "TransactionCurrency",
        "customer_reference" => "PurchaseOrderByCustomer",
        "order_number" => "SalesOrder",
        "sales_organization" => "SalesOrganization",
        "distribution_channel" => "DistributionChannel",
        "division" => "OrganizationDivision",
        "order_type" => "SalesOrderType",
        "requested_delivery_date" => "RequestedDeliveryDate",
        "items" => "to_Item",
        other => other.strip_prefix("specifications.").unwrap_or(other),
    };
    (name.to_owned(), None)
}

/// Step 4: an order-service refusal of the create (`problem+json`) in S/4's terms, the first
/// field it names deciding the message, as S/4 reports the first error it meets.
pub fn from_order_service(create: &SalesOrderCreate, status: u16, detail: &str) -> CreateRefusal {
    let problem: Value = serde_json::from_str(detail).unwrap_or(Value::Null);
    let kind = problem["type"].as_str().unwrap_or_default();
    let h = &create.header;
    let first = problem["errors"].as_array().and_then(|e| e.first());
    let field = first.and_then(|e| e["field"].as_str()).unwrap_or_default();
    let reason = first
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default();
    let material_of = |i: usize| {
        create
            .items
            .get(i)
            .map(|item| text(item, "Material").to_owned())
            .unwrap_or_default()
    };
    let (property, item) = sap_property(field);
    match (kind.rsplit(':').next().unwrap_or_default(), item) {
        ("customer-not-found", _) => customer_unknown(h),
        ("material-not-found", Some(i)) => material_unknown(h, &material_of(i)),
        ("master-data-incomplete", Some(i)) if reason.contains("not in the master data") => {
            material_unknown(h, &material_of(i))
        }
        ("master-data-incomplete", Some(i)) => CreateRefusal::bad_request(
            codes::PRICING_FAILED,
            format!(
                "No price is maintained for material {} in currency {}",
                material_of(i),
                text(h, "TransactionCurrency")
            ),
            &property,
        ),
        ("master-data-incomplete", None) if property == "TransactionCurrency" => {
            customer_unknown(h)
        }
        ("order-number-taken" | "idempotency-key-reused", _) => CreateRefusal::bad_request(
            codes::DOCUMENT_ALREADY_EXISTS,
            format!("SD document {} already exists", text(h, "SalesOrder")),
            "SalesOrder",
        ),
        (_, item) => {
            let at = item.map_or_else(String::new, |i| {
                format!(" (item {})", item_label(create, i))
            });
            let message = if property.is_empty() {
                format!("The sales order cannot be saved (status {status})")
            } else {
                format!("Property {property}{at}: {reason}")
            };
            CreateRefusal::bad_request(codes::VALUE_INVALID, message, &property)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: Value) -> SalesOrderCreate {
        check(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn refusal(body: Value) -> CreateRefusal {
        check(&serde_json::to_vec(&body).unwrap()).unwrap_err()
    }

    fn header() -> Value {
        json!({"SalesOrderType": "OR", "SalesOrganization": "1010", "DistributionChannel": "10",
               "OrganizationDivision": "00", "SoldToParty": "17100001"})
    }

    #[test]
    fn s4_s_own_checks_come_first_in_s4_s_order_naming_sap_s_properties() {
        // the SDK's negative create: no items, an empty sold-to party
        let mut bad = header();
        bad["SoldToParty"] = json!("");
        let r = refusal(bad);
        assert_eq!(
            (r.status, r.code, r.message.as_str(), r.property.as_deref()),
            (
                StatusCode::BAD_REQUEST,
                "V1/320",
                "Enter a sold-to party",
                Some("SoldToParty")
            )
        );
        let mut no_type = header();
        no_type["SalesOrderType"] = json!("");
        no_type["SoldToParty"] = json!("");
        assert_eq!(refusal(no_type).code, "V1/323");
        let mut lines = header();
        lines["to_Item"] = json!([{"Material": "TG11", "RequestedQuantity": "1"},
                                  {"Material": "", "RequestedQuantity": "1"}]);
        let r = refusal(lines.clone());
        assert_eq!(
            (r.code, r.message.as_str()),
            ("V1/391", "Enter a material for item 20")
        );
        lines["to_Item"][1] = json!({"Material": "TG12", "RequestedQuantity": "0"});
        assert_eq!(refusal(lines.clone()).code, "V1/084");
        lines["to_Item"][1] = json!({"Material": "TG12"});
        assert_eq!(
            refusal(lines).property.as_deref(),
            Some("RequestedQuantity")
        );
        // the body itself, with SAP Gateway's ids
        assert_eq!(check(b"{not json").unwrap_err().code, "CX_SXML_PARSE_ERROR");
        let mut unknown = header();
        unknown["customer_id"] = json!("17100001");
        let r = refusal(unknown);
        assert_eq!(
            (r.code, r.property.as_deref()),
            ("/IWBEP/CM_MGW_RT/021", Some("customer_id"))
        );
    }

    #[test]
    fn order_service_refusals_become_s4_s_messages_without_rest_names() {
        let mut body = header();
        body["to_Item"] = json!([{"Material": "TG11", "RequestedQuantity": "1"},
                                 {"Material": "TG99", "RequestedQuantity": "1"}]);
        let c = create(body);
        let problem = |kind: &str, field: &str, message: &str| {
            json!({"type": format!("urn:order-service:problem:{kind}"), "title": "t",
                   "status": 409, "detail": "d", "errors": [{"field": field, "message": message}]})
            .to_string()
        };
        let r = from_order_service(
            &c,
            409,
            &problem(
                "master-data-incomplete",
                "items[1].unit",
                "is required: material TG99 is not in the master data",
            ),
        );
        assert_eq!(r.code, "V1/392");
        assert_eq!(
            r.message,
            "Material TG99 is not defined for sales org.1010, distr.chan.10, language EN"
        );
        assert_eq!(r.property.as_deref(), Some("Material"));
        let r = from_order_service(&c, 409, &problem("master-data-incomplete", "currency", "x"));
        assert_eq!(r.code, "V1/317");
        let r = from_order_service(
            &c,
            422,
            &problem("validation-failed", "customer_reference", "too long"),
        );
        assert_eq!(r.code, "/IWBEP/CM_MGW_RT/022");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.property.as_deref(), Some("PurchaseOrderByCustomer"));
        assert!(
            r.message.contains("PurchaseOrderByCustomer"),
            "{}",
            r.message
        );
        let r = from_order_service(
            &c,
            422,
            &problem(
                "validation-failed",
                "items[1].quantity",
                "too many decimals",
            ),
        );
        assert_eq!(
            r.message,
            "Property RequestedQuantity (item 20): too many decimals"
        );
        for r in [
            from_order_service(&c, 400, "not json"),
            from_order_service(&c, 422, &problem("validation-failed", "items", "x")),
        ] {
            assert!(
                !r.message.contains("items") && !r.message.contains("customer_id"),
                "{}",
                r.message
            );
        }
    }
}
