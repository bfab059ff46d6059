//! RFC 9457 problem details: the one place where [`ServiceError`] becomes an HTTP answer.
//!
//! 4xx answers say exactly what is wrong and name the field; 5xx answers stay generic (the
//! cause is logged here, once, with the correlation id on the span) so no internals leak.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use order_domain::FieldError;
use serde::Serialize;

use crate::error::ServiceError;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened this time.
    pub detail: String,
    /// The offending fields, when the request was at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
    /// Extra members (e.g. the current version on a stale write).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:order-service:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
        }
    }

    fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(PROBLEM_JSON),
        );
        response
    }
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<&ServiceError> for Problem {
    fn from(e: &ServiceError) -> Self {
        use ServiceError::*;
        match e {
            MalformedJson(msg) => {
                let mut p = Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed-json",
                    "Malformed JSON",
                    format!("the request body is not valid JSON: {msg}"),
                );
                p.errors.push(FieldError::new("body", msg.clone()));
                p
            }
            Validation(errors) => {
                let mut p = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation-failed",
                    "Invalid request",
                    describe(errors),
                );
                p.errors = errors.clone();
                p
            }
            BodyTooLarge { limit } => {
                let mut p = Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "Request body too large",
                    format!("the request body exceeds {limit} bytes"),
                );
                p.errors.push(FieldError::new(
                    "body",
                    format!("larger than {limit} bytes"),
                ));
                p
            }
            UnsupportedMediaType => {
                let mut p = Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                    "send the body as application/json",
                );
                p.errors
                    .push(FieldError::new("content-type", "must be application/json"));
                p
            }
            OrderNotFound(id) => Problem::new(
                StatusCode::NOT_FOUND,
                "order-not-found",
                "Order not found",
                format!("no order {id}"),
            ),
            IllegalTransition(t) => {
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "illegal-transition",
                    "Illegal status transition",
                    t.to_string(),
                )
                .with("current_status", t.from.as_str());
                p.errors.push(FieldError::new("to", t.to_string()));
                p
            }
            StaleVersion { given, current } => {
                let mut p = Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "stale-version",
                    "Stale version",
                    format!(
                        "{e}; read the order again (its ETag is W/\"{current}\") and retry on that"
                    ),
                )
                .with("current_version", *current);
                p.errors.push(FieldError::new(
                    "if-match",
                    format!("is version {given}, the order is at {current}"),
                ));
                p
            }
            PreconditionRequired => {
                let mut p = Problem::new(
                    StatusCode::PRECONDITION_REQUIRED,
                    "precondition-required",
                    "Precondition required",
                    e.to_string(),
                );
                p.errors.push(FieldError::new(
                    "if-match",
                    "is required: the ETag of the order, e.g. W/\"3\"",
                ));
                p
            }
            OrderNotEditable(status) => Problem::new(
                StatusCode::CONFLICT,
                if status.is_fulfilled() {
                    "order-fulfilled"
                } else {
                    "order-not-editable"
                },
                if status.is_fulfilled() {
                    "Order fulfilled by SAP"
                } else {
                    "Order not editable"
                },
                e.to_string(),
            )
            .with("current_status", status.as_str()),
            ItemNotFound { item_number, .. } => {
                let mut p = Problem::new(
                    StatusCode::NOT_FOUND,
                    "item-not-found",
                    "Item not found",
                    e.to_string(),
                )
                .with("item_number", *item_number);
                p.errors
                    .push(FieldError::new("item_number", "no such item on the order"));
                p
            }
            InChangeset { index, error } => {
                // The refused change's own problem, its fields named within the changeset.
                let mut p = Problem::from(error.as_ref());
                for e in &mut p.errors {
                    e.field = format!("changes[{index}].{}", e.field);
                }
                if !p.errors.is_empty() {
                    p.detail = describe(&p.errors);
                }
                p.detail = format!("change {index}: {}", p.detail);
                p.with("change_index", *index)
            }
            LastOpenItem { item_number } => Problem::new(
                StatusCode::CONFLICT,
                "last-open-item",
                "Last open item",
                e.to_string(),
            )
            .with("item_number", *item_number),
            IdempotencyKeyReused { order_id } => {
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency-key-reused",
                    "Idempotency key reused",
                    format!(
                        "the Idempotency-Key was already used with a different body (order {order_id})"
                    ),
                )
                .with("order_id", order_id.to_string());
                p.errors.push(FieldError::new(
                    "idempotency-key",
                    "already used for a different request",
                ));
                p
            }
            OrderNumberTaken {
                order_number,
                order_id,
            } => {
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "order-number-taken",
                    "Order number taken",
                    format!(
                        "order number {order_number} belongs to order {order_id}, created from a different request"
                    ),
                )
                .with("order_id", order_id.to_string());
                p.errors.push(FieldError::new(
                    "order_number",
                    "belongs to another order created from a different request",
                ));
                p
            }
            OrderNumberNotReserved {
                order_number,
                first,
                last,
            } => {
                let message = format!(
                    "{order_number} was not reserved: name only numbers reserved with \
                     POST /api/v1/order-numbers (issued so far: {first:010} to {last:010})"
                );
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "order-number-not-reserved",
                    "Order number not reserved",
                    message.clone(),
                );
                p.errors.push(FieldError::new("order_number", message));
                p
            }
            MasterDataIncomplete(errors) => {
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "master-data-incomplete",
                    "Master data incomplete",
                    format!(
                        "the master data cannot fill in what the request leaves out (send the \
                         values, or import the master data first): {}",
                        describe(errors)
                    ),
                );
                p.errors = errors.clone();
                p
            }
            MaterialNotFound(sku) => Problem::new(
                StatusCode::NOT_FOUND,
                "material-not-found",
                "Material not found",
                format!("no material {sku} in the master data"),
            ),
            CustomerNotFound(id) => Problem::new(
                StatusCode::NOT_FOUND,
                "customer-not-found",
                "Customer not found",
                format!("no customer {id} in the master data"),
            ),
            SapPricingItemUnknown(errors) => {
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "sap-pricing-item-unknown",
                    "SAP pricing names unknown items",
                    format!(
                        "SAP's pricing does not match the order's lines: {}",
                        describe(errors)
                    ),
                );
                p.errors = errors.clone();
                p
            }
            SapNumberConflict(msg) => {
                let mut p = Problem::new(
                    StatusCode::CONFLICT,
                    "sap-order-number-conflict",
                    "SAP order number conflict",
                    msg.clone(),
                );
                p.errors
                    .push(FieldError::new("sap_order_number", msg.clone()));
                p
            }
            RequestTimedOut(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                "the request took too long and was abandoned; nothing was changed; retry later",
            ),
            DatabaseUnavailable(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                "the order store is temporarily unavailable; retry later",
            ),
            Database(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the request could not be completed",
            ),
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let problem = Problem::from(&self);
        if problem.status >= 500 {
            // Logged once, here, with the cause chain; the body stays generic.
            let mut chain = self.to_string();
            let mut source = std::error::Error::source(&self);
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, status = problem.status, "request failed");
        }
        let retry = problem.status == 503;
        let mut response = problem.into_response();
        if retry {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// Problem for a path nobody serves.
pub async fn not_found() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such resource",
    )
    .into_response()
}
