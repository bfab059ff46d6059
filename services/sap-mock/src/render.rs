//! Orders, items and their document flow as OData V2 JSON, shaped like S/4HANA's answers.
//!
//! An entity is `__metadata` (`id`, `uri`, `type`, and `etag` for headers), then its
//! properties in the order of the service definition (only the selected ones under
//! `$select`), then its navigation properties: `to_Item` and `to_SubsequentProcFlowDoc` (on
//! items `to_SubsequentProcFlowDocItem`, also as `$expand=to_Item/to_SubsequentProcFlowDocItem`)
//! inline as `{"results": [...]}` when expanded, other to-many ones as empty results, every
//! one not expanded as `__deferred`. Under `$select`, a navigation appears only if selected;
//! inside an expanded navigation, `nav/Prop` selections apply.

use sap_odata::envelope::{
    Node, deferred, entity_metadata, entity_uri, etag_from_timestamp, inline_results,
};
use sap_odata::query::QueryOptions;
use sap_odata::schema::{EntityType, SALES_ORDER_ITM_SUBSQNT_PROC_FLOW};
use sap_odata::{EdmValue, SALES_ORDER, SALES_ORDER_ITEM};

use crate::store::{Order, Record};

/// The ETag of an order (from `LastChangeDateTime` at full precision).
pub fn etag(order: &Order) -> String {
    etag_from_timestamp(order.changed_at)
}

/// The canonical URI of an order.
pub fn order_uri(root: &str, order: &Order) -> String {
    entity_uri(root, &SALES_ORDER, &[order.number()])
}

fn item_uri(root: &str, item: &Record) -> String {
    entity_uri(
        root,
        &SALES_ORDER_ITEM,
        &[item.get_str("SalesOrder"), item.get_str("SalesOrderItem")],
    )
}

fn properties(node: &mut Node, record: &Record, selected: Option<&[&str]>) {
    for (name, value) in record.iter() {
        if selected.is_none_or(|s| s.contains(&name)) {
            node.push(name, value.to_json());
        }
    }
}

/// An order header with the navigation properties `query` asks for.
pub fn order_node(root: &str, order: &Order, query: &QueryOptions) -> Node {
    let uri = order_uri(root, order);
    let tag = etag(order);
    let mut node = Node::object().with(
        "__metadata",
        entity_metadata(&uri, &SALES_ORDER, Some(&tag)),
    );
    properties(
        &mut node,
        &order.header,
        query.selected_properties().as_deref(),
    );
    for nav in SALES_ORDER.navigations {
        if !query.selects_navigation(nav.name) {
            continue;
        }
        let value = if !query.expands(nav.name) {
            deferred(&format!("{uri}/{}", nav.name))
        } else if nav.name == "to_Item" {
            let selected = query.selected_in("to_Item");
            let flow_expanded = query.expand.iter().any(|p| {
                p.len() == 2 && p[0] == "to_Item" && p[1] == "to_SubsequentProcFlowDocItem"
            });
            inline_results(
                order
                    .items
                    .iter()
                    .map(|i| {
                        let mut n = item_node_with(root, i, selected.as_deref(), None);
                        if flow_expanded {
                            n.push(
                                "to_SubsequentProcFlowDocItem",
                                item_flow_results(root, order, i, None),
                            );
                        }
                        n
                    })
                    .collect(),
            )
        } else if nav.name == "to_SubsequentProcFlowDoc" {
            let selected = query.selected_in(nav.name);
            inline_results(
                order
                    .flow
                    .iter()
                    .map(|r| flow_node(root, nav_target(nav.target), r, selected.as_deref()))
                    .collect(),
            )
        } else if nav.to_many {
            inline_results(Vec::new())
        } else {
            Node::Value(serde_json::Value::Null)
        };
        node.push(nav.name, value);
    }
    node
}

/// An order as the create answer: every property, `to_Item` inline, the rest deferred.
pub fn created_order_node(root: &str, order: &Order) -> Node {
    let mut q = QueryOptions::default();
    q.expand.push(vec!["to_Item".to_owned()]);
    order_node(root, order, &q)
}

/// An item addressed on its own (`A_SalesOrderItem(...)` or a `to_Item` list).
pub fn item_node(root: &str, item: &Record, parent: Option<&Order>, query: &QueryOptions) -> Node {
    item_node_with(
        root,
        item,
        query.selected_properties().as_deref(),
        Some((query, parent)),
    )
}

fn item_node_with(
    root: &str,
    item: &Record,
    selected: Option<&[&str]>,
    navs: Option<(&QueryOptions, Option<&Order>)>,
) -> Node {
    let uri = item_uri(root, item);
    let mut node =
        Node::object().with("__metadata", entity_metadata(&uri, &SALES_ORDER_ITEM, None));
    properties(&mut node, item, selected);
    match navs {
        // inside an expanded to_Item: navigations deferred unless a selection list is given
        // (or expanded further, which the caller adds)
        None => {
            if selected.is_none() {
                for nav in SALES_ORDER_ITEM.navigations {
                    node.push(nav.name, deferred(&format!("{uri}/{}", nav.name)));
                }
            }
        }
        Some((query, parent)) => {
            for nav in SALES_ORDER_ITEM.navigations {
                if !query.selects_navigation(nav.name) {
                    continue;
                }
                let value = match (query.expands(nav.name), nav.name, parent) {
                    (false, _, _) => deferred(&format!("{uri}/{}", nav.name)),
                    (true, "to_SalesOrder", Some(order)) => {
                        order_node(root, order, &QueryOptions::default())
                    }
                    (true, "to_SubsequentProcFlowDocItem", Some(order)) => {
                        let selected = query.selected_in(nav.name);
                        item_flow_results(root, order, item, selected.as_deref())
                    }
                    (true, _, _) if nav.to_many => inline_results(Vec::new()),
                    (true, _, _) => Node::Value(serde_json::Value::Null),
                };
                node.push(nav.name, value);
            }
        }
    }
    node
}

/// The entity type a navigation leads to (the document flow types are known to the schema).
fn nav_target(name: &str) -> &'static EntityType {
    sap_odata::schema::entity_type(name).unwrap_or(&SALES_ORDER_ITM_SUBSQNT_PROC_FLOW)
}

/// `{"results": [...]}` of the item's document flow.
fn item_flow_results(root: &str, order: &Order, item: &Record, selected: Option<&[&str]>) -> Node {
    inline_results(
        order
            .item_flow_of(item.get_str("SalesOrderItem"))
            .map(|r| flow_node(root, &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW, r, selected))
            .collect(),
    )
}

/// The text of a key value (strings and GUIDs).
fn key_text(value: &EdmValue) -> &str {
    match value {
        EdmValue::String(s) | EdmValue::Guid(s) => s,
        _ => "",
    }
}

/// The canonical URI of a document flow record, e.g.
/// `A_SalesOrderSubsqntProcFlow(SalesOrder='1',DocRelationshipUUID=guid'...')`.
pub fn flow_uri(root: &str, entity: &EntityType, record: &Record) -> String {
    let keys: Vec<&str> = entity
        .keys
        .iter()
        .map(|k| key_text(record.get(k)))
        .collect();
    entity_uri(root, entity, &keys)
}

/// One document flow record (`A_SalesOrderSubsqntProcFlow` / `A_SalesOrderItmSubsqntProcFlow`):
/// no ETag (S/4 declares none), navigations back to the order (and item) deferred unless a
/// selection list leaves them out.
pub fn flow_node(
    root: &str,
    entity: &EntityType,
    record: &Record,
    selected: Option<&[&str]>,
) -> Node {
    let uri = flow_uri(root, entity, record);
    let mut node = Node::object().with("__metadata", entity_metadata(&uri, entity, None));
    properties(&mut node, record, selected);
    for nav in entity.navigations {
        if selected.is_none_or(|s| s.contains(&nav.name)) {
            node.push(nav.name, deferred(&format!("{uri}/{}", nav.name)));
        }
    }
    node
}
