//! Request bodies: the deep-insert create of a sales order and the header update.
//!
//! SAP's client sends compact JSON with no `d` envelope: only the properties that were set,
//! decimals as strings, dates as `/Date(ms)/` or `/Date(ms+0000)/`, and the items as a bare
//! array under `to_Item` (`{"results": [...]}` is accepted too), without keys. Every property is
//! validated against the [`schema`](crate::schema) on the way in, so a parsed payload only holds
//! values that fit their properties.

use serde_json::{Map, Value};

use crate::envelope::Node;
use crate::schema::{EntityType, Property, SALES_ORDER, SALES_ORDER_ITEM};
use crate::value::{EdmValue, ValueError};

/// Most items accepted in one deep insert (item numbers have six digits, stepping by 10).
pub const MAX_ITEMS: usize = 9_999;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all, or truncated.
    #[error("Malformed JSON in request body: {0}")]
    MalformedJson(String),
    /// JSON, but not an object where an entity was expected.
    #[error("The request body must be a JSON object describing {0}")]
    NotAnObject(&'static str),
    /// A property the entity type does not have.
    #[error("Property '{name}' is invalid for entity type '{entity}'")]
    UnknownProperty {
        /// Entity type.
        entity: &'static str,
        /// The name sent.
        name: String,
    },
    /// A value that does not fit its property.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// A navigation property this API does not accept inline here.
    #[error("Deep insert of navigation property '{0}' is not supported")]
    NavigationNotSupported(String),
    /// `to_Item` that is neither an array nor `{"results": [...]}`.
    #[error("Navigation property 'to_Item' must be an array of items")]
    BadItems,
    /// More items than [`MAX_ITEMS`].
    #[error("A sales order can have at most {MAX_ITEMS} items")]
    TooManyItems,
}

impl PayloadError {
    /// SAP Gateway's message code for this refusal (one table for the emulator and the
    /// proxy's own OData face): malformed body `CX_SXML_PARSE_ERROR`, unknown property
    /// `/IWBEP/CM_MGW_RT/021`, value too long `/IWBEP/CM_MGW_RT/120`, other bad values
    /// `/IWBEP/CM_MGW_RT/022`, too many items `V1/399`.
    pub fn sap_code(&self) -> &'static str {
        match self {
            PayloadError::MalformedJson(_)
            | PayloadError::NotAnObject(_)
            | PayloadError::BadItems => "CX_SXML_PARSE_ERROR",
            PayloadError::UnknownProperty { .. } | PayloadError::NavigationNotSupported(_) => {
                "/IWBEP/CM_MGW_RT/021"
            }
            PayloadError::Value(ValueError::TooLong { .. }) => "/IWBEP/CM_MGW_RT/120",
            PayloadError::Value(_) => "/IWBEP/CM_MGW_RT/022",
            PayloadError::TooManyItems => "V1/399",
        }
    }

    /// The property the error is about, if any (for `errordetails.propertyref`).
    pub fn property(&self) -> Option<&str> {
        match self {
            PayloadError::UnknownProperty { name, .. } => Some(name),
            PayloadError::Value(
                ValueError::WrongType { property, .. }
                | ValueError::TooLong { property, .. }
                | ValueError::DecimalOutOfRange { property, .. },
            ) => Some(property),
            _ => None,
        }
    }
}

/// Validated property values of one entity, in the order of the service definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropertyMap {
    entries: Vec<(&'static Property, EdmValue)>,
}

impl PropertyMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if it was sent.
    pub fn get(&self, name: &str) -> Option<&EdmValue> {
        self.entries
            .iter()
            .find(|(p, _)| p.name == name)
            .map(|(_, v)| v)
    }

    /// The string value of `name`, if it was sent as a (non-null) string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(EdmValue::as_str)
    }

    /// Sets `property` to `value`, replacing an earlier value.
    pub fn set(&mut self, property: &'static Property, value: EdmValue) {
        match self
            .entries
            .iter_mut()
            .find(|(p, _)| p.name == property.name)
        {
            Some(entry) => entry.1 = value,
            None => self.entries.push((property, value)),
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<EdmValue> {
        let i = self.entries.iter().position(|(p, _)| p.name == name)?;
        Some(self.entries.remove(i).1)
    }

    /// Properties and values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Property, &EdmValue)> {
        self.entries.iter().map(|(p, v)| (*p, v))
    }

    /// Number of properties set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The properties as an ordered JSON object, in SAP's encodings.
    pub fn to_node(&self) -> Node {
        Node::Object(
            self.entries
                .iter()
                .map(|(p, v)| (p.name.to_owned(), Node::Value(v.to_json())))
                .collect(),
        )
    }
}

/// A parsed deep-insert create of `A_SalesOrder` with its `to_Item`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SalesOrderCreate {
    /// Header properties sent.
    pub header: PropertyMap,
    /// Items, in order, each with the properties sent.
    pub items: Vec<PropertyMap>,
}

/// Parses a deep-insert body for `POST .../A_SalesOrder`.
pub fn parse_sales_order_create(body: &[u8]) -> Result<SalesOrderCreate, PayloadError> {
    let json = parse_json(body)?;
    let Value::Object(mut object) = json else {
        return Err(PayloadError::NotAnObject("a sales order"));
    };
    let items = match object.remove("to_Item") {
        Some(v) => parse_items(&v)?,
        None => Vec::new(),
    };
    Ok(SalesOrderCreate {
        header: entity_properties(&object, &SALES_ORDER)?,
        items,
    })
}

/// Parses a single-entity body of `entity` without navigation properties: the body of
/// `PATCH`/`MERGE`/`PUT`, or of a `POST` that creates one item.
pub fn parse_update(body: &[u8], entity: &'static EntityType) -> Result<PropertyMap, PayloadError> {
    let json = parse_json(body)?;
    let Value::Object(object) = json else {
        return Err(PayloadError::NotAnObject(entity.name));
    };
    entity_properties(&object, entity)
}

/// Parses one entity object of `entity` (no navigation allowed).
pub fn parse_entity(
    object: &Value,
    entity: &'static EntityType,
) -> Result<PropertyMap, PayloadError> {
    match object {
        Value::Object(o) => entity_properties(o, entity),
        _ => Err(PayloadError::NotAnObject(entity.name)),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::MalformedJson(e.to_string()))
}

fn property_of(entity: &'static EntityType, name: &str) -> Result<&'static Property, PayloadError> {
    if entity.navigation(name).is_some() {
        return Err(PayloadError::NavigationNotSupported(name.to_owned()));
    }
    entity
        .property(name)
        .ok_or_else(|| PayloadError::UnknownProperty {
            entity: entity.name,
            name: name.chars().take(80).collect(),
        })
}

/// Validates every key of `object` against `entity`, then collects the values in the order
/// of the service definition (the order S/4HANA writes them back).
fn entity_properties(
    object: &Map<String, Value>,
    entity: &'static EntityType,
) -> Result<PropertyMap, PayloadError> {
    for name in object.keys() {
        if name != "__metadata" {
            property_of(entity, name)?;
        }
    }
    let mut map = PropertyMap::new();
    for p in entity.properties {
        if let Some(value) = object.get(p.name) {
            map.set(p, EdmValue::from_json(p, value)?);
        }
    }
    Ok(map)
}

fn parse_items(value: &Value) -> Result<Vec<PropertyMap>, PayloadError> {
    let list = match value {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("results") {
            Some(Value::Array(a)) if o.len() == 1 => a,
            _ => return Err(PayloadError::BadItems),
        },
        _ => return Err(PayloadError::BadItems),
    };
    if list.len() > MAX_ITEMS {
        return Err(PayloadError::TooManyItems);
    }
    list.iter()
        .map(|item| parse_entity(item, &SALES_ORDER_ITEM))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDK_CREATE: &str = r#"{"SalesOrderType":"OR","SalesOrganization":"1010","DistributionChannel":"10","OrganizationDivision":"00","SoldToParty":"17100001","PurchaseOrderByCustomer":"SDK-1795530057332","CustomerPurchaseOrderDate":"/Date(1795478400000+0000)/","to_Item":[{"Material":"TG11","RequestedQuantity":"2","RequestedQuantityUnit":"PC"},{"Material":"TG12","RequestedQuantity":"5","RequestedQuantityUnit":"PC"}]}"#;

    #[test]
    fn the_exact_sdk_deep_insert_parses() {
        let c = parse_sales_order_create(SDK_CREATE.as_bytes()).unwrap();
        assert_eq!(c.header.get_str("SoldToParty"), Some("17100001"));
        assert_eq!(c.header.len(), 7);
        assert_eq!(c.items.len(), 2);
        assert_eq!(c.items[1].get_str("Material"), Some("TG12"));
        assert_eq!(
            c.items[0]
                .get("RequestedQuantity")
                .and_then(EdmValue::as_decimal),
            Some(2.into())
        );
        assert_eq!(
            c.header.to_node().to_json_string(),
            r#"{"SalesOrderType":"OR","SalesOrganization":"1010","DistributionChannel":"10","OrganizationDivision":"00","SoldToParty":"17100001","PurchaseOrderByCustomer":"SDK-1795530057332","CustomerPurchaseOrderDate":"/Date(1795478400000)/"}"#
        );
    }

    #[test]
    fn items_in_a_results_wrapper_are_accepted() {
        let body = r#"{"SoldToParty":"1","to_Item":{"results":[{"Material":"TG11"}]}}"#;
        assert_eq!(
            parse_sales_order_create(body.as_bytes())
                .unwrap()
                .items
                .len(),
            1
        );
    }

    #[test]
    fn every_kind_of_bad_body_is_refused_with_a_reason() {
        type Expectation = fn(&PayloadError) -> bool;
        let cases: &[(&str, Expectation)] = &[
            ("{", |e| matches!(e, PayloadError::MalformedJson(_))),
            ("[]", |e| matches!(e, PayloadError::NotAnObject(_))),
            (r#"{"Nope":"1"}"#, |e| {
                matches!(e, PayloadError::UnknownProperty { .. })
            }),
            (r#"{"SoldToParty":17100001}"#, |e| {
                matches!(e, PayloadError::Value(ValueError::WrongType { .. }))
            }),
            (r#"{"SoldToParty":"12345678901"}"#, |e| {
                matches!(e, PayloadError::Value(ValueError::TooLong { .. }))
            }),
            (r#"{"to_Partner":[]}"#, |e| {
                matches!(e, PayloadError::NavigationNotSupported(_))
            }),
            (r#"{"to_Item":"x"}"#, |e| {
                matches!(e, PayloadError::BadItems)
            }),
            (r#"{"to_Item":[1]}"#, |e| {
                matches!(e, PayloadError::NotAnObject(_))
            }),
            (r#"{"to_Item":[{"to_ScheduleLine":[]}]}"#, |e| {
                matches!(e, PayloadError::NavigationNotSupported(_))
            }),
            (r#"{"to_Item":[{"RequestedQuantity":"abc"}]}"#, |e| {
                matches!(e, PayloadError::Value(_))
            }),
        ];
        for (body, expected) in cases {
            let e = parse_sales_order_create(body.as_bytes()).unwrap_err();
            assert!(expected(&e), "{body}: {e:?}");
        }
    }

    #[test]
    fn deeply_nested_json_is_refused_without_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_sales_order_create(deep.as_bytes()),
            Err(PayloadError::MalformedJson(_))
        ));
    }

    #[test]
    fn an_update_body_is_validated_against_its_entity() {
        let m = parse_update(br#"{"PurchaseOrderByCustomer":"NEW"}"#, &SALES_ORDER).unwrap();
        assert_eq!(m.get_str("PurchaseOrderByCustomer"), Some("NEW"));
        assert!(parse_update(br#"{"Material":"TG11"}"#, &SALES_ORDER).is_err());
    }
}
