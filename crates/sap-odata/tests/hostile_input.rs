//! Hostile input never panics: random and mutated paths, query strings, filters and bodies go
//! through every parser of the crate, which must answer with a value or an error.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sap_odata::payload::{parse_sales_order_create, parse_update};
use sap_odata::query::QueryOptions;
use sap_odata::uri::{parse_resource_path, resolve_key};
use sap_odata::{SALES_ORDER, SALES_ORDER_ITEM, schema};

const PIECES: &[&str] = &[
    "A_SalesOrder",
    "A_SalesOrderItem",
    "(",
    ")",
    "'",
    "''",
    "%27",
    "%",
    "%2",
    "%ZZ",
    "%C3%A9",
    "%C3",
    "/",
    "=",
    ",",
    "SalesOrder",
    "SalesOrderItem",
    "to_Item",
    "$count",
    "$filter",
    "$select",
    "$expand",
    "$orderby",
    "$top",
    "$skip",
    "$inlinecount",
    "&",
    "?",
    " ",
    "+",
    "eq",
    "ne",
    "and",
    "or",
    "not",
    "substringof",
    "startswith",
    "datetime'",
    "guid'",
    "10.5M",
    "-",
    "1",
    "999999999999999999999",
    "*",
    "desc",
    "asc",
    "\u{0}",
    "\u{202e}",
    "é",
    "\\",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ":",
    "null",
    "true",
];

fn random_text(rng: &mut StdRng, max_pieces: usize) -> String {
    let n = rng.random_range(0..max_pieces);
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

#[test]
fn random_resource_paths_never_panic() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..20_000 {
        let path = random_text(&mut rng, 12);
        if let Ok(segments) = parse_resource_path(&path) {
            for s in segments {
                if let Some(key) = &s.key {
                    let _ = resolve_key(&SALES_ORDER, key);
                    let _ = resolve_key(&SALES_ORDER_ITEM, key);
                }
            }
        }
    }
}

#[test]
fn random_query_strings_never_panic_and_checks_never_panic() {
    let mut rng = StdRng::seed_from_u64(8);
    for _ in 0..20_000 {
        let query = random_text(&mut rng, 16);
        if let Ok(q) = QueryOptions::parse(&query) {
            let _ = q.check(&SALES_ORDER, &schema::entity_type);
            let _ = q.check(&SALES_ORDER_ITEM, &schema::entity_type);
            let _ = q.selected_properties();
            let _ = q.selected_in("to_Item");
        }
    }
}

#[test]
fn random_and_truncated_bodies_never_panic() {
    let mut rng = StdRng::seed_from_u64(9);
    let good = br#"{"SalesOrderType":"OR","SoldToParty":"17100001","CustomerPurchaseOrderDate":"/Date(1795478400000+0000)/","to_Item":[{"Material":"TG11","RequestedQuantity":"2"}]}"#;
    for cut in 0..good.len() {
        let _ = parse_sales_order_create(&good[..cut]);
        let mut flipped = good.to_vec();
        flipped[cut] = flipped[cut].wrapping_add(1);
        let _ = parse_sales_order_create(&flipped);
        let _ = parse_update(&flipped, &SALES_ORDER);
    }
    for _ in 0..5_000 {
        let len = rng.random_range(0..200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let _ = parse_sales_order_create(&bytes);
        let text = random_text(&mut rng, 30);
        let _ = parse_sales_order_create(text.as_bytes());
        let _ = parse_update(text.as_bytes(), &SALES_ORDER_ITEM);
    }
}
