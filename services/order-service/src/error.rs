//! Everything that can go wrong in the order service, named by what happened. The single
//! mapping to HTTP (RFC 9457 problem+json) lives in [`crate::http::problem`].

use order_domain::{FieldError, OrderStatus, TransitionError};

/// The order service's error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The body is not JSON at all (syntax error, truncated).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The request is well-formed but fields are wrong, missing or of the wrong type.
    #[error("invalid request: {} field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// The body is larger than the configured limit.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body is not sent as `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// No order with that id or number.
    #[error("order {0} not found")]
    OrderNotFound(String),
    /// The state machine does not allow the change.
    #[error(transparent)]
    IllegalTransition(#[from] TransitionError),
    /// The caller's version is not the current one (someone changed the order meanwhile).
    #[error("stale version {given}: the order is at version {current}")]
    StaleVersion {
        /// Version the caller sent.
        given: i64,
        /// Version stored.
        current: i64,
    },
    /// The order can no longer be edited in its status.
    #[error("{}", not_editable_detail(*.0))]
    OrderNotEditable(OrderStatus),
    /// A change was sent without `If-Match` (the caller's version of the order).
    #[error("this change needs the order's version: send If-Match with the ETag of the order")]
    PreconditionRequired,
    /// The order has no item with that number.
    #[error("order {order} has no item {item_number}")]
    ItemNotFound {
        /// The order's id or number, as addressed.
        order: String,
        /// The item number asked for.
        item_number: i32,
    },
    /// Change `index` of a changeset was refused (nothing of the changeset was stored).
    #[error("change {index} of the changeset: {error}")]
    InChangeset {
        /// Its position in the changeset (from 0).
        index: usize,
        /// Why.
        error: Box<ServiceError>,
    },
    /// Removing the item would leave the order without any line that is not rejected.
    #[error(
        "item {item_number} is the last line that is not rejected and cannot be removed: reject it or cancel the order instead"
    )]
    LastOpenItem {
        /// The item.
        item_number: i32,
    },
    /// An `Idempotency-Key` was reused with a different body (a conflict with the stored
    /// order the key belongs to, like [`ServiceError::OrderNumberTaken`]).
    #[error("the Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused {
        /// The order the first request created.
        order_id: uuid::Uuid,
    },
    /// A create named an order number that another order, created from a different body, has.
    #[error("order number {order_number} belongs to another order")]
    OrderNumberTaken {
        /// The number.
        order_number: String,
        /// The order that has it.
        order_id: uuid::Uuid,
    },
    /// A create named an order number that was never reserved (the sequence has not issued
    /// it): it conflicts with the state of the number range.
    #[error("order number {order_number} was not reserved")]
    OrderNumberNotReserved {
        /// The number.
        order_number: String,
        /// The first number the range issues.
        first: i64,
        /// The last number issued so far.
        last: i64,
    },
    /// A create or an added line leaves out values (unit, currency, unit price) that the
    /// stored master data cannot fill in: the request is valid, the master data lacks them.
    #[error("master data incomplete: {} field(s)", .0.len())]
    MasterDataIncomplete(Vec<FieldError>),
    /// No material with that SKU in the master data.
    #[error("material {0} not found")]
    MaterialNotFound(String),
    /// No customer with that id in the master data.
    #[error("customer {0} not found")]
    CustomerNotFound(String),
    /// SAP's pricing on a link names item numbers the order does not have (each one named).
    #[error("SAP pricing names {} item(s) the order does not have", .0.len())]
    SapPricingItemUnknown(Vec<FieldError>),
    /// The order is linked to another SAP order, or that SAP order to another order.
    #[error("SAP order number conflict: {0}")]
    SapNumberConflict(String),
    /// The request took longer than the configured limit (and was abandoned, its transaction
    /// rolled back).
    #[error("request took longer than {0:?}")]
    RequestTimedOut(std::time::Duration),
    /// The database is unreachable or the pool is exhausted.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] sqlx::Error),
    /// Any other database failure.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

fn not_editable_detail(status: OrderStatus) -> String {
    if status.is_fulfilled() {
        format!(
            "the order is {status}: SAP has fulfilled it, so its header and lines can no longer be \
             changed, and no line can be rejected, changed or removed"
        )
    } else {
        format!("an order in status {status} can no longer be changed")
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::DatabaseUnavailable(e),
            _ => Self::Database(e),
        }
    }
}

impl From<order_domain::CompletionError> for ServiceError {
    fn from(e: order_domain::CompletionError) -> Self {
        match e {
            order_domain::CompletionError::Invalid(errors) => Self::Validation(errors),
            order_domain::CompletionError::MasterDataIncomplete(errors) => {
                Self::MasterDataIncomplete(errors)
            }
        }
    }
}

impl ServiceError {
    /// A validation error on one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}
