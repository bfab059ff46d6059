//! HTTP face of the order service: routes, handlers, operational endpoints.

pub mod changesets;
pub mod extract;
pub mod life;
pub mod openapi;
pub mod problem;
pub mod search;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use order_domain::{
    CurrencyCode, CustomerId, CustomerReference, FieldError, MasterDataDraft, Money, OrderDraft,
    OrderNumber, OrderRequest, OrderStatus, SapOrderNumber, Sku, Unit,
};
use platform::correlation::{CorrelationId, IDEMPOTENCY_HEADER, MAX_CORRELATION_LEN};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Config;
use crate::error::ServiceError;
use crate::master_data::{CustomerRecord, MaterialRecord, UpsertCounts};
use crate::model::Order;
use crate::repository::{
    Cursor, ListFilter, MAX_RESERVATION, OrderRepository, PlaceOutcome, ReplayedBy, RequestContext,
    SapItemPricing, SapPricing, StatusChange,
};
use extract::{BodyLimit, JsonBody, OrderIdParam};

/// Header telling a client that its create was a replay of an earlier request.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Default and largest page sizes of the order list.
pub const DEFAULT_PAGE: i64 = 50;
/// Largest page size.
pub const MAX_PAGE: i64 = 200;

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The order store.
    pub repository: OrderRepository,
    /// The event broker as the outbox relay last saw it.
    pub kafka: crate::outbox::kafka::KafkaHealth,
}

/// The service's router. Layers, outermost first: correlation id (so every log line and
/// response carries it), then the timeout, the body limit and per-route metrics.
pub fn router(state: AppState, config: &Config) -> Router {
    let api = Router::new()
        .route("/api/v1/orders", post(create_order).get(list_orders))
        .route("/api/v1/orders/search", post(search::search_orders))
        .route(
            "/api/v1/orders/{id}",
            get(get_order).patch(life::update_order),
        )
        .route(
            "/api/v1/orders/by-number/{number}",
            get(get_order_by_number).patch(life::update_order),
        )
        .route("/api/v1/orders/{id}/transitions", post(transition_order))
        .route("/api/v1/orders/{id}/cancel", post(life::cancel_order))
        .route("/api/v1/orders/{id}/items", post(life::add_item))
        .route(
            "/api/v1/orders/{id}/items/{item_number}",
            patch(life::update_item).delete(life::remove_item),
        )
        .route("/api/v1/orders/{id}/status", post(life::report_status))
        .route(
            "/api/v1/orders/by-number/{number}/cancel",
            post(life::cancel_order),
        )
        .route(
            "/api/v1/orders/by-number/{number}/items",
            post(life::add_item),
        )
        .route(
            "/api/v1/orders/by-number/{number}/items/{item_number}",
            patch(life::update_item).delete(life::remove_item),
        )
        .route(
            "/api/v1/orders/by-number/{number}/status",
            post(life::report_status),
        )
        .route("/api/v1/orders/{id}/void", post(void_order))
        .route("/api/v1/orders/{id}/sap-order-number", put(link_sap_order))
        .route("/api/v1/orders/{id}/sap-link", post(link_sap_order))
        .route("/api/v1/changesets", post(changesets::apply_changeset))
        .route("/api/v1/order-numbers", post(reserve_order_numbers))
        .route("/api/v1/order-versions", post(lookup_order_versions))
        .route("/api/v1/master-data", put(upsert_master_data))
        .route("/api/v1/master-data/materials/{sku}", get(get_material))
        .route("/api/v1/master-data/customers/{id}", get(get_customer))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn(platform::http_metrics::middleware))
        .fallback(problem::not_found);
    let timeout = config.request_timeout;
    api.layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(Extension(BodyLimit(config.max_body_bytes)))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            enforce_timeout(timeout, req, next)
        }))
        .layer(middleware::from_fn(platform::correlation::middleware))
        .with_state(state)
}

async fn enforce_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ServiceError::RequestTimedOut(limit).into_response(),
    }
}

pub(crate) fn context(
    correlation: &CorrelationId,
    headers: &HeaderMap,
) -> Result<RequestContext, ServiceError> {
    let idempotency_key = match headers.get(&IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => {
            let key = v.to_str().ok().map(str::trim).unwrap_or("");
            if key.is_empty()
                || key.len() > MAX_CORRELATION_LEN
                || !key.chars().all(|c| c.is_ascii_graphic())
            {
                return Err(ServiceError::field(
                    "idempotency-key",
                    format!("must be 1 to {MAX_CORRELATION_LEN} printable ASCII characters"),
                ));
            }
            Some(key.to_owned())
        }
    };
    // W3C trace context: kept only when well-formed; the outbox row gets a child span of it.
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| order_events::traceparent::is_valid(v))
        .map(str::to_owned);
    Ok(RequestContext {
        correlation_id: correlation.0.clone(),
        idempotency_key,
        traceparent,
    })
}

fn record_order_on_span(order: &Order) {
    let span = tracing::Span::current();
    span.record("order_id", tracing::field::display(order.id));
    span.record("order_number", order.order_number.as_str());
    platform::otel::set_current("order_id", order.id.to_string());
    platform::otel::set_current("order_number", order.order_number.clone());
}

pub(crate) fn order_response(status: StatusCode, order: &Order) -> Response {
    let mut response = (status, Json(order)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&order_domain::version_etag(order.version)) {
        response.headers_mut().insert(http::header::ETAG, etag);
    }
    response
}

/// Create an order.
///
/// Values left out that SAP derives (item unit, currency, unit price) are completed from the
/// master data; what it cannot fill in is refused with 409 `master-data-incomplete` (the
/// request is valid, the stored master data lacks it). An `order_number` must have been
/// reserved (409 `order-number-not-reserved` when not). A replay answers with the first order and `Idempotent-Replayed: true`: `201`
/// when the `Idempotency-Key` matched, `200` when the reserved `order_number` did.
#[utoipa::path(post, path = "/api/v1/orders", request_body = OrderDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key: the same key and body return the first result")),
    responses((status = 201, body = Order, description = "Created (or replayed by Idempotency-Key)"),
      (status = 200, body = Order, description = "Replayed: the named order_number exists, created from the same body"),
      (status = 400, body = problem::Problem),
      (status = 409, body = problem::Problem, description = "Refused by stored state, not by the request: the Idempotency-Key was used before with another body (`idempotency-key-reused`, `order_id` of its order), the named order_number belongs to an order created from another body (type `urn:order-service:problem:order-number-taken`), or was never reserved with POST /api/v1/order-numbers (`order-number-not-reserved`); or the request leaves out a unit, the currency or a unit price that the master data cannot fill in, because it lacks the material, the customer, a matching sales area or a price per the unit or in the currency (`master-data-incomplete`, each such field in `errors`)"),
      (status = 413, body = problem::Problem), (status = 415, body = problem::Problem),
      (status = 422, body = problem::Problem)))]
async fn create_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    JsonBody(draft): JsonBody<OrderDraft>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let request = OrderRequest::parse(&draft).map_err(ServiceError::Validation)?;
    let outcome = state.repository.place_order(&request, &ctx).await?;
    let (order, status, replayed) = match outcome {
        PlaceOutcome::Created(o) => (o, StatusCode::CREATED, false),
        PlaceOutcome::Replayed(o, ReplayedBy::IdempotencyKey) => (o, StatusCode::CREATED, true),
        PlaceOutcome::Replayed(o, ReplayedBy::OrderNumber) => (o, StatusCode::OK, true),
    };
    record_order_on_span(&order);
    if replayed {
        tracing::info!(order_id = %order.id, "create replayed, no new order");
    } else {
        tracing::info!(order_id = %order.id, order_number = %order.order_number, "order created");
        metrics::counter!("orders_created_total").increment(1);
    }
    let mut response = order_response(status, &order);
    let h = response.headers_mut();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/orders/{}", order.id)) {
        h.insert(http::header::LOCATION, loc);
    }
    if replayed {
        h.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Body of a number reservation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveNumbersRequest {
    /// How many numbers, 1 to 10000.
    #[schema(example = 10)]
    #[serde(default, deserialize_with = "extract::whole_number")]
    pub count: Option<i64>,
}

/// Reserved order numbers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReservedNumbers {
    /// 10-digit numbers, ascending, never handed out again by the service.
    #[schema(example = json!(["8000000123", "8000000124"]))]
    pub numbers: Vec<String>,
}

/// Reserve order numbers from the service's range (SAP's external number range), for a caller
/// that names the same number in SAP and here (`order_number` on create).
#[utoipa::path(post, path = "/api/v1/order-numbers", request_body = ReserveNumbersRequest,
    responses((status = 201, body = ReservedNumbers), (status = 422, body = problem::Problem)))]
async fn reserve_order_numbers(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ReserveNumbersRequest>,
) -> Result<Response, ServiceError> {
    let count = required("count", body.count)?;
    if !(1..=MAX_RESERVATION).contains(&count) {
        return Err(ServiceError::field(
            "count",
            format!("must be a whole number from 1 to {MAX_RESERVATION}"),
        ));
    }
    let numbers = state.repository.reserve_numbers(count).await?;
    tracing::info!(count, first = ?numbers.first(), "order numbers reserved");
    Ok((StatusCode::CREATED, Json(ReservedNumbers { numbers })).into_response())
}

/// Largest number of ids one version look-up takes.
pub const MAX_VERSION_LOOKUP: usize = 500;

/// Body of a version look-up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionLookupRequest {
    /// Order ids (UUIDs), 1 to 500.
    #[schema(value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 500)]
    pub order_ids: Option<Vec<Value>>,
}

/// Current versions.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OrderVersions {
    /// One entry per id that names an order (unknown ids are left out), in no particular order.
    pub versions: Vec<crate::repository::OrderVersion>,
}

/// The current version and status of many orders at once: for a consumer of the order events
/// (sap-sync) that must not apply an event a later change already superseded, without a read of
/// each whole order. A query: it changes nothing.
#[utoipa::path(post, path = "/api/v1/order-versions", request_body = VersionLookupRequest,
    responses((status = 200, body = OrderVersions), (status = 400, body = problem::Problem),
      (status = 413, body = problem::Problem), (status = 422, body = problem::Problem)))]
async fn lookup_order_versions(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<VersionLookupRequest>,
) -> Result<Json<OrderVersions>, ServiceError> {
    let raw = required("order_ids", body.order_ids)?;
    if raw.is_empty() || raw.len() > MAX_VERSION_LOOKUP {
        return Err(ServiceError::field(
            "order_ids",
            format!("must hold 1 to {MAX_VERSION_LOOKUP} order ids"),
        ));
    }
    let mut ids = Vec::with_capacity(raw.len());
    let mut errors = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        match v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()) {
            Some(id) => ids.push(id),
            None => errors.push(FieldError::new(
                format!("order_ids[{i}]"),
                "must be an order id (a UUID)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    Ok(Json(OrderVersions {
        versions: state.repository.versions(&ids).await?,
    }))
}

/// Insert or replace materials, customers and sales areas, all in one transaction (nothing is
/// stored when any field is bad). Sales areas a customer has and the upload does not name are
/// kept. A SKU, customer or sales area named twice in one upload is taken as if the entries
/// came in uploads one after the other: the last entry wins (a customer named twice gets the
/// last entry's name and the sales areas of all its entries). The counts are of distinct rows.
#[utoipa::path(put, path = "/api/v1/master-data", request_body = MasterDataDraft,
    responses((status = 200, body = UpsertCounts), (status = 400, body = problem::Problem),
      (status = 413, body = problem::Problem), (status = 422, body = problem::Problem)))]
async fn upsert_master_data(
    State(state): State<AppState>,
    JsonBody(draft): JsonBody<MasterDataDraft>,
) -> Result<Json<UpsertCounts>, ServiceError> {
    let upsert = draft.parse().map_err(ServiceError::Validation)?;
    let counts = state.repository.master_data().upsert(&upsert).await?;
    tracing::info!(?counts, "master data upserted");
    Ok(Json(counts))
}

/// One material of the master data.
#[utoipa::path(get, path = "/api/v1/master-data/materials/{sku}", params(("sku" = String, Path)),
    responses((status = 200, body = MaterialRecord), (status = 404, body = problem::Problem)))]
async fn get_material(
    State(state): State<AppState>,
    axum::extract::Path(sku): axum::extract::Path<String>,
) -> Result<Json<MaterialRecord>, ServiceError> {
    let sku = Sku::parse(&sku).map_err(|e| ServiceError::field("sku", e.0))?;
    Ok(Json(
        state
            .repository
            .master_data()
            .material(sku.as_str())
            .await?,
    ))
}

/// One customer of the master data, with its sales areas.
#[utoipa::path(get, path = "/api/v1/master-data/customers/{id}", params(("id" = String, Path)),
    responses((status = 200, body = CustomerRecord), (status = 404, body = problem::Problem)))]
async fn get_customer(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<CustomerRecord>, ServiceError> {
    let id = CustomerId::parse(&id).map_err(|e| ServiceError::field("id", e.0))?;
    Ok(Json(
        state.repository.master_data().customer(id.as_str()).await?,
    ))
}

/// One order by id.
#[utoipa::path(get, path = "/api/v1/orders/{id}", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem)))]
async fn get_order(
    State(state): State<AppState>,
    OrderIdParam(id): OrderIdParam,
) -> Result<Response, ServiceError> {
    let order = state.repository.get(id).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// One order by its order number.
#[utoipa::path(get, path = "/api/v1/orders/by-number/{number}", params(("number" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem)))]
async fn get_order_by_number(
    State(state): State<AppState>,
    axum::extract::Path(number): axum::extract::Path<String>,
) -> Result<Response, ServiceError> {
    let number = OrderNumber::parse(&number).map_err(|e| ServiceError::field("number", e.0))?;
    let order = state.repository.get_by_number(number.as_str()).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// A page of orders.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OrderPage {
    /// Orders, newest first.
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| FieldError::new(field, "must be an RFC 3339 time or a YYYY-MM-DD date"))
}

/// Parses the list query string, naming every bad parameter.
fn parse_list_query(raw: Option<&str>) -> Result<ListFilter, ServiceError> {
    let mut f = ListFilter {
        limit: DEFAULT_PAGE,
        ..ListFilter::default()
    };
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        if !seen.insert(key.clone()) {
            errors.push(FieldError::new(&key, "given more than once"));
            continue;
        }
        match key.as_str() {
            // A filter is a value the field can hold (so the document can state it, and a
            // value PostgreSQL cannot store, such as NUL, never reaches a query).
            "customer_id" => match CustomerId::parse(&value) {
                Ok(v) => f.customer_id = Some(v.as_str().to_owned()),
                Err(e) => errors.push(FieldError::new("customer_id", e.0)),
            },
            "customer_reference" => match CustomerReference::parse(&value) {
                Ok(v) => f.customer_reference = Some(v.as_str().to_owned()),
                Err(e) => errors.push(FieldError::new("customer_reference", e.0)),
            },
            "sap_order_number" => match SapOrderNumber::parse(&value) {
                Ok(v) => f.sap_order_number = Some(v.as_str().to_owned()),
                Err(e) => errors.push(FieldError::new("sap_order_number", e.0)),
            },
            "status" => match value.parse::<OrderStatus>() {
                Ok(s) => f.status = Some(s),
                Err(e) => errors.push(FieldError::new("status", e)),
            },
            "created_after" => match parse_time("created_after", &value) {
                Ok(t) => f.created_after = Some(t),
                Err(e) => errors.push(e),
            },
            "created_before" => match parse_time("created_before", &value) {
                Ok(t) => f.created_before = Some(t),
                Err(e) => errors.push(e),
            },
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => f.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                )),
            },
            "cursor" => match Cursor::decode(&value) {
                Some(c) => f.after = Some(c),
                None => errors.push(FieldError::new(
                    "cursor",
                    "must be a cursor of this API (<microseconds>_<32 hex digits>)",
                )),
            },
            _ => errors.push(FieldError::new(&key, "is not a known query parameter")),
        }
    }
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(ServiceError::Validation(errors))
    }
}

/// List orders with filters and keyset pagination.
#[utoipa::path(get, path = "/api/v1/orders",
    params(("customer_id" = Option<String>, Query), ("customer_reference" = Option<String>, Query),
      ("status" = Option<String>, Query), ("sap_order_number" = Option<String>, Query),
      ("created_after" = Option<String>, Query), ("created_before" = Option<String>, Query),
      ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = OrderPage), (status = 422, body = problem::Problem)))]
async fn list_orders(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<OrderPage>, ServiceError> {
    let filter = parse_list_query(query.as_deref())?;
    let (items, next) = state.repository.list(&filter).await?;
    Ok(Json(OrderPage {
        items,
        next_cursor: next.map(|c| c.encode()),
    }))
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, ServiceError> {
    value.ok_or_else(|| ServiceError::field(field, "is required"))
}

/// Body of a status transition.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// Target status.
    #[schema(value_type = String, example = "confirmed")]
    pub to: Option<String>,
    /// Deprecated: the version the caller last saw. Send `If-Match` instead (it wins when
    /// both are sent).
    #[schema(deprecated)]
    #[serde(default, deserialize_with = "extract::whole_number")]
    pub version: Option<i64>,
}

/// Move an order through its state machine.
#[utoipa::path(post, path = "/api/v1/orders/{id}/transitions", request_body = TransitionRequest,
    params(("id" = uuid::Uuid, Path), life::IfMatchOptional),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem),
      (status = 409, body = problem::Problem),
      (status = 412, body = problem::Problem, description = "If-Match (or the body's version) is not the order's current version"),
      (status = 422, body = problem::Problem),
      (status = 428, body = problem::Problem, description = "Neither If-Match nor the body's version")))]
async fn transition_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderIdParam(id): OrderIdParam,
    JsonBody(body): JsonBody<TransitionRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let to = required("to", body.to)?
        .parse::<OrderStatus>()
        .map_err(|e| ServiceError::field("to", e))?;
    if matches!(to, OrderStatus::Cancelled | OrderStatus::Voided) {
        return Err(ServiceError::field(
            "to",
            "use the cancel or void endpoint, which record a reason",
        ));
    }
    let version = life::required_version(&headers, body.version)?;
    let change = StatusChange {
        to,
        expected_version: Some(version),
        reason: None,
    };
    let order = state.repository.change_status(id, &change, &ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

pub(crate) fn checked_reason(reason: Option<String>) -> Result<Option<String>, ServiceError> {
    match reason {
        Some(r) if r.chars().count() > 200 => Err(ServiceError::field(
            "reason",
            "must be at most 200 characters",
        )),
        other => Ok(other),
    }
}

/// Body of a void (compensation).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// Why, e.g. `sap_rejected`.
    pub reason: Option<String>,
}

/// Void an order (compensation by the migration machinery; idempotent, no version needed).
#[utoipa::path(post, path = "/api/v1/orders/{id}/void", request_body = VoidRequest,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem),
      (status = 409, body = problem::Problem)))]
async fn void_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderIdParam(id): OrderIdParam,
    JsonBody(body): JsonBody<VoidRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let change = StatusChange {
        to: OrderStatus::Voided,
        expected_version: None,
        reason: checked_reason(body.reason)?,
    };
    let order = state.repository.change_status(id, &change, &ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Body of an SAP link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SapLinkRequest {
    /// SAP's sales order number.
    pub sap_order_number: Option<String>,
    /// SAP's pricing of the order, adopted in the same transaction as the link.
    pub pricing: Option<SapPricingDraft>,
}

/// SAP's pricing as sent: each value given replaces the order's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SapPricingDraft {
    /// SAP's `TransactionCurrency`.
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    /// SAP's `TotalNetAmount` (decimal string).
    #[schema(example = "25.00")]
    pub total_net_amount: Option<String>,
    /// SAP's values per item.
    pub items: Option<Vec<SapItemPricingDraft>>,
}

/// SAP's values for one item as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SapItemPricingDraft {
    /// The item (10, 20, ...). Required.
    #[schema(example = 10)]
    #[serde(default, deserialize_with = "extract::whole_number")]
    pub item_number: Option<i32>,
    /// SAP's `RequestedQuantityUnit`.
    #[schema(example = "PC")]
    pub unit: Option<String>,
    /// Price per unit (decimal string).
    #[schema(example = "12.50")]
    pub unit_price: Option<String>,
    /// SAP's `NetAmount` (decimal string).
    #[schema(example = "25.00")]
    pub net_amount: Option<String>,
}

fn parse_field<T>(
    errors: &mut Vec<FieldError>,
    field: String,
    raw: Option<&String>,
    parse: impl FnOnce(&str) -> Result<T, order_domain::ValueError>,
) -> Option<T> {
    match parse(raw?) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(FieldError::new(field, e.0));
            None
        }
    }
}

impl SapPricingDraft {
    fn parse(&self) -> Result<SapPricing, Vec<FieldError>> {
        let mut e = Vec::new();
        let currency = parse_field(
            &mut e,
            "pricing.currency".into(),
            self.currency.as_ref(),
            CurrencyCode::parse,
        );
        let total_net_amount = parse_field(
            &mut e,
            "pricing.total_net_amount".into(),
            self.total_net_amount.as_ref(),
            Money::parse,
        );
        let mut items = Vec::new();
        for (i, item) in self.items.as_deref().unwrap_or_default().iter().enumerate() {
            let at = |f: &str| format!("pricing.items[{i}].{f}");
            let unit = parse_field(&mut e, at("unit"), item.unit.as_ref(), Unit::parse);
            let unit_price = parse_field(
                &mut e,
                at("unit_price"),
                item.unit_price.as_ref(),
                Money::parse,
            );
            let net_amount = parse_field(
                &mut e,
                at("net_amount"),
                item.net_amount.as_ref(),
                Money::parse,
            );
            match item.item_number {
                Some(n) if n > 0 => items.push(SapItemPricing {
                    item_number: n,
                    unit,
                    unit_price,
                    net_amount,
                }),
                Some(_) => e.push(FieldError::new(at("item_number"), "must be positive")),
                None => e.push(FieldError::new(at("item_number"), "is required")),
            }
        }
        if e.is_empty() {
            Ok(SapPricing {
                currency,
                total_net_amount,
                items,
            })
        } else {
            Err(e)
        }
    }
}

/// Link the SAP sales order number, optionally adopting SAP's pricing in the same transaction
/// (idempotent: the same number and values again change nothing). Served at
/// `POST /api/v1/orders/{id}/sap-link` and, as before, `PUT /api/v1/orders/{id}/sap-order-number`.
#[utoipa::path(post, path = "/api/v1/orders/{id}/sap-link", request_body = SapLinkRequest,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem),
      (status = 409, body = problem::Problem, description = "Refused by stored state: the order is linked to another SAP order or that SAP order to another order (`sap-order-number-conflict`), or `pricing.items` names an item number the order does not have (`sap-pricing-item-unknown`, each in `errors`)"),
      (status = 422, body = problem::Problem)))]
async fn link_sap_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderIdParam(id): OrderIdParam,
    JsonBody(body): JsonBody<SapLinkRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let raw = required("sap_order_number", body.sap_order_number)?;
    let number =
        SapOrderNumber::parse(&raw).map_err(|e| ServiceError::field("sap_order_number", e.0));
    let pricing = body
        .pricing
        .as_ref()
        .map(SapPricingDraft::parse)
        .transpose();
    let (number, pricing) = match (number, pricing) {
        (Ok(n), Ok(p)) => (n, p),
        (n, p) => {
            let mut errors = Vec::new();
            if let Err(ServiceError::Validation(e)) = n {
                errors.extend(e);
            }
            if let Err(e) = p {
                errors.extend(e);
            }
            return Err(ServiceError::Validation(errors));
        }
    };
    let order = state
        .repository
        .link_sap_order(id, number.as_str(), pricing.as_ref(), &ctx)
        .await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Liveness: the process serves HTTP.
async fn health() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database answers and every migration is applied (else 503). Also reports the
/// event broker and the outbox backlog: a Kafka outage does not make the service unready,
/// since orders are still accepted and their events wait in the outbox ("degraded").
async fn ready(State(state): State<AppState>) -> Response {
    let pool = state.repository.pool();
    let (status, database, migrations) = match crate::db::migrations_applied(pool).await {
        Ok(true) => (StatusCode::OK, "ok", "ok"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "ok", "pending"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "unreachable", "unknown")
        }
    };
    let kafka = state.kafka.current();
    let outbox = match crate::outbox::maintenance::backlog(pool).await {
        Ok(b) => serde_json::json!({
            "status": "ok", "backlog": b.pending, "oldest_age_seconds": b.oldest_age_seconds,
        }),
        Err(_) => serde_json::json!({"status": "unknown"}),
    };
    let overall = match (status, kafka.status) {
        (StatusCode::OK, "ok" | "disabled") => "ready",
        (StatusCode::OK, _) => "degraded",
        _ => "not_ready",
    };
    let body = serde_json::json!({
        "status": overall,
        "checks": {"database": database, "migrations": migrations, "kafka": kafka, "outbox": outbox},
    });
    (status, Json(body)).into_response()
}

/// Prometheus metrics, with the pool's current figures.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.repository.pool();
    metrics::gauge!("db_pool_connections", "state" => "open").set(f64::from(pool.size()));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(pool.num_idle() as f64);
    let lane = state.repository.lane();
    metrics::gauge!("db_create_lane_connections", "state" => "max").set(lane.size() as f64);
    metrics::gauge!("db_create_lane_connections", "state" => "idle").set(lane.idle() as f64);
    // Sets outbox_backlog_events and outbox_oldest_pending_age_seconds.
    if let Err(e) = crate::outbox::maintenance::backlog(pool).await {
        tracing::warn!(error = %e, "metrics: outbox backlog unavailable");
    }
    platform::http_metrics::render().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_name_every_bad_parameter() {
        let err = parse_list_query(Some("limit=0&status=lost&colour=red&cursor=zz")).unwrap_err();
        let ServiceError::Validation(errors) = err else {
            panic!("expected validation")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "status", "colour", "cursor"]);
    }

    #[test]
    fn list_queries_accept_dates_and_times() {
        let f = parse_list_query(Some(
            "created_after=2026-01-01&created_before=2026-02-01T10:00:00Z&limit=5",
        ))
        .unwrap();
        assert_eq!(f.limit, 5);
        assert!(f.created_after.unwrap() < f.created_before.unwrap());
    }

    #[test]
    fn list_filters_must_be_values_the_field_can_hold() {
        let err = parse_list_query(Some(
            "customer_id=&customer_reference=%20x&sap_order_number=a%00b",
        ))
        .unwrap_err();
        let ServiceError::Validation(errors) = err else {
            panic!("expected validation")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["customer_id", "customer_reference", "sap_order_number"]
        );
        let f = parse_list_query(Some("customer_id=17100001&customer_reference=PO%201")).unwrap();
        assert_eq!(f.customer_reference.as_deref(), Some("PO 1"));
    }
}
