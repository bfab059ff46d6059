//! Sales order numbering as an S/4 sales document type has it: an internal and an external
//! number range side by side (customizing, transaction VOV8).
//!
//! - A create without `SalesOrder` gets the next number of the **internal** range (drawn by the
//!   store's writer, gapless, never reused).
//! - A create naming `SalesOrder` keeps it if it lies in the **external** range and no order has
//!   it yet; otherwise it is refused and nothing is stored. The "not taken yet" check runs in the
//!   store's write transaction, so two concurrent creates of one number cannot both succeed.
//!
//! Numbers are numeric keys with SAP's ALPHA conversion: S/4 keeps `VBELN` as ten characters
//! with leading zeros (`0008000000`), and the API shows and accepts it without them. So
//! `"0008000123"` and `"8000123"` name the same order here as well.

use std::fmt;
use std::str::FromStr;

use crate::error::{SapError, codes};

/// The largest sales order number (`VBELN` has ten digits).
pub const MAX_NUMBER: u64 = 9_999_999_999;

/// One number range interval, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberRange {
    /// First number.
    pub from: u64,
    /// Last number.
    pub to: u64,
}

impl NumberRange {
    /// Whether `n` lies in the interval.
    pub fn contains(&self, n: u64) -> bool {
        (self.from..=self.to).contains(&n)
    }

    /// Whether the two intervals share a number.
    pub fn overlaps(&self, other: &NumberRange) -> bool {
        self.from <= other.to && other.from <= self.to
    }
}

impl fmt::Display for NumberRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.from, self.to)
    }
}

impl FromStr for NumberRange {
    type Err = String;

    /// `from-to`, digits only, `1 <= from <= to <= 9999999999`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("expected FROM-TO with 1 <= FROM <= TO <= {MAX_NUMBER}, got {s:?}");
        let (from, to) = s.trim().split_once('-').ok_or_else(bad)?;
        let parse = |v: &str| {
            let v = v.trim();
            (!v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<u64>().ok())
                .flatten()
        };
        let (from, to) = (parse(from).ok_or_else(bad)?, parse(to).ok_or_else(bad)?);
        if from == 0 || from > to || to > MAX_NUMBER {
            return Err(bad());
        }
        Ok(Self { from, to })
    }
}

/// How a create is numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// The next number of the internal range.
    Internal,
    /// The number the client named (already checked to lie in the external range).
    External(u64),
}

/// A numeric key as SAP's ALPHA input conversion reads it: digits, leading zeros ignored.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Decides how a create is numbered from the `SalesOrder` it sent (if any).
pub fn choose(sent: Option<&str>, external: &NumberRange) -> Result<Numbering, SapError> {
    let sent = sent.map(str::trim).unwrap_or_default();
    if sent.is_empty() {
        return Ok(Numbering::Internal);
    }
    match parse_number(sent) {
        Some(n) if external.contains(n) => Ok(Numbering::External(n)),
        _ => Err(not_in_external_range(sent, external)),
    }
}

/// The refusal of a number outside the external range.
pub fn not_in_external_range(sent: &str, external: &NumberRange) -> SapError {
    SapError::bad_request(
        codes::NUMBER_NOT_IN_EXTERNAL_RANGE,
        format!(
            "Document number {sent} is not in the external number range {external} of the sales document type"
        ),
    )
    .on("SalesOrder")
}

/// The refusal of a number some order already has.
pub fn already_exists(number: u64) -> SapError {
    SapError::bad_request(
        codes::DOCUMENT_ALREADY_EXISTS,
        format!("SD document {number} already exists"),
    )
    .on("SalesOrder")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_from_to_and_refuse_everything_else() {
        let r: NumberRange = "8000000000-9999999999".parse().unwrap();
        assert_eq!((r.from, r.to), (8_000_000_000, 9_999_999_999));
        for bad in [
            "",
            "5",
            "0-10",
            "10-5",
            "1-99999999999",
            "a-b",
            "1 - ",
            "-5",
            "1-2-3",
        ] {
            assert!(bad.parse::<NumberRange>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_number_is_read_with_leading_zeros_ignored() {
        assert_eq!(parse_number("0008000000"), Some(8_000_000));
        assert_eq!(parse_number("8000000000"), Some(8_000_000_000));
        assert_eq!(parse_number("00080000000"), None);
        assert_eq!(parse_number("80A"), None);
        assert_eq!(parse_number(""), None);
    }

    #[test]
    fn a_create_is_numbered_internally_unless_it_names_a_number_of_the_external_range() {
        let ext: NumberRange = "8000000000-9999999999".parse().unwrap();
        assert_eq!(choose(None, &ext).unwrap(), Numbering::Internal);
        assert_eq!(choose(Some(""), &ext).unwrap(), Numbering::Internal);
        assert_eq!(
            choose(Some("8000000001"), &ext).unwrap(),
            Numbering::External(8_000_000_001)
        );
        for outside in ["1000001", "7999999999", "0", "ABC", "00001"] {
            let e = choose(Some(outside), &ext).unwrap_err();
            assert_eq!(e.code, codes::NUMBER_NOT_IN_EXTERNAL_RANGE, "{outside}");
        }
    }
}
