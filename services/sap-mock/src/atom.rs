//! Atom XML, the format SAP Gateway writes for OData V2 when the client asks for XML
//! (`$format=xml` or `atom`, or an `Accept` naming `application/atom+xml` or `application/xml`
//! and no JSON). Every answer is first rendered as JSON (the one model of the wire), then turned
//! into its Atom form here: an entity becomes an `<entry>`, a collection a `<feed>`, an error
//! SAP's `<error>` document of the metadata namespace.
//!
//! Lenient on purpose, and written down in `docs/sap-mock.md`: a request with no `Accept` (or
//! `*/*`) gets JSON, where S/4 defaults to Atom.

use http::HeaderMap;
#[cfg(test)]
use http::header;
use serde_json::{Map, Value};

const NS_ATOM: &str = "http://www.w3.org/2005/Atom";
const NS_M: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata";
const NS_D: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices";
const SCHEME: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/scheme";
const RELATED: &str = "http://schemas.microsoft.com/ado/2007/08/dataservices/related/";

/// True when the client asked for XML rather than JSON ([`sap_odata::wants_xml`]).
pub fn wanted(headers: &HeaderMap, raw_query: &str) -> bool {
    sap_odata::wants_xml(headers, raw_query)
}

/// The Atom form of a JSON answer (`{"d": ...}` or `{"error": ...}`) and its content type, or
/// `None` when the answer has no Atom form (counts, the service document, `$metadata`).
pub fn from_json(answer: &Value) -> Option<(String, &'static str)> {
    if let Some(e) = answer.get("error") {
        return Some((error(e), "application/xml;charset=utf-8"));
    }
    let d = answer.get("d")?;
    let mut out = String::from(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    if let Some(results) = d.get("results").and_then(Value::as_array) {
        feed(&mut out, results, d, true);
        return Some((out, "application/atom+xml;type=feed;charset=utf-8"));
    }
    if d.get("__metadata").is_some() {
        entry(&mut out, d.as_object()?, true);
        return Some((out, "application/atom+xml;type=entry;charset=utf-8"));
    }
    None
}

fn namespaces(out: &mut String) {
    out.push_str(&format!(
        r#" xmlns="{NS_ATOM}" xmlns:m="{NS_M}" xmlns:d="{NS_D}""#
    ));
}

fn feed(out: &mut String, results: &[Value], envelope: &Value, top: bool) {
    out.push_str("<feed");
    if top {
        namespaces(out);
    }
    out.push('>');
    if let Some(c) = envelope.get("__count").and_then(Value::as_str) {
        out.push_str(&format!("<m:count>{}</m:count>", escape(c)));
    }
    for r in results {
        if let Some(o) = r.as_object() {
            entry(out, o, false);
        }
    }
    if let Some(next) = envelope.get("__next").and_then(Value::as_str) {
        out.push_str(&format!(r#"<link rel="next" href="{}"/>"#, escape(next)));
    }
    out.push_str("</feed>");
}

fn entry(out: &mut String, entity: &Map<String, Value>, top: bool) {
    let meta = entity.get("__metadata").cloned().unwrap_or(Value::Null);
    let s = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or_default();
    out.push_str("<entry");
    if top {
        namespaces(out);
    }
    if !s("etag").is_empty() {
        out.push_str(&format!(r#" m:etag="{}""#, escape(s("etag"))));
    }
    out.push('>');
    let uri = s("uri");
    let id = if s("id").is_empty() { uri } else { s("id") };
    out.push_str(&format!("<id>{}</id>", escape(id)));
    let title = uri.rsplit('/').next().unwrap_or_default();
    out.push_str(&format!(r#"<title type="text">{}</title>"#, escape(title)));
    out.push_str(&format!(
        "<updated>{}</updated>",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    ));
    out.push_str(&format!(
        r#"<category term="{}" scheme="{SCHEME}"/>"#,
        escape(s("type"))
    ));
    out.push_str(&format!(r#"<link href="{}" rel="edit"/>"#, escape(title)));
    let mut properties = String::new();
    for (name, value) in entity {
        if name == "__metadata" {
            continue;
        }
        match value {
            Value::Object(o) if o.contains_key("__deferred") => {
                let href = o["__deferred"]["uri"].as_str().unwrap_or_default();
                out.push_str(&format!(
                    r#"<link href="{}" rel="{RELATED}{name}" title="{name}" type="application/atom+xml"/>"#,
                    escape(href)
                ));
            }
            Value::Object(o) if o.contains_key("results") => {
                out.push_str(&format!(
                    r#"<link rel="{RELATED}{name}" title="{name}" type="application/atom+xml;type=feed"><m:inline>"#
                ));
                let results = o["results"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                feed(out, results, value, false);
                out.push_str("</m:inline></link>");
            }
            Value::Object(o) if o.contains_key("__metadata") => {
                out.push_str(&format!(
                    r#"<link rel="{RELATED}{name}" title="{name}" type="application/atom+xml;type=entry"><m:inline>"#
                ));
                entry(out, o, false);
                out.push_str("</m:inline></link>");
            }
            other => property(&mut properties, name, other),
        }
    }
    out.push_str(&format!(
        r#"<content type="application/xml"><m:properties>{properties}</m:properties></content></entry>"#
    ));
}

fn property(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => out.push_str(&format!(r#"<d:{name} m:null="true"/>"#)),
        Value::Object(o) => {
            out.push_str(&format!("<d:{name}>"));
            for (k, v) in o {
                if k != "__metadata" {
                    property(out, k, v);
                }
            }
            out.push_str(&format!("</d:{name}>"));
        }
        Value::String(s) => out.push_str(&format!("<d:{name}>{}</d:{name}>", escape(&date(s)))),
        other => out.push_str(&format!("<d:{name}>{other}</d:{name}>")),
    }
}

/// JSON's `/Date(ms)/` as Atom's `Edm.DateTime` text.
fn date(s: &str) -> String {
    s.strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
        .and_then(|ms| ms.split(['+', '-']).next()?.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|| s.to_owned())
}

fn error(e: &Value) -> String {
    let code = e["code"].as_str().unwrap_or_default();
    let message = e["message"]["value"].as_str().unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><error xmlns="{NS_M}"><code>{}</code><message xml:lang="en">{}</message></error>"#,
        escape(code),
        escape(message)
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entity_becomes_an_entry_with_its_properties_and_links() {
        let answer = json!({"d": {
            "__metadata": {"id": "http://h/A_SalesOrder('1')", "uri": "http://h/A_SalesOrder('1')",
                           "type": "API_SALES_ORDER_SRV.A_SalesOrderType", "etag": "W/\"x\""},
            "SalesOrder": "1",
            "CreationDate": "/Date(1764547200000)/",
            "PurchaseOrderByCustomer": "a<b & \"c\"",
            "DeliveryDate": null,
            "to_Partner": {"__deferred": {"uri": "http://h/A_SalesOrder('1')/to_Partner"}},
            "to_Item": {"results": [{
                "__metadata": {"uri": "http://h/A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10')",
                               "type": "API_SALES_ORDER_SRV.A_SalesOrderItemType"},
                "SalesOrderItem": "10"
            }]}
        }});
        let (xml, ct) = from_json(&answer).unwrap();
        assert!(ct.starts_with("application/atom+xml;type=entry"));
        assert!(xml.contains("<d:SalesOrder>1</d:SalesOrder>"), "{xml}");
        assert!(xml.contains("<d:CreationDate>2025-12-01T00:00:00</d:CreationDate>"));
        assert!(xml.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(xml.contains(r#"<d:DeliveryDate m:null="true"/>"#));
        assert!(xml.contains("related/to_Partner"));
        assert!(xml.contains("<m:inline><feed><entry>"));
        assert!(xml.contains("<d:SalesOrderItem>10</d:SalesOrderItem>"));
        assert!(xml.contains(r#"m:etag="W/&quot;x&quot;""#));
    }

    #[test]
    fn xml_is_chosen_only_when_asked_for() {
        let mut h = HeaderMap::new();
        assert!(!wanted(&h, ""));
        assert!(wanted(&h, "$format=xml"));
        assert!(!wanted(&h, "$format=json"));
        h.insert(header::ACCEPT, "application/atom+xml".parse().unwrap());
        assert!(wanted(&h, ""));
        h.insert(
            header::ACCEPT,
            "application/atom+xml, application/json".parse().unwrap(),
        );
        assert!(!wanted(&h, ""));
    }

    #[test]
    fn errors_and_answers_without_an_atom_form() {
        let (xml, _) = from_json(&json!({"error": {"code": "V1/302",
            "message": {"lang": "en", "value": "Sold-to party 9 not found"}}}))
        .unwrap();
        assert!(xml.contains("<code>V1/302</code>"));
        assert!(from_json(&json!({"d": {"EntitySets": []}})).is_none());
    }
}
