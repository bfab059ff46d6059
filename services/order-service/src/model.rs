//! The order as the REST API shows it, and the rows it is read from.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// An order as stored, with its items.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Order {
    /// Order id (UUID v7, time-ordered).
    pub id: Uuid,
    /// 10-digit order number from the service's own range.
    #[schema(example = "8000000001")]
    pub order_number: String,
    /// Status: created, confirmed, shipped, delivered, billed, cancelled, voided.
    #[schema(example = "created")]
    pub status: String,
    /// Why the order was cancelled or voided.
    pub status_reason: Option<String>,
    /// Optimistic-concurrency version, bumped by exactly one by every change; also the ETag
    /// (`W/"<version>"`) to send in `If-Match`.
    pub version: i64,
    /// Buying customer (SAP `SoldToParty`).
    pub customer_id: String,
    /// Customer's reference (SAP `PurchaseOrderByCustomer`).
    pub customer_reference: Option<String>,
    /// ISO 4217 currency.
    pub currency: String,
    /// SAP sales organization.
    pub sales_organization: Option<String>,
    /// SAP distribution channel.
    pub distribution_channel: Option<String>,
    /// SAP division.
    pub division: Option<String>,
    /// SAP sales document type.
    pub order_type: Option<String>,
    /// Requested delivery date.
    pub requested_delivery_date: Option<NaiveDate>,
    /// Sum of the net amounts of the priced items that are not rejected (decimal string);
    /// `null` when no item is priced.
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "25.00")]
    pub total_net_amount: Option<Decimal>,
    /// SAP's sales order number once linked.
    pub sap_order_number: Option<String>,
    /// Header fields without a modern home.
    #[schema(value_type = Object)]
    pub specifications: Map<String, Value>,
    /// Correlation id of the request that created the order.
    pub correlation_id: String,
    /// The items, by item number.
    pub items: Vec<OrderItem>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last change.
    pub updated_at: DateTime<Utc>,
}

/// One item of an order.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrderItem {
    /// 10, 20, 30, ... (as SAP numbers items).
    pub item_number: i32,
    /// Material.
    pub sku: String,
    /// Quantity (decimal string).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "2")]
    pub quantity: Decimal,
    /// Unit of measure.
    pub unit: String,
    /// Price per unit (decimal string).
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "12.50")]
    pub unit_price: Option<Decimal>,
    /// quantity × unit_price (decimal string).
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "25.00")]
    pub net_amount: Option<Decimal>,
    /// Item fields without a modern home.
    #[schema(value_type = Object)]
    pub specifications: Map<String, Value>,
    /// Why the line is rejected (SAP `SalesDocumentRjcnReason`, 2 characters); `null` while
    /// the line is open. A rejected line stays on the order but does not count towards
    /// `total_net_amount`.
    #[schema(pattern = "^[A-Z0-9]{2}$", example = json!(null))]
    pub rejection_reason: Option<String>,
}

/// A row of `orders`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OrderRow {
    pub id: Uuid,
    pub order_number: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub version: i64,
    pub customer_id: String,
    pub customer_reference: Option<String>,
    pub currency: String,
    pub sales_organization: Option<String>,
    pub distribution_channel: Option<String>,
    pub division: Option<String>,
    pub order_type: Option<String>,
    pub requested_delivery_date: Option<NaiveDate>,
    pub total_net_amount: Option<Decimal>,
    pub specifications: sqlx::types::Json<Map<String, Value>>,
    pub sap_order_number: Option<String>,
    pub correlation_id: String,
    pub request_hash: String,
    /// Highest item number the order ever had (migration 0010), so a removed line's number is
    /// never given to a new line; `NULL` until the first line change.
    pub last_item_number: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row of `order_items`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ItemRow {
    pub order_id: Uuid,
    pub item_number: i32,
    pub sku: String,
    pub quantity: Decimal,
    pub unit: String,
    pub unit_price: Option<Decimal>,
    pub net_amount: Option<Decimal>,
    pub specifications: sqlx::types::Json<Map<String, Value>>,
    pub rejection_reason: Option<String>,
}

impl OrderRow {
    pub(crate) fn into_order(self, items: Vec<OrderItem>) -> Order {
        Order {
            id: self.id,
            order_number: self.order_number,
            status: self.status,
            status_reason: self.status_reason,
            version: self.version,
            customer_id: self.customer_id,
            customer_reference: self.customer_reference,
            currency: self.currency,
            sales_organization: self.sales_organization,
            distribution_channel: self.distribution_channel,
            division: self.division,
            order_type: self.order_type,
            requested_delivery_date: self.requested_delivery_date,
            total_net_amount: self.total_net_amount,
            sap_order_number: self.sap_order_number,
            specifications: self.specifications.0,
            correlation_id: self.correlation_id,
            items,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl From<ItemRow> for OrderItem {
    fn from(r: ItemRow) -> Self {
        Self {
            item_number: r.item_number,
            sku: r.sku,
            quantity: r.quantity,
            unit: r.unit,
            unit_price: r.unit_price,
            net_amount: r.net_amount,
            specifications: r.specifications.0,
            rejection_reason: r.rejection_reason,
        }
    }
}
