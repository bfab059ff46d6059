//! The `A_SalesOrder` and `A_SalesOrderItem` entity types: properties, EDM types, facets,
//! keys and navigation, as SAP's service definition declares them.
//!
//! The property tables live in `schema_generated.rs`, generated from the CSN file shipped in
//! npm `@sap/cloud-sdk-vdm-sales-order-service` 2.1.0 (83 header, 86 item properties). Every
//! non-key property is nullable.

#[rustfmt::skip]
mod generated {
    include!("schema_generated.rs");
}

pub use generated::{
    SALES_ORDER_ITEM_NAVIGATIONS, SALES_ORDER_ITEM_PROPERTIES, SALES_ORDER_NAVIGATIONS,
    SALES_ORDER_PROPERTIES,
};

/// The EDM type of a property, with its facets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdmType {
    /// `Edm.String` with `MaxLength` (counted in characters).
    String {
        /// Longest value accepted, in characters.
        max_length: u16,
    },
    /// `Edm.DateTime` (SAP uses it for date-only fields, midnight UTC).
    DateTime,
    /// `Edm.DateTimeOffset` (timestamps).
    DateTimeOffset,
    /// `Edm.Decimal` with precision and scale.
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: u8,
    },
    /// `Edm.Boolean`.
    Boolean,
}

impl EdmType {
    /// The EDM type name, e.g. `Edm.String`.
    pub fn name(self) -> &'static str {
        match self {
            EdmType::String { .. } => "Edm.String",
            EdmType::DateTime => "Edm.DateTime",
            EdmType::DateTimeOffset => "Edm.DateTimeOffset",
            EdmType::Decimal { .. } => "Edm.Decimal",
            EdmType::Boolean => "Edm.Boolean",
        }
    }
}

/// One structural property of an entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    /// Property name as on the wire (`SoldToParty`).
    pub name: &'static str,
    /// EDM type and facets.
    pub edm: EdmType,
    /// Whether the property is (part of) the key.
    pub key: bool,
}

impl Property {
    /// `MaxLength` of a string property.
    pub fn max_length(&self) -> Option<usize> {
        match self.edm {
            EdmType::String { max_length } => Some(usize::from(max_length)),
            _ => None,
        }
    }
}

/// One navigation property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Navigation {
    /// Name as on the wire (`to_Item`).
    pub name: &'static str,
    /// Target entity type name (without namespace).
    pub target: &'static str,
    /// Whether the navigation leads to a collection.
    pub to_many: bool,
}

/// An entity type and its entity set (SAP names both the same).
#[derive(Debug, PartialEq, Eq)]
pub struct EntityType {
    /// Type name and entity set name, e.g. `A_SalesOrder`.
    pub name: &'static str,
    /// Key property names, in key order.
    pub keys: &'static [&'static str],
    /// Structural properties.
    pub properties: &'static [Property],
    /// Navigation properties.
    pub navigations: &'static [Navigation],
}

impl EntityType {
    /// The property named `name` (case-sensitive, as OData is).
    pub fn property(&self, name: &str) -> Option<&'static Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// The navigation property named `name`.
    pub fn navigation(&self, name: &str) -> Option<&'static Navigation> {
        self.navigations.iter().find(|n| n.name == name)
    }

    /// The fully qualified type name, e.g. `API_SALES_ORDER_SRV.A_SalesOrder`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", crate::SERVICE_NAME, self.name)
    }
}

/// `A_SalesOrder`: the sales order header.
pub static SALES_ORDER: EntityType = EntityType {
    name: "A_SalesOrder",
    keys: &["SalesOrder"],
    properties: SALES_ORDER_PROPERTIES,
    navigations: SALES_ORDER_NAVIGATIONS,
};

/// `A_SalesOrderItem`: a sales order item.
pub static SALES_ORDER_ITEM: EntityType = EntityType {
    name: "A_SalesOrderItem",
    keys: &["SalesOrder", "SalesOrderItem"],
    properties: SALES_ORDER_ITEM_PROPERTIES,
    navigations: SALES_ORDER_ITEM_NAVIGATIONS,
};

/// The entity type served under entity set `name`, if this crate knows it.
pub fn entity_type(name: &str) -> Option<&'static EntityType> {
    [&SALES_ORDER, &SALES_ORDER_ITEM]
        .into_iter()
        .find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_has_the_property_counts_of_the_service_definition() {
        assert_eq!(SALES_ORDER.properties.len(), 83);
        assert_eq!(SALES_ORDER_ITEM.properties.len(), 86);
        assert_eq!(
            SALES_ORDER
                .property("PurchaseOrderByCustomer")
                .unwrap()
                .max_length(),
            Some(35)
        );
        assert_eq!(
            SALES_ORDER_ITEM.property("RequestedQuantity").unwrap().edm,
            EdmType::Decimal {
                precision: 15,
                scale: 3
            }
        );
        assert!(SALES_ORDER.navigation("to_Item").unwrap().to_many);
        assert!(
            !SALES_ORDER_ITEM
                .navigation("to_SalesOrder")
                .unwrap()
                .to_many
        );
    }

    #[test]
    fn keys_are_marked_on_their_properties() {
        for et in [&SALES_ORDER, &SALES_ORDER_ITEM] {
            for k in et.keys {
                assert!(et.property(k).unwrap().key, "{k}");
            }
            assert_eq!(
                et.properties.iter().filter(|p| p.key).count(),
                et.keys.len()
            );
        }
    }
}
