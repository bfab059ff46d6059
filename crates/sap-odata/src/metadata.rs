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

/// Content type of `$metadata`, as the emulator and the proxy's SAP face send it.
pub const EDMX_CONTENT_TYPE: &str = "application/xml";
/// Content type of the service document in its AtomPub form.
pub const SERVICE_DOCUMENT_ATOM_CONTENT_TYPE: &str = "application/xml;charset=utf-8";
/// Content type of the service document in its JSON form.
pub const SERVICE_DOCUMENT_JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The entity sets of the service, by name (as a service document lists them), each with
/// whether it is read-only.
pub fn entity_sets() -> impl Iterator<Item = (&'static str, bool)> {
    let mut sets: Vec<_> = ENTITY_TYPES
        .iter()
        .map(|(e, read_only)| (e.name, *read_only))
        .collect();
    sets.sort_unstable();
    sets.into_iter()
}

/// The service document (`GET <service root>/`) in OData V2's JSON form:
/// `{"d":{"EntitySets":[...]}}`, the sets of [`edmx`].
pub fn service_document_json() -> String {
    let sets: Vec<&str> = entity_sets().map(|(name, _)| name).collect();
    serde_json::json!({ "d": { "EntitySets": sets } }).to_string()
}

/// The service document in its AtomPub form, as SAP Gateway writes it: one `app:workspace`
/// titled `Data` with an `app:collection` per entity set (SAP's `sap:` capability attributes
/// deny what a read-only set cannot do), and the `self` / `latest-version` links.
/// `service_root_url` is the absolute root the client called (`http://host/sap/opu/...SRV`).
/// Shape: SAP's "SAP Annotations for OData Version 2.0", section "AtomPub Service Document"
/// (github.com/SAP/odata-vocabularies, `docs/v2-annotations.md`).
pub fn service_document_atom(service_root_url: &str) -> String {
    let base = format!("{}/", service_root_url.trim_end_matches('/'));
    let base = xml_escape(&base);
    let mut x = String::with_capacity(2048);
    x.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    let _ = write!(
        x,
        r#"<app:service xml:lang="en" xml:base="{base}" xmlns:app="http://www.w3.org/2007/app" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:sap="http://www.sap.com/Protocols/SAPData">"#
    );
    x.push_str(r#"<app:workspace><atom:title type="text">Data</atom:title>"#);
    for (name, read_only) in entity_sets() {
        x.push_str("<app:collection");
        if name == SALES_ORDER.name {
            x.push_str(r#" sap:searchable="true""#);
        }
        if read_only {
            x.push_str(r#" sap:creatable="false" sap:updatable="false" sap:deletable="false""#);
        }
        let _ = write!(
            x,
            r#" sap:content-version="1" href="{name}"><atom:title type="text">{name}</atom:title><sap:member-title>{name}</sap:member-title></app:collection>"#
        );
    }
    x.push_str("</app:workspace>");
    let _ = write!(
        x,
        r#"<atom:link rel="self" href="{base}"/><atom:link rel="latest-version" href="{base}"/></app:service>"#
    );
    x
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    #[test]
    fn the_service_document_lists_the_sets_of_the_metadata_in_both_forms() {
        let json: serde_json::Value = serde_json::from_str(&service_document_json()).unwrap();
        let sets = json["d"]["EntitySets"].as_array().unwrap();
        assert_eq!(sets.len(), 4);
        assert_eq!(sets[0], "A_SalesOrder");
        let doc = edmx();
        for s in sets {
            assert!(doc.contains(&format!(r#"<EntitySet Name="{}""#, s.as_str().unwrap())));
        }
        let atom = service_document_atom("http://h:1/sap/opu/odata/sap/API_SALES_ORDER_SRV");
        assert!(atom.contains(r#"xml:base="http://h:1/sap/opu/odata/sap/API_SALES_ORDER_SRV/""#));
        assert!(atom.contains(
            r#"href="A_SalesOrderItem"><atom:title type="text">A_SalesOrderItem</atom:title>"#
        ));
        assert_eq!(atom.matches("<app:collection").count(), 4);
        assert!(atom.ends_with("</app:service>"));
    }
}
