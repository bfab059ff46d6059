//! `POST /api/v1/orders/search`: the request body read into a [`SearchQuery`], every problem
//! named by its path in the body (`filter.and[1].value`), and the answer.
//!
//! The filter tree is read by hand from the JSON (not derived by serde) so that a wrong member
//! deep in the tree is reported at its own path, and so the depth and node bounds are checked
//! while reading (no input can make the reader or the SQL builder recurse without bound).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use order_domain::FieldError;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::extract::{self, JsonBody};
use crate::error::ServiceError;
use crate::model::Order;
use crate::repository::search::{
    Direction, FieldKind, MAX_DEPTH, MAX_MEMBERS, MAX_NODES, MAX_SKIP, MAX_SORT_KEYS, MAX_TEXT,
    MAX_TOP, SearchField, SearchFilter, SearchOp, SearchQuery, SearchValue,
};

/// Body of an order search.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The filter tree (see the `SearchFilter` schema); absent or `null`: every order.
    #[schema(value_type = Option<Object>)]
    #[serde(default)]
    pub filter: Option<Value>,
    /// Sort keys, most significant first; the order id always breaks ties (ascending). Default:
    /// by id.
    #[serde(default)]
    pub order_by: Option<Vec<SortKey>>,
    /// At most this many orders (0 to 5000, default 50).
    #[serde(default, deserialize_with = "extract::whole_number")]
    pub top: Option<i64>,
    /// Leave out this many first (default 0).
    #[serde(default, deserialize_with = "extract::whole_number")]
    pub skip: Option<i64>,
    /// Also count every match (`count` in the answer); default false.
    #[serde(default)]
    pub count: Option<bool>,
    /// Load each order's lines (default true); false answers every order with `items: []`.
    #[serde(default)]
    pub include_items: Option<bool>,
}

/// One sort key.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    /// A field of the search (as in a comparison).
    pub field: String,
    /// `asc` (default; `null` sorts first) or `desc` (`null` last).
    #[serde(default)]
    pub direction: Option<String>,
}

/// The orders a search matched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchResult {
    /// The orders of the window, in the asked order.
    pub items: Vec<Order>,
    /// How many orders match in all (regardless of `top` and `skip`); `null` unless `count`.
    pub count: Option<i64>,
}

/// Search orders: a filter tree over the order's fields (and/or/not, comparisons and text
/// functions), sort keys, a window and an optional count, in one database statement.
///
/// Logic is two-valued: `null` is distinct from every value (`ne` holds for a `null` field,
/// `gt`/`lt`/text functions never do; `eq null` / `ne null` test for it), so `not` is the
/// exact complement. `created_date` is the UTC date of `created_at`. Bounds: nesting at most 8
/// levels of `and`/`or`/`not`, at most 1000 members per `and`/`or`, 25000 nodes in all.
#[utoipa::path(post, path = "/api/v1/orders/search", request_body = SearchRequest,
    responses((status = 200, body = SearchResult),
      (status = 422, body = super::problem::Problem, description = "Invalid search, the member named in errors[].field")))]
pub(crate) async fn search_orders(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<SearchRequest>,
) -> Result<Json<SearchResult>, ServiceError> {
    let query = parse_search(&body).map_err(ServiceError::Validation)?;
    let (items, count) = state.repository.search(&query).await?;
    Ok(Json(SearchResult { items, count }))
}

/// Validates a search request into a [`SearchQuery`], naming every bad member.
pub fn parse_search(body: &SearchRequest) -> Result<SearchQuery, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut q = SearchQuery::default();
    if let Some(f) = body.filter.as_ref().filter(|f| !f.is_null()) {
        let mut nodes = 0;
        q.filter = read_filter(f, "filter", 0, &mut nodes, &mut errors);
        if nodes > MAX_NODES {
            errors.push(FieldError::new(
                "filter",
                format!("must have at most {MAX_NODES} nodes"),
            ));
        }
    }
    if let Some(keys) = &body.order_by {
        if keys.len() > MAX_SORT_KEYS {
            errors.push(FieldError::new(
                "order_by",
                format!("must have at most {MAX_SORT_KEYS} keys"),
            ));
        }
        for (i, k) in keys.iter().enumerate().take(MAX_SORT_KEYS) {
            let field = SearchField::parse(&k.field);
            if field.is_none() {
                errors.push(FieldError::new(
                    format!("order_by[{i}].field"),
                    "is not a field of the search",
                ));
            }
            let direction = match k.direction.as_deref() {
                None | Some("asc") => Some(Direction::Asc),
                Some("desc") => Some(Direction::Desc),
                Some(_) => {
                    errors.push(FieldError::new(
                        format!("order_by[{i}].direction"),
                        "must be asc or desc",
                    ));
                    None
                }
            };
            if let (Some(f), Some(d)) = (field, direction) {
                q.order_by.push((f, d));
            }
        }
    }
    match body.top {
        Some(n) if !(0..=MAX_TOP).contains(&n) => errors.push(FieldError::new(
            "top",
            format!("must be a whole number from 0 to {MAX_TOP}"),
        )),
        Some(n) => q.top = n,
        None => {}
    }
    match body.skip {
        Some(n) if !(0..=MAX_SKIP).contains(&n) => errors.push(FieldError::new(
            "skip",
            format!("must be a whole number from 0 to {MAX_SKIP}"),
        )),
        Some(n) => q.skip = n,
        None => {}
    }
    q.count = body.count.unwrap_or(false);
    q.include_items = body.include_items.unwrap_or(true);
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(errors)
    }
}

fn read_filter(
    v: &Value,
    path: &str,
    depth: usize,
    nodes: &mut usize,
    errors: &mut Vec<FieldError>,
) -> Option<SearchFilter> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return None;
    }
    let Some(obj) = v.as_object() else {
        errors.push(FieldError::new(
            path,
            "must be an object: {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}} or {\"field\", \"op\", \"value\"}",
        ));
        return None;
    };
    let combinator = ["and", "or", "not"]
        .into_iter()
        .find(|k| obj.contains_key(*k));
    if let Some(name) = combinator {
        if obj.len() != 1 {
            errors.push(FieldError::new(
                path,
                format!("must have only the member {name}"),
            ));
            return None;
        }
        if depth >= MAX_DEPTH {
            errors.push(FieldError::new(
                path,
                format!("must nest at most {MAX_DEPTH} levels of and/or/not"),
            ));
            return None;
        }
        let inner_path = format!("{path}.{name}");
        let inner = &obj[name];
        if name == "not" {
            return read_filter(inner, &inner_path, depth + 1, nodes, errors)
                .map(|f| SearchFilter::Not(Box::new(f)));
        }
        let Some(members) = inner
            .as_array()
            .filter(|m| (1..=MAX_MEMBERS).contains(&m.len()))
        else {
            errors.push(FieldError::new(
                inner_path,
                format!("must be an array of 1 to {MAX_MEMBERS} filters"),
            ));
            return None;
        };
        let mut read = Vec::with_capacity(members.len());
        for (i, m) in members.iter().enumerate() {
            read.push(read_filter(
                m,
                &format!("{inner_path}[{i}]"),
                depth + 1,
                nodes,
                errors,
            ));
        }
        let read: Option<Vec<SearchFilter>> = read.into_iter().collect();
        return read.map(|r| {
            if name == "and" {
                SearchFilter::And(r)
            } else {
                SearchFilter::Or(r)
            }
        });
    }
    read_comparison(obj, path, errors)
}

fn read_comparison(
    obj: &serde_json::Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<SearchFilter> {
    let before = errors.len();
    for k in obj.keys() {
        if !matches!(k.as_str(), "field" | "op" | "value") {
            errors.push(FieldError::new(
                format!("{path}.{k}"),
                "is not a member of a comparison (field, op, value)",
            ));
        }
    }
    let field = match obj.get("field") {
        Some(Value::String(name)) => match SearchField::parse(name) {
            Some(f) => Some(f),
            None => {
                errors.push(FieldError::new(
                    format!("{path}.field"),
                    "is not a field of the search",
                ));
                None
            }
        },
        _ => {
            errors.push(FieldError::new(
                format!("{path}.field"),
                "is required: the name of a field of the search",
            ));
            None
        }
    };
    let op = match obj.get("op") {
        Some(Value::String(name)) => match SearchOp::parse(name) {
            Some(o) => Some(o),
            None => {
                errors.push(FieldError::new(
                    format!("{path}.op"),
                    "must be one of eq, ne, gt, ge, lt, le, contains, startswith, endswith",
                ));
                None
            }
        },
        _ => {
            errors.push(FieldError::new(
                format!("{path}.op"),
                "is required: eq, ne, gt, ge, lt, le, contains, startswith or endswith",
            ));
            None
        }
    };
    let value_path = format!("{path}.value");
    let Some(raw) = obj.get("value") else {
        errors.push(FieldError::new(
            value_path,
            "is required (null to test for a missing value)",
        ));
        return None;
    };
    let (field, op) = (field?, op?);
    if errors.len() > before {
        return None;
    }
    let kind = field.kind();
    if op.is_text_function() && kind != FieldKind::Text {
        errors.push(FieldError::new(
            format!("{path}.op"),
            format!("{} applies to text fields only", op.name()),
        ));
        return None;
    }
    let value = match read_value(kind, raw) {
        Ok(SearchValue::Null) if !matches!(op, SearchOp::Eq | SearchOp::Ne) => {
            errors.push(FieldError::new(
                value_path,
                "may be null only with eq or ne",
            ));
            return None;
        }
        Ok(v) => v,
        Err(message) => {
            errors.push(FieldError::new(value_path, message));
            return None;
        }
    };
    Some(SearchFilter::Compare(field, op, value))
}

/// Longest decimal accepted: 18 digits before the point, 6 after.
const DECIMAL_PATTERN_HELP: &str =
    "must be a decimal string (an optional -, up to 18 digits, up to 6 decimals), e.g. \"12.5\"";

fn read_value(kind: FieldKind, raw: &Value) -> Result<SearchValue, String> {
    let text = match raw {
        Value::Null => return Ok(SearchValue::Null),
        Value::String(s) => s.as_str(),
        _ => {
            return Err(match kind {
                FieldKind::Text => "must be a string or null".into(),
                FieldKind::Decimal => DECIMAL_PATTERN_HELP.into(),
                FieldKind::Date => "must be a YYYY-MM-DD date or null".into(),
                FieldKind::Timestamp => "must be an RFC 3339 time or null".into(),
            });
        }
    };
    match kind {
        FieldKind::Text => {
            if text.chars().count() > MAX_TEXT {
                Err(format!("must be at most {MAX_TEXT} characters"))
            } else {
                Ok(SearchValue::Text(text.to_owned()))
            }
        }
        FieldKind::Decimal => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
            let ok = (1..=18).contains(&whole.len())
                && whole.bytes().all(|b| b.is_ascii_digit())
                && (!digits.contains('.') || (1..=6).contains(&frac.len()))
                && frac.bytes().all(|b| b.is_ascii_digit());
            text.parse::<Decimal>()
                .ok()
                .filter(|_| ok)
                .map(SearchValue::Decimal)
                .ok_or_else(|| DECIMAL_PATTERN_HELP.into())
        }
        FieldKind::Date => {
            let shaped = text.len() == 10
                && text.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .filter(|_| shaped)
                .map(SearchValue::Date)
                .ok_or_else(|| "must be a YYYY-MM-DD date".into())
        }
        FieldKind::Timestamp => DateTime::parse_from_rfc3339(text)
            .map(|t| SearchValue::Timestamp(t.with_timezone(&Utc)))
            .map_err(|_| "must be an RFC 3339 time, e.g. 2026-11-24T15:00:00Z".into()),
    }
}

/// The JSON Schema of the filter tree, for the OpenAPI document: `SearchFilter` and the
/// levels it is built from (`SearchFilter1` .. `SearchFilter8`: a level holds comparisons and
/// combinators of the level below, so the document states the depth bound exactly).
pub fn filter_schemas() -> Vec<(String, Value)> {
    use serde_json::json;
    let names = |pred: &dyn Fn(SearchField) -> bool| -> Vec<&'static str> {
        SearchField::ALL
            .into_iter()
            .filter(|f| pred(*f))
            .map(SearchField::name)
            .collect()
    };
    let ordering: Vec<&str> = ["eq", "ne", "gt", "ge", "lt", "le"].into();
    let all_ops: Vec<&str> = SearchOp::ALL.into_iter().map(SearchOp::name).collect();
    let compare = |fields: Vec<&str>, ops: &Vec<&str>, value: Value| {
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["field", "op", "value"],
            "anyOf": [
                {"properties": {"field": {"type": "string", "enum": fields},
                                "op": {"type": "string", "enum": ops},
                                "value": value}},
                {"properties": {"field": {"type": "string", "enum": fields},
                                "op": {"type": "string", "enum": ["eq", "ne"]},
                                "value": {"type": "null"}}}
            ],
            "properties": {"field": {"type": "string"}, "op": {"type": "string"}, "value": {}}
        })
    };
    let comparison = json!({
        "description": "field op value. Text fields take every op (contains, startswith, endswith on text only); null only with eq/ne.",
        "oneOf": [
            compare(names(&|f| f.kind() == FieldKind::Text), &all_ops,
                json!({"type": "string", "maxLength": MAX_TEXT, "pattern": r"^[^\x00]*$"})),
            compare(names(&|f| f.kind() == FieldKind::Decimal), &ordering,
                json!({"type": "string", "pattern": r"^-?[0-9]{1,18}(\.[0-9]{1,6})?$", "example": "12.5"})),
            compare(names(&|f| f.kind() == FieldKind::Date), &ordering,
                json!({"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})),
            compare(names(&|f| f.kind() == FieldKind::Timestamp), &ordering,
                json!({"type": "string", "format": "date-time"})),
        ]
    });
    let mut out = vec![("SearchComparison".to_owned(), comparison)];
    let level = |n: usize| {
        if n == 0 {
            "#/components/schemas/SearchComparison".to_owned()
        } else {
            format!("#/components/schemas/SearchFilter{n}")
        }
    };
    for n in 1..=MAX_DEPTH {
        let below = json!({"$ref": level(n - 1)});
        let members =
            json!({"type": "array", "minItems": 1, "maxItems": MAX_MEMBERS, "items": below});
        out.push((
            format!("SearchFilter{n}"),
            json!({"oneOf": [
                {"$ref": level(0)},
                {"type": "object", "additionalProperties": false, "required": ["and"], "properties": {"and": members}},
                {"type": "object", "additionalProperties": false, "required": ["or"], "properties": {"or": members}},
                {"type": "object", "additionalProperties": false, "required": ["not"], "properties": {"not": below}},
            ]}),
        ));
    }
    out.push((
        "SearchFilter".to_owned(),
        json!({
            "description": format!("A filter tree: a comparison, or and/or (1 to {MAX_MEMBERS} members) and not, nested at most {MAX_DEPTH} levels, at most {MAX_NODES} nodes in all."),
            "$ref": level(MAX_DEPTH)
        }),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<SearchQuery, Vec<FieldError>> {
        let req: SearchRequest = serde_json::from_value(body).unwrap();
        parse_search(&req)
    }

    fn fields(r: Result<SearchQuery, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_search_reads_every_form() {
        let q = parse(json!({
            "filter": {"and": [
                {"field": "customer_id", "op": "eq", "value": "17100001"},
                {"or": [{"field": "created_date", "op": "ge", "value": "2026-01-01"},
                        {"not": {"field": "customer_reference", "op": "eq", "value": null}}]},
                {"field": "total_net_amount", "op": "gt", "value": "12.5"},
                {"field": "updated_at", "op": "lt", "value": "2026-11-24T15:00:00Z"}
            ]},
            "order_by": [{"field": "created_at", "direction": "desc"}],
            "top": 10, "skip": 5, "count": true, "include_items": false
        }))
        .unwrap();
        assert_eq!(q.top, 10);
        assert!(q.count && !q.include_items);
        assert!(matches!(q.filter, Some(SearchFilter::And(ref m)) if m.len() == 4));
    }

    #[test]
    fn every_bad_member_is_named_by_its_path() {
        let bad = fields(parse(json!({
            "filter": {"and": [
                {"field": "nope", "op": "eq", "value": "x"},
                {"field": "total_net_amount", "op": "eq", "value": "abc"},
                {"field": "created_at", "op": "contains", "value": "x"},
                {"field": "customer_id", "op": "gt", "value": null},
                {"or": []}
            ]},
            "order_by": [{"field": "x"}, {"field": "status", "direction": "up"}],
            "top": 5001
        })));
        assert_eq!(
            bad,
            [
                "filter.and[0].field",
                "filter.and[1].value",
                "filter.and[2].op",
                "filter.and[3].value",
                "filter.and[4].or",
                "order_by[0].field",
                "order_by[1].direction",
                "top"
            ]
        );
    }

    #[test]
    fn depth_is_bounded() {
        let mut f = json!({"field": "status", "op": "eq", "value": "created"});
        for _ in 0..MAX_DEPTH {
            f = json!({ "not": f });
        }
        assert!(parse(json!({ "filter": f.clone() })).is_ok());
        let deeper = json!({"filter": {"not": f}});
        assert_eq!(fields(parse(deeper)).len(), 1);
    }
}
