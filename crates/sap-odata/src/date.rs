//! The OData V2 JSON date encoding `/Date(<ms>)/` and `/Date(<ms>+<offset>)/`.
//!
//! SAP encodes `Edm.DateTime` as `/Date(ms)/` (milliseconds since the Unix epoch, UTC) and
//! `Edm.DateTimeOffset` as `/Date(ms+0000)/`, the offset in **minutes**, four digits. SAP's
//! JavaScript client sends either form for either type, so decoding accepts both.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A point in time as carried by `/Date(..)/`: milliseconds since the epoch (UTC) and the
/// offset in minutes that the sender attached, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JsonDate {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub millis: i64,
    /// Offset in minutes from the `+hhmm` / `-hhmm` suffix; `None` for `/Date(ms)/`.
    pub offset_minutes: Option<i32>,
}

/// Why a `/Date(..)/` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an OData V2 JSON date (expected /Date(<ms>)/ or /Date(<ms>+0000)/)")]
pub struct DateFormatError(pub String);

impl JsonDate {
    /// A date without offset (`/Date(ms)/`).
    pub fn from_millis(millis: i64) -> Self {
        Self {
            millis,
            offset_minutes: None,
        }
    }

    /// Decodes `/Date(ms)/` or `/Date(ms±hhmm)/`, as SAP's clients send them.
    pub fn parse(text: &str) -> Result<Self, DateFormatError> {
        let bad = || DateFormatError(text.chars().take(64).collect());
        let inner = text
            .strip_prefix("/Date(")
            .and_then(|s| s.strip_suffix(")/"))
            .ok_or_else(bad)?;
        let (sign, digits) = match inner.strip_prefix('-') {
            Some(rest) => (-1i64, rest),
            None => (1i64, inner),
        };
        let split = digits
            .find(['+', '-'])
            .map(|i| (&digits[..i], Some(&digits[i..])))
            .unwrap_or((digits, None));
        let (ms_text, offset_text) = split;
        if ms_text.is_empty() || ms_text.len() > 15 || !ms_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let millis = sign * ms_text.parse::<i64>().map_err(|_| bad())?;
        let offset_minutes = match offset_text {
            None => None,
            Some(o) => {
                let (osign, odigits) = o.split_at(1);
                if odigits.len() != 4 || !odigits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let minutes: i32 = odigits.parse().map_err(|_| bad())?;
                Some(if osign == "-" { -minutes } else { minutes })
            }
        };
        Ok(Self {
            millis,
            offset_minutes,
        })
    }

    /// `/Date(ms)/`, the Edm.DateTime form.
    pub fn to_datetime_string(self) -> String {
        format!("/Date({})/", self.millis)
    }

    /// `/Date(ms+0000)/`, the Edm.DateTimeOffset form (SAP always answers in UTC).
    pub fn to_datetimeoffset_string(self) -> String {
        format!("/Date({}+0000)/", self.millis)
    }

    /// The instant in UTC.
    pub fn to_utc(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(self.millis).single()
    }

    /// The instant of a UTC timestamp, truncated to milliseconds.
    pub fn from_utc(at: DateTime<Utc>) -> Self {
        Self::from_millis(at.timestamp_millis())
    }

    /// Midnight UTC of a calendar date (how SAP carries `Edm.DateTime` date-only fields).
    pub fn from_date(date: NaiveDate) -> Self {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        Self::from_millis(midnight.and_utc().timestamp_millis())
    }
}

/// Parses the text inside a `datetime'..'` `$filter` literal: `2024-01-31T00:00:00.000`,
/// with or without seconds and fraction; a trailing `Z` is tolerated.
pub fn parse_datetime_literal(text: &str) -> Option<DateTime<Utc>> {
    let t = text.strip_suffix('Z').unwrap_or(text);
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(n.and_utc());
        }
    }
    None
}

/// Parses the text inside a `datetimeoffset'..'` `$filter` literal (RFC 3339, seconds optional).
pub fn parse_datetimeoffset_literal(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(text) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(d) = DateTime::parse_from_str(text, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    if let Some(t) = text.strip_suffix('Z') {
        return parse_datetime_literal(t);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_sent_by_the_sdk_are_decoded() {
        assert_eq!(
            JsonDate::parse("/Date(1795478400000)/").unwrap(),
            JsonDate::from_millis(1_795_478_400_000)
        );
        let with_offset = JsonDate::parse("/Date(1795478400000+0000)/").unwrap();
        assert_eq!(with_offset.millis, 1_795_478_400_000);
        assert_eq!(with_offset.offset_minutes, Some(0));
        assert_eq!(
            JsonDate::parse("/Date(-1000-0130)/").unwrap(),
            JsonDate {
                millis: -1000,
                offset_minutes: Some(-130)
            }
        );
    }

    #[test]
    fn encodings_match_what_the_sdk_accepts() {
        let d = JsonDate::from_millis(1_795_529_964_686);
        assert_eq!(d.to_datetime_string(), "/Date(1795529964686)/");
        assert_eq!(d.to_datetimeoffset_string(), "/Date(1795529964686+0000)/");
    }

    #[test]
    fn iso_strings_and_garbage_are_refused() {
        for bad in [
            "2026-11-24T00:00:00.000",
            "/Date()/",
            "/Date(12a)/",
            "/Date(1+00)/",
            "/Date(1)",
            "/Date(99999999999999999999)/",
            "",
        ] {
            assert!(JsonDate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filter_literals_in_the_sdk_format_parse() {
        let d = parse_datetime_literal("2024-01-31T00:00:00.000").unwrap();
        assert_eq!(d.to_rfc3339(), "2024-01-31T00:00:00+00:00");
        assert!(parse_datetime_literal("2024-01-31T10:15").is_some());
        assert!(parse_datetime_literal("yesterday").is_none());
        let o = parse_datetimeoffset_literal("2024-01-31T01:00:00+01:00").unwrap();
        assert_eq!(o, d);
        assert!(parse_datetimeoffset_literal("2024-01-31T00:00:00.000Z").is_some());
    }
}
