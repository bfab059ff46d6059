//! The emulator's master data ([`crate::master_data`]) served read-only through SAP's standard
//! OData V2 APIs, the ones `orderctl master-data import --from-sap` reads:
//!
//! - `API_PRODUCT_SRV`: `A_Product` (one per material) with `to_Description`
//!   (`A_ProductDescription`, one English text per material);
//! - `API_BUSINESS_PARTNER`: `A_Customer` with `to_CustomerSalesArea`, and
//!   `A_CustomerSalesArea`: every customer in every configured sales area, in the area's
//!   currency (the emulator's model: a sales area has one currency);
//! - `API_SLSPRICINGCONDITIONRECORD_SRV`: `A_SlsPrcgConditionRecord`, one `PPR0` record per
//!   material and sales organization / distribution channel whose currency is the material's,
//!   with `to_SlsPrcgCndnRecdValidity` (`A_SlsPrcgCndnRecdValidity`, valid 2020-01-01 to
//!   9999-12-31, no customer).
//!
//! Names, keys, EDM types and facets are those of SAP's service definitions (the entity type
//! of set `X` is `XType`); only the properties listed in the tables below are served (see
//! docs/sap-mock.md, "Master data APIs", for the sources and what is left out). Everything
//! else is the sales order service's machinery ([`crate::odata`]): logon, `sap-client`, fault
//! knobs, `$select`/`$expand`/`$filter`/`$orderby`/`$top`/`$skip`/`$skiptoken`/`$inlinecount`,
//! server paging with `__next`, `$count`, the OData error JSON. Writes answer 405.

use std::cmp::Ordering;
use std::fmt::Write;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use rust_decimal::Decimal;
use sap_odata::EdmValue;
use sap_odata::date::JsonDate;
use sap_odata::envelope::{Node, deferred, inline_results, single};
use sap_odata::query::QueryOptions;
use sap_odata::schema::{EdmType, EntityType, Navigation, Property};
use sap_odata::uri::{parse_resource_path, percent_encode_key_value, resolve_key};

use crate::error::SapError;
use crate::master_data::MasterData;
use crate::odata::{RequestContext, count, is_count, json, list, matching, negotiate_json, only};
use crate::store::Record;

/// One read-only OData service.
#[derive(Debug)]
pub struct Service {
    /// Service name, the namespace of its types (`API_PRODUCT_SRV`).
    pub name: &'static str,
    /// Root path below the host.
    pub root: &'static str,
    /// Its entity sets.
    pub sets: &'static [&'static EntityType],
}

impl Service {
    /// The entity set (and type) named `name`.
    pub fn entity(&self, name: &str) -> Option<&'static EntityType> {
        self.sets.iter().copied().find(|e| e.name == name)
    }

    /// `API_PRODUCT_SRV.A_ProductType`: SAP names the type of set `X` `XType`.
    pub fn type_name(&self, entity: &EntityType) -> String {
        format!("{}.{}Type", self.name, entity.name)
    }
}

/// The three master data services.
pub static SERVICES: [Service; 3] = [
    Service {
        name: "API_PRODUCT_SRV",
        root: "/sap/opu/odata/sap/API_PRODUCT_SRV",
        sets: &[&PRODUCT, &PRODUCT_DESCRIPTION],
    },
    Service {
        name: "API_BUSINESS_PARTNER",
        root: "/sap/opu/odata/sap/API_BUSINESS_PARTNER",
        sets: &[&CUSTOMER, &CUSTOMER_SALES_AREA],
    },
    Service {
        name: "API_SLSPRICINGCONDITIONRECORD_SRV",
        root: "/sap/opu/odata/sap/API_SLSPRICINGCONDITIONRECORD_SRV",
        sets: &[&CONDITION_RECORD, &CONDITION_VALIDITY],
    },
];

/// The master data service whose root path is `root`.
pub fn service(root: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.root == root)
}

// Property tables, in the order of SAP's service definitions. `creatable`/`updatable` are
// SAP's annotations (only written to `$metadata`; the emulator takes no writes).
const fn prop(name: &'static str, edm: EdmType) -> Property {
    Property {
        name,
        edm,
        key: false,
        creatable: true,
        updatable: true,
    }
}
const fn key(name: &'static str, edm: EdmType) -> Property {
    Property {
        key: true,
        ..prop(name, edm)
    }
}
const fn computed(name: &'static str, edm: EdmType) -> Property {
    Property {
        creatable: false,
        updatable: false,
        ..prop(name, edm)
    }
}
const fn s(max_length: u16) -> EdmType {
    EdmType::String { max_length }
}
const fn dec(precision: u8, scale: u8) -> EdmType {
    EdmType::Decimal { precision, scale }
}
const DATE: EdmType = EdmType::DateTime;
const BOOL: EdmType = EdmType::Boolean;

const fn to_many(name: &'static str, target: &'static str) -> Navigation {
    Navigation {
        name,
        target,
        to_many: true,
    }
}

/// `API_PRODUCT_SRV.A_ProductType`.
pub static PRODUCT: EntityType = EntityType {
    name: "A_Product",
    keys: &["Product"],
    properties: &[
        key("Product", s(40)),
        prop("ProductType", s(4)),
        prop("IsMarkedForDeletion", BOOL),
        prop("GrossWeight", dec(13, 3)),
        prop("WeightUnit", s(3)),
        prop("NetWeight", dec(13, 3)),
        prop("ProductGroup", s(9)),
        prop("BaseUnit", s(3)),
    ],
    navigations: &[to_many("to_Description", "A_ProductDescription")],
};

/// `API_PRODUCT_SRV.A_ProductDescriptionType`.
pub static PRODUCT_DESCRIPTION: EntityType = EntityType {
    name: "A_ProductDescription",
    keys: &["Product", "Language"],
    properties: &[
        key("Product", s(40)),
        key("Language", s(2)),
        prop("ProductDescription", s(40)),
    ],
    navigations: &[],
};

/// `API_BUSINESS_PARTNER.A_CustomerType`.
pub static CUSTOMER: EntityType = EntityType {
    name: "A_Customer",
    keys: &["Customer"],
    properties: &[
        key("Customer", s(10)),
        computed("CustomerFullName", s(220)),
        computed("CustomerName", s(80)),
        prop("OrderIsBlockedForCustomer", s(2)),
        prop("DeletionIndicator", BOOL),
    ],
    navigations: &[to_many("to_CustomerSalesArea", "A_CustomerSalesArea")],
};

/// `API_BUSINESS_PARTNER.A_CustomerSalesAreaType`.
pub static CUSTOMER_SALES_AREA: EntityType = EntityType {
    name: "A_CustomerSalesArea",
    keys: &[
        "Customer",
        "SalesOrganization",
        "DistributionChannel",
        "Division",
    ],
    properties: &[
        key("Customer", s(10)),
        key("SalesOrganization", s(4)),
        key("DistributionChannel", s(2)),
        key("Division", s(2)),
        prop("Currency", s(5)),
        prop("CustomerPaymentTerms", s(4)),
        prop("IncotermsClassification", s(3)),
        prop("DeletionIndicator", BOOL),
        prop("OrderIsBlockedForCustomer", s(2)),
        prop("ShippingCondition", s(2)),
    ],
    navigations: &[],
};

/// `API_SLSPRICINGCONDITIONRECORD_SRV.A_SlsPrcgConditionRecordType`.
pub static CONDITION_RECORD: EntityType = EntityType {
    name: "A_SlsPrcgConditionRecord",
    keys: &["ConditionRecord"],
    properties: &[
        key("ConditionRecord", s(10)),
        prop("ConditionSequentialNumber", s(2)),
        prop("ConditionTable", s(3)),
        prop("ConditionApplication", s(2)),
        prop("ConditionType", s(4)),
        prop("ConditionValidityEndDate", DATE),
        prop("ConditionValidityStartDate", DATE),
        prop("ConditionCalculationType", s(1)),
        prop("ConditionRateValue", dec(12, 3)),
        prop("ConditionRateValueUnit", s(5)),
        prop("ConditionQuantity", dec(5, 0)),
        prop("ConditionQuantityUnit", s(3)),
        prop("BaseUnit", s(3)),
        prop("ConditionIsDeleted", BOOL),
        prop("ConditionReleaseStatus", s(1)),
    ],
    navigations: &[to_many(
        "to_SlsPrcgCndnRecdValidity",
        "A_SlsPrcgCndnRecdValidity",
    )],
};

/// `API_SLSPRICINGCONDITIONRECORD_SRV.A_SlsPrcgCndnRecdValidityType`.
pub static CONDITION_VALIDITY: EntityType = EntityType {
    name: "A_SlsPrcgCndnRecdValidity",
    keys: &["ConditionRecord", "ConditionValidityEndDate"],
    properties: &[
        key("ConditionRecord", s(10)),
        key("ConditionValidityEndDate", DATE),
        prop("ConditionValidityStartDate", DATE),
        prop("ConditionApplication", s(2)),
        prop("ConditionType", s(4)),
        prop("ConditionReleaseStatus", s(1)),
        prop("Customer", s(10)),
        prop("Material", s(40)),
        prop("SalesOrganization", s(4)),
        prop("DistributionChannel", s(2)),
    ],
    navigations: &[],
};

/// The condition type of the material prices (S/4's base price).
pub const PRICE_CONDITION_TYPE: &str = "PPR0";

/// One entity with the entities of its navigation properties.
#[derive(Debug, Clone)]
struct Row {
    entity: &'static EntityType,
    record: Record,
    navigations: Vec<(&'static str, Vec<Row>)>,
}

impl Row {
    fn new(entity: &'static EntityType, values: &[(&str, EdmValue)]) -> Self {
        let mut record = Record::empty(entity);
        for (name, value) in values {
            debug_assert!(entity.property(name).is_some(), "{name}");
            record.set(name, value.clone());
        }
        Self {
            entity,
            record,
            navigations: Vec::new(),
        }
    }

    fn with(mut self, navigation: &'static str, rows: Vec<Row>) -> Self {
        self.navigations.push((navigation, rows));
        self
    }

    fn children(&self, navigation: &str) -> &[Row] {
        self.navigations
            .iter()
            .find(|(n, _)| *n == navigation)
            .map(|(_, rows)| rows.as_slice())
            .unwrap_or_default()
    }

    fn key_strings(&self) -> Vec<&str> {
        self.entity
            .keys
            .iter()
            .map(|k| self.record.get_str(k))
            .collect()
    }

    /// SAP's key predicate: `('TG11')`, or named for several keys, dates as `datetime'..'`.
    fn key_predicate(&self) -> String {
        let literal = |k: &str| match self.record.get(k) {
            EdmValue::DateTime(d) => d.to_utc().map_or_else(String::new, |at| {
                format!("datetime'{}'", at.format("%Y-%m-%dT%H%%3A%M%%3A%S"))
            }),
            v => format!(
                "'{}'",
                percent_encode_key_value(&v.as_str().unwrap_or_default().replace('\'', "''"))
            ),
        };
        let parts: Vec<String> = match self.entity.keys {
            [one] => vec![literal(one)],
            keys => keys.iter().map(|k| format!("{k}={}", literal(k))).collect(),
        };
        format!("({})", parts.join(","))
    }
}

fn text(v: &str) -> EdmValue {
    EdmValue::String(v.to_owned())
}

fn truncated(v: &str, max: usize) -> EdmValue {
    EdmValue::String(v.chars().take(max).collect())
}

fn scaled(d: Decimal, scale: u32) -> EdmValue {
    let mut d = d.round_dp(scale);
    d.rescale(scale);
    EdmValue::Decimal(d)
}

fn date(y: i32, m: u32, d: u32) -> EdmValue {
    let day = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    EdmValue::DateTime(JsonDate::from_date(day))
}

fn descriptions(md: &MasterData) -> Vec<Row> {
    md.materials
        .values()
        .map(|m| {
            Row::new(
                &PRODUCT_DESCRIPTION,
                &[
                    ("Product", text(&m.id)),
                    ("Language", text("EN")),
                    ("ProductDescription", truncated(&m.description, 40)),
                ],
            )
        })
        .collect()
}

fn products(md: &MasterData) -> Vec<Row> {
    md.materials
        .values()
        .zip(descriptions(md))
        .map(|(m, description)| {
            Row::new(
                &PRODUCT,
                &[
                    ("Product", text(&m.id)),
                    // the best-practice trading goods are SAP product type HAWA
                    ("ProductType", text("HAWA")),
                    ("IsMarkedForDeletion", EdmValue::Boolean(false)),
                    ("GrossWeight", scaled(m.gross_weight, 3)),
                    ("WeightUnit", text(&m.weight_unit)),
                    ("NetWeight", scaled(m.net_weight, 3)),
                    ("ProductGroup", text(&m.material_group)),
                    ("BaseUnit", text(&m.base_unit)),
                ],
            )
            .with("to_Description", vec![description])
        })
        .collect()
}

fn sales_areas_of(md: &MasterData, customer: &str) -> Vec<Row> {
    let c = md.customers.get(customer);
    md.sales_areas
        .iter()
        .map(|a| {
            Row::new(
                &CUSTOMER_SALES_AREA,
                &[
                    ("Customer", text(customer)),
                    ("SalesOrganization", text(&a.sales_organization)),
                    ("DistributionChannel", text(&a.distribution_channel)),
                    ("Division", text(&a.division)),
                    ("Currency", text(&a.currency)),
                    (
                        "CustomerPaymentTerms",
                        text(c.map(|c| c.payment_terms.as_str()).unwrap_or_default()),
                    ),
                    (
                        "IncotermsClassification",
                        text(c.map(|c| c.incoterms.as_str()).unwrap_or_default()),
                    ),
                    ("DeletionIndicator", EdmValue::Boolean(false)),
                    ("OrderIsBlockedForCustomer", text("")),
                    // what the emulator's sales orders default to
                    ("ShippingCondition", text("01")),
                ],
            )
        })
        .collect()
}

fn customers(md: &MasterData) -> Vec<Row> {
    md.customers
        .values()
        .map(|c| {
            Row::new(
                &CUSTOMER,
                &[
                    ("Customer", text(&c.id)),
                    ("CustomerFullName", truncated(&c.name, 220)),
                    ("CustomerName", truncated(&c.name, 80)),
                    ("OrderIsBlockedForCustomer", text("")),
                    ("DeletionIndicator", EdmValue::Boolean(false)),
                ],
            )
            .with("to_CustomerSalesArea", sales_areas_of(md, &c.id))
        })
        .collect()
}

fn all_sales_areas(md: &MasterData) -> Vec<Row> {
    md.customers
        .keys()
        .flat_map(|c| sales_areas_of(md, c))
        .collect()
}

/// One `PPR0` record per material and sales organization / distribution channel of a sales
/// area in the material's currency, numbered 1, 2, ... in material order.
fn condition_records(md: &MasterData) -> Vec<Row> {
    let mut rows = Vec::new();
    for m in md.materials.values() {
        let mut areas: Vec<(&str, &str)> = md
            .sales_areas
            .iter()
            .filter(|a| a.currency == m.currency)
            .map(|a| {
                (
                    a.sales_organization.as_str(),
                    a.distribution_channel.as_str(),
                )
            })
            .collect();
        areas.sort_unstable();
        areas.dedup();
        for (org, channel) in areas {
            let number = text(&format!("{:010}", rows.len() + 1));
            let common = [
                ("ConditionRecord", number),
                ("ConditionValidityEndDate", date(9999, 12, 31)),
                ("ConditionValidityStartDate", date(2020, 1, 1)),
                ("ConditionApplication", text("V")),
                ("ConditionType", text(PRICE_CONDITION_TYPE)),
                ("ConditionReleaseStatus", text("")),
            ];
            let mut validity = common.to_vec();
            validity.extend([
                ("Customer", text("")),
                ("Material", text(&m.id)),
                ("SalesOrganization", text(org)),
                ("DistributionChannel", text(channel)),
            ]);
            let mut record = common.to_vec();
            record.extend([
                ("ConditionSequentialNumber", text("01")),
                // key combination sales organization / distribution channel / material
                ("ConditionTable", text("304")),
                // C: quantity-dependent
                ("ConditionCalculationType", text("C")),
                ("ConditionRateValue", scaled(m.price, 3)),
                ("ConditionRateValueUnit", text(&m.currency)),
                ("ConditionQuantity", EdmValue::Decimal(Decimal::ONE)),
                ("ConditionQuantityUnit", text(&m.base_unit)),
                ("BaseUnit", text(&m.base_unit)),
                ("ConditionIsDeleted", EdmValue::Boolean(false)),
            ]);
            rows.push(Row::new(&CONDITION_RECORD, &record).with(
                "to_SlsPrcgCndnRecdValidity",
                vec![Row::new(&CONDITION_VALIDITY, &validity)],
            ));
        }
    }
    rows
}

/// Every entity of `entity`'s set, in key order (SAP's default order).
fn rows_of(entity: &EntityType, md: &MasterData) -> Vec<Row> {
    let mut rows = match entity.name {
        "A_Product" => products(md),
        "A_ProductDescription" => descriptions(md),
        "A_Customer" => customers(md),
        "A_CustomerSalesArea" => all_sales_areas(md),
        "A_SlsPrcgConditionRecord" => condition_records(md),
        "A_SlsPrcgCndnRecdValidity" => condition_records(md)
            .into_iter()
            .flat_map(|r| r.children("to_SlsPrcgCndnRecdValidity").to_vec())
            .collect(),
        _ => Vec::new(),
    };
    rows.sort_by(|a, b| {
        entity
            .keys
            .iter()
            .map(|k| {
                a.record
                    .get(k)
                    .compare(b.record.get(k))
                    .unwrap_or(Ordering::Equal)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    rows
}

/// An entity as S/4 writes it: `__metadata`, the selected properties, then its navigation
/// properties. At the top (`query` given) a navigation is written when selected: inline
/// `{"results": [...]}` when expanded (with the `nav/Prop` selection), else `__deferred`.
/// Inside an expansion, navigations are deferred unless a selection list was given.
fn node(
    root: &str,
    service: &Service,
    row: &Row,
    selected: Option<&[&str]>,
    query: Option<&QueryOptions>,
) -> Node {
    let uri = format!("{root}/{}{}", row.entity.name, row.key_predicate());
    let metadata = Node::object()
        .with("id", uri.as_str())
        .with("uri", uri.as_str())
        .with("type", service.type_name(row.entity));
    let mut out = Node::object().with("__metadata", metadata);
    for (name, value) in row.record.iter() {
        if selected.is_none_or(|s| s.contains(&name)) {
            out.push(name, value.to_json());
        }
    }
    for nav in row.entity.navigations {
        let value = match query {
            Some(q) if !q.selects_navigation(nav.name) => continue,
            Some(q) if q.expands(nav.name) => {
                let inner = q.selected_in(nav.name);
                inline_results(
                    row.children(nav.name)
                        .iter()
                        .map(|c| node(root, service, c, inner.as_deref(), None))
                        .collect(),
                )
            }
            None if selected.is_some() => continue,
            _ => deferred(&format!("{uri}/{}", nav.name)),
        };
        out.push(nav.name, value);
    }
    out
}

/// Everything below a master data service's root: the service document, `$metadata`, an
/// entity set (or `$count`), one entity by key, or an entity's to-many navigation (or its
/// `$count`). Only `GET` (and `HEAD`, answered before) is allowed.
pub(crate) async fn serve(
    ctx: &RequestContext<'_>,
    service: &'static Service,
) -> Result<Response, SapError> {
    let below_root = ctx.raw_path.strip_prefix(ctx.root).unwrap_or_default();
    let segments = parse_resource_path(below_root)?;
    let query = QueryOptions::parse(ctx.raw_query)?;
    negotiate_json(ctx.headers, &query, &segments)?;
    let method = ctx.method.as_str();
    let Some((set, mut rest)) = segments.split_first() else {
        only(method, &["GET"])?;
        let sets = service.sets.iter().map(|e| e.name.into()).collect();
        return Ok(json(
            StatusCode::OK,
            &single(Node::object().with("EntitySets", Node::Array(sets))),
        ));
    };
    if set.name == "$metadata" && set.key.is_none() && rest.is_empty() {
        only(method, &["GET"])?;
        let mut r = (StatusCode::OK, edmx(service)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        return Ok(r);
    }
    let mut entity = service
        .entity(&set.name)
        .ok_or_else(|| SapError::resource_not_found(&set.name))?;
    only(method, &["GET"])?;
    let target_of = |name: &str| service.entity(name);
    let mut rows = rows_of(entity, &ctx.app.master);
    if let Some(key) = &set.key {
        let key = resolve_key(entity, key)?;
        let row = rows
            .into_iter()
            .find(|r| r.key_strings() == key)
            .ok_or_else(|| SapError::resource_not_found(&set.name))?;
        let Some((nav, tail)) = rest.split_first() else {
            query.check(entity, &target_of)?;
            let root = ctx.service_root();
            return Ok(json(
                StatusCode::OK,
                &single(node(
                    &root,
                    service,
                    &row,
                    query.selected_properties().as_deref(),
                    Some(&query),
                )),
            ));
        };
        let navigation = entity
            .navigation(&nav.name)
            .filter(|_| nav.key.is_none())
            .ok_or_else(|| SapError::resource_not_found(&nav.name))?;
        entity =
            target_of(navigation.target).ok_or_else(|| SapError::resource_not_found(&nav.name))?;
        rows = row.children(navigation.name).to_vec();
        rest = tail;
    }
    match rest {
        [] => list(
            ctx,
            &query,
            (entity, &target_of),
            rows,
            |r| &r.record,
            |root, r| {
                node(
                    root,
                    service,
                    r,
                    query.selected_properties().as_deref(),
                    Some(&query),
                )
            },
        ),
        [c] if is_count(c) => {
            query.check(entity, &target_of)?;
            Ok(count(matching(&query, rows, |r| &r.record).len()))
        }
        [other, ..] => Err(SapError::resource_not_found(&other.name)),
    }
}

/// The `$metadata` document of `service`: its entity types with the served properties, the
/// associations of the served navigations, and the entity sets, marked not creatable,
/// updatable or deletable (the emulator serves them read-only; S/4 allows some writes).
pub fn edmx(service: &Service) -> String {
    let ns = service.name;
    let mut x = String::with_capacity(8 * 1024);
    x.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    x.push_str(r#"<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" xmlns:sap="http://www.sap.com/Protocols/SAPData">"#);
    x.push_str(r#"<edmx:DataServices m:DataServiceVersion="2.0">"#);
    let _ = write!(
        x,
        r#"<Schema Namespace="{ns}" xml:lang="en" sap:schema-version="1" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">"#
    );
    let assoc = |e: &EntityType, n: &Navigation| format!("assoc_{}_{}", e.name, n.name);
    for e in service.sets {
        let _ = write!(
            x,
            r#"<EntityType Name="{}Type" sap:content-version="1"><Key>"#,
            e.name
        );
        for k in e.keys {
            let _ = write!(x, r#"<PropertyRef Name="{k}"/>"#);
        }
        x.push_str("</Key>");
        for p in e.properties {
            let _ = write!(
                x,
                r#"<Property Name="{}" Type="{}" Nullable="{}""#,
                p.name,
                p.edm.name(),
                !p.key
            );
            match p.edm {
                EdmType::String { max_length } => {
                    let _ = write!(x, r#" MaxLength="{max_length}""#);
                }
                EdmType::Decimal { precision, scale } => {
                    let _ = write!(x, r#" Precision="{precision}" Scale="{scale}""#);
                }
                EdmType::DateTime => x.push_str(r#" Precision="0" sap:display-format="Date""#),
                EdmType::DateTimeOffset => x.push_str(r#" Precision="7""#),
                EdmType::Time => x.push_str(r#" Precision="0""#),
                EdmType::Boolean | EdmType::Guid => {}
            }
            if !p.creatable {
                x.push_str(r#" sap:creatable="false""#);
            }
            if !p.updatable {
                x.push_str(r#" sap:updatable="false""#);
            }
            x.push_str("/>");
        }
        for n in e.navigations {
            let a = assoc(e, n);
            let _ = write!(
                x,
                r#"<NavigationProperty Name="{}" Relationship="{ns}.{a}" FromRole="FromRole_{a}" ToRole="ToRole_{a}"/>"#,
                n.name
            );
        }
        x.push_str("</EntityType>");
    }
    for e in service.sets {
        for n in e.navigations {
            let a = assoc(e, n);
            let many = if n.to_many { "*" } else { "0..1" };
            let _ = write!(
                x,
                r#"<Association Name="{a}" sap:content-version="1"><End Type="{ns}.{}Type" Multiplicity="1" Role="FromRole_{a}"/><End Type="{ns}.{}Type" Multiplicity="{many}" Role="ToRole_{a}"/></Association>"#,
                e.name, n.target
            );
        }
    }
    let _ = write!(
        x,
        r#"<EntityContainer Name="{ns}_Entities" m:IsDefaultEntityContainer="true" sap:supported-formats="atom json xlsx">"#
    );
    for e in service.sets {
        let _ = write!(
            x,
            r#"<EntitySet Name="{0}" EntityType="{ns}.{0}Type" sap:creatable="false" sap:updatable="false" sap:deletable="false" sap:content-version="1"/>"#,
            e.name
        );
    }
    for e in service.sets {
        for n in e.navigations {
            let a = assoc(e, n);
            let _ = write!(
                x,
                r#"<AssociationSet Name="{a}" Association="{ns}.{a}" sap:creatable="false" sap:updatable="false" sap:deletable="false" sap:content-version="1"><End EntitySet="{}" Role="FromRole_{a}"/><End EntitySet="{}" Role="ToRole_{a}"/></AssociationSet>"#,
                e.name, n.target
            );
        }
    }
    x.push_str("</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_and_navigation_target_is_declared_in_its_service() {
        for s in &SERVICES {
            for e in s.sets {
                for k in e.keys {
                    assert!(e.property(k).is_some_and(|p| p.key), "{}.{k}", e.name);
                }
                assert_eq!(e.properties.iter().filter(|p| p.key).count(), e.keys.len());
                for n in e.navigations {
                    assert!(s.entity(n.target).is_some(), "{}", n.target);
                }
            }
        }
    }

    #[test]
    fn the_demo_data_gives_one_ppr0_record_per_material_with_a_date_keyed_validity() {
        let md = MasterData::demo();
        let records = rows_of(&CONDITION_RECORD, &md);
        assert_eq!(records.len(), md.materials.len());
        let v = &records[1].children("to_SlsPrcgCndnRecdValidity")[0];
        assert_eq!(v.record.get_str("Material"), "TG11");
        assert_eq!(
            v.key_predicate(),
            "(ConditionRecord='0000000002',ConditionValidityEndDate=datetime'9999-12-31T00%3A00%3A00')"
        );
        assert_eq!(
            v.record.get("ConditionValidityEndDate").to_json(),
            "/Date(253402214400000)/"
        );
        assert_eq!(
            records[1].record.get("ConditionRateValue").to_json(),
            "12.500"
        );
    }

    #[test]
    fn every_customer_is_in_every_sales_area() {
        let md = MasterData::demo();
        assert_eq!(
            rows_of(&CUSTOMER_SALES_AREA, &md).len(),
            md.customers.len() * md.sales_areas.len()
        );
    }
}
