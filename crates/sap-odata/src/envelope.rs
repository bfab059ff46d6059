//! Response building blocks of the OData V2 JSON format.
//!
//! S/4HANA writes `__metadata` first and the properties in the order of the service
//! definition. `serde_json::Value` sorts object keys, so responses are built as [`Node`]s, an
//! ordered JSON tree that serializes keys in insertion order.
//!
//! - single entity: `{"d": {...}}` ([`single`])
//! - collection: `{"d": {"__count": "N", "results": [...], "__next": "..."}}` ([`collection`])
//! - entity: `{"__metadata": {"id","uri","type","etag"}, "Prop": .., "to_Item": {"results": [..]}
//!   | {"__deferred": {"uri": ..}}}` ([`entity_metadata`], [`deferred`])

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use crate::payload::PropertyMap;
use crate::schema::EntityType;
use crate::uri::format_key;
use crate::value::EdmValue;

/// A JSON tree whose objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A plain JSON value (strings, numbers, booleans, null, or an unordered sub-tree).
    Value(Value),
    /// An object, keys in order.
    Object(Vec<(String, Node)>),
    /// An array.
    Array(Vec<Node>),
}

impl Node {
    /// An empty object.
    pub fn object() -> Self {
        Node::Object(Vec::new())
    }

    /// Appends `key: value` to an object (no-op on other nodes).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Node>) {
        if let Node::Object(entries) = self {
            entries.push((key.into(), value.into()));
        }
    }

    /// Builder form of [`Node::push`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Node>) -> Self {
        self.push(key, value);
        self
    }

    /// The value under `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Converts to an (unordered) `serde_json::Value`.
    pub fn into_value(self) -> Value {
        match self {
            Node::Value(v) => v,
            Node::Array(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Object(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
        }
    }

    /// Compact JSON text, keys in order.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<Value> for Node {
    fn from(v: Value) -> Self {
        Node::Value(v)
    }
}

impl From<&str> for Node {
    fn from(v: &str) -> Self {
        Node::Value(Value::String(v.to_owned()))
    }
}

impl From<String> for Node {
    fn from(v: String) -> Self {
        Node::Value(Value::String(v))
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Value(v) => v.serialize(serializer),
            Node::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// The canonical URI of an entity: `<service_root>/A_SalesOrder('1')`.
pub fn entity_uri(service_root: &str, entity: &EntityType, key: &[&str]) -> String {
    format!("{service_root}/{}{}", entity.name, format_key(entity, key))
}

/// `__metadata` of an entity: `id` and `uri` (both the canonical URI), `type`, and `etag`
/// when the entity has one.
pub fn entity_metadata(uri: &str, entity: &EntityType, etag: Option<&str>) -> Node {
    let mut m = Node::object()
        .with("id", uri)
        .with("uri", uri)
        .with("type", entity.qualified_name());
    if let Some(etag) = etag {
        m.push("etag", etag);
    }
    m
}

/// `{"__deferred": {"uri": "<uri>"}}`, a navigation that was not expanded.
pub fn deferred(uri: &str) -> Node {
    Node::object().with("__deferred", Node::object().with("uri", uri))
}

/// `{"results": [...]}`, an expanded to-many navigation.
pub fn inline_results(items: Vec<Node>) -> Node {
    Node::object().with("results", Node::Array(items))
}

/// `{"d": entity}`.
pub fn single(entity: Node) -> Node {
    Node::object().with("d", entity)
}

/// `{"d": {"__count": "N", "results": [...], "__next": "..."}}`; `__count` only with
/// `$inlinecount=allpages`, `__next` only when the server cut the page.
pub fn collection(results: Vec<Node>, count: Option<u64>, next: Option<String>) -> Node {
    let mut d = Node::object();
    if let Some(c) = count {
        d.push("__count", c.to_string());
    }
    d.push("results", Node::Array(results));
    if let Some(n) = next {
        d.push("__next", n);
    }
    single(d)
}

/// An entity as S/4HANA writes it in full, for building legacy-shaped answers from data that
/// did not come from SAP: `__metadata` (with `etag` when given), then **every** property of
/// `entity` in the order of the service definition, taken from `values` or, when unset, S/4's
/// empty value (`""`, `"0"`, `false`, `null`), then every navigation property: the node given
/// in `inline` (e.g. `("to_Item", inline_results(items))`) or `__deferred`. The key values for
/// the URIs are read from `values`.
pub fn full_entity(
    service_root: &str,
    entity: &'static EntityType,
    values: &PropertyMap,
    etag: Option<&str>,
    inline: Vec<(&str, Node)>,
) -> Node {
    let key: Vec<&str> = entity
        .keys
        .iter()
        .map(|k| values.get_str(k).unwrap_or_default())
        .collect();
    let uri = entity_uri(service_root, entity, &key);
    let mut node = Node::object().with("__metadata", entity_metadata(&uri, entity, etag));
    for p in entity.properties {
        let value = values
            .get(p.name)
            .cloned()
            .unwrap_or_else(|| EdmValue::unset(p.edm));
        node.push(p.name, value.to_json());
    }
    let mut inline = inline;
    for nav in entity.navigations {
        let given = inline.iter().position(|(n, _)| *n == nav.name);
        let value = match given {
            Some(i) => inline.swap_remove(i).1,
            None => deferred(&format!("{uri}/{}", nav.name)),
        };
        node.push(nav.name, value);
    }
    node
}

/// The weak ETag S/4HANA derives from `LastChangeDateTime`:
/// `W/"datetimeoffset'2026-11-24T14%3A20%3A57.3810000Z'"` (seven fractional digits, colons
/// percent-encoded).
pub fn etag_from_timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    let text = format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.timestamp_subsec_nanos() / 100
    );
    format!("W/\"datetimeoffset'{}'\"", text.replace(':', "%3A"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SALES_ORDER, SALES_ORDER_ITEM};

    #[test]
    fn objects_keep_insertion_order() {
        let n = Node::object()
            .with("__metadata", Node::object().with("type", "T"))
            .with("b", "1")
            .with("a", Value::Bool(true));
        assert_eq!(
            n.to_json_string(),
            r#"{"__metadata":{"type":"T"},"b":"1","a":true}"#
        );
    }

    #[test]
    fn collections_carry_count_results_and_next() {
        let c = collection(vec![Node::object()], Some(3), Some("next-url".into()));
        assert_eq!(
            c.to_json_string(),
            r#"{"d":{"__count":"3","results":[{}],"__next":"next-url"}}"#
        );
        assert_eq!(
            collection(vec![], None, None).to_json_string(),
            r#"{"d":{"results":[]}}"#
        );
    }

    #[test]
    fn entity_uris_and_metadata_follow_s4() {
        let root = "http://h/sap/opu/odata/sap/API_SALES_ORDER_SRV";
        let uri = entity_uri(root, &SALES_ORDER_ITEM, &["1", "10"]);
        assert_eq!(
            uri,
            "http://h/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10')"
        );
        let m = entity_metadata(&uri, &SALES_ORDER, Some("W/\"x\""));
        assert_eq!(
            m.get("type"),
            Some(&Node::from("API_SALES_ORDER_SRV.A_SalesOrder"))
        );
        assert!(m.get("etag").is_some());
    }

    #[test]
    fn a_full_entity_has_every_property_with_s4_empty_values_and_inline_items() {
        let create = crate::payload::parse_sales_order_create(
            br#"{"SoldToParty":"17100001","to_Item":[{"Material":"TG11","RequestedQuantity":"2"}]}"#,
        )
        .unwrap();
        let mut header = create.header.clone();
        header.set(
            SALES_ORDER.property("SalesOrder").unwrap(),
            EdmValue::String("4711".into()),
        );
        let mut item = create.items[0].clone();
        item.set(
            SALES_ORDER_ITEM.property("SalesOrder").unwrap(),
            EdmValue::String("4711".into()),
        );
        item.set(
            SALES_ORDER_ITEM.property("SalesOrderItem").unwrap(),
            EdmValue::String("10".into()),
        );
        let root = "http://h/sap/opu/odata/sap/API_SALES_ORDER_SRV";
        let items = vec![full_entity(
            root,
            &SALES_ORDER_ITEM,
            &item,
            None,
            Vec::new(),
        )];
        let n = full_entity(
            root,
            &SALES_ORDER,
            &header,
            Some("W/\"x\""),
            vec![("to_Item", inline_results(items))],
        )
        .into_value();
        let d = n.as_object().unwrap();
        assert_eq!(d.len(), 1 + 92 + 9);
        assert_eq!(n["SoldToParty"], "17100001");
        assert_eq!(n["SalesGroup"], "");
        assert_eq!(n["TotalNetAmount"], "0");
        assert_eq!(n["LastChangeDate"], Value::Null);
        assert_eq!(n["CompleteDeliveryIsDefined"], false);
        assert!(
            n["__metadata"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("A_SalesOrder('4711')")
        );
        assert_eq!(n["to_Item"]["results"][0]["RequestedQuantity"], "2");
        assert!(
            n["to_Item"]["results"][0]["__metadata"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("A_SalesOrderItem(SalesOrder='4711',SalesOrderItem='10')")
        );
        assert!(n["to_Partner"]["__deferred"]["uri"].is_string());
    }

    #[test]
    fn etags_use_seven_fraction_digits_and_encoded_colons() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T14:20:57.381Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            etag_from_timestamp(at),
            "W/\"datetimeoffset'2026-11-24T14%3A20%3A57.3810000Z'\""
        );
    }
}
