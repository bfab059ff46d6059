//! Orders and items as OData V2 JSON, shaped like S/4HANA's answers.
//!
//! An entity is `__metadata` (`id`, `uri`, `type`, and `etag` for headers), then its
//! properties in the order of the service definition (only the selected ones under
//! `$select`), then its navigation properties: `to_Item` inline as `{"results": [...]}` when
//! expanded, every other one as `__deferred`. Under `$select`, a navigation appears only if
//! selected; inside expanded items, `to_Item/Prop` selections apply.

use sap_odata::envelope::{
    Node, deferred, entity_metadata, entity_uri, etag_from_timestamp, inline_results,
};
use sap_odata::query::QueryOptions;
use sap_odata::{SALES_ORDER, SALES_ORDER_ITEM};

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
            inline_results(
                order
                    .items
                    .iter()
                    .map(|i| item_node_with(root, i, selected.as_deref(), None))
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
                    (true, _, _) if nav.to_many => inline_results(Vec::new()),
                    (true, _, _) => Node::Value(serde_json::Value::Null),
                };
                node.push(nav.name, value);
            }
        }
    }
    node
}
