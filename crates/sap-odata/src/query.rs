//! System query options parsed from a raw query string.
//!
//! [`QueryOptions::parse`] takes the query string exactly as it arrived (percent-encoded, `+`
//! meaning space) and returns typed options. It checks syntax only; names are checked against
//! an entity type by [`QueryOptions::check`], so the same parse serves any entity set.
//! `sap-client` travels as a custom query option and is returned too.

use crate::filter::{self, Expr, FilterError};
use crate::schema::EntityType;
use crate::uri::percent_decode;

/// Largest `$top` / `$skip` accepted.
pub const MAX_TOP_SKIP: u64 = 1_000_000_000;

/// SAP Gateway's message id for a `$filter` that does not parse.
pub const FILTER_SYNTAX: &str = "005056A509B11EE1B9A8FEC11C21578E";
/// SAP Gateway's message id for any other refused query option (or name in one).
pub const QUERY_INVALID: &str = "/IWBEP/CM_MGW_RT/001";

impl QueryError {
    /// SAP's message id for this refusal (every query refusal is a 400 Bad Request).
    pub fn sap_code(&self) -> &'static str {
        match self {
            QueryError::Filter(f) if f.message.starts_with("Invalid token") => FILTER_SYNTAX,
            _ => QUERY_INVALID,
        }
    }
}

/// The window of a sorted list a server answers: `$skip`, `$top`, `$skiptoken` (the number of
/// entries delivered on earlier pages, as S/4 and the emulator hand it out) and the server's
/// page size. One computation for the emulator and the proxy's OData face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Index of the first entry of this page in the sorted, filtered list.
    pub start: usize,
    /// Most entries of this page.
    pub take: usize,
    /// Entries delivered before this page (the `$skiptoken` sent).
    pub delivered: usize,
    /// Entries the client still wants (`$top` minus delivered), `usize::MAX` without `$top`.
    pub wanted: usize,
}

impl Window {
    /// The window of `query` at `page_size`; a `$skiptoken` that is not a count is refused.
    pub fn of(query: &QueryOptions, page_size: usize) -> Result<Self, QueryError> {
        let delivered = match &query.skiptoken {
            None => 0,
            Some(t) => t
                .parse::<usize>()
                .ok()
                .filter(|_| t.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad_value("$skiptoken", t))?,
        };
        let skip = usize::try_from(query.skip.unwrap_or(0)).unwrap_or(usize::MAX);
        let wanted = query
            .top
            .map(|t| {
                usize::try_from(t)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(delivered)
            })
            .unwrap_or(usize::MAX);
        Ok(Self {
            start: skip.saturating_add(delivered),
            take: wanted.min(page_size),
            delivered,
            wanted,
        })
    }

    /// The `$skiptoken` of the next page when this page was cut by the page size, given how
    /// many entries were `available` from `start` on (or at least `take + 1` of them).
    pub fn next_token(&self, available: usize) -> Option<usize> {
        let got = self.take.min(available);
        (got < self.wanted.min(available)).then_some(self.delivered + got)
    }
}

/// The `__next` link of a page: the request's own URL (`service_root` + `below_root`) with
/// its query options, `$skiptoken` replaced by `token`.
pub fn next_link(service_root: &str, below_root: &str, raw_query: &str, token: usize) -> String {
    let mut params: Vec<&str> = raw_query
        .split('&')
        .filter(|p| {
            !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken=")
        })
        .collect();
    let token_param = format!("$skiptoken={token}");
    params.push(&token_param);
    format!("{service_root}{below_root}?{}", params.join("&"))
}

/// Why the query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The query string is not validly percent-encoded.
    #[error("Invalid percent-encoding in the query string")]
    BadEncoding,
    /// A `$option` that OData V2 does not define.
    #[error("System query option '{0}' is not supported")]
    UnknownOption(String),
    /// The same system query option given twice.
    #[error("System query option '{0}' is specified more than once")]
    Duplicate(String),
    /// A value that does not parse (`$top=abc`).
    #[error("Invalid value '{value}' for system query option '{option}'")]
    BadValue {
        /// The option, e.g. `$top`.
        option: &'static str,
        /// The offending value (truncated).
        value: String,
    },
    /// `$filter` did not parse or type-check.
    #[error("{0}")]
    Filter(#[from] FilterError),
    /// A property or navigation name that the entity type does not have.
    #[error("Property '{name}' not found in type '{entity}'")]
    UnknownProperty {
        /// The name used.
        name: String,
        /// The entity type.
        entity: &'static str,
    },
}

/// One item of `$select`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`: every structural property.
    All,
    /// A structural property, or a navigation property selected as a whole.
    Property(String),
    /// `nav/*` or `nav/Property`: inside an expanded navigation (`None` = `*`).
    Nested {
        /// The navigation property.
        navigation: String,
        /// The property inside it, or `None` for `*`.
        property: Option<String>,
    },
}

/// Sort direction in `$orderby`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    /// `asc` (default).
    Ascending,
    /// `desc`.
    Descending,
}

/// One key of `$orderby`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    /// Property to sort by.
    pub property: String,
    /// Direction.
    pub direction: SortDirection,
}

/// `$format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `json`.
    Json,
    /// `xml` / `atom`.
    Xml,
}

/// Parsed query options.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// `$select` items; empty when absent.
    pub select: Vec<SelectItem>,
    /// `$expand` navigation paths (`to_Item`, or `to_Item/to_ScheduleLine` split on `/`).
    pub expand: Vec<Vec<String>>,
    /// `$filter`, parsed.
    pub filter: Option<Expr>,
    /// `$orderby` keys.
    pub orderby: Vec<OrderBy>,
    /// `$top`.
    pub top: Option<u64>,
    /// `$skip`.
    pub skip: Option<u64>,
    /// `$skiptoken` (server-driven paging).
    pub skiptoken: Option<String>,
    /// `$inlinecount=allpages`.
    pub inline_count: bool,
    /// `$format`.
    pub format: Option<Format>,
    /// `sap-client` given as a query parameter.
    pub sap_client: Option<String>,
}

impl QueryOptions {
    /// Parses a raw query string (the part after `?`, without it).
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let mut q = QueryOptions::default();
        let mut seen: Vec<String> = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k, true).map_err(|_| QueryError::BadEncoding)?;
            let value = percent_decode(v, true).map_err(|_| QueryError::BadEncoding)?;
            if key.starts_with('$') {
                if seen.contains(&key) {
                    return Err(QueryError::Duplicate(key));
                }
                seen.push(key.clone());
            }
            match key.as_str() {
                "$select" => q.select = parse_select(&value)?,
                "$expand" => q.expand = parse_expand(&value)?,
                "$filter" => q.filter = Some(filter::parse(&value)?),
                "$orderby" => q.orderby = parse_orderby(&value)?,
                "$top" => q.top = Some(parse_count("$top", &value)?),
                "$skip" => q.skip = Some(parse_count("$skip", &value)?),
                "$skiptoken" => q.skiptoken = Some(value),
                "$inlinecount" => {
                    q.inline_count = match value.as_str() {
                        "allpages" => true,
                        "none" => false,
                        _ => return Err(bad_value("$inlinecount", &value)),
                    }
                }
                "$format" => {
                    q.format = Some(match value.as_str() {
                        "json" | "application/json" => Format::Json,
                        "xml" | "atom" | "application/atom+xml" | "application/xml" => Format::Xml,
                        _ => return Err(bad_value("$format", &value)),
                    })
                }
                "sap-client" => q.sap_client = Some(value),
                k if k.starts_with('$') => return Err(QueryError::UnknownOption(key)),
                _ => {} // custom query options (sap-language, search, ...) are ignored
            }
        }
        Ok(q)
    }

    /// Checks every name in `$select`, `$expand`, `$orderby` and `$filter` against `entity`
    /// (nested selections against the navigation's target, found with `target_of`).
    pub fn check(
        &self,
        entity: &EntityType,
        target_of: &dyn Fn(&str) -> Option<&'static EntityType>,
    ) -> Result<(), QueryError> {
        let unknown = |name: &str, entity: &EntityType| QueryError::UnknownProperty {
            name: name.to_owned(),
            entity: entity.name,
        };
        for item in &self.select {
            match item {
                SelectItem::All => {}
                SelectItem::Property(p) => {
                    if entity.property(p).is_none() && entity.navigation(p).is_none() {
                        return Err(unknown(p, entity));
                    }
                }
                SelectItem::Nested {
                    navigation,
                    property,
                } => {
                    let nav = entity
                        .navigation(navigation)
                        .ok_or_else(|| unknown(navigation, entity))?;
                    if let (Some(p), Some(target)) = (property, target_of(nav.target))
                        && target.property(p).is_none()
                    {
                        return Err(unknown(p, target));
                    }
                }
            }
        }
        for path in &self.expand {
            let first = path.first().map(String::as_str).unwrap_or_default();
            if entity.navigation(first).is_none() {
                return Err(unknown(first, entity));
            }
        }
        for o in &self.orderby {
            if entity.property(&o.property).is_none() {
                return Err(unknown(&o.property, entity));
            }
        }
        if let Some(f) = &self.filter {
            f.check(entity)?;
        }
        Ok(())
    }

    /// Whether `navigation` is expanded (`$expand=to_Item`).
    pub fn expands(&self, navigation: &str) -> bool {
        self.expand
            .iter()
            .any(|p| p.first().is_some_and(|n| n == navigation))
    }

    /// Which top-level properties to write: `None` means all of them.
    pub fn selected_properties(&self) -> Option<Vec<&str>> {
        if self.select.is_empty() || self.select.contains(&SelectItem::All) {
            return None;
        }
        Some(
            self.select
                .iter()
                .filter_map(|i| match i {
                    SelectItem::Property(p) => Some(p.as_str()),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Which properties to write inside the expanded `navigation`: `None` means all.
    pub fn selected_in(&self, navigation: &str) -> Option<Vec<&str>> {
        if self.select.is_empty()
            || self.select.contains(&SelectItem::All) && !self.has_nested(navigation)
        {
            return None;
        }
        let mut out = Vec::new();
        for item in &self.select {
            match item {
                SelectItem::Property(p) if p == navigation => return None,
                SelectItem::Nested {
                    navigation: n,
                    property,
                } if n == navigation => match property {
                    None => return None,
                    Some(p) => out.push(p.as_str()),
                },
                _ => {}
            }
        }
        Some(out)
    }

    fn has_nested(&self, navigation: &str) -> bool {
        self.select
            .iter()
            .any(|i| matches!(i, SelectItem::Nested { navigation: n, .. } if n == navigation))
    }

    /// Whether `$select` names `navigation` (as `nav` or `nav/...`), which writes it inline
    /// when expanded and leaves it out otherwise.
    pub fn selects_navigation(&self, navigation: &str) -> bool {
        self.select.is_empty()
            || self.select.contains(&SelectItem::All)
            || self.select.iter().any(|i| match i {
                SelectItem::Property(p) => p == navigation,
                SelectItem::Nested { navigation: n, .. } => n == navigation,
                SelectItem::All => true,
            })
    }
}

fn bad_value(option: &'static str, value: &str) -> QueryError {
    QueryError::BadValue {
        option,
        value: value.chars().take(80).collect(),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_select(value: &str) -> Result<Vec<SelectItem>, QueryError> {
    value
        .split(',')
        .map(str::trim)
        .map(|item| {
            if item == "*" {
                return Ok(SelectItem::All);
            }
            match item.split_once('/') {
                None if valid_name(item) => Ok(SelectItem::Property(item.to_owned())),
                Some((nav, "*")) if valid_name(nav) => Ok(SelectItem::Nested {
                    navigation: nav.to_owned(),
                    property: None,
                }),
                Some((nav, prop)) if valid_name(nav) && valid_name(prop) => {
                    Ok(SelectItem::Nested {
                        navigation: nav.to_owned(),
                        property: Some(prop.to_owned()),
                    })
                }
                _ => Err(bad_value("$select", value)),
            }
        })
        .collect()
}

fn parse_expand(value: &str) -> Result<Vec<Vec<String>>, QueryError> {
    value
        .split(',')
        .map(str::trim)
        .map(|path| {
            let parts: Vec<String> = path.split('/').map(str::to_owned).collect();
            if parts.iter().all(|p| valid_name(p)) && parts.len() <= 4 {
                Ok(parts)
            } else {
                Err(bad_value("$expand", value))
            }
        })
        .collect()
}

fn parse_orderby(value: &str) -> Result<Vec<OrderBy>, QueryError> {
    value
        .split(',')
        .map(str::trim)
        .map(|item| {
            let mut words = item.split_whitespace();
            let property = words.next().filter(|p| valid_name(p));
            let direction = match words.next() {
                None | Some("asc") => Some(SortDirection::Ascending),
                Some("desc") => Some(SortDirection::Descending),
                Some(_) => None,
            };
            match (property, direction, words.next()) {
                (Some(p), Some(d), None) => Ok(OrderBy {
                    property: p.to_owned(),
                    direction: d,
                }),
                _ => Err(bad_value("$orderby", value)),
            }
        })
        .collect()
}

fn parse_count(option: &'static str, value: &str) -> Result<u64, QueryError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n <= MAX_TOP_SKIP && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| bad_value(option, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SALES_ORDER, entity_type};

    fn parse_ok(raw: &str) -> QueryOptions {
        QueryOptions::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn the_sdk_read_with_items_selects_everything_and_expands_items() {
        let q = parse_ok("$select=*,to_Item/*&$expand=to_Item");
        assert!(q.expands("to_Item"));
        assert_eq!(q.selected_properties(), None);
        assert_eq!(q.selected_in("to_Item"), None);
        assert!(q.check(&SALES_ORDER, &entity_type).is_ok());
    }

    #[test]
    fn the_sdk_partial_select_names_header_and_item_properties() {
        let q = parse_ok(
            "$select=SalesOrder,PurchaseOrderByCustomer,to_Item/SalesOrderItem,to_Item/Material,to_Item/RequestedQuantity&$expand=to_Item&$filter=(PurchaseOrderByCustomer%20eq%20'SDK-1795529897537')&$top=5",
        );
        assert_eq!(
            q.selected_properties(),
            Some(vec!["SalesOrder", "PurchaseOrderByCustomer"])
        );
        assert_eq!(
            q.selected_in("to_Item"),
            Some(vec!["SalesOrderItem", "Material", "RequestedQuantity"])
        );
        assert!(q.selects_navigation("to_Item"));
        assert!(!q.selects_navigation("to_Partner"));
        assert_eq!(q.top, Some(5));
        assert!(q.filter.is_some());
        assert!(q.check(&SALES_ORDER, &entity_type).is_ok());
    }

    #[test]
    fn orderby_top_skip_inlinecount_and_format_parse() {
        let q = parse_ok(
            "$orderby=SalesOrder%20desc,SoldToParty&$top=10&$skip=20&$inlinecount=allpages&$format=json&sap-client=100&sap-language=EN",
        );
        assert_eq!(q.orderby.len(), 2);
        assert_eq!(q.orderby[0].direction, SortDirection::Descending);
        assert_eq!(q.orderby[1].direction, SortDirection::Ascending);
        assert_eq!((q.top, q.skip), (Some(10), Some(20)));
        assert!(q.inline_count);
        assert_eq!(q.format, Some(Format::Json));
        assert_eq!(q.sap_client.as_deref(), Some("100"));
    }

    #[test]
    fn bad_values_unknown_options_and_duplicates_are_refused() {
        for bad in [
            "$top=abc",
            "$top=-1",
            "$top=+1",
            "$skip=1.5",
            "$inlinecount=some",
            "$format=csv",
            "$orderby=SalesOrder%20sideways",
            "$orderby=",
            "$select=a/b/c",
            "$select=",
            "$foo=1",
            "$top=1&$top=2",
            "$filter=SoldToParty%20eq",
            "$filter=%ZZ",
            "$expand=to_Item;drop",
        ] {
            assert!(QueryOptions::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked_against_the_entity_type() {
        let check = |raw: &str| parse_ok(raw).check(&SALES_ORDER, &entity_type);
        assert!(check("$select=Nope").is_err());
        assert!(check("$select=to_Item/Nope").is_err());
        assert!(check("$select=to_Nope/*").is_err());
        assert!(check("$expand=to_Nope").is_err());
        assert!(check("$orderby=Nope").is_err());
        assert!(check("$filter=Nope%20eq%201").is_err());
        assert!(check("$select=to_Item/Material&$expand=to_Item").is_ok());
    }
}
