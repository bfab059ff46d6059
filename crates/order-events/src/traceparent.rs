//! W3C Trace Context `traceparent` values (`00-<trace-id>-<parent-id>-<flags>`).

use uuid::Uuid;

/// Whether `value` is a well-formed version-00 `traceparent` with non-zero ids.
pub fn is_valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// A new sampled trace with a random trace id and span id.
pub fn new_root() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    format!("00-{trace}-{}-01", span_id())
}

/// A child span of `parent` (same trace id and flags, new span id), or a new root when `parent`
/// is missing or malformed.
pub fn child_of(parent: Option<&str>) -> String {
    match parent {
        Some(p) if is_valid(p) => {
            let parts: Vec<&str> = p.split('-').collect();
            format!("00-{}-{}-{}", parts[1], span_id(), parts[3])
        }
        _ => new_root(),
    }
}

fn span_id() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_root_is_valid_and_a_child_keeps_the_trace_id() {
        let root = new_root();
        assert!(is_valid(&root), "{root}");
        let child = child_of(Some(&root));
        assert!(is_valid(&child));
        assert_eq!(root[3..35], child[3..35]);
        assert_ne!(root[36..52], child[36..52]);
    }

    #[test]
    fn malformed_parents_are_replaced_by_a_new_root() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(!is_valid(bad), "{bad}");
            assert!(is_valid(&child_of(Some(bad))));
        }
        assert!(is_valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
    }
}
