//! Request extractors that fail in the service's own format (problem+json naming the field),
//! instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ServiceError;

/// A JSON body deserialized into `T`. Type errors and unknown fields name the offending path
/// (e.g. `items[0].quantity`); syntax errors are "malformed JSON".
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ServiceError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ServiceError::BodyTooLarge { limit }
            } else {
                ServiceError::MalformedJson(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The configured body limit, put in the request extensions so rejections can quote it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Deserializes `bytes` into `T`, mapping serde's errors to field-naming service errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServiceError> {
    // Every body of this API is an object; serde would otherwise read a struct from an array.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ServiceError::field("body", "must be a JSON object")),
            Err(e) => Err(ServiceError::MalformedJson(e.to_string())),
        };
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => match nul_in(bytes) {
            Some(field) => Err(ServiceError::field(
                field,
                "must not contain the NUL character (U+0000)",
            )),
            None => Ok(v),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                    Err(ServiceError::MalformedJson(inner.to_string()))
                }
                _ => {
                    let message = strip_position(&inner.to_string());
                    Err(ServiceError::Validation(vec![field_error(&path, &message)]))
                }
            }
        }
    }
}

/// The path of the first string (or object key) of a JSON body that holds U+0000, which
/// PostgreSQL can store neither in `text` nor in `jsonb`. The bytes are scanned first, so a body
/// without the escape `\u0000` (every body but a rare one) is not parsed a second time.
fn nul_in(bytes: &[u8]) -> Option<String> {
    if !bytes.windows(6).any(|w| w == br"\u0000") {
        return None;
    }
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        let at = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(path.to_owned()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.contains('\0') {
                    Some(at(k))
                } else {
                    walk(v, &at(k))
                }
            }),
            _ => None,
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&value, "").map(|p| if p.is_empty() { "body".into() } else { p })
}

/// Deserializes an optional whole number given as any JSON number with no fraction: `2666`,
/// `2666.0` or `2.666e3` (JSON, and JSON Schema's `integer`, do not tell them apart). A
/// fraction, or a value outside `T`, is refused.
pub fn whole_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::Deserialize;
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18)
            .map(|f| f as i64)
    });
    whole
        .and_then(|v| T::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("must be a whole number in range (got {n})")))
}

/// serde's messages end with " at line L column C"; the field path says more to a caller.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Names the field of a serde data error: the path, completed by the unknown or missing
/// field's own name, which serde reports only in the message.
fn field_error(path: &str, message: &str) -> order_domain::FieldError {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let base = if path == "." { "" } else { path };
    let field = match named {
        Some(name) if base == name || base.ends_with(&format!(".{name}")) => base.to_owned(),
        Some(name) if base.is_empty() => name.to_owned(),
        Some(name) => format!("{base}.{name}"),
        None if base.is_empty() => "body".to_owned(),
        None => base.to_owned(),
    };
    let message = match message.split_once(", expected one of") {
        Some((head, _)) if head.starts_with("unknown field") => "is not a known field".to_owned(),
        _ => message.to_owned(),
    };
    order_domain::FieldError::new(field, message)
}

/// The `{id}` path parameter as an order id; anything else is a 400 naming `id`.
#[derive(Debug, Clone, Copy)]
pub struct OrderIdParam(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for OrderIdParam {
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ServiceError::field("id", "missing order id"))?;
        Uuid::parse_str(&raw)
            .map(OrderIdParam)
            .map_err(|_| ServiceError::field("id", format!("{raw:?} is not an order id (UUID)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        quantity: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Line>,
    }

    fn fields(body: &str) -> Vec<String> {
        match parse_json::<Body>(body.as_bytes()) {
            Err(ServiceError::Validation(e)) => e.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_nested_field() {
        assert_eq!(
            fields(r#"{"items":[{"quantity":2}]}"#),
            ["items[0].quantity"]
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        assert_eq!(
            fields(r#"{"items":[{"quantity":"2","colour":"red"}]}"#),
            ["items[0].colour"]
        );
        assert_eq!(fields(r#"{"items":[],"extra":1}"#), ["extra"]);
    }

    #[test]
    fn nul_characters_are_named_with_their_path() {
        assert_eq!(
            fields(r#"{"items":[{"quantity":"2"},{"quantity":"a\u0000"}]}"#),
            ["items[1].quantity"]
        );
        // An escaped backslash before `u0000` is text, not NUL.
        assert!(parse_json::<Body>(br#"{"items":[{"quantity":"\\u0000"}]}"#).is_ok());
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        #[derive(Debug, serde::Deserialize)]
        struct N {
            #[serde(default, deserialize_with = "whole_number")]
            n: Option<i32>,
        }
        let n = |body: &str| parse_json::<N>(body.as_bytes()).map(|v| v.n);
        assert_eq!(n(r#"{"n":2666}"#).unwrap(), Some(2666));
        assert_eq!(n(r#"{"n":2666.0}"#).unwrap(), Some(2666));
        assert_eq!(n(r#"{"n":2.666e3}"#).unwrap(), Some(2666));
        assert_eq!(n(r#"{"n":null}"#).unwrap(), None);
        assert!(n(r#"{"n":2666.5}"#).is_err());
        assert!(n(r#"{"n":3000000000}"#).is_err());
        assert!(n(r#"{"n":"2666"}"#).is_err());
    }

    #[test]
    fn syntax_errors_are_malformed_json() {
        assert!(matches!(
            parse_json::<Body>(b"{\"items\": ["),
            Err(ServiceError::MalformedJson(_))
        ));
    }

    #[test]
    fn a_body_of_the_wrong_shape_is_named_body() {
        assert_eq!(fields("[1,2]"), ["body"]);
    }
}
