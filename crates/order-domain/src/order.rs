//! Orders as they enter the system: an untrusted [`OrderDraft`] parsed into a [`NewOrder`].

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::master_data::MasterData;
use crate::values::{
    CurrencyCode, CustomerId, CustomerReference, DECIMAL_SCALE, DistributionChannel, Division,
    Money, OrderNumber, OrderType, Quantity, SalesOrganization, Sku, Unit, ValueError,
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
/// [`OrderRequest::parse`] can name *each* missing or bad one instead of stopping at the first.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrderDraft {
    /// A number the caller reserved with `POST /api/v1/order-numbers` (10 digits); the order
    /// keeps it. When absent the service draws one itself.
    #[cfg_attr(feature = "openapi", schema(example = "8000000123"))]
    pub order_number: Option<String>,
    /// Buying customer (SAP `SoldToParty`). Required.
    pub customer_id: Option<String>,
    /// ISO 4217 currency (SAP `TransactionCurrency`). When absent: the customer's currency for
    /// the order's sales area, from master data.
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
    /// Unit of measure (SAP `RequestedQuantityUnit`). When absent: the material's base unit; a
    /// material's ISO unit (e.g. `PCE`) is stored as its base unit (`PC`), as SAP does.
    pub unit: Option<String>,
    /// Decimal string, price per unit in the order currency. When absent: the material's price
    /// per base unit, if master data has one (in the order currency).
    pub unit_price: Option<String>,
    /// Line fields without a modern home.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub specifications: Option<Map<String, Value>>,
}

/// A validated order line as the caller sent it (unit and price may still be missing).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestedLine {
    /// SAP-style item number: 10, 20, 30, ...
    pub item_number: i32,
    /// Material.
    pub sku: Sku,
    /// Ordered quantity.
    pub quantity: Quantity,
    /// Unit of measure, when sent.
    pub unit: Option<Unit>,
    /// Price per unit, when sent.
    pub unit_price: Option<Money>,
    /// Everything else the line carried.
    pub specifications: Map<String, Value>,
}

/// A validated create request, as the caller sent it: every value it holds is well-formed, but
/// what SAP would derive (unit, currency, price) may be missing. [`OrderRequest::complete`]
/// fills it in from master data and yields the [`NewOrder`] to store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderRequest {
    /// The caller's reserved order number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_number: Option<OrderNumber>,
    /// Buying customer.
    pub customer_id: CustomerId,
    /// Order currency, when sent.
    pub currency: Option<CurrencyCode>,
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
    pub lines: Vec<RequestedLine>,
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
    /// `quantity × unit_price`, rounded half away from zero to the currency's decimals, when
    /// priced.
    pub net_amount: Option<Money>,
    /// Everything else the line carried.
    pub specifications: Map<String, Value>,
}

/// A validated new order, complete and ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewOrder {
    /// The caller's reserved order number (else the service draws one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_number: Option<OrderNumber>,
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

/// `quantity × price`, rounded half away from zero to `decimals` places (the currency's).
pub fn net_amount(quantity: Quantity, price: Money, decimals: u32) -> Result<Money, ValueError> {
    let amount = quantity
        .value()
        .checked_mul(price.value())
        .ok_or_else(|| ValueError("quantity × unit_price is too large".into()))?
        .round_dp_with_strategy(
            decimals.min(DECIMAL_SCALE),
            RoundingStrategy::MidpointAwayFromZero,
        );
    Money::try_from(amount).map_err(|_| ValueError("quantity × unit_price is too large".into()))
}

/// Sum of the net amounts; `None` when nothing is priced, an error when the sum is too large.
pub fn total_of(amounts: impl IntoIterator<Item = Money>) -> Result<Option<Money>, ValueError> {
    let mut total: Option<Decimal> = None;
    for a in amounts {
        let sum = total
            .unwrap_or(Decimal::ZERO)
            .checked_add(a.value())
            .ok_or_else(|| ValueError("the order total is too large".into()))?;
        total = Some(sum);
    }
    total
        .map(|t| Money::try_from(t).map_err(|_| ValueError("the order total is too large".into())))
        .transpose()
}

/// The order's net value after any change, as SAP computes it: the sum of the net amounts of
/// the priced lines that are *not rejected* (SAP excludes rejected lines from the net value).
/// `None` when no line is priced at all; `Some(0)` when every priced line is rejected. Each
/// item is `(net_amount, rejected)`.
pub fn open_total(
    lines: impl IntoIterator<Item = (Option<Money>, bool)>,
) -> Result<Option<Money>, ValueError> {
    let mut any_priced = false;
    let open: Vec<Money> = lines
        .into_iter()
        .filter_map(|(net, rejected)| {
            any_priced |= net.is_some();
            net.filter(|_| !rejected)
        })
        .collect();
    match total_of(open)? {
        Some(t) => Ok(Some(t)),
        None if any_priced => Ok(Some(Money::try_from(Decimal::ZERO)?)),
        None => Ok(None),
    }
}

impl OrderRequest {
    /// Validates a draft, reporting every offending field at once.
    pub fn parse(draft: &OrderDraft) -> Result<OrderRequest, Vec<FieldError>> {
        let mut c = Checker { errors: Vec::new() };
        let order_number = c.optional(
            "order_number",
            draft.order_number.as_ref(),
            OrderNumber::parse,
        );
        let customer_id = c.required("customer_id", draft.customer_id.as_ref(), CustomerId::parse);
        let currency = c.optional("currency", draft.currency.as_ref(), CurrencyCode::parse);
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
                    let unit = c.optional(&at("unit"), item.unit.as_ref(), Unit::parse);
                    let unit_price =
                        c.optional(&at("unit_price"), item.unit_price.as_ref(), Money::parse);
                    let specifications =
                        c.specifications(&at("specifications"), item.specifications.as_ref());
                    if let (Some(sku), Some(quantity)) = (sku, quantity) {
                        lines.push(RequestedLine {
                            item_number: (i as i32 + 1) * 10,
                            sku,
                            quantity,
                            unit,
                            unit_price,
                            specifications,
                        });
                    }
                }
            }
        }

        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        let Some(customer_id) = customer_id else {
            return Err(vec![FieldError::new("customer_id", "is required")]);
        };
        Ok(OrderRequest {
            order_number,
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
        })
    }

    /// Whether completing the order needs the customer's master data (no currency was sent).
    pub fn needs_customer(&self) -> bool {
        self.currency.is_none()
    }

    /// The materials whose master data completing the order needs: lines without a unit,
    /// lines without a price when `prices_known` (some material has a price), and lines whose
    /// unit `may_be_iso` says could be some material's ISO unit. A request that names every
    /// value (in base units) needs none, and so no look-up.
    pub fn materials_needed(
        &self,
        may_be_iso: impl Fn(&str) -> bool,
        prices_known: bool,
    ) -> Vec<&str> {
        let mut skus: Vec<&str> = self
            .lines
            .iter()
            .filter(|l| {
                (l.unit_price.is_none() && prices_known)
                    || l.unit.as_ref().is_none_or(|u| may_be_iso(u.as_str()))
            })
            .map(|l| l.sku.as_str())
            .collect();
        skus.sort_unstable();
        skus.dedup();
        skus
    }

    /// Completes the order as SAP would from its master data: a missing unit becomes the
    /// material's base unit (an ISO unit sent becomes the base unit too), a missing currency
    /// the customer's currency in the order's sales area, a missing price the material's price
    /// per base unit; net amounts are `quantity × unit_price` rounded to the currency's
    /// decimals, the total their sum. Values the caller sent are kept. Whatever is needed and
    /// cannot be derived is named, every field at once: as
    /// [`CompletionError::MasterDataIncomplete`] when only the master data is lacking (the
    /// request is valid), as [`CompletionError::Invalid`] when a value of the request itself is
    /// wrong.
    pub fn complete(&self, master: &MasterData) -> Result<NewOrder, CompletionError> {
        let mut errors = Errors::default();
        let currency = match &self.currency {
            Some(c) => Some(c.clone()),
            None => match master.currency_for(self) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.missing("currency", e.0);
                    None
                }
            },
        };
        let decimals = currency
            .as_ref()
            .map_or(DECIMAL_SCALE, CurrencyCode::decimals);
        let mut lines = Vec::with_capacity(self.lines.len());
        for (i, line) in self.lines.iter().enumerate() {
            let at = |f: &str| format!("items[{i}].{f}");
            let material = master.materials.get(line.sku.as_str());
            let unit = match (&line.unit, material) {
                (Some(u), Some(m)) if m.iso_unit.as_ref() == Some(u) => Some(m.base_unit.clone()),
                (Some(u), _) => Some(u.clone()),
                (None, Some(m)) => Some(m.base_unit.clone()),
                (None, None) => {
                    errors.missing(
                        at("unit"),
                        format!(
                            "is required: material {} is not in the master data",
                            line.sku
                        ),
                    );
                    None
                }
            };
            let unit_price = match (line.unit_price, material.and_then(|m| m.price.as_ref())) {
                (Some(p), _) => Some(p),
                (None, None) => None,
                (None, Some(price)) => {
                    let m = material.map(|m| &m.base_unit);
                    if unit.is_some() && unit.as_ref() != m {
                        errors.missing(
                            at("unit_price"),
                            format!(
                                "is required: material {} has a price per {} in the master \
                                 data, none per {}",
                                line.sku,
                                m.map_or("", Unit::as_str),
                                unit.as_ref().map_or("", Unit::as_str)
                            ),
                        );
                        None
                    } else if currency.as_ref().is_some_and(|c| *c != price.currency) {
                        errors.missing(
                            at("unit_price"),
                            format!(
                                "is required: material {} has a price in {} in the master \
                                 data, none in {} (the order's currency)",
                                line.sku,
                                price.currency,
                                currency.as_ref().map_or("", CurrencyCode::as_str)
                            ),
                        );
                        None
                    } else {
                        Some(price.amount)
                    }
                }
            };
            let net = match unit_price {
                Some(p) => match net_amount(line.quantity, p, decimals) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        errors.invalid(at("unit_price"), e.0);
                        None
                    }
                },
                None => None,
            };
            if let Some(unit) = unit {
                lines.push(NewOrderLine {
                    item_number: line.item_number,
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit,
                    unit_price,
                    net_amount: net,
                    specifications: line.specifications.clone(),
                });
            }
        }
        let total_net_amount = match total_of(lines.iter().filter_map(|l| l.net_amount)) {
            Ok(t) => t,
            Err(e) => {
                errors.invalid("items", e.0);
                None
            }
        };
        errors.into_result()?;
        let Some(currency) = currency else {
            return Err(CompletionError::MasterDataIncomplete(Vec::new()));
        };
        Ok(NewOrder {
            order_number: self.order_number.clone(),
            customer_id: self.customer_id.clone(),
            currency,
            customer_reference: self.customer_reference.clone(),
            sales_organization: self.sales_organization.clone(),
            distribution_channel: self.distribution_channel.clone(),
            division: self.division.clone(),
            order_type: self.order_type.clone(),
            requested_delivery_date: self.requested_delivery_date,
            specifications: self.specifications.clone(),
            lines,
            total_net_amount,
        })
    }
}

impl NewOrder {
    /// Validates a draft that names every value itself (no master data): [`OrderRequest::parse`]
    /// then [`OrderRequest::complete`] with empty master data.
    pub fn parse(draft: &OrderDraft) -> Result<NewOrder, Vec<FieldError>> {
        let request = OrderRequest::parse(draft)?;
        request
            .complete(&MasterData::default())
            .map_err(CompletionError::into_errors)
    }
}

/// Why [`OrderRequest::complete`] could not complete an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionError {
    /// A value of the request itself is wrong (e.g. `quantity × unit_price` too large): every
    /// offending field, including any the master data cannot fill in as well.
    Invalid(Vec<FieldError>),
    /// The request is valid, but it leaves out values (unit, currency, unit price) that the
    /// stored master data cannot fill in: each such field, with what the master data lacks.
    MasterDataIncomplete(Vec<FieldError>),
}

impl CompletionError {
    /// The fields named, whatever the cause.
    pub fn into_errors(self) -> Vec<FieldError> {
        match self {
            Self::Invalid(e) | Self::MasterDataIncomplete(e) => e,
        }
    }

    /// The fields named, whatever the cause.
    pub fn errors(&self) -> &[FieldError] {
        match self {
            Self::Invalid(e) | Self::MasterDataIncomplete(e) => e,
        }
    }
}

/// The fields completion refuses, in order, each marked by its cause.
#[derive(Default)]
struct Errors {
    fields: Vec<FieldError>,
    any_invalid: bool,
}

impl Errors {
    fn missing(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.fields.push(FieldError::new(field, message));
    }

    fn invalid(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.any_invalid = true;
        self.fields.push(FieldError::new(field, message));
    }

    fn into_result(self) -> Result<(), CompletionError> {
        match (self.fields.is_empty(), self.any_invalid) {
            (true, _) => Ok(()),
            (false, true) => Err(CompletionError::Invalid(self.fields)),
            (false, false) => Err(CompletionError::MasterDataIncomplete(self.fields)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::CustomerId;

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

    use crate::master_data::{Customer, Material, Price, SalesArea};

    fn master() -> MasterData {
        let material = |sku: &str, price: Option<(&str, &str)>| Material {
            sku: Sku::parse(sku).unwrap(),
            base_unit: Unit::parse("PC").unwrap(),
            iso_unit: Some(Unit::parse("PCE").unwrap()),
            price: price.map(|(a, c)| Price {
                amount: Money::parse(a).unwrap(),
                currency: CurrencyCode::parse(c).unwrap(),
            }),
            description: None,
        };
        let area = |so: &str, cur: &str| SalesArea {
            sales_organization: SalesOrganization::parse(so).unwrap(),
            distribution_channel: DistributionChannel::parse("10").unwrap(),
            division: Division::parse("00").unwrap(),
            currency: CurrencyCode::parse(cur).unwrap(),
        };
        MasterData {
            materials: [
                ("TG11".to_owned(), material("TG11", Some(("12.50", "EUR")))),
                ("TG12".to_owned(), material("TG12", Some(("0.335", "EUR")))),
                ("TG13".to_owned(), material("TG13", None)),
            ]
            .into(),
            customer: Some(Customer {
                customer_id: CustomerId::parse("17100001").unwrap(),
                name: None,
                sales_areas: vec![area("1010", "EUR"), area("1710", "USD")],
            }),
        }
    }

    fn complete(v: Value) -> Result<NewOrder, Vec<FieldError>> {
        match OrderRequest::parse(&draft(v)).unwrap().complete(&master()) {
            Ok(o) => Ok(o),
            Err(CompletionError::MasterDataIncomplete(e)) => Err(e),
            Err(e) => panic!("refused as invalid, not for master data: {e:?}"),
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn unit_currency_and_price_left_out_are_derived_from_master_data() {
        let o = complete(serde_json::json!({
            "customer_id":"17100001","sales_organization":"1010",
            "items":[{"sku":"TG11","quantity":"2"},{"sku":"TG12","quantity":"3"}]
        }))
        .unwrap();
        assert_eq!(o.currency.as_str(), "EUR", "the sales area's currency");
        assert_eq!(o.lines[0].unit.as_str(), "PC", "the base unit");
        assert_eq!(o.lines[0].unit_price.unwrap().value().to_string(), "12.50");
        assert_eq!(o.lines[0].net_amount.unwrap().value().to_string(), "25.00");
        // 3 × 0.335 = 1.005, rounded half away from zero to EUR's two decimals.
        assert_eq!(o.lines[1].net_amount.unwrap().value().to_string(), "1.01");
        assert_eq!(o.total_net_amount.unwrap().value().to_string(), "26.01");
    }

    #[test]
    fn values_the_caller_sent_are_kept_and_an_iso_unit_becomes_the_base_unit() {
        let o = complete(serde_json::json!({
            "customer_id":"17100001","currency":"EUR",
            "items":[{"sku":"TG11","quantity":"2","unit":"PCE","unit_price":"10"},
                     {"sku":"TG11","quantity":"1","unit":"KG","unit_price":"3.50"},
                     {"sku":"UNKNOWN","quantity":"1","unit":"PC"}]
        }))
        .unwrap();
        assert_eq!(o.lines[0].unit.as_str(), "PC");
        assert_eq!(o.lines[0].unit_price.unwrap().value().to_string(), "10");
        assert_eq!(
            o.lines[1].unit.as_str(),
            "KG",
            "another unit is kept as sent"
        );
        assert!(
            o.lines[2].unit_price.is_none(),
            "no price known: unpriced, as before"
        );
        assert_eq!(o.total_net_amount.unwrap().value().to_string(), "23.50");
    }

    #[test]
    fn what_cannot_be_derived_is_named_field_by_field() {
        let errors = complete(serde_json::json!({
            "customer_id":"17100001",
            "items":[{"sku":"UNKNOWN","quantity":"1"},{"sku":"TG11","quantity":"1","unit":"KG"}]
        }))
        .unwrap_err();
        assert_eq!(
            fields(errors),
            ["currency", "items[0].unit", "items[1].unit_price"],
            "two sales areas in two currencies; no material; priced per PC, not KG"
        );
        let errors = complete(serde_json::json!({
            "customer_id":"17100001","currency":"USD","items":[{"sku":"TG11","quantity":"1"}]
        }))
        .unwrap_err();
        assert_eq!(errors[0].field, "items[0].unit_price");
        assert!(
            errors[0]
                .message
                .contains("has a price in EUR in the master data"),
            "{errors:?}"
        );
        let errors = OrderRequest::parse(&draft(serde_json::json!({
            "customer_id":"99","items":[{"sku":"TG11","quantity":"1"}]
        })))
        .unwrap()
        .complete(&MasterData::default())
        .unwrap_err();
        assert!(
            matches!(errors, CompletionError::MasterDataIncomplete(_)),
            "{errors:?}"
        );
        assert_eq!(fields(errors.into_errors()), ["currency", "items[0].unit"]);
    }

    #[test]
    fn a_value_of_the_request_itself_wrong_is_invalid_not_missing_master_data() {
        // 10^12 - 1 × 10^13 - 1 is no amount; the unit left out is named too.
        let errors = OrderRequest::parse(&draft(serde_json::json!({
            "customer_id":"17100001","currency":"EUR",
            "items":[{"sku":"TG11","quantity":"999999999999","unit":"PC","unit_price":"9999999999999"},
                     {"sku":"UNKNOWN","quantity":"1"}]
        })))
        .unwrap()
        .complete(&master())
        .unwrap_err();
        assert!(matches!(errors, CompletionError::Invalid(_)), "{errors:?}");
        assert_eq!(
            fields(errors.into_errors()),
            ["items[0].unit_price", "items[1].unit"]
        );
    }

    #[test]
    fn only_lines_missing_a_value_or_possibly_in_iso_units_need_a_material_look_up() {
        let r = OrderRequest::parse(&draft(serde_json::json!({
            "customer_id":"1","currency":"EUR",
            "items":[{"sku":"A","quantity":"1","unit":"PC","unit_price":"1"},
                     {"sku":"B","quantity":"1","unit":"PCE","unit_price":"1"},
                     {"sku":"C","quantity":"1","unit":"PC"},
                     {"sku":"D","quantity":"1","unit_price":"1"}]
        })))
        .unwrap();
        assert!(!r.needs_customer());
        assert_eq!(r.materials_needed(|u| u == "PCE", true), ["B", "C", "D"]);
        assert_eq!(r.materials_needed(|_| false, true), ["C", "D"]);
        assert_eq!(
            r.materials_needed(|_| false, false),
            ["D"],
            "no material has a price: an unpriced line stays unpriced without a look-up"
        );
    }

    #[test]
    fn net_amounts_are_rounded_to_the_currency_decimals() {
        let q = Quantity::parse("3").unwrap();
        let p = Money::parse("0.335").unwrap();
        assert_eq!(net_amount(q, p, 2).unwrap().value().to_string(), "1.01");
        assert_eq!(net_amount(q, p, 0).unwrap().value().to_string(), "1");
        assert_eq!(net_amount(q, p, 3).unwrap().value().to_string(), "1.005");
    }

    #[test]
    fn the_open_total_leaves_rejected_lines_out_and_tells_unpriced_from_zero() {
        let m = |s: &str| Some(Money::parse(s).unwrap());
        let t =
            |v: Vec<(Option<Money>, bool)>| open_total(v).unwrap().map(|m| m.value().to_string());
        assert_eq!(
            t(vec![(m("25.00"), false), (m("10.00"), true), (None, false)]).as_deref(),
            Some("25.00")
        );
        assert_eq!(t(vec![(m("25.00"), true)]).as_deref(), Some("0"));
        assert_eq!(t(vec![(None, false), (None, true)]), None);
    }

    #[test]
    fn a_reserved_order_number_must_be_ten_digits() {
        let errors = OrderRequest::parse(&draft(serde_json::json!({
            "order_number":"80000001","customer_id":"1","currency":"EUR",
            "items":[{"sku":"A","quantity":"1","unit":"PC"}]
        })))
        .unwrap_err();
        assert_eq!(fields(errors), ["order_number"]);
    }
}
