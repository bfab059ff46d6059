//! What SAP does with a sales order: checks against master data, numbering, defaults,
//! pricing, and the rules of a header change.
//!
//! This is the emulator's own stand-in for SD's order processing, written from SAP's
//! behaviour, not from our order logic (the emulator must stay an independent cross-check).

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use sap_odata::date::JsonDate;
use sap_odata::payload::{PropertyMap, SalesOrderCreate};
use sap_odata::value::decimal_fits;
use sap_odata::{EdmValue, SALES_ORDER, SALES_ORDER_ITEM};

use crate::config::BillingRelevance;
use crate::error::{SapError, codes};
use crate::master_data::MasterData;
use crate::store::{Order, Record};

/// The SD customizing the emulator's order processing follows (from [`crate::Config`]).
#[derive(Debug, Clone)]
pub struct Customizing {
    /// Configured reasons for rejection (S/4's table TVAG).
    pub rejection_reasons: Vec<String>,
    /// Billing relevance of the items' category.
    pub billing: BillingRelevance,
}

impl Default for Customizing {
    fn default() -> Self {
        Self {
            rejection_reasons: crate::config::DEFAULT_REJECTION_REASONS
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
            billing: BillingRelevance::Delivery,
        }
    }
}

impl Customizing {
    /// What an item's order-related billing status starts as: `A` (not yet billed) when the
    /// items are billed order-related, empty (not relevant) when billing refers to deliveries.
    fn initial_billing_status(&self) -> &'static str {
        match self.billing {
            BillingRelevance::Delivery => "",
            BillingRelevance::Order => "A",
        }
    }
}

/// What S/4 takes from a create: only the properties its service definition marks creatable
/// (`sap:creatable`). The others (statuses, totals, `ExternalDocumentID`, item `NetAmount`, ...)
/// are S/4's own: a value sent for them is dropped without an error, as SAP Gateway's mapped
/// services do, and S/4 fills in its own value. See docs/sap-mock.md, "Sources".
fn creatable_only(sent: &PropertyMap) -> PropertyMap {
    let mut kept = PropertyMap::new();
    for (p, v) in sent.iter().filter(|(p, _)| p.creatable) {
        kept.set(p, v.clone());
    }
    kept
}

/// Header properties that cannot change once the order exists.
const FIXED_AFTER_CREATE: &[&str] = &[
    "SalesOrderType",
    "SalesOrganization",
    "DistributionChannel",
    "OrganizationDivision",
    "SoldToParty",
    "TransactionCurrency",
];

fn str_or_empty<'a>(m: &'a PropertyMap, name: &str) -> &'a str {
    m.get_str(name).unwrap_or_default()
}

fn date(at: DateTime<Utc>) -> EdmValue {
    EdmValue::DateTime(JsonDate::from_date(at.date_naive()))
}

fn money(d: Decimal) -> EdmValue {
    let mut d = d.round_dp(2);
    d.rescale(2);
    EdmValue::Decimal(d)
}

/// Checks a deep-insert create against the master data and builds the order SAP would save
/// under `number` (already drawn or checked by the caller, see [`crate::numbering`]), priced,
/// with items numbered 10, 20, ... unless the client numbered them. Properties S/4 does not take
/// on create are dropped first.
pub fn build_order(
    req: &SalesOrderCreate,
    number: String,
    md: &MasterData,
    user: &str,
    cz: &Customizing,
    now: DateTime<Utc>,
) -> Result<Order, SapError> {
    let h = &creatable_only(&req.header);
    let order_type = str_or_empty(h, "SalesOrderType");
    let org = str_or_empty(h, "SalesOrganization");
    let channel = str_or_empty(h, "DistributionChannel");
    let division = str_or_empty(h, "OrganizationDivision");
    let sold_to = str_or_empty(h, "SoldToParty");
    for (field, value, what) in [
        ("SalesOrderType", order_type, "a sales document type"),
        ("SalesOrganization", org, "a sales organization"),
        ("DistributionChannel", channel, "a distribution channel"),
        ("OrganizationDivision", division, "a division"),
    ] {
        if value.is_empty() {
            return Err(
                SapError::bad_request(codes::FIELD_MISSING, format!("Enter {what}")).on(field),
            );
        }
    }
    if sold_to.is_empty() {
        return Err(
            SapError::bad_request(codes::SOLD_TO_MISSING, "Enter a sold-to party")
                .on("SoldToParty"),
        );
    }
    if !md.order_types.iter().any(|t| t == order_type) {
        return Err(SapError::bad_request(
            codes::ORDER_TYPE_UNKNOWN,
            format!("Sales document type {order_type} is not defined"),
        )
        .on("SalesOrderType"));
    }
    let area = md.sales_area(org, channel, division).ok_or_else(|| {
        SapError::bad_request(
            codes::SALES_AREA_UNKNOWN,
            format!("Sales area {org} {channel} {division} is not defined"),
        )
        .on("SalesOrganization")
    })?;
    let customer = md.customers.get(sold_to).ok_or_else(|| {
        SapError::bad_request(
            codes::CUSTOMER_UNKNOWN,
            format!(
                "Sold-to party {sold_to} is not defined for sales area {org} {channel} {division}"
            ),
        )
        .on("SoldToParty")
    })?;
    let currency = match h.get_str("TransactionCurrency").filter(|c| !c.is_empty()) {
        None => area.currency.clone(),
        Some(c) if c == area.currency => c.to_owned(),
        Some(c) => {
            return Err(SapError::bad_request(
                codes::PRICING_FAILED,
                format!("No prices are maintained in currency {c} for sales area {org} {channel} {division}"),
            )
            .on("TransactionCurrency"));
        }
    };

    let mut header = Record::empty(&SALES_ORDER);
    for (p, v) in h.iter() {
        header.set(p.name, v.clone());
    }
    let today = date(now);
    header.set("SalesOrder", EdmValue::String(number.clone()));
    header.set("TransactionCurrency", EdmValue::String(currency.clone()));
    header.set("CreationDate", today.clone());
    header.set(
        "CreatedByUser",
        EdmValue::String(user.chars().take(12).collect::<String>().to_uppercase()),
    );
    header.set("LastChangeDate", EdmValue::Null);
    header.set(
        "LastChangeDateTime",
        EdmValue::DateTimeOffset(JsonDate::from_utc(now)),
    );
    for (field, value) in [
        ("SalesOrderDate", today.clone()),
        ("PricingDate", today.clone()),
        ("RequestedDeliveryDate", today.clone()),
    ] {
        if matches!(header.get(field), EdmValue::Null) {
            header.set(field, value);
        }
    }
    for (field, value) in [
        ("CustomerPaymentTerms", customer.payment_terms.as_str()),
        ("IncotermsClassification", customer.incoterms.as_str()),
        ("ShippingCondition", "01"),
    ] {
        if header.get_str(field).is_empty() {
            header.set(field, EdmValue::String(value.to_owned()));
        }
    }
    header.set("TotalCreditCheckStatus", EdmValue::String(String::new()));

    let mut items = Vec::with_capacity(req.items.len());
    let mut last_number = 0u32;
    for sent in req.items.iter().map(creatable_only) {
        let item_number = match sent.get_str("SalesOrderItem").filter(|s| !s.is_empty()) {
            None => last_number + 10,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| *n > last_number)
                .ok_or_else(|| {
                    SapError::bad_request(
                        codes::ITEM_NUMBER_INVALID,
                        format!("Item number {s} is invalid or not ascending"),
                    )
                    .on("SalesOrderItem")
                })?,
        };
        last_number = item_number;
        items.push(build_item(&sent, item_number, &header, md, cz)?);
    }
    let mut order = Order::new(header, items, now);
    derive_header(&mut order, cz)?;
    Ok(order)
}

/// Checks one item against the master data and builds it as SAP saves it: units, weights,
/// texts and defaults filled in, priced in the order's currency. `sent` holds only what S/4
/// takes from the client (callers drop the rest).
fn build_item(
    sent: &PropertyMap,
    item_number: u32,
    header: &Record,
    md: &MasterData,
    cz: &Customizing,
) -> Result<Record, SapError> {
    if item_number == 0 || item_number > 999_999 {
        return Err(SapError::bad_request(
            codes::ITEM_NUMBER_INVALID,
            format!("Item number {item_number} is out of range (1 to 999999)"),
        )
        .on("SalesOrderItem"));
    }
    let item_label = item_number.to_string();
    let org = header.get_str("SalesOrganization");
    let channel = header.get_str("DistributionChannel");
    let currency = header.get_str("TransactionCurrency");
    let material_id = str_or_empty(sent, "Material");
    if material_id.is_empty() {
        return Err(SapError::bad_request(
            codes::MATERIAL_MISSING,
            format!("Enter a material for item {item_label}"),
        )
        .on("Material"));
    }
    let material = md.materials.get(material_id).ok_or_else(|| {
        SapError::bad_request(
            codes::MATERIAL_UNKNOWN,
            format!("Material {material_id} is not defined for sales org.{org}, distr.chan.{channel}, language EN"),
        )
        .on("Material")
    })?;
    let quantity = sent
        .get("RequestedQuantity")
        .and_then(EdmValue::as_decimal)
        .unwrap_or(Decimal::ZERO);
    if quantity <= Decimal::ZERO {
        return Err(SapError::bad_request(
            codes::QUANTITY_NOT_POSITIVE,
            format!("Enter a positive order quantity for item {item_label}"),
        )
        .on("RequestedQuantity"));
    }
    let unit = match sent
        .get_str("RequestedQuantityUnit")
        .filter(|u| !u.is_empty())
    {
        None => material.base_unit.clone(),
        Some(u) if u == material.base_unit || u == material.iso_unit => material.base_unit.clone(),
        Some(u) => {
            return Err(SapError::bad_request(
                codes::UNIT_UNKNOWN,
                format!("Unit {u} is not defined for material {material_id}"),
            )
            .on("RequestedQuantityUnit"));
        }
    };
    if material.currency != currency {
        return Err(SapError::bad_request(
            codes::PRICING_FAILED,
            format!("No price is maintained for material {material_id} in currency {currency}"),
        ));
    }
    let net = quantity
        .checked_mul(material.price)
        .map(|d| d.round_dp(2))
        .filter(|d| decimal_fits(*d, 16, 3))
        .ok_or_else(|| {
            SapError::bad_request(
                codes::PRICING_FAILED,
                format!("Net value of item {item_label} is too large"),
            )
            .on("RequestedQuantity")
        })?;

    let mut item = Record::empty(&SALES_ORDER_ITEM);
    for (p, v) in sent.iter() {
        item.set(p.name, v.clone());
    }
    let qty = EdmValue::Decimal(quantity.normalize());
    let weight = |per: Decimal| {
        EdmValue::Decimal(
            quantity
                .checked_mul(per)
                .filter(|d| decimal_fits(*d, 15, 3))
                .unwrap_or(Decimal::ZERO)
                .normalize(),
        )
    };
    let s = |v: &str| EdmValue::String(v.to_owned());
    item.set("SalesOrder", s(header.get_str("SalesOrder")));
    item.set("SalesOrderItem", s(&item_label));
    item.set("RequestedQuantity", qty.clone());
    item.set("ConfdDelivQtyInOrderQtyUnit", qty);
    for f in [
        "RequestedQuantityUnit",
        "RequestedQuantitySAPUnit",
        "OrderQuantityUnit",
        "OrderQuantitySAPUnit",
    ] {
        item.set(f, s(&unit));
    }
    item.set("RequestedQuantityISOUnit", s(&material.iso_unit));
    item.set("OrderQuantityISOUnit", s(&material.iso_unit));
    item.set("ItemGrossWeight", weight(material.gross_weight));
    item.set("ItemNetWeight", weight(material.net_weight));
    for f in ["ItemWeightUnit", "ItemWeightSAPUnit"] {
        item.set(f, s(&material.weight_unit));
    }
    item.set(
        "ItemWeightISOUnit",
        s(if material.weight_unit == "KG" {
            "KGM"
        } else {
            ""
        }),
    );
    item.set("TransactionCurrency", s(currency));
    item.set("NetAmount", money(net));
    item.set("MaterialGroup", s(&material.material_group));
    let reason = str_or_empty(sent, "SalesDocumentRjcnReason");
    if !reason.is_empty() && !cz.rejection_reasons.iter().any(|r| r == reason) {
        return Err(SapError::bad_request(
            codes::REJECTION_REASON_UNKNOWN,
            format!("Reason for rejection {reason} is not defined (item {item_label})"),
        )
        .on("SalesDocumentRjcnReason"));
    }
    item.set("SDProcessStatus", s("A"));
    item.set("DeliveryStatus", s("A"));
    item.set("OrderRelatedBillingStatus", s(cz.initial_billing_status()));
    for (field, value) in [
        ("SalesOrderItemCategory", "TAN"),
        ("SalesOrderItemText", material.description.as_str()),
        ("ProductionPlant", "1010"),
        ("ShippingPoint", "1010"),
        (
            "PurchaseOrderByCustomer",
            header.get_str("PurchaseOrderByCustomer"),
        ),
    ] {
        if item.get_str(field).is_empty() {
            let v: String = value.chars().take(35).collect();
            item.set(field, EdmValue::String(v));
        }
    }
    if matches!(item.get("PricingDate"), EdmValue::Null) {
        item.set("PricingDate", header.get("PricingDate").clone());
    }
    derive_item_status(&mut item, cz);
    Ok(item)
}

/// Whether an item carries a reason for rejection.
pub fn is_rejected(item: &Record) -> bool {
    !item.get_str("SalesDocumentRjcnReason").is_empty()
}

/// Whether (part of) an item was delivered: its `DeliveryStatus` is `B` or `C`.
pub fn is_delivered(item: &Record) -> bool {
    matches!(item.get_str("DeliveryStatus"), "B" | "C")
}

/// The item's overall processing status (`SDProcessStatus`, SAP's GBSTA) from its rejection,
/// delivery and billing: a rejected item is completed (`C`); otherwise a delivery-billed item
/// is completed once delivered, an order-billed one once delivered and billed, in process
/// (`B`) with one of the two, open (`A`) with neither.
fn derive_item_status(item: &mut Record, cz: &Customizing) {
    let delivered = item.get_str("DeliveryStatus") == "C";
    let billed = item.get_str("OrderRelatedBillingStatus") == "C";
    let status = if is_rejected(item) {
        "C"
    } else {
        match (cz.billing, delivered, billed) {
            (BillingRelevance::Delivery, true, _) | (BillingRelevance::Order, true, true) => "C",
            (BillingRelevance::Order, true, false) | (BillingRelevance::Order, false, true) => "B",
            _ => "A",
        }
    };
    item.set("SDProcessStatus", EdmValue::String(status.to_owned()));
}

/// `A` when every status is `A`, `C` when every one is `C`, `B` in between; `empty` when there
/// is none.
fn aggregate<'a>(statuses: impl Iterator<Item = &'a str>, empty: &str) -> String {
    let all: Vec<&str> = statuses.collect();
    if all.is_empty() {
        empty.to_owned()
    } else if all.iter().all(|s| *s == "A") {
        "A".to_owned()
    } else if all.iter().all(|s| *s == "C") {
        "C".to_owned()
    } else {
        "B".to_owned()
    }
}

/// The header's totals and statuses from its items, as S/4 derives them: `TotalNetAmount`
/// without rejected items; `OverallSDDocumentRejectionSts` `A` (none rejected), `B` (some),
/// `C` (all); `OverallSDProcessStatus` over every item; delivery statuses over the items not
/// rejected (all items when every one is rejected); the order-related billing status over
/// the items not rejected when billing is order-related, empty (not relevant) otherwise.
fn derive_header(order: &mut Order, cz: &Customizing) -> Result<(), SapError> {
    let active: Vec<&Record> = order.items.iter().filter(|i| !is_rejected(i)).collect();
    let total = total_net(active.iter().copied())?;
    let rejected = order.items.len() - active.len();
    let rejection = if rejected == 0 {
        "A"
    } else if active.is_empty() {
        "C"
    } else {
        "B"
    };
    let relevant: Vec<&Record> = if active.is_empty() {
        order.items.iter().collect()
    } else {
        active.clone()
    };
    let process = aggregate(
        order.items.iter().map(|i| i.get_str("SDProcessStatus")),
        "A",
    );
    let delivery = aggregate(relevant.iter().map(|i| i.get_str("DeliveryStatus")), "A");
    let billing = match cz.billing {
        BillingRelevance::Delivery => String::new(),
        BillingRelevance::Order => aggregate(
            relevant
                .iter()
                .map(|i| i.get_str("OrderRelatedBillingStatus")),
            "A",
        ),
    };
    let h = &mut order.header;
    h.set("TotalNetAmount", money(total));
    let s = |v: &str| EdmValue::String(v.to_owned());
    h.set("OverallSDDocumentRejectionSts", s(rejection));
    h.set("OverallSDProcessStatus", s(&process));
    h.set("OverallDeliveryStatus", s(&delivery));
    h.set("OverallTotalDeliveryStatus", s(&delivery));
    h.set("OverallOrdReltdBillgStatus", s(&billing));
    Ok(())
}

/// The sum of the items' net amounts, if it fits `TotalNetAmount`.
fn total_net<'a>(mut items: impl Iterator<Item = &'a Record>) -> Result<Decimal, SapError> {
    items
        .try_fold(Decimal::ZERO, |sum, i| {
            sum.checked_add(i.get("NetAmount").as_decimal().unwrap_or_default())
        })
        .filter(|d| decimal_fits(*d, 16, 3))
        .ok_or_else(|| {
            SapError::bad_request(codes::PRICING_FAILED, "Net value of the order is too large")
        })
}

/// Moves the change date and timestamp (the ETag source) forward, strictly.
fn touch(order: &mut Order, now: DateTime<Utc>) {
    let mut at = now;
    if at <= order.changed_at {
        at = order.changed_at + Duration::nanoseconds(100);
    }
    order.changed_at = at;
    order.header.set("LastChangeDate", date(at));
    order.header.set(
        "LastChangeDateTime",
        EdmValue::DateTimeOffset(JsonDate::from_utc(at)),
    );
}

fn item_not_found(order: &Order, item_no: &str) -> SapError {
    SapError::new(
        http::StatusCode::NOT_FOUND,
        codes::DOCUMENT_NOT_FOUND,
        format!(
            "Item {item_no} of SD document {} does not exist",
            order.number()
        ),
    )
}

/// The item `item_no` of `order` (leading zeros ignored), or SAP's 404.
pub fn find_item<'a>(order: &'a Order, item_no: &str) -> Result<&'a Record, SapError> {
    item_index(order, item_no)
        .map(|i| &order.items[i])
        .ok_or_else(|| item_not_found(order, item_no))
}

fn item_index(order: &Order, item_no: &str) -> Option<usize> {
    let wanted = item_no.trim_start_matches('0');
    order
        .items
        .iter()
        .position(|i| i.get_str("SalesOrderItem") == wanted)
}

/// Adds an item (`POST A_SalesOrder(..)/to_Item`): numbered after the last one (or as sent,
/// if free), checked and priced like a created item; the order total follows. Returns the
/// item number.
pub fn add_item(
    order: &mut Order,
    sent: &PropertyMap,
    md: &MasterData,
    cz: &Customizing,
    now: DateTime<Utc>,
) -> Result<String, SapError> {
    if let Some(so) = sent.get_str("SalesOrder").filter(|s| !s.is_empty())
        && so.trim_start_matches('0') != order.number()
    {
        return Err(SapError::bad_request(
            codes::FIELD_NOT_CHANGEABLE,
            format!("Item belongs to SD document {so}, not {}", order.number()),
        )
        .on("SalesOrder"));
    }
    let last = order
        .items
        .iter()
        .filter_map(|i| i.get_str("SalesOrderItem").parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    let number = match sent.get_str("SalesOrderItem").filter(|s| !s.is_empty()) {
        None => last - last % 10 + 10,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| item_index(order, &n.to_string()).is_none())
            .ok_or_else(|| {
                SapError::bad_request(
                    codes::ITEM_NUMBER_INVALID,
                    format!("Item number {s} is invalid or already used"),
                )
                .on("SalesOrderItem")
            })?,
    };
    let item = build_item(&creatable_only(sent), number, &order.header, md, cz)?;
    order.items.push(item);
    order
        .items
        .sort_by_key(|i| i.get_str("SalesOrderItem").parse::<u32>().unwrap_or(0));
    derive_header(order, cz)?;
    touch(order, now);
    Ok(number.to_string())
}

/// Changes an item (`PATCH`/`MERGE`, or `PUT` = `replace`): the keys may only be repeated,
/// the rest is merged over the stored item (or replaces it) and the item is checked and priced
/// again; the order total follows.
pub fn change_item(
    order: &mut Order,
    item_no: &str,
    changes: &PropertyMap,
    replace: bool,
    md: &MasterData,
    cz: &Customizing,
    now: DateTime<Utc>,
) -> Result<(), SapError> {
    let index = item_index(order, item_no).ok_or_else(|| item_not_found(order, item_no))?;
    let current = &order.items[index];
    for key in ["SalesOrder", "SalesOrderItem"] {
        if let Some(v) = changes.get_str(key)
            && v.trim_start_matches('0') != current.get_str(key)
        {
            return Err(SapError::bad_request(
                codes::FIELD_NOT_CHANGEABLE,
                format!("The key field {key} cannot be changed"),
            )
            .on(key));
        }
    }
    let mut merged = PropertyMap::new();
    if !replace {
        for (name, value) in current.iter() {
            if let Some(p) = SALES_ORDER_ITEM.property(name) {
                merged.set(p, value.clone());
            }
        }
    }
    // S/4 does not take properties it declares not updatable (the keys were checked above)
    for (p, v) in changes.iter().filter(|(p, _)| p.updatable) {
        merged.set(p, v.clone());
    }
    let number = current
        .get_str("SalesOrderItem")
        .parse::<u32>()
        .unwrap_or(0);
    let mut item = build_item(&merged, number, &order.header, md, cz)?;
    let current = &order.items[index];
    if is_delivered(current) {
        // S/4 keeps a delivered item: no rejection, no other quantity
        let label = current.get_str("SalesOrderItem");
        if item.get_str("SalesDocumentRjcnReason") != current.get_str("SalesDocumentRjcnReason") {
            return Err(item_delivered(label, "rejected").on("SalesDocumentRjcnReason"));
        }
        if item.get("RequestedQuantity") != current.get("RequestedQuantity") {
            return Err(item_delivered(label, "changed in quantity").on("RequestedQuantity"));
        }
    }
    // delivery and billing are SAP's own: they stay as they were
    for status in ["DeliveryStatus", "OrderRelatedBillingStatus"] {
        item.set(status, current.get(status).clone());
    }
    derive_item_status(&mut item, cz);
    order.items[index] = item;
    derive_header(order, cz)?;
    touch(order, now);
    Ok(())
}

fn item_delivered(item_no: &str, what: &str) -> SapError {
    SapError::new(
        http::StatusCode::BAD_REQUEST,
        codes::ITEM_HAS_SUBSEQUENT_DOCUMENTS,
        format!(
            "Item {item_no} has been delivered (subsequent documents exist) and cannot be {what}"
        ),
    )
}

/// Refuses to delete an order that has subsequent documents (a delivery or invoice on its
/// document flow), as S/4 does for a document with delivered items.
pub fn check_deletable(order: &Order) -> Result<(), SapError> {
    match order.flow.first() {
        None => Ok(()),
        Some(d) => Err(SapError::new(
            http::StatusCode::BAD_REQUEST,
            codes::ITEM_HAS_SUBSEQUENT_DOCUMENTS,
            format!(
                "Sales order {} cannot be deleted: subsequent document {} exists",
                order.number(),
                d.get_str("SubsequentDocument")
            ),
        )),
    }
}

/// Removes an item (not once delivered); the order total follows.
pub fn remove_item(
    order: &mut Order,
    item_no: &str,
    cz: &Customizing,
    now: DateTime<Utc>,
) -> Result<(), SapError> {
    let index = item_index(order, item_no).ok_or_else(|| item_not_found(order, item_no))?;
    if is_delivered(&order.items[index]) {
        return Err(item_delivered(
            order.items[index].get_str("SalesOrderItem"),
            "deleted",
        ));
    }
    order.items.remove(index);
    derive_header(order, cz)?;
    touch(order, now);
    Ok(())
}

/// What a simulated fulfilment step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fulfilment {
    /// These items were delivered (or billed).
    Done(Vec<String>),
    /// Nothing to do: no item open for the step.
    NothingOpen,
    /// Billing refused: delivery-related billing needs the items delivered first.
    NotDelivered(Vec<String>),
}

/// Delivers every item not rejected and not yet delivered, completely (delivery created and
/// goods issued, as one step): item `DeliveryStatus` `C`, statuses derived again.
pub fn deliver(
    order: &mut Order,
    cz: &Customizing,
    now: DateTime<Utc>,
) -> Result<Fulfilment, SapError> {
    let mut done = Vec::new();
    for item in order.items.iter_mut() {
        if is_rejected(item) || item.get_str("DeliveryStatus") == "C" {
            continue;
        }
        item.set("DeliveryStatus", EdmValue::String("C".to_owned()));
        derive_item_status(item, cz);
        done.push(item.get_str("SalesOrderItem").to_owned());
    }
    if done.is_empty() {
        return Ok(Fulfilment::NothingOpen);
    }
    derive_header(order, cz)?;
    touch(order, now);
    Ok(Fulfilment::Done(done))
}

/// Bills every item not rejected and not yet billed (delivery-related: not yet on an invoice
/// of the document flow). Delivery-related billing bills deliveries: every such item must be
/// delivered, and the order's order-related billing
/// statuses stay empty (the billing status lives on the delivery in S/4). Order-related
/// billing sets the item's `OrderRelatedBillingStatus` to `C`.
pub fn bill(
    order: &mut Order,
    cz: &Customizing,
    now: DateTime<Utc>,
) -> Result<Fulfilment, SapError> {
    let open: Vec<usize> = order
        .items
        .iter()
        .enumerate()
        .filter(|(_, i)| !is_rejected(i))
        .filter(|(_, i)| match cz.billing {
            BillingRelevance::Order => i.get_str("OrderRelatedBillingStatus") != "C",
            // the order shows no billing status: the invoice on its document flow says it
            BillingRelevance::Delivery => {
                !crate::document_flow::is_invoiced(order, i.get_str("SalesOrderItem"))
            }
        })
        .map(|(n, _)| n)
        .collect();
    if open.is_empty() {
        return Ok(Fulfilment::NothingOpen);
    }
    let undelivered: Vec<String> = open
        .iter()
        .map(|n| &order.items[*n])
        .filter(|i| i.get_str("DeliveryStatus") != "C")
        .map(|i| i.get_str("SalesOrderItem").to_owned())
        .collect();
    if cz.billing == BillingRelevance::Delivery && !undelivered.is_empty() {
        return Ok(Fulfilment::NotDelivered(undelivered));
    }
    let mut done = Vec::new();
    for n in open {
        let item = &mut order.items[n];
        if cz.billing == BillingRelevance::Order {
            item.set(
                "OrderRelatedBillingStatus",
                EdmValue::String("C".to_owned()),
            );
        }
        derive_item_status(item, cz);
        done.push(item.get_str("SalesOrderItem").to_owned());
    }
    derive_header(order, cz)?;
    touch(order, now);
    Ok(Fulfilment::Done(done))
}

/// Applies a header change (`PATCH`/`MERGE`/`PUT`) the way SAP does: the key and the fields
/// fixed at creation may only be repeated unchanged, properties S/4 declares not updatable are
/// dropped, the rest is taken; the change date and timestamp (the ETag source) move forward.
pub fn apply_update(
    order: &mut Order,
    changes: &PropertyMap,
    replace: bool,
    now: DateTime<Utc>,
) -> Result<(), SapError> {
    if replace {
        // PUT: every changeable property not sent returns to its initial value
        for p in SALES_ORDER.properties {
            if !p.key
                && p.updatable
                && !FIXED_AFTER_CREATE.contains(&p.name)
                && changes.get(p.name).is_none()
            {
                order.header.set(p.name, EdmValue::unset(p.edm));
            }
        }
    }
    for (p, v) in changes.iter() {
        if p.name == "SalesOrder" {
            if v.as_str() != Some(order.number()) {
                return Err(SapError::bad_request(
                    codes::FIELD_NOT_CHANGEABLE,
                    "The key field SalesOrder cannot be changed",
                )
                .on("SalesOrder"));
            }
            continue;
        }
        if FIXED_AFTER_CREATE.contains(&p.name) {
            if order.header.get(p.name) != v {
                return Err(SapError::bad_request(
                    codes::FIELD_NOT_CHANGEABLE,
                    format!(
                        "Field {} cannot be changed after the sales order was created",
                        p.name
                    ),
                )
                .on(p.name));
            }
            continue;
        }
        if !p.updatable {
            continue;
        }
        let value = match (p.edm, v) {
            (
                sap_odata::EdmType::String { .. }
                | sap_odata::EdmType::Decimal { .. }
                | sap_odata::EdmType::Boolean,
                EdmValue::Null,
            ) => EdmValue::unset(p.edm),
            _ => v.clone(),
        };
        order.header.set(p.name, value);
    }
    touch(order, now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sap_odata::payload::parse_sales_order_create;

    fn create(body: &str) -> Result<Order, SapError> {
        let req = parse_sales_order_create(body.as_bytes()).unwrap();
        build_order(
            &req,
            "1000001".into(),
            &MasterData::demo(),
            "alice",
            &Customizing::default(),
            Utc::now(),
        )
    }

    const GOOD: &str = r#"{"SalesOrderType":"OR","SalesOrganization":"1010","DistributionChannel":"10","OrganizationDivision":"00","SoldToParty":"17100001","PurchaseOrderByCustomer":"PO-1","to_Item":[{"Material":"TG11","RequestedQuantity":"2","RequestedQuantityUnit":"PC"},{"Material":"TG12","RequestedQuantity":"5"}]}"#;

    #[test]
    fn items_are_numbered_priced_and_totalled() {
        let o = create(GOOD).unwrap();
        assert_eq!(o.items[0].get_str("SalesOrderItem"), "10");
        assert_eq!(o.items[1].get_str("SalesOrderItem"), "20");
        assert_eq!(o.items[0].get("NetAmount").to_json(), "25.00");
        assert_eq!(o.items[1].get("NetAmount").to_json(), "90.00");
        assert_eq!(o.header.get("TotalNetAmount").to_json(), "115.00");
        assert_eq!(o.header.get_str("TransactionCurrency"), "EUR");
        assert_eq!(o.header.get_str("CreatedByUser"), "ALICE");
        assert_eq!(o.items[1].get_str("PurchaseOrderByCustomer"), "PO-1");
        assert_eq!(o.items[1].get_str("RequestedQuantityUnit"), "PC");
    }

    #[test]
    fn business_errors_carry_sap_message_ids() {
        let cases = [
            (GOOD.replace("17100001", ""), codes::SOLD_TO_MISSING),
            (
                GOOD.replace("17100001", "99999999"),
                codes::CUSTOMER_UNKNOWN,
            ),
            (GOOD.replace("TG12", "NOPE"), codes::MATERIAL_UNKNOWN),
            (GOOD.replace("\"5\"", "\"0\""), codes::QUANTITY_NOT_POSITIVE),
            (
                GOOD.replace("\"2\"", "\"-1\""),
                codes::QUANTITY_NOT_POSITIVE,
            ),
            (GOOD.replace("\"PC\"", "\"KG\""), codes::UNIT_UNKNOWN),
            (GOOD.replace("\"OR\"", "\"ZZ\""), codes::ORDER_TYPE_UNKNOWN),
            (
                GOOD.replace("\"1010\"", "\"9999\""),
                codes::SALES_AREA_UNKNOWN,
            ),
        ];
        for (body, code) in cases {
            assert_eq!(create(&body).unwrap_err().code, code, "{body}");
        }
    }

    #[test]
    fn fixed_fields_cannot_change_but_free_ones_can_and_the_timestamp_moves() {
        let mut o = create(GOOD).unwrap();
        let before = o.changed_at;
        let mut change = PropertyMap::new();
        change.set(
            SALES_ORDER.property("PurchaseOrderByCustomer").unwrap(),
            EdmValue::String("PO-2".into()),
        );
        apply_update(&mut o, &change, false, before).unwrap();
        assert_eq!(o.header.get_str("PurchaseOrderByCustomer"), "PO-2");
        assert!(o.changed_at > before);
        let mut bad = PropertyMap::new();
        bad.set(
            SALES_ORDER.property("SoldToParty").unwrap(),
            EdmValue::String("17100002".into()),
        );
        assert_eq!(
            apply_update(&mut o, &bad, false, Utc::now())
                .unwrap_err()
                .code,
            codes::FIELD_NOT_CHANGEABLE
        );
    }
}
