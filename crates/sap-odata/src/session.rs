//! SAP's logon and CSRF session conventions on the wire, as ICF and SAP Gateway apply them:
//! one reading for everything of ours that plays SAP's server side, the emulator (`sap-mock`,
//! which keeps its sessions in memory as SAP does) and the proxy's own SAP face for a retired
//! route (which signs them, so they survive a restart; `services/proxy/src/sap_face`).
//!
//! - A **CSRF fetch** is a `GET` or `HEAD` with `x-csrf-token: Fetch` (any case). The answer
//!   carries `x-csrf-token: <token>` and the session cookies [`session_set_cookies`]:
//!   `SAP_SESSIONID_<SID>_<client>` (the session; `=` in its value written `%3d`, as SAP does)
//!   and `sap-usercontext=sap-client=<client>`.
//! - A **write** ([`is_write`]: `POST`, `PUT`, `PATCH`, `MERGE`, `DELETE`; `$batch` is a `POST`)
//!   must send the token and the cookie; otherwise SAP answers `403`, `x-csrf-token: Required`,
//!   plain-text body [`CSRF_FAILED_BODY`], and SAP's clients fetch a new token.
//! - **Logon** is HTTP basic ([`basic_credentials`]) or the session cookie; a failed logon is
//!   `401` with `WWW-Authenticate: `[`logon_challenge`].
//! - **`sap-client`** is a header or a query parameter ([`requested_clients`]); a system answers
//!   for its own client only.
//!
//! Sources (also in `docs/sap-mock.md`): SAP's blog "How does CSRF token work? SAP Gateway"
//! (A. Grabecz, community.sap.com, 2021) for the fetch, the 403 `Required` answer and the
//! refetch; SAP KBA 3048103 for the cookie names `SAP_SESSIONID_<SID>_<client>` /
//! `sap-XSRF_<SID>_<client>` and that the check compares the header with the session cookie.

use base64::Engine;
use http::{HeaderMap, Method};

/// The CSRF header, in requests and answers.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The value a client sends to ask for a token.
pub const CSRF_FETCH: &str = "Fetch";
/// The value SAP answers a write without a valid token with.
pub const CSRF_REQUIRED: &str = "Required";
/// SAP's plain-text body of that answer.
pub const CSRF_FAILED_BODY: &str = "CSRF token validation failed";
/// SAP Gateway's message code of a failed logon (in the OData error body of the `401`).
pub const LOGON_FAILED: &str = "/IWFND/CM_CONSUMER/101";
/// The header (and query parameter) naming the SAP client.
pub const SAP_CLIENT: &str = "sap-client";

/// Whether the request asks for a CSRF token (`x-csrf-token: Fetch`, any case, on `GET` or
/// `HEAD`).
pub fn is_fetch(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(CSRF_FETCH))
}

/// Whether SAP checks the CSRF token of a request with this (effective) method: every method
/// but `GET`, `HEAD` and `OPTIONS`.
pub fn is_write(method: &Method) -> bool {
    !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS")
}

/// The session cookie's name: `SAP_SESSIONID_<SID>_<client>`.
pub fn session_cookie_name(system_id: &str, client: &str) -> String {
    format!("SAP_SESSIONID_{system_id}_{client}")
}

/// The `set-cookie` values of a session opened by a CSRF fetch: the session cookie (its `=`
/// written `%3d`, as SAP writes its base64 session ids) and `sap-usercontext`.
pub fn session_set_cookies(cookie_name: &str, client: &str, session: &str) -> [String; 2] {
    let value = session.replace('=', "%3d");
    [
        format!("sap-usercontext=sap-client={client}; path=/"),
        format!("{cookie_name}={value}; path=/; HttpOnly"),
    ]
}

/// The value of cookie `name` (SAP's `%3d` undone), from every `Cookie` header, pairs split on
/// `;` with or without a space (SAP's JavaScript client sends none).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.replace("%3d", "=").replace("%3D", "="))
}

/// `user`, `password` from `Authorization: Basic ...`; `None` without one or when it does not
/// decode.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Whether the request carries an `Authorization` header at all (basic or not).
pub fn has_authorization(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
}

/// The `WWW-Authenticate` value of a failed logon:
/// `Basic realm="SAP NetWeaver Application Server [<SID>/<client>]"`.
pub fn logon_challenge(system_id: &str, client: &str) -> String {
    format!("Basic realm=\"SAP NetWeaver Application Server [{system_id}/{client}]\"")
}

/// The SAP clients a request names, header first, then the query parameter (percent-decoded).
pub fn requested_clients(headers: &HeaderMap, raw_query: &str) -> Vec<String> {
    let from_header = headers
        .get(SAP_CLIENT)
        .map(|v| v.to_str().unwrap_or_default().trim().to_owned());
    let from_query = raw_query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == SAP_CLIENT)
        .map(|(_, v)| crate::uri::percent_decode(v, true).unwrap_or_default());
    [from_header, from_query].into_iter().flatten().collect()
}

/// `Err` with SAP's message when the request names a client other than the system's.
pub fn check_client(
    headers: &HeaderMap,
    raw_query: &str,
    system_client: &str,
) -> Result<(), String> {
    match requested_clients(headers, raw_query)
        .into_iter()
        .find(|c| c != system_client)
    {
        Some(other) => Err(format!("Client {other} is not available in this system")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_fetch_is_a_get_or_head_asking_in_any_case() {
        let mut h = HeaderMap::new();
        h.insert(CSRF_HEADER, HeaderValue::from_static("fetch"));
        assert!(is_fetch(&Method::HEAD, &h));
        assert!(is_fetch(&Method::GET, &h));
        assert!(!is_fetch(&Method::POST, &h));
        assert!(!is_fetch(&Method::GET, &HeaderMap::new()));
        assert!(is_write(&Method::from_bytes(b"MERGE").unwrap()));
        assert!(!is_write(&Method::HEAD));
    }

    #[test]
    fn cookies_are_read_the_sdk_way_and_sap_s_escape_is_undone() {
        let [ctx, session] = session_set_cookies("SAP_SESSIONID_MCK_100", "100", "ab==");
        assert_eq!(ctx, "sap-usercontext=sap-client=100; path=/");
        assert_eq!(session, "SAP_SESSIONID_MCK_100=ab%3d%3d; path=/; HttpOnly");
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static(
                "sap-usercontext=sap-client=100;SAP_SESSIONID_MCK_100=ab%3d%3d",
            ),
        );
        assert_eq!(cookie(&h, "SAP_SESSIONID_MCK_100").as_deref(), Some("ab=="));
        assert_eq!(cookie(&h, "other"), None);
    }

    #[test]
    fn basic_credentials_and_the_client_are_read_as_sap_reads_them() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6czNjcjp0"),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".to_owned(), "s3cr:t".to_owned()))
        );
        h.insert(SAP_CLIENT, HeaderValue::from_static("100"));
        assert!(check_client(&h, "", "100").is_ok());
        assert_eq!(
            check_client(&h, "sap-client=200", "100"),
            Err("Client 200 is not available in this system".to_owned())
        );
        assert_eq!(
            logon_challenge("MCK", "100"),
            "Basic realm=\"SAP NetWeaver Application Server [MCK/100]\""
        );
    }
}
