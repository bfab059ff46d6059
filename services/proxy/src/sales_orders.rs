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
//! 5. **decide** with the outcome table ([`crate::outcome::decide`]);
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

use crate::body::{ProxyBody, full};
use crate::config::ProxyConfig;
use crate::error::{ProxyError, Side, UpstreamFailure, odata_error};
use crate::observe;
use crate::order_client::{OrderCreated, OrderService, OrderServiceError};
use crate::outcome::{self, FollowUp, NewSide, Reply, SapSide};
use crate::passthrough::{strip_hop_by_hop, upstream_request};
use crate::routes::{Mode, Route};
use crate::sap_client::{SERVICE_ROOT, SapClient};
use crate::store::{Claim, ReplayEntry, ReplayKind, ReplayState, Store, StoredResponse};
use crate::upstream::Upstream;
use order_acl::TranslateOptions;

/// Namespace of write keys derived from idempotency keys (UUID v5).
const WRITE_KEY_NAMESPACE: Uuid = Uuid::from_u128(0x5a9e_0d1c_4b7f_4c55_9d0e_27b1_6c3f_a001);

/// What a request means to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST .../A_SalesOrder`.
    SalesOrderCreate,
    /// `GET .../A_SalesOrder...` (collection, entity by key, `$count`).
    SalesOrderRead,
    /// Anything else: straight to SAP.
    PassThrough,
}

/// Classifies a request by method and path.
pub fn classify(method: &Method, path: &str) -> Operation {
    let Some(rest) = path
        .strip_prefix(SERVICE_ROOT)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Operation::PassThrough;
    };
    if method == Method::POST && rest == "A_SalesOrder" {
        return Operation::SalesOrderCreate;
    }
    if method == Method::GET
        && (rest == "A_SalesOrder"
            || rest.starts_with("A_SalesOrder(")
            || rest.starts_with("A_SalesOrder/$count"))
    {
        return Operation::SalesOrderRead;
    }
    Operation::PassThrough
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
                .filter(|(k, _)| *k != header::DATE)
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
        resp: Response<crate::upstream::UpstreamBody>,
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
    /// Wakes the replay worker.
    pub replay_wakeup: Arc<Notify>,
    /// This process's boot id (tells crashed in-flight keys from live ones).
    pub boot_id: String,
}

/// The keys of one create attempt.
pub struct WriteKeys {
    /// Stamped into SAP's `ExternalDocumentID` (stable across a key's attempts).
    pub stamp: String,
    /// The order service's idempotency key (one per attempt).
    pub order_service: String,
}

/// What the SAP call produced, with the answer when there was one.
struct SapResult {
    side: SapSide,
    answer: Option<Buffered>,
    failure: Option<UpstreamFailure>,
}

struct NewResult {
    side: NewSide,
    order: Option<OrderCreated>,
    error: Option<String>,
}

impl SalesOrders {
    /// Handles `POST .../A_SalesOrder` in the route's mode (snapshotted by the caller).
    pub async fn create(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        route: &Route,
    ) -> Response<ProxyBody> {
        let correlation_id = platform::correlation::correlation_from_headers(&parts.headers).0;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();

        // Phase 1: claim.
        let key = self.idempotency_key(&parts.headers, parsed.as_ref());
        let fingerprint = fingerprint(parts, &body);
        let claim = match &key {
            None => Claim::Fresh,
            Some(k) => match self
                .store
                .claim_key(k.clone(), fingerprint.clone(), self.boot_id.clone())
                .await
            {
                Ok(c) => c,
                Err(e) => return ProxyError::Storage(e.to_string()).to_response(),
            },
        };
        match claim {
            Claim::Replay(stored) => {
                let mut resp = Buffered::from_stored(&stored).into_response();
                resp.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                return resp;
            }
            Claim::Mismatch => return ProxyError::IdempotencyKeyReused.to_response(),
            Claim::InProgress => return ProxyError::IdempotencyInProgress.to_response(),
            Claim::Fresh | Claim::Retry { .. } => {}
        }
        let attempt = match claim {
            Claim::Retry { attempt } => attempt,
            _ => 0,
        };
        // The SAP stamp is the same for every attempt of one key, so a retry finds what an
        // earlier attempt created. The order service gets a key per attempt: an earlier
        // attempt's order may have been voided (compensated), and a retry must not revive it.
        let keys = match &key {
            Some(k) => WriteKeys {
                stamp: Uuid::new_v5(&WRITE_KEY_NAMESPACE, k.as_bytes()).to_string(),
                order_service: if attempt == 0 {
                    Uuid::new_v5(&WRITE_KEY_NAMESPACE, k.as_bytes()).to_string()
                } else {
                    Uuid::new_v5(&WRITE_KEY_NAMESPACE, format!("{k}#{attempt}").as_bytes())
                        .to_string()
                },
            },
            None => {
                let k = Uuid::now_v7().to_string();
                WriteKeys {
                    stamp: k.clone(),
                    order_service: k,
                }
            }
        };
        let look_up_first = attempt > 0;
        // The order service keeps correlation ids unique; a retry is traced as `<id>/retry-<n>`.
        let correlation_id = if attempt == 0 {
            correlation_id
        } else {
            format!("{correlation_id}/retry-{attempt}")
        };

        let result = match route.mode {
            Mode::Legacy => self.legacy_create(parts, body).await,
            Mode::DualWrite => {
                self.dual_write(
                    parts,
                    body,
                    parsed,
                    &keys,
                    look_up_first,
                    route,
                    &correlation_id,
                )
                .await
            }
            Mode::Events | Mode::Retired => {
                self.order_service_create(parts, parsed, &keys.order_service, &correlation_id)
                    .await
            }
        };

        // Phase 7: finish the key. A 5xx answer leaves the outcome unknown.
        if let Some(k) = key {
            let stored = match &result {
                Ok(b) if !b.status.is_server_error() => Some(b.to_stored()),
                _ => None,
            };
            if let Err(e) = self.store.finish_key(k, fingerprint, attempt, stored).await {
                tracing::error!(error = %e, "could not finish idempotency key");
            }
        }
        match result {
            Ok(b) => b.into_response(),
            Err(e) => e.to_response(),
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

    /// Legacy: SAP only, the answer buffered so an idempotency key can keep it.
    async fn legacy_create(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
    ) -> Result<Buffered, ProxyError> {
        let req = upstream_request(parts, full(body), &self.sap, self.config.preserve_host);
        let resp = self
            .sap
            .send(req)
            .await
            .map_err(|failure| ProxyError::Upstream {
                side: Side::Sap,
                failure,
            })?;
        Buffered::from_response(resp, self.config.sap_timeout)
            .await
            .map_err(|failure| ProxyError::Upstream {
                side: Side::Sap,
                failure,
            })
    }

    #[allow(clippy::too_many_arguments)]
    async fn dual_write(
        &self,
        parts: &http::request::Parts,
        body: Bytes,
        parsed: Option<Value>,
        keys: &WriteKeys,
        look_up_first: bool,
        route: &Route,
        correlation_id: &str,
    ) -> Result<Buffered, ProxyError> {
        let started = Instant::now();
        let write_key = keys.order_service.as_str();

        // Phase 2: prepare.
        let stamp_field = self.config.sap_stamp_field.as_deref();
        let client_has_field = |f: &str| {
            parsed
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|o| o.contains_key(f))
        };
        let (sap_body, stamp) = match stamp_field {
            Some(f) if parsed.as_ref().is_some_and(Value::is_object) && !client_has_field(f) => (
                stamp_body(&body, f, &keys.stamp),
                Some((f.to_owned(), keys.stamp.clone())),
            ),
            Some(f) => {
                // The client set the field itself: its value is the best look-up key we have.
                let own = parsed
                    .as_ref()
                    .and_then(|v| v.get(f))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(|v| (f.to_owned(), v.to_owned()));
                (body.clone(), own)
            }
            None => (body.clone(), None),
        };
        let sap_json: Option<Value> = serde_json::from_slice(&sap_body).ok();
        let opts = TranslateOptions {
            default_currency: self.config.default_currency.clone(),
        };
        let order_body = match &sap_json {
            Some(v) => order_acl::deep_insert_to_order(v, &opts).map_err(|e| e.to_string()),
            None => Err("the request body is not JSON".to_owned()),
        };
        let client_auth = parts.headers.get(header::AUTHORIZATION);

        // Phase 3: call both sides concurrently.
        let sap_call = async {
            if look_up_first && let Some((f, v)) = &stamp {
                match self.sap_client.find_by_stamp(f, v, client_auth).await {
                    Ok(Some(found)) => return found_as_created(found),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "look-up before create failed");
                        return SapResult {
                            side: SapSide::Unavailable {
                                answered: false,
                                timed_out: false,
                            },
                            answer: None,
                            failure: Some(UpstreamFailure::Broken(e.to_string())),
                        };
                    }
                }
            }
            self.send_sap_create(parts, sap_body.clone()).await
        };
        let new_call = async {
            match &order_body {
                Err(reason) => NewResult {
                    side: NewSide::Failed {
                        retryable: false,
                        ambiguous: false,
                    },
                    order: None,
                    error: Some(format!("untranslatable: {reason}")),
                },
                Ok(b) => match self.orders.create(b, write_key, correlation_id).await {
                    Ok(o) => NewResult {
                        side: NewSide::Created {
                            order_id: o.id.clone(),
                        },
                        order: Some(o),
                        error: None,
                    },
                    Err(e) => NewResult {
                        side: NewSide::Failed {
                            retryable: e.is_retryable(),
                            ambiguous: e.is_ambiguous(),
                        },
                        order: None,
                        error: Some(e.to_string()),
                    },
                },
            }
        };
        let (mut sap, new) = tokio::join!(sap_call, new_call);

        // Phase 4: a silent SAP may have created the order anyway; the stamp tells.
        if matches!(sap.side, SapSide::Unavailable { .. })
            && sap
                .failure
                .as_ref()
                .is_none_or(UpstreamFailure::is_ambiguous)
            && let Some((f, v)) = &stamp
            && let Ok(Some(found)) = self.sap_client.find_by_stamp(f, v, client_auth).await
        {
            tracing::warn!(
                correlation_id,
                "SAP created the order although its answer was lost"
            );
            sap = found_as_created(found);
        }

        // Phase 5: decide.
        let decision = outcome::decide(&sap.side, &new.side, route.policy);
        observe::dual_write_outcome(&decision, correlation_id, started.elapsed());
        if let Some(e) = &new.error {
            tracing::warn!(correlation_id, error = %e, "order service side of the dual write failed");
        }

        // Phase 6: secure the follow-ups.
        let sap_number = match &sap.side {
            SapSide::Created { sales_order } => sales_order.clone(),
            _ => None,
        };
        for follow_up in &decision.follow_ups {
            let kind = match follow_up {
                FollowUp::LinkSapOrderNumber => {
                    if let (Some(order), Some(number)) = (&new.order, &sap_number) {
                        self.link_in_background(
                            order.id.clone(),
                            number.clone(),
                            route,
                            correlation_id,
                        );
                    }
                    continue;
                }
                FollowUp::ReplayOrderServiceCreate { park } => {
                    let body = order_body.clone().unwrap_or_else(|_| {
                        sap_json.clone().unwrap_or(Value::String(
                            String::from_utf8_lossy(&sap_body).into_owned(),
                        ))
                    });
                    let mut entry = ReplayEntry::new(
                        ReplayKind::CreateInOrderService {
                            body,
                            idempotency_key: write_key.to_owned(),
                            sap_order_number: sap_number.clone(),
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
                FollowUp::CompensateUnknownCreate => {
                    let Ok(body) = order_body.clone() else {
                        continue;
                    };
                    ReplayEntry::new(
                        ReplayKind::CompensateUnknownCreate {
                            body,
                            idempotency_key: write_key.to_owned(),
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
                            body: sap_json.clone().unwrap_or(Value::Null),
                            stamp: stamp.clone(),
                            order_id: order.id.clone(),
                        },
                        &route.name,
                        correlation_id,
                    )
                }
            };
            if let Err(e) = self.store.put_replay(kind.clone()).await {
                observe::follow_up_not_stored(correlation_id, &e.to_string());
                return Err(ProxyError::Storage(e.to_string()));
            }
            observe::replay_enqueued(&kind);
        }
        if !decision.follow_ups.is_empty() {
            self.replay_wakeup.notify_one();
        }

        // Phase 7: answer.
        match decision.reply {
            Reply::SapAnswer => Ok(sap
                .answer
                .expect("SapAnswer is only decided when SAP answered")),
            Reply::GatewayError { .. } => Err(ProxyError::Upstream {
                side: Side::Sap,
                failure: sap.failure.unwrap_or(UpstreamFailure::Timeout),
            }),
            Reply::LegacyShaped => {
                let order = new.order.expect("LegacyShaped needs the new order");
                Ok(legacy_shaped(parts, &order.order))
            }
        }
    }

    async fn send_sap_create(&self, parts: &http::request::Parts, body: Bytes) -> SapResult {
        let len = body.len();
        let mut req = upstream_request(parts, full(body), &self.sap, self.config.preserve_host);
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
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
                        sales_order: order_acl::sales_order_number(&b.body),
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

    fn link_in_background(
        &self,
        order_id: String,
        number: String,
        route: &Route,
        correlation_id: &str,
    ) {
        let orders = self.orders.clone();
        let store = self.store.clone();
        let wakeup = self.replay_wakeup.clone();
        let route = route.name.clone();
        let correlation_id = correlation_id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = orders
                .link_sap_order_number(&order_id, &number, &correlation_id)
                .await
            {
                tracing::warn!(error = %e, "linking SAP's number failed; replaying");
                let mut entry = ReplayEntry::new(
                    ReplayKind::LinkSapOrderNumber {
                        order_id,
                        sap_order_number: number,
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

    /// `events` / `retired`: the order service alone takes the order; the client gets a
    /// legacy-shaped answer.
    async fn order_service_create(
        &self,
        parts: &http::request::Parts,
        parsed: Option<Value>,
        write_key: &str,
        correlation_id: &str,
    ) -> Result<Buffered, ProxyError> {
        let opts = TranslateOptions {
            default_currency: self.config.default_currency.clone(),
        };
        let body = match parsed
            .as_ref()
            .map(|v| order_acl::deep_insert_to_order(v, &opts))
        {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                return Ok(odata_buffered(
                    StatusCode::BAD_REQUEST,
                    "PROXY/400",
                    &e.to_string(),
                ));
            }
            None => {
                return Ok(odata_buffered(
                    StatusCode::BAD_REQUEST,
                    "PROXY/400",
                    "The request body is not valid JSON",
                ));
            }
        };
        match self.orders.create(&body, write_key, correlation_id).await {
            Ok(o) => Ok(legacy_shaped(parts, &o.order)),
            Err(OrderServiceError::Rejected { status, detail }) => {
                let message = serde_json::from_str::<Value>(&detail)
                    .ok()
                    .and_then(|p| problem_message(&p))
                    .unwrap_or(detail);
                Ok(odata_buffered(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                    "PROXY/400",
                    &message,
                ))
            }
            Err(OrderServiceError::Unavailable(failure)) => Err(ProxyError::Upstream {
                side: Side::OrderService,
                failure,
            }),
            Err(OrderServiceError::ServerError { .. }) => Err(ProxyError::Upstream {
                side: Side::OrderService,
                failure: UpstreamFailure::Broken("order service 5xx".into()),
            }),
        }
    }

    /// `events` / `retired` reads the order service can answer: an entity by key, and a
    /// collection filtered by `PurchaseOrderByCustomer` or `SoldToParty`. `None`: this read
    /// shape is not translated (the caller passes it to SAP in `events`).
    pub async fn read_from_order_service(
        &self,
        parts: &http::request::Parts,
    ) -> Option<Response<ProxyBody>> {
        let path = parts.uri.path();
        let rest = path
            .strip_prefix(SERVICE_ROOT)?
            .strip_prefix("/A_SalesOrder")?;
        let root = service_root_url(parts);
        if rest.starts_with('(') {
            let key = entity_key(rest)?;
            let by_sap = self
                .orders
                .list(&format!("sap_order_number={}&limit=1", pct(&key)))
                .await;
            let found = match by_sap {
                Ok(items) if !items.is_empty() => Some(items[0].clone()),
                Ok(_) => self.orders.by_number(&pct(&key)).await.ok().flatten(),
                Err(e) => return Some(order_service_failed(e)),
            };
            return Some(match found {
                Some(o) => json_response(StatusCode::OK, &order_acl::order_to_entity(&o, &root)),
                None => odata_error(
                    StatusCode::NOT_FOUND,
                    "SY/530",
                    "Resource not found for segment 'A_SalesOrder'",
                ),
            });
        }
        if !rest.is_empty() {
            return None;
        }
        let query = parts.uri.query().unwrap_or("");
        let filter = query
            .split('&')
            .find_map(|p| p.strip_prefix("$filter="))
            .map(percent_decode)?;
        let (field, value) = simple_eq_filter(&filter)?;
        let param = match field.as_str() {
            "PurchaseOrderByCustomer" => "customer_reference",
            "SoldToParty" => "customer_id",
            _ => return None,
        };
        let items = match self
            .orders
            .list(&format!("{param}={}&limit=100", pct(&value)))
            .await
        {
            Ok(i) => i,
            Err(e) => return Some(order_service_failed(e)),
        };
        let results: Vec<Value> = items
            .iter()
            .map(|o| order_acl::order_to_entity(o, &root)["d"].clone())
            .collect();
        Some(json_response(
            StatusCode::OK,
            &serde_json::json!({"d": {"results": results}}),
        ))
    }
}

/// The OData error for an order-service read that failed.
fn order_service_failed(e: OrderServiceError) -> Response<ProxyBody> {
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

fn found_as_created(found: crate::sap_client::FoundOrder) -> SapResult {
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

fn service_root_url(parts: &http::request::Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{SERVICE_ROOT}")
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

fn json_response(status: StatusCode, v: &Value) -> Response<ProxyBody> {
    json_buffered(status, v).into_response()
}

fn odata_buffered(status: StatusCode, code: &str, message: &str) -> Buffered {
    let resp = odata_error(status, code, message);
    let (parts, _) = resp.into_parts();
    let body =
        serde_json::json!({"error": {"code": code, "message": {"lang": "en", "value": message}}});
    Buffered {
        status: parts.status,
        headers: parts.headers,
        body: Bytes::from(serde_json::to_vec(&body).expect("json serialises")),
    }
}

fn problem_message(p: &Value) -> Option<String> {
    let detail = p.get("detail").and_then(Value::as_str).unwrap_or("");
    let fields: Vec<String> = p
        .get("errors")
        .and_then(Value::as_array)
        .map(|errs| {
            errs.iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}: {}",
                        e.get("field")?.as_str()?,
                        e.get("message")?.as_str()?
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let msg = [detail.to_owned(), fields.join("; ")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!msg.is_empty()).then_some(msg)
}

/// The key value in `('1')` or `(SalesOrder='1')` (percent-decoded, `''` unescaped).
fn entity_key(rest: &str) -> Option<String> {
    let decoded = percent_decode(rest);
    let inner = decoded.strip_prefix('(')?.split(')').next()?;
    let value = inner.strip_prefix("SalesOrder=").unwrap_or(inner);
    let value = value.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(value.replace("''", "'"))
}

/// `(Field eq 'value')` → (Field, value).
fn simple_eq_filter(filter: &str) -> Option<(String, String)> {
    let f = filter.trim();
    let f = f
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .unwrap_or(f);
    let (field, rest) = f.split_once(" eq ")?;
    let value = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    if value.contains(" and ") {
        return None;
    }
    Some((field.trim().to_owned(), value.replace("''", "'")))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pct(s: &str) -> String {
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

    #[test]
    fn entity_keys_and_simple_filters_are_understood_in_both_key_forms() {
        assert_eq!(entity_key("(SalesOrder=%271000001%27)").unwrap(), "1000001");
        assert_eq!(entity_key("('A''B')").unwrap(), "A'B");
        assert_eq!(
            simple_eq_filter("(PurchaseOrderByCustomer eq 'SDK-1')").unwrap(),
            ("PurchaseOrderByCustomer".into(), "SDK-1".into())
        );
        assert!(simple_eq_filter("(A eq 'x' and B eq 'y')").is_none());
    }
}
