//! The OpenAPI 3 document, generated from the handler and type annotations.

use axum::Json;
use utoipa::OpenApi;

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
        super::cancel_order,
        super::void_order,
        super::link_sap_order,
        super::update_order,
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
        super::CancelRequest,
        super::VoidRequest,
        super::SapLinkRequest,
        super::SapPricingDraft,
        super::SapItemPricingDraft,
        super::UpdateRequest,
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

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
