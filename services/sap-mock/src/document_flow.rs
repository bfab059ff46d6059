//! The sales order's document flow: the documents a fulfilment step creates after the order,
//! as S/4 lists them under `to_SubsequentProcFlowDoc` (`A_SalesOrderSubsqntProcFlow`, one
//! record per document) and, per item, `to_SubsequentProcFlowDocItem`
//! (`A_SalesOrderItmSubsqntProcFlow`, one record per document item).
//!
//! - A **delivery** (admin call) creates one outbound delivery, category `J`, numbered from
//!   80000000, with one item per delivered order item; goods issue is part of the step (the
//!   item's `DeliveryStatus` `C` says so), no goods movement document is listed.
//! - A **billing** creates one invoice, category `M`, numbered from 90000000, with one item
//!   per billed order item. With delivery-related billing (S/4's standard item) the invoice
//!   follows the delivery: its item's preceding document is the delivery item, and it is on
//!   the order's flow one level down (`ProcessFlowLevel` `1`), as the order's own billing
//!   statuses stay empty. With order-related billing it follows the order directly.
//!
//! The records live in the [`Order`] and are stored with it; numbers come from the store's
//! ranges ([`crate::store::DocumentNumbers`]). Values marked "emulator's choice" in
//! `docs/sap-mock.md` (the statuses of the subsequent documents, the level's spelling) are
//! not taken from an SAP source.

use chrono::{DateTime, Timelike, Utc};
use sap_odata::EdmValue;
use sap_odata::date::JsonDate;
use sap_odata::schema::{SALES_ORDER_ITM_SUBSQNT_PROC_FLOW, SALES_ORDER_SUBSQNT_PROC_FLOW};

use crate::config::BillingRelevance;
use crate::sales_order::Customizing;
use crate::store::{Order, Record};

/// SD document category of an outbound delivery (domain `VBTYP`).
pub const DELIVERY: &str = "J";
/// SD document category of an invoice.
pub const INVOICE: &str = "M";
/// SD document category of a sales order (the preceding document of a delivery item).
pub const ORDER: &str = "C";

/// `ProcessFlowLevel` of a document that directly follows the order.
const DIRECT: &str = "0";
/// `ProcessFlowLevel` of a document that follows one that follows the order.
const INDIRECT: &str = "1";

fn text(s: &str) -> EdmValue {
    EdmValue::String(s.to_owned())
}

fn stamp(record: &mut Record, now: DateTime<Utc>) {
    record.set(
        "CreationDate",
        EdmValue::DateTime(JsonDate::from_date(now.date_naive())),
    );
    record.set(
        "CreationTime",
        EdmValue::Time(now.num_seconds_from_midnight()),
    );
}

fn changed(record: &mut Record, now: DateTime<Utc>) {
    record.set(
        "LastChangeDate",
        EdmValue::DateTime(JsonDate::from_date(now.date_naive())),
    );
}

fn new_uuid() -> EdmValue {
    EdmValue::Guid(uuid::Uuid::new_v4().hyphenated().to_string())
}

/// One document on the order's flow.
fn header_record(
    order: &Order,
    document: &str,
    category: &str,
    level: &str,
    status: &str,
    now: DateTime<Utc>,
) -> Record {
    let mut r = Record::empty(&SALES_ORDER_SUBSQNT_PROC_FLOW);
    r.set("SalesOrder", text(order.number()));
    r.set("DocRelationshipUUID", new_uuid());
    r.set("SubsequentDocument", text(document));
    r.set("SubsequentDocumentCategory", text(category));
    r.set("ProcessFlowLevel", text(level));
    r.set("OverallSDProcessStatus", text(status));
    stamp(&mut r, now);
    r
}

/// The document item that follows an order item, and the document item it follows itself.
struct ItemLink<'a> {
    item: &'a str,
    document: &'a str,
    document_item: String,
    category: &'a str,
    level: &'a str,
    status: &'a str,
    accounting: &'a str,
    preceding: (String, String, &'a str),
}

fn item_record(order: &Order, link: ItemLink<'_>, now: DateTime<Utc>) -> Record {
    let mut r = Record::empty(&SALES_ORDER_ITM_SUBSQNT_PROC_FLOW);
    r.set("SalesOrder", text(order.number()));
    r.set("SalesOrderItem", text(link.item));
    r.set("DocRelationshipUUID", new_uuid());
    r.set("SubsequentDocument", text(link.document));
    r.set("SubsequentDocumentItem", text(&link.document_item));
    r.set("SubsequentDocumentCategory", text(link.category));
    r.set("ProcessFlowLevel", text(link.level));
    r.set("SDProcessStatus", text(link.status));
    r.set("AccountingTransferStatus", text(link.accounting));
    r.set("SubsqntDocItmPrecdgDocument", text(&link.preceding.0));
    r.set("SubsqntDocItmPrecdgDocItem", text(&link.preceding.1));
    r.set("SubsqntDocItmPrecdgDocCategory", text(link.preceding.2));
    stamp(&mut r, now);
    r
}

/// The delivery item (number, item) in which order item `item_no` was delivered.
fn delivery_of(order: &Order, item_no: &str) -> Option<(String, String)> {
    order
        .item_flow_of(item_no)
        .find(|r| r.get_str("SubsequentDocumentCategory") == DELIVERY)
        .map(|r| {
            (
                r.get_str("SubsequentDocument").to_owned(),
                r.get_str("SubsequentDocumentItem").to_owned(),
            )
        })
}

/// Whether order item `item_no` is on an invoice already.
pub fn is_invoiced(order: &Order, item_no: &str) -> bool {
    order
        .item_flow_of(item_no)
        .any(|r| r.get_str("SubsequentDocumentCategory") == INVOICE)
}

/// Records outbound delivery `number` of order items `items` (delivered and goods issued).
/// With delivery-related billing the delivery waits for its invoice (`B`); otherwise it is
/// complete (`C`).
pub fn record_delivery(
    order: &mut Order,
    items: &[String],
    number: &str,
    cz: &Customizing,
    now: DateTime<Utc>,
) {
    let status = match cz.billing {
        BillingRelevance::Delivery => "B",
        BillingRelevance::Order => "C",
    };
    let header = header_record(order, number, DELIVERY, DIRECT, status, now);
    let records: Vec<Record> = items
        .iter()
        .zip(1u32..)
        .map(|(item, n)| {
            let link = ItemLink {
                item,
                document: number,
                document_item: (n * 10).to_string(),
                category: DELIVERY,
                level: DIRECT,
                status,
                accounting: "",
                preceding: (order.number().to_owned(), item.clone(), ORDER),
            };
            item_record(order, link, now)
        })
        .collect();
    order.flow.push(header);
    order.item_flow.extend(records);
}

/// Records invoice `number` of order items `items`. Delivery-related: each invoice item
/// follows the delivery item of its order item, which (with its delivery, once every item of
/// it is invoiced) becomes complete. Order-related: the invoice follows the order.
pub fn record_billing(
    order: &mut Order,
    items: &[String],
    number: &str,
    cz: &Customizing,
    now: DateTime<Utc>,
) {
    let delivery_related = cz.billing == BillingRelevance::Delivery;
    let level = if delivery_related { INDIRECT } else { DIRECT };
    let header = header_record(order, number, INVOICE, level, "C", now);
    let mut records = Vec::new();
    let mut billed_deliveries: Vec<(String, String)> = Vec::new();
    for (item, n) in items.iter().zip(1u32..) {
        let preceding = match delivery_of(order, item).filter(|_| delivery_related) {
            Some((delivery, delivery_item)) => {
                billed_deliveries.push((delivery.clone(), delivery_item.clone()));
                (delivery, delivery_item, DELIVERY)
            }
            None => (order.number().to_owned(), item.clone(), ORDER),
        };
        let link = ItemLink {
            item,
            document: number,
            document_item: (n * 10).to_string(),
            category: INVOICE,
            level,
            status: "C",
            accounting: "C",
            preceding,
        };
        records.push(item_record(order, link, now));
    }
    order.flow.push(header);
    order.item_flow.extend(records);
    // the delivery items just invoiced are complete, and so is a delivery with all of them
    for r in order.item_flow.iter_mut() {
        let key = (
            r.get_str("SubsequentDocument").to_owned(),
            r.get_str("SubsequentDocumentItem").to_owned(),
        );
        if r.get_str("SubsequentDocumentCategory") == DELIVERY && billed_deliveries.contains(&key) {
            r.set("SDProcessStatus", text("C"));
            changed(r, now);
        }
    }
    let open_deliveries: Vec<String> = order
        .item_flow
        .iter()
        .filter(|r| r.get_str("SubsequentDocumentCategory") == DELIVERY)
        .filter(|r| r.get_str("SDProcessStatus") != "C")
        .map(|r| r.get_str("SubsequentDocument").to_owned())
        .collect();
    for d in order.flow.iter_mut() {
        let document = d.get_str("SubsequentDocument").to_owned();
        if d.get_str("SubsequentDocumentCategory") == DELIVERY
            && d.get_str("OverallSDProcessStatus") != "C"
            && billed_deliveries.iter().any(|(n, _)| *n == document)
            && !open_deliveries.contains(&document)
        {
            d.set("OverallSDProcessStatus", text("C"));
            changed(d, now);
        }
    }
}
