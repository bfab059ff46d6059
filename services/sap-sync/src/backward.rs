//! Backward: what SAP does to an order once it has it (delivery, goods issue, billing, a line
//! rejected by a clerk) reaches the order service. SAP is polled for orders changed since a
//! watermark (`LastChangeDateTime`, kept in the state topic); one instance polls, the one that
//! holds partition 0 of the events topic, so a rebalance moves the poll with it.
//!
//! - Statuses are facts: `delivered` once SAP's overall delivery status is `C`, `billed` once
//!   an invoice (category `M`) is in the order's document flow (`to_SubsequentProcFlowDoc`:
//!   delivery-related billing, S/4's standard) or its order-related billing status is `C`
//!   (delivered first). The order service takes a
//!   status it already has as a no-op.
//! - A rejection made in SAP is taken only when SAP changed the order after the order service
//!   last did (a later change on our side is on its way to SAP and wins). Lifting a rejection
//!   in SAP is not brought back.
//! - The poll reads `ge` the watermark, so orders changed in the same instant as the last one
//!   seen are looked at again (everything it does is idempotent) and none is skipped.
//! - With traces on, each poll is an INTERNAL span `backward poll` (a trace of its own: nothing
//!   a client did started it), under which its SAP read and its calls to the order service
//!   (the read of our order, the statuses and rejections written back) are CLIENT spans.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::book::Book;
use crate::orders::{Orders, OrdersError};
use crate::sap::{CallContext, Sap, SapError};

/// The watermark's name in the state topic.
pub const WATERMARK: &str = "sap_last_change";

/// Orders read per poll.
const PAGE: usize = 200;

/// The only properties the poll reads ([`statuses`], [`has_news`], [`last_change`] and the
/// rejections): SAP renders and sends a page of 200 orders with their lines and document flow
/// every poll, and without `$select` each comes whole (about 80 header and 60 item properties).
/// OData V2 selects inside an expanded navigation as `nav/Property`, as SAP's own SDK sends it
/// for a partial read with items (`sap_odata::query`'s tests hold the SDK's request).
const SELECT: &str = "SalesOrder,LastChangeDateTime,OverallDeliveryStatus,\
OverallTotalDeliveryStatus,OverallOrdReltdBillgStatus,to_Item/SalesOrderItem,\
to_Item/SalesDocumentRjcnReason,to_SubsequentProcFlowDoc/SubsequentDocumentCategory";

/// SAP's view of an order's fulfilment, as order-service statuses, in the order they happen.
pub fn statuses(sap: &Value) -> Vec<&'static str> {
    let c = |k: &str| sap[k].as_str() == Some("C");
    let mut v = Vec::new();
    if c("OverallDeliveryStatus") || c("OverallTotalDeliveryStatus") {
        v.push("delivered");
    }
    // Delivery-related billing (S/4's standard item category) leaves the order's billing
    // statuses empty; the invoice (category M) shows in the document flow.
    let invoiced = sap["to_SubsequentProcFlowDoc"]["results"]
        .as_array()
        .is_some_and(|docs| docs.iter().any(|d| d["SubsequentDocumentCategory"] == "M"));
    if c("OverallOrdReltdBillgStatus") || invoiced {
        if v.is_empty() {
            v.push("delivered");
        }
        v.push("billed");
    }
    v
}

/// True when SAP's order shows something the backward direction brings back: a fulfilment
/// status, or a rejected line (lifting a rejection in SAP is not brought back, so an order
/// without one has nothing).
pub fn has_news(sap: &Value) -> bool {
    !statuses(sap).is_empty()
        || sap["to_Item"]["results"].as_array().is_some_and(|items| {
            items.iter().any(|i| {
                i["SalesDocumentRjcnReason"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty())
            })
        })
}

/// `LastChangeDateTime` (`/Date(ms+0000)/` in JSON) as a time.
pub fn last_change(sap: &Value) -> Option<DateTime<Utc>> {
    let s = sap["LastChangeDateTime"].as_str()?;
    let ms: i64 = s
        .strip_prefix("/Date(")?
        .split(['+', '-', ')'])
        .next()?
        .parse()
        .ok()?;
    DateTime::from_timestamp_millis(ms)
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Polled {
    /// SAP orders looked at.
    pub seen: usize,
    /// Statuses reported to the order service.
    pub statuses: usize,
    /// Rejections taken from SAP.
    pub rejections: usize,
}

/// One poll, under its span (traces on).
pub async fn poll_once(sap: &Sap, orders: &Orders, book: &Book) -> Result<Polled, anyhow::Error> {
    let span = platform::otel::start(
        "backward poll",
        platform::otel::SpanKind::Internal,
        platform::otel::Parent::Root,
        Vec::new(),
    );
    let traceparent = span.as_ref().map(platform::otel::ActiveSpan::traceparent);
    let polled = poll(sap, orders, book, traceparent).await;
    if let Some(span) = &span {
        match &polled {
            Ok(p) => {
                span.set("sap_sync.backward.seen", p.seen as i64);
                span.set("sap_sync.backward.statuses", p.statuses as i64);
                span.set("sap_sync.backward.rejections", p.rejections as i64);
            }
            Err(e) => span.fail("backward_poll_failed", e.to_string()),
        }
    }
    polled
}

/// One poll, its calls under the span `traceparent` names.
async fn poll(
    sap: &Sap,
    orders: &Orders,
    book: &Book,
    traceparent: Option<String>,
) -> Result<Polled, anyhow::Error> {
    let since = book
        .watermark(WATERMARK)
        .and_then(|w| DateTime::parse_from_rfc3339(&w).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc::now() - chrono::Duration::days(1));
    let ctx = CallContext {
        correlation_id: None,
        traceparent,
    };
    let path = format!(
        "/A_SalesOrder?$filter=LastChangeDateTime%20ge%20datetimeoffset'{}'&$orderby=LastChangeDateTime&$top={PAGE}&$expand=to_Item,to_SubsequentProcFlowDoc&$select={SELECT}",
        since.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    let changed = sap.list(&path, &ctx).await.map_err(anyhow_sap)?;
    let mut polled = Polled {
        seen: changed.len(),
        ..Polled::default()
    };
    let mut newest = since;
    for o in &changed {
        let Some(number) = o["SalesOrder"].as_str() else {
            continue;
        };
        if let Some(t) = last_change(o) {
            newest = newest.max(t);
        }
        if !has_news(o) {
            // Only taken, priced or changed in SAP (most of them sap-sync's own writes):
            // nothing to bring back, so no read of our order.
            continue;
        }
        let corr = CallContext {
            correlation_id: Some(format!("sap-sync-backward-{number}")),
            traceparent: ctx.traceparent.clone(),
        };
        let Some(ours) = orders
            .by_number(number, &corr)
            .await
            .map_err(anyhow_orders)?
        else {
            // An order only SAP has (taken before the migration): backfill's work, not ours.
            continue;
        };
        let id = ours["id"].as_str().unwrap_or_default().to_owned();
        for status in statuses(o) {
            let have = ours["status"].as_str().unwrap_or_default();
            let done = match status {
                "delivered" => matches!(have, "delivered" | "billed"),
                _ => have == "billed",
            };
            if !done && !matches!(have, "cancelled" | "voided") {
                match orders.report_status(&id, status, &corr).await {
                    Ok(()) => polled.statuses += 1,
                    Err(OrdersError::Refused(code, detail)) => {
                        tracing::warn!(%number, status, code, %detail, "the order service refused SAP's status");
                    }
                    Err(e) => return Err(anyhow_orders(e)),
                }
            }
        }
        polled.rejections += take_rejections(orders, o, &ours, &id, &corr).await?;
    }
    metrics::counter!("sap_sync_backward_orders_total").increment(changed.len() as u64);
    if newest > since {
        book.set_watermark(WATERMARK, &newest.to_rfc3339()).await?;
    }
    Ok(polled)
}

async fn take_rejections(
    orders: &Orders,
    sap: &Value,
    ours: &Value,
    id: &str,
    corr: &CallContext,
) -> anyhow::Result<usize> {
    let sap_changed = last_change(sap);
    let ours_changed = ours["updated_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    if let (Some(s), Some(o)) = (sap_changed, ours_changed)
        && s <= o
    {
        return Ok(0);
    }
    let mut taken = 0;
    let mut version = ours["version"].as_i64().unwrap_or(0);
    let empty = Vec::new();
    for item in sap["to_Item"]["results"].as_array().unwrap_or(&empty) {
        let reason = item["SalesDocumentRjcnReason"].as_str().unwrap_or_default();
        let no = item["SalesOrderItem"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('0');
        if reason.is_empty() {
            continue;
        }
        let our_item = ours["items"]
            .as_array()
            .and_then(|a| a.iter().find(|i| order_acl::item_number_text(i) == no));
        let Some(our_item) = our_item else { continue };
        if our_item["rejection_reason"].as_str().unwrap_or_default() == reason {
            continue;
        }
        match orders.reject_item(id, version, no, reason, corr).await {
            Ok(()) => {
                taken += 1;
                version += 1;
            }
            Err(OrdersError::Refused(code, detail)) => {
                tracing::warn!(order_id = id, item = no, code, %detail, "the order service refused SAP's rejection");
            }
            Err(e) => return Err(anyhow_orders(e)),
        }
    }
    Ok(taken)
}

fn anyhow_sap(e: SapError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn anyhow_orders(e: OrdersError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sap_statuses_become_order_statuses_in_order() {
        assert!(statuses(&json!({"OverallDeliveryStatus": "A"})).is_empty());
        assert_eq!(
            statuses(&json!({"OverallDeliveryStatus": "C"})),
            ["delivered"]
        );
        assert_eq!(
            statuses(&json!({"OverallDeliveryStatus": "C", "OverallOrdReltdBillgStatus": "C"})),
            ["delivered", "billed"]
        );
        let flow = json!({"OverallDeliveryStatus": "C", "OverallOrdReltdBillgStatus": "",
            "to_SubsequentProcFlowDoc": {"results": [
                {"SubsequentDocumentCategory": "J"}, {"SubsequentDocumentCategory": "M"}]}});
        assert_eq!(statuses(&flow), ["delivered", "billed"]);
    }

    #[test]
    fn only_fulfilment_or_a_rejected_line_is_news() {
        let fresh = json!({"OverallDeliveryStatus": "A", "to_Item": {"results": [
            {"SalesOrderItem": "10", "SalesDocumentRjcnReason": ""}]}});
        assert!(!has_news(&fresh));
        let mut rejected = fresh.clone();
        rejected["to_Item"]["results"][0]["SalesDocumentRjcnReason"] = json!("02");
        assert!(has_news(&rejected));
        assert!(has_news(&json!({"OverallDeliveryStatus": "C"})));
    }

    #[test]
    fn last_change_reads_sap_s_json_dates() {
        let t = last_change(&json!({"LastChangeDateTime": "/Date(1764583200000+0000)/"})).unwrap();
        assert_eq!(t.to_rfc3339(), "2025-12-01T10:00:00+00:00");
        assert!(last_change(&json!({})).is_none());
    }
}
