//! The SAP face served by the order service (`events`; `retired` builds on it): SAP's writes on
//! `A_SalesOrder` and `A_SalesOrderItem` translated to the order service's REST API and
//! answered as S/4 answers them (`204` with the new `ETag`, SAP's error JSON with SAP's message
//! codes and property names). The request body is read with the same OData parser the
//! emulator uses (`sap_odata::payload`), so a body S/4 refuses is refused here the same way.
//! The reads of the same face are in [`crate::face::read`].
//!
//! | SAP request | order service |
//! |---|---|
//! | `PATCH`/`MERGE`/`PUT A_SalesOrder('n')` | `PATCH /orders/{id}` (`PurchaseOrderByCustomer` → `customer_reference`, `RequestedDeliveryDate` → `requested_delivery_date`, other updatable header fields into `specifications`) |
//! | `PATCH`/`MERGE`/`PUT A_SalesOrderItem(SalesOrder='n',SalesOrderItem='i')` | `PATCH /orders/{id}/items/{i}` (`RequestedQuantity` → `quantity`, `SalesDocumentRjcnReason` → `rejection_reason`, `""` lifts it) |
//! | `POST A_SalesOrder('n')/to_Item` | `POST /orders/{id}/items` |
//! | `DELETE A_SalesOrderItem(...)` | `DELETE /orders/{id}/items/{i}` |
//! | `DELETE A_SalesOrder('n')` | refused: reject the lines instead (see `docs/proxy.md`) |
//!
//! `If-Match` carries the order's version (`W/"<version>"`, the `ETag` the face's reads give).
//! As in S/4, a header change without it is answered `428`; an item has no ETag in S/4's
//! metadata, so an item change without `If-Match` applies to the current version.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::error::odata_error;
use crate::routing::sales_orders::SalesOrders;
use crate::serve::body::{ProxyBody, full};
use crate::upstreams::order_client::{OrderService, OrderServiceError};
use sap_odata::payload::{PropertyMap, parse_entity, parse_update};
use sap_odata::uri::{parse_resource_path, resolve_key};
use sap_odata::{SALES_ORDER, SALES_ORDER_ITEM};

/// What a write names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The header of order `number`.
    Header(String),
    /// Line `item` of order `number`.
    Item(String, String),
    /// A new line of order `number`.
    AddItem(String),
    /// Line `item` removed.
    DeleteItem(String, String),
    /// The whole order removed.
    DeleteOrder(String),
}

/// The write a request makes, when it is one of the sales order service's (`path` below the
/// service root, already past the route's root segments).
pub fn change_of(method: &Method, below_root: &str) -> Option<Change> {
    let segments = parse_resource_path(below_root).ok()?;
    let m = method.as_str();
    let is = |s: &str, want: &str| s.eq_ignore_ascii_case(want);
    match segments.as_slice() {
        [set] if is(&set.name, "A_SalesOrder") && set.key.is_some() => {
            let n = resolve_key(&SALES_ORDER, set.key.as_deref()?).ok()?.pop()?;
            match m {
                "PATCH" | "MERGE" | "PUT" => Some(Change::Header(n)),
                "DELETE" => Some(Change::DeleteOrder(n)),
                _ => None,
            }
        }
        [set] if is(&set.name, "A_SalesOrderItem") && set.key.is_some() => {
            let key = resolve_key(&SALES_ORDER_ITEM, set.key.as_deref()?).ok()?;
            let (n, i) = (key.first()?.clone(), key.get(1)?.clone());
            let i = i.trim_start_matches('0').to_owned();
            match m {
                "PATCH" | "MERGE" | "PUT" => Some(Change::Item(n, i)),
                "DELETE" => Some(Change::DeleteItem(n, i)),
                _ => None,
            }
        }
        [set, nav]
            if is(&set.name, "A_SalesOrder")
                && set.key.is_some()
                && nav.key.is_none()
                && nav.name == "to_Item"
                && m == "POST" =>
        {
            let n = resolve_key(&SALES_ORDER, set.key.as_deref()?).ok()?.pop()?;
            Some(Change::AddItem(n))
        }
        _ => None,
    }
}

/// The path below the service root (the route's five root segments skipped as SAP parses
/// them: empty segments ignored).
pub fn below_root(path: &str) -> String {
    let rest: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).skip(5).collect();
    format!("/{}", rest.join("/"))
}

/// `X-HTTP-Method` tunnelling (`POST` carrying `MERGE`, `PATCH`, `PUT` or `DELETE`), as SAP
/// Gateway allows and SAP's clients use in `$batch`-less setups.
pub fn effective_method(method: &Method, headers: &HeaderMap) -> Method {
    if method == Method::POST
        && let Some(m) = headers.get("x-http-method").and_then(|v| v.to_str().ok())
        && let Ok(m) = Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
    {
        return m;
    }
    method.clone()
}

/// A refusal in SAP's terms: status, SAP's message code, message.
#[derive(Debug)]
struct Refusal(StatusCode, &'static str, String);

impl Refusal {
    fn into_response(self) -> Response<ProxyBody> {
        odata_error(self.0, self.1, &self.2)
    }
}

fn not_found(number: &str) -> Response<ProxyBody> {
    odata_error(
        StatusCode::NOT_FOUND,
        "V1/302",
        &format!("SD document {number} is not in the database or has been archived"),
    )
}

/// `201` with the line an add made (the order's highest item number), as S/4 answers it.
fn added_line(parts: &http::request::Parts, after: &Value, number: &str) -> Response<ProxyBody> {
    let root = crate::routing::sales_orders::service_root_url(parts);
    let added = after["items"]
        .as_array()
        .and_then(|items| items.iter().max_by_key(|i| i["item_number"].as_i64()))
        .cloned()
        .unwrap_or(Value::Null);
    let entity = order_acl::item_to_entity(&added, number, &root);
    let mut r = Response::new(full(Bytes::from(
        serde_json::to_vec(&json!({ "d": entity })).unwrap_or_default(),
    )));
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    h.insert("dataserviceversion", HeaderValue::from_static("2.0"));
    if let Some(v) = entity["__metadata"]["uri"]
        .as_str()
        .and_then(|u| HeaderValue::from_str(u).ok())
    {
        h.insert(header::LOCATION, v);
    }
    r
}

fn no_content(etag: Option<String>) -> Response<ProxyBody> {
    let mut r = Response::new(crate::serve::body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    if let Some(v) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut()
        .insert("dataserviceversion", HeaderValue::from_static("2.0"));
    r
}

/// An order-service refusal in S/4's words: SAP's message codes and property names.
fn sap_refusal(e: OrderServiceError, number: &str, item: Option<&str>) -> Response<ProxyBody> {
    let (status, detail) = match &e {
        OrderServiceError::Rejected { status, detail } => (*status, detail.clone()),
        other => {
            return crate::error::ProxyError::Upstream {
                side: crate::error::Side::OrderService,
                failure: match other {
                    OrderServiceError::Unavailable(f) => f.clone(),
                    o => crate::error::UpstreamFailure::Broken(o.to_string()),
                },
            }
            .to_response();
        }
    };
    let problem: Value = serde_json::from_str(&detail).unwrap_or(Value::Null);
    let kind = problem["type"].as_str().unwrap_or_default();
    let text = format!(
        "{} {}",
        kind,
        problem["detail"].as_str().unwrap_or_default()
    );
    let has = |s: &str| text.contains(s);
    let line = item.map(|i| format!("Item {i}")).unwrap_or_default();
    match status {
        404 if item.is_some() && has("item") => odata_error(
            StatusCode::NOT_FOUND,
            "V1/302",
            &format!("{line} does not exist in SD document {number}"),
        ),
        404 => not_found(number),
        412 => odata_error(
            StatusCode::PRECONDITION_FAILED,
            "/IWBEP/CM_MGW_RT/098",
            "The entity was changed by another user (ETag mismatch); read it again",
        ),
        428 => odata_error(
            StatusCode::PRECONDITION_REQUIRED,
            "/IWBEP/CM_MGW_RT/099",
            "Precondition required: send If-Match with the entity's ETag",
        ),
        409 if has("fulfilled") => odata_error(
            StatusCode::BAD_REQUEST,
            "V1/087",
            &match item {
                Some(i) => format!(
                    "Item {i} of SD document {number} has subsequent documents and cannot be changed"
                ),
                None => {
                    format!("SD document {number} has subsequent documents and cannot be changed")
                }
            },
        ),
        409 if has("last-open-item") => odata_error(
            StatusCode::BAD_REQUEST,
            "V1/047",
            &format!(
                "{line} is the last open item of SD document {number}: reject it with SalesDocumentRjcnReason instead"
            ),
        ),
        // A line whose unit or price the order service's master data cannot fill in: the
        // request is refused as invalid, as it was when the order service answered 422.
        409 if has("master-data-incomplete") => odata_error(
            StatusCode::BAD_REQUEST,
            "/IWBEP/CM_MGW_RT/022",
            problem["detail"]
                .as_str()
                .unwrap_or("The request is not valid for this sales order"),
        ),
        409 => odata_error(
            StatusCode::BAD_REQUEST,
            "V1/047",
            &format!("SD document {number} cannot be changed any more"),
        ),
        _ if has("quantity") => odata_error(
            StatusCode::BAD_REQUEST,
            "V1/084",
            "Enter a RequestedQuantity greater than zero",
        ),
        _ if has("rejection_reason") => odata_error(
            StatusCode::BAD_REQUEST,
            "V1/206",
            "The SalesDocumentRjcnReason is not defined",
        ),
        _ => odata_error(
            StatusCode::BAD_REQUEST,
            "/IWBEP/CM_MGW_RT/022",
            "The request is not valid for this sales order",
        ),
    }
}

fn payload_refusal(e: sap_odata::payload::PayloadError) -> Response<ProxyBody> {
    odata_error(StatusCode::BAD_REQUEST, e.sap_code(), &e.to_string())
}

fn key_change(map: &PropertyMap, key: &str, expected: &str) -> Option<Response<ProxyBody>> {
    let sent = map.get_str(key)?;
    (!sent.is_empty() && sent.trim_start_matches('0') != expected.trim_start_matches('0')).then(
        || {
            odata_error(
                StatusCode::BAD_REQUEST,
                "V1/047",
                &format!("The key field {key} cannot be changed"),
            )
        },
    )
}

/// The version a change applies to: the client's `If-Match` (`W/"<version>"`, `*` = the
/// current one), or the current one where S/4 does not require a precondition.
fn if_match(headers: &HeaderMap, current: &Value, required: bool) -> Result<String, Refusal> {
    let current_tag = order_acl::order_etag(current).unwrap_or_default();
    match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some("*") => Ok(current_tag),
        // A tag that is none of the order service's versions (an ETag SAP issued, read before
        // the route left `dual-write`) names a state this side never had: refused as S/4
        // refuses a stale ETag, so the client reads again and gets this side's.
        Some(tag) if order_acl::parse_order_etag(tag).is_none() => Err(Refusal(
            StatusCode::PRECONDITION_FAILED,
            "/IWBEP/CM_MGW_RT/098",
            "The entity was changed by another user (ETag mismatch); read it again".into(),
        )),
        Some(tag) => Ok(tag.trim().to_owned()),
        None if required => Err(Refusal(
            StatusCode::PRECONDITION_REQUIRED,
            "/IWBEP/CM_MGW_RT/099",
            "Precondition required: send If-Match with the entity's ETag".into(),
        )),
        None => Ok(current_tag),
    }
}

impl SalesOrders {
    /// Serves a SAP write from the order service.
    pub async fn change(
        &self,
        parts: &http::request::Parts,
        change: Change,
        body: Bytes,
    ) -> Response<ProxyBody> {
        let correlation = platform::correlation::correlation_from_headers(&parts.headers).0;
        platform::otel::set_current("correlation_id", correlation.clone());
        let number = match &change {
            Change::Header(n)
            | Change::Item(n, _)
            | Change::AddItem(n)
            | Change::DeleteItem(n, _)
            | Change::DeleteOrder(n) => n.clone(),
        };
        let order = match self.find_order(&number).await {
            Ok(Some(o)) => o,
            Ok(None) => return not_found(&number),
            Err(e) => return sap_refusal(e, &number, None),
        };
        let Planned {
            method,
            path,
            payload,
            item,
            required,
        } = match plan(&order, &change, &body, &self.config.rejection_reasons) {
            Ok(p) => p,
            Err(r) => return *r,
        };
        let version = match if_match(&parts.headers, &order, required) {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        };
        let mut answered = if is_noop(&method, payload.as_ref()) {
            // Every value sent equals the order's: S/4 answers 204 and changes nothing.
            Ok(order.clone())
        } else {
            self.orders
                .change(
                    method.clone(),
                    &path,
                    payload.as_ref(),
                    Some(&version),
                    &correlation,
                    None,
                )
                .await
        };
        // No precondition from the client (a line: S/4 has no ETag for it): the change applies
        // to the order as it is, so a version moved meanwhile (sap-sync reporting a status) is
        // read again, once, instead of refusing the client.
        let stale = matches!(
            &answered,
            Err(OrderServiceError::Rejected { status: 412, .. })
        );
        if stale
            && !parts.headers.contains_key(header::IF_MATCH)
            && let Ok(Some(fresh)) = self.find_order(&number).await
            && let Some(v) = order_acl::order_etag(&fresh)
        {
            answered = self
                .orders
                .change(
                    method,
                    &path,
                    payload.as_ref(),
                    Some(&v),
                    &correlation,
                    None,
                )
                .await;
        }
        let after = match answered {
            Ok(v) => v,
            Err(e) => return sap_refusal(e, &number, item.as_deref()),
        };
        let after = if after.get("version").is_some() {
            after
        } else {
            // The answer did not carry the order (a line answer): read it for its ETag.
            self.find_order(&number)
                .await
                .ok()
                .flatten()
                .unwrap_or(after)
        };
        let etag = order_acl::order_etag(&after);
        match change {
            Change::AddItem(_) => added_line(parts, &after, &number),
            _ => no_content(etag),
        }
    }
}

/// One change of a `$batch` changeset, as the face takes it: the part's head, what it
/// changes, its body.
pub struct ChangesetPart {
    /// The part as a request of its own.
    pub parts: http::request::Parts,
    /// What it changes.
    pub change: Change,
    /// Its body.
    pub body: Bytes,
}

impl SalesOrders {
    /// Serves a changeset of several SAP writes from the order service, all or none, as S/4
    /// saves a changeset: each change translated by [`plan`] (against the order as the
    /// changeset's earlier changes leave it), every change of an order checked against the
    /// version the order had when the changeset began (`If-Match`, as for the change alone),
    /// and the whole sent as one order-service changeset (`POST /api/v1/changesets`). The
    /// answer of each change (`204` with the `ETag`, `201` with the added line), or the one
    /// error of the change that failed, in SAP's terms, with nothing applied.
    pub async fn change_set(
        &self,
        changes: &[ChangesetPart],
    ) -> Result<Vec<Response<ProxyBody>>, Box<Response<ProxyBody>>> {
        let correlation = changes
            .first()
            .map(|c| platform::correlation::correlation_from_headers(&c.parts.headers).0)
            .unwrap_or_default();
        platform::otel::set_current("correlation_id", correlation.clone());
        let preconditioned = changes
            .iter()
            .any(|c| c.parts.headers.contains_key(header::IF_MATCH));
        // A version moved between the read and the changeset (sap-sync reporting a status)
        // is read again once, unless a client named the version it saw.
        for attempt in 0..2 {
            let mut started: std::collections::HashMap<String, Value> = Default::default();
            let mut running: std::collections::HashMap<String, Value> = Default::default();
            let mut sent = Vec::new();
            // Per part: the index of its order-service change, when one is sent.
            let mut sent_as = Vec::with_capacity(changes.len());
            for c in changes {
                let number = number_of(&c.change).to_owned();
                if !started.contains_key(&number) {
                    match self.find_order(&number).await {
                        Ok(Some(o)) => {
                            started.insert(number.clone(), o.clone());
                            running.insert(number.clone(), o);
                        }
                        Ok(None) => return Err(Box::new(not_found(&number))),
                        Err(e) => return Err(Box::new(sap_refusal(e, &number, None))),
                    }
                }
                let order = &running[&number];
                let planned = plan(order, &c.change, &c.body, &self.config.rejection_reasons)?;
                let version = if_match(&c.parts.headers, &started[&number], planned.required)
                    .map_err(|r| Box::new(r.into_response()))?;
                if is_noop(&planned.method, planned.payload.as_ref()) {
                    sent_as.push(None);
                    continue;
                }
                let version = order_acl::parse_order_etag(&version).unwrap_or_default();
                let id = order["id"].clone();
                let item = |i: &str| json!(i.parse::<i64>().unwrap_or_default());
                let payload = planned.payload.clone().unwrap_or(Value::Null);
                let op = match &c.change {
                    Change::Header(_) => json!({"op": "update_order", "order": id,
                        "version": version, "changes": payload}),
                    Change::Item(_, i) => json!({"op": "update_item", "order": id,
                        "version": version, "item_number": item(i), "changes": payload}),
                    Change::AddItem(_) => json!({"op": "add_item", "order": id,
                        "version": version, "line": payload}),
                    Change::DeleteItem(_, i) => json!({"op": "remove_item", "order": id,
                        "version": version, "item_number": item(i)}),
                    // Refused by `plan`; kept aligned with the parts all the same.
                    Change::DeleteOrder(_) => {
                        sent_as.push(None);
                        continue;
                    }
                };
                if let Some(o) = running.get_mut(&number) {
                    simulate(o, &c.change, planned.payload.as_ref());
                }
                sent_as.push(Some(sent.len()));
                sent.push(op);
            }
            let after = if sent.is_empty() {
                Vec::new()
            } else {
                match self.orders.changeset(&sent, &correlation).await {
                    Ok(a) => a,
                    Err(OrderServiceError::Rejected { status: 412, .. })
                        if attempt == 0 && !preconditioned =>
                    {
                        continue;
                    }
                    Err(e) => {
                        let failed = failed_change(&e)
                            .and_then(|k| sent_as.iter().position(|s| *s == Some(k)))
                            .map(|p| &changes[p].change);
                        let (number, item) = match failed {
                            Some(Change::Item(n, i) | Change::DeleteItem(n, i)) => {
                                (n.clone(), Some(i.clone()))
                            }
                            Some(other) => (number_of(other).to_owned(), None),
                            None => (String::new(), None),
                        };
                        return Err(Box::new(sap_refusal(e, &number, item.as_deref())));
                    }
                }
            };
            // Each part's answer: the order as its change left it (a no-op: as the changes
            // before it left it).
            let mut latest: std::collections::HashMap<String, Value> = started;
            let mut answers = Vec::with_capacity(changes.len());
            for (c, s) in changes.iter().zip(&sent_as) {
                let number = number_of(&c.change).to_owned();
                if let Some(k) = s
                    && let Some(o) = after.get(*k)
                {
                    latest.insert(number.clone(), o.clone());
                }
                let order = latest.get(&number).cloned().unwrap_or(Value::Null);
                answers.push(match (&c.change, s) {
                    (Change::AddItem(_), Some(_)) => added_line(&c.parts, &order, &number),
                    _ => no_content(order_acl::order_etag(&order)),
                });
            }
            return Ok(answers);
        }
        Err(Box::new(odata_error(
            StatusCode::PRECONDITION_FAILED,
            "/IWBEP/CM_MGW_RT/098",
            "The entity was changed by another user (ETag mismatch); read it again",
        )))
    }
}

/// The index of the refused change in an order-service changeset refusal.
fn failed_change(e: &OrderServiceError) -> Option<usize> {
    let OrderServiceError::Rejected { detail, .. } = e else {
        return None;
    };
    let problem: Value = serde_json::from_str(detail).ok()?;
    problem["change_index"]
        .as_u64()
        .and_then(|i| usize::try_from(i).ok())
}

/// What a planned change does to `order` (the order service's JSON), as far as planning the
/// next change of the same order in a changeset needs it: header fields, line quantities and
/// rejections, removed lines.
fn simulate(order: &mut Value, change: &Change, payload: Option<&Value>) {
    let fields = payload.and_then(Value::as_object);
    match change {
        Change::Header(_) => {
            for (k, v) in fields.into_iter().flatten() {
                if k == "specifications" {
                    let specs = &mut order["specifications"];
                    if !specs.is_object() {
                        *specs = json!({});
                    }
                    for (sk, sv) in v.as_object().into_iter().flatten() {
                        if let Some(m) = specs.as_object_mut() {
                            if sv.is_null() {
                                m.remove(sk);
                            } else {
                                m.insert(sk.clone(), sv.clone());
                            }
                        }
                    }
                } else {
                    order[k.as_str()] = v.clone();
                }
            }
        }
        Change::Item(_, i) => {
            if let Some(it) = order["items"].as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|it| order_acl::item_number_text(it) == *i)
            }) {
                for (k, v) in fields.into_iter().flatten() {
                    it[k.as_str()] = v.clone();
                }
            }
        }
        Change::DeleteItem(_, i) => {
            if let Some(items) = order["items"].as_array_mut() {
                items.retain(|it| order_acl::item_number_text(it) != *i);
            }
        }
        Change::AddItem(_) | Change::DeleteOrder(_) => {}
    }
}

/// Why a change SAP accepted in `dual-write` did not land in the order service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// The order service has no order under that number (yet: its create may still be in
    /// the replay log): try again later.
    NotFound,
    /// Down, timed out, 5xx, or the order moved under two attempts: try again later.
    Unavailable(String),
    /// The order service (or the translation) refuses what SAP accepted: an operator decides.
    Refused(String),
}

/// The number a change names.
pub fn number_of(change: &Change) -> &str {
    match change {
        Change::Header(n)
        | Change::Item(n, _)
        | Change::AddItem(n)
        | Change::DeleteItem(n, _)
        | Change::DeleteOrder(n) => n,
    }
}

/// The order-service order SAP knows as `number`: linked under SAP's number, else ours
/// (one number in both systems).
pub async fn find_order(
    orders: &dyn OrderService,
    number: &str,
) -> Result<Option<Value>, OrderServiceError> {
    let by_sap = orders
        .list(&format!(
            "sap_order_number={}&limit=1",
            crate::routing::sales_orders::pct(number)
        ))
        .await?;
    if let Some(o) = by_sap.into_iter().next() {
        return Ok(Some(o));
    }
    // The order service's own numbers have ten digits; a shorter SAP number (an order SAP
    // numbered itself, before the migration) is found only by its link, so an order not yet
    // copied by `orderctl backfill` is "not there yet", never a refused look-up.
    if number.len() != 10 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    orders
        .by_number(&crate::routing::sales_orders::pct(number))
        .await
}

/// Applies a change SAP accepted (`dual-write`: SAP is the system of record) to the order
/// service's order with the same number, through the SAP face's own translation ([`plan`]).
/// The client's `If-Match` is SAP's ETag, not the order service's version, so the change
/// applies to the order service's current version (read again once if it moved meanwhile).
/// `key` (the replay entry's id) goes as `Idempotency-Key`: a line added again after a lost
/// answer is not added twice; a quantity, reason or header field set twice is the same state.
pub async fn apply_dual_write(
    orders: &dyn OrderService,
    reasons: &[String],
    change: &Change,
    body: &Bytes,
    key: &str,
    correlation: &str,
) -> Result<(), ApplyError> {
    let number = number_of(change);
    let failed = |e: OrderServiceError| {
        if e.is_retryable() {
            ApplyError::Unavailable(e.to_string())
        } else {
            ApplyError::Refused(e.to_string())
        }
    };
    let mut last = None;
    for _ in 0..2 {
        let order = match find_order(orders, number).await {
            Ok(Some(o)) => o,
            Ok(None) => return Err(ApplyError::NotFound),
            Err(e) => return Err(failed(e)),
        };
        let planned = plan(&order, change, body, reasons).map_err(|r| {
            ApplyError::Refused(format!(
                "the SAP face's translation refuses the change ({})",
                r.status()
            ))
        })?;
        if is_noop(&planned.method, planned.payload.as_ref()) {
            // The order service has it already (a replay after a lost answer, or an order
            // backfilled from SAP after the change): the same state, nothing to send.
            return Ok(());
        }
        let version = order_acl::order_etag(&order);
        let answered = orders
            .change(
                planned.method,
                &planned.path,
                planned.payload.as_ref(),
                version.as_deref(),
                correlation,
                matches!(change, Change::AddItem(_)).then_some(key),
            )
            .await;
        match answered {
            Ok(_) => return Ok(()),
            Err(OrderServiceError::Rejected {
                status: 412,
                detail,
            }) => {
                last = Some(detail);
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Err(ApplyError::Unavailable(format!(
        "the order moved under two attempts: {}",
        last.unwrap_or_default()
    )))
}

/// A `PATCH` whose every sent value equals the order's: nothing to change.
fn is_noop(method: &Method, payload: Option<&Value>) -> bool {
    method == Method::PATCH && payload.is_some_and(|p| p.as_object().is_some_and(Map::is_empty))
}

/// The order-service call a SAP write makes: the one translation of SAP's writes, used by the
/// SAP face of `events`/`retired` and by the dual write of changes ([`apply_dual_write`]).
pub(crate) struct Planned {
    method: Method,
    path: String,
    payload: Option<Value>,
    item: Option<String>,
    /// S/4 requires `If-Match` (a header change).
    required: bool,
}

/// Translates `change` (with its SAP body) of `order` (the order service's) into the call,
/// or refuses it in SAP's terms.
fn plan(
    order: &Value,
    change: &Change,
    body: &Bytes,
    reasons: &[String],
) -> Result<Planned, Box<Response<ProxyBody>>> {
    let id = order["id"].as_str().unwrap_or_default().to_owned();
    let (method, path, payload, item, required) = match change {
        Change::DeleteOrder(_) => {
            return Err(Box::new(odata_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "/IWFND/CM_MGW/014",
                "Deleting a sales order is not available while the order service serves this route; reject its items (SalesDocumentRjcnReason) instead",
            )));
        }
        Change::Header(n) => {
            let map = match parse_update(body, &SALES_ORDER) {
                Ok(m) => m,
                Err(e) => return Err(Box::new(payload_refusal(e))),
            };
            if let Some(r) = key_change(&map, "SalesOrder", n) {
                return Err(Box::new(r));
            }
            (
                Method::PATCH,
                format!("/api/v1/orders/{id}"),
                Some(header_patch(&map, order)),
                None,
                true,
            )
        }
        Change::Item(n, i) => {
            let map = match parse_update(body, &SALES_ORDER_ITEM) {
                Ok(m) => m,
                Err(e) => return Err(Box::new(payload_refusal(e))),
            };
            if let Some(r) =
                key_change(&map, "SalesOrder", n).or_else(|| key_change(&map, "SalesOrderItem", i))
            {
                return Err(Box::new(r));
            }
            let current = order["items"]
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .find(|it| order_acl::item_number_text(it) == *i)
                })
                .map(|it| order_acl::item_to_entity(it, n, ""))
                .unwrap_or(Value::Null);
            let patch = match item_patch(&map, &current, reasons) {
                Ok(p) => p,
                Err(r) => return Err(Box::new(r.into_response())),
            };
            (
                Method::PATCH,
                format!("/api/v1/orders/{id}/items/{i}"),
                Some(patch),
                Some(i.clone()),
                false,
            )
        }
        Change::AddItem(_) => {
            let entity: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return Err(Box::new(odata_error(
                        StatusCode::BAD_REQUEST,
                        "CX_SXML_PARSE_ERROR",
                        &format!("The request body is not valid JSON: {e}"),
                    )));
                }
            };
            let map = match parse_entity(&entity, &SALES_ORDER_ITEM) {
                Ok(m) => m,
                Err(e) => return Err(Box::new(payload_refusal(e))),
            };
            (
                Method::POST,
                format!("/api/v1/orders/{id}/items"),
                Some(new_item(&map)),
                None,
                false,
            )
        }
        Change::DeleteItem(_, i) => (
            Method::DELETE,
            format!("/api/v1/orders/{id}/items/{i}"),
            None,
            Some(i.clone()),
            false,
        ),
    };
    Ok(Planned {
        method,
        path,
        payload,
        item,
        required,
    })
}

/// The order-service `PATCH` of a header change: mapped fields to their modern names, every
/// other updatable header field into `specifications` (merged over the current ones).
fn header_patch(map: &PropertyMap, order: &Value) -> Value {
    let mut patch = Map::new();
    // Only the keys that change: the order service merges them over the ones it holds, so a
    // second header change of the same order in one changeset keeps the first one's keys.
    let mut specs = Map::new();
    let mut specs_changed = false;
    let current = order_acl::order_to_entity(order, "")["d"].clone();
    for (p, v) in map.iter() {
        if p.key || !p.updatable || unchanged(current.get(p.name), &v.to_json()) {
            // S/4 ignores what cannot be changed (the emulator does the same); SAP's clients
            // may send the whole entity, so what equals the current value is no change.
            continue;
        }
        match p.name {
            "PurchaseOrderByCustomer" => {
                patch.insert("customer_reference".into(), v.to_json());
            }
            "RequestedDeliveryDate" => {
                let date = v
                    .to_json()
                    .as_str()
                    .and_then(order_acl::parse_odata_date)
                    .map(|d| json!(d.format("%Y-%m-%d").to_string()))
                    .unwrap_or(Value::Null);
                patch.insert("requested_delivery_date".into(), date);
            }
            name => {
                specs.insert(name.to_owned(), v.to_json());
                specs_changed = true;
            }
        }
    }
    if specs_changed {
        patch.insert("specifications".into(), Value::Object(specs));
    }
    Value::Object(patch)
}

/// The order-service `PATCH` of a line change; a field the new side cannot change yet is
/// refused in SAP's terms rather than dropped.
fn item_patch(map: &PropertyMap, current: &Value, reasons: &[String]) -> Result<Value, Refusal> {
    let mut patch = Map::new();
    for (p, v) in map.iter() {
        if unchanged(current.get(p.name), &v.to_json()) {
            continue;
        }
        match p.name {
            "SalesOrder" | "SalesOrderItem" => {}
            "RequestedQuantity" => {
                patch.insert("quantity".into(), v.to_json());
            }
            "SalesDocumentRjcnReason" => {
                let reason = v.to_json();
                let reason = match reason.as_str() {
                    Some("") | None => Value::Null,
                    Some(code) if !reasons.iter().any(|r| r == code) => {
                        // S/4 checks the reason against its configuration (TVAG).
                        return Err(Refusal(
                            StatusCode::BAD_REQUEST,
                            "V1/206",
                            format!("Reason for rejection {code} is not defined"),
                        ));
                    }
                    Some(_) => reason,
                };
                patch.insert("rejection_reason".into(), reason);
            }
            name if !p.updatable => {
                // Ignored by S/4 on update.
                let _ = name;
            }
            name => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "V1/047",
                    format!(
                        "Field {name} cannot be changed while the order service serves this route"
                    ),
                ));
            }
        }
    }
    Ok(Value::Object(patch))
}

/// A sent value that changes nothing: equal to the current one, or S/4's empty value of a
/// field the order does not hold (SAP's clients may send every property of the entity).
fn unchanged(current: Option<&Value>, sent: &Value) -> bool {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty() || s.parse::<f64>().is_ok_and(|f| f == 0.0),
        _ => false,
    };
    match current {
        Some(c) if c == sent => true,
        Some(Value::String(a)) => match (a.parse::<f64>(), sent.as_str().map(str::parse::<f64>)) {
            (Ok(x), Some(Ok(y))) => x == y,
            _ => false,
        },
        Some(c) => empty(c) && empty(sent),
        None => empty(sent),
    }
}

/// The order-service line of `POST A_SalesOrder('n')/to_Item`.
fn new_item(map: &PropertyMap) -> Value {
    let mut item = Map::new();
    let mut specs = Map::new();
    for (p, v) in map.iter() {
        match p.name {
            "Material" => {
                item.insert("sku".into(), v.to_json());
            }
            "RequestedQuantity" => {
                item.insert("quantity".into(), v.to_json());
            }
            "RequestedQuantityUnit" => {
                item.insert("unit".into(), v.to_json());
            }
            "SalesOrder" | "SalesOrderItem" => {}
            name if p.creatable => {
                specs.insert(name.to_owned(), v.to_json());
            }
            _ => {}
        }
    }
    if !specs.is_empty() {
        item.insert("specifications".into(), Value::Object(specs));
    }
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two changes of one line in one changeset: the second is planned against the first's
    /// result, so setting the quantity back is a change (not "unchanged" against the order as
    /// read), and a header change keeps the specification keys an earlier one set.
    #[test]
    fn a_changeset_plans_each_change_against_the_earlier_ones() {
        let mut order = json!({"id": "o", "version": 1, "specifications": {"A": "1"},
            "items": [{"item_number": 10, "quantity": "2", "rejection_reason": null}]});
        let line = Change::Item("8000000001".into(), "10".into());
        let body = |q: &str| Bytes::from(json!({ "RequestedQuantity": q }).to_string());
        let first = plan(&order, &line, &body("5"), &[])
            .map_err(|_| ())
            .unwrap();
        assert_eq!(first.payload, Some(json!({"quantity": "5"})));
        simulate(&mut order, &line, first.payload.as_ref());
        let back = plan(&order, &line, &body("2"), &[])
            .map_err(|_| ())
            .unwrap();
        assert_eq!(
            back.payload,
            Some(json!({"quantity": "2"})),
            "a change back is a change"
        );
        let header = Change::Header("8000000001".into());
        simulate(
            &mut order,
            &header,
            Some(&json!({"specifications": {"B": "2"}})),
        );
        simulate(
            &mut order,
            &header,
            Some(&json!({"specifications": {"A": null}})),
        );
        assert_eq!(order["specifications"], json!({"B": "2"}));
        simulate(
            &mut order,
            &Change::DeleteItem("8000000001".into(), "10".into()),
            None,
        );
        assert_eq!(order["items"], json!([]));
    }

    #[test]
    fn an_etag_sap_issued_is_answered_as_a_stale_one() {
        let order = json!({"version": 4});
        let with = |tag: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_MATCH, HeaderValue::from_str(tag).unwrap());
            if_match(&h, &order, true)
        };
        assert_eq!(with("W/\"4\"").ok().as_deref(), Some("W/\"4\""));
        assert_eq!(with(" \"3\" ").ok().as_deref(), Some("\"3\""));
        assert_eq!(with("*").ok().as_deref(), Some("W/\"4\""));
        for sap in [
            "W/\"datetimeoffset'2026-12-02T00%3A46%3A37.1234567Z'\"",
            "W/\"\"",
            "4",
            "W/\"4",
        ] {
            let r = with(sap).err().unwrap_or_else(|| panic!("{sap} accepted"));
            assert_eq!(
                (r.0, r.1),
                (StatusCode::PRECONDITION_FAILED, "/IWBEP/CM_MGW_RT/098")
            );
        }
        assert_eq!(
            if_match(&HeaderMap::new(), &order, true).err().map(|r| r.0),
            Some(StatusCode::PRECONDITION_REQUIRED)
        );
    }

    #[test]
    fn writes_are_recognised_as_sap_parses_them() {
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        assert_eq!(
            change_of(&m("PATCH"), "/A_SalesOrder('8000000001')"),
            Some(Change::Header("8000000001".into()))
        );
        assert_eq!(
            change_of(
                &m("MERGE"),
                "/A_SalesOrderItem(SalesOrder='8000000001',SalesOrderItem='000010')"
            ),
            Some(Change::Item("8000000001".into(), "10".into()))
        );
        assert_eq!(
            change_of(&m("POST"), "/A_SalesOrder('8000000001')/to_Item/"),
            Some(Change::AddItem("8000000001".into()))
        );
        assert_eq!(
            change_of(
                &m("DELETE"),
                "/A_SalesOrderItem(SalesOrderItem='20',SalesOrder='8000000001')"
            ),
            Some(Change::DeleteItem("8000000001".into(), "20".into()))
        );
        assert_eq!(change_of(&m("GET"), "/A_SalesOrder('1')"), None);
        assert_eq!(change_of(&m("POST"), "/A_SalesOrder"), None);
        assert_eq!(
            below_root("/sap/opu//odata/sap/API_SALES_ORDER_SRV/A_SalesOrder('1')"),
            "/A_SalesOrder('1')"
        );
    }

    #[test]
    fn sap_fields_become_the_order_service_s() {
        let map = parse_update(
            br#"{"RequestedQuantity":"5","SalesDocumentRjcnReason":""}"#,
            &SALES_ORDER_ITEM,
        )
        .unwrap();
        let current = json!({"RequestedQuantity": "2", "SalesDocumentRjcnReason": "02"});
        let reasons = vec!["02".to_owned()];
        assert_eq!(
            item_patch(&map, &current, &reasons).unwrap(),
            json!({"quantity": "5", "rejection_reason": null})
        );
        // The whole entity sent back with one change: only that change.
        let map = parse_update(
            br#"{"RequestedQuantity":"2.000","SalesDocumentRjcnReason":"02","Batch":"","ItemGrossWeight":"0"}"#,
            &SALES_ORDER_ITEM,
        )
        .unwrap();
        assert_eq!(item_patch(&map, &current, &reasons).unwrap(), json!({}));
        let map = parse_update(br#"{"SalesDocumentRjcnReason":"Q9"}"#, &SALES_ORDER_ITEM).unwrap();
        assert!(
            item_patch(&map, &current, &reasons).is_err(),
            "unknown reason"
        );
        let map = parse_update(
            br#"{"PurchaseOrderByCustomer":"PO-9","CustomerPurchaseOrderType":"EDI","TotalNetAmount":"1.00"}"#,
            &SALES_ORDER,
        )
        .unwrap();
        // Only the key that changes: the order service merges it over the ones it holds.
        let order = json!({"specifications": {"ShippingCondition": "01"}});
        assert_eq!(
            header_patch(&map, &order),
            json!({"customer_reference": "PO-9",
                   "specifications": {"CustomerPurchaseOrderType": "EDI"}})
        );
    }
}
