//! Orders as they enter the system: an untrusted [`OrderDraft`] parsed into a [`NewOrder`].

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::values::{
    CurrencyCode, CustomerId, CustomerReference, DECIMAL_SCALE, DistributionChannel, Division,
    Money, OrderType, Quantity, SalesOrganization, Sku, Unit, ValueError,
};

/// Most lines one order may carry.
pub const MAX_LINES: usize = 250;

/// Largest serialized `specifications` object accepted per order header or line, in bytes.
pub const MAX_SPECIFICATIONS_BYTES: usize = 16 * 1024;

/// One refused field: `field` is a path such as `items[2].quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the offending field in the request body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A refusal of `field` for `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The create-order body exactly as a caller sent it. Every field is optional here so that
/// [`NewOrder::parse`] can name *each* missing or bad one instead of stopping at the first.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderDraft {
    /// Buying customer (SAP `SoldToParty`). Required.
    pub customer_id: Option<String>,
    /// ISO 4217 currency (SAP `TransactionCurrency`). Required.
    pub currency: Option<String>,
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
    /// Requested delivery date, `YYYY-MM-DD`.
    pub requested_delivery_date: Option<String>,
    /// Header fields without a modern home (legacy fields are kept here, never dropped).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub specifications: Option<Map<String, Value>>,
    /// The order lines. Required, 1 to [`MAX_LINES`].
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 250))]
    pub items: Option<Vec<OrderLineDraft>>,
}

/// One order line as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderLineDraft {
    /// Material (SAP `Material`). Required.
    pub sku: Option<String>,
    /// Decimal string, greater than zero (SAP `RequestedQuantity`). Required.
    pub quantity: Option<String>,
    /// Unit of measure (SAP `RequestedQuantityUnit`). Required.
    pub unit: Option<String>,
    /// Decimal string, price per unit in the order currency.
    pub unit_price: Option<String>,
    /// Line fields without a modern home.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub specifications: Option<Map<String, Value>>,
}

/// A validated order line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewOrderLine {
    /// SAP-style item number: 10, 20, 30, ...
    pub item_number: i32,
    /// Material.
    pub sku: Sku,
    /// Ordered quantity.
    pub quantity: Quantity,
    /// Unit of measure.
    pub unit: Unit,
    /// Price per unit, when known.
    pub unit_price: Option<Money>,
    /// `quantity × unit_price`, rounded half away from zero to 3 places, when priced.
    pub net_amount: Option<Money>,
    /// Everything else the line carried.
    pub specifications: Map<String, Value>,
}

/// A validated new order, ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewOrder {
    /// Buying customer.
    pub customer_id: CustomerId,
    /// Order currency.
    pub currency: CurrencyCode,
    /// Customer's own reference.
    pub customer_reference: Option<CustomerReference>,
    /// SAP sales organization.
    pub sales_organization: Option<SalesOrganization>,
    /// SAP distribution channel.
    pub distribution_channel: Option<DistributionChannel>,
    /// SAP division.
    pub division: Option<Division>,
    /// SAP sales document type.
    pub order_type: Option<OrderType>,
    /// Requested delivery date.
    pub requested_delivery_date: Option<NaiveDate>,
    /// Header fields without a modern home.
    pub specifications: Map<String, Value>,
    /// Lines, numbered 10, 20, ...
    pub lines: Vec<NewOrderLine>,
    /// Sum of the priced lines' net amounts; `None` when no line is priced.
    pub total_net_amount: Option<Money>,
}

/// Collects field errors while parsing.
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn required<T>(
        &mut self,
        field: &str,
        raw: Option<&String>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match raw {
            None => {
                self.errors.push(FieldError::new(field, "is required"));
                None
            }
            Some(raw) => self.optional(field, Some(raw), parse),
        }
    }

    fn optional<T>(
        &mut self,
        field: &str,
        raw: Option<&String>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        let raw = raw?;
        match parse(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(FieldError::new(field, e.0));
                None
            }
        }
    }

    fn specifications(
        &mut self,
        field: &str,
        raw: Option<&Map<String, Value>>,
    ) -> Map<String, Value> {
        let map = raw.cloned().unwrap_or_default();
        let size = serde_json::to_vec(&map)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SPECIFICATIONS_BYTES {
            self.errors.push(FieldError::new(
                field,
                format!("must be at most {MAX_SPECIFICATIONS_BYTES} bytes of JSON (got {size})"),
            ));
        }
        map
    }
}

fn parse_date(raw: &str) -> Result<NaiveDate, ValueError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| raw.len() == 10)
        .ok_or_else(|| ValueError("must be a calendar date written YYYY-MM-DD".into()))
}

fn net_amount(quantity: Quantity, price: Money) -> Result<Money, ValueError> {
    let amount = quantity
        .value()
        .checked_mul(price.value())
        .ok_or_else(|| ValueError("quantity × unit_price is too large".into()))?
        .round_dp_with_strategy(DECIMAL_SCALE, RoundingStrategy::MidpointAwayFromZero);
    Money::try_from(amount).map_err(|_| ValueError("quantity × unit_price is too large".into()))
}

impl NewOrder {
    /// Validates a draft, reporting every offending field at once.
    pub fn parse(draft: &OrderDraft) -> Result<NewOrder, Vec<FieldError>> {
        let mut c = Checker { errors: Vec::new() };
        let customer_id = c.required("customer_id", draft.customer_id.as_ref(), CustomerId::parse);
        let currency = c.required("currency", draft.currency.as_ref(), CurrencyCode::parse);
        let customer_reference = c.optional(
            "customer_reference",
            draft.customer_reference.as_ref(),
            CustomerReference::parse,
        );
        let sales_organization = c.optional(
            "sales_organization",
            draft.sales_organization.as_ref(),
            SalesOrganization::parse,
        );
        let distribution_channel = c.optional(
            "distribution_channel",
            draft.distribution_channel.as_ref(),
            DistributionChannel::parse,
        );
        let division = c.optional("division", draft.division.as_ref(), Division::parse);
        let order_type = c.optional("order_type", draft.order_type.as_ref(), OrderType::parse);
        let requested_delivery_date = c.optional(
            "requested_delivery_date",
            draft.requested_delivery_date.as_ref(),
            parse_date,
        );
        let specifications = c.specifications("specifications", draft.specifications.as_ref());

        let mut lines = Vec::new();
        match draft.items.as_deref() {
            None => c.errors.push(FieldError::new("items", "is required")),
            Some([]) => c
                .errors
                .push(FieldError::new("items", "must contain at least one item")),
            Some(items) if items.len() > MAX_LINES => c.errors.push(FieldError::new(
                "items",
                format!(
                    "must contain at most {MAX_LINES} items (got {})",
                    items.len()
                ),
            )),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = |f: &str| format!("items[{i}].{f}");
                    let sku = c.required(&at("sku"), item.sku.as_ref(), Sku::parse);
                    let quantity =
                        c.required(&at("quantity"), item.quantity.as_ref(), Quantity::parse);
                    let unit = c.required(&at("unit"), item.unit.as_ref(), Unit::parse);
                    let unit_price =
                        c.optional(&at("unit_price"), item.unit_price.as_ref(), Money::parse);
                    let specifications =
                        c.specifications(&at("specifications"), item.specifications.as_ref());
                    let net = match (quantity, unit_price) {
                        (Some(q), Some(p)) => match net_amount(q, p) {
                            Ok(n) => Some(n),
                            Err(e) => {
                                c.errors.push(FieldError::new(at("unit_price"), e.0));
                                None
                            }
                        },
                        _ => None,
                    };
                    if let (Some(sku), Some(quantity), Some(unit)) = (sku, quantity, unit) {
                        lines.push(NewOrderLine {
                            item_number: (i as i32 + 1) * 10,
                            sku,
                            quantity,
                            unit,
                            unit_price,
                            net_amount: net,
                            specifications,
                        });
                    }
                }
            }
        }

        let priced: Vec<Decimal> = lines
            .iter()
            .filter_map(|l| l.net_amount.map(Money::value))
            .collect();
        let total_net_amount = if priced.is_empty() {
            None
        } else {
            let sum = priced
                .iter()
                .try_fold(Decimal::ZERO, |acc, v| acc.checked_add(*v))
                .and_then(|d| Money::try_from(d).ok());
            if sum.is_none() {
                c.errors
                    .push(FieldError::new("items", "the order total is too large"));
            }
            sum
        };

        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        // Every required field parsed, otherwise errors would be non-empty.
        let (Some(customer_id), Some(currency)) = (customer_id, currency) else {
            return Err(vec![FieldError::new("body", "incomplete order")]);
        };
        Ok(NewOrder {
            customer_id,
            currency,
            customer_reference,
            sales_organization,
            distribution_channel,
            division,
            order_type,
            requested_delivery_date,
            specifications,
            lines,
            total_net_amount,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(v: Value) -> OrderDraft {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_contract_example_parses_and_is_priced() {
        let d = draft(serde_json::json!({
            "customer_id":"17100001","currency":"EUR","customer_reference":"PO-4711",
            "items":[{"sku":"TG11","quantity":"2","unit":"PC","unit_price":"12.50",
                      "specifications":{"color":"red"}}]
        }));
        let o = NewOrder::parse(&d).unwrap();
        assert_eq!(o.lines[0].item_number, 10);
        assert_eq!(o.lines[0].net_amount.unwrap().value().to_string(), "25.00");
        assert_eq!(o.total_net_amount.unwrap().value().to_string(), "25.00");
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let d = draft(serde_json::json!({
            "currency":"XYZ",
            "items":[{"sku":"TG11","quantity":"0","unit":"PIECE"},{"quantity":"1","unit":"PC"}]
        }));
        let fields: Vec<String> = NewOrder::parse(&d)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "customer_id",
                "currency",
                "items[0].quantity",
                "items[0].unit",
                "items[1].sku"
            ]
        );
    }

    #[test]
    fn lines_are_numbered_like_sap_items() {
        let items: Vec<Value> = (0..3)
            .map(|_| serde_json::json!({"sku":"TG11","quantity":"1","unit":"PC"}))
            .collect();
        let d = draft(serde_json::json!({"customer_id":"1","currency":"EUR","items":items}));
        let o = NewOrder::parse(&d).unwrap();
        let numbers: Vec<i32> = o.lines.iter().map(|l| l.item_number).collect();
        assert_eq!(numbers, [10, 20, 30]);
        assert!(o.total_net_amount.is_none());
    }

    #[test]
    fn too_many_lines_are_refused() {
        let items: Vec<Value> = (0..=MAX_LINES)
            .map(|_| serde_json::json!({"sku":"TG11","quantity":"1","unit":"PC"}))
            .collect();
        let d = draft(serde_json::json!({"customer_id":"1","currency":"EUR","items":items}));
        assert_eq!(NewOrder::parse(&d).unwrap_err()[0].field, "items");
    }
}
