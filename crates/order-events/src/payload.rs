//! The `data` of each event type.
//!
//! Every payload carries the order as it is *after* the change ([`OrderSnapshot`], flattened
//! into the payload), so a consumer such as sap-sync never has to call back for the current
//! state (event-carried state transfer). Decimals travel as strings, as at the REST face.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::envelope::EventType;

/// One order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// SAP-style item number: 10, 20, 30, ...
    pub item_number: i32,
    /// Material (SAP `Material`).
    pub sku: String,
    /// Decimal string (SAP `RequestedQuantity`).
    pub quantity: String,
    /// Unit of measure (SAP `RequestedQuantityUnit`).
    pub unit: String,
    /// Decimal string, price per unit, when known.
    pub unit_price: Option<String>,
    /// Decimal string, `quantity × unit_price`, when priced.
    pub net_amount: Option<String>,
    /// Every line field without a modern home (legacy fields are kept, never dropped).
    pub specifications: Map<String, Value>,
    /// Why the line is rejected (SAP `SalesDocumentRjcnReason`, 2 characters such as `01`);
    /// `null` while the line is open. A rejected line stays on the order but is left out of
    /// `total_net_amount`. Absent in events written before it existed (read as `null`).
    #[serde(default)]
    pub rejection_reason: Option<String>,
}

/// The order after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    /// The order id (UUID), also the event `subject` and the Kafka key.
    pub order_id: Uuid,
    /// The human order number.
    pub order_number: String,
    /// Status after the change: `created`, `confirmed`, `shipped`, `delivered`, `billed`,
    /// `cancelled`, `voided`.
    pub status: String,
    /// The order's version after the change; +1 per event of the order.
    pub version: i64,
    /// Buying customer (SAP `SoldToParty`).
    pub customer_id: String,
    /// ISO 4217 currency (SAP `TransactionCurrency`).
    pub currency: String,
    /// Customer's purchase order reference (SAP `PurchaseOrderByCustomer`).
    pub customer_reference: Option<String>,
    /// SAP sales organization.
    pub sales_organization: Option<String>,
    /// SAP distribution channel.
    pub distribution_channel: Option<String>,
    /// SAP division.
    pub division: Option<String>,
    /// SAP sales document type.
    pub order_type: Option<String>,
    /// Requested delivery date (`YYYY-MM-DD`).
    pub requested_delivery_date: Option<NaiveDate>,
    /// The SAP sales order number, once linked.
    pub sap_order_number: Option<String>,
    /// Decimal string, the sum of the net amounts of the priced lines that are not rejected
    /// (`null` when no line is priced).
    pub total_net_amount: Option<String>,
    /// Header fields without a modern home.
    pub specifications: Map<String, Value>,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// When the order was created.
    pub created_at: DateTime<Utc>,
    /// When the order last changed (this change).
    pub updated_at: DateTime<Utc>,
}

/// `order.updated`: fields changed without a status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderUpdated {
    /// The order after the change.
    #[serde(flatten)]
    pub order: OrderSnapshot,
    /// Names of the snapshot fields that changed, e.g. `["sap_order_number"]`.
    pub changed_fields: Vec<String>,
}

/// `order.status_changed`: a lifecycle step (confirmed, shipped, delivered, billed; delivered and
/// billed are usually facts SAP reported).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderStatusChanged {
    /// The order after the change (its `status` is the new one).
    #[serde(flatten)]
    pub order: OrderSnapshot,
    /// The status before the change.
    pub previous_status: String,
}

/// `order.cancelled`: cancelled by the business (`status` = `cancelled`; every line that was
/// open then carries a `rejection_reason`, SAP's way to cancel) or voided by the migration
/// machinery as compensation (`status` = `voided`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The order after the change.
    #[serde(flatten)]
    pub order: OrderSnapshot,
    /// The status before the change.
    pub previous_status: String,
    /// Why, when given.
    pub reason: Option<String>,
}

/// The payload of any order event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OrderEventData {
    /// `order.created`
    Created(OrderSnapshot),
    /// `order.updated`
    Updated(OrderUpdated),
    /// `order.status_changed`
    StatusChanged(OrderStatusChanged),
    /// `order.cancelled`
    Cancelled(OrderCancelled),
}

impl OrderEventData {
    /// The event type this payload belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Created(_) => EventType::OrderCreated,
            Self::Updated(_) => EventType::OrderUpdated,
            Self::StatusChanged(_) => EventType::OrderStatusChanged,
            Self::Cancelled(_) => EventType::OrderCancelled,
        }
    }

    /// The order after the change.
    pub fn order(&self) -> &OrderSnapshot {
        match self {
            Self::Created(o) => o,
            Self::Updated(u) => &u.order,
            Self::StatusChanged(s) => &s.order,
            Self::Cancelled(c) => &c.order,
        }
    }

    /// Parses the `data` member of an event of type `event_type`.
    pub fn from_json(event_type: EventType, data: Value) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            EventType::OrderCreated => Self::Created(serde_json::from_value(data)?),
            EventType::OrderUpdated => Self::Updated(serde_json::from_value(data)?),
            EventType::OrderStatusChanged => Self::StatusChanged(serde_json::from_value(data)?),
            EventType::OrderCancelled => Self::Cancelled(serde_json::from_value(data)?),
        })
    }
}
