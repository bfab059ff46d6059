//! The transactional outbox: every order change appends its event here, inside the change's
//! own transaction, so the event exists exactly when the change does.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::error::ServiceError;
use crate::model::Order;

/// The kinds of order event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A new order.
    Created,
    /// Header fields or the SAP link changed.
    Updated,
    /// The status moved forward.
    StatusChanged,
    /// The order was cancelled or voided.
    Cancelled,
}

impl EventType {
    /// The CloudEvents `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "order.created",
            Self::Updated => "order.updated",
            Self::StatusChanged => "order.status_changed",
            Self::Cancelled => "order.cancelled",
        }
    }
}

/// Appends the event for `order`'s change to the outbox in `tx`.
pub async fn append(
    tx: &mut Transaction<'_, Postgres>,
    event: EventType,
    order: &Order,
    correlation_id: &str,
) -> Result<Uuid, ServiceError> {
    let event_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO outbox (event_id, aggregate_id, event_type, payload, correlation_id) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event_id)
    .bind(order.id)
    .bind(event.as_str())
    .bind(sqlx::types::Json(order))
    .bind(correlation_id)
    .execute(&mut **tx)
    .await?;
    Ok(event_id)
}
