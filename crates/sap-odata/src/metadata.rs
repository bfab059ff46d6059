//! The `$metadata` document (EDMX, OData V2) for the entity types the emulator serves.
//!
//! It declares `A_SalesOrder`, `A_SalesOrderItem` and the document flow types
//! `A_SalesOrderSubsqntProcFlow` / `A_SalesOrderItmSubsqntProcFlow` with every property and
//! its facets, the associations between them (`to_Item` / `to_SalesOrder`,
//! `to_SubsequentProcFlowDoc`, `to_SubsequentProcFlowDocItem`, and the flow's way back
//! `to_SalesOrder` / `to_SalesOrderItem`), and their entity sets; the flow's sets are
//! read-only, as in S/4's document. The other navigation properties of the real service lead
//! to entity types this emulator does not serve, so they are left out of the document
//! (responses still carry them as `__deferred`). Association names are the emulator's own
//! (S/4 uses generated `assoc_<hash>` names; clients navigate by navigation property name).

use std::fmt::Write;

use crate::SERVICE_NAME;
use crate::schema::{
    EdmType, EntityType, SALES_ORDER, SALES_ORDER_ITEM, SALES_ORDER_ITM_SUBSQNT_PROC_FLOW,
    SALES_ORDER_SUBSQNT_PROC_FLOW,
};

/// One association of the document: name, then (entity type, multiplicity, role) per end.
struct Association {
    name: &'static str,
    from: (&'static EntityType, &'static str, &'static str),
    to: (&'static EntityType, &'static str, &'static str),
}

static ASSOCIATIONS: &[Association] = &[
    Association {
        name: "assoc_SalesOrder_Item",
        from: (&SALES_ORDER, "1", "FromRole_SalesOrder"),
        to: (&SALES_ORDER_ITEM, "*", "ToRole_Item"),
    },
    Association {
        name: "assoc_SalesOrder_SubsqntProcFlow",
        from: (&SALES_ORDER, "1", "FromRole_SalesOrder"),
        to: (
            &SALES_ORDER_SUBSQNT_PROC_FLOW,
            "*",
            "ToRole_SubsqntProcFlow",
        ),
    },
    Association {
        name: "assoc_SubsqntProcFlow_SalesOrder",
        from: (
            &SALES_ORDER_SUBSQNT_PROC_FLOW,
            "1",
            "FromRole_SubsqntProcFlow",
        ),
        to: (&SALES_ORDER, "1", "ToRole_SalesOrder"),
    },
    Association {
        name: "assoc_Item_ItmSubsqntProcFlow",
        from: (&SALES_ORDER_ITEM, "1", "FromRole_Item"),
        to: (
            &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW,
            "*",
            "ToRole_ItmSubsqntProcFlow",
        ),
    },
    Association {
        name: "assoc_ItmSubsqntProcFlow_SalesOrder",
        from: (
            &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW,
            "1",
            "FromRole_ItmSubsqntProcFlow",
        ),
        to: (&SALES_ORDER, "1", "ToRole_SalesOrder"),
    },
    Association {
        name: "assoc_ItmSubsqntProcFlow_Item",
        from: (
            &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW,
            "1",
            "FromRole_ItmSubsqntProcFlow",
        ),
        to: (&SALES_ORDER_ITEM, "1", "ToRole_Item"),
    },
];

/// The navigation properties declared: (entity type, navigation, association, from role, to role).
static NAVIGATIONS: &[(&EntityType, &str, &str, &str, &str)] = &[
    (
        &SALES_ORDER,
        "to_Item",
        "assoc_SalesOrder_Item",
        "FromRole_SalesOrder",
        "ToRole_Item",
    ),
    (
        &SALES_ORDER,
        "to_SubsequentProcFlowDoc",
        "assoc_SalesOrder_SubsqntProcFlow",
        "FromRole_SalesOrder",
        "ToRole_SubsqntProcFlow",
    ),
    (
        &SALES_ORDER_ITEM,
        "to_SalesOrder",
        "assoc_SalesOrder_Item",
        "ToRole_Item",
        "FromRole_SalesOrder",
    ),
    (
        &SALES_ORDER_ITEM,
        "to_SubsequentProcFlowDocItem",
        "assoc_Item_ItmSubsqntProcFlow",
        "FromRole_Item",
        "ToRole_ItmSubsqntProcFlow",
    ),
    (
        &SALES_ORDER_SUBSQNT_PROC_FLOW,
        "to_SalesOrder",
        "assoc_SubsqntProcFlow_SalesOrder",
        "FromRole_SubsqntProcFlow",
        "ToRole_SalesOrder",
    ),
    (
        &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW,
        "to_SalesOrder",
        "assoc_ItmSubsqntProcFlow_SalesOrder",
        "FromRole_ItmSubsqntProcFlow",
        "ToRole_SalesOrder",
    ),
    (
        &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW,
        "to_SalesOrderItem",
        "assoc_ItmSubsqntProcFlow_Item",
        "FromRole_ItmSubsqntProcFlow",
        "ToRole_Item",
    ),
];

/// The entity types declared, in document order, with whether their set is read-only.
static ENTITY_TYPES: &[(&EntityType, bool)] = &[
    (&SALES_ORDER, false),
    (&SALES_ORDER_ITEM, false),
    (&SALES_ORDER_SUBSQNT_PROC_FLOW, true),
    (&SALES_ORDER_ITM_SUBSQNT_PROC_FLOW, true),
];

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
    for (e, _) in ENTITY_TYPES {
        entity_type(&mut x, e);
    }
    for a in ASSOCIATIONS {
        let _ = write!(
            x,
            r#"<Association Name="{}" sap:content-version="1"><End Type="{SERVICE_NAME}.{}" Multiplicity="{}" Role="{}"/><End Type="{SERVICE_NAME}.{}" Multiplicity="{}" Role="{}"/>"#,
            a.name, a.from.0.name, a.from.1, a.from.2, a.to.0.name, a.to.1, a.to.2
        );
        if a.from.1 == "1" && a.to.1 == "*" {
            // a header's (or item's) dependents carry its key
            let _ = write!(
                x,
                r#"<ReferentialConstraint><Principal Role="{}">"#,
                a.from.2
            );
            for k in a.from.0.keys {
                let _ = write!(x, r#"<PropertyRef Name="{k}"/>"#);
            }
            let _ = write!(x, r#"</Principal><Dependent Role="{}">"#, a.to.2);
            for k in a.from.0.keys {
                let _ = write!(x, r#"<PropertyRef Name="{k}"/>"#);
            }
            x.push_str("</Dependent></ReferentialConstraint>");
        }
        x.push_str("</Association>");
    }
    let _ = write!(
        x,
        r#"<EntityContainer Name="{SERVICE_NAME}_Entities" m:IsDefaultEntityContainer="true" sap:supported-formats="atom json xlsx">"#
    );
    for (e, read_only) in ENTITY_TYPES {
        let _ = write!(
            x,
            r#"<EntitySet Name="{0}" EntityType="{SERVICE_NAME}.{0}""#,
            e.name
        );
        if e.name == SALES_ORDER.name {
            x.push_str(r#" sap:searchable="true""#);
        }
        if *read_only {
            x.push_str(r#" sap:creatable="false" sap:updatable="false" sap:deletable="false""#);
        }
        x.push_str(r#" sap:content-version="1"/>"#);
    }
    for a in ASSOCIATIONS {
        let _ = write!(
            x,
            r#"<AssociationSet Name="{0}" Association="{SERVICE_NAME}.{0}" sap:creatable="false" sap:updatable="false" sap:deletable="false" sap:content-version="1"><End EntitySet="{1}" Role="{2}"/><End EntitySet="{3}" Role="{4}"/></AssociationSet>"#,
            a.name, a.from.0.name, a.from.2, a.to.0.name, a.to.2
        );
    }
    x.push_str("</EntityContainer>");
    x.push_str("</Schema></edmx:DataServices></edmx:Edmx>");
    x
}

fn entity_type(x: &mut String, e: &EntityType) {
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
            EdmType::Time => x.push_str(r#" Precision="0""#),
            EdmType::Boolean | EdmType::Guid => {}
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
    for (_, name, rel, from, to) in NAVIGATIONS.iter().filter(|n| std::ptr::eq(n.0, e)) {
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
        assert_eq!(doc.matches("<Property ").count(), 92 + 104 + 9 + 17);
        assert!(doc.contains(r#"<Property Name="ExternalDocumentID" Type="Edm.String" Nullable="true" MaxLength="40" sap:creatable="false" sap:updatable="false"/>"#));
        // 21 header and 29 item properties, the two read-only flow sets, six association sets
        assert_eq!(
            doc.matches(r#"sap:creatable="false""#).count(),
            21 + 29 + 2 + 6
        );
        assert!(doc.contains(r#"<EntityType Name="A_SalesOrderSubsqntProcFlow""#));
        assert!(doc.contains(
            r#"<Property Name="DocRelationshipUUID" Type="Edm.Guid" Nullable="false"/>"#
        ));
        assert!(doc.contains(
            r#"<Property Name="CreationTime" Type="Edm.Time" Nullable="true" Precision="0"/>"#
        ));
        assert!(doc.contains(r#"<NavigationProperty Name="to_SubsequentProcFlowDoc" Relationship="API_SALES_ORDER_SRV.assoc_SalesOrder_SubsqntProcFlow""#));
        assert!(doc.contains(r#"<NavigationProperty Name="to_SubsequentProcFlowDocItem""#));
        assert!(doc.contains(r#"<EntitySet Name="A_SalesOrderItmSubsqntProcFlow" EntityType="API_SALES_ORDER_SRV.A_SalesOrderItmSubsqntProcFlow" sap:creatable="false""#));
        assert!(doc.ends_with("</edmx:Edmx>"));
    }
}
