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
//! - [`metadata`]: the `$metadata` EDMX document for the two entity types, and the service
//!   document (JSON and AtomPub) listing the same entity sets.
//! - [`session`]: SAP's logon and CSRF conventions (fetch, `Required`, session cookies, basic
//!   logon, `sap-client`), for every server side of ours: the emulator and the proxy's SAP face.
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
pub mod session;
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

/// The host the client called (`Host`), as service roots in `__metadata` and links name it:
/// a plain authority (letters, digits, `-.:[]_`, at most 255 bytes), else `localhost`, so no
/// header value a client makes up is written into an answer.
pub fn request_host(headers: &http::HeaderMap) -> &str {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
        })
        .unwrap_or("localhost")
}

/// True when the client asked for XML (Atom) rather than JSON: `$format=xml`/`atom`, or an
/// `Accept` naming `application/atom+xml` or `application/xml` and not `application/json`.
/// A missing `Accept` or `*/*` gets JSON (the emulator's documented leniency: S/4 answers Atom
/// then). One decision for the emulator and the proxy's SAP face.
pub fn wants_xml(headers: &http::HeaderMap, raw_query: &str) -> bool {
    for pair in raw_query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "$format" || k == "%24format" {
            return matches!(v.to_ascii_lowercase().as_str(), "xml" | "atom");
        }
    }
    let mut xml = false;
    for v in headers.get_all(http::header::ACCEPT) {
        for m in v.to_str().unwrap_or_default().split(',') {
            let m = m.split(';').next().unwrap_or_default().trim();
            if m.eq_ignore_ascii_case("application/json") {
                return false;
            }
            xml |= m.eq_ignore_ascii_case("application/atom+xml")
                || m.eq_ignore_ascii_case("application/xml");
        }
    }
    xml
}

/// The session SAP hands out on a CSRF fetch (`x-csrf-token: Fetch`): the token, and the
/// cookies it is bound to as a `Cookie` header value (`name=value; name=value`). One reading
/// for every client of ours (the proxy, sap-sync, the benchmark).
pub fn csrf_session(headers: &http::HeaderMap) -> (Option<String>, String) {
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cookies = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    (token, cookies)
}

#[cfg(test)]
mod csrf_tests {
    #[test]
    fn a_made_up_host_is_never_written_into_a_service_root() {
        let mut h = http::HeaderMap::new();
        assert_eq!(super::request_host(&h), "localhost");
        h.insert(http::header::HOST, "shop.example:8080".parse().unwrap());
        assert_eq!(super::request_host(&h), "shop.example:8080");
        h.insert(http::header::HOST, "evil/\"><x".parse().unwrap());
        assert_eq!(super::request_host(&h), "localhost");
    }

    #[test]
    fn the_token_and_the_cookies_without_their_attributes() {
        let mut h = http::HeaderMap::new();
        h.insert("x-csrf-token", "tok".parse().unwrap());
        h.append(
            http::header::SET_COOKIE,
            "SAP_SESSIONID_MCK_100=abc; path=/; HttpOnly"
                .parse()
                .unwrap(),
        );
        h.append(
            http::header::SET_COOKIE,
            "sap-usercontext=sap-client=100; path=/".parse().unwrap(),
        );
        assert_eq!(
            super::csrf_session(&h),
            (
                Some("tok".to_owned()),
                "SAP_SESSIONID_MCK_100=abc; sap-usercontext=sap-client=100".to_owned()
            )
        );
        assert_eq!(
            super::csrf_session(&http::HeaderMap::new()),
            (None, String::new())
        );
    }
}
