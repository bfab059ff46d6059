//! ISO 4217 currency codes accepted by the order service.

/// Active ISO 4217 alphabetic codes (list of 2026; funds and metal codes excluded).
pub const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
    "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN",
    "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
    "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES",
    "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
    "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP",
    "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK",
    "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES", "VND",
    "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Whether `code` is a known ISO 4217 code (exact, upper case).
pub fn is_known(code: &str) -> bool {
    ISO_4217.binary_search(&code).is_ok()
}

/// Codes with no minor unit (ISO 4217 exponent 0), sorted.
const NO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// Codes with three decimals (ISO 4217 exponent 3), sorted.
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Decimal places of an amount in `code` (ISO 4217's minor unit: 2 for EUR and USD, 0 for JPY,
/// 3 for KWD). SAP rounds net amounts to these places, and so does the order service.
pub fn decimals(code: &str) -> u32 {
    if NO_DECIMALS.binary_search(&code).is_ok() {
        0
    } else if THREE_DECIMALS.binary_search(&code).is_ok() {
        3
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_code_list_is_sorted_so_binary_search_is_valid() {
        assert!(super::ISO_4217.windows(2).all(|w| w[0] < w[1]));
        assert!(super::is_known("EUR") && !super::is_known("XYZ") && !super::is_known("eur"));
        assert!(super::NO_DECIMALS.windows(2).all(|w| w[0] < w[1]));
        assert!(super::THREE_DECIMALS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn amounts_have_the_decimals_of_their_currency() {
        assert_eq!(super::decimals("EUR"), 2);
        assert_eq!(super::decimals("USD"), 2);
        assert_eq!(super::decimals("JPY"), 0);
        assert_eq!(super::decimals("KWD"), 3);
    }
}
