//! An order's version as an entity tag: the order service's `ETag` and `If-Match`, and the SAP
//! face's, which hands out and takes back the same tag.

/// The entity tag of `version`: `W/"<version>"`.
pub fn version_etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version an entity tag names: `W/"<version>"` or `"<version>"` (compared by value: the
/// version is an order's only validator), the version in digits, at most 18 so that every one
/// fits. `None` for anything else: `*`, a list of tags, an empty tag, a tag another system
/// issued (SAP's `W/"datetimeoffset'...'"`).
pub fn parse_version_etag(tag: &str) -> Option<i64> {
    let tag = tag.trim();
    let inner = tag
        .strip_prefix("W/")
        .unwrap_or(tag)
        .strip_prefix('"')?
        .strip_suffix('"')?;
    if inner.is_empty() || inner.len() > 18 || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_round_trips_and_nothing_else_parses() {
        assert_eq!(parse_version_etag(&version_etag(42)), Some(42));
        assert_eq!(parse_version_etag(" \"7\" "), Some(7));
        for other in [
            "*",
            "",
            "W/\"\"",
            "7",
            "W/\"7",
            "W/\"1\", W/\"2\"",
            "W/\"-1\"",
            "W/\"1234567890123456789\"",
            "W/\"datetimeoffset'2026-12-02T00%3A46%3A37.1234567Z'\"",
        ] {
            assert_eq!(parse_version_etag(other), None, "{other}");
        }
    }
}
