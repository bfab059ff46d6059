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

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(build())
}
