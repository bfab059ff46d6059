//! Validated value types. Each has a private field and can only be built by parsing, so holding
//! one proves the rule its constructor names.

use std::fmt;

use rust_decimal::Decimal;
use serde::Serialize;

/// Why a value was refused; the text is meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(message.into()))
}

/// Which characters a code-like string value may hold.
#[derive(Clone, Copy)]
enum Charset {
    /// ASCII letters and digits, `-` and `_`.
    Code,
    /// Any printable text without control characters and without surrounding whitespace.
    Text,
    /// ASCII digits only.
    Digits,
}

fn check_text(raw: &str, max: usize, charset: Charset) -> Result<String, ValueError> {
    if raw.is_empty() {
        return err("must not be empty");
    }
    let len = raw.chars().count();
    if len > max {
        return err(format!("must be at most {max} characters (got {len})"));
    }
    let ok = match charset {
        Charset::Code => raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        Charset::Text => !raw.chars().any(char::is_control) && raw.trim() == raw,
        Charset::Digits => raw.chars().all(|c| c.is_ascii_digit()),
    };
    if !ok {
        return err(match charset {
            Charset::Code => "may only contain letters, digits, '-' and '_'",
            Charset::Text => "must not contain control characters or surrounding whitespace",
            Charset::Digits => "may only contain digits",
        });
    }
    Ok(raw.to_owned())
}

/// Declares a string newtype with a maximum length and a character rule.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, charset = $cs:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest value accepted.
            pub const MAX_LEN: usize = $max;

            /// Parses `raw`, refusing empty, over-long or ill-formed values.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                check_text(raw, $max, Charset::$cs).map(Self)
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_value!(
    /// The buying customer (SAP `SoldToParty`, at most 10 characters).
    CustomerId, max = 10, charset = Code
);
text_value!(
    /// The customer's own order reference (SAP `PurchaseOrderByCustomer`, at most 35).
    CustomerReference, max = 35, charset = Text
);
text_value!(
    /// A material / stock keeping unit (SAP `Material`, at most 40).
    Sku, max = 40, charset = Text
);
text_value!(
    /// Unit of measure (SAP `RequestedQuantityUnit`, at most 3), such as `PC` or `KG`.
    Unit, max = 3, charset = Code
);
text_value!(
    /// SAP sales organization (at most 4), such as `1010`.
    SalesOrganization, max = 4, charset = Code
);
text_value!(
    /// SAP distribution channel (at most 2), such as `10`.
    DistributionChannel, max = 2, charset = Code
);
text_value!(
    /// SAP division (at most 2), such as `00`.
    Division, max = 2, charset = Code
);
text_value!(
    /// SAP sales document type (at most 4), such as `OR`.
    OrderType, max = 4, charset = Code
);
text_value!(
    /// SAP's sales order number for a linked order (at most 10 characters).
    SapOrderNumber, max = 10, charset = Code
);

/// Why a line is rejected (SAP `SalesDocumentRjcnReason`): exactly 2 characters, ASCII upper-case
/// letters or digits, such as `01` or `Z1`. A rejected line stays on the order but no longer
/// counts (SAP excludes it from the net value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RejectionReason(String);

impl RejectionReason {
    /// The code a cancellation puts on every open line when the caller names none: `00`,
    /// SAP's standard reason "assigned by the system" (customizing table TVAG), present in
    /// every S/4 system.
    pub const CANCELLED_DEFAULT: &'static str = "00";

    /// Parses a 2-character code.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.len() == 2
            && raw
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            Ok(Self(raw.to_owned()))
        } else {
            err(
                "must be 2 characters, upper-case letters or digits (SAP SalesDocumentRjcnReason), such as \"01\"",
            )
        }
    }

    /// The default reason of a cancellation ([`Self::CANCELLED_DEFAULT`]).
    pub fn cancelled_default() -> Self {
        Self(Self::CANCELLED_DEFAULT.to_owned())
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The order service's own order number: exactly 10 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderNumber(String);

impl OrderNumber {
    /// Parses a 10-digit order number.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let s = check_text(raw, 10, Charset::Digits)?;
        if s.len() != 10 {
            return err("must be exactly 10 digits");
        }
        Ok(Self(s))
    }

    /// Formats a sequence value as an order number, if it fits in 10 digits.
    pub fn from_sequence(value: i64) -> Result<Self, ValueError> {
        if !(0..=9_999_999_999).contains(&value) {
            return err(format!("sequence value {value} does not fit in 10 digits"));
        }
        Ok(Self(format!("{value:010}")))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 4217 currency code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// Parses a currency code that ISO 4217 knows.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.len() != 3 || !raw.chars().all(|c| c.is_ascii_uppercase()) {
            return err("must be a three-letter upper-case ISO 4217 code");
        }
        if !crate::currency::is_known(raw) {
            return err(format!("unknown currency {raw:?}"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Decimal places of an amount in this currency (see [`crate::currency::decimals`]).
    pub fn decimals(&self) -> u32 {
        crate::currency::decimals(&self.0)
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decimal places kept for quantities and amounts (SAP's scale 3).
pub const DECIMAL_SCALE: u32 = 3;

fn parse_decimal(raw: &str) -> Result<Decimal, ValueError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed != raw {
        return err("must be a decimal number written as a string, such as \"2\" or \"12.50\"");
    }
    // Only plain decimal notation: no exponent, no sign other than '-', no thousands separators.
    let body = trimmed.strip_prefix('-').unwrap_or(trimmed);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let plain = !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()));
    if !plain {
        return err("must be a decimal number written as a string, such as \"2\" or \"12.50\"");
    }
    if frac.is_some_and(|f| f.len() > DECIMAL_SCALE as usize) {
        return err(format!("must have at most {DECIMAL_SCALE} decimal places"));
    }
    trimmed.parse::<Decimal>().or_else(|_| err("is too large"))
}

/// An ordered quantity: positive, at most 3 decimals, below 10^12 (SAP precision 15, scale 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(#[serde(with = "rust_decimal::serde::str")] Decimal);

impl Quantity {
    /// Parses a decimal string.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        Self::try_from(parse_decimal(raw)?)
    }

    /// The quantity as a decimal.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Quantity {
    type Error = ValueError;
    fn try_from(d: Decimal) -> Result<Self, ValueError> {
        if d <= Decimal::ZERO {
            return err("must be greater than zero");
        }
        if d.scale() > DECIMAL_SCALE && d.normalize().scale() > DECIMAL_SCALE {
            return err(format!("must have at most {DECIMAL_SCALE} decimal places"));
        }
        if d >= Decimal::from(1_000_000_000_000_i64) {
            return err("must be less than 1000000000000");
        }
        Ok(Self(d))
    }
}

/// A non-negative amount of money in the order's currency, at most 3 decimals, below 10^13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Money(#[serde(with = "rust_decimal::serde::str")] Decimal);

impl Money {
    /// Parses a decimal string. A sign is refused even on zero (`-0`), so the accepted
    /// spellings are exactly those of the OpenAPI pattern.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.starts_with('-') {
            return err("must not be negative");
        }
        Self::try_from(parse_decimal(raw)?)
    }

    /// The amount as a decimal.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Money {
    type Error = ValueError;
    fn try_from(d: Decimal) -> Result<Self, ValueError> {
        if d < Decimal::ZERO {
            return err("must not be negative");
        }
        if d.scale() > DECIMAL_SCALE && d.normalize().scale() > DECIMAL_SCALE {
            return err(format!("must have at most {DECIMAL_SCALE} decimal places"));
        }
        if d >= Decimal::from(10_000_000_000_000_i64) {
            return err("must be less than 10000000000000");
        }
        Ok(Self(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_reasons_are_two_upper_case_letters_or_digits() {
        for ok in ["00", "01", "Z1", "AB"] {
            assert_eq!(RejectionReason::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "1", "001", "z1", " 1", "é1"] {
            assert!(RejectionReason::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RejectionReason::parse(RejectionReason::CANCELLED_DEFAULT).is_ok());
    }

    #[test]
    fn customer_ids_follow_sap_sold_to_party_rules() {
        assert!(CustomerId::parse("17100001").is_ok());
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse("12345678901").is_err());
        assert!(CustomerId::parse("17 1").is_err());
    }

    #[test]
    fn quantities_must_be_positive_plain_decimals_with_three_places_at_most() {
        assert_eq!(Quantity::parse("2").unwrap().value(), Decimal::from(2));
        assert!(Quantity::parse("0.001").is_ok());
        for bad in [
            "0", "-1", "1.0001", "abc", "1e3", " 1", "1.", ".5", "+1", "",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Quantity::parse("1000000000000").is_err());
    }

    #[test]
    fn money_may_be_zero_but_never_negative() {
        assert!(Money::parse("0").is_ok());
        assert!(Money::parse("12.50").is_ok());
        assert!(Money::parse("-0.01").is_err());
        assert!(Money::parse("-0").is_err());
        assert!(Money::parse("000000000000000000012.5").is_ok());
    }

    #[test]
    fn order_numbers_are_exactly_ten_digits() {
        assert_eq!(
            OrderNumber::from_sequence(8_000_000_001).unwrap().as_str(),
            "8000000001"
        );
        assert_eq!(
            OrderNumber::from_sequence(7).unwrap().as_str(),
            "0000000007"
        );
        assert!(OrderNumber::from_sequence(10_000_000_000).is_err());
        assert!(OrderNumber::parse("123").is_err());
        assert!(OrderNumber::parse("12345678ab").is_err());
    }

    #[test]
    fn currencies_must_be_known_iso_codes() {
        assert!(CurrencyCode::parse("EUR").is_ok());
        assert!(CurrencyCode::parse("eur").is_err());
        assert!(CurrencyCode::parse("XYZ").is_err());
    }
}
