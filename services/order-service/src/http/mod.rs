//! HTTP face of the order service: routes, handlers, operational endpoints.

pub mod extract;
pub mod openapi;
pub mod problem;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use order_domain::{FieldError, NewOrder, OrderDraft, OrderStatus, SapOrderNumber};
use platform::correlation::{CorrelationId, IDEMPOTENCY_HEADER, MAX_CORRELATION_LEN};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::ServiceError;
use crate::model::Order;
use crate::repository::{
    Cursor, ListFilter, OrderPatch, OrderRepository, PlaceOutcome, RequestContext, StatusChange,
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
        .route("/api/v1/orders/{id}", get(get_order).patch(update_order))
        .route(
            "/api/v1/orders/by-number/{number}",
            get(get_order_by_number),
        )
        .route("/api/v1/orders/{id}/transitions", post(transition_order))
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route("/api/v1/orders/{id}/void", post(void_order))
        .route("/api/v1/orders/{id}/sap-order-number", put(link_sap_order))
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

fn context(
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
    tracing::Span::current().record("order_id", tracing::field::display(order.id));
}

fn order_response(status: StatusCode, order: &Order) -> Response {
    let mut response = (status, Json(order)).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", order.version)) {
        response.headers_mut().insert(http::header::ETAG, etag);
    }
    response
}

/// Create an order.
#[utoipa::path(post, path = "/api/v1/orders", request_body = OrderDraft,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe key: the same key and body return the first result")),
    responses((status = 201, body = Order), (status = 400, body = problem::Problem),
      (status = 413, body = problem::Problem), (status = 415, body = problem::Problem),
      (status = 422, body = problem::Problem)))]
async fn create_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    JsonBody(draft): JsonBody<OrderDraft>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let order = NewOrder::parse(&draft).map_err(ServiceError::Validation)?;
    let outcome = state.repository.place_order(&order, &ctx).await?;
    let (order, replayed) = match outcome {
        PlaceOutcome::Created(o) => (o, false),
        PlaceOutcome::Replayed(o) => (o, true),
    };
    record_order_on_span(&order);
    if replayed {
        tracing::info!(order_id = %order.id, "create replayed, no new order");
    } else {
        tracing::info!(order_id = %order.id, order_number = %order.order_number, "order created");
        metrics::counter!("orders_created_total").increment(1);
    }
    let mut response = order_response(StatusCode::CREATED, &order);
    let h = response.headers_mut();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/orders/{}", order.id)) {
        h.insert(http::header::LOCATION, loc);
    }
    if replayed {
        h.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
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
    let order = state.repository.get_by_number(&number).await?;
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
            "customer_id" => f.customer_id = Some(value),
            "customer_reference" => f.customer_reference = Some(value),
            "sap_order_number" => f.sap_order_number = Some(value),
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
                None => errors.push(FieldError::new("cursor", "is not a cursor this API issued")),
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
    /// The version the caller last saw.
    pub version: Option<i64>,
}

/// Move an order through its state machine.
#[utoipa::path(post, path = "/api/v1/orders/{id}/transitions", request_body = TransitionRequest,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem),
      (status = 409, body = problem::Problem), (status = 422, body = problem::Problem)))]
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
    let version = required("version", body.version)?;
    let change = StatusChange {
        to,
        expected_version: Some(version),
        reason: None,
    };
    let order = state.repository.change_status(id, &change, &ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Body of a cancellation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The version the caller last saw.
    pub version: Option<i64>,
    /// Why.
    pub reason: Option<String>,
}

/// Cancel an order (only before shipping).
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", request_body = CancelRequest,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem),
      (status = 409, body = problem::Problem)))]
async fn cancel_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderIdParam(id): OrderIdParam,
    JsonBody(body): JsonBody<CancelRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let change = StatusChange {
        to: OrderStatus::Cancelled,
        expected_version: Some(required("version", body.version)?),
        reason: checked_reason(body.reason)?,
    };
    let order = state.repository.change_status(id, &change, &ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

fn checked_reason(reason: Option<String>) -> Result<Option<String>, ServiceError> {
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
}

/// Link the SAP sales order number (idempotent for the same number).
#[utoipa::path(put, path = "/api/v1/orders/{id}/sap-order-number", request_body = SapLinkRequest,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem),
      (status = 409, body = problem::Problem)))]
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
        SapOrderNumber::parse(&raw).map_err(|e| ServiceError::field("sap_order_number", e.0))?;
    let order = state
        .repository
        .link_sap_order(id, number.as_str(), &ctx)
        .await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Body of a header update. Absent fields stay as they are; `null` clears.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The version the caller last saw.
    pub version: Option<i64>,
    /// New customer reference, or null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub customer_reference: Option<Option<String>>,
    /// New requested delivery date (YYYY-MM-DD), or null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub requested_delivery_date: Option<Option<String>>,
    /// Keys merged into the header specifications (a null value removes the key).
    #[schema(value_type = Option<Object>)]
    pub specifications: Option<Map<String, Value>>,
}

/// Distinguishes "absent" (outer `None`) from "null" (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Update header fields of an order that is not yet shipped.
#[utoipa::path(patch, path = "/api/v1/orders/{id}", request_body = UpdateRequest,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, body = problem::Problem),
      (status = 409, body = problem::Problem), (status = 422, body = problem::Problem)))]
async fn update_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderIdParam(id): OrderIdParam,
    JsonBody(body): JsonBody<UpdateRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let mut errors = Vec::new();
    let customer_reference = match body.customer_reference {
        Some(Some(r)) => match order_domain::CustomerReference::parse(&r) {
            Ok(v) => Some(Some(v.as_str().to_owned())),
            Err(e) => {
                errors.push(FieldError::new("customer_reference", e.0));
                None
            }
        },
        other => other.map(|_| None),
    };
    let requested_delivery_date = match body.requested_delivery_date {
        Some(Some(d)) => match NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
            Ok(v) => Some(Some(v)),
            Err(_) => {
                errors.push(FieldError::new(
                    "requested_delivery_date",
                    "must be a calendar date written YYYY-MM-DD",
                ));
                None
            }
        },
        other => other.map(|_| None),
    };
    if body.version.is_none() {
        errors.push(FieldError::new("version", "is required"));
    }
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    let patch = OrderPatch {
        expected_version: body.version.unwrap_or_default(),
        customer_reference,
        requested_delivery_date,
        specifications: body.specifications,
    };
    let order = state.repository.update(id, &patch, &ctx).await?;
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
}
