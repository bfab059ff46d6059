//! The OData V2 `$filter` language, as SAP's clients send it.
//!
//! [`parse`] turns the (already percent-decoded) text into an [`Expr`]; [`Expr::check`]
//! type-checks it against an [`EntityType`] (unknown properties, comparing a string with a
//! number, ...); [`Expr::evaluate`] decides whether one entity matches.
//!
//! Grammar (lowest precedence first; keywords are case-sensitive as in OData):
//!
//! ```text
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | compare
//! compare := primary (("eq"|"ne"|"gt"|"ge"|"lt"|"le") primary)?
//! primary := "(" or ")" | function "(" args ")" | literal | property
//! ```
//!
//! `not` applies to the comparison that follows it (`not A eq 'x'` is `not (A eq 'x')`), which
//! is what every client means. Literals: `'..'` (with `''` for a quote), `12`, `12L`, `10.5M`,
//! `1.5` / `1.5d` / `1.5f` (treated as decimals), `true`, `false`, `null`,
//! `datetime'2024-01-31T00:00:00.000'`, `datetimeoffset'2024-01-31T00:00:00Z'`,
//! `guid'..'`. Functions: `substringof`, `startswith`, `endswith`, `tolower`, `toupper`,
//! `trim`, `length`.
//!
//! Hostile input is bounded: at most [`MAX_FILTER_LEN`] characters and [`MAX_DEPTH`] levels of
//! nesting, so no input can exhaust the stack, and every failure is a [`FilterError`].

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::date::{JsonDate, parse_datetime_literal, parse_datetimeoffset_literal};
use crate::schema::{EdmType, EntityType};
use crate::value::{EdmValue, parse_decimal};

/// Longest `$filter` accepted, in characters.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Deepest nesting of parentheses, `not` and function calls accepted.
pub const MAX_DEPTH: usize = 64;

/// Why a `$filter` was refused. `position` is the 0-based character offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// Character offset in the decoded filter text.
    pub position: usize,
    /// What went wrong, in SAP Gateway's words where it has them.
    pub message: String,
}

impl FilterError {
    fn invalid_token(position: usize) -> Self {
        Self {
            position,
            message: format!("Invalid token detected at position {position}"),
        }
    }
    fn semantic(message: impl Into<String>) -> Self {
        Self {
            position: 0,
            message: message.into(),
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

/// Logical operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalOp {
    /// `and`
    And,
    /// `or`
    Or,
}

/// Supported functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `substringof(needle, haystack)`: whether `haystack` contains `needle`.
    SubstringOf,
    /// `startswith(text, prefix)`.
    StartsWith,
    /// `endswith(text, suffix)`.
    EndsWith,
    /// `tolower(text)`.
    ToLower,
    /// `toupper(text)`.
    ToUpper,
    /// `trim(text)`.
    Trim,
    /// `length(text)`.
    Length,
}

impl Function {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "substringof" => Self::SubstringOf,
            "startswith" => Self::StartsWith,
            "endswith" => Self::EndsWith,
            "tolower" => Self::ToLower,
            "toupper" => Self::ToUpper,
            "trim" => Self::Trim,
            "length" => Self::Length,
            _ => return None,
        })
    }
    fn arity(self) -> usize {
        match self {
            Self::SubstringOf | Self::StartsWith | Self::EndsWith => 2,
            _ => 1,
        }
    }
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value.
    Literal(EdmValue),
    /// A property of the entity being filtered.
    Property(String),
    /// `not expr`.
    Not(Box<Expr>),
    /// `left and right`, `left or right`.
    Logical(LogicalOp, Box<Expr>, Box<Expr>),
    /// `left eq right` and the other comparisons.
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(Function, Vec<Expr>),
}

/// The static type of an expression, for [`Expr::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterType {
    /// A string.
    String,
    /// A number (decimal or integer).
    Number,
    /// A boolean.
    Boolean,
    /// A date or timestamp.
    Date,
    /// A GUID.
    Guid,
    /// A time of day (`Edm.Time`; no literal form is parsed, so only `null` compares).
    Time,
    /// `null`, compatible with every type.
    Null,
}

impl FilterType {
    fn of(value: &EdmValue) -> Self {
        match value {
            EdmValue::Null => Self::Null,
            EdmValue::String(_) => Self::String,
            EdmValue::Decimal(_) | EdmValue::Int(_) => Self::Number,
            EdmValue::Boolean(_) => Self::Boolean,
            EdmValue::DateTime(_) | EdmValue::DateTimeOffset(_) => Self::Date,
            EdmValue::Guid(_) => Self::Guid,
            EdmValue::Time(_) => Self::Time,
        }
    }
    fn of_edm(edm: EdmType) -> Self {
        match edm {
            EdmType::String { .. } => Self::String,
            EdmType::Decimal { .. } => Self::Number,
            EdmType::Boolean => Self::Boolean,
            EdmType::DateTime | EdmType::DateTimeOffset => Self::Date,
            EdmType::Guid => Self::Guid,
            EdmType::Time => Self::Time,
        }
    }
    fn compatible(self, other: Self) -> bool {
        self == other
            || self == Self::Null
            || other == Self::Null
            || matches!(
                (self, other),
                (Self::Guid, Self::String) | (Self::String, Self::Guid)
            )
    }
}

/// Parses a decoded `$filter` value.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_FILTER_LEN {
        return Err(FilterError::semantic(format!(
            "$filter is longer than {MAX_FILTER_LEN} characters"
        )));
    }
    let tokens = tokenize(&chars)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: chars.len(),
    };
    let expr = parser.or()?;
    if let Some(t) = parser.tokens.get(parser.pos) {
        return Err(FilterError::invalid_token(t.at));
    }
    Ok(expr)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Comma,
    Word(String),
    Lit(EdmValue),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: usize,
}

fn tokenize(chars: &[char]) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::Open
            }
            ')' => {
                i += 1;
                Tok::Close
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '\'' => {
                let (s, next) = quoted(chars, i)?;
                i = next;
                Tok::Lit(EdmValue::String(s))
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let (v, next) = number(chars, i)?;
                i = next;
                Tok::Lit(v)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') {
                    let (s, next) = quoted(chars, i)?;
                    let v = typed_literal(&word, &s)
                        .ok_or_else(|| FilterError::invalid_token(start))?;
                    i = next;
                    Tok::Lit(v)
                } else {
                    match word.as_str() {
                        "true" => Tok::Lit(EdmValue::Boolean(true)),
                        "false" => Tok::Lit(EdmValue::Boolean(false)),
                        "null" => Tok::Lit(EdmValue::Null),
                        _ => Tok::Word(word),
                    }
                }
            }
            _ => return Err(FilterError::invalid_token(at)),
        };
        out.push(Token { tok, at });
    }
    Ok(out)
}

/// Reads `'...'` starting at `start` (the opening quote); `''` is one quote.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(FilterError::invalid_token(start)),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((s, i + 1)),
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

fn number(chars: &[char], start: usize) -> Result<(EdmValue, usize), FilterError> {
    let mut i = start;
    if chars[i] == '-' {
        i += 1;
    }
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
        i += 1;
    }
    let text: String = chars[start..i].iter().collect();
    let suffix = chars.get(i).copied().filter(|c| "mMdDfFlL".contains(*c));
    if suffix.is_some() {
        i += 1;
    }
    if chars
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
    {
        return Err(FilterError::invalid_token(start));
    }
    let bad = || FilterError::invalid_token(start);
    let value = match suffix {
        None | Some('l' | 'L') if !text.contains('.') => {
            EdmValue::Int(text.parse::<i64>().map_err(|_| bad())?)
        }
        Some('l' | 'L') => return Err(bad()),
        _ => EdmValue::Decimal(parse_decimal(&text).ok_or_else(bad)?),
    };
    Ok((value, i))
}

fn typed_literal(prefix: &str, body: &str) -> Option<EdmValue> {
    match prefix {
        "datetime" => {
            parse_datetime_literal(body).map(|d| EdmValue::DateTime(JsonDate::from_utc(d)))
        }
        "datetimeoffset" => parse_datetimeoffset_literal(body)
            .map(|d| EdmValue::DateTimeOffset(JsonDate::from_utc(d))),
        "guid" => is_guid(body).then(|| EdmValue::Guid(body.to_ascii_lowercase())),
        _ => None,
    }
}

fn is_guid(s: &str) -> bool {
    crate::value::is_guid(s)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }
    fn here(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.at)
    }
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn expect(&mut self, tok: &Tok) -> Result<(), FilterError> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(FilterError::invalid_token(self.here()))
        }
    }
    fn descend(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError {
                position: self.here(),
                message: format!("$filter is nested deeper than {MAX_DEPTH} levels"),
            });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Logical(LogicalOp::Or, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.not()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.not()?;
            left = Expr::Logical(LogicalOp::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.peek_word("not") {
            self.pos += 1;
            self.descend()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, FilterError> {
        let left = self.primary()?;
        let op = match self.peek() {
            Some(Tok::Word(w)) => match w.as_str() {
                "eq" => Some(CompareOp::Eq),
                "ne" => Some(CompareOp::Ne),
                "gt" => Some(CompareOp::Gt),
                "ge" => Some(CompareOp::Ge),
                "lt" => Some(CompareOp::Lt),
                "le" => Some(CompareOp::Le),
                "and" | "or" => None,
                _ => return Err(FilterError::invalid_token(self.here())),
            },
            _ => None,
        };
        let Some(op) = op else { return Ok(left) };
        self.pos += 1;
        let right = self.primary()?;
        Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let at = self.here();
        let Some(tok) = self.peek().cloned() else {
            return Err(FilterError::invalid_token(at));
        };
        self.pos += 1;
        match tok {
            Tok::Open => {
                self.descend()?;
                let inner = self.or()?;
                self.expect(&Tok::Close)?;
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Lit(v) => Ok(Expr::Literal(v)),
            Tok::Word(w) if self.peek() == Some(&Tok::Open) => {
                let f = Function::from_name(&w).ok_or_else(|| FilterError {
                    position: at,
                    message: format!("Function '{w}' is not supported"),
                })?;
                self.pos += 1;
                self.descend()?;
                let mut args = vec![self.or()?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    args.push(self.or()?);
                }
                self.expect(&Tok::Close)?;
                self.depth -= 1;
                if args.len() != f.arity() {
                    return Err(FilterError {
                        position: at,
                        message: format!("Function '{w}' takes {} argument(s)", f.arity()),
                    });
                }
                Ok(Expr::Call(f, args))
            }
            Tok::Word(w)
                if !matches!(
                    w.as_str(),
                    "and" | "or" | "not" | "eq" | "ne" | "gt" | "ge" | "lt" | "le"
                ) =>
            {
                Ok(Expr::Property(w))
            }
            _ => Err(FilterError::invalid_token(at)),
        }
    }
}

impl Expr {
    /// Type-checks the expression against `entity`: every property must exist, operands of a
    /// comparison must have compatible types, and the whole must be a boolean condition.
    pub fn check(&self, entity: &EntityType) -> Result<(), FilterError> {
        match self.type_of(entity)? {
            FilterType::Boolean => Ok(()),
            _ => Err(FilterError::semantic(
                "$filter must be a boolean condition (e.g. Property eq 'value')",
            )),
        }
    }

    fn type_of(&self, entity: &EntityType) -> Result<FilterType, FilterError> {
        Ok(match self {
            Expr::Literal(v) => FilterType::of(v),
            Expr::Property(name) => {
                let p = entity.property(name).ok_or_else(|| {
                    FilterError::semantic(format!(
                        "Property {name} not found in type {}",
                        entity.name
                    ))
                })?;
                FilterType::of_edm(p.edm)
            }
            Expr::Not(inner) => {
                if inner.type_of(entity)? != FilterType::Boolean {
                    return Err(FilterError::semantic("Operand of 'not' must be boolean"));
                }
                FilterType::Boolean
            }
            Expr::Logical(op, l, r) => {
                for side in [l, r] {
                    if side.type_of(entity)? != FilterType::Boolean {
                        return Err(FilterError::semantic(format!(
                            "Operands of '{}' must be boolean",
                            if *op == LogicalOp::And { "and" } else { "or" }
                        )));
                    }
                }
                FilterType::Boolean
            }
            Expr::Compare(_, l, r) => {
                let (lt, rt) = (l.type_of(entity)?, r.type_of(entity)?);
                if !lt.compatible(rt) {
                    return Err(FilterError::semantic(format!(
                        "Incompatible types in comparison: {lt:?} and {rt:?}"
                    )));
                }
                FilterType::Boolean
            }
            Expr::Call(f, args) => {
                for a in args {
                    let t = a.type_of(entity)?;
                    if !matches!(t, FilterType::String | FilterType::Null) {
                        return Err(FilterError::semantic(format!(
                            "Arguments of {f:?} must be strings"
                        )));
                    }
                }
                match f {
                    Function::SubstringOf | Function::StartsWith | Function::EndsWith => {
                        FilterType::Boolean
                    }
                    Function::Length => FilterType::Number,
                    _ => FilterType::String,
                }
            }
        })
    }

    /// Whether the entity whose properties `lookup` returns matches. Call [`Expr::check`] first;
    /// an unchecked expression of the wrong type simply does not match.
    pub fn evaluate(&self, lookup: &dyn Fn(&str) -> EdmValue) -> bool {
        matches!(self.value(lookup), EdmValue::Boolean(true))
    }

    fn value(&self, lookup: &dyn Fn(&str) -> EdmValue) -> EdmValue {
        match self {
            Expr::Literal(v) => v.clone(),
            Expr::Property(name) => lookup(name),
            Expr::Not(inner) => match inner.value(lookup) {
                EdmValue::Boolean(b) => EdmValue::Boolean(!b),
                _ => EdmValue::Null,
            },
            Expr::Logical(op, l, r) => {
                let l = matches!(l.value(lookup), EdmValue::Boolean(true));
                let r = matches!(r.value(lookup), EdmValue::Boolean(true));
                EdmValue::Boolean(match op {
                    LogicalOp::And => l && r,
                    LogicalOp::Or => l || r,
                })
            }
            Expr::Compare(op, l, r) => {
                let (l, r) = (l.value(lookup), r.value(lookup));
                let ord = l.compare(&r);
                let null_involved = matches!(l, EdmValue::Null) || matches!(r, EdmValue::Null);
                EdmValue::Boolean(match (op, ord) {
                    (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
                    (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
                    (CompareOp::Eq, None) => false,
                    (CompareOp::Ne, None) => null_involved,
                    (_, None) => false,
                    (_, Some(_)) if null_involved => false,
                    (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
                    (CompareOp::Ge, Some(o)) => o != Ordering::Less,
                    (CompareOp::Lt, Some(o)) => o == Ordering::Less,
                    (CompareOp::Le, Some(o)) => o != Ordering::Greater,
                })
            }
            Expr::Call(f, args) => {
                let strings: Vec<Option<String>> = args
                    .iter()
                    .map(|a| match a.value(lookup) {
                        EdmValue::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                let arg = |i: usize| strings.get(i).cloned().flatten();
                match f {
                    Function::SubstringOf => match (arg(0), arg(1)) {
                        (Some(needle), Some(hay)) => EdmValue::Boolean(hay.contains(&needle)),
                        _ => EdmValue::Boolean(false),
                    },
                    Function::StartsWith => match (arg(0), arg(1)) {
                        (Some(s), Some(p)) => EdmValue::Boolean(s.starts_with(&p)),
                        _ => EdmValue::Boolean(false),
                    },
                    Function::EndsWith => match (arg(0), arg(1)) {
                        (Some(s), Some(p)) => EdmValue::Boolean(s.ends_with(&p)),
                        _ => EdmValue::Boolean(false),
                    },
                    Function::ToLower => {
                        arg(0).map_or(EdmValue::Null, |s| EdmValue::String(s.to_lowercase()))
                    }
                    Function::ToUpper => {
                        arg(0).map_or(EdmValue::Null, |s| EdmValue::String(s.to_uppercase()))
                    }
                    Function::Trim => {
                        arg(0).map_or(EdmValue::Null, |s| EdmValue::String(s.trim().to_owned()))
                    }
                    Function::Length => arg(0).map_or(EdmValue::Null, |s| {
                        EdmValue::Decimal(Decimal::from(s.chars().count()))
                    }),
                }
            }
        }
    }

    /// The names of every property the expression reads.
    pub fn properties(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_properties(&mut out);
        out
    }

    fn collect_properties<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Property(p) => out.push(p),
            Expr::Literal(_) => {}
            Expr::Not(e) => e.collect_properties(out),
            Expr::Logical(_, l, r) | Expr::Compare(_, l, r) => {
                l.collect_properties(out);
                r.collect_properties(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.collect_properties(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SALES_ORDER, SALES_ORDER_ITEM};
    use std::collections::HashMap;

    fn order(pairs: &[(&str, EdmValue)]) -> impl Fn(&str) -> EdmValue + use<> {
        let map: HashMap<String, EdmValue> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        move |name: &str| {
            map.get(name)
                .cloned()
                .unwrap_or(EdmValue::String(String::new()))
        }
    }

    fn s(v: &str) -> EdmValue {
        EdmValue::String(v.to_owned())
    }

    fn matches(filter: &str, row: &dyn Fn(&str) -> EdmValue) -> bool {
        let e = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        e.check(&SALES_ORDER)
            .unwrap_or_else(|e| panic!("{filter}: {e}"));
        e.evaluate(row)
    }

    #[test]
    fn the_sdk_filter_with_escaped_quotes_matches_the_exact_string() {
        let row = order(&[("PurchaseOrderByCustomer", s("A B&C'D/é"))]);
        assert!(matches("(PurchaseOrderByCustomer eq 'A B&C''D/é')", &row));
        assert!(!matches("(PurchaseOrderByCustomer eq 'A B&C')", &row));
    }

    #[test]
    fn comparison_and_logical_operators_follow_odata_precedence() {
        let row = order(&[
            ("SoldToParty", s("17100001")),
            ("SalesOrderType", s("OR")),
            ("TotalNetAmount", EdmValue::Decimal(Decimal::new(5265, 2))),
        ]);
        assert!(matches(
            "SoldToParty eq '17100001' and SalesOrderType eq 'OR'",
            &row
        ));
        assert!(matches(
            "SoldToParty eq 'x' or SalesOrderType eq 'OR' and TotalNetAmount gt 50M",
            &row
        ));
        assert!(!matches(
            "(SoldToParty eq 'x' or SalesOrderType eq 'OR') and TotalNetAmount gt 60M",
            &row
        ));
        assert!(matches(
            "TotalNetAmount ge 52.65M and TotalNetAmount le 52.65M",
            &row
        ));
        assert!(matches(
            "TotalNetAmount lt 53 and TotalNetAmount ne 1",
            &row
        ));
        assert!(matches("not SoldToParty eq 'x'", &row));
        assert!(matches(
            "not (SoldToParty eq 'x') and SoldToParty ne 'y'",
            &row
        ));
        assert!(!matches("not(SoldToParty eq '17100001')", &row));
    }

    #[test]
    fn string_functions_work_as_sap_clients_use_them() {
        let row = order(&[("PurchaseOrderByCustomer", s("SDK-12345"))]);
        assert!(matches(
            "substringof('K-12', PurchaseOrderByCustomer)",
            &row
        ));
        assert!(matches(
            "substringof('K-12', PurchaseOrderByCustomer) eq true",
            &row
        ));
        assert!(matches("startswith(PurchaseOrderByCustomer, 'SDK')", &row));
        assert!(!matches("startswith(PurchaseOrderByCustomer, 'sdk')", &row));
        assert!(matches(
            "startswith(tolower(PurchaseOrderByCustomer), 'sdk')",
            &row
        ));
        assert!(matches(
            "endswith(PurchaseOrderByCustomer,'45') and length(PurchaseOrderByCustomer) eq 9",
            &row
        ));
    }

    #[test]
    fn datetime_literals_compare_with_json_dates() {
        let day = JsonDate::from_millis(1_706_659_200_000); // 2024-01-31T00:00:00Z
        let row = order(&[
            ("CreationDate", EdmValue::DateTime(day)),
            (
                "LastChangeDateTime",
                EdmValue::DateTimeOffset(JsonDate::from_millis(1_706_659_200_500)),
            ),
        ]);
        assert!(matches(
            "CreationDate eq datetime'2024-01-31T00:00:00.000'",
            &row
        ));
        assert!(matches("CreationDate ge datetime'2024-01-31T00:00'", &row));
        assert!(matches(
            "LastChangeDateTime gt datetimeoffset'2024-01-31T00:00:00Z'",
            &row
        ));
        assert!(matches(
            "LastChangeDateTime lt datetimeoffset'2024-01-31T01:00:01%2B01:00'"
                .replace("%2B", "+")
                .as_str(),
            &row
        ));
        assert!(matches(
            "LastChangeDate eq null",
            &order(&[("LastChangeDate", EdmValue::Null)])
        ));
    }

    #[test]
    fn guid_and_numeric_literal_forms_parse() {
        assert_eq!(
            parse("X eq guid'0050569A-1234-1EDB-8BAB-123456789ABC'").unwrap(),
            Expr::Compare(
                CompareOp::Eq,
                Box::new(Expr::Property("X".into())),
                Box::new(Expr::Literal(EdmValue::Guid(
                    "0050569a-1234-1edb-8bab-123456789abc".into()
                )))
            )
        );
        for ok in [
            "X eq 10.5M",
            "X eq 10.5m",
            "X eq -3",
            "X eq 12L",
            "X eq 1.5d",
            "X eq 2.5f",
            "X eq 3.0",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "X eq 1.2.3",
            "X eq 12x",
            "X eq 1.5L",
            "X eq guid'nope'",
            "X eq time'PT1H'",
            "X eq binary'00'",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn syntax_errors_report_the_position_like_sap_gateway() {
        let e = parse("SoldToParty eq '1' and").unwrap_err();
        assert_eq!(e.message, "Invalid token detected at position 22");
        let e = parse("SoldToParty eq '1").unwrap_err();
        assert_eq!(e.position, 15);
        assert!(parse("SoldToParty eq '1' ; DROP TABLE orders").is_err());
        assert!(parse("SoldToParty == '1'").is_err());
        assert!(parse("SoldToParty eq '1')").is_err());
        assert!(parse("(SoldToParty eq '1'").is_err());
        assert!(parse("").is_err());
        assert!(parse("foo(SoldToParty)").is_err());
        assert!(parse("substringof('a')").is_err());
    }

    #[test]
    fn type_errors_and_unknown_properties_fail_the_check() {
        let check = |f: &str| parse(f).unwrap().check(&SALES_ORDER);
        assert!(
            check("NoSuchProperty eq '1'")
                .unwrap_err()
                .message
                .contains("NoSuchProperty")
        );
        assert!(check("SoldToParty eq 17100001").is_err());
        assert!(check("TotalNetAmount eq 'abc'").is_err());
        assert!(check("SoldToParty").is_err());
        assert!(check("SoldToParty eq '1' and 'x'").is_err());
        assert!(check("CreationDate eq '2024-01-01'").is_err());
        assert!(
            parse("Material eq 'TG11'")
                .unwrap()
                .check(&SALES_ORDER_ITEM)
                .is_ok()
        );
        assert!(
            parse("Material eq 'TG11'")
                .unwrap()
                .check(&SALES_ORDER)
                .is_err()
        );
    }

    #[test]
    fn injection_looking_strings_are_just_string_values() {
        let row = order(&[("PurchaseOrderByCustomer", s("x' or '1'='1"))]);
        assert!(matches(
            "PurchaseOrderByCustomer eq 'x'' or ''1''=''1'",
            &row
        ));
        assert!(!matches(
            "PurchaseOrderByCustomer eq 'x' or SoldToParty eq '1'",
            &row
        ));
    }

    #[test]
    fn deeply_nested_or_huge_filters_are_refused_without_overflowing_the_stack() {
        let deep = format!(
            "{}SoldToParty eq '1'{}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert!(parse(&deep).is_err());
        let nots = format!("{}SoldToParty eq '1'", "not ".repeat(10_000));
        assert!(parse(&nots).is_err());
        let calls = format!("{}SoldToParty{}", "tolower(".repeat(1000), ")".repeat(1000));
        assert!(parse(&calls).is_err());
        let long = format!("SoldToParty eq '{}'", "a".repeat(MAX_FILTER_LEN));
        assert!(parse(&long).is_err());
        let ok_depth = format!("{}SoldToParty eq '1'{}", "(".repeat(30), ")".repeat(30));
        assert!(parse(&ok_depth).is_ok());
    }

    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let alphabet: Vec<char> =
            "()' ,-.0123456789MLdfeqnotandrgl_SoldToPartyxX/ü\u{0}\t'datetimeguid"
                .chars()
                .collect();
        for _ in 0..20_000 {
            let len = rng.random_range(0..60);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if let Ok(e) = parse(&text) {
                let _ = e.check(&SALES_ORDER);
                let _ = e.evaluate(&|_| EdmValue::String("x".into()));
            }
        }
        // Mutations of a valid filter: every prefix and every single-character deletion.
        let good = "(PurchaseOrderByCustomer eq 'a''b' and TotalNetAmount gt 10.5M) or not startswith(SoldToParty,'171')";
        let chars: Vec<char> = good.chars().collect();
        for i in 0..chars.len() {
            let prefix: String = chars[..i].iter().collect();
            let _ = parse(&prefix);
            let mut deleted = chars.clone();
            deleted.remove(i);
            let _ = parse(&deleted.iter().collect::<String>());
        }
    }
}
