//! The order's life after its create, at the REST face: header changes, line changes,
//! cancellation and the statuses SAP reports. Every operation is served under
//! `/api/v1/orders/{id}/...` and, for callers that hold only the order number (the SAP-facing
//! proxy, sap-sync), under `/api/v1/orders/by-number/{number}/...` with the same bodies and
//! answers.
//!
//! Changes need the caller's version: `If-Match: W/"<version>"` (the ETag of every order
//! answer). Missing: 428; stale: 412. SAP's status reports may leave it out (they are facts,
//! and idempotent).

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{FromRequestParts, State};
use axum::response::Response;
use chrono::NaiveDate;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use order_domain::{
    FieldError, OrderDraft, OrderLineDraft, OrderRequest, OrderStatus, Quantity, RejectionReason,
};
use platform::correlation::CorrelationId;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::extract::JsonBody;
use super::{AppState, REPLAYED_HEADER, checked_reason, context, order_response, problem};
use crate::error::ServiceError;
use crate::model::Order;
use crate::repository::{HeaderPatch, ItemPatch, OrderEdit, OrderKey, ReportOutcome};

/// The order addressed by the path: `{id}` (a UUID) or `{number}` (the order number).
#[derive(Debug, Clone)]
pub struct OrderKeyParam(pub OrderKey);

/// The `{item_number}` path parameter.
#[derive(Debug, Clone, Copy)]
pub struct ItemNumberParam(pub i32);

async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<HashMap<String, String>, ServiceError> {
    axum::extract::Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map(|p| p.0)
        .map_err(|_| ServiceError::field("id", "missing order id"))
}

impl<S: Send + Sync> FromRequestParts<S> for OrderKeyParam {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        if let Some(raw) = params.get("id") {
            return Uuid::parse_str(raw)
                .map(|id| Self(OrderKey::Id(id)))
                .map_err(|_| {
                    ServiceError::field("id", format!("{raw:?} is not an order id (UUID)"))
                });
        }
        match params.get("number") {
            Some(n) => order_domain::OrderNumber::parse(n)
                .map(|n| Self(OrderKey::Number(n.as_str().to_owned())))
                .map_err(|e| ServiceError::field("number", e.0)),
            None => Err(ServiceError::field("id", "missing order id")),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ItemNumberParam {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        let raw = params.get("item_number").map(String::as_str).unwrap_or("");
        match raw.parse::<i32>() {
            Ok(n) if n > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(Self(n)),
            _ => Err(ServiceError::field(
                "item_number",
                format!("{raw:?} is not an item number (a positive whole number such as 10)"),
            )),
        }
    }
}

/// The version in `If-Match`, when sent: one entity tag, `W/"<version>"` or `"<version>"`
/// (compared by value: the version is the order's only validator). `*` is refused, since a
/// change must name the version it was made on.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ServiceError> {
    let Some(raw) = headers.get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ServiceError::field(
            "if-match",
            "must be the ETag of the order, W/\"<version>\" (one entity tag)",
        )
    };
    let text = raw.to_str().map_err(|_| bad())?;
    // An empty field names no entity tag: refused like any other malformed one (the document
    // states the pattern), never taken for "no precondition".
    order_domain::parse_version_etag(text)
        .map(Some)
        .ok_or_else(bad)
}

/// The caller's version: `If-Match`, else (for the endpoints that had it before `If-Match`)
/// the body's `version`; neither is a 428.
pub fn required_version(headers: &HeaderMap, body: Option<i64>) -> Result<i64, ServiceError> {
    match (if_match(headers)?, body) {
        (Some(v), _) | (None, Some(v)) => Ok(v),
        (None, None) => Err(ServiceError::PreconditionRequired),
    }
}

/// Body of a header update. Absent fields stay as they are; `null` clears.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// Deprecated: the version the caller last saw. Send `If-Match` instead (it wins when both
    /// are sent).
    #[schema(deprecated)]
    #[serde(default, deserialize_with = "super::extract::whole_number")]
    pub version: Option<i64>,
    /// New customer reference (SAP `PurchaseOrderByCustomer`, 1 to 35 characters), or null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 35)]
    pub customer_reference: Option<Option<String>>,
    /// New requested delivery date (`YYYY-MM-DD`), or null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Date)]
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

/// Update header fields (customer reference, requested delivery date, specifications) of an
/// order that is not yet shipped. Publishes `order.updated` with `changed_fields`; a change
/// that changes nothing answers the order unchanged (no new version, no event).
#[utoipa::path(patch, path = "/api/v1/orders/{id}", request_body = UpdateRequest,
    params(("id" = uuid::Uuid, Path), IfMatch),
    responses((status = 200, body = Order, headers(("ETag" = String))),
      (status = 400, body = problem::Problem, content_type = "application/problem+json"),
      (status = 404, body = problem::Problem, content_type = "application/problem+json"),
      (status = 409, body = problem::Problem, content_type = "application/problem+json", description = "The order is shipped, delivered, billed, cancelled or voided"),
      (status = 412, body = problem::Problem, content_type = "application/problem+json", description = "If-Match is not the order's current version"),
      (status = 413, body = problem::Problem, content_type = "application/problem+json"),
      (status = 415, body = problem::Problem, content_type = "application/problem+json"),
      (status = 422, body = problem::Problem, content_type = "application/problem+json"),
      (status = 428, body = problem::Problem, content_type = "application/problem+json", description = "If-Match is missing")))]
pub async fn update_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderKeyParam(key): OrderKeyParam,
    JsonBody(body): JsonBody<UpdateRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let body_version = body.version;
    let edit = header_edit(body)?;
    let version = required_version(&headers, body_version)?;
    let order = state.repository.edit(&key, version, &edit, &ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Add a line. The body is an order line as on create; what SAP derives (unit, price) is
/// completed from master data in the order's currency (409 `master-data-incomplete` when it
/// cannot be). The line gets the next item number
/// (the highest the order ever had + 10). Answers 201 with the order.
#[utoipa::path(post, path = "/api/v1/orders/{id}/items", request_body = OrderLineDraft,
    params(("id" = uuid::Uuid, Path), IfMatch),
    responses((status = 201, body = Order, headers(("ETag" = String), ("Location" = String))),
      (status = 400, body = problem::Problem, content_type = "application/problem+json"),
      (status = 404, body = problem::Problem, content_type = "application/problem+json"),
      (status = 409, body = problem::Problem, content_type = "application/problem+json", description = "Refused by stored state: the order can no longer be changed; or the line leaves out its unit or unit price and the master data cannot fill it in, because it lacks the material or a price per that unit or in the order's currency (type `urn:order-service:problem:master-data-incomplete`, each such field in `errors`)"),
      (status = 412, body = problem::Problem, content_type = "application/problem+json"),
      (status = 413, body = problem::Problem, content_type = "application/problem+json"),
      (status = 415, body = problem::Problem, content_type = "application/problem+json"),
      (status = 422, body = problem::Problem, content_type = "application/problem+json"),
      (status = 428, body = problem::Problem, content_type = "application/problem+json")))]
pub async fn add_item(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderKeyParam(key): OrderKeyParam,
    JsonBody(line): JsonBody<OrderLineDraft>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let edit = add_item_edit(line)?;
    let version = required_version(&headers, None)?;
    let order = state.repository.edit(&key, version, &edit, &ctx).await?;
    let mut response = order_response(StatusCode::CREATED, &order);
    if let Some(item) = order.items.iter().map(|i| i.item_number).max()
        && let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/orders/{}/items/{item}", order.id))
    {
        response.headers_mut().insert(http::header::LOCATION, loc);
    }
    Ok(response)
}

/// Body of a line change: the quantity, the rejection, or both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemUpdateRequest {
    /// New quantity: a decimal string greater than zero, at most 3 decimals. A rejected line
    /// takes it too (as in S/4) and stays rejected.
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]{1,3})?$", example = "3")]
    pub quantity: Option<String>,
    /// Reject the line with SAP's reason code (`SalesDocumentRjcnReason`, 2 characters, e.g.
    /// `01`), or `null` to reopen it. A rejected line no longer counts towards the total.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^[A-Z0-9]{2}$", example = "01")]
    pub rejection_reason: Option<Option<String>>,
}

/// Change a line's quantity and/or reject it (or reopen it). Publishes `order.updated` with
/// `changed_fields` `items` (and `total_net_amount` when it moved).
#[utoipa::path(patch, path = "/api/v1/orders/{id}/items/{item_number}", request_body = ItemUpdateRequest,
    params(("id" = uuid::Uuid, Path), ("item_number" = i32, Path, minimum = 1), IfMatch),
    responses((status = 200, body = Order, headers(("ETag" = String))),
      (status = 400, body = problem::Problem, content_type = "application/problem+json"),
      (status = 404, body = problem::Problem, content_type = "application/problem+json", description = "No such order, or no such item"),
      (status = 409, body = problem::Problem, content_type = "application/problem+json", description = "The order is delivered, billed, shipped, cancelled or voided"),
      (status = 412, body = problem::Problem, content_type = "application/problem+json"),
      (status = 413, body = problem::Problem, content_type = "application/problem+json"),
      (status = 415, body = problem::Problem, content_type = "application/problem+json"),
      (status = 422, body = problem::Problem, content_type = "application/problem+json"),
      (status = 428, body = problem::Problem, content_type = "application/problem+json")))]
pub async fn update_item(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderKeyParam(key): OrderKeyParam,
    ItemNumberParam(item_number): ItemNumberParam,
    JsonBody(body): JsonBody<ItemUpdateRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let edit = item_edit(item_number, body)?;
    let version = required_version(&headers, None)?;
    let order = state.repository.edit(&key, version, &edit, &ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Remove a line. The last line that is not rejected cannot be removed (reject it or cancel
/// the order instead). Publishes `order.updated` with `changed_fields` `items`.
#[utoipa::path(delete, path = "/api/v1/orders/{id}/items/{item_number}",
    params(("id" = uuid::Uuid, Path), ("item_number" = i32, Path, minimum = 1), IfMatch),
    responses((status = 200, body = Order, headers(("ETag" = String))),
      (status = 404, body = problem::Problem, content_type = "application/problem+json", description = "No such order, or no such item"),
      (status = 409, body = problem::Problem, content_type = "application/problem+json", description = "The order can no longer be changed, or this is its last open line"),
      (status = 412, body = problem::Problem, content_type = "application/problem+json"),
      (status = 422, body = problem::Problem, content_type = "application/problem+json"),
      (status = 428, body = problem::Problem, content_type = "application/problem+json")))]
pub async fn remove_item(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderKeyParam(key): OrderKeyParam,
    ItemNumberParam(item_number): ItemNumberParam,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let version = required_version(&headers, None)?;
    let order = state
        .repository
        .edit(&key, version, &OrderEdit::RemoveItem { item_number }, &ctx)
        .await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Body of a cancellation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Deprecated: the version the caller last saw. Send `If-Match` instead.
    #[schema(deprecated)]
    #[serde(default, deserialize_with = "super::extract::whole_number")]
    pub version: Option<i64>,
    /// Why, free text (at most 200 characters), kept as the order's `status_reason`.
    #[schema(max_length = 200)]
    pub reason: Option<String>,
    /// SAP's reason code put on every open line (`SalesDocumentRjcnReason`); default `00`.
    #[schema(pattern = "^[A-Z0-9]{2}$", example = "01")]
    pub rejection_reason: Option<String>,
}

/// Cancel an order (only before shipping). SAP cancels by rejecting every line, so every open
/// line gets `rejection_reason` (the one given, else `00`) and the total becomes 0. Publishes
/// `order.cancelled`.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", request_body = CancelRequest,
    params(("id" = uuid::Uuid, Path), IfMatch),
    responses((status = 200, body = Order, headers(("ETag" = String))),
      (status = 400, body = problem::Problem, content_type = "application/problem+json"),
      (status = 404, body = problem::Problem, content_type = "application/problem+json"),
      (status = 409, body = problem::Problem, content_type = "application/problem+json", description = "The order is shipped, delivered, billed, cancelled or voided"),
      (status = 412, body = problem::Problem, content_type = "application/problem+json"),
      (status = 413, body = problem::Problem, content_type = "application/problem+json"),
      (status = 415, body = problem::Problem, content_type = "application/problem+json"),
      (status = 422, body = problem::Problem, content_type = "application/problem+json"),
      (status = 428, body = problem::Problem, content_type = "application/problem+json")))]
pub async fn cancel_order(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderKeyParam(key): OrderKeyParam,
    JsonBody(body): JsonBody<CancelRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let body_version = body.version;
    let edit = cancel_edit(body)?;
    let version = required_version(&headers, body_version)?;
    let order = state.repository.edit(&key, version, &edit, &ctx).await?;
    Ok(order_response(StatusCode::OK, &order))
}

/// Body of a status report from SAP.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusReportRequest {
    /// What SAP did: `delivered` (goods issue posted) or `billed` (billing document created).
    #[schema(value_type = String, pattern = "^(delivered|billed)$", example = "delivered")]
    pub status: Option<String>,
    /// Who reports it, for the log (e.g. `sap-sync`), at most 64 characters.
    #[schema(max_length = 64, example = "sap-sync")]
    pub source: Option<String>,
}

/// Report a status SAP reached (`delivered`, `billed`). Idempotent: a status the order already
/// has (or has passed: `delivered` on a billed order) answers 200 with the order unchanged,
/// `Idempotent-Replayed: true` and no event. Otherwise one `order.status_changed` with
/// `previous_status`. `If-Match` is optional here (reports are facts); when sent it must match.
#[utoipa::path(post, path = "/api/v1/orders/{id}/status", request_body = StatusReportRequest,
    params(("id" = uuid::Uuid, Path), IfMatchOptional),
    responses((status = 200, body = Order, headers(("ETag" = String))),
      (status = 400, body = problem::Problem, content_type = "application/problem+json"),
      (status = 404, body = problem::Problem, content_type = "application/problem+json"),
      (status = 409, body = problem::Problem, content_type = "application/problem+json", description = "The order is cancelled or voided"),
      (status = 412, body = problem::Problem, content_type = "application/problem+json"),
      (status = 413, body = problem::Problem, content_type = "application/problem+json"),
      (status = 415, body = problem::Problem, content_type = "application/problem+json"),
      (status = 422, body = problem::Problem, content_type = "application/problem+json")))]
pub async fn report_status(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    OrderKeyParam(key): OrderKeyParam,
    JsonBody(body): JsonBody<StatusReportRequest>,
) -> Result<Response, ServiceError> {
    let ctx = context(&correlation, &headers)?;
    let reported = match body.status.as_deref() {
        Some("delivered") => OrderStatus::Delivered,
        Some("billed") => OrderStatus::Billed,
        Some(_) => {
            return Err(ServiceError::field(
                "status",
                "must be delivered or billed (the statuses SAP reports)",
            ));
        }
        None => return Err(ServiceError::field("status", "is required")),
    };
    let source = body.source.unwrap_or_default();
    if source.chars().count() > 64 || source.chars().any(char::is_control) {
        return Err(ServiceError::field(
            "source",
            "must be at most 64 characters without control characters",
        ));
    }
    let expected = if_match(&headers)?;
    let outcome = state
        .repository
        .report_status(&key, reported, expected, &ctx)
        .await?;
    let (order, replayed): (Order, bool) = match outcome {
        ReportOutcome::Applied(o) => (o, false),
        ReportOutcome::AlreadyThere(o) => (o, true),
    };
    tracing::info!(order_id = %order.id, status = %reported, source, replayed, "status reported");
    let mut response = order_response(StatusCode::OK, &order);
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The required `If-Match` header of a change.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatch {
    /// The ETag of the order the change is made on, `W/"<version>"` (from any order answer).
    /// Missing: 428; not the current version: 412.
    #[param(
        rename = "If-Match",
        pattern = r#"^(W/)?"[0-9]{1,18}"$"#,
        example = r#"W/"1""#
    )]
    if_match: String,
}

/// The optional `If-Match` header of a status report or of an older endpoint (transitions).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchOptional {
    /// When sent: the ETag of the order, `W/"<version>"`; not the current version: 412.
    #[param(
        rename = "If-Match",
        pattern = r#"^(W/)?"[0-9]{1,18}"$"#,
        example = r#"W/"1""#
    )]
    if_match: Option<String>,
}

/// The header change a body asks for (its fields checked as on create).
pub(crate) fn header_edit(body: UpdateRequest) -> Result<OrderEdit, ServiceError> {
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
        // As on create: exactly `YYYY-MM-DD` (chrono alone would take `2027-1-5`).
        Some(Some(d)) => match NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
            Ok(v) if d.len() == 10 => Some(Some(v)),
            _ => {
                errors.push(FieldError::new(
                    "requested_delivery_date",
                    "must be a calendar date written YYYY-MM-DD",
                ));
                None
            }
        },
        other => other.map(|_| None),
    };
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    Ok(OrderEdit::Header(HeaderPatch {
        customer_reference,
        requested_delivery_date,
        specifications: body.specifications,
    }))
}

/// The line a body adds, parsed as the one line of a create (the create's rules to the
/// letter).
pub(crate) fn add_item_edit(line: OrderLineDraft) -> Result<OrderEdit, ServiceError> {
    let draft = OrderDraft {
        customer_id: Some("0".into()),
        items: Some(vec![line]),
        ..OrderDraft::default()
    };
    let mut request = OrderRequest::parse(&draft).map_err(|errors| {
        ServiceError::Validation(
            errors
                .into_iter()
                .map(|e| match e.field.strip_prefix("items[0].") {
                    Some(rest) => FieldError::new(rest, e.message),
                    None => e,
                })
                .collect(),
        )
    })?;
    Ok(OrderEdit::AddItem(request.lines.remove(0)))
}

/// The line change a body asks for.
pub(crate) fn item_edit(
    item_number: i32,
    body: ItemUpdateRequest,
) -> Result<OrderEdit, ServiceError> {
    let mut errors = Vec::new();
    let quantity = match body.quantity.as_deref().map(Quantity::parse) {
        Some(Ok(q)) => Some(q),
        Some(Err(e)) => {
            errors.push(FieldError::new("quantity", e.0));
            None
        }
        None => None,
    };
    let rejection_reason = match body.rejection_reason {
        Some(Some(r)) => match RejectionReason::parse(&r) {
            Ok(r) => Some(Some(r)),
            Err(e) => {
                errors.push(FieldError::new("rejection_reason", e.0));
                None
            }
        },
        other => other.map(|_| None),
    };
    if errors.is_empty() && quantity.is_none() && rejection_reason.is_none() {
        errors.push(FieldError::new(
            "body",
            "name quantity, rejection_reason or both",
        ));
    }
    if !errors.is_empty() {
        return Err(ServiceError::Validation(errors));
    }
    Ok(OrderEdit::Item {
        item_number,
        patch: ItemPatch {
            quantity,
            rejection_reason,
        },
    })
}

/// The cancellation a body asks for.
pub(crate) fn cancel_edit(body: CancelRequest) -> Result<OrderEdit, ServiceError> {
    let reason = checked_reason(body.reason)?;
    let rejection = match body.rejection_reason.as_deref() {
        Some(r) => {
            RejectionReason::parse(r).map_err(|e| ServiceError::field("rejection_reason", e.0))?
        }
        None => RejectionReason::cancelled_default(),
    };
    Ok(OrderEdit::Cancel { reason, rejection })
}
