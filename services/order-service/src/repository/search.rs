//! The order search (`POST /api/v1/orders/search`): a filter tree over the REST field names,
//! sort keys, a window and an optional count, pushed down to PostgreSQL as one statement.
//!
//! Every value travels as a bound parameter ([`QueryBuilder::push_bind`]); only the fixed SQL
//! of a [`SearchField`] and an operator is ever written into the statement text. Logic is
//! two-valued, as a client means it: `null` is distinct from every value (`ne 'x'` holds for a
//! `null` field; `gt`, `lt` and the text functions never hold for it), so `not` is the exact
//! complement. Each comparison is written so that a B-tree index on its column can serve it
//! (`col IS NOT NULL AND col = $1`, never `COALESCE(col = $1, false)`); see migration 0011 for
//! the indexes behind the daily filters.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};

/// Deepest nesting of `and`/`or`/`not` accepted (a comparison alone is depth 0). The proxy
/// flattens chains of one operator, so an OData filter a shop sends nests two or three levels;
/// the document spells every level out, and schemathesis's generation slows steeply with it.
pub const MAX_DEPTH: usize = 4;
/// Most nodes (combinators and comparisons) in one filter: beyond what the default body limit
/// (256 KiB) can carry, and few enough that the statement's bound values stay far below
/// PostgreSQL's 65535.
pub const MAX_NODES: usize = 25_000;
/// Most members of one `and`/`or` (e.g. 100 order numbers in one `or`).
pub const MAX_MEMBERS: usize = 100;
/// Most sort keys.
pub const MAX_SORT_KEYS: usize = 8;
/// Largest window (`top`).
pub const MAX_TOP: i64 = 5000;
/// Default window.
pub const DEFAULT_TOP: i64 = 50;
/// Largest `skip`.
pub const MAX_SKIP: i64 = 1_000_000_000;
/// Longest text value of a comparison, in characters.
pub const MAX_TEXT: usize = 256;

/// What a field holds, which decides the values and operators it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text: every operator, the text functions included.
    Text,
    /// A decimal (a string such as `"12.5"`).
    Decimal,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// A point in time (RFC 3339).
    Timestamp,
}

/// A field the search filters and sorts on (REST names; SAP's in the descriptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchField {
    /// `order_number`.
    OrderNumber,
    /// The number SAP knows the order by: `sap_order_number` once linked, else `order_number`
    /// (SAP `SalesOrder`).
    SalesOrderNumber,
    /// `sap_order_number`.
    SapOrderNumber,
    /// `customer_id` (SAP `SoldToParty`).
    CustomerId,
    /// `customer_reference` (SAP `PurchaseOrderByCustomer`).
    CustomerReference,
    /// `currency` (SAP `TransactionCurrency`).
    Currency,
    /// `sales_organization`.
    SalesOrganization,
    /// `distribution_channel`.
    DistributionChannel,
    /// `division` (SAP `OrganizationDivision`).
    Division,
    /// `order_type` (SAP `SalesOrderType`).
    OrderType,
    /// `status`.
    Status,
    /// Derived: `A` no line rejected, `B` some, `C` every line (SAP
    /// `OverallSDDocumentRejectionSts`).
    RejectionStatus,
    /// Derived: `C` once delivered (or billed), else `A` (SAP `OverallDeliveryStatus`,
    /// `OverallTotalDeliveryStatus`).
    DeliveryStatus,
    /// Derived: `C` once billed, else empty (SAP `OverallOrdReltdBillgStatus`).
    BillingStatus,
    /// Derived: `C` nothing left open (billed, or every line rejected), `B` partly processed
    /// (delivered, or a line rejected), else `A` (SAP `OverallSDProcessStatus`).
    ProcessStatus,
    /// `total_net_amount` (SAP `TotalNetAmount`).
    TotalNetAmount,
    /// `requested_delivery_date` (SAP `RequestedDeliveryDate`).
    RequestedDeliveryDate,
    /// Derived: the UTC date of `created_at` (SAP `CreationDate`).
    CreatedDate,
    /// `created_at`.
    CreatedAt,
    /// `updated_at` (SAP `LastChangeDateTime`).
    UpdatedAt,
}

/// `EXISTS` of a rejected line / of an open line of the order.
const REJECTED_LINE: &str = "EXISTS (SELECT 1 FROM order_items ri WHERE ri.order_id = orders.id AND ri.rejection_reason IS NOT NULL)";
const OPEN_LINE: &str = "EXISTS (SELECT 1 FROM order_items oi WHERE oi.order_id = orders.id AND oi.rejection_reason IS NULL)";

impl SearchField {
    /// Every field, in the order the API documents them.
    pub const ALL: [SearchField; 20] = [
        Self::OrderNumber,
        Self::SalesOrderNumber,
        Self::SapOrderNumber,
        Self::CustomerId,
        Self::CustomerReference,
        Self::Currency,
        Self::SalesOrganization,
        Self::DistributionChannel,
        Self::Division,
        Self::OrderType,
        Self::Status,
        Self::RejectionStatus,
        Self::DeliveryStatus,
        Self::BillingStatus,
        Self::ProcessStatus,
        Self::TotalNetAmount,
        Self::RequestedDeliveryDate,
        Self::CreatedDate,
        Self::CreatedAt,
        Self::UpdatedAt,
    ];

    /// The REST name.
    pub fn name(self) -> &'static str {
        match self {
            Self::OrderNumber => "order_number",
            Self::SalesOrderNumber => "sales_order_number",
            Self::SapOrderNumber => "sap_order_number",
            Self::CustomerId => "customer_id",
            Self::CustomerReference => "customer_reference",
            Self::Currency => "currency",
            Self::SalesOrganization => "sales_organization",
            Self::DistributionChannel => "distribution_channel",
            Self::Division => "division",
            Self::OrderType => "order_type",
            Self::Status => "status",
            Self::RejectionStatus => "rejection_status",
            Self::DeliveryStatus => "delivery_status",
            Self::BillingStatus => "billing_status",
            Self::ProcessStatus => "process_status",
            Self::TotalNetAmount => "total_net_amount",
            Self::RequestedDeliveryDate => "requested_delivery_date",
            Self::CreatedDate => "created_date",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }

    /// The field named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What the field holds.
    pub fn kind(self) -> FieldKind {
        match self {
            Self::TotalNetAmount => FieldKind::Decimal,
            Self::RequestedDeliveryDate | Self::CreatedDate => FieldKind::Date,
            Self::CreatedAt | Self::UpdatedAt => FieldKind::Timestamp,
            _ => FieldKind::Text,
        }
    }

    /// Whether the column may be `NULL`.
    fn nullable(self) -> bool {
        matches!(
            self,
            Self::SapOrderNumber
                | Self::CustomerReference
                | Self::SalesOrganization
                | Self::DistributionChannel
                | Self::Division
                | Self::OrderType
                | Self::TotalNetAmount
                | Self::RequestedDeliveryDate
        )
    }

    /// The SQL expression of the field (fixed text, never input).
    fn sql(self) -> String {
        match self {
            Self::SalesOrderNumber => "COALESCE(sap_order_number, order_number)".into(),
            Self::RejectionStatus => {
                format!(
                    "(CASE WHEN NOT {REJECTED_LINE} THEN 'A' WHEN {OPEN_LINE} THEN 'B' ELSE 'C' END)"
                )
            }
            Self::DeliveryStatus => {
                "(CASE WHEN status IN ('delivered', 'billed') THEN 'C' ELSE 'A' END)".into()
            }
            Self::BillingStatus => "(CASE WHEN status = 'billed' THEN 'C' ELSE '' END)".into(),
            Self::ProcessStatus => format!(
                "(CASE WHEN status = 'billed' OR ({REJECTED_LINE} AND NOT {OPEN_LINE}) THEN 'C' \
                 WHEN status = 'delivered' OR {REJECTED_LINE} THEN 'B' ELSE 'A' END)"
            ),
            Self::CreatedDate => "created_at".into(),
            other => other.name().into(),
        }
    }
}

/// Comparison operators and text functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOp {
    /// Equal (`null`: the field is null).
    Eq,
    /// Not equal (`null`: the field is not null).
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Text holds the value.
    Contains,
    /// Text starts with the value.
    StartsWith,
    /// Text ends with the value.
    EndsWith,
}

impl SearchOp {
    /// Every operator.
    pub const ALL: [SearchOp; 9] = [
        Self::Eq,
        Self::Ne,
        Self::Gt,
        Self::Ge,
        Self::Lt,
        Self::Le,
        Self::Contains,
        Self::StartsWith,
        Self::EndsWith,
    ];

    /// The name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Contains => "contains",
            Self::StartsWith => "startswith",
            Self::EndsWith => "endswith",
        }
    }

    /// The operator named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Whether the operator is a text function (text fields only).
    pub fn is_text_function(self) -> bool {
        matches!(self, Self::Contains | Self::StartsWith | Self::EndsWith)
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Eq => " = ",
            Self::Ne => " <> ",
            Self::Gt => " > ",
            Self::Ge => " >= ",
            Self::Lt => " < ",
            Self::Le => " <= ",
            Self::Contains | Self::StartsWith | Self::EndsWith => " LIKE ",
        }
    }
}

/// A comparison's value, already of the field's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    /// `null` (with `eq` / `ne` only).
    Null,
    /// Text.
    Text(String),
    /// A decimal.
    Decimal(Decimal),
    /// A date.
    Date(NaiveDate),
    /// A point in time.
    Timestamp(DateTime<Utc>),
}

/// A filter tree, validated (fields, operators, value kinds, depth and size).
#[derive(Debug, Clone, PartialEq)]
pub enum SearchFilter {
    /// Every member holds.
    And(Vec<SearchFilter>),
    /// Some member holds.
    Or(Vec<SearchFilter>),
    /// The member does not hold.
    Not(Box<SearchFilter>),
    /// `field op value`.
    Compare(SearchField, SearchOp, SearchValue),
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending (`null` first).
    Asc,
    /// Descending (`null` last).
    Desc,
}

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The filter; `None` matches every order.
    pub filter: Option<SearchFilter>,
    /// Sort keys, most significant first; the order id always breaks ties.
    pub order_by: Vec<(SearchField, Direction)>,
    /// At most this many orders.
    pub top: i64,
    /// Leave out this many first.
    pub skip: i64,
    /// Whether to count every match as well.
    pub count: bool,
    /// Whether to load the orders' lines.
    pub include_items: bool,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            filter: None,
            order_by: Vec::new(),
            top: DEFAULT_TOP,
            skip: 0,
            count: false,
            include_items: true,
        }
    }
}

/// `\`, `%` and `_` escaped for a `LIKE ... ESCAPE '\'` pattern.
fn like_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn push_value(q: &mut QueryBuilder<Postgres>, v: &SearchValue) {
    match v {
        SearchValue::Null => q.push("NULL"),
        SearchValue::Text(s) => q.push_bind(s.clone()),
        SearchValue::Decimal(d) => q.push_bind(*d),
        SearchValue::Date(d) => q.push_bind(*d),
        SearchValue::Timestamp(t) => q.push_bind(*t),
    };
}

/// Midnight UTC starting `d`, and of the day after.
fn day_bounds(d: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    (start, start + chrono::Duration::days(1))
}

/// `created_date op d` as a range of `created_at` (so the `created_at` index serves it).
fn push_created_date(q: &mut QueryBuilder<Postgres>, op: SearchOp, d: NaiveDate) {
    let (start, next) = day_bounds(d);
    match op {
        SearchOp::Eq => {
            q.push("(created_at >= ")
                .push_bind(start)
                .push(" AND created_at < ")
                .push_bind(next)
                .push(")");
        }
        SearchOp::Ne => {
            q.push("(created_at < ")
                .push_bind(start)
                .push(" OR created_at >= ")
                .push_bind(next)
                .push(")");
        }
        SearchOp::Gt => {
            q.push("created_at >= ").push_bind(next);
        }
        SearchOp::Ge => {
            q.push("created_at >= ").push_bind(start);
        }
        SearchOp::Lt => {
            q.push("created_at < ").push_bind(start);
        }
        SearchOp::Le => {
            q.push("created_at < ").push_bind(next);
        }
        // Refused when the request is read (dates take no text function).
        SearchOp::Contains | SearchOp::StartsWith | SearchOp::EndsWith => {
            q.push("FALSE");
        }
    }
}

fn push_compare(
    q: &mut QueryBuilder<Postgres>,
    field: SearchField,
    op: SearchOp,
    value: &SearchValue,
) {
    let col = field.sql();
    match (value, op) {
        (SearchValue::Null, SearchOp::Eq) if field.nullable() => {
            q.push(format!("({col} IS NULL)"));
        }
        (SearchValue::Null, SearchOp::Ne) if field.nullable() => {
            q.push(format!("({col} IS NOT NULL)"));
        }
        // A column that is never null: `eq null` never holds, `ne null` always does.
        (SearchValue::Null, SearchOp::Ne) => {
            q.push("TRUE");
        }
        (SearchValue::Null, _) => {
            q.push("FALSE");
        }
        (SearchValue::Date(d), _) if field == SearchField::CreatedDate => {
            push_created_date(q, op, *d);
        }
        (SearchValue::Text(s), SearchOp::Contains | SearchOp::StartsWith | SearchOp::EndsWith) => {
            let e = like_escaped(s);
            let pattern = match op {
                SearchOp::Contains => format!("%{e}%"),
                SearchOp::StartsWith => format!("{e}%"),
                _ => format!("%{e}"),
            };
            // `NULL LIKE x` is NULL: the guard makes it false, so `not` holds for it.
            let guard = if field.nullable() {
                format!("{col} IS NOT NULL AND ")
            } else {
                String::new()
            };
            q.push(format!("({guard}{col}{}", op.sql()))
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        (_, SearchOp::Ne) if field.nullable() => {
            q.push(format!("({col} IS NULL OR {col} <> "));
            push_value(q, value);
            q.push(")");
        }
        (_, _) if field.nullable() => {
            q.push(format!("({col} IS NOT NULL AND {col}{}", op.sql()));
            push_value(q, value);
            q.push(")");
        }
        _ => {
            q.push(format!("({col}{}", op.sql()));
            push_value(q, value);
            q.push(")");
        }
    }
}

/// Writes the filter as a SQL condition.
pub fn push_filter(q: &mut QueryBuilder<Postgres>, f: &SearchFilter) {
    match f {
        SearchFilter::And(members) | SearchFilter::Or(members) => {
            let joiner = if matches!(f, SearchFilter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            q.push("(");
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    q.push(joiner);
                }
                push_filter(q, m);
            }
            if members.is_empty() {
                q.push(if matches!(f, SearchFilter::And(_)) {
                    "TRUE"
                } else {
                    "FALSE"
                });
            }
            q.push(")");
        }
        SearchFilter::Not(inner) => {
            q.push("(NOT ");
            push_filter(q, inner);
            q.push(")");
        }
        SearchFilter::Compare(field, op, value) => push_compare(q, *field, *op, value),
    }
}

/// `prefix` + `SELECT * FROM orders WHERE <filter> ORDER BY <keys>, id LIMIT top OFFSET skip`.
/// `prefix` is empty, or `EXPLAIN ` (tests check the plan of the very statement served).
pub fn select_statement(prefix: &str, s: &SearchQuery) -> QueryBuilder<Postgres> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("{prefix}SELECT * FROM orders"));
    if let Some(f) = &s.filter {
        q.push(" WHERE ");
        push_filter(&mut q, f);
    }
    q.push(" ORDER BY ");
    for (field, direction) in &s.order_by {
        let dir = match direction {
            Direction::Asc => " ASC NULLS FIRST",
            Direction::Desc => " DESC NULLS LAST",
        };
        q.push(format!("{}{dir}, ", field.sql()));
    }
    q.push("id ASC LIMIT ")
        .push_bind(s.top)
        .push(" OFFSET ")
        .push_bind(s.skip);
    q
}

/// `prefix` + `SELECT count(*) FROM orders WHERE <filter>` (`prefix` as for
/// [`select_statement`]).
pub fn count_statement(prefix: &str, s: &SearchQuery) -> QueryBuilder<Postgres> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("{prefix}SELECT count(*) FROM orders"));
    if let Some(f) = &s.filter {
        q.push(" WHERE ");
        push_filter(&mut q, f);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_written_into_the_statement() {
        let s = SearchQuery {
            filter: Some(SearchFilter::And(vec![
                SearchFilter::Compare(
                    SearchField::CustomerReference,
                    SearchOp::Contains,
                    SearchValue::Text("'; DROP TABLE orders; --".into()),
                ),
                SearchFilter::Not(Box::new(SearchFilter::Compare(
                    SearchField::CustomerId,
                    SearchOp::Eq,
                    SearchValue::Text("x".into()),
                ))),
            ])),
            ..SearchQuery::default()
        };
        let sql = select_statement("", &s).into_sql().as_str().to_owned();
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(sql.contains("customer_reference LIKE $1 ESCAPE"), "{sql}");
        assert!(sql.contains("(NOT (customer_id = $2))"), "{sql}");
    }

    #[test]
    fn like_patterns_escape_their_wildcards() {
        assert_eq!(like_escaped(r"50%_a\b"), r"50\%\_a\\b");
    }
}
