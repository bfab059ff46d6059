//! The OpenAPI 3 document, generated from the handler and type annotations.

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::{ObjectBuilder, Required, Type};

/// The order service API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-service",
        description = "Orders of the migration off SAP: the modern REST face."
    ),
    paths(
        super::create_order,
        super::get_order,
        super::get_order_by_number,
        super::list_orders,
        super::transition_order,
        super::life::cancel_order,
        super::life::add_item,
        super::life::update_item,
        super::life::remove_item,
        super::life::report_status,
        super::void_order,
        super::link_sap_order,
        super::life::update_order,
        super::reserve_order_numbers,
        super::upsert_master_data,
        super::get_material,
        super::get_customer
    ),
    components(schemas(
        crate::model::Order,
        crate::model::OrderItem,
        super::OrderPage,
        order_domain::OrderDraft,
        order_domain::OrderLineDraft,
        super::problem::Problem,
        super::TransitionRequest,
        super::life::CancelRequest,
        super::life::ItemUpdateRequest,
        super::life::StatusReportRequest,
        super::VoidRequest,
        super::SapLinkRequest,
        super::SapPricingDraft,
        super::SapItemPricingDraft,
        super::life::UpdateRequest,
        super::ReserveNumbersRequest,
        super::ReservedNumbers,
        order_domain::MasterDataDraft,
        order_domain::master_data::MaterialDraft,
        order_domain::master_data::CustomerDraft,
        order_domain::master_data::SalesAreaDraft,
        crate::master_data::MaterialRecord,
        crate::master_data::CustomerRecord,
        crate::master_data::SalesAreaRecord,
        crate::master_data::UpsertCounts
    ))
)]
pub struct ApiDoc;

/// The operations also served by order number (`/api/v1/orders/by-number/{number}...`), for
/// callers that hold only the number: `(path by id, method)`.
const BY_NUMBER: [(&str, HttpMethod); 6] = [
    ("/api/v1/orders/{id}", HttpMethod::Patch),
    ("/api/v1/orders/{id}/cancel", HttpMethod::Post),
    ("/api/v1/orders/{id}/items", HttpMethod::Post),
    ("/api/v1/orders/{id}/items/{item_number}", HttpMethod::Patch),
    (
        "/api/v1/orders/{id}/items/{item_number}",
        HttpMethod::Delete,
    ),
    ("/api/v1/orders/{id}/status", HttpMethod::Post),
];

/// The whole document: the annotated operations, plus each [`BY_NUMBER`] operation copied onto
/// its by-number path with `{number}` in place of `{id}` (same body and answers).
pub fn build() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for (path, method) in BY_NUMBER {
        let Some(op) = doc
            .paths
            .paths
            .get(path)
            .and_then(|item| operation(item, &method))
            .cloned()
        else {
            continue;
        };
        let mut op = op;
        op.operation_id = op.operation_id.map(|id| format!("{id}_by_number"));
        if let Some(params) = op.parameters.as_mut() {
            for p in params.iter_mut().filter(|p| p.name == "id") {
                *p = ParameterBuilder::new()
                    .name("number")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some("The order number (10 digits)"))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build();
            }
        }
        let by_number = path.replacen(
            "/api/v1/orders/{id}",
            "/api/v1/orders/by-number/{number}",
            1,
        );
        doc.paths.add_path_operation(by_number, vec![method], op);
    }
    doc
}

fn operation<'a>(item: &'a PathItem, method: &HttpMethod) -> Option<&'a Operation> {
    match method {
        HttpMethod::Get => item.get.as_ref(),
        HttpMethod::Post => item.post.as_ref(),
        HttpMethod::Put => item.put.as_ref(),
        HttpMethod::Patch => item.patch.as_ref(),
        HttpMethod::Delete => item.delete.as_ref(),
        _ => None,
    }
}

/// `GET /api/v1/openapi.json`: [`build`], then [`state_what_the_server_enforces`].
pub async fn document() -> Json<serde_json::Value> {
    let mut doc = serde_json::to_value(build()).unwrap_or_default();
    state_what_the_server_enforces(&mut doc);
    Json(doc)
}

/// Makes the document say what the server does, beyond what the annotations express (checked
/// by `scripts/schemathesis.sh`, `--checks all`):
///
/// - every 4xx/5xx answer is `application/problem+json`;
/// - every operation documents 503 (request timeout, database unavailable) and 500; one with
///   a JSON body 400 (malformed JSON), 413, 415 and 422; one with path parameters 404 and 422
///   (an id that is not a UUID, an item number that is not a positive number);
/// - `If-Match` is declared optional (a conditional-request header) and its absence is the
///   documented 428 answer, as RFC 6585 has it;
/// - the required members and value rules the handlers enforce.
pub fn state_what_the_server_enforces(doc: &mut serde_json::Value) {
    use serde_json::json;
    let problem =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let describe = |code: &str| match code {
        "400" => "Malformed JSON",
        "404" => "Not found",
        "409" => "Conflict with the order's state",
        "412" => "If-Match is not the order's current version",
        "413" => "Body too large",
        "415" => "Body not sent as application/json",
        "422" => "Invalid field (named in errors[].field)",
        "428" => "If-Match missing",
        "500" => "Internal error",
        _ => "Service unavailable, retry later",
    };
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for op in item.values_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let has_body = op.contains_key("requestBody");
                let has_path = op
                    .get("parameters")
                    .and_then(|p| p.as_array())
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path"));
                if let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) {
                    for p in params.iter_mut().filter(|p| p["name"] == "If-Match") {
                        p["required"] = json!(false);
                    }
                }
                let responses = op
                    .entry("responses")
                    .or_insert_with(|| json!({}))
                    .as_object_mut();
                let Some(responses) = responses else { continue };
                let mut add = vec!["500", "503"];
                if has_body {
                    add.extend(["400", "413", "415", "422"]);
                }
                if has_path {
                    add.extend(["404", "422"]);
                }
                for code in add {
                    responses
                        .entry(code)
                        .or_insert_with(|| json!({"description": describe(code)}));
                }
                for (code, r) in responses.iter_mut() {
                    if code.as_str() >= "400" {
                        r["content"] = problem.clone();
                    }
                }
            }
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    let text = r"^[^\s\x00-\x1F\x7F](?:[^\x00-\x1F\x7F]*[^\s\x00-\x1F\x7F])?$";
    let decimal = r"^[0-9]{1,12}(\.[0-9]{1,3})?$";
    let set = |schemas: &mut serde_json::Value, name: &str, required: &[&str]| {
        schemas[name]["required"] = json!(required);
    };
    set(schemas, "OrderDraft", &["customer_id", "items"]);
    set(schemas, "OrderLineDraft", &["sku", "quantity"]);
    set(schemas, "TransitionRequest", &["to"]);
    set(schemas, "StatusReportRequest", &["status"]);
    set(schemas, "ReserveNumbersRequest", &["count"]);
    set(schemas, "SapLinkRequest", &["sap_order_number"]);
    schemas["ItemUpdateRequest"]["minProperties"] = json!(1);
    schemas["TransitionRequest"]["properties"]["to"] =
        json!({"type": "string", "enum": ["confirmed", "shipped", "delivered", "billed"]});
    schemas["ReserveNumbersRequest"]["properties"]["count"] =
        json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": 10000});
    schemas["SapLinkRequest"]["properties"]["sap_order_number"] =
        json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,10}$"});
    schemas["UpdateRequest"]["properties"]["customer_reference"] =
        json!({"type": ["string", "null"], "minLength": 1, "maxLength": 35, "pattern": text});
    schemas["OrderLineDraft"]["properties"]["quantity"] =
        json!({"type": "string", "pattern": decimal, "not": {"pattern": r"^0+(\.0+)?$"}});
    schemas["ItemUpdateRequest"]["properties"]["quantity"] =
        json!({"type": "string", "pattern": decimal, "not": {"pattern": r"^0+(\.0+)?$"}});
}
