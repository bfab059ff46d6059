//! Typed EDM values and their OData V2 JSON encodings.
//!
//! A value from a request body is built *through validation* against its [`Property`]:
//! strings within `MaxLength`, decimals (sent as strings, numbers tolerated) within precision
//! and scale, dates in the `/Date(..)/` form, booleans as JSON booleans. On the way out,
//! decimals are strings and dates are `/Date(ms)/` (DateTime) or `/Date(ms+0000)/`
//! (DateTimeOffset), as S/4HANA answers.

use std::cmp::Ordering;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::date::JsonDate;
use crate::schema::{EdmType, Property};

/// A typed value of one property.
#[derive(Debug, Clone, PartialEq)]
pub enum EdmValue {
    /// JSON `null`.
    Null,
    /// `Edm.String`.
    String(String),
    /// `Edm.Decimal`, kept at the scale it was given.
    Decimal(Decimal),
    /// `Edm.Boolean`.
    Boolean(bool),
    /// `Edm.DateTime` (milliseconds since the epoch, UTC).
    DateTime(JsonDate),
    /// `Edm.DateTimeOffset` (milliseconds since the epoch, UTC).
    DateTimeOffset(JsonDate),
    /// `Edm.Guid`, lower-case with hyphens (`DocRelationshipUUID`, `guid'..'` literals).
    Guid(String),
    /// `Edm.Time`: seconds since midnight; `"PT14H20M57S"` in JSON.
    Time(u32),
    /// An integer (`Edm.Int32`/`Edm.Int64`; only in `$filter` literals here).
    Int(i64),
}

/// Why a JSON value does not fit a property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The JSON type does not match the EDM type (a number for a string, say).
    #[error("Property '{property}' has an invalid value: expected {expected}")]
    WrongType {
        /// Property name.
        property: &'static str,
        /// What the EDM type needs, in words.
        expected: &'static str,
    },
    /// A string longer than the property's `MaxLength`.
    #[error("Value of property '{property}' exceeds the maximum length of {max_length} characters")]
    TooLong {
        /// Property name.
        property: &'static str,
        /// `MaxLength` of the property.
        max_length: usize,
        /// Length of the value received (characters).
        length: usize,
    },
    /// A decimal with more digits than precision or scale allow.
    #[error("Value of property '{property}' does not fit Edm.Decimal({precision},{scale})")]
    DecimalOutOfRange {
        /// Property name.
        property: &'static str,
        /// Declared precision.
        precision: u8,
        /// Declared scale.
        scale: u8,
    },
}

impl EdmValue {
    /// Converts a JSON value from a request body into the typed value of `property`.
    pub fn from_json(property: &'static Property, json: &Value) -> Result<Self, ValueError> {
        if json.is_null() {
            return Ok(EdmValue::Null);
        }
        let wrong = |expected| ValueError::WrongType {
            property: property.name,
            expected,
        };
        match property.edm {
            EdmType::String { max_length } => {
                let s = json.as_str().ok_or_else(|| wrong("a JSON string"))?;
                let length = s.chars().count();
                if length > usize::from(max_length) {
                    return Err(ValueError::TooLong {
                        property: property.name,
                        max_length: usize::from(max_length),
                        length,
                    });
                }
                Ok(EdmValue::String(s.to_owned()))
            }
            EdmType::Decimal { precision, scale } => {
                let text = match json {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(wrong("a decimal as a JSON string, e.g. \"2.5\"")),
                };
                let d = parse_decimal(&text)
                    .ok_or_else(|| wrong("a decimal as a JSON string, e.g. \"2.5\""))?;
                if !decimal_fits(d, precision, scale) {
                    return Err(ValueError::DecimalOutOfRange {
                        property: property.name,
                        precision,
                        scale,
                    });
                }
                Ok(EdmValue::Decimal(d))
            }
            EdmType::Boolean => json
                .as_bool()
                .map(EdmValue::Boolean)
                .ok_or_else(|| wrong("true or false")),
            EdmType::DateTime | EdmType::DateTimeOffset => {
                let s = json
                    .as_str()
                    .ok_or_else(|| wrong("a date as \"/Date(<ms>)/\""))?;
                let d = JsonDate::parse(s).map_err(|_| wrong("a date as \"/Date(<ms>)/\""))?;
                if d.to_utc().is_none() {
                    return Err(wrong("a date as \"/Date(<ms>)/\""));
                }
                Ok(if property.edm == EdmType::DateTime {
                    EdmValue::DateTime(d)
                } else {
                    EdmValue::DateTimeOffset(d)
                })
            }
            EdmType::Guid => json
                .as_str()
                .filter(|s| is_guid(s))
                .map(|s| EdmValue::Guid(s.to_ascii_lowercase()))
                .ok_or_else(|| wrong("a GUID, e.g. \"005056a2-0f6e-1eda-bb8a-2a4c1c0e8a3b\"")),
            EdmType::Time => json
                .as_str()
                .and_then(parse_time)
                .map(EdmValue::Time)
                .ok_or_else(|| wrong("a time as \"PT<h>H<m>M<s>S\"")),
        }
    }

    /// The JSON encoding S/4HANA uses for this value.
    pub fn to_json(&self) -> Value {
        match self {
            EdmValue::Null => Value::Null,
            EdmValue::String(s) | EdmValue::Guid(s) => Value::String(s.clone()),
            EdmValue::Decimal(d) => Value::String(d.to_string()),
            EdmValue::Boolean(b) => Value::Bool(*b),
            EdmValue::DateTime(d) => Value::String(d.to_datetime_string()),
            EdmValue::DateTimeOffset(d) => Value::String(d.to_datetimeoffset_string()),
            EdmValue::Int(i) => Value::from(*i),
            EdmValue::Time(t) => Value::String(format!(
                "PT{:02}H{:02}M{:02}S",
                t / 3600,
                t / 60 % 60,
                t % 60
            )),
        }
    }

    /// The value that an unset property of `edm` type shows on S/4HANA: `""` for strings,
    /// `"0"` for decimals, `false` for booleans, `null` for dates.
    pub fn unset(edm: EdmType) -> Self {
        match edm {
            EdmType::String { .. } => EdmValue::String(String::new()),
            EdmType::Decimal { .. } => EdmValue::Decimal(Decimal::ZERO),
            EdmType::Boolean => EdmValue::Boolean(false),
            EdmType::DateTime | EdmType::DateTimeOffset => EdmValue::Null,
            EdmType::Guid => EdmValue::Guid("00000000-0000-0000-0000-000000000000".to_owned()),
            EdmType::Time => EdmValue::Time(0),
        }
    }

    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            EdmValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The decimal, if this is a decimal (or integer) value.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            EdmValue::Decimal(d) => Some(*d),
            EdmValue::Int(i) => Some(Decimal::from(*i)),
            _ => None,
        }
    }

    /// Compares two values of compatible types (strings with strings, numbers with numbers,
    /// dates with dates, booleans with booleans). `None` when they cannot be compared.
    pub fn compare(&self, other: &EdmValue) -> Option<Ordering> {
        use EdmValue as V;
        match (self, other) {
            (V::Null, V::Null) => Some(Ordering::Equal),
            (V::String(a), V::String(b)) | (V::Guid(a), V::Guid(b)) => Some(a.cmp(b)),
            (V::Guid(a), V::String(b)) | (V::String(a), V::Guid(b)) => {
                Some(a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()))
            }
            (V::Boolean(a), V::Boolean(b)) => Some(a.cmp(b)),
            (V::Time(a), V::Time(b)) => Some(a.cmp(b)),
            (a, b) if a.as_decimal().is_some() && b.as_decimal().is_some() => {
                Some(a.as_decimal()?.cmp(&b.as_decimal()?))
            }
            (V::DateTime(a) | V::DateTimeOffset(a), V::DateTime(b) | V::DateTimeOffset(b)) => {
                Some(a.millis.cmp(&b.millis))
            }
            _ => None,
        }
    }
}

/// Whether `s` is a GUID in the 8-4-4-4-12 hex form.
pub fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Parses an `Edm.Time` as OData V2 JSON carries it (`PT14H20M57S`, parts optional) into
/// seconds since midnight; `None` for anything else or a time not within one day.
pub fn parse_time(s: &str) -> Option<u32> {
    let mut rest = s.strip_prefix("PT")?;
    let mut seconds = 0u32;
    let mut any = false;
    for (unit, factor) in [('H', 3600u32), ('M', 60), ('S', 1)] {
        if let Some(end) = rest.find(unit) {
            let digits = &rest[..end];
            if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            seconds += digits.parse::<u32>().ok()? * factor;
            rest = &rest[end + 1..];
            any = true;
        }
    }
    (any && rest.is_empty() && seconds < 86_400).then_some(seconds)
}

/// Parses a decimal as SAP's clients send it (`"2"`, `"-0.5"`, `"1e3"` is refused).
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let t = text.trim();
    let digits_ok = !t.is_empty()
        && t.len() <= 40
        && t.trim_start_matches(['-', '+'])
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|b| *b == b'.').count() <= 1
        && t.bytes().any(|b| b.is_ascii_digit());
    if !digits_ok {
        return None;
    }
    Decimal::from_str(t).ok()
}

/// Whether `d` fits `Edm.Decimal(precision, scale)`.
pub fn decimal_fits(d: Decimal, precision: u8, scale: u8) -> bool {
    let n = d.normalize();
    if n.scale() > u32::from(scale) {
        return false;
    }
    let int_digits = n.abs().trunc().to_string().trim_start_matches('0').len();
    int_digits <= usize::from(precision.saturating_sub(scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{SALES_ORDER, SALES_ORDER_ITEM};
    use serde_json::json;

    fn prop(name: &str) -> &'static Property {
        SALES_ORDER
            .property(name)
            .or_else(|| SALES_ORDER_ITEM.property(name))
            .unwrap()
    }

    #[test]
    fn decimals_arrive_as_strings_or_numbers_and_leave_as_strings() {
        let q = prop("RequestedQuantity");
        let v = EdmValue::from_json(q, &json!("2")).unwrap();
        assert_eq!(v.to_json(), json!("2"));
        let v = EdmValue::from_json(q, &json!(2.5)).unwrap();
        assert_eq!(v.to_json(), json!("2.5"));
        assert!(EdmValue::from_json(q, &json!("two")).is_err());
        assert!(EdmValue::from_json(q, &json!("1e3")).is_err());
        assert!(EdmValue::from_json(q, &json!(true)).is_err());
    }

    #[test]
    fn decimals_beyond_precision_or_scale_are_refused() {
        let q = prop("RequestedQuantity"); // 15,3
        assert!(EdmValue::from_json(q, &json!("999999999999.999")).is_ok());
        assert!(matches!(
            EdmValue::from_json(q, &json!("9999999999999")),
            Err(ValueError::DecimalOutOfRange { .. })
        ));
        assert!(matches!(
            EdmValue::from_json(q, &json!("1.0001")),
            Err(ValueError::DecimalOutOfRange { .. })
        ));
        assert!(EdmValue::from_json(q, &json!("1.5000")).is_ok());
    }

    #[test]
    fn strings_longer_than_max_length_are_refused_counting_characters() {
        let p = prop("SoldToParty"); // 10
        assert!(EdmValue::from_json(p, &json!("ééééééééé")).is_ok());
        assert_eq!(
            EdmValue::from_json(p, &json!("12345678901")),
            Err(ValueError::TooLong {
                property: "SoldToParty",
                max_length: 10,
                length: 11
            })
        );
        assert!(EdmValue::from_json(p, &json!(17100001)).is_err());
    }

    #[test]
    fn dates_accept_both_sdk_forms_and_refuse_iso_strings() {
        let p = prop("CustomerPurchaseOrderDate");
        assert!(EdmValue::from_json(p, &json!("/Date(1795478400000+0000)/")).is_ok());
        let v = EdmValue::from_json(p, &json!("/Date(1795478400000)/")).unwrap();
        assert_eq!(v.to_json(), json!("/Date(1795478400000)/"));
        assert!(EdmValue::from_json(p, &json!("2026-11-24")).is_err());
        let ts = prop("LastChangeDateTime");
        let v = EdmValue::from_json(ts, &json!("/Date(1795478400000)/")).unwrap();
        assert_eq!(v.to_json(), json!("/Date(1795478400000+0000)/"));
    }

    #[test]
    fn guids_and_times_of_the_document_flow_round_trip() {
        let flow = &crate::schema::SALES_ORDER_SUBSQNT_PROC_FLOW;
        let uuid = flow.property("DocRelationshipUUID").unwrap();
        let v = EdmValue::from_json(uuid, &json!("005056A2-0F6E-1EDA-BB8A-2A4C1C0E8A3B")).unwrap();
        assert_eq!(v.to_json(), json!("005056a2-0f6e-1eda-bb8a-2a4c1c0e8a3b"));
        assert!(EdmValue::from_json(uuid, &json!("not-a-guid")).is_err());
        let time = flow.property("CreationTime").unwrap();
        let v = EdmValue::from_json(time, &json!("PT14H20M57S")).unwrap();
        assert_eq!(v, EdmValue::Time(14 * 3600 + 20 * 60 + 57));
        assert_eq!(v.to_json(), json!("PT14H20M57S"));
        assert_eq!(EdmValue::Time(65).to_json(), json!("PT00H01M05S"));
        assert_eq!(parse_time("PT5M"), Some(300));
        for bad in ["14:20:57", "PT", "PT24H", "PTxH", "PT1H2", "PT123H"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_must_be_json_booleans() {
        let p = prop("CompleteDeliveryIsDefined");
        assert_eq!(
            EdmValue::from_json(p, &json!(true)).unwrap(),
            EdmValue::Boolean(true)
        );
        assert!(EdmValue::from_json(p, &json!("true")).is_err());
    }
}
