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
        super::search::search_orders,
        super::transition_order,
        super::life::cancel_order,
        super::life::add_item,
        super::life::update_item,
        super::life::remove_item,
        super::life::report_status,
        super::void_order,
        super::link_sap_order,
        super::life::update_order,
        super::changesets::apply_changeset,
        super::reserve_order_numbers,
        super::lookup_order_versions,
        super::upsert_master_data,
        super::get_material,
        super::get_customer
    ),
    components(schemas(
        crate::model::Order,
        crate::model::OrderItem,
        super::OrderPage,
        super::search::SearchRequest,
        super::search::SortKey,
        super::search::SearchResult,
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
        super::changesets::ChangesetRequest,
        super::changesets::ChangesetAnswer,
        super::ReserveNumbersRequest,
        super::ReservedNumbers,
        super::VersionLookupRequest,
        super::OrderVersions,
        crate::repository::OrderVersion,
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
/// by `scripts/schemathesis.sh`, `--checks all`; the reasons for each rule are in
/// `docs/order-service.md`, "OpenAPI and schemathesis"):
///
/// - every 4xx/5xx answer is `application/problem+json`;
/// - every operation documents 503 (request timeout, database unavailable) and 500; one with
///   a JSON body 400 (malformed JSON), 413, 415 and 422; one with path parameters 404 and 422
///   (an id that is not a UUID, an item number that is not a positive number);
/// - `If-Match` is required where nothing else can carry the version (the line operations),
///   optional where the deprecated body `version` still can (header update, cancel) and for
///   SAP's status reports; its absence is the documented 428 answer, as RFC 6585 has it;
/// - every parameter, member and value rule the handlers and `order_domain` enforce
///   ([`parameter_rules`], [`schema_rules`]).
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
                let operation_id = op
                    .get("operationId")
                    .and_then(|o| o.as_str())
                    .unwrap_or("")
                    .trim_end_matches("_by_number")
                    .to_owned();
                if let Some(params) = op.get_mut("parameters").and_then(|p| p.as_array_mut()) {
                    for p in params.iter_mut() {
                        parameter_rules(&operation_id, p);
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
    schema_rules(&mut doc["components"]["schemas"]);
}

/// `^...$` for a code value (`order_domain` `Charset::Code`): 1 to `max` ASCII letters, digits,
/// `-` and `_`.
fn code(max: usize) -> serde_json::Value {
    serde_json::json!({"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{1,{max}}}$")})
}

/// A text value (`Charset::Text`): 1 to `max` characters, no control character (Unicode `Cc`:
/// U+0000-U+001F, U+007F-U+009F), no leading or trailing white space (Unicode `White_Space`,
/// what Rust's `str::trim` removes).
fn text(max: usize) -> serde_json::Value {
    const EDGE: &str = r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
    const INNER: &str = r"[^\x00-\x1F\x7F-\x9F]";
    serde_json::json!({
        "type": "string", "minLength": 1, "maxLength": max,
        "pattern": format!("^{EDGE}(?:{INNER}*{EDGE})?$"),
    })
}

/// Free text of at most `max` characters without control characters (may be empty).
fn plain_text(max: usize) -> serde_json::Value {
    serde_json::json!({"type": "string", "maxLength": max, "pattern": r"^[^\x00-\x1F\x7F-\x9F]*$"})
}

/// A quantity (`order_domain::Quantity`): a plain decimal string, at most 3 decimals, greater
/// than zero and below 10^12 (leading zeros are allowed, as the parser allows them).
fn quantity() -> serde_json::Value {
    serde_json::json!({
        "type": "string", "pattern": r"^0*[0-9]{1,12}(\.[0-9]{1,3})?$",
        "not": {"pattern": r"^0+(\.0+)?$"}, "example": "2",
    })
}

/// An amount (`order_domain::Money`): a plain decimal string, at most 3 decimals, from 0 to
/// below 10^13, no sign.
fn money() -> serde_json::Value {
    serde_json::json!({"type": "string", "pattern": r"^0*[0-9]{1,13}(\.[0-9]{1,3})?$", "example": "12.50"})
}

/// A currency: one of `order_domain::currency::ISO_4217`.
fn currency() -> serde_json::Value {
    serde_json::json!({"type": "string", "enum": order_domain::currency::ISO_4217, "example": "EUR"})
}

/// A calendar date, `YYYY-MM-DD`.
fn date() -> serde_json::Value {
    serde_json::json!({"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})
}

/// A JSON integer in `min..=max`; `2666.0` is the same number, and is accepted
/// (`extract::whole_number`).
fn integer(min: i64, max: i64) -> serde_json::Value {
    serde_json::json!({"type": "integer", "minimum": min, "maximum": max})
}

/// `schema` that may also be `null` (the server reads `null` as absent).
fn nullable(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(t) = schema
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
    {
        schema["type"] = serde_json::json!([t, "null"]);
    }
    if let Some(values) = schema.get_mut("enum").and_then(|e| e.as_array_mut()) {
        values.push(serde_json::Value::Null);
    }
    schema
}

/// The `If-Match` header, the path and query parameters and `Idempotency-Key`.
fn parameter_rules(operation_id: &str, p: &mut serde_json::Value) {
    use serde_json::json;
    let name = p["name"].as_str().unwrap_or("").to_owned();
    let place = p["in"].as_str().unwrap_or("").to_owned();
    let (schema, required) = match (place.as_str(), name.as_str()) {
        ("header", "If-Match") => (
            json!({"type": "string", "pattern": r#"^(W/)?"[0-9]{1,18}"$"#, "example": "W/\"1\""}),
            // The line operations have no other way to name the version; the header update and
            // cancel still take the deprecated body `version`; SAP's reports need none.
            Some(matches!(
                operation_id,
                "add_item" | "update_item" | "remove_item"
            )),
        ),
        ("header", "Idempotency-Key") => {
            (json!({"type": "string", "pattern": "^[!-~]{1,128}$"}), None)
        }
        ("path", "number") => (
            json!({"type": "string", "pattern": "^[0-9]{10}$", "example": "8000000001"}),
            None,
        ),
        ("path", "item_number") => (integer(1, i64::from(i32::MAX)), None),
        ("path", "sku") => (text(40), None),
        ("path", "id") if operation_id == "get_customer" => (code(10), None),
        ("query", "customer_id") => (code(10), None),
        ("query", "customer_reference") => (text(35), None),
        ("query", "sap_order_number") => (code(10), None),
        ("query", "status") => (
            json!({"type": "string", "enum": order_domain::OrderStatus::ALL.map(|s| s.as_str())}),
            None,
        ),
        ("query", "created_after" | "created_before") => (
            json!({"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}]}),
            None,
        ),
        ("query", "limit") => (integer(1, super::MAX_PAGE), None),
        ("query", "cursor") => (
            json!({"type": "string", "pattern": "^[0-9]{1,16}_[0-9a-f]{32}$"}),
            None,
        ),
        _ => return,
    };
    p["schema"] = schema;
    if let Some(required) = required {
        p["required"] = json!(required);
    }
}

/// The bodies: required members are never `null`, optional ones may be (`null` is read as
/// absent), and every value has the rule its parser enforces.
fn schema_rules(schemas: &mut serde_json::Value) {
    use serde_json::json;
    search_rules(schemas);
    // Free JSON (`specifications`): anything but U+0000, which PostgreSQL's jsonb cannot hold
    // (`extract::parse_json` refuses it in any body).
    schemas["JsonValue"] = json!({
        "description": "Any JSON value without the character U+0000, in strings or keys.",
        "anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "string", "pattern": r"^[^\x00]*$"},
            {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
            {"type": "object", "propertyNames": {"pattern": r"^[^\x00]*$"},
             "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
        ]
    });
    let free = |description: &str| {
        json!({"type": ["object", "null"], "description": description,
               "propertyNames": {"pattern": r"^[^\x00]*$"},
               "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}})
    };
    let spec = "Fields without a modern home: any JSON object of at most 16 KiB \
                (`order_domain::order::MAX_SPECIFICATIONS_BYTES`) without U+0000.";
    let version = nullable(integer(i64::MIN, i64::MAX));
    set(
        schemas,
        "OrderDraft",
        vec![
            (
                "order_number",
                nullable(
                    json!({"type": "string", "pattern": "^[0-9]{10}$", "example": "8000000123"}),
                ),
            ),
            ("customer_id", code(10)),
            ("currency", nullable(currency())),
            ("customer_reference", nullable(text(35))),
            ("sales_organization", nullable(code(4))),
            ("distribution_channel", nullable(code(2))),
            ("division", nullable(code(2))),
            ("order_type", nullable(code(4))),
            ("requested_delivery_date", nullable(date())),
            ("specifications", free(spec)),
            (
                "items",
                json!({"type": "array", "minItems": 1, "maxItems": order_domain::order::MAX_LINES,
                             "items": {"$ref": "#/components/schemas/OrderLineDraft"}}),
            ),
        ],
        &["customer_id", "items"],
    );
    set(
        schemas,
        "OrderLineDraft",
        vec![
            ("sku", text(40)),
            ("quantity", quantity()),
            ("unit", nullable(code(3))),
            ("unit_price", nullable(money())),
            ("specifications", free(spec)),
        ],
        &["sku", "quantity"],
    );
    set(
        schemas,
        "UpdateRequest",
        vec![
            ("version", version.clone()),
            ("customer_reference", nullable(text(35))),
            ("requested_delivery_date", nullable(date())),
            (
                "specifications",
                free("Keys merged into the header specifications (a null value removes the key)."),
            ),
        ],
        &[],
    );
    set(
        schemas,
        "ItemUpdateRequest",
        vec![
            ("quantity", quantity()),
            ("rejection_reason", nullable(rejection_reason())),
        ],
        &[],
    );
    schemas["ItemUpdateRequest"]["minProperties"] = json!(1);
    set(
        schemas,
        "CancelRequest",
        vec![
            ("version", version.clone()),
            ("reason", nullable(no_nul(200))),
            ("rejection_reason", nullable(rejection_reason())),
        ],
        &[],
    );
    changeset_rules(schemas);
    set(
        schemas,
        "VoidRequest",
        vec![("reason", nullable(no_nul(200)))],
        &[],
    );
    set(
        schemas,
        "StatusReportRequest",
        vec![
            (
                "status",
                json!({"type": "string", "enum": ["delivered", "billed"]}),
            ),
            ("source", nullable(plain_text(64))),
        ],
        &["status"],
    );
    set(
        schemas,
        "TransitionRequest",
        vec![
            (
                "to",
                json!({"type": "string", "enum": ["confirmed", "shipped", "delivered", "billed"]}),
            ),
            ("version", version),
        ],
        &["to"],
    );
    set(
        schemas,
        "ReserveNumbersRequest",
        vec![("count", integer(1, crate::repository::MAX_RESERVATION))],
        &["count"],
    );
    set(
        schemas,
        "SapLinkRequest",
        vec![("sap_order_number", code(10))],
        &["sap_order_number"],
    );
    set(
        schemas,
        "SapPricingDraft",
        vec![
            ("currency", nullable(currency())),
            ("total_net_amount", nullable(money())),
            (
                "items",
                json!({"type": ["array", "null"], "items": {"$ref": "#/components/schemas/SapItemPricingDraft"}}),
            ),
        ],
        &[],
    );
    set(
        schemas,
        "SapItemPricingDraft",
        vec![
            ("item_number", integer(1, i64::from(i32::MAX))),
            ("unit", nullable(code(3))),
            ("unit_price", nullable(money())),
            ("net_amount", nullable(money())),
        ],
        &["item_number"],
    );
    let entries = order_domain::master_data::MAX_UPSERT_ENTRIES;
    set(
        schemas,
        "MasterDataDraft",
        vec![
            (
                "materials",
                json!({"type": ["array", "null"], "maxItems": entries, "items": {"$ref": "#/components/schemas/MaterialDraft"}}),
            ),
            (
                "customers",
                json!({"type": ["array", "null"], "maxItems": entries, "items": {"$ref": "#/components/schemas/CustomerDraft"}}),
            ),
        ],
        &[],
    );
    let description = order_domain::master_data::MAX_DESCRIPTION_LEN;
    set(
        schemas,
        "MaterialDraft",
        vec![
            ("sku", text(40)),
            ("base_unit", code(3)),
            ("iso_unit", nullable(code(3))),
            ("price", nullable(money())),
            ("currency", nullable(currency())),
            ("description", nullable(plain_text(description))),
        ],
        &["sku", "base_unit"],
    );
    // `price` and `currency` come together (a `null` one counts as absent).
    schemas["MaterialDraft"]["allOf"] = json!([
        {"if": {"required": ["price"], "properties": {"price": {"type": "string"}}},
         "then": {"required": ["currency"], "properties": {"currency": {"type": "string"}}}},
        {"if": {"required": ["currency"], "properties": {"currency": {"type": "string"}}},
         "then": {"required": ["price"], "properties": {"price": {"type": "string"}}}},
    ]);
    set(
        schemas,
        "CustomerDraft",
        vec![
            ("customer_id", code(10)),
            ("name", nullable(plain_text(description))),
            (
                "sales_areas",
                json!({"type": ["array", "null"], "items": {"$ref": "#/components/schemas/SalesAreaDraft"}}),
            ),
        ],
        &["customer_id"],
    );
    set(
        schemas,
        "SalesAreaDraft",
        vec![
            ("sales_organization", code(4)),
            ("distribution_channel", code(2)),
            ("division", code(2)),
            ("currency", currency()),
        ],
        &[
            "sales_organization",
            "distribution_channel",
            "division",
            "currency",
        ],
    );
}

/// Replaces the rules of `members` of component `schema`, keeping their descriptions and
/// deprecation, and sets its required members (when any).
fn set(
    schemas: &mut serde_json::Value,
    schema: &str,
    members: Vec<(&str, serde_json::Value)>,
    required: &[&str],
) {
    let s = &mut schemas[schema];
    for (member, mut rule) in members {
        let old = &s["properties"][member];
        for keep in ["description", "deprecated"] {
            if !old[keep].is_null() && rule.get(keep).is_none() {
                rule[keep] = old[keep].clone();
            }
        }
        s["properties"][member] = rule;
    }
    if !required.is_empty() {
        s["required"] = serde_json::json!(required);
    }
}

/// `ChangesetRequest`: `changes` is 1 to 100 changes, each one of the single operations by
/// `op`, with the body schema of that operation.
fn changeset_rules(schemas: &mut serde_json::Value) {
    use serde_json::json;
    let order = json!({"type": "string", "description": "Order id (UUID) or order number (10 digits)",
        "pattern": "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9]{10})$"});
    let version = json!({"type": ["integer", "null"], "minimum": i64::MIN, "maximum": i64::MAX,
        "description": "The order's version when the changeset began"});
    let item = integer(1, i64::from(i32::MAX));
    let variant = |op: &str, extra: Vec<(&str, serde_json::Value)>| {
        let mut properties = serde_json::Map::new();
        properties.insert("op".into(), json!({"type": "string", "enum": [op]}));
        properties.insert("order".into(), order.clone());
        properties.insert("version".into(), version.clone());
        let mut required = vec![json!("op"), json!("order")];
        for (name, rule) in extra {
            required.push(json!(name));
            properties.insert(name.into(), rule);
        }
        json!({"type": "object", "properties": properties, "required": required,
               "additionalProperties": false})
    };
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    schemas["ChangesetRequest"]["properties"]["changes"] = json!({
        "type": "array", "minItems": 1, "maxItems": super::changesets::MAX_CHANGES,
        "description": "The changes, applied in this order, all or none",
        "items": {"oneOf": [
            variant("update_order", vec![("changes", r("UpdateRequest"))]),
            variant("update_item", vec![("item_number", item.clone()), ("changes", r("ItemUpdateRequest"))]),
            variant("add_item", vec![("line", r("OrderLineDraft"))]),
            variant("remove_item", vec![("item_number", item)]),
            variant("cancel", vec![("changes", r("CancelRequest"))]),
        ]},
    });
    schemas["ChangesetRequest"]["required"] = json!(["changes"]);
    schemas["ChangesetRequest"]["additionalProperties"] = json!(false);
}

/// SAP's `SalesDocumentRjcnReason`: 2 upper-case letters or digits.
fn rejection_reason() -> serde_json::Value {
    serde_json::json!({"type": "string", "pattern": "^[A-Z0-9]{2}$", "example": "01"})
}

/// Free text of at most `max` characters without U+0000 (PostgreSQL `text` cannot hold it).
fn no_nul(max: usize) -> serde_json::Value {
    serde_json::json!({"type": "string", "maxLength": max, "pattern": r"^[^\x00]*$"})
}

/// The order search: the filter tree's levels ([`super::search::filter_schemas`]) and the
/// request's members with the bounds [`super::search::parse_search`] enforces.
fn search_rules(schemas: &mut serde_json::Value) {
    use crate::repository::search::{MAX_SKIP, MAX_SORT_KEYS, MAX_TOP, SearchField};
    use serde_json::json;
    for (name, schema) in super::search::filter_schemas() {
        schemas[name] = schema;
    }
    let fields: Vec<&str> = SearchField::ALL
        .into_iter()
        .map(SearchField::name)
        .collect();
    set(
        schemas,
        "SearchRequest",
        vec![
            (
                "filter",
                json!({"anyOf": [{"$ref": "#/components/schemas/SearchFilter"}, {"type": "null"}]}),
            ),
            (
                "order_by",
                json!({"type": ["array", "null"], "maxItems": MAX_SORT_KEYS,
                       "items": {"$ref": "#/components/schemas/SortKey"}}),
            ),
            ("top", nullable(integer(0, MAX_TOP))),
            ("skip", nullable(integer(0, MAX_SKIP))),
            ("count", json!({"type": ["boolean", "null"]})),
            ("include_items", json!({"type": ["boolean", "null"]})),
        ],
        &[],
    );
    schemas["SearchRequest"]["additionalProperties"] = json!(false);
    set(
        schemas,
        "SortKey",
        vec![
            ("field", json!({"type": "string", "enum": fields})),
            (
                "direction",
                json!({"type": ["string", "null"], "enum": ["asc", "desc", null]}),
            ),
        ],
        &["field"],
    );
    schemas["SortKey"]["additionalProperties"] = json!(false);
}
