//! The read side of the SAP face served by the order service (`events`, `retired`; the writes
//! are in [`crate::face::write`]): every read of `A_SalesOrder` / `A_SalesOrderItem` SAP's
//! clients send, pushed down to the order service's search (`POST /api/v1/orders/search`,
//! on PostgreSQL with indexes) and answered as S/4 answers it.
//!
//! The request is read with the emulator's own parsers (`sap_odata::uri` for the path and key
//! predicates in both forms, `sap_odata::query` for the options, `sap_odata::filter` for
//! `$filter`, checked against `sap_odata`'s schema), so a request S/4 refuses is refused here
//! with the same SAP message id and text, naming SAP's property (never a REST field). Answers
//! are built from `sap_odata::envelope` (`d`, `results`, `__count`, `__next`, `__metadata`,
//! `__deferred`) with the server paging of [`sap_odata::query::Window`], shared with the
//! emulator; entity values come from `order_acl`.
//!
//! | SAP read | order service |
//! |---|---|
//! | `A_SalesOrder?$filter=..&$orderby=..&$top&$skip&$skiptoken&$inlinecount` | search: the filter tree, sort keys (+ `SalesOrder` as SAP's key order), a window one longer than the page (to know whether to write `__next`), `count` |
//! | `A_SalesOrder/$count` | search with `top: 0, count: true` |
//! | `A_SalesOrder('1')`, `A_SalesOrder(SalesOrder='1')` | search `sales_order_number eq '1'` |
//! | `A_SalesOrder('1')/to_Item[/$count]`, `A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10')` | the order, lines filtered, sorted and paged here with `sap_odata`'s evaluator (an order's lines are few) |
//! | `A_SalesOrderItem?$filter=SalesOrder eq '1' and ...` | search by the `SalesOrder` conditions, then the lines as above |
//!
//! `$filter` maps SAP's header properties to the search's fields ([`header_field`]). A value
//! the order service keeps as `null` is rendered by `order_acl` as S/4's empty value (`""`,
//! `0.00`); the translation keeps that meaning (`PurchaseOrderByCustomer eq ''` also matches
//! an order without reference). Voided orders (SAP refused them) are never shown. What cannot
//! be pushed down (a property kept only in `specifications`, a comparison of two properties)
//! is [`Read::Untranslatable`]: `events` passes such a read to SAP, `retired` answers SAP's
//! "not implemented" error naming the property.

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::error::odata_error;
use crate::routing::sales_orders::SalesOrders;
use crate::serve::body::{ProxyBody, full};
use crate::upstreams::order_client::OrderServiceError;
use sap_odata::envelope::{
    Node, collection, deferred, entity_metadata, entity_uri, inline_results, single,
};
use sap_odata::filter::{CompareOp, Expr, Function, LogicalOp};
use sap_odata::query::{QueryOptions, SortDirection, Window};
use sap_odata::uri::{Segment, parse_resource_path, resolve_key};
use sap_odata::{EdmValue, EntityType, SALES_ORDER, SALES_ORDER_ITEM, schema};

/// Most orders an `A_SalesOrderItem` list reads to filter their lines here.
const MAX_ITEM_SCAN_ORDERS: usize = 1000;

/// SAP Gateway's message id for a feature the service does not implement.
const NOT_IMPLEMENTED: &str = "/IWBEP/CM_MGW_RT/004";

/// What the read side made of a request.
pub enum Read {
    /// The answer (data or SAP's error), boxed: the common case travels as a pointer.
    Served(Box<Response<ProxyBody>>),
    /// The order service cannot answer this read (the reason, in SAP's terms).
    Untranslatable(String),
}

/// A REST search field as the filter needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Decimal,
    Date,
    Timestamp,
}

/// An `A_SalesOrder` property the order service can filter and sort on.
#[derive(Debug, Clone)]
struct Mapped {
    /// The search field.
    rest: &'static str,
    kind: Kind,
    /// How `order_acl` renders a `NULL` of the field (`None`: the field is never `NULL`).
    null_as: Option<EdmValue>,
}

/// The search field behind an `A_SalesOrder` property (as `order_acl` renders the order).
fn header_field(property: &str) -> Option<Mapped> {
    let empty = || Some(EdmValue::String(String::new()));
    let (rest, kind, null_as) = match property {
        "SalesOrder" => ("sales_order_number", Kind::Text, None),
        "SoldToParty" => ("customer_id", Kind::Text, None),
        "PurchaseOrderByCustomer" => ("customer_reference", Kind::Text, empty()),
        "SalesOrderType" => ("order_type", Kind::Text, empty()),
        "SalesOrganization" => ("sales_organization", Kind::Text, empty()),
        "DistributionChannel" => ("distribution_channel", Kind::Text, empty()),
        "OrganizationDivision" => ("division", Kind::Text, empty()),
        "TransactionCurrency" => ("currency", Kind::Text, None),
        "TotalNetAmount" => (
            "total_net_amount",
            Kind::Decimal,
            Some(EdmValue::Decimal(0.into())),
        ),
        "CreationDate" => ("created_date", Kind::Date, None),
        "LastChangeDateTime" => ("updated_at", Kind::Timestamp, None),
        "RequestedDeliveryDate" => ("requested_delivery_date", Kind::Date, Some(EdmValue::Null)),
        "OverallSDProcessStatus" => ("process_status", Kind::Text, None),
        "OverallSDDocumentRejectionSts" => ("rejection_status", Kind::Text, None),
        "OverallDeliveryStatus" | "OverallTotalDeliveryStatus" => {
            ("delivery_status", Kind::Text, None)
        }
        "OverallOrdReltdBillgStatus" => ("billing_status", Kind::Text, None),
        _ => return None,
    };
    Some(Mapped {
        rest,
        kind,
        null_as,
    })
}

fn cmp(field: &str, op: &str, value: Value) -> Value {
    json!({"field": field, "op": op, "value": value})
}

/// A condition that never holds / always holds (an order number is never `NULL`).
fn never() -> Value {
    cmp("order_number", "eq", Value::Null)
}
fn always() -> Value {
    cmp("order_number", "ne", Value::Null)
}

fn op_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
    }
}

/// `a op b` read as `b op' a`.
fn flipped(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Ge => CompareOp::Le,
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Le => CompareOp::Ge,
        other => other,
    }
}

/// Whether the literal comparison holds, with `sap_odata`'s own semantics (the emulator's).
fn holds(e: Expr) -> bool {
    e.evaluate(&|_| EdmValue::Null)
}

/// `$filter` of `A_SalesOrder` as the search's filter tree.
fn translate(e: &Expr) -> Result<Value, String> {
    match e {
        Expr::Logical(op, _, _) => {
            let mut members = Vec::new();
            flatten(e, *op, &mut members);
            let members: Result<Vec<Value>, String> = members.into_iter().map(translate).collect();
            let name = if *op == LogicalOp::And { "and" } else { "or" };
            Ok(json!({ name: members? }))
        }
        Expr::Not(inner) => Ok(json!({"not": translate(inner)?})),
        Expr::Literal(EdmValue::Boolean(b)) => Ok(if *b { always() } else { never() }),
        Expr::Compare(op, l, r) => match (l.as_ref(), r.as_ref()) {
            (Expr::Property(p), Expr::Literal(v)) => compare(p, *op, v),
            (Expr::Literal(v), Expr::Property(p)) => compare(p, flipped(*op), v),
            // `startswith(P,'x') eq true`: how SAP's Cloud SDK sends a boolean function. Its
            // `filterFunctions().startsWith(..).equals(true)` is always written as
            // `<function> <operator> <value>` (`@sap-cloud-sdk/odata-common`,
            // `uri-conversion/get-filter.js`, `getODataFilterExpressionForFilter`). The
            // search's logic is two-valued, so `not` is the exact complement.
            (Expr::Call(f, args), Expr::Literal(EdmValue::Boolean(b)))
            | (Expr::Literal(EdmValue::Boolean(b)), Expr::Call(f, args))
                if matches!(op, CompareOp::Eq | CompareOp::Ne) =>
            {
                let call = text_function(*f, args)?;
                Ok(if (*op == CompareOp::Eq) == *b {
                    call
                } else {
                    json!({ "not": call })
                })
            }
            _ => Err("comparisons other than property with literal".into()),
        },
        Expr::Call(f, args) => text_function(*f, args),
        _ => Err("this $filter expression".into()),
    }
}

fn flatten<'a>(e: &'a Expr, op: LogicalOp, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::Logical(o, l, r) if *o == op => {
            flatten(l, op, out);
            flatten(r, op, out);
        }
        other => out.push(other),
    }
}

/// `substringof('x', P)`, `startswith(P, 'x')`, `endswith(P, 'x')`.
fn text_function(f: Function, args: &[Expr]) -> Result<Value, String> {
    let (property, needle, op) = match (f, args) {
        (Function::SubstringOf, [Expr::Literal(n), Expr::Property(p)]) => (p, n, "contains"),
        (Function::StartsWith, [Expr::Property(p), Expr::Literal(n)]) => (p, n, "startswith"),
        (Function::EndsWith, [Expr::Property(p), Expr::Literal(n)]) => (p, n, "endswith"),
        _ => return Err(format!("{f:?} with these arguments")),
    };
    let m = header_field(property).ok_or_else(|| format!("property {property}"))?;
    let EdmValue::String(s) = needle else {
        // null: the function never holds (sap_odata's evaluation)
        return Ok(never());
    };
    if m.kind != Kind::Text || s.chars().count() > 256 {
        return Err(format!("{f:?} on property {property}"));
    }
    let base = cmp(m.rest, op, json!(s));
    let null_matches = m.null_as.clone().is_some_and(|d| {
        let lit = Expr::Literal(needle.clone());
        let d = Expr::Literal(d);
        holds(Expr::Call(
            f,
            if f == Function::SubstringOf {
                vec![lit, d]
            } else {
                vec![d, lit]
            },
        ))
    });
    Ok(if null_matches {
        json!({"or": [base, cmp(m.rest, "eq", Value::Null)]})
    } else {
        base
    })
}

/// One comparison of a property with a literal. The search's two-valued logic treats `NULL`
/// as distinct from every value; the rows whose field is `NULL` are added (or kept out) as
/// their rendered value ([`Mapped::null_as`]) compares in SAP.
fn compare(property: &str, op: CompareOp, lit: &EdmValue) -> Result<Value, String> {
    let m = header_field(property).ok_or_else(|| format!("property {property}"))?;
    let on_value = if matches!(lit, EdmValue::Null) {
        // A value is never equal to null, and always unequal.
        if op == CompareOp::Ne {
            cmp(m.rest, "ne", Value::Null)
        } else {
            never()
        }
    } else {
        let (op, value) = match rest_value(&m, op, lit)? {
            Literal::Value(op, v) => (op, v),
            Literal::Constant(b) => {
                let c = if b { always() } else { never() };
                return Ok(with_nulls(&m, op, lit, c));
            }
        };
        let base = cmp(m.rest, op_name(op), value);
        if m.null_as.is_some() && op == CompareOp::Ne {
            json!({"and": [cmp(m.rest, "ne", Value::Null), base]})
        } else {
            base
        }
    };
    Ok(with_nulls(&m, op, lit, on_value))
}

/// `on_value` (the rows with a value), or those and the `NULL` rows when their rendered value
/// satisfies the comparison.
fn with_nulls(m: &Mapped, op: CompareOp, lit: &EdmValue, on_value: Value) -> Value {
    let Some(rendered) = m.null_as.clone() else {
        return on_value;
    };
    let null_holds = holds(Expr::Compare(
        op,
        Box::new(Expr::Literal(rendered)),
        Box::new(Expr::Literal(lit.clone())),
    ));
    if null_holds {
        json!({"or": [on_value, cmp(m.rest, "eq", Value::Null)]})
    } else {
        on_value
    }
}

enum Literal {
    /// Compare with this value (operator possibly adjusted).
    Value(CompareOp, Value),
    /// The comparison holds for every value / for none.
    Constant(bool),
}

/// The search's value for a literal compared with field `m`.
fn rest_value(m: &Mapped, op: CompareOp, lit: &EdmValue) -> Result<Literal, String> {
    let wrong = || format!("a {} literal for {}", type_name(lit), m.rest);
    match m.kind {
        Kind::Text => match lit {
            EdmValue::String(s) | EdmValue::Guid(s) if s.chars().count() <= 256 => {
                Ok(Literal::Value(op, json!(s)))
            }
            _ => Err(wrong()),
        },
        Kind::Decimal => {
            let d = lit.as_decimal().ok_or_else(wrong)?.normalize();
            let text = d.to_string();
            let digits = text.trim_start_matches('-');
            let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
            if whole.len() > 18 || frac.len() > 6 {
                return Err(wrong());
            }
            Ok(Literal::Value(op, json!(text)))
        }
        Kind::Date => {
            let at = literal_time(lit).ok_or_else(wrong)?;
            let day = at.date_naive();
            let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() == at;
            let text = json!(day.format("%Y-%m-%d").to_string());
            if midnight {
                return Ok(Literal::Value(op, text));
            }
            // A date (midnight) against a moment inside `day`.
            Ok(match op {
                CompareOp::Eq => Literal::Constant(false),
                CompareOp::Ne => Literal::Constant(true),
                CompareOp::Gt | CompareOp::Ge => Literal::Value(CompareOp::Gt, text),
                CompareOp::Lt | CompareOp::Le => Literal::Value(CompareOp::Le, text),
            })
        }
        Kind::Timestamp => {
            let at = literal_time(lit).ok_or_else(wrong)?;
            // SAP compares at millisecond precision (the JSON date's).
            let ms = chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
            let text = |t: chrono::DateTime<chrono::Utc>| {
                json!(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            };
            let next = ms + chrono::Duration::milliseconds(1);
            Ok(match op {
                CompareOp::Ge | CompareOp::Lt => Literal::Value(op, text(ms)),
                CompareOp::Gt => Literal::Value(CompareOp::Ge, text(next)),
                CompareOp::Le => Literal::Value(CompareOp::Lt, text(next)),
                CompareOp::Eq | CompareOp::Ne => {
                    // [ms, ms + 1) as one value is not expressible: the caller's form
                    // becomes a range below.
                    return Ok(Literal::Value(op, json!({"range": [text(ms), text(next)]})));
                }
            })
        }
    }
}

fn literal_time(lit: &EdmValue) -> Option<chrono::DateTime<chrono::Utc>> {
    match lit {
        EdmValue::DateTime(d) | EdmValue::DateTimeOffset(d) => d.to_utc(),
        _ => None,
    }
}

fn type_name(v: &EdmValue) -> &'static str {
    match v {
        EdmValue::Null => "null",
        EdmValue::String(_) => "string",
        EdmValue::Decimal(_) | EdmValue::Int(_) => "number",
        EdmValue::Boolean(_) => "boolean",
        EdmValue::DateTime(_) | EdmValue::DateTimeOffset(_) => "date",
        EdmValue::Guid(_) => "guid",
        EdmValue::Time(_) => "time",
    }
}

/// Rewrites the `{"range": [from, to]}` values of timestamp equality into ranges.
fn expand_ranges(v: Value) -> Value {
    match v {
        Value::Object(mut o) => {
            if let (Some(Value::String(field)), Some(Value::String(op)), Some(Value::Object(r))) =
                (o.get("field"), o.get("op"), o.get("value"))
                && let Some(Value::Array(bounds)) = r.get("range")
                && let [from, to] = bounds.as_slice()
            {
                let inside =
                    json!({"and": [cmp(field, "ge", from.clone()), cmp(field, "lt", to.clone())]});
                return if op == "ne" {
                    json!({ "not": inside })
                } else {
                    inside
                };
            }
            for (_, child) in o.iter_mut() {
                *child = expand_ranges(child.take());
            }
            Value::Object(o)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(expand_ranges).collect()),
        other => other,
    }
}

/// The search's filter for `$filter` of `A_SalesOrder`, voided orders left out.
fn order_filter(filter: Option<&Expr>) -> Result<Value, String> {
    let not_voided = cmp("status", "ne", json!("voided"));
    Ok(match filter {
        None => not_voided,
        Some(f) => json!({"and": [not_voided, expand_ranges(translate(f)?)]}),
    })
}

/// The search's sort keys for `$orderby`, SAP's key order last.
fn order_keys(query: &QueryOptions) -> Result<Vec<Value>, String> {
    let mut keys = Vec::new();
    for o in &query.orderby {
        let m = header_field(&o.property).ok_or_else(|| format!("property {}", o.property))?;
        let direction = match o.direction {
            SortDirection::Ascending => "asc",
            SortDirection::Descending => "desc",
        };
        keys.push(json!({"field": m.rest, "direction": direction}));
    }
    keys.push(json!({"field": "sales_order_number", "direction": "asc"}));
    keys.truncate(8);
    Ok(keys)
}

/// A refusal in SAP's shape.
fn refused(status: StatusCode, code: &str, message: &str) -> Read {
    Read::Served(Box::new(odata_error(status, code, message)))
}

fn query_refused(e: sap_odata::QueryError) -> Read {
    refused(StatusCode::BAD_REQUEST, e.sap_code(), &e.to_string())
}

fn not_found(number: &str) -> Read {
    refused(
        StatusCode::NOT_FOUND,
        "V1/302",
        &format!("SD document {number} is not in the database or has been archived"),
    )
}

fn segment_not_found(segment: &str) -> Read {
    refused(
        StatusCode::NOT_FOUND,
        "/IWFND/CM_MGW/025",
        &format!("Resource not found for segment '{segment}'"),
    )
}

fn order_service_failed(e: OrderServiceError) -> Read {
    Read::Served(Box::new(
        crate::routing::sales_orders::order_service_failed(e),
    ))
}

fn json_answer(node: &Node, etag: Option<String>) -> Read {
    let mut r = Response::new(full(node.to_json_string()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert("dataserviceversion", HeaderValue::from_static("2.0"));
    if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        h.insert(header::ETAG, v);
    }
    Read::Served(Box::new(r))
}

fn count_answer(n: u64) -> Read {
    let mut r = Response::new(full(n.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Read::Served(Box::new(r))
}

/// A property's value as S/4 writes it: `order_acl`'s value read through the schema (so dates
/// and decimals take the emulator's canonical form), or S/4's empty value when unset.
fn wire_value(p: &'static sap_odata::Property, v: Option<&Value>) -> Value {
    match v {
        Some(v) => EdmValue::from_json(p, v).map_or_else(|_| v.clone(), |e| e.to_json()),
        None => EdmValue::unset(p.edm).to_json(),
    }
}

fn lookup<'a>(
    entity: &'static EntityType,
    values: &'a Value,
) -> impl Fn(&str) -> EdmValue + use<'a> {
    move |name| {
        entity
            .property(name)
            .map(|p| {
                let v = values.get(name);
                match v {
                    Some(v) => EdmValue::from_json(p, v).unwrap_or(EdmValue::Null),
                    None => EdmValue::unset(p.edm),
                }
            })
            .unwrap_or(EdmValue::Null)
    }
}

/// A rendered order: its number, its `order_acl` entity (the object inside `d`) and its ETag.
struct OrderView {
    number: String,
    entity: Value,
    etag: Option<String>,
}

impl OrderView {
    fn of(order: &Value, root: &str) -> Self {
        let mut entity = order_acl::order_to_entity(order, root)["d"].take();
        let number = entity["SalesOrder"].as_str().unwrap_or_default().to_owned();
        if let Some(at) = order.get("updated_at").and_then(Value::as_str)
            && let Ok(t) = chrono::DateTime::parse_from_rfc3339(at)
        {
            entity["LastChangeDateTime"] = json!(format!("/Date({}+0000)/", t.timestamp_millis()));
        }
        Self {
            number,
            entity,
            etag: order_acl::order_etag(order),
        }
    }

    fn items(&self) -> Vec<Value> {
        self.entity["to_Item"]["results"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Whether an `A_SalesOrder` answer needs the orders' lines: `to_Item` expanded, or a header
/// status S/4 derives from the lines selected (every property is, without `$select`). A
/// shop's list selects a few header fields: its orders' lines are then not read at all.
fn needs_lines(query: &QueryOptions) -> bool {
    query.expands("to_Item")
        || query.selected_properties().is_none_or(|selected| {
            order_acl::LINE_DERIVED_PROPERTIES
                .iter()
                .any(|p| selected.contains(p))
        })
}

/// The properties of `entity` that `selected` names (all when `None`), in schema order.
fn push_properties(
    node: &mut Node,
    entity: &'static EntityType,
    values: &Value,
    selected: Option<&[&str]>,
) {
    for p in entity.properties {
        if selected.is_none_or(|s| s.contains(&p.name)) {
            node.push(p.name, wire_value(p, values.get(p.name)));
        }
    }
}

fn order_node(root: &str, view: &OrderView, query: &QueryOptions) -> Node {
    let uri = entity_uri(root, &SALES_ORDER, &[&view.number]);
    let mut node = Node::object().with(
        "__metadata",
        entity_metadata(&uri, &SALES_ORDER, view.etag.as_deref()),
    );
    push_properties(
        &mut node,
        &SALES_ORDER,
        &view.entity,
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
                view.items()
                    .iter()
                    .map(|i| inline_item_node(root, i, selected.as_deref()))
                    .collect(),
            )
        } else if nav.to_many {
            inline_results(Vec::new())
        } else {
            Node::Value(Value::Null)
        };
        node.push(nav.name, value);
    }
    node
}

fn item_uri(root: &str, item: &Value) -> String {
    let s = |k: &str| item[k].as_str().unwrap_or_default().to_owned();
    entity_uri(
        root,
        &SALES_ORDER_ITEM,
        &[&s("SalesOrder"), &s("SalesOrderItem")],
    )
}

/// A line inside an expanded `to_Item`: its navigations deferred unless a selection is given.
fn inline_item_node(root: &str, item: &Value, selected: Option<&[&str]>) -> Node {
    let uri = item_uri(root, item);
    let mut node =
        Node::object().with("__metadata", entity_metadata(&uri, &SALES_ORDER_ITEM, None));
    push_properties(&mut node, &SALES_ORDER_ITEM, item, selected);
    if selected.is_none() {
        for nav in SALES_ORDER_ITEM.navigations {
            node.push(nav.name, deferred(&format!("{uri}/{}", nav.name)));
        }
    }
    node
}

/// A line addressed on its own (`A_SalesOrderItem(..)`, a `to_Item` or `A_SalesOrderItem`
/// list).
fn item_node(root: &str, item: &Value, order: &OrderView, query: &QueryOptions) -> Node {
    let uri = item_uri(root, item);
    let mut node =
        Node::object().with("__metadata", entity_metadata(&uri, &SALES_ORDER_ITEM, None));
    push_properties(
        &mut node,
        &SALES_ORDER_ITEM,
        item,
        query.selected_properties().as_deref(),
    );
    for nav in SALES_ORDER_ITEM.navigations {
        if !query.selects_navigation(nav.name) {
            continue;
        }
        let value = match (query.expands(nav.name), nav.name) {
            (false, _) => deferred(&format!("{uri}/{}", nav.name)),
            (true, "to_SalesOrder") => order_node(root, order, &QueryOptions::default()),
            (true, _) if nav.to_many => inline_results(Vec::new()),
            (true, _) => Node::Value(Value::Null),
        };
        node.push(nav.name, value);
    }
    node
}

/// Where the request goes.
enum Target {
    Orders,
    OrderCount,
    Order(String),
    OrderItems(String, bool),
    Items(bool),
    Item(String, String),
}

fn target_of(segments: &[Segment]) -> Result<Target, Read> {
    let is_count = |s: &Segment| s.name == "$count" && s.key.is_none();
    let order_key = |s: &Segment| -> Result<String, Read> {
        let key = resolve_key(&SALES_ORDER, s.key.as_deref().unwrap_or_default()).map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                sap_odata::query::QUERY_INVALID,
                &e.to_string(),
            )
        })?;
        Ok(key.into_iter().next().unwrap_or_default())
    };
    match segments {
        [set] if set.name == "A_SalesOrder" && set.key.is_none() => Ok(Target::Orders),
        [set, c] if set.name == "A_SalesOrder" && set.key.is_none() && is_count(c) => {
            Ok(Target::OrderCount)
        }
        [set] if set.name == "A_SalesOrder" => Ok(Target::Order(order_key(set)?)),
        [set, nav, rest @ ..]
            if set.name == "A_SalesOrder"
                && set.key.is_some()
                && nav.name == "to_Item"
                && nav.key.is_none()
                && (rest.is_empty() || (rest.len() == 1 && is_count(&rest[0]))) =>
        {
            Ok(Target::OrderItems(order_key(set)?, !rest.is_empty()))
        }
        [set] if set.name == "A_SalesOrderItem" && set.key.is_none() => Ok(Target::Items(false)),
        [set, c] if set.name == "A_SalesOrderItem" && set.key.is_none() && is_count(c) => {
            Ok(Target::Items(true))
        }
        [set] if set.name == "A_SalesOrderItem" => {
            let key = resolve_key(&SALES_ORDER_ITEM, set.key.as_deref().unwrap_or_default())
                .map_err(|e| {
                    refused(
                        StatusCode::BAD_REQUEST,
                        sap_odata::query::QUERY_INVALID,
                        &e.to_string(),
                    )
                })?;
            match key.as_slice() {
                [n, i] => Ok(Target::Item(n.clone(), i.clone())),
                _ => Err(segment_not_found(&set.name)),
            }
        }
        [set, ..] if set.name == "A_SalesOrder" || set.name == "A_SalesOrderItem" => Err(
            Read::Untranslatable(format!("the resource path below {}", set.name)),
        ),
        [other, ..] => Err(segment_not_found(&other.name)),
        [] => Err(Read::Untranslatable("the service document".into())),
    }
}

/// Serves one read of the route from the order service.
pub async fn read(so: &SalesOrders, parts: &http::request::Parts) -> Read {
    let root = crate::routing::sales_orders::service_root_url(parts);
    let below = crate::face::write::below_root(parts.uri.path());
    let segments = match parse_resource_path(&below) {
        Ok(s) => s,
        Err(sap_odata::uri::UriError::BadSegment(s)) => return segment_not_found(&s),
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                sap_odata::query::QUERY_INVALID,
                &e.to_string(),
            );
        }
    };
    let raw_query = parts.uri.query().unwrap_or("");
    let query = match QueryOptions::parse(raw_query) {
        Ok(q) => q,
        Err(e) => return query_refused(e),
    };
    let target = match target_of(&segments) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let entity: &EntityType = match target {
        Target::Orders | Target::OrderCount | Target::Order(_) => &SALES_ORDER,
        _ => &SALES_ORDER_ITEM,
    };
    if let Err(e) = query.check(entity, &schema::entity_type) {
        return query_refused(e);
    }
    let page_size = so.config.odata_page_size;
    let ctx = Ctx {
        so,
        root: &root,
        below: &below,
        raw_query,
        query: &query,
        page_size,
    };
    match target {
        Target::Orders => ctx.orders(false).await,
        Target::OrderCount => ctx.orders(true).await,
        Target::Order(n) => ctx.order(&n).await,
        Target::OrderItems(n, count) => ctx.order_items(&n, count).await,
        Target::Items(count) => ctx.items(count).await,
        Target::Item(n, i) => ctx.item(&n, &i).await,
    }
}

struct Ctx<'a> {
    so: &'a SalesOrders,
    root: &'a str,
    below: &'a str,
    raw_query: &'a str,
    query: &'a QueryOptions,
    page_size: usize,
}

impl Ctx<'_> {
    async fn search(
        &self,
        body: &Value,
    ) -> Result<crate::upstreams::order_client::SearchAnswer, Read> {
        self.so.orders.search(body).await.map_err(|e| match e {
            // A search the order service refuses is one this face built wrong: say so in
            // SAP's terms, never the REST API's.
            OrderServiceError::Rejected { status: 422, .. } => {
                Read::Untranslatable("this query".into())
            }
            other => order_service_failed(other),
        })
    }

    /// `A_SalesOrder` as a collection, or its `$count`.
    async fn orders(&self, count_only: bool) -> Read {
        let filter = match order_filter(self.query.filter.as_ref()) {
            Ok(f) => f,
            Err(what) => return Read::Untranslatable(what),
        };
        if count_only {
            let body = json!({"filter": filter, "top": 0, "count": true, "include_items": false});
            return match self.search(&body).await {
                Ok((_, n)) => count_answer(n.unwrap_or(0)),
                Err(r) => r,
            };
        }
        let keys = match order_keys(self.query) {
            Ok(k) => k,
            Err(what) => return Read::Untranslatable(what),
        };
        let window = match Window::of(self.query, self.page_size) {
            Ok(w) => w,
            Err(e) => return query_refused(e),
        };
        if window.start > 1_000_000_000 {
            return query_refused(sap_odata::QueryError::BadValue {
                option: "$skip",
                value: window.start.to_string(),
            });
        }
        let body = json!({
            "filter": filter, "order_by": keys, "top": window.take.saturating_add(1).min(5000),
            "skip": window.start, "count": self.query.inline_count,
            "include_items": needs_lines(self.query),
        });
        let (orders, count) = match self.search(&body).await {
            Ok(r) => r,
            Err(r) => return r,
        };
        let next = window.next_token(orders.len());
        let results = orders
            .iter()
            .take(window.take)
            .map(|o| order_node(self.root, &OrderView::of(o, self.root), self.query))
            .collect();
        json_answer(
            &collection(
                results,
                count.filter(|_| self.query.inline_count),
                next.map(|t| sap_odata::query::next_link(self.root, self.below, self.raw_query, t)),
            ),
            None,
        )
    }

    /// The order SAP knows as `number` (voided ones are not SAP's).
    async fn find(&self, number: &str) -> Result<Option<OrderView>, Read> {
        let body = json!({
            "filter": {"and": [cmp("sales_order_number", "eq", json!(number)),
                               cmp("status", "ne", json!("voided"))]},
            "top": 1, "include_items": true,
        });
        let (orders, _) = self.search(&body).await?;
        Ok(orders.first().map(|o| OrderView::of(o, self.root)))
    }

    async fn order(&self, number: &str) -> Read {
        match self.find(number).await {
            Ok(Some(view)) => {
                let etag = view.etag.clone();
                json_answer(&single(order_node(self.root, &view, self.query)), etag)
            }
            Ok(None) => not_found(number),
            Err(r) => r,
        }
    }

    async fn order_items(&self, number: &str, count_only: bool) -> Read {
        let view = match self.find(number).await {
            Ok(Some(v)) => v,
            Ok(None) => return not_found(number),
            Err(r) => return r,
        };
        self.item_list(vec![view], count_only)
    }

    async fn item(&self, number: &str, item_no: &str) -> Read {
        let view = match self.find(number).await {
            Ok(Some(v)) => v,
            Ok(None) => return not_found(number),
            Err(r) => return r,
        };
        let wanted = item_no.trim_start_matches('0');
        match view
            .items()
            .iter()
            .find(|i| i["SalesOrderItem"].as_str() == Some(wanted))
        {
            Some(i) => json_answer(&single(item_node(self.root, i, &view, self.query)), None),
            None => refused(
                StatusCode::NOT_FOUND,
                "V1/302",
                &format!("Item {item_no} of SD document {number} does not exist"),
            ),
        }
    }

    /// `A_SalesOrderItem` as a collection: the orders its `SalesOrder` conditions name, then
    /// their lines filtered here.
    async fn items(&self, count_only: bool) -> Read {
        let mut conjuncts = Vec::new();
        if let Some(f) = &self.query.filter {
            flatten(f, LogicalOp::And, &mut conjuncts);
        }
        let by_order: Vec<&Expr> = conjuncts
            .into_iter()
            .filter(|c| {
                let p = c.properties();
                !p.is_empty() && p.iter().all(|p| *p == "SalesOrder")
            })
            .collect();
        if by_order.is_empty() {
            return Read::Untranslatable(
                "a list of A_SalesOrderItem without a filter on SalesOrder".into(),
            );
        }
        let mut members = vec![cmp("status", "ne", json!("voided"))];
        for c in by_order {
            match translate(c) {
                Ok(t) => members.push(expand_ranges(t)),
                Err(what) => return Read::Untranslatable(what),
            }
        }
        let body = json!({
            "filter": {"and": members},
            "order_by": [{"field": "sales_order_number"}],
            "top": MAX_ITEM_SCAN_ORDERS + 1, "include_items": true,
        });
        let (orders, _) = match self.search(&body).await {
            Ok(r) => r,
            Err(r) => return r,
        };
        if orders.len() > MAX_ITEM_SCAN_ORDERS {
            return Read::Untranslatable(format!(
                "a list of A_SalesOrderItem over more than {MAX_ITEM_SCAN_ORDERS} orders"
            ));
        }
        let views = orders.iter().map(|o| OrderView::of(o, self.root)).collect();
        self.item_list(views, count_only)
    }

    /// The lines of `views` with `$filter`, `$orderby`, paging and `$inlinecount` applied as the
    /// emulator applies them (the same evaluator and window).
    fn item_list(&self, views: Vec<OrderView>, count_only: bool) -> Read {
        let mut rows: Vec<(Value, usize)> = views
            .iter()
            .enumerate()
            .flat_map(|(n, v)| v.items().into_iter().map(move |i| (i, n)))
            .collect();
        if let Some(f) = &self.query.filter {
            rows.retain(|(i, _)| f.evaluate(&lookup(&SALES_ORDER_ITEM, i)));
        }
        if count_only {
            return count_answer(rows.len() as u64);
        }
        if !self.query.orderby.is_empty() {
            rows.sort_by(|(a, _), (b, _)| {
                for o in &self.query.orderby {
                    let (la, lb) = (lookup(&SALES_ORDER_ITEM, a), lookup(&SALES_ORDER_ITEM, b));
                    let ord = la(&o.property)
                        .compare(&lb(&o.property))
                        .unwrap_or(std::cmp::Ordering::Equal);
                    let ord = match o.direction {
                        SortDirection::Ascending => ord,
                        SortDirection::Descending => ord.reverse(),
                    };
                    if ord.is_ne() {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        let window = match Window::of(self.query, self.page_size) {
            Ok(w) => w,
            Err(e) => return query_refused(e),
        };
        let total = rows.len();
        let start = window.start.min(total);
        let available = total - start;
        let take = window.take.min(available);
        let next = window.next_token(available);
        let results = rows[start..start + take]
            .iter()
            .map(|(i, n)| item_node(self.root, i, &views[*n], self.query))
            .collect();
        json_answer(
            &collection(
                results,
                self.query.inline_count.then_some(total as u64),
                next.map(|t| sap_odata::query::next_link(self.root, self.below, self.raw_query, t)),
            ),
            None,
        )
    }
}

/// The answer for a read the order service cannot give while SAP is retired.
pub fn not_implemented(what: &str) -> Response<ProxyBody> {
    odata_error(
        StatusCode::NOT_IMPLEMENTED,
        NOT_IMPLEMENTED,
        &format!("Not implemented after SAP was retired: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(filter: &str) -> Result<Value, String> {
        let q = QueryOptions::parse(&format!("$filter={filter}")).unwrap();
        q.check(&SALES_ORDER, &schema::entity_type).unwrap();
        order_filter(q.filter.as_ref())
    }

    #[test]
    fn sap_filters_become_the_search_s_tree_in_rest_names() {
        let t =
            tree("(SoldToParty%20eq%20'17100001'%20and%20PurchaseOrderByCustomer%20ne%20'A''B')")
                .unwrap();
        let text = t.to_string();
        assert!(text.contains(r#""field":"customer_id""#), "{text}");
        assert!(text.contains(r#""value":"A'B""#), "{text}");
        assert!(!text.contains("SoldToParty"), "{text}");
        // an empty reference renders as '': `ne 'A''B'` keeps the orders without one
        assert!(
            text.contains(r#"{"field":"customer_reference","op":"eq","value":null}"#),
            "{text}"
        );
    }

    #[test]
    fn an_order_list_reads_lines_only_when_its_answer_shows_them() {
        let needs = |raw: &str| needs_lines(&QueryOptions::parse(raw).unwrap());
        // every property, `*`, an expanded to_Item, or a status S/4 derives from the lines
        for raw in [
            "",
            "$select=*",
            "$select=SalesOrder&$expand=to_Item",
            "$select=SalesOrder,OverallSDDocumentRejectionSts",
            "$select=OverallSDProcessStatus",
        ] {
            assert!(needs(raw), "{raw}");
        }
        // the shop's list: header fields from the order itself; a deferred to_Item link
        for raw in [
            "$select=SalesOrder,SoldToParty,TotalNetAmount,RequestedDeliveryDate",
            "$select=SalesOrder,OverallDeliveryStatus,to_Item",
        ] {
            assert!(!needs(raw), "{raw}");
        }
    }

    #[test]
    fn dates_decimals_and_functions_translate() {
        let t = tree("CreationDate%20ge%20datetime'2024-01-31T00%3A00%3A00.000'%20and%20CreationDate%20lt%20datetime'2024-02-01T12%3A00%3A00'").unwrap().to_string();
        assert!(
            t.contains(r#"{"field":"created_date","op":"ge","value":"2024-01-31"}"#),
            "{t}"
        );
        assert!(
            t.contains(r#"{"field":"created_date","op":"le","value":"2024-02-01"}"#),
            "{t}"
        );
        let t = tree("TotalNetAmount%20gt%2012.50M").unwrap().to_string();
        assert!(t.contains(r#""value":"12.5""#), "{t}");
        let t =
            tree("substringof('SDK',PurchaseOrderByCustomer)%20or%20startswith(SoldToParty,'171')")
                .unwrap()
                .to_string();
        assert!(
            t.contains(r#""op":"contains""#) && t.contains(r#""op":"startswith""#),
            "{t}"
        );
        // The Cloud SDK's form: the function compared with a boolean.
        let a = tree("(startswith(PurchaseOrderByCustomer,'SDK')%20eq%20true)").unwrap();
        assert_eq!(
            a,
            tree("startswith(PurchaseOrderByCustomer,'SDK')").unwrap()
        );
        assert_eq!(
            tree("substringof('K',PurchaseOrderByCustomer)%20eq%20true").unwrap(),
            tree("true%20eq%20substringof('K',PurchaseOrderByCustomer)").unwrap()
        );
        for negated in [
            "startswith(PurchaseOrderByCustomer,'SDK')%20eq%20false",
            "startswith(PurchaseOrderByCustomer,'SDK')%20ne%20true",
        ] {
            let t = tree(negated).unwrap();
            assert_eq!(t["and"][1]["not"], a["and"][1], "{negated}: {t}");
        }
        let t = tree("LastChangeDateTime%20eq%20datetimeoffset'2026-11-24T14%3A20%3A57.381Z'")
            .unwrap()
            .to_string();
        assert!(
            t.contains(r#""op":"ge","value":"2026-11-24T14:20:57.381000Z""#),
            "{t}"
        );
        assert!(
            t.contains(r#""op":"lt","value":"2026-11-24T14:20:57.382000Z""#),
            "{t}"
        );
    }

    #[test]
    fn what_the_order_service_cannot_filter_is_named_in_sap_terms() {
        assert_eq!(
            tree("SalesGroup%20eq%20'1'").unwrap_err(),
            "property SalesGroup"
        );
    }
}
