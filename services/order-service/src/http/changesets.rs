//! `POST /api/v1/changesets`: several changes of the order's life applied in one transaction,
//! all or none. This is what an OData `$batch` changeset asks of S/4 (its changes saved
//! together or not at all), served for the SAP face of `events`/`retired`.
//!
//! Each change is the body of the single operation it stands for (`update_order` is
//! `PATCH /orders/{id}`, `update_item` `PATCH /orders/{id}/items/{n}`, `add_item`
//! `POST /orders/{id}/items`, `remove_item` `DELETE /orders/{id}/items/{n}`, `cancel`
//! `POST /orders/{id}/cancel`), checked by the same code, with the order named by id or number
//! and the version in `version` (the deprecated body `version` of `update_order` and `cancel`
//! still counts when `version` is left out, as `If-Match` wins over it alone). Every change
//! names the version its order had when the changeset began. Each applied change is a version
//! and an event of its own, as if sent alone. A refusal is the refused change's own problem
//! with `change_index` and its fields named `changes[i]....`; nothing is stored.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use order_domain::OrderLineDraft;
use platform::correlation::CorrelationId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::JsonBody;
use super::life::{
    CancelRequest, ItemUpdateRequest, UpdateRequest, add_item_edit, cancel_edit, header_edit,
    item_edit,
};
use super::{AppState, context, problem};
use crate::error::ServiceError;
use crate::model::Order;
use crate::repository::{OrderEdit, OrderKey};

/// Most changes one changeset may hold (the proxy's `PROXY_BATCH_MAX_PARTS` default).
pub const MAX_CHANGES: usize = 100;

/// A changeset.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangesetRequest {
    /// The changes, applied in this order (1 to 100).
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<ChangeRequest>,
}

/// One change of a changeset, by `op`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeRequest {
    /// `PATCH /api/v1/orders/{id}`.
    UpdateOrder {
        /// Order id (UUID) or order number.
        order: String,
        /// The order's version when the changeset began.
        version: Option<i64>,
        /// The header update.
        changes: UpdateRequest,
    },
    /// `PATCH /api/v1/orders/{id}/items/{item_number}`.
    UpdateItem {
        /// Order id (UUID) or order number.
        order: String,
        /// The order's version when the changeset began.
        version: Option<i64>,
        /// The line.
        item_number: i32,
        /// The line change.
        changes: ItemUpdateRequest,
    },
    /// `POST /api/v1/orders/{id}/items`.
    AddItem {
        /// Order id (UUID) or order number.
        order: String,
        /// The order's version when the changeset began.
        version: Option<i64>,
        /// The new line.
        line: OrderLineDraft,
    },
    /// `DELETE /api/v1/orders/{id}/items/{item_number}`.
    RemoveItem {
        /// Order id (UUID) or order number.
        order: String,
        /// The order's version when the changeset began.
        version: Option<i64>,
        /// The line.
        item_number: i32,
    },
    /// `POST /api/v1/orders/{id}/cancel`.
    Cancel {
        /// Order id (UUID) or order number.
        order: String,
        /// The order's version when the changeset began.
        version: Option<i64>,
        /// The cancellation.
        changes: CancelRequest,
    },
}

/// What a changeset did: the order after each change, in the changeset's order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangesetAnswer {
    /// The order as each change left it.
    pub orders: Vec<Order>,
}

/// The order a change names: a UUID, else an order number.
fn order_key(raw: &str) -> Result<OrderKey, ServiceError> {
    if let Ok(id) = Uuid::parse_str(raw) {
        return Ok(OrderKey::Id(id));
    }
    order_domain::OrderNumber::parse(raw)
        .map(|n| OrderKey::Number(n.as_str().to_owned()))
        .map_err(|_| {
            ServiceError::field(
                "order",
                format!("{raw:?} is neither an order id (UUID) nor an order number (10 digits)"),
            )
        })
}

fn item_number(n: i32) -> Result<i32, ServiceError> {
    if n > 0 {
        Ok(n)
    } else {
        Err(ServiceError::field(
            "item_number",
            "must be a positive whole number such as 10",
        ))
    }
}

/// One change checked as its single operation checks it: the order, the version, the edit.
fn checked(change: ChangeRequest) -> Result<(OrderKey, i64, OrderEdit), ServiceError> {
    let (order, version, edit) = match change {
        ChangeRequest::UpdateOrder {
            order,
            version,
            changes,
        } => {
            let inner = changes.version;
            (order, version.or(inner), header_edit(changes)?)
        }
        ChangeRequest::UpdateItem {
            order,
            version,
            item_number: n,
            changes,
        } => (order, version, item_edit(item_number(n)?, changes)?),
        ChangeRequest::AddItem {
            order,
            version,
            line,
        } => (order, version, add_item_edit(line)?),
        ChangeRequest::RemoveItem {
            order,
            version,
            item_number: n,
        } => (
            order,
            version,
            OrderEdit::RemoveItem {
                item_number: item_number(n)?,
            },
        ),
        ChangeRequest::Cancel {
            order,
            version,
            changes,
        } => {
            let inner = changes.version;
            (order, version.or(inner), cancel_edit(changes)?)
        }
    };
    let key = order_key(&order)?;
    let version = version.ok_or(ServiceError::PreconditionRequired)?;
    Ok((key, version, edit))
}

/// Apply several changes of orders' lives at once, all or none (an OData `$batch` changeset).
/// Each change is the body of its single operation with the order (id or number) and the
/// version the order had when the changeset began; each applied change makes a version and an
/// event of its own. A refused change answers its own problem with `change_index`; nothing of
/// the changeset is stored.
#[utoipa::path(post, path = "/api/v1/changesets", request_body = ChangesetRequest,
    responses((status = 200, body = ChangesetAnswer),
      (status = 400, body = problem::Problem, content_type = "application/problem+json"),
      (status = 404, body = problem::Problem, content_type = "application/problem+json", description = "A change names an order or item that does not exist"),
      (status = 409, body = problem::Problem, content_type = "application/problem+json", description = "A change is refused by the order's state (see the single operations)"),
      (status = 412, body = problem::Problem, content_type = "application/problem+json", description = "A change's version is not its order's version when the changeset began"),
      (status = 413, body = problem::Problem, content_type = "application/problem+json"),
      (status = 415, body = problem::Problem, content_type = "application/problem+json"),
      (status = 422, body = problem::Problem, content_type = "application/problem+json"),
      (status = 428, body = problem::Problem, content_type = "application/problem+json", description = "A change names no version")))]
pub async fn apply_changeset(
    State(state): State<AppState>,
    Extension(correlation): Extension<CorrelationId>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChangesetRequest>,
) -> Result<Response, ServiceError> {
    // An Idempotency-Key names one change; on a changeset it would make every line add after
    // the first a silent repeat of it, so a changeset takes none.
    let mut ctx = context(&correlation, &headers)?;
    ctx.idempotency_key = None;
    if body.changes.is_empty() || body.changes.len() > MAX_CHANGES {
        return Err(ServiceError::field(
            "changes",
            format!("must hold 1 to {MAX_CHANGES} changes"),
        ));
    }
    let mut changes = Vec::with_capacity(body.changes.len());
    for (index, change) in body.changes.into_iter().enumerate() {
        changes.push(checked(change).map_err(|error| ServiceError::InChangeset {
            index,
            error: Box::new(error),
        })?);
    }
    let orders = state.repository.edit_many(&changes, &ctx).await?;
    Ok((StatusCode::OK, axum::Json(ChangesetAnswer { orders })).into_response())
}
