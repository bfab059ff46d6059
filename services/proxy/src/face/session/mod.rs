//! SAP's session layer for a retired route: what S/4's ICF and Gateway answer before any order
//! is read or written, served by the proxy itself so that SAP can be stopped.
//!
//! While the `sales-orders` route is `retired`, every request for the route's part of
//! `API_SALES_ORDER_SRV` (the service root, `$metadata`, `$batch`, `A_SalesOrder…`,
//! `A_SalesOrderItem…`) passes through [`SapFace::gate`] first, in SAP's order:
//!
//! 1. **client**: a `sap-client` (header or query) other than the system's is refused;
//! 2. **logon** ([`users`]): basic authentication against the configured users (argon2
//!    hashes), or the session cookie of an earlier CSRF fetch; `401` with SAP's
//!    `WWW-Authenticate: Basic realm="SAP NetWeaver Application Server [<SID>/<client>]"`
//!    otherwise. No users configured: `401` for everything (fails closed);
//! 3. **CSRF** ([`sessions`]): `GET`/`HEAD` with `x-csrf-token: Fetch` gets a token and the
//!    session cookies (`SAP_SESSIONID_<SID>_<client>`, `sap-usercontext`); a write without the
//!    token of its session cookie gets `403` with `x-csrf-token: Required`;
//! 4. **answers of its own**: `HEAD` (`200`, the fetch), the service document (JSON or
//!    AtomPub) and `$metadata`, both from `sap_odata::metadata`, the emulator's one source.
//!
//! Everything else goes on to the route's handlers (reads, creates, changes, `$batch`), with
//! the fetched session's headers added to their answer. In every other mode, and for paths of
//! the service the route does not own, nothing here runs: SAP's own session layer answers.
//! The wire conventions are `sap_odata::session`'s, shared with the emulator.

pub mod sessions;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use sap_odata::session::{self as wire, CSRF_HEADER};

use crate::routing::routes::{Mode, RouteTable, SALES_ORDERS};
use crate::serve::body::{ProxyBody, empty, full};
use sessions::{Issued, SessionKey, SignedSessions};
use users::{LogonFailure, Users};

/// What the SAP face needs from the configuration.
#[derive(Debug, Clone)]
pub struct FaceSettings {
    /// SAP system id (in cookie names and the logon realm).
    pub system_id: String,
    /// The SAP client served.
    pub client: String,
    /// The users file (`name:$argon2id$...` lines); `None`: no users, retired refuses all.
    pub users_file: Option<PathBuf>,
    /// The file of the key that signs sessions (created when missing).
    pub session_key_file: PathBuf,
}

/// The session layer of a retired route.
#[derive(Debug)]
pub struct SapFace {
    system_id: String,
    client: String,
    sessions: SignedSessions,
    users: Arc<Users>,
}

/// What [`SapFace::gate`] decided.
pub enum Gate {
    /// Answered here (a refusal, a fetch by `HEAD`, the service document, `$metadata`).
    Answer(Response<ProxyBody>),
    /// Go on to the route; add these session headers (a `GET` fetch) to its answer.
    Proceed(Option<SessionHeaders>),
}

/// The headers of a CSRF fetch: the token and the session cookies.
#[derive(Debug, Clone)]
pub struct SessionHeaders {
    token: String,
    cookies: [String; 2],
}

impl SessionHeaders {
    /// Adds the token and the cookies to an answer's headers.
    pub fn apply(&self, h: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.token) {
            h.insert(CSRF_HEADER, v);
        }
        for c in &self.cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(header::SET_COOKIE, v);
            }
        }
    }
}

/// The part of the service a path names, when the route owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The service root (`.../API_SALES_ORDER_SRV` or `.../API_SALES_ORDER_SRV/`).
    Root,
    /// `.../$metadata`.
    Metadata,
    /// `$batch`, `A_SalesOrder…`, `A_SalesOrderItem…`, or a segment SAP could not decode.
    Resource,
}

/// The owned part of the service `path` names, read as [`crate::routing::sales_orders::classify`]
/// reads it (the same segment rules: empty segments ignored, percent-decoded, root node names
/// and the entity set name without regard to case); `None` for any other path.
pub fn target(path: &str) -> Option<Target> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    for want in crate::routing::sales_orders::ROOT_SEGMENTS {
        match segments.next().map(crate::routing::sales_orders::decoded) {
            Some(Some(s)) if s.eq_ignore_ascii_case(want) => {}
            _ => return None,
        }
    }
    let Some(head) = segments.next() else {
        return Some(Target::Root);
    };
    let Some(head) = crate::routing::sales_orders::decoded(head) else {
        return Some(Target::Resource);
    };
    let name = head.split('(').next().unwrap_or_default();
    let is = |want: &str| name.eq_ignore_ascii_case(want);
    if is("$metadata") && !head.contains('(') && segments.next().is_none() {
        Some(Target::Metadata)
    } else if is("$batch") || is("A_SalesOrder") || is("A_SalesOrderItem") {
        Some(Target::Resource)
    } else {
        None
    }
}

impl SapFace {
    /// Loads the users and the session key. No users: a warning, and a retired route then
    /// refuses every client.
    pub fn build(settings: &FaceSettings) -> anyhow::Result<Self> {
        let users = match &settings.users_file {
            Some(path) => Users::load(path)?,
            None => Users::none(),
        };
        if users.is_empty() {
            tracing::warn!(
                "no SAP-face users configured (PROXY_USERS_FILE): while the sales-orders route is retired, every client request to it is refused with 401"
            );
        }
        let key = SessionKey::load_or_create(&settings.session_key_file)?;
        Ok(Self::new(settings, users, key))
    }

    /// A face with these users and key (tests).
    pub fn new(settings: &FaceSettings, users: Users, key: SessionKey) -> Self {
        let cookie = wire::session_cookie_name(&settings.system_id, &settings.client);
        Self {
            system_id: settings.system_id.clone(),
            client: settings.client.clone(),
            sessions: SignedSessions::new(key, cookie),
            users: Arc::new(users),
        }
    }

    /// Runs a request through the session layer when the route is retired and owns the path.
    pub async fn gate<B>(&self, req: &Request<B>, routes: &RouteTable) -> Gate {
        let Some(target) = target(req.uri().path()) else {
            return Gate::Proceed(None);
        };
        if routes.mode(SALES_ORDERS) != Some(Mode::Retired) {
            return Gate::Proceed(None);
        }
        self.serve(target, req.method(), req.uri(), req.headers())
            .await
    }

    /// The phases of the module doc for one request the route owns.
    pub async fn serve(
        &self,
        target: Target,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Gate {
        let method = crate::face::write::effective_method(method, headers);
        let raw_query = uri.query().unwrap_or_default();
        if let Err(message) = wire::check_client(headers, raw_query, &self.client) {
            return Gate::Answer(self.logon_failed(&message));
        }
        let user = match self.logon(headers).await {
            Ok(u) => u,
            Err(f) => {
                crate::observe::sap_face_logon_refused(f);
                return Gate::Answer(self.logon_failed(match f {
                    LogonFailure::Missing | LogonFailure::NoUsers => "Logon failed: no credentials",
                    LogonFailure::Wrong => "Logon failed: name or password is incorrect",
                }));
            }
        };
        let issued = wire::is_fetch(&method, headers).then(|| self.fetch(headers, &user));
        if method == Method::HEAD {
            // SAP's clients fetch the token with HEAD on the entity set (often with a trailing
            // slash) or on the entity to change: any owned resource answers 200.
            return Gate::Answer(answer(StatusCode::OK, empty(), None, issued));
        }
        if wire::is_write(&method) && !self.token_valid(headers, &user) {
            crate::observe::sap_face_csrf_refused();
            return Gate::Answer(csrf_required());
        }
        match target {
            Target::Root | Target::Metadata if method != Method::GET => {
                Gate::Answer(crate::error::odata_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "/IWFND/CM_MGW/004",
                    &format!("Method '{method}' not allowed for this resource"),
                ))
            }
            Target::Root => {
                let (body, content_type) = if sap_odata::wants_xml(headers, raw_query) {
                    (
                        sap_odata::metadata::service_document_atom(&service_root(headers)),
                        sap_odata::metadata::SERVICE_DOCUMENT_ATOM_CONTENT_TYPE,
                    )
                } else {
                    (
                        sap_odata::metadata::service_document_json(),
                        sap_odata::metadata::SERVICE_DOCUMENT_JSON_CONTENT_TYPE,
                    )
                };
                Gate::Answer(answer(
                    StatusCode::OK,
                    full(body),
                    Some(content_type),
                    issued,
                ))
            }
            Target::Metadata => Gate::Answer(answer(
                StatusCode::OK,
                full(metadata_document()),
                Some(sap_odata::metadata::EDMX_CONTENT_TYPE),
                issued,
            )),
            Target::Resource => Gate::Proceed(issued),
        }
    }

    /// Basic authentication, else the session cookie; the configured user name.
    async fn logon(&self, headers: &HeaderMap) -> Result<String, LogonFailure> {
        if self.users.is_empty() {
            return Err(LogonFailure::NoUsers);
        }
        if let Some((user, password)) = wire::basic_credentials(headers) {
            return self.users.verify(&user, &password).await;
        }
        if wire::has_authorization(headers) {
            // Another scheme (a bearer token): not accepted here.
            return Err(LogonFailure::Wrong);
        }
        wire::cookie(headers, self.sessions.cookie_name())
            .and_then(|s| self.sessions.user_of(&s))
            .and_then(|u| self.users.canonical(&u).map(str::to_owned))
            .ok_or(LogonFailure::Missing)
    }

    /// The caller's session again when its cookie holds for this user, else a new one.
    fn fetch(&self, headers: &HeaderMap, user: &str) -> SessionHeaders {
        let issued: Issued = match wire::cookie(headers, self.sessions.cookie_name()) {
            Some(s) if self.sessions.user_of(&s).as_deref() == Some(user) => {
                self.sessions.reissue(&s)
            }
            _ => self.sessions.open(user),
        };
        SessionHeaders {
            cookies: wire::session_set_cookies(
                self.sessions.cookie_name(),
                &self.client,
                &issued.session,
            ),
            token: issued.token,
        }
    }

    /// Whether a write carries the token of the session its cookie names, for this user.
    fn token_valid(&self, headers: &HeaderMap, user: &str) -> bool {
        let Some(sent) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(session) = wire::cookie(headers, self.sessions.cookie_name()) else {
            return false;
        };
        self.sessions.user_of(&session).as_deref() == Some(user)
            && self.sessions.token_matches(&session, sent)
    }

    fn logon_failed(&self, message: &str) -> Response<ProxyBody> {
        let mut r = crate::error::odata_error(
            StatusCode::UNAUTHORIZED,
            sap_odata::session::LOGON_FAILED,
            message,
        );
        if let Ok(v) = HeaderValue::from_str(&wire::logon_challenge(&self.system_id, &self.client))
        {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    }
}

/// `$metadata`, rendered once.
fn metadata_document() -> bytes::Bytes {
    static DOC: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    DOC.get_or_init(|| bytes::Bytes::from(sap_odata::metadata::edmx()))
        .clone()
}

/// `http://<host>/sap/opu/odata/sap/API_SALES_ORDER_SRV`, the host the client called (checked
/// to be a plain authority, else `localhost`), as the emulator writes it.
fn service_root(headers: &HeaderMap) -> String {
    format!(
        "http://{}{}",
        sap_odata::request_host(headers),
        sap_odata::SERVICE_ROOT_PATH
    )
}

/// An answer with S/4's headers (`dataserviceversion: 2.0`, no caching) and the session's.
fn answer(
    status: StatusCode,
    body: ProxyBody,
    content_type: Option<&'static str>,
    session: Option<SessionHeaders>,
) -> Response<ProxyBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    h.insert("dataserviceversion", HeaderValue::from_static("2.0"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    if let Some(s) = session {
        s.apply(h);
    }
    r
}

/// SAP's refusal of a write without a valid token: `403`, `x-csrf-token: Required`, plain text.
fn csrf_required() -> Response<ProxyBody> {
    let mut r = Response::new(full(wire::CSRF_FAILED_BODY));
    *r.status_mut() = StatusCode::FORBIDDEN;
    let h = r.headers_mut();
    h.insert(CSRF_HEADER, HeaderValue::from_static(wire::CSRF_REQUIRED));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn face(users: &str) -> SapFace {
        SapFace::new(
            &FaceSettings {
                system_id: "S4H".into(),
                client: "100".into(),
                users_file: None,
                session_key_file: PathBuf::new(),
            },
            Users::from_lines(users).unwrap(),
            SessionKey::random(),
        )
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {enc}")).unwrap(),
        );
        h
    }

    const SET: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder";

    #[test]
    fn the_route_owns_its_sets_the_root_and_metadata_only() {
        let root = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
        assert_eq!(target(root), Some(Target::Root));
        assert_eq!(target(&format!("{root}/")), Some(Target::Root));
        assert_eq!(target(&format!("{root}/$metadata")), Some(Target::Metadata));
        assert_eq!(
            target(&format!("{root}/A_SalesOrder/")),
            Some(Target::Resource)
        );
        assert_eq!(
            target(&format!(
                "{root}/A_SalesOrderItem(SalesOrder='1',SalesOrderItem='10')"
            )),
            Some(Target::Resource)
        );
        assert_eq!(target(&format!("{root}/%24batch")), Some(Target::Resource));
        assert_eq!(target(&format!("{root}/%zz")), Some(Target::Resource));
        assert_eq!(target(&format!("{root}/A_SalesOrderHeaderPartner")), None);
        assert_eq!(target("/sap/opu/odata/sap/API_PRODUCT_SRV/A_Product"), None);
    }

    async fn run(face: &SapFace, method: &str, path: &str, headers: &HeaderMap) -> Gate {
        let uri: http::Uri = path.parse().unwrap();
        face.serve(
            target(uri.path()).unwrap(),
            &Method::from_bytes(method.as_bytes()).unwrap(),
            &uri,
            headers,
        )
        .await
    }

    fn answered(g: Gate) -> Response<ProxyBody> {
        match g {
            Gate::Answer(r) => r,
            Gate::Proceed(_) => panic!("expected an answer"),
        }
    }

    #[tokio::test]
    async fn no_users_refuses_everything_with_sap_s_challenge() {
        let f = face("");
        let r = answered(run(&f, "HEAD", SET, &basic("alice", "x")).await);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"SAP NetWeaver Application Server [S4H/100]\""
        );
    }

    #[tokio::test]
    async fn a_fetched_token_admits_a_write_of_its_session_only() {
        let line = format!("alice:{}", users::hash_password("pw").unwrap());
        let f = face(&line);
        let mut fetch = basic("alice", "pw");
        fetch.insert(CSRF_HEADER, HeaderValue::from_static("fetch"));
        let r = answered(run(&f, "HEAD", &format!("{SET}/"), &fetch).await);
        assert_eq!(r.status(), StatusCode::OK);
        let (token, cookies) = sap_odata::csrf_session(r.headers());
        let token = token.unwrap();
        assert!(cookies.contains("SAP_SESSIONID_S4H_100="), "{cookies}");
        let mut write = basic("alice", "pw");
        write.insert(CSRF_HEADER, HeaderValue::from_str(&token).unwrap());
        write.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookies.replace("; ", ";")).unwrap(),
        );
        assert!(matches!(
            run(&f, "POST", SET, &write).await,
            Gate::Proceed(None)
        ));
        // another token, no cookie, no token: 403 Required
        let mut stale = write.clone();
        stale.insert(CSRF_HEADER, HeaderValue::from_static("c3RhbGU="));
        let mut no_cookie = write.clone();
        no_cookie.remove(header::COOKIE);
        for h in [stale, no_cookie, basic("alice", "pw")] {
            let r = answered(run(&f, "POST", SET, &h).await);
            assert_eq!(r.status(), StatusCode::FORBIDDEN);
            assert_eq!(r.headers()[CSRF_HEADER], "Required");
        }
        // wrong password and another client are refused before any CSRF check
        let r = answered(run(&f, "POST", SET, &basic("alice", "nope")).await);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let mut other_client = write.clone();
        other_client.insert("sap-client", HeaderValue::from_static("200"));
        let r = answered(run(&f, "POST", SET, &other_client).await);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // the cookie alone logs on (a GET without credentials)
        let mut cookie_only = HeaderMap::new();
        cookie_only.insert(header::COOKIE, HeaderValue::from_str(&cookies).unwrap());
        assert!(matches!(
            run(&f, "GET", SET, &cookie_only).await,
            Gate::Proceed(None)
        ));
    }

    #[tokio::test]
    async fn metadata_and_the_service_document_are_served_here() {
        let line = format!("alice:{}", users::hash_password("pw").unwrap());
        let f = face(&line);
        let h = basic("alice", "pw");
        let r = answered(
            run(
                &f,
                "GET",
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/$metadata",
                &h,
            )
            .await,
        );
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["dataserviceversion"], "2.0");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/xml");
        let mut xml = h.clone();
        xml.insert(header::ACCEPT, HeaderValue::from_static("application/xml"));
        let r = answered(run(&f, "GET", "/sap/opu/odata/sap/API_SALES_ORDER_SRV/", &xml).await);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/xml")
        );
    }
}
