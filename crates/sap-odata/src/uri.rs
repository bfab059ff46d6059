//! Resource paths and key predicates.
//!
//! A path below the service root is split on `/` **before** percent-decoding, so an encoded
//! `%2F` inside a key stays part of the key; each segment is then decoded and its key predicate
//! parsed. SAP's JavaScript client sends `A_SalesOrder(SalesOrder=%271%27)` with the quotes
//! percent-encoded and `''` doubling quotes inside the value; other clients use the positional
//! form `A_SalesOrder('1')`. Both are accepted.

use crate::schema::EntityType;

/// Why a URI part was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// A `%` not followed by two hex digits, or bytes that are not UTF-8 after decoding.
    #[error("Invalid percent-encoding in URI part {0:?}")]
    BadEncoding(String),
    /// A key predicate that does not parse or does not match the entity's keys.
    #[error("Invalid key predicate {0:?}")]
    BadKey(String),
    /// A segment of the resource path that does not parse.
    #[error("Resource not found for segment {0:?}")]
    BadSegment(String),
}

/// Decodes `%XX` escapes; with `plus_as_space`, `+` becomes a space (query strings).
pub fn percent_decode(input: &str, plus_as_space: bool) -> Result<String, UriError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| UriError::BadEncoding(truncate(input)))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| UriError::BadEncoding(truncate(input)))
}

/// Percent-encodes everything but unreserved characters and the few OData keeps raw in keys.
pub fn percent_encode_key_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~'!*$&+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// One part of a key predicate: `SalesOrder='1'` (named) or `'1'` (positional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart {
    /// The key property name for the named form.
    pub name: Option<String>,
    /// The string value, quotes removed and `''` undone.
    pub value: String,
}

/// One decoded segment of a resource path: a name and an optional key predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Entity set, navigation property or `$count`/`$value`.
    pub name: String,
    /// The parts of the key predicate, if the segment had parentheses.
    pub key: Option<Vec<KeyPart>>,
}

/// Splits a resource path below the service root (`/A_SalesOrder('1')/to_Item`) into decoded
/// segments. Empty segments (leading or trailing slashes) are dropped.
pub fn parse_resource_path(raw_path: &str) -> Result<Vec<Segment>, UriError> {
    raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|raw| parse_segment(&percent_decode(raw, false)?))
        .collect()
}

/// Parses one decoded segment such as `A_SalesOrder(SalesOrder='1')`.
pub fn parse_segment(segment: &str) -> Result<Segment, UriError> {
    let Some(open) = segment.find('(') else {
        if !valid_name(segment) {
            return Err(UriError::BadSegment(truncate(segment)));
        }
        return Ok(Segment {
            name: segment.to_owned(),
            key: None,
        });
    };
    let name = &segment[..open];
    let inner = segment[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| UriError::BadKey(truncate(segment)))?;
    if !valid_name(name) {
        return Err(UriError::BadSegment(truncate(segment)));
    }
    Ok(Segment {
        name: name.to_owned(),
        key: Some(parse_key_predicate(inner)?),
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Parses the inside of a key predicate: `SalesOrder='1',SalesOrderItem='10'` or `'1'`.
pub fn parse_key_predicate(inner: &str) -> Result<Vec<KeyPart>, UriError> {
    let bad = || UriError::BadKey(truncate(inner));
    let chars: Vec<char> = inner.chars().collect();
    let mut parts = Vec::new();
    let mut i = 0;
    loop {
        // optional `Name=`
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let name = if i < chars.len() && chars[i] == '=' && i > start {
            let n: String = chars[start..i].iter().collect();
            i += 1;
            Some(n)
        } else {
            i = start;
            None
        };
        // quoted string value, or a GUID as `guid'...'` (the document flow's DocRelationshipUUID)
        if chars[i..].starts_with(&['g', 'u', 'i', 'd', '\'']) {
            i += 4;
        }
        if chars.get(i) != Some(&'\'') {
            return Err(bad());
        }
        i += 1;
        let mut value = String::new();
        loop {
            match chars.get(i) {
                None => return Err(bad()),
                Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                    value.push('\'');
                    i += 2;
                }
                Some('\'') => {
                    i += 1;
                    break;
                }
                Some(c) => {
                    value.push(*c);
                    i += 1;
                }
            }
        }
        parts.push(KeyPart { name, value });
        match chars.get(i) {
            None => break,
            Some(',') => i += 1,
            Some(_) => return Err(bad()),
        }
    }
    let named = parts.iter().filter(|p| p.name.is_some()).count();
    if named != 0 && named != parts.len() {
        return Err(bad());
    }
    Ok(parts)
}

/// Matches key parts to the keys of `entity`, in key order. The positional form is accepted
/// for any number of keys (in declaration order); the named form in any order.
pub fn resolve_key(entity: &EntityType, parts: &[KeyPart]) -> Result<Vec<String>, UriError> {
    let bad = || UriError::BadKey(format!("{} key of {}", parts.len(), entity.name));
    if parts.len() != entity.keys.len() {
        return Err(bad());
    }
    if parts.iter().all(|p| p.name.is_none()) {
        return Ok(parts.iter().map(|p| p.value.clone()).collect());
    }
    entity
        .keys
        .iter()
        .map(|k| {
            let mut matching = parts.iter().filter(|p| p.name.as_deref() == Some(k));
            match (matching.next(), matching.next()) {
                (Some(p), None) => Ok(p.value.clone()),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// The key predicate as S/4HANA writes it in `__metadata.uri`: positional for one key
/// (`('1')`), named for several (`(SalesOrder='1',SalesOrderItem='10')`).
pub fn format_key(entity: &EntityType, values: &[&str]) -> String {
    let quote = |v: &str| format!("'{}'", percent_encode_key_value(&v.replace('\'', "''")));
    if entity.keys.len() == 1 {
        return format!("({})", quote(values.first().copied().unwrap_or_default()));
    }
    let parts: Vec<String> = entity
        .keys
        .iter()
        .zip(values)
        .map(|(k, v)| {
            let is_guid = entity
                .property(k)
                .is_some_and(|p| p.edm == crate::schema::EdmType::Guid);
            if is_guid {
                format!("{k}=guid{}", quote(v))
            } else {
                format!("{k}={}", quote(v))
            }
        })
        .collect();
    format!("({})", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SALES_ORDER, SALES_ORDER_ITEM};

    #[test]
    fn the_sdk_key_form_with_encoded_quotes_is_parsed() {
        let segs = parse_resource_path("/A_SalesOrder(SalesOrder=%271000001%27)").unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].name, "A_SalesOrder");
        let key = resolve_key(&SALES_ORDER, segs[0].key.as_ref().unwrap()).unwrap();
        assert_eq!(key, vec!["1000001"]);
    }

    #[test]
    fn doubled_quotes_and_encoded_spaces_in_keys_are_undone() {
        let segs = parse_resource_path("A_SalesOrder(SalesOrder=%27A''B%20C%27)/to_Item").unwrap();
        let key = resolve_key(&SALES_ORDER, segs[0].key.as_ref().unwrap()).unwrap();
        assert_eq!(key, vec!["A'B C"]);
        assert_eq!(segs[1].name, "to_Item");
    }

    #[test]
    fn an_encoded_slash_inside_a_key_stays_in_the_key() {
        let segs = parse_resource_path("A_SalesOrder('a%2Fb')").unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].key.as_ref().unwrap()[0].value, "a/b");
    }

    #[test]
    fn positional_and_named_item_keys_resolve_in_key_order() {
        let named = parse_key_predicate("SalesOrderItem='10',SalesOrder='1'").unwrap();
        assert_eq!(
            resolve_key(&SALES_ORDER_ITEM, &named).unwrap(),
            vec!["1", "10"]
        );
        let positional = parse_key_predicate("'1','10'").unwrap();
        assert_eq!(
            resolve_key(&SALES_ORDER_ITEM, &positional).unwrap(),
            vec!["1", "10"]
        );
    }

    #[test]
    fn malformed_key_predicates_are_refused() {
        for bad in [
            "",
            "'1",
            "SalesOrder=1",
            "SalesOrder='1',",
            "'1'x",
            "a='1','2'",
        ] {
            assert!(parse_key_predicate(bad).is_err(), "{bad}");
        }
        let wrong_name = parse_key_predicate("Foo='1'").unwrap();
        assert!(resolve_key(&SALES_ORDER, &wrong_name).is_err());
        let dup = parse_key_predicate("SalesOrder='1',SalesOrder='2'").unwrap();
        assert!(resolve_key(&SALES_ORDER_ITEM, &dup).is_err());
        assert!(parse_resource_path("A_SalesOrder('1'").is_err());
        assert!(parse_resource_path("%zz").is_err());
        assert!(parse_resource_path("A_Sales<script>").is_err());
    }

    #[test]
    fn keys_are_formatted_as_s4_writes_them() {
        assert_eq!(format_key(&SALES_ORDER, &["1000001"]), "('1000001')");
        assert_eq!(
            format_key(&SALES_ORDER_ITEM, &["1", "10"]),
            "(SalesOrder='1',SalesOrderItem='10')"
        );
        assert_eq!(format_key(&SALES_ORDER, &["A'B C"]), "('A''B%20C')");
    }

    #[test]
    fn guid_keys_of_the_document_flow_are_written_and_read_as_guid_literals() {
        let flow = &crate::schema::SALES_ORDER_SUBSQNT_PROC_FLOW;
        let uuid = "005056a2-0f6e-1eda-bb8a-2a4c1c0e8a3b";
        let key = format_key(flow, &["1000001", uuid]);
        assert_eq!(
            key,
            format!("(SalesOrder='1000001',DocRelationshipUUID=guid'{uuid}')")
        );
        let segs = parse_resource_path(&format!("A_SalesOrderSubsqntProcFlow{key}")).unwrap();
        let parts = segs[0].key.as_ref().unwrap();
        assert_eq!(resolve_key(flow, parts).unwrap(), vec!["1000001", uuid]);
        assert!(parse_key_predicate("guid").is_err());
        assert!(parse_key_predicate("gui'1'").is_err());
    }

    #[test]
    fn query_decoding_turns_plus_into_space_only_when_asked() {
        assert_eq!(percent_decode("a+b%20c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert!(percent_decode("%C3", false).is_err());
    }
}
