//! The SAP wire contract of `API_SALES_ORDER_SRV` (OData V2), as SAP's own clients speak it.
//!
//! This crate owns *what travels on the wire* between an OData V2 client and SAP S/4HANA's
//! sales order API, and nothing else: no I/O, no HTTP framework, no order logic. The SAP
//! emulator (`sap-mock`) serves it and the proxy parses and builds it, so both sides agree on
//! one definition. `../shared/reference/sap-sales-order-api.md` lists the facts encoded here.
//!
//! How a request flows through the modules:
//!
//! - [`uri`]: percent-decoding, splitting a resource path into segments and parsing key
//!   predicates, named (`A_SalesOrder(SalesOrder='1')`) or positional (`('1')`).
//! - [`query`]: the system query options (`$select`, `$expand`, `$filter`, `$orderby`, `$top`,
//!   `$skip`, `$skiptoken`, `$inlinecount`, `$format`) parsed from a raw query string.
//! - [`filter`]: the `$filter` language (comparison and logical operators, parentheses,
//!   `substringof`, `startswith`, `endswith`, `tolower`, `toupper`, and the literal forms SAP's
//!   clients send: `'..'`, `10.5M`, `datetime'..'`, `datetimeoffset'..'`, `guid'..'`), type-checked
//!   against the [`schema`] and evaluated against typed values. Hostile input never panics.
//! - [`schema`]: the `A_SalesOrder` / `A_SalesOrderItem` property tables (names, EDM types,
//!   max lengths, keys, navigation), generated from SAP's service definition.
//! - [`value`]: typed EDM values and their JSON encodings (`/Date(ms)/`, `/Date(ms+0000)/`,
//!   decimals as strings), built from JSON *through validation* against a property.
//! - [`date`]: the `/Date(..)/` encoding and the `datetime'..'` literal.
//! - [`payload`]: request bodies, e.g. a deep-insert create (`to_Item` as a bare array or as
//!   `{"results":[..]}`), validated property by property into typed maps.
//! - [`envelope`]: response building blocks: `d`, `results`, `__metadata`, `__deferred`,
//!   `__count`, `__next`, entity URIs and ETags, and [`envelope::full_entity`], which shapes
//!   data that did not come from SAP (a [`payload::PropertyMap`]) exactly like an S/4 answer.
//! - [`error`]: the OData error JSON body (`{"error":{"code":..,"message":{..}}}`).
//! - [`metadata`]: the `$metadata` EDMX document for the two entity types.
//! - [`batch`]: the `$batch` wire format: the `multipart/mixed` body of retrieves and
//!   changesets parsed into requests, and the multipart answer rendered from responses.
//!
//! # Example: what a proxy does with a create and a list request
//!
//! ```
//! use sap_odata::{EdmValue, SALES_ORDER, payload, query::QueryOptions, schema};
//!
//! // the exact body SAP's JavaScript client sends for a deep insert
//! let body = br#"{"SalesOrderType":"OR","SoldToParty":"17100001","CustomerPurchaseOrderDate":"/Date(1795478400000+0000)/","to_Item":[{"Material":"TG11","RequestedQuantity":"2","RequestedQuantityUnit":"PC"}]}"#;
//! let order = payload::parse_sales_order_create(body).unwrap();
//! assert_eq!(order.header.get_str("SoldToParty"), Some("17100001"));
//! assert_eq!(order.items[0].get("RequestedQuantity").and_then(EdmValue::as_decimal), Some(2.into()));
//!
//! // a list request as it arrives on the wire
//! let q = QueryOptions::parse("$select=SalesOrder,to_Item/Material&$expand=to_Item&$filter=(PurchaseOrderByCustomer%20eq%20'PO-1')&$top=5").unwrap();
//! q.check(&SALES_ORDER, &schema::entity_type).unwrap();
//! let matches = q.filter.as_ref().unwrap().evaluate(&|name| match name {
//!     "PurchaseOrderByCustomer" => EdmValue::String("PO-1".into()),
//!     _ => EdmValue::Null,
//! });
//! assert!(matches);
//! ```

pub mod batch;
pub mod date;
pub mod envelope;
pub mod error;
pub mod filter;
pub mod metadata;
pub mod payload;
pub mod query;
pub mod schema;
pub mod uri;
pub mod value;

pub use error::ODataError;
pub use filter::{Expr, FilterError};
pub use query::{QueryError, QueryOptions};
pub use schema::{EdmType, EntityType, Property, SALES_ORDER, SALES_ORDER_ITEM};
pub use value::EdmValue;

/// Name of the OData service, as it appears in the service root and in type names.
pub const SERVICE_NAME: &str = "API_SALES_ORDER_SRV";

/// Path of the service root below the host, as SAP's generated clients hard-code it.
pub const SERVICE_ROOT_PATH: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

/// SAP's standard reasons for rejection (`SalesDocumentRjcnReason`, table TVAG as SAP
/// delivers it; sources in docs/sap-mock.md): the emulator's default configuration and what
/// the proxy's SAP face checks a rejection against in `events`.
pub const STANDARD_REJECTION_REASONS: &[&str] =
    &["00", "01", "02", "03", "04", "05", "10", "11", "20", "50"];
