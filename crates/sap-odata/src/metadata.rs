//! The `$metadata` document (EDMX, OData V2) for `A_SalesOrder` and `A_SalesOrderItem`.
//!
//! It declares both entity types with every property and its facets, the `to_Item` /
//! `to_SalesOrder` association between them, and the two entity sets. The other navigation
//! properties of the real service lead to entity types this emulator does not serve, so they
//! are left out of the document (responses still carry them as `__deferred`).

use std::fmt::Write;

use crate::SERVICE_NAME;
use crate::schema::{EdmType, EntityType, SALES_ORDER, SALES_ORDER_ITEM};

/// The complete EDMX document.
pub fn edmx() -> String {
    let mut x = String::with_capacity(32 * 1024);
    x.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    x.push_str(r#"<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" xmlns:sap="http://www.sap.com/Protocols/SAPData">"#);
    x.push_str(r#"<edmx:DataServices m:DataServiceVersion="2.0">"#);
    let _ = write!(
        x,
        r#"<Schema Namespace="{SERVICE_NAME}" xml:lang="en" sap:schema-version="1" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">"#
    );
    entity_type(
        &mut x,
        &SALES_ORDER,
        &[(
            "to_Item",
            "assoc_SalesOrder_Item",
            "FromRole_SalesOrder",
            "ToRole_Item",
        )],
    );
    entity_type(
        &mut x,
        &SALES_ORDER_ITEM,
        &[(
            "to_SalesOrder",
            "assoc_SalesOrder_Item",
            "ToRole_Item",
            "FromRole_SalesOrder",
        )],
    );
    let _ = write!(
        x,
        r#"<Association Name="assoc_SalesOrder_Item" sap:content-version="1"><End Type="{SERVICE_NAME}.A_SalesOrder" Multiplicity="1" Role="FromRole_SalesOrder"/><End Type="{SERVICE_NAME}.A_SalesOrderItem" Multiplicity="*" Role="ToRole_Item"/><ReferentialConstraint><Principal Role="FromRole_SalesOrder"><PropertyRef Name="SalesOrder"/></Principal><Dependent Role="ToRole_Item"><PropertyRef Name="SalesOrder"/></Dependent></ReferentialConstraint></Association>"#
    );
    let _ = write!(
        x,
        r#"<EntityContainer Name="{SERVICE_NAME}_Entities" m:IsDefaultEntityContainer="true" sap:supported-formats="atom json xlsx"><EntitySet Name="A_SalesOrder" EntityType="{SERVICE_NAME}.A_SalesOrder" sap:searchable="true" sap:content-version="1"/><EntitySet Name="A_SalesOrderItem" EntityType="{SERVICE_NAME}.A_SalesOrderItem" sap:content-version="1"/><AssociationSet Name="assoc_SalesOrder_Item" Association="{SERVICE_NAME}.assoc_SalesOrder_Item" sap:creatable="false" sap:updatable="false" sap:deletable="false" sap:content-version="1"><End EntitySet="A_SalesOrder" Role="FromRole_SalesOrder"/><End EntitySet="A_SalesOrderItem" Role="ToRole_Item"/></AssociationSet></EntityContainer>"#
    );
    x.push_str("</Schema></edmx:DataServices></edmx:Edmx>");
    x
}

fn entity_type(x: &mut String, e: &EntityType, navs: &[(&str, &str, &str, &str)]) {
    let _ = write!(
        x,
        r#"<EntityType Name="{}" sap:content-version="1"><Key>"#,
        e.name
    );
    for k in e.keys {
        let _ = write!(x, r#"<PropertyRef Name="{k}"/>"#);
    }
    x.push_str("</Key>");
    for p in e.properties {
        let _ = write!(x, r#"<Property Name="{}" Type="{}""#, p.name, p.edm.name());
        if !p.key {
            x.push_str(r#" Nullable="true""#);
        } else {
            x.push_str(r#" Nullable="false""#);
        }
        match p.edm {
            EdmType::String { max_length } => {
                let _ = write!(x, r#" MaxLength="{max_length}""#);
            }
            EdmType::Decimal { precision, scale } => {
                let _ = write!(x, r#" Precision="{precision}" Scale="{scale}""#);
            }
            EdmType::DateTime => {
                x.push_str(r#" Precision="0" sap:display-format="Date""#);
            }
            EdmType::DateTimeOffset => x.push_str(r#" Precision="7""#),
            EdmType::Boolean => {}
        }
        // S/4 writes these annotations only to deny (the default is true)
        if !p.creatable {
            x.push_str(r#" sap:creatable="false""#);
        }
        if !p.updatable {
            x.push_str(r#" sap:updatable="false""#);
        }
        x.push_str("/>");
    }
    for (name, rel, from, to) in navs {
        let _ = write!(
            x,
            r#"<NavigationProperty Name="{name}" Relationship="{SERVICE_NAME}.{rel}" FromRole="{from}" ToRole="{to}"/>"#
        );
    }
    x.push_str("</EntityType>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_declares_both_types_their_keys_and_the_item_navigation() {
        let doc = edmx();
        assert!(doc.starts_with("<?xml"));
        assert!(doc.contains(r#"<EntityType Name="A_SalesOrder""#));
        assert!(doc.contains(r#"<EntityType Name="A_SalesOrderItem""#));
        assert!(doc.contains(r#"<Property Name="PurchaseOrderByCustomer" Type="Edm.String" Nullable="true" MaxLength="35"/>"#));
        assert!(doc.contains(r#"<NavigationProperty Name="to_Item""#));
        assert!(doc.contains(r#"<EntitySet Name="A_SalesOrder""#));
        assert_eq!(doc.matches("<Property ").count(), 92 + 104);
        assert!(doc.contains(r#"<Property Name="ExternalDocumentID" Type="Edm.String" Nullable="true" MaxLength="40" sap:creatable="false" sap:updatable="false"/>"#));
        // 21 header and 29 item properties, and the association set
        assert_eq!(doc.matches(r#"sap:creatable="false""#).count(), 21 + 29 + 1);
        assert!(doc.ends_with("</edmx:Edmx>"));
    }
}
