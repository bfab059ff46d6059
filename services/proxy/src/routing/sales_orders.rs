//! The `sales-orders` route: the `A_SalesOrder` create in every mode, and its reads in the
//! modes where the order service answers them.
//!
//! A create goes through these phases, in order:
//! 1. **claim** the idempotency key (client `Idempotency-Key`, else the configured natural key):
//!    a finished key replays its stored answer, another body under the same key is refused, a
//!    key whose earlier attempt ended unknown (crash, SAP silent) is retried *with look-up*;
//! 2. **prepare**: stamp the SAP body with the write key and translate it for the order service;
//! 3. **call** SAP and the order service concurrently (latency = the slower one);
//! 4. **resolve** a silent SAP by looking the stamp up (was it created after all?);
//! 5. **decide** with the outcome table ([`crate::dual_write::outcome::decide`]);
//! 6. **secure** the follow-ups that keep a promise (durable replay entries, fsynced) *before*
//!    answering;
//! 7. **answer**, and finish the idempotency key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::ProxyConfig;
use crate::dual_write::numbers::Numbers;
use crate::dual_write::outcome::{self, FollowUp, NewSide, Reply, SapSide};
use crate::dual_write::store::{
    Claim, ReplayEntry, ReplayKind, ReplayState, Store, StoredResponse,
};
use crate::error::{ProxyError, Side, UpstreamFailure};
use crate::observe;
use crate::routing::routes::{Mode, Route};
use crate::serve::body::{ProxyBody, full};
use crate::serve::passthrough::{strip_hop_by_hop, upstream_request};
use crate::upstreams::order_client::{OrderCreated, OrderService, OrderServiceError};
use crate::upstreams::sap_client::{SERVICE_ROOT, SapClient};
use crate::upstreams::upstream::Upstream;
use order_acl::TranslateOptions;
use tokio_util::task::TaskTracker;

/// Namespace of write keys derived from idempotency keys (UUID v5).
const WRITE_KEY_NAMESPACE: Uuid = Uuid::from_u128(0x5a9e_0d1c_4b7f_4c55_9d0e_27b1_6c3f_a001);

/// What a request means to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST .../A_SalesOrder`.
    SalesOrderCreate,
    /// `GET .../A_SalesOrder...` (collection, entity by key, `$count`).
    SalesOrderRead,
    /// `POST .../$batch`: changesets may hold any write of the service.
    Batch,
    /// A path below the service root that SAP would not parse (bad percent-encoding, bad key
    /// predicate): SAP answers it with an error, the route must not guess.
    Malformed,
    /// A change of an order or its lines (`PATCH`/`MERGE`/`PUT`/`DELETE` on an entity by
    /// key, `POST .../A_SalesOrder('n')/to_Item`).
    SalesOrderChange,
    /// Anything else: straight to SAP.
    PassThrough,
}

/// The service root's segments (ICF node names are case-insensitive in SAP).
pub(crate) const ROOT_SEGMENTS: [&str; 5] = ["sap", "opu", "odata", "sap", "API_SALES_ORDER_SRV"];

/// Classifies a request by method and path, exactly as SAP parses the path (the rules of
/// `sap_odata::uri::parse_resource_path`, which the emulator uses): split on `/` with empty
/// segments ignored, each segment percent-decoded (by `sap_odata::uri::percent_decode`), the
/// entity set name before `(`. So a trailing slash, `//`, or a percent-encoded entity set name
/// reaches the route as it reaches SAP. The service root's ICF node names are case-insensitive
/// in SAP; the entity set name is compared without regard to case as well (see below).
///
/// Runs for every request, the lean pass-through path's included: it allocates only for a
/// segment that carries a percent sign.
pub fn classify(method: &Method, path: &str) -> Operation {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    for want in ROOT_SEGMENTS {
        match segments.next().map(decoded) {
            Some(Some(s)) if s.eq_ignore_ascii_case(want) => {}
            _ => return Operation::PassThrough,
        }
    }
    let Some(head) = segments.next() else {
        return Operation::PassThrough;
    };
    let Some(head) = decoded(head) else {
        // SAP refuses a segment it cannot decode; the route must not guess what it names.
        return Operation::Malformed;
    };
    let second = segments.next();
    let deeper = segments.next().is_some();
    // `(` is ASCII, so its index is a character boundary.
    let (name, keyed) = match head.find('(') {
        Some(i) => (&head[..i], true),
        None => (&head[..], false),
    };
    // Compared without regard to case: should an SAP release match names loosely, a
    // spelling must not slip past the route (one SAP refuses costs a refused create at most).
    let is = |want: &str| name.eq_ignore_ascii_case(want);
    let counts = || {
        second
            .and_then(decoded)
            .is_some_and(|s| s.eq_ignore_ascii_case("$count"))
    };
    let (post, get) = (method == Method::POST, method == Method::GET);
    if post && !keyed && second.is_none() && is("$batch") {
        Operation::Batch
    } else if post && !keyed && second.is_none() && is("A_SalesOrder") {
        Operation::SalesOrderCreate
    } else if get
        && (is("A_SalesOrder") || is("A_SalesOrderItem"))
        && (second.is_none() || (!keyed && !deeper && counts()))
    {
        // An order, a line, or a list of either (or its `$count`).
        Operation::SalesOrderRead
    } else if get
        && keyed
        && !deeper
        && ((is("A_SalesOrderItem") && second.is_none())
            || (is("A_SalesOrder")
                && second
                    .and_then(decoded)
                    .is_some_and(|s| s.eq_ignore_ascii_case("to_Item"))))
    {
        // A line by key, or an order's lines: the same order's data, so the same route.
        Operation::SalesOrderRead
    } else if keyed
        && !deeper
        && (is("A_SalesOrder") || is("A_SalesOrderItem"))
        && (matches!(method.as_str(), "PATCH" | "MERGE" | "PUT" | "DELETE")
            || (post && is("A_SalesOrder") && second.is_some()))
    {
        Operation::SalesOrderChange
    } else {
        Operation::PassThrough
    }
}

/// A path segment percent-decoded (borrowed when it has nothing to decode); `None` when its
/// encoding is invalid.
pub(crate) fn decoded(segment: &str) -> Option<std::borrow::Cow<'_, str>> {
    if segment.contains('%') {
        sap_odata::uri::percent_decode(segment, false)
            .ok()
            .map(std::borrow::Cow::Owned)
    } else {
        Some(std::borrow::Cow::Borrowed(segment))
    }
}

/// A complete HTTP answer.
#[derive(Debug, Clone)]
pub struct Buffered {
    /// Status.
    pub status: StatusCode,
    /// End-to-end headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Buffered {
    fn into_response(self) -> Response<ProxyBody> {
        let mut r = Response::new(full(self.body));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers;
        r
    }

    fn to_stored(&self) -> StoredResponse {
        use base64::Engine;
        StoredResponse {
            status: self.status.as_u16(),
            headers: self
                .headers
                .iter()
                // An answer kept for whoever repeats the key must not hand them the first
                // caller's SAP session or CSRF token.
                .filter(|(k, _)| {
                    *k != header::DATE
                        && *k != header::SET_COOKIE
                        && !k.as_str().eq_ignore_ascii_case("x-csrf-token")
                })
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body_b64: base64::engine::general_purpose::STANDARD.encode(&self.body),
        }
    }

    fn from_stored(s: &StoredResponse) -> Self {
        use base64::Engine;
        let mut headers = HeaderMap::new();
        for (k, v) in &s.headers {
            if let (Ok(k), Ok(v)) = (k.parse::<http::HeaderName>(), HeaderValue::from_str(v)) {
                headers.append(k, v);
            }
        }
        Self {
            status: StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK),
            headers,
            body: base64::engine::general_purpose::STANDARD
                .decode(&s.body_b64)
                .unwrap_or_default()
                .into(),
        }
    }

    async fn from_response(
        resp: Response<crate::upstreams::upstream::UpstreamBody>,
        timeout: Duration,
    ) -> Result<Self, UpstreamFailure> {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let bytes = match tokio::time::timeout(timeout, body.collect()).await {
            Err(_) => return Err(UpstreamFailure::Timeout),
            Ok(Err(e)) => return Err(UpstreamFailure::Broken(e.to_string())),
            Ok(Ok(c)) => c.to_bytes(),
        };
        Ok(Self {
            status: parts.status,
            headers: parts.headers,
            body: bytes,
        })
    }
}

/// Everything the route's handlers need.
pub struct SalesOrders {
    /// Configuration.
    pub config: Arc<ProxyConfig>,
    /// SAP, for the client's own create.
    pub sap: Arc<Upstream>,
    /// SAP, for the proxy's own calls.
    pub sap_client: SapClient,
    /// The order service.
    pub orders: Arc<dyn OrderService>,
    /// Durable state.
    pub store: Store,
    /// Idempotency keys (local, or shared by the replicas).
    pub keys: crate::dual_write::keys::Keys,
    /// Wakes the replay worker.
    pub replay_wakeup: Arc<Notify>,
    /// This process's boot id (tells crashed in-flight keys from live ones).
    pub boot_id: String,
    /// Order numbers to name on creates.
    pub numbers: Numbers,
    /// Creates and their follow-ups in progress: waited for at shutdown, never cut by a
    /// client hanging up.
    pub writes: TaskTracker,
}

/// Where a create goes in SAP.
#[derive(Debug, Clone)]
struct Target {
    /// The `SalesOrder` the create names (ours, or the client's own), if any.
    sap_number: Option<String>,
    /// The number is ours (from [`Numbers`]): no one else creates under it.
    ours: bool,
    /// An earlier attempt of the same key ended without a definite answer.
    retry: bool,
}

/// What the SAP call produced, with the answer when there was one.
struct SapResult {
    side: SapSide,
    answer: Option<Buffered>,
    failure: Option<UpstreamFailure>,
}

impl SapResult {
    /// SAP went silent on a create under a number it may still commit.
    fn is_silent(&self) -> bool {
        matches!(self.side, SapSide::Silent { .. })
    }
}

struct NewResult {
    side: NewSide,
    order: Option<OrderCreated>,
    error: Option<String>,
}

impl NewResult {
    fn failed(retryable: bool, ambiguous: bool, error: String) -> Self {
        Self {
            side: NewSide::Failed {
                retryable,
                ambiguous,
            },
            order: None,
            error: Some(error),
        }
    }
}

/// What SAP derived, read from its answer to a create (`None` when it cannot be read).
fn sap_pricing(answer: Option<&Bytes>) -> Option<Value> {
    let v: Value = serde_json::from_slice(answer?).ok()?;
    order_acl::sap_pricing(&v["d"])
}

/// A proxy error as a complete answer.
fn error_buffered(e: ProxyError) -> Buffered {
    let (status, headers, body) = e.to_parts();
    Buffered {
        status,
        headers,
        body,
    }
}

/// The number in a create answer's `Location` (`.../A_SalesOrder('123')`), for answers whose
/// body cannot be read (compressed, Atom XML).
fn number_from_location(headers: &HeaderMap) -> Option<String> {
    let loc = headers.get(header::LOCATION)?.to_str().ok()?;
    let rest = loc.rsplit_once("A_SalesOrder(")?.1;
    let inner = rest.strip_suffix(')').unwrap_or(rest);
    let inner = inner.strip_prefix("SalesOrder=").unwrap_or(inner);
    let decoded = sap_odata::uri::percent_decode(inner, false).ok()?;
    let v = decoded.strip_prefix('\'')?.strip_suffix('\'')?;
    (!v.is_empty()).then(|| v.replace("''", "'"))
}

/// The order-service create body for an order as SAP holds it: SAP's fields through the
/// anti-corruption layer, with SAP's derived amounts, under our number when it is ours.
fn order_from_sap_entity(entity: &Value, target: &Target) -> Option<Value> {
    let mut clean = entity.as_object()?.clone();
    clean.remove("__metadata");
    clean.remove("SalesOrder");
    let pricing = order_acl::sap_pricing(entity);
    let opts = TranslateOptions {
        default_currency: String::new(),
    };
    let mut body = order_acl::deep_insert_to_order(&Value::Object(clean), &opts).ok()?;
    let o = body.as_object_mut()?;
    if target.ours
        && let Some(n) = &target.sap_number
    {
        o.insert("order_number".into(), Value::String(n.clone()));
    }
    // The order service computes net amounts and the total from the unit price; SAP's own
    // amounts are adopted exactly with the link (its `pricing`).
    if let Some(p) = pricing
        && let (Some(items), Some(priced)) = (
            o.get_mut("items").and_then(Value::as_array_mut),
            p["items"].as_array(),
        )
    {
        for (item, price) in items.iter_mut().zip(priced) {
            if let Some(i) = item.as_object_mut() {
                i.insert("unit_price".into(), price["unit_price"].clone());
            }
        }
    }
    Some(body)
}

impl SalesOrders {
    /// Handles `POST .../A_SalesOrder` in the route's mode (snapshotted by the caller).
    ///
    /// The work runs on a tracked task of its own: a client that hangs up, or a connection
    /// closed at shutdown, never cuts a dual write between its decision and its follow-ups,
    /// and its idempotency key is always finished by its owner.
    pub async fn create(
        self: &Arc<Self>,
        parts: http::request::Parts,
        body: Bytes,
        route: Route,
    ) -> Response<ProxyBody> {
        let this = self.clone();
        use tracing::Instrument as _;
        // The tracked task logs in the request's log span and runs under its trace context
        // (traces on only).
        let create =
            async move { this.create_to_end(&parts, body, &route).await }.in_current_span();
        let handle = if platform::otel::enabled() {
            use platform::otel::FutureExt as _;
            self.writes
                .spawn(create.with_context(platform::otel::Context::current()))
        } else {
            self.writes.spawn(create)
        };
        match handle.await {
            Ok(b) => b.into_response(),
            Err(e) => {
                tracing::error!(error = %e, "create task failed");
                ProxyError::Storage("the create could not be completed".into()).to_response()
            }
        }
    }

    async fn create_to_end(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        route: &Route,
    ) -> Buffered {
        let correlation_id = platform::correlation::correlation_from_headers(&parts.headers).0;
        platform::otel::set_current("correlation_id", correlation_id.clone());
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let client_number = parsed
            .as_ref()
            .and_then(|v| v.get("SalesOrder"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        // A number is named only where SAP takes the write and the client named none.
        let wants_number = matches!(route.mode, Mode::Legacy | Mode::DualWrite)
            && client_number.is_none()
            && parsed.as_ref().is_some_and(Value::is_object);

        // Phase 1: claim.
        let key = self.idempotency_key(&parts.headers, parsed.as_ref());
        let fingerprint = fingerprint(parts, &body);
        let candidate = if wants_number {
            self.numbers.next().await
        } else {
            None
        };
        let (claim, number) = match &key {
            None => (Claim::Fresh, candidate.clone()),
            Some(k) => match self
                .keys
                .claim_key(
                    k.clone(),
                    fingerprint.clone(),
                    self.boot_id.clone(),
                    candidate.clone(),
                )
                .await
            {
                Ok(c) => c,
                Err(e) if self.keys.is_shared() => {
                    return error_buffered(ProxyError::StateUnavailable(e.to_string()));
                }
                Err(e) => return error_buffered(ProxyError::Storage(e.to_string())),
            },
        };
        // A number drawn for this request but not used (a replayed key, an earlier attempt's
        // number) goes back to the pool.
        if let Some(c) = candidate
            && number.as_deref() != Some(c.as_str())
        {
            self.numbers.give_back(c);
        }
        match claim {
            Claim::Replay(stored) => {
                let mut b = Buffered::from_stored(&stored);
                b.headers
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return b;
            }
            Claim::Mismatch => return error_buffered(ProxyError::IdempotencyKeyReused),
            Claim::InProgress => return error_buffered(ProxyError::IdempotencyInProgress),
            Claim::Fresh | Claim::Retry { .. } => {}
        }
        let attempt = match claim {
            Claim::Retry { attempt } => attempt,
            _ => 0,
        };
        let number = if wants_number { number } else { None };
        if key.is_some() && wants_number && number.is_none() {
            // No number could be had (none reserved, the order service unreachable): without
            // one a retry of this key could not find what this attempt made, so nothing is
            // sent and the client may retry (nothing was created).
            let answer = error_buffered(ProxyError::NoOrderNumber);
            self.finish(key, fingerprint, attempt, None, None).await;
            return answer;
        }
        let target = Target {
            sap_number: client_number.clone().or_else(|| number.clone()),
            ours: number.is_some(),
            retry: attempt > 0,
        };
        if let Some(n) = &target.sap_number {
            crate::observe::order_known(n);
        }
        // The order service's key: one per order number (its create is idempotent by number
        // too); without a number, one per attempt (an earlier attempt's order may have been
        // voided, and a retry must not revive it).
        let order_key = match (&number, &key) {
            (Some(n), _) => {
                Uuid::new_v5(&WRITE_KEY_NAMESPACE, format!("number:{n}").as_bytes()).to_string()
            }
            (None, Some(k)) if attempt == 0 => {
                Uuid::new_v5(&WRITE_KEY_NAMESPACE, k.as_bytes()).to_string()
            }
            (None, Some(k)) => {
                Uuid::new_v5(&WRITE_KEY_NAMESPACE, format!("{k}#{attempt}").as_bytes()).to_string()
            }
            (None, None) => Uuid::now_v7().to_string(),
        };

        let (result, keep_number) = match route.mode {
            Mode::Legacy => self.legacy_create(parts, body, &target).await,
            Mode::DualWrite => {
                self.dual_write(
                    parts,
                    body,
                    parsed,
                    &order_key,
                    &target,
                    key.as_deref(),
                    route,
                    &correlation_id,
                )
                .await
            }
            Mode::Events | Mode::Retired => (
                self.order_service_create(
                    parts,
                    &body,
                    parsed,
                    route.mode,
                    &order_key,
                    &correlation_id,
                )
                .await,
                false,
            ),
        };

        // Phase 7: finish the key. A 5xx answer leaves the outcome unknown; the number stays
        // with the key while SAP may hold an order under it.
        let answer = match result {
            Ok(b) => b,
            Err(e) => error_buffered(e),
        };
        let stored = (!answer.status.is_server_error()).then(|| answer.to_stored());
        let kept = if keep_number || stored.is_some() {
            number
        } else {
            None
        };
        self.finish(key, fingerprint, attempt, stored, kept).await;
        answer
    }

    async fn finish(
        &self,
        key: Option<String>,
        fingerprint: String,
        attempt: u32,
        stored: Option<StoredResponse>,
        number: Option<String>,
    ) {
        if let Some(k) = key
            && let Err(e) = self
                .keys
                .finish_key(k, fingerprint, attempt, stored, number)
                .await
        {
            tracing::error!(error = %e, "could not finish idempotency key");
        }
    }

    fn idempotency_key(&self, headers: &HeaderMap, parsed: Option<&Value>) -> Option<String> {
        if let Some(k) = headers
            .get(&platform::correlation::IDEMPOTENCY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255)
        {
            return Some(format!("client:{k}"));
        }
        let fields = &self.config.natural_key_fields;
        if fields.is_empty() {
            return None;
        }
        let obj = parsed?.as_object()?;
        let mut parts = Vec::with_capacity(fields.len());
        for f in fields {
            let v = obj.get(f)?.as_str().filter(|s| !s.is_empty())?;
            parts.push(v);
        }
        Some(format!("natural:{}", parts.join("\u{1f}")))
    }

    /// Legacy: SAP only, the answer buffered so an idempotency key can keep it, the create
    /// naming its number so a retry of an attempt whose answer was lost finds it instead of
    /// making a second order. Returns the answer and whether SAP may hold an order under the
    /// number although the answer says otherwise (the number stays with the key).
    async fn legacy_create(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        target: &Target,
    ) -> (Result<Buffered, ProxyError>, bool) {
        let body = match (&target.sap_number, target.ours) {
            (Some(n), true) => stamp_body(&body, "SalesOrder", n),
            _ => body,
        };
        let client_auth = parts.headers.get(header::AUTHORIZATION);
        let sap = self.send_sap_create(parts, body, target).await;
        let sap = self.settle_sap(sap, target, client_auth).await;
        let ambiguous = sap.is_silent();
        match sap.answer {
            Some(b) => (Ok(b), ambiguous),
            None => (
                Err(ProxyError::Upstream {
                    side: Side::Sap,
                    failure: sap.failure.unwrap_or(UpstreamFailure::Timeout),
                }),
                ambiguous,
            ),
        }
    }

    /// What SAP's answer to a create means once the number is taken into account: a refusal
    /// of a create under a number that SAP holds is an earlier attempt's order (SAP refuses a
    /// number it has), and a silent SAP is asked by key whether the order landed.
    async fn settle_sap(
        &self,
        mut sap: SapResult,
        target: &Target,
        client_auth: Option<&HeaderValue>,
    ) -> SapResult {
        let Some(number) = &target.sap_number else {
            return sap;
        };
        let ask = match &sap.side {
            // Our own number, or the client's own on its retry: a refusal may be "exists".
            SapSide::Rejected => target.ours || target.retry,
            SapSide::Unavailable { answered, .. } => {
                !answered
                    && sap
                        .failure
                        .as_ref()
                        .is_none_or(UpstreamFailure::is_ambiguous)
            }
            SapSide::Silent { .. } => false,
            SapSide::Created { .. } => {
                if let SapSide::Created { sales_order } = &mut sap.side
                    && sales_order.is_none()
                {
                    // SAP's answer could not be read (compressed, Atom XML): the number is
                    // known all the same.
                    *sales_order = Some(number.clone());
                }
                false
            }
        };
        if !ask {
            return sap;
        }
        let found = self.sap_client.read_by_key(number, client_auth).await;
        if let Ok(Some(found)) = found {
            tracing::warn!(
                sales_order = %number,
                "SAP holds the order under its number: an earlier or silent attempt made it"
            );
            return found_as_created(found);
        }
        if let Err(e) = &found {
            tracing::warn!(error = %e, sales_order = %number, "read by key after create failed");
        }
        match sap.side {
            // Not there (yet): SAP may still be working on it.
            SapSide::Unavailable { timed_out, .. } => SapResult {
                side: SapSide::Silent { timed_out },
                ..sap
            },
            _ => sap,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn dual_write(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        parsed: Option<Value>,
        order_key: &str,
        target: &Target,
        client_key: Option<&str>,
        route: &Route,
        correlation_id: &str,
    ) -> (Result<Buffered, ProxyError>, bool) {
        let started = Instant::now();

        // Phase 2: prepare. The number goes in right after `{`, every other byte as sent.
        let sap_body = match (&target.sap_number, target.ours) {
            (Some(n), true) => stamp_body(&body, "SalesOrder", n),
            _ => body.clone(),
        };
        // SAP's body as JSON, for the follow-ups that replay it (never on the happy path).
        let sap_json = || -> Value {
            let mut v = parsed.clone().unwrap_or(Value::Null);
            if let (Some(o), true, Some(n)) = (v.as_object_mut(), target.ours, &target.sap_number) {
                o.insert("SalesOrder".into(), Value::String(n.clone()));
            }
            v
        };
        let opts = TranslateOptions {
            default_currency: self.config.default_currency.clone(),
        };
        let order_body = match &parsed {
            Some(v) => order_acl::deep_insert_to_order(v, &opts)
                .map(|mut b| {
                    if target.ours
                        && let (Some(o), Some(n)) = (b.as_object_mut(), &target.sap_number)
                    {
                        o.insert("order_number".into(), Value::String(n.clone()));
                    }
                    b
                })
                .map_err(|e| e.to_string()),
            None => Err("the request body is not JSON".to_owned()),
        };
        let client_auth = parts.headers.get(header::AUTHORIZATION);

        // Phase 3: call both sides concurrently.
        let sap_call = async {
            let sap = self.send_sap_create(parts, sap_body.clone(), target).await;
            // Phase 4: a refusal or a silent SAP is settled by reading the number.
            self.settle_sap(sap, target, client_auth).await
        };
        let new_call = async {
            match &order_body {
                Err(reason) => NewResult::failed(false, false, format!("untranslatable: {reason}")),
                Ok(b) => {
                    self.create_in_order_service(b, order_key, correlation_id)
                        .await
                }
            }
        };
        let (sap, mut new) = tokio::join!(sap_call, new_call);

        // SAP took the order but the order service refused what the client sent (values SAP
        // derives from master data were left out): the order service takes SAP's order as SAP
        // completed it.
        if let (
            SapSide::Created { sales_order },
            NewSide::Failed {
                retryable: false, ..
            },
        ) = (&sap.side, &new.side)
            && let Some(from_sap) = self
                .order_from_sap(&sap, sales_order.as_deref(), target, client_auth)
                .await
        {
            let again = self
                .create_in_order_service(&from_sap, order_key, correlation_id)
                .await;
            if matches!(again.side, NewSide::Created { .. }) {
                tracing::info!(correlation_id, "order service took SAP's completed order");
            }
            new = again;
        }

        // Phase 5: decide.
        let decision = outcome::decide(&sap.side, &new.side, route.policy);
        observe::dual_write_outcome(&decision, correlation_id, started.elapsed());
        if let Some(e) = &new.error {
            tracing::warn!(correlation_id, error = %e, "order service side of the dual write failed");
        }
        let sap_silent = sap.is_silent();

        // Phase 6: secure the follow-ups.
        let sap_number = match &sap.side {
            SapSide::Created { sales_order } => sales_order.clone(),
            _ => None,
        };
        let mut entries = Vec::new();
        for follow_up in &decision.follow_ups {
            let kind = match follow_up {
                FollowUp::LinkSapOrderNumber => {
                    if let (Some(order), Some(number)) = (&new.order, &sap_number) {
                        self.link_in_background(
                            order.id.clone(),
                            number.clone(),
                            sap.answer.as_ref().map(|a| a.body.clone()),
                            route,
                            correlation_id,
                        );
                    }
                    continue;
                }
                FollowUp::ReplayOrderServiceCreate { park } => {
                    let body = order_body.clone().unwrap_or_else(|_| match sap_json() {
                        Value::Null => {
                            Value::String(String::from_utf8_lossy(&sap_body).into_owned())
                        }
                        v => v,
                    });
                    let mut entry = ReplayEntry::new(
                        ReplayKind::CreateInOrderService {
                            body,
                            idempotency_key: order_key.to_owned(),
                            sap_order_number: sap_number.clone(),
                            pricing: sap_pricing(sap.answer.as_ref().map(|a| &a.body)),
                        },
                        &route.name,
                        correlation_id,
                    );
                    if *park {
                        entry.state = ReplayState::Parked;
                        entry.last_error = new.error.clone();
                    }
                    entry
                }
                FollowUp::VoidNewOrder => {
                    let Some(order) = &new.order else { continue };
                    ReplayEntry::new(
                        ReplayKind::VoidOrder {
                            order_id: order.id.clone(),
                            reason: match sap.side {
                                SapSide::Rejected => "sap_rejected".to_owned(),
                                _ => "sap_unavailable".to_owned(),
                            },
                        },
                        &route.name,
                        correlation_id,
                    )
                }
                FollowUp::ResolveSilentSap => self.resolve_later(
                    target,
                    new.order.as_ref(),
                    order_body.clone().ok().filter(|_| new.order.is_none()),
                    order_key,
                    client_key,
                    route,
                    correlation_id,
                ),
                FollowUp::CompensateUnknownCreate => {
                    let Ok(body) = order_body.clone() else {
                        continue;
                    };
                    ReplayEntry::new(
                        ReplayKind::CompensateUnknownCreate {
                            body,
                            idempotency_key: order_key.to_owned(),
                            reason: "dual_write_failed".to_owned(),
                        },
                        &route.name,
                        correlation_id,
                    )
                }
                FollowUp::ReplaySapCreate => {
                    let Some(order) = &new.order else { continue };
                    ReplayEntry::new(
                        ReplayKind::CreateInSap {
                            body: sap_json(),
                            stamp: None,
                            order_id: order.id.clone(),
                        },
                        &route.name,
                        correlation_id,
                    )
                }
            };
            entries.push(kind);
        }
        if !entries.is_empty() {
            if let Err(e) = self.store.put_replays(entries.clone()).await {
                observe::follow_up_not_stored(correlation_id, &e.to_string());
                return (Err(ProxyError::Storage(e.to_string())), sap_silent);
            }
            for e in &entries {
                observe::replay_enqueued(e);
            }
            self.replay_wakeup.notify_one();
        }

        // Phase 7: answer.
        let answer = match decision.reply {
            Reply::SapAnswer => match sap.answer {
                Some(a) => Ok(a),
                None => Err(ProxyError::Upstream {
                    side: Side::Sap,
                    failure: UpstreamFailure::Broken("SAP's answer is missing".into()),
                }),
            },
            Reply::GatewayError { .. } => Err(ProxyError::Upstream {
                side: Side::Sap,
                failure: sap.failure.unwrap_or(UpstreamFailure::Timeout),
            }),
            Reply::LegacyShaped => match new.order {
                Some(order) => Ok(legacy_shaped(parts, &order.order)),
                None => Err(ProxyError::Upstream {
                    side: Side::OrderService,
                    failure: UpstreamFailure::Broken("the new order is missing".into()),
                }),
            },
        };
        // In store-and-forward the replay creates the order under the number later.
        (answer, sap_silent)
    }

    /// A durable entry that decides a create SAP went silent on, once SAP can no longer
    /// commit it ([`ProxyConfig::sap_commit_horizon`]): SAP holds the number → the new side
    /// keeps (or gets) the order and is linked; SAP does not → the new order is voided.
    #[allow(clippy::too_many_arguments)]
    fn resolve_later(
        &self,
        target: &Target,
        order: Option<&OrderCreated>,
        order_body: Option<Value>,
        order_key: &str,
        client_key: Option<&str>,
        route: &Route,
        correlation_id: &str,
    ) -> ReplayEntry {
        let mut entry = ReplayEntry::new(
            ReplayKind::ResolveSilentSap {
                sales_order: target.sap_number.clone().unwrap_or_default(),
                order_id: order.map(|o| o.id.clone()),
                order_body,
                idempotency_key: order_key.to_owned(),
                client_key: client_key.map(str::to_owned),
            },
            &route.name,
            correlation_id,
        );
        entry.next_attempt_at = chrono::Utc::now()
            + chrono::Duration::from_std(self.config.sap_commit_horizon)
                .unwrap_or(chrono::Duration::minutes(10));
        entry
    }

    /// The order-service create body for the order SAP holds, built from SAP's own answer
    /// (read by key when the answer itself cannot be read), so the new side has what SAP
    /// derived: unit, currency, prices, net amounts.
    async fn order_from_sap(
        &self,
        sap: &SapResult,
        number: Option<&str>,
        target: &Target,
        client_auth: Option<&HeaderValue>,
    ) -> Option<Value> {
        let from_answer = sap
            .answer
            .as_ref()
            .and_then(|a| serde_json::from_slice::<Value>(&a.body).ok())
            .filter(|v| v.get("d").is_some());
        let entity = match from_answer {
            Some(v) => v,
            None => {
                let found = self
                    .sap_client
                    .read_by_key(number?, client_auth)
                    .await
                    .ok()??;
                serde_json::from_slice::<Value>(&found.entity_body).ok()?
            }
        };
        order_from_sap_entity(&entity["d"], target)
    }

    async fn create_in_order_service(
        &self,
        body: &Value,
        order_key: &str,
        correlation_id: &str,
    ) -> NewResult {
        match self.orders.create(body, order_key, correlation_id).await {
            Ok(o) => NewResult {
                side: NewSide::Created {
                    order_id: o.id.clone(),
                },
                order: Some(o),
                error: None,
            },
            Err(e) => NewResult::failed(e.is_retryable(), e.is_ambiguous(), e.to_string()),
        }
    }

    async fn send_sap_create(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        target: &Target,
    ) -> SapResult {
        let len = body.len();
        let mut req = upstream_request(parts, full(body), &self.sap, self.config.preserve_host);
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        // SAP Gateway's repeatable requests, a second line of defence where an administrator
        // enabled them: the same RequestID for every attempt under our number.
        if target.ours
            && let Some(n) = &target.sap_number
        {
            crate::upstreams::sap_client::repeatability_headers(req.headers_mut(), n);
        }
        let answer = match self.sap.send(req).await {
            Ok(resp) => Buffered::from_response(resp, self.config.sap_timeout).await,
            Err(f) => Err(f),
        };
        match answer {
            Err(failure) => SapResult {
                side: SapSide::Unavailable {
                    answered: false,
                    timed_out: failure == UpstreamFailure::Timeout,
                },
                answer: None,
                failure: Some(failure),
            },
            Ok(b) => {
                let status = b.status;
                let side = if status.is_success() {
                    SapSide::Created {
                        sales_order: order_acl::sales_order_number(&b.body)
                            .or_else(|| number_from_location(&b.headers)),
                    }
                } else if status.is_server_error()
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                {
                    SapSide::Unavailable {
                        answered: true,
                        timed_out: false,
                    }
                } else {
                    SapSide::Rejected
                };
                SapResult {
                    side,
                    answer: Some(b),
                    failure: None,
                }
            }
        }
    }

    /// Links SAP's number (and adopts what SAP derived, read from SAP's answer) after the
    /// client has its answer: off the request path, on the tracked task set.
    fn link_in_background(
        &self,
        order_id: String,
        number: String,
        sap_answer: Option<Bytes>,
        route: &Route,
        correlation_id: &str,
    ) {
        let orders = self.orders.clone();
        let store = self.store.clone();
        let wakeup = self.replay_wakeup.clone();
        let route = route.name.clone();
        let correlation_id = correlation_id.to_owned();
        let sap = self.sap_client.clone();
        self.writes.spawn(async move {
            // An answer that cannot be read (compressed, Atom XML) is read again by key.
            let pricing = match sap_pricing(sap_answer.as_ref()) {
                Some(p) => Some(p),
                None => match sap.read_by_key(&number, None).await {
                    Ok(Some(found)) => sap_pricing(Some(&found.entity_body)),
                    _ => None,
                },
            };
            if let Err(e) = orders
                .link_sap_order_number(&order_id, &number, pricing.as_ref(), &correlation_id)
                .await
            {
                tracing::warn!(error = %e, "linking SAP's number failed; replaying");
                let mut entry = ReplayEntry::new(
                    ReplayKind::LinkSapOrderNumber {
                        order_id,
                        sap_order_number: number,
                        pricing,
                    },
                    &route,
                    &correlation_id,
                );
                if !e.is_retryable() {
                    entry.state = ReplayState::Parked;
                    entry.last_error = Some(e.to_string());
                }
                match store.put_replay(entry.clone()).await {
                    Ok(()) => {
                        observe::replay_enqueued(&entry);
                        wakeup.notify_one();
                    }
                    Err(e) => observe::follow_up_not_stored(&correlation_id, &e.to_string()),
                }
            }
        });
    }

    /// The create where the order service serves the route (`events`, `retired`): S/4's checks
    /// first, then the order service; a refusal is answered in S/4's terms
    /// ([`crate::face::create`]); an accepted one gets a legacy-shaped answer.
    async fn order_service_create(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        parsed: Option<Value>,
        mode: Mode,
        write_key: &str,
        correlation_id: &str,
    ) -> Result<Buffered, ProxyError> {
        let create = match crate::face::create::check(body) {
            Ok(c) => c,
            Err(r) => return Ok(refusal_buffered(&r)),
        };
        if mode == Mode::Retired {
            match crate::face::create::check_master_data(self.orders.as_ref(), &create).await {
                Ok(()) => {}
                Err(Ok(r)) => return Ok(refusal_buffered(&r)),
                Err(Err(e)) => return Err(order_service_unavailable(e)),
            }
        }
        let opts = TranslateOptions {
            default_currency: self.config.default_currency.clone(),
        };
        let translated = parsed
            .as_ref()
            .map(|v| order_acl::deep_insert_to_order(v, &opts));
        let body = match translated {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                return Ok(refusal_buffered(&crate::face::create::CreateRefusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "/IWBEP/CM_MGW_RT/022",
                    message: e.to_string(),
                    property: None,
                }));
            }
            None => {
                // `check` parsed the same bytes: not reached.
                return Ok(refusal_buffered(&crate::face::create::CreateRefusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "CX_SXML_PARSE_ERROR",
                    message: "The request body is not valid JSON".into(),
                    property: None,
                }));
            }
        };
        match self.orders.create(&body, write_key, correlation_id).await {
            Ok(o) => {
                crate::observe::order_known(&o.order_number);
                Ok(legacy_shaped(parts, &o.order))
            }
            Err(OrderServiceError::Rejected { status, detail }) => Ok(refusal_buffered(
                &crate::face::create::from_order_service(&create, status, &detail),
            )),
            Err(e) => Err(order_service_unavailable(e)),
        }
    }

    /// The order-service order SAP knows as `number`: linked under SAP's number, else ours
    /// (one number in both systems).
    pub async fn find_order(&self, number: &str) -> Result<Option<Value>, OrderServiceError> {
        crate::face::write::find_order(self.orders.as_ref(), number).await
    }

    /// `events` / `retired` reads of the route, from the order service
    /// ([`crate::face::read`]).
    pub async fn read_from_order_service(
        &self,
        parts: &http::request::Parts,
    ) -> crate::face::read::Read {
        crate::face::read::read(self, parts).await
    }
}

/// The OData error for an order-service read that failed.
pub(crate) fn order_service_failed(e: OrderServiceError) -> Response<ProxyBody> {
    let failure = match e {
        OrderServiceError::Unavailable(f) => f,
        other => UpstreamFailure::Broken(other.to_string()),
    };
    ProxyError::Upstream {
        side: Side::OrderService,
        failure,
    }
    .to_response()
}

fn found_as_created(found: crate::upstreams::sap_client::FoundOrder) -> SapResult {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("dataserviceversion", HeaderValue::from_static("2.0"));
    SapResult {
        side: SapSide::Created {
            sales_order: Some(found.sales_order),
        },
        answer: Some(Buffered {
            status: StatusCode::CREATED,
            headers,
            body: found.entity_body,
        }),
        failure: None,
    }
}

/// Inserts `"field":"value",` right after the opening brace, leaving every other byte as the
/// client sent it.
pub fn stamp_body(body: &Bytes, field: &str, value: &str) -> Bytes {
    let text = body.as_ref();
    let Some(open) = text.iter().position(|b| *b == b'{') else {
        return body.clone();
    };
    let rest_is_empty = text[open + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let pair = format!(
        "{}:{}{}",
        serde_json::to_string(field).expect("string"),
        serde_json::to_string(value).expect("string"),
        if rest_is_empty { "" } else { "," }
    );
    let mut out = Vec::with_capacity(text.len() + pair.len());
    out.extend_from_slice(&text[..=open]);
    out.extend_from_slice(pair.as_bytes());
    out.extend_from_slice(&text[open + 1..]);
    out.into()
}

fn fingerprint(parts: &http::request::Parts, body: &[u8]) -> String {
    let mut material = Vec::with_capacity(body.len() + 64);
    material.extend_from_slice(parts.method.as_str().as_bytes());
    material.push(b' ');
    material.extend_from_slice(parts.uri.path().as_bytes());
    material.push(b'\n');
    material.extend_from_slice(body);
    Uuid::new_v5(&Uuid::NAMESPACE_OID, &material).to_string()
}

pub(crate) fn service_root_url(parts: &http::request::Parts) -> String {
    format!(
        "http://{}{SERVICE_ROOT}",
        sap_odata::request_host(&parts.headers)
    )
}

fn legacy_shaped(parts: &http::request::Parts, order: &Value) -> Buffered {
    let root = service_root_url(parts);
    let entity = order_acl::order_to_entity(order, &root);
    let mut b = json_buffered(StatusCode::CREATED, &entity);
    if let Some(uri) = entity["d"]["__metadata"]["uri"].as_str()
        && let Ok(v) = HeaderValue::from_str(uri)
    {
        b.headers.insert(header::LOCATION, v);
    }
    // S/4 answers a create with the entity's ETag and reports the save as a success message
    // in `sap-message` (V1/311 "&1 &2 has been saved"), as the emulator does; SAP's Cloud SDK
    // falls back to the `ETag` header for the version identifier.
    if let Some(v) = entity["d"]["__metadata"]["etag"]
        .as_str()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        b.headers.insert(header::ETAG, v);
    }
    if let Some(n) = entity["d"]["SalesOrder"].as_str() {
        let saved = serde_json::json!({
            "code": "V1/311",
            "message": format!("Standard Order {n} has been saved"),
            "longtext_url": "",
            "target": "",
            "numericSeverity": 1,
            "severity": "success",
            "transition": true,
            "details": [],
        });
        if let Ok(v) = HeaderValue::from_str(&saved.to_string()) {
            b.headers.insert("sap-message", v);
        }
    }
    b
}

fn json_buffered(status: StatusCode, v: &Value) -> Buffered {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    headers.insert("dataserviceversion", HeaderValue::from_static("2.0"));
    Buffered {
        status,
        headers,
        body: Bytes::from(serde_json::to_vec(v).expect("json serialises")),
    }
}

/// An order-service failure that is not a refusal, by side.
fn order_service_unavailable(e: OrderServiceError) -> ProxyError {
    match e {
        OrderServiceError::Unavailable(failure) => ProxyError::Upstream {
            side: Side::OrderService,
            failure,
        },
        other => ProxyError::Upstream {
            side: Side::OrderService,
            failure: UpstreamFailure::Broken(match other {
                OrderServiceError::ServerError { .. } => "order service 5xx".into(),
                o => o.to_string(),
            }),
        },
    }
}

/// A create refused in S/4's terms, with S/4's `innererror` (`errordetails[].propertyref`
/// naming the property).
fn refusal_buffered(r: &crate::face::create::CreateRefusal) -> Buffered {
    let (status, headers, body) =
        crate::error::odata_error_parts_on(r.status, r.code, &r.message, r.property.as_deref());
    Buffered {
        status,
        headers,
        body,
    }
}

/// `s` percent-encoded for a URL path segment (unreserved characters kept).
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sales_order_create_and_reads_belong_to_the_route() {
        let root = SERVICE_ROOT;
        assert_eq!(
            classify(&Method::POST, &format!("{root}/A_SalesOrder")),
            Operation::SalesOrderCreate
        );
        assert_eq!(
            classify(
                &Method::GET,
                &format!("{root}/A_SalesOrder(SalesOrder=%271%27)")
            ),
            Operation::SalesOrderRead
        );
        assert_eq!(
            classify(&Method::HEAD, &format!("{root}/A_SalesOrder/")),
            Operation::PassThrough
        );
        assert_eq!(
            classify(&Method::POST, &format!("{root}/A_SalesOrderItem")),
            Operation::PassThrough
        );
        assert_eq!(classify(&Method::GET, "/other"), Operation::PassThrough);
    }

    #[test]
    fn every_spelling_sap_reads_as_the_entity_set_is_classified_as_the_route() {
        let create = |p: &str| classify(&Method::POST, p);
        for p in [
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder/",
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV//A_SalesOrder",
            "//sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder",
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A%5FSalesOrder",
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/%41_SalesOrder",
            "/SAP/OPU/ODATA/SAP/API_SALES_ORDER_SRV/A_SalesOrder",
            "/sap/opu/odata/sap/api_sales_order_srv/A_SalesOrder",
            "/sap/opu/odata/sap/API%5FSALES%5FORDER%5FSRV/A_SalesOrder",
        ] {
            assert_eq!(create(p), Operation::SalesOrderCreate, "{p}");
        }
        assert_eq!(
            create("/sap/opu/odata/sap/API_SALES_ORDER_SRV/$batch"),
            Operation::Batch
        );
        assert_eq!(
            create("/sap/opu/odata/sap/API_SALES_ORDER_SRV/%24batch/"),
            Operation::Batch
        );
        assert_eq!(
            classify(
                &Method::GET,
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A%5FSalesOrder(%271%27)/"
            ),
            Operation::SalesOrderRead
        );
        assert_eq!(
            classify(
                &Method::GET,
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('%E9')"
            ),
            Operation::Malformed,
            "not UTF-8 once decoded"
        );
        assert_eq!(
            classify(
                &Method::POST,
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder%2"
            ),
            Operation::Malformed
        );
        assert_eq!(
            classify(
                &Method::POST,
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/a_salesorder"
            ),
            Operation::SalesOrderCreate,
            "another case never slips past the route"
        );
        assert_eq!(
            classify(
                &Method::POST,
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrderItem"
            ),
            Operation::PassThrough
        );
        assert_eq!(
            classify(
                &Method::GET,
                "/sap/opu/odata/sap/API_SALES_ORDER_SRV/$metadata"
            ),
            Operation::PassThrough
        );
    }

    #[test]
    fn no_input_panics_the_request_path() {
        use rand::{Rng, SeedableRng};
        // Hand-picked shapes that broke byte-offset slicing, then random ones.
        let mut inputs: Vec<String> = vec![
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('%é')".into(),
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder(%é1)".into(),
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder(SalesOrder=%".into(),
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV/%".into(),
            "%é%".into(),
        ];
        let alphabet: Vec<char> = "/%'()=,A_SalesOrder$batch0123456789abcdefé€\u{10348}?&+ "
            .chars()
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..20_000 {
            let len = rng.random_range(0..40);
            let tail: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            inputs.push(format!("/sap/opu/odata/sap/API_SALES_ORDER_SRV/{tail}"));
        }
        for p in &inputs {
            for m in [Method::GET, Method::POST] {
                let _ = classify(&m, p);
            }
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(p) {
                h.insert(header::LOCATION, v);
                let _ = number_from_location(&h);
            }
            // The same text as a `$batch` part's target and as a batch body: parsed, turned
            // into the part's own request and classified as a single request would be.
            let body = format!(
                "--b\r\nContent-Type: application/http\r\n\r\nGET {p} HTTP/1.1\r\nIf-Match: {p}\r\n\r\n\r\n--b--\r\n"
            );
            let outer = http::Request::post(format!("{SERVICE_ROOT}/$batch"))
                .body(())
                .unwrap()
                .into_parts()
                .0;
            let requests = sap_odata::batch::parse_at_most(&body, "b", 100).unwrap_or_default();
            for part in requests {
                if let sap_odata::batch::BatchPart::Request(r) = part
                    && let Ok(head) = crate::face::batch::part_head(&outer, SERVICE_ROOT, &r)
                {
                    let _ = classify(&head.method, head.uri.path());
                }
            }
            let _ = sap_odata::batch::parse_at_most(p, "b", 100);
        }
    }

    #[test]
    fn a_create_answer_that_cannot_be_read_still_yields_its_number_from_location() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static(
                "http://h/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('8000000042')",
            ),
        );
        assert_eq!(number_from_location(&h).as_deref(), Some("8000000042"));
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("/x/A_SalesOrder(SalesOrder=%278000000043%27)"),
        );
        assert_eq!(number_from_location(&h).as_deref(), Some("8000000043"));
    }

    #[test]
    fn a_stored_idempotent_answer_keeps_no_session_cookie_or_csrf_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SET_COOKIE,
            HeaderValue::from_static("SAP_SESSIONID=abc"),
        );
        headers.insert("x-csrf-token", HeaderValue::from_static("tok"));
        headers.insert(header::LOCATION, HeaderValue::from_static("/x"));
        let b = Buffered {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{}"),
        };
        let names: Vec<String> = b.to_stored().headers.into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, vec!["location".to_owned()]);
    }

    #[test]
    fn the_stamp_is_spliced_in_without_touching_the_clients_bytes() {
        let body = Bytes::from_static(br#"{"SoldToParty":"17100001","to_Item":[]}"#);
        let stamped = stamp_body(&body, "ExternalDocumentID", "k-1");
        assert_eq!(
            &stamped[..],
            br#"{"ExternalDocumentID":"k-1","SoldToParty":"17100001","to_Item":[]}"#
        );
        assert_eq!(
            &stamp_body(&Bytes::from_static(b" { } "), "F", "v")[..],
            br#" {"F":"v" } "#
        );
    }
}
