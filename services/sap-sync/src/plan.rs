//! What SAP must be told so that its order matches the order service's: the difference between
//! an order as an event carries it (the whole order after the change) and the order as SAP
//! holds it, as OData calls. Pure: no I/O, so every rule is a unit test.
//!
//! Applying a plan and planning again yields nothing to do: that is what makes sap-sync exactly
//! once in effect. A repeated event, a redelivery after a crash or a rebalance, or an answer SAP
//! lost all end in a read of SAP's order and an empty plan ("SAP already has it"), never in a
//! second create or a change applied twice.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

/// One OData call.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `POST A_SalesOrder` (deep insert under the order's own number).
    Create {
        /// The deep insert.
        body: Value,
    },
    /// `PATCH A_SalesOrder('n')`.
    ChangeHeader {
        /// Changed properties.
        fields: Map<String, Value>,
    },
    /// `PATCH A_SalesOrderItem(SalesOrder='n',SalesOrderItem='i')`.
    ChangeItem {
        /// SAP's item number.
        item: String,
        /// Changed properties.
        fields: Map<String, Value>,
    },
    /// `POST A_SalesOrder('n')/to_Item`.
    AddItem {
        /// The item.
        body: Value,
    },
    /// `DELETE A_SalesOrderItem(...)`.
    DeleteItem {
        /// SAP's item number.
        item: String,
    },
}

impl Step {
    /// A short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Create { .. } => "create",
            Step::ChangeHeader { .. } => "change_header",
            Step::ChangeItem { .. } => "change_item",
            Step::AddItem { .. } => "add_item",
            Step::DeleteItem { .. } => "delete_item",
        }
    }
}

/// What to do for one order.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// SAP needs nothing (already has it, or the order is not SAP's to have).
    Nothing(&'static str),
    /// These calls, in this order.
    Steps(Vec<Step>),
}

/// The plan that brings SAP's order (`sap`: the `d` of a key read with `$expand=to_Item`, or
/// `None` when SAP does not have the number) to `desired` (an order snapshot as JSON).
pub fn plan(desired: &Value, sap: Option<&Value>) -> Plan {
    let status = desired["status"].as_str().unwrap_or_default();
    let Some(sap) = sap else {
        // Voided: the migration machinery compensated an order SAP never took; it is not
        // SAP's to have. Everything else goes to SAP, a cancelled order with its lines rejected.
        if status == "voided" {
            return Plan::Nothing("voided before it reached SAP");
        }
        return Plan::Steps(vec![Step::Create {
            body: create_body(desired),
        }]);
    };
    if status == "voided" {
        return Plan::Nothing("voided; SAP's order is left to reconciliation");
    }
    let mut steps = Vec::new();
    let mut header = Map::new();
    let ours = desired["customer_reference"].as_str().unwrap_or_default();
    if ours != sap["PurchaseOrderByCustomer"].as_str().unwrap_or_default() {
        header.insert("PurchaseOrderByCustomer".into(), json!(ours));
    }
    let our_date = desired["requested_delivery_date"].as_str();
    let sap_date = sap["RequestedDeliveryDate"]
        .as_str()
        .and_then(order_acl::parse_odata_date)
        .map(|d| d.format("%Y-%m-%d").to_string());
    if let Some(d) = our_date
        && sap_date.as_deref() != Some(d)
        && let Ok(date) = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
    {
        header.insert(
            "RequestedDeliveryDate".into(),
            json!(order_acl::format_odata_date(date)),
        );
    }
    if !header.is_empty() {
        steps.push(Step::ChangeHeader { fields: header });
    }
    let sap_items: Vec<&Value> = sap["to_Item"]["results"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let sap_item = |no: &str| {
        sap_items
            .iter()
            .find(|i| item_no(i["SalesOrderItem"].as_str().unwrap_or_default()) == no)
    };
    let desired_items: Vec<&Value> = desired["items"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut adds = Vec::new();
    for item in &desired_items {
        let no = order_acl::item_number_text(item);
        let reason = item["rejection_reason"].as_str().unwrap_or_default();
        match sap_item(&no) {
            None => adds.push(Step::AddItem {
                body: order_acl::item_to_deep_insert(item),
            }),
            Some(s) => {
                let mut fields = Map::new();
                let qty = item["quantity"].as_str().unwrap_or_default();
                if !same_decimal(qty, s["RequestedQuantity"].as_str().unwrap_or_default()) {
                    fields.insert("RequestedQuantity".into(), json!(qty));
                }
                if reason != s["SalesDocumentRjcnReason"].as_str().unwrap_or_default() {
                    fields.insert("SalesDocumentRjcnReason".into(), json!(reason));
                }
                if !fields.is_empty() {
                    steps.push(Step::ChangeItem { item: no, fields });
                }
            }
        }
    }
    steps.extend(adds);
    for s in &sap_items {
        let no = item_no(s["SalesOrderItem"].as_str().unwrap_or_default());
        if !desired_items
            .iter()
            .any(|i| order_acl::item_number_text(i) == no)
        {
            steps.push(Step::DeleteItem { item: no });
        }
    }
    if steps.is_empty() {
        Plan::Nothing("SAP already has it")
    } else {
        Plan::Steps(steps)
    }
}

/// SAP writes item numbers with or without leading zeros (`"000010"`, `"10"`).
fn item_no(s: &str) -> String {
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        s.to_owned()
    } else {
        t.to_owned()
    }
}

/// `"2"` and `"2.000"` are the same quantity.
fn same_decimal(a: &str, b: &str) -> bool {
    match (a.parse::<Decimal>(), b.parse::<Decimal>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The deep insert that creates `desired` in SAP, under [`sap_number`] (the translation names
/// our own number, which for a backfilled copy of an SAP order would make a second one).
pub fn create_body(desired: &Value) -> Value {
    let mut body = order_acl::order_to_deep_insert(desired);
    if let (Some(number), Some(map)) = (sap_number(desired), body.as_object_mut()) {
        map.insert("SalesOrder".into(), Value::String(number.to_owned()));
    }
    body
}

/// The number SAP knows the order by: SAP's own once linked (or, for a backfilled copy not
/// linked yet, the one it was copied from), else ours (one number in both systems from
/// dual-write on).
pub fn sap_number(desired: &Value) -> Option<&str> {
    fn named(v: &Value) -> Option<&str> {
        v.as_str().filter(|n| !n.is_empty())
    }
    // A copy `orderctl backfill` made of an SAP order is created first and linked to SAP's
    // number after: its create event carries SAP's number only in `specifications.SalesOrder`
    // (as reconciliation pairs it). Taking our own number there would create the order in SAP
    // a second time.
    named(&desired["sap_order_number"])
        .or_else(|| named(&desired["specifications"]["SalesOrder"]))
        .or_else(|| named(&desired["order_number"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfilled_copy_not_yet_linked_is_known_to_sap_by_the_number_it_was_copied_from() {
        let copy = json!({"order_number": "8000001000", "sap_order_number": null,
                          "specifications": {"SalesOrder": "1000005"}});
        assert_eq!(sap_number(&copy), Some("1000005"));
        let linked = json!({"order_number": "8000001000", "sap_order_number": "1000005",
                            "specifications": {"SalesOrder": "1000005"}});
        assert_eq!(sap_number(&linked), Some("1000005"));
        let ours = json!({"order_number": "8000000001", "specifications": {}});
        assert_eq!(sap_number(&ours), Some("8000000001"));
        assert_eq!(create_body(&copy)["SalesOrder"], "1000005");
        assert_eq!(create_body(&ours)["SalesOrder"], "8000000001");
    }

    fn order(status: &str, items: Value) -> Value {
        json!({"order_number": "8000000001", "status": status, "customer_id": "17100001",
               "currency": "EUR", "customer_reference": "PO-1",
               "requested_delivery_date": null, "specifications": {}, "items": items})
    }

    fn sap(items: Value) -> Value {
        json!({"SalesOrder": "8000000001", "PurchaseOrderByCustomer": "PO-1",
               "RequestedDeliveryDate": null, "to_Item": {"results": items}})
    }

    fn line(no: i64, qty: &str, reason: Option<&str>) -> Value {
        json!({"item_number": no, "sku": "TG11", "quantity": qty, "unit": "PC",
               "rejection_reason": reason, "specifications": {}})
    }

    fn sap_line(no: &str, qty: &str, reason: &str) -> Value {
        json!({"SalesOrderItem": no, "RequestedQuantity": qty, "SalesDocumentRjcnReason": reason})
    }

    #[test]
    fn an_order_sap_lacks_is_created_under_its_number_unless_voided() {
        let o = order("created", json!([line(10, "2", None)]));
        match plan(&o, None) {
            Plan::Steps(s) => match &s[..] {
                [Step::Create { body }] => assert_eq!(body["SalesOrder"], "8000000001"),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&order("voided", json!([])), None),
            Plan::Nothing(_)
        ));
    }

    #[test]
    fn the_same_order_in_sap_needs_nothing() {
        let o = order(
            "created",
            json!([line(10, "2", None), line(20, "1", Some("05"))]),
        );
        let s = sap(json!([
            sap_line("000010", "2.000", ""),
            sap_line("20", "1", "05")
        ]));
        assert_eq!(plan(&o, Some(&s)), Plan::Nothing("SAP already has it"));
    }

    #[test]
    fn quantity_rejection_added_and_removed_lines_become_calls() {
        let o = order(
            "created",
            json!([
                line(10, "3", None),
                line(20, "1", Some("05")),
                line(40, "1", None)
            ]),
        );
        let s = sap(json!([
            sap_line("10", "2", ""),
            sap_line("20", "1", ""),
            sap_line("30", "1", "")
        ]));
        let Plan::Steps(steps) = plan(&o, Some(&s)) else {
            panic!()
        };
        let names: Vec<_> = steps.iter().map(Step::name).collect();
        assert_eq!(
            names,
            ["change_item", "change_item", "add_item", "delete_item"]
        );
        assert_eq!(
            steps[0],
            Step::ChangeItem {
                item: "10".into(),
                fields: json!({"RequestedQuantity": "3"})
                    .as_object()
                    .unwrap()
                    .clone()
            }
        );
        assert_eq!(
            steps[1],
            Step::ChangeItem {
                item: "20".into(),
                fields: json!({"SalesDocumentRjcnReason": "05"})
                    .as_object()
                    .unwrap()
                    .clone()
            }
        );
        assert!(matches!(&steps[3], Step::DeleteItem { item } if item == "30"));
    }

    #[test]
    fn header_changes_are_one_patch() {
        let mut o = order("created", json!([line(10, "2", None)]));
        o["customer_reference"] = json!("PO-2");
        o["requested_delivery_date"] = json!("2026-12-24");
        let s = sap(json!([sap_line("10", "2", "")]));
        let Plan::Steps(steps) = plan(&o, Some(&s)) else {
            panic!()
        };
        match &steps[..] {
            [Step::ChangeHeader { fields }] => {
                assert_eq!(fields["PurchaseOrderByCustomer"], "PO-2");
                assert!(
                    fields["RequestedDeliveryDate"]
                        .as_str()
                        .unwrap()
                        .starts_with("/Date(")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cancelled_order_is_its_lines_rejected() {
        let o = order("cancelled", json!([line(10, "2", Some("10"))]));
        let s = sap(json!([sap_line("10", "2", "")]));
        let Plan::Steps(steps) = plan(&o, Some(&s)) else {
            panic!()
        };
        assert!(
            matches!(&steps[..], [Step::ChangeItem { fields, .. }] if fields["SalesDocumentRjcnReason"] == "10")
        );
    }
}
