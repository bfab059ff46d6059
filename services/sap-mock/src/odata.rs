//! The OData face: `/sap/opu/odata/sap/API_SALES_ORDER_SRV/...`, and the read-only master data
//! services of [`crate::master_data_api`] below their own roots.
//!
//! One handler takes every request below a service root and walks it through the phases
//! SAP's stack does, in order:
//!
//! 1. **client and logon** (`sap-client` header or query parameter; basic auth or session),
//! 2. **CSRF**: `x-csrf-token: Fetch` on GET/HEAD hands out a token; writes must return it,
//! 3. **resource path** (entity set, key predicate, navigation, `$count`) and **query options**,
//! 4. **format** (`Accept` / `$format`): JSON, or Atom XML when asked for ([`crate::atom`]),
//! 5. the **operation**: read, list, count, create (deep insert), update, delete.
//!
//! Every refusal is an [`SapError`], written as SAP's OData error JSON.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use sap_odata::envelope::{Node, collection, entity_uri, single};
use sap_odata::payload::{parse_sales_order_create, parse_update};
use sap_odata::query::{QueryOptions, SortDirection};
use sap_odata::schema::EntityType;
use sap_odata::schema::{SALES_ORDER_ITM_SUBSQNT_PROC_FLOW, SALES_ORDER_SUBSQNT_PROC_FLOW};
use sap_odata::uri::{Segment, parse_resource_path, resolve_key};
use sap_odata::{EdmValue, SALES_ORDER, SALES_ORDER_ITEM, SERVICE_ROOT_PATH, metadata, schema};

use crate::AppState;
use crate::error::{SapError, codes};
use crate::events::{Event, record};
use crate::numbering;
use crate::render;
use crate::sales_order::{
    add_item, apply_update, build_order, change_item, find_item, remove_item,
};
use crate::session::{LogonFailure, Principal};
use crate::store::{CreateRefused, Order, Record, StoreError};

/// Handles every request below the service root; a repeatable `POST` (SAP Gateway's
/// `RequestID` + `RepeatabilityCreation`, when enabled) runs once and repeats get its answer.
pub async fn handle(State(app): State<Arc<AppState>>, req: Request) -> Response {
    let repeatable = app
        .repeatability
        .as_ref()
        .filter(|_| req.method() == Method::POST)
        .and_then(|r| crate::repeatability::request_id(req.headers()).map(|id| r.slot(&id)));
    let Some(slot) = repeatable else {
        return handle_once(app, req).await;
    };
    let outcome = slot
        .get_or_try_init(|| async {
            let r =
                crate::repeatability::Remembered::from_response(handle_once(app, req).await).await;
            if crate::repeatability::executed(r.to_response().status()) {
                Ok(r)
            } else {
                Err(r)
            }
        })
        .await;
    match outcome {
        Ok(remembered) => remembered.to_response(),
        Err(not_executed) => {
            let mut r = not_executed.to_response();
            r.headers_mut().remove(crate::repeatability::RESULT_HEADER);
            r
        }
    }
}

async fn handle_once(app: Arc<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = effective_method(&parts.method, &parts.headers);
    let fetch_requested = sap_odata::session::is_fetch(&method, &parts.headers);
    let Some(root) = service_root_of(parts.uri.path()) else {
        return SapError::resource_not_found(parts.uri.path()).into_response();
    };
    let principal = match logon(&app, &parts.headers, parts.uri.query().unwrap_or_default()) {
        Ok(p) => p,
        Err(message) => return logon_failed(&app, &message),
    };
    let issued = fetch_requested.then(|| app.sessions.fetch_token(&parts.headers, &principal));
    let mut response = if method == Method::HEAD {
        // SAP's clients fetch the token with HEAD on the entity set (often with a trailing
        // slash) or on the entity to be changed; any resource below the root answers 200.
        (StatusCode::OK, Body::empty()).into_response()
    } else if is_write(&method) && !app.sessions.token_valid(&parts.headers, &principal) {
        csrf_required()
    } else {
        let ctx = RequestContext {
            app: &app,
            root,
            method: &method,
            headers: &parts.headers,
            raw_path: parts.uri.path(),
            raw_query: parts.uri.query().unwrap_or_default(),
            principal: &principal,
        };
        let below_root = parts.uri.path().strip_prefix(root).unwrap_or_default();
        let served = match crate::master_data_api::service(root) {
            Some(service) => crate::master_data_api::serve(&ctx, service).await,
            None if below_root == "/$batch" => crate::batch::serve(&ctx, body).await,
            None => serve(&ctx, body).await,
        };
        let r = match served {
            Ok(r) => r,
            Err(e) => {
                record(Event::Refused(e.status.as_u16(), e.code));
                e.into_response()
            }
        };
        if crate::atom::wanted(&parts.headers, parts.uri.query().unwrap_or_default()) {
            as_atom(r).await
        } else {
            r
        }
    };
    let h = response.headers_mut();
    h.insert("dataserviceversion", HeaderValue::from_static("2.0"));
    h.insert("sap-server", HeaderValue::from_static("true"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store, no-cache"));
    if let Some(issued) = issued {
        if let Ok(v) = HeaderValue::from_str(&issued.token) {
            h.insert("x-csrf-token", v);
        }
        for c in issued.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.append(header::SET_COOKIE, v);
            }
        }
    }
    response
}

/// The Atom XML form of a JSON answer; answers without one (counts, `$metadata`) unchanged.
async fn as_atom(r: Response) -> Response {
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return SapError::internal().into_response();
    };
    let converted = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| crate::atom::from_json(&v));
    match converted {
        Some((xml, content_type)) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(xml))
        }
        None => Response::from_parts(parts, Body::from(bytes)),
    }
}

/// `POST` with `X-HTTP-Method: MERGE|PATCH|PUT|DELETE` is tunnelled, as SAP Gateway allows.
pub(crate) fn effective_method(method: &Method, headers: &HeaderMap) -> Method {
    if method == Method::POST
        && let Some(m) = headers.get("x-http-method").and_then(|v| v.to_str().ok())
        && let Ok(m) = Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
    {
        return m;
    }
    method.clone()
}

fn is_write(method: &Method) -> bool {
    sap_odata::session::is_write(method)
}

fn csrf_required() -> Response {
    use sap_odata::session::{CSRF_FAILED_BODY, CSRF_HEADER, CSRF_REQUIRED};
    let mut r = (StatusCode::FORBIDDEN, CSRF_FAILED_BODY).into_response();
    let h = r.headers_mut();
    h.insert(CSRF_HEADER, HeaderValue::from_static(CSRF_REQUIRED));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Checks the client (`sap-client`) and logs the caller on; `Err` carries the reason.
fn logon(app: &AppState, headers: &HeaderMap, raw_query: &str) -> Result<Principal, String> {
    sap_odata::session::check_client(headers, raw_query, &app.config.sap_client)?;
    app.sessions.authenticate(headers).map_err(|f| {
        match f {
            LogonFailure::Missing => "Logon failed: no credentials",
            LogonFailure::Wrong => "Logon failed: name or password is incorrect",
        }
        .to_owned()
    })
}

fn logon_failed(app: &AppState, message: &str) -> Response {
    let mut r =
        SapError::new(StatusCode::UNAUTHORIZED, codes::LOGON_FAILED, message).into_response();
    let realm = sap_odata::session::logon_challenge(&app.config.system_id, &app.config.sap_client);
    if let Ok(v) = HeaderValue::from_str(&realm) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The service root path (`/sap/opu/odata/sap/<SERVICE>`) that `path` lies below, if any.
fn service_root_of(path: &str) -> Option<&'static str> {
    std::iter::once(SERVICE_ROOT_PATH)
        .chain(crate::master_data_api::SERVICES.iter().map(|s| s.root))
        .find(|root| {
            path.strip_prefix(root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// One request as the operations see it.
pub(crate) struct RequestContext<'a> {
    pub(crate) app: &'a AppState,
    /// The service root path the request is below.
    pub(crate) root: &'static str,
    pub(crate) method: &'a Method,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) raw_path: &'a str,
    pub(crate) raw_query: &'a str,
    pub(crate) principal: &'a Principal,
}

impl RequestContext<'_> {
    /// The stored order `number`, or SAP's 404.
    async fn order(&self, number: &str) -> Result<Arc<Order>, SapError> {
        self.app
            .store
            .get(number)
            .await
            .ok_or_else(|| SapError::document_not_found(number))
    }

    /// `http://<host>/sap/opu/odata/sap/API_SALES_ORDER_SRV` (or the root of the master data
    /// service asked for), used in `__metadata` and links.
    pub(crate) fn service_root(&self) -> String {
        format!(
            "http://{}{}",
            sap_odata::request_host(self.headers),
            self.root
        )
    }
}

/// Serves one request below the sales order service's root (also each part of a `$batch`).
pub(crate) async fn serve(ctx: &RequestContext<'_>, body: Body) -> Result<Response, SapError> {
    let below_root = ctx
        .raw_path
        .strip_prefix(SERVICE_ROOT_PATH)
        .unwrap_or_default();
    let segments = parse_resource_path(below_root)?;
    let query = QueryOptions::parse(ctx.raw_query)?;
    negotiate_json(ctx.headers, &query, &segments)?;
    let method = ctx.method.as_str();
    let Some((set, rest)) = segments.split_first() else {
        only(method, &["GET"])?;
        // The one service document of `sap_odata::metadata`, JSON or AtomPub as asked.
        let (body, content_type) = if sap_odata::wants_xml(ctx.headers, ctx.raw_query) {
            (
                metadata::service_document_atom(&ctx.service_root()),
                metadata::SERVICE_DOCUMENT_ATOM_CONTENT_TYPE,
            )
        } else {
            (
                metadata::service_document_json(),
                metadata::SERVICE_DOCUMENT_JSON_CONTENT_TYPE,
            )
        };
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return Ok(r);
    };
    match set.name.as_str() {
        "$metadata" if set.key.is_none() && rest.is_empty() => {
            only(method, &["GET"])?;
            let mut r = (StatusCode::OK, metadata::edmx()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metadata::EDMX_CONTENT_TYPE),
            );
            Ok(r)
        }
        "A_SalesOrder" => serve_orders(ctx, set, rest, &query, body).await,
        "A_SalesOrderItem" => serve_items(ctx, set, rest, &query, body).await,
        "A_SalesOrderSubsqntProcFlow" => {
            serve_flow_set(ctx, &SALES_ORDER_SUBSQNT_PROC_FLOW, set, rest, &query).await
        }
        "A_SalesOrderItmSubsqntProcFlow" => {
            serve_flow_set(ctx, &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW, set, rest, &query).await
        }
        _ => Err(SapError::resource_not_found(&set.name)),
    }
}

/// 405 unless `method` is one of `allowed`.
pub(crate) fn only(method: &str, allowed: &[&str]) -> Result<(), SapError> {
    if allowed.contains(&method) {
        Ok(())
    } else {
        Err(SapError::method_not_allowed(method))
    }
}

/// Everything below `A_SalesOrder`: the collection, `$count`, one order, its navigations.
async fn serve_orders(
    ctx: &RequestContext<'_>,
    set: &Segment,
    rest: &[Segment],
    query: &QueryOptions,
    body: Body,
) -> Result<Response, SapError> {
    let method = ctx.method.as_str();
    if set.key.is_none() {
        return match (rest, method) {
            ([], "GET") => list(
                ctx,
                query,
                (&SALES_ORDER, &schema::entity_type),
                ctx.app.store.all().await,
                |o| &o.header,
                |root, o| render::order_node(root, o, query),
            ),
            ([], "POST") => create_order(ctx, body).await,
            ([], _) => Err(SapError::method_not_allowed(method)),
            ([c], _) if is_count(c) => {
                only(method, &["GET"])?;
                query.check(&SALES_ORDER, &schema::entity_type)?;
                let orders = matching(query, ctx.app.store.all().await, |o| &o.header);
                Ok(count(orders.len()))
            }
            ([other, ..], _) => Err(SapError::resource_not_found(&other.name)),
        };
    }
    let number = order_key(set)?;
    let Some((nav, tail)) = rest.split_first() else {
        return match method {
            "GET" => read_order(ctx, &number, query).await,
            "PATCH" | "MERGE" | "PUT" => update_order(ctx, &number, body).await,
            "DELETE" => delete_order(ctx, &number).await,
            _ => Err(SapError::method_not_allowed(method)),
        };
    };
    if nav.key.is_some() {
        return Err(SapError::resource_not_found(&nav.name));
    }
    if nav.name == "to_Item" && tail.is_empty() && method == "POST" {
        let sent = parse_update(&read_body(ctx, body).await?, &SALES_ORDER_ITEM)?;
        return write_item(ctx, &number, ItemWrite::Add(sent)).await;
    }
    only(method, &["GET"])?;
    let order = ctx.order(&number).await?;
    let navigation = SALES_ORDER
        .navigation(&nav.name)
        .ok_or_else(|| SapError::resource_not_found(&nav.name))?;
    if navigation.name == "to_SubsequentProcFlowDoc" {
        return serve_flow(
            ctx,
            query,
            &SALES_ORDER_SUBSQNT_PROC_FLOW,
            order.flow.clone(),
            tail,
        );
    }
    let items: Vec<ItemRow> = if navigation.name == "to_Item" {
        order
            .items
            .iter()
            .map(|i| (i.clone(), Some(order.clone())))
            .collect()
    } else if navigation.to_many {
        Vec::new()
    } else {
        return Err(SapError::resource_not_found(&nav.name));
    };
    match tail {
        [] => list_items(ctx, query, items),
        [c] if is_count(c) => {
            query.check(&SALES_ORDER_ITEM, &schema::entity_type)?;
            Ok(count(matching(query, items, |(i, _)| i).len()))
        }
        [other, ..] => Err(SapError::resource_not_found(&other.name)),
    }
}

/// Everything below `A_SalesOrderItem`: the collection, `$count`, one item, its navigations.
async fn serve_items(
    ctx: &RequestContext<'_>,
    set: &Segment,
    rest: &[Segment],
    query: &QueryOptions,
    body: Body,
) -> Result<Response, SapError> {
    let method = ctx.method.as_str();
    let Some(key) = set.key.as_deref() else {
        return match (rest, method) {
            ([], "GET") => list_items(ctx, query, all_items(ctx).await),
            ([], "POST") => {
                let sent = parse_update(&read_body(ctx, body).await?, &SALES_ORDER_ITEM)?;
                let number = sent.get_str("SalesOrder").unwrap_or_default().to_owned();
                if number.is_empty() {
                    return Err(SapError::bad_request(
                        codes::FIELD_MISSING,
                        "Enter the sales order the item belongs to",
                    )
                    .on("SalesOrder"));
                }
                write_item(ctx, &number, ItemWrite::Add(sent)).await
            }
            ([], _) => Err(SapError::method_not_allowed(method)),
            ([c], _) if is_count(c) => {
                only(method, &["GET"])?;
                query.check(&SALES_ORDER_ITEM, &schema::entity_type)?;
                Ok(count(
                    matching(query, all_items(ctx).await, |(i, _)| i).len(),
                ))
            }
            ([other, ..], _) => Err(SapError::resource_not_found(&other.name)),
        };
    };
    let key = resolve_key(&SALES_ORDER_ITEM, key)?;
    let (number, item_no) = (key[0].clone(), key[1].clone());
    if rest.is_empty() && matches!(method, "PATCH" | "MERGE" | "PUT" | "DELETE") {
        let write = if method == "DELETE" {
            ItemWrite::Remove(item_no)
        } else {
            let changes = parse_update(&read_body(ctx, body).await?, &SALES_ORDER_ITEM)?;
            ItemWrite::Change(item_no, changes, method == "PUT")
        };
        return write_item(ctx, &number, write).await;
    }
    only(method, &["GET"])?;
    let order = ctx.order(&number).await?;
    let item = find_item(&order, &item_no)?;
    let root = ctx.service_root();
    match rest {
        [] => {
            query.check(&SALES_ORDER_ITEM, &schema::entity_type)?;
            Ok(json(
                StatusCode::OK,
                &single(render::item_node(&root, item, Some(&order), query)),
            ))
        }
        [nav] if nav.name == "to_SalesOrder" && nav.key.is_none() => {
            query.check(&SALES_ORDER, &schema::entity_type)?;
            Ok(entity_response(
                render::order_node(&root, &order, query),
                &order,
            ))
        }
        [nav, tail @ ..] if nav.name == "to_SubsequentProcFlowDocItem" && nav.key.is_none() => {
            let flow = order.item_flow_of(&item_no).cloned().collect();
            serve_flow(ctx, query, &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW, flow, tail)
        }
        [nav]
            if nav.key.is_none()
                && SALES_ORDER_ITEM
                    .navigation(&nav.name)
                    .is_some_and(|n| n.to_many) =>
        {
            Ok(json(StatusCode::OK, &collection(Vec::new(), None, None)))
        }
        [other, ..] => Err(SapError::resource_not_found(&other.name)),
    }
}

/// A document flow list (an order's or item's navigation, or the whole set): query options,
/// paging and `$count` as for any collection.
fn serve_flow(
    ctx: &RequestContext<'_>,
    query: &QueryOptions,
    entity: &'static EntityType,
    rows: Vec<Record>,
    tail: &[Segment],
) -> Result<Response, SapError> {
    match tail {
        [] => list(
            ctx,
            query,
            (entity, &schema::entity_type),
            rows,
            |r| r,
            |root, r| render::flow_node(root, entity, r, query.selected_properties().as_deref()),
        ),
        [c] if is_count(c) => {
            query.check(entity, &schema::entity_type)?;
            Ok(count(matching(query, rows, |r| r).len()))
        }
        [other, ..] => Err(SapError::resource_not_found(&other.name)),
    }
}

/// `A_SalesOrderSubsqntProcFlow` / `A_SalesOrderItmSubsqntProcFlow` as entity sets: read-only
/// (S/4's sets are not creatable, updatable or deletable), every order's flow, one record by
/// its key, and its way back (`to_SalesOrder`, `to_SalesOrderItem`).
async fn serve_flow_set(
    ctx: &RequestContext<'_>,
    entity: &'static EntityType,
    set: &Segment,
    rest: &[Segment],
    query: &QueryOptions,
) -> Result<Response, SapError> {
    only(ctx.method.as_str(), &["GET"])?;
    let item_level = std::ptr::eq(entity, &SALES_ORDER_ITM_SUBSQNT_PROC_FLOW);
    let Some(key) = set.key.as_deref() else {
        let orders = ctx.app.store.all().await;
        let rows = orders
            .iter()
            .flat_map(|o| if item_level { &o.item_flow } else { &o.flow })
            .cloned()
            .collect();
        return serve_flow(ctx, query, entity, rows, rest);
    };
    let key = resolve_key(entity, key)?;
    let (number, uuid) = (&key[0], key[key.len() - 1].to_ascii_lowercase());
    let not_found = || SapError::resource_not_found(&set.name);
    let order = ctx.app.store.get(number).await.ok_or_else(not_found)?;
    let rows = if item_level {
        &order.item_flow
    } else {
        &order.flow
    };
    let record = rows
        .iter()
        .find(|r| {
            r.get("DocRelationshipUUID") == &EdmValue::Guid(uuid.clone())
                && (!item_level || r.get_str("SalesOrderItem") == key[1])
        })
        .ok_or_else(not_found)?;
    let root = ctx.service_root();
    match rest {
        [] => {
            query.check(entity, &schema::entity_type)?;
            Ok(json(
                StatusCode::OK,
                &single(render::flow_node(
                    &root,
                    entity,
                    record,
                    query.selected_properties().as_deref(),
                )),
            ))
        }
        [nav] if nav.name == "to_SalesOrder" && nav.key.is_none() => {
            query.check(&SALES_ORDER, &schema::entity_type)?;
            Ok(entity_response(
                render::order_node(&root, &order, query),
                &order,
            ))
        }
        [nav] if item_level && nav.name == "to_SalesOrderItem" && nav.key.is_none() => {
            query.check(&SALES_ORDER_ITEM, &schema::entity_type)?;
            let item = find_item(&order, record.get_str("SalesOrderItem"))?;
            Ok(json(
                StatusCode::OK,
                &single(render::item_node(&root, item, Some(&order), query)),
            ))
        }
        [other, ..] => Err(SapError::resource_not_found(&other.name)),
    }
}

pub(crate) fn is_count(s: &Segment) -> bool {
    s.name == "$count" && s.key.is_none()
}

fn order_key(s: &Segment) -> Result<String, SapError> {
    let key = resolve_key(&SALES_ORDER, s.key.as_deref().unwrap_or_default())?;
    Ok(key.into_iter().next().unwrap_or_default())
}

/// JSON or Atom XML ([`crate::atom`]); an `Accept` that allows neither is refused with 406.
pub(crate) fn negotiate_json(
    headers: &HeaderMap,
    query: &QueryOptions,
    segments: &[Segment],
) -> Result<(), SapError> {
    if segments.first().is_some_and(|s| s.name == "$metadata") {
        return Ok(());
    }
    let not_acceptable = || {
        SapError::new(
            StatusCode::NOT_ACCEPTABLE,
            codes::MEDIA_TYPE,
            "The service answers in JSON or Atom XML: send Accept: application/json or $format=json",
        )
    };
    if query.format.is_some() {
        return Ok(());
    }
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(());
    }
    let acceptable = accept.split(',').any(|m| {
        let m = m
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        matches!(
            m.as_str(),
            "application/json"
                | "application/atom+xml"
                | "application/xml"
                | "application/*"
                | "*/*"
                | "text/*"
                | "text/plain"
        )
    });
    if acceptable {
        Ok(())
    } else {
        Err(not_acceptable())
    }
}

pub(crate) fn json(status: StatusCode, node: &Node) -> Response {
    let mut r = (status, node.to_json_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn entity_response(node: Node, order: &Order) -> Response {
    let mut r = json(StatusCode::OK, &single(node));
    if let Ok(v) = HeaderValue::from_str(&render::etag(order)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

pub(crate) fn count(n: usize) -> Response {
    let mut r = (StatusCode::OK, n.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn storage_failed(e: StoreError) -> SapError {
    tracing::error!(error = %e, "sap_mock_storage_failed");
    SapError::internal()
}

async fn read_order(
    ctx: &RequestContext<'_>,
    number: &str,
    query: &QueryOptions,
) -> Result<Response, SapError> {
    query.check(&SALES_ORDER, &schema::entity_type)?;
    let order = ctx.order(number).await?;
    Ok(entity_response(
        render::order_node(&ctx.service_root(), &order, query),
        &order,
    ))
}

/// The rows whose record matches `$filter`.
pub(crate) fn matching<T>(
    query: &QueryOptions,
    mut rows: Vec<T>,
    record: impl Fn(&T) -> &Record,
) -> Vec<T> {
    if let Some(f) = &query.filter {
        rows.retain(|r| f.evaluate(&|name| record(r).get(name).clone()));
    }
    rows
}

/// Sorts by `$orderby` (stable, so ties keep key order).
fn sort_by<T>(rows: &mut [T], query: &QueryOptions, get: impl Fn(&T, &str) -> EdmValue) {
    if query.orderby.is_empty() {
        return;
    }
    rows.sort_by(|a, b| {
        for o in &query.orderby {
            let ord = get(a, &o.property)
                .compare(&get(b, &o.property))
                .unwrap_or(Ordering::Equal);
            let ord = match o.direction {
                SortDirection::Ascending => ord,
                SortDirection::Descending => ord.reverse(),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

/// The window of a sorted list to answer: `$skip`, `$top`, `$skiptoken` and the server's page
/// size. Returns the range and the skiptoken of the next page when the page was cut.
fn page(
    total: usize,
    query: &QueryOptions,
    page_size: usize,
) -> Result<(usize, usize, Option<usize>), SapError> {
    let window = sap_odata::query::Window::of(query, page_size)?;
    let start = window.start.min(total);
    let available = total - start;
    let take = window.take.min(available);
    Ok((start, start + take, window.next_token(available)))
}

fn next_link(ctx: &RequestContext<'_>, token: usize) -> String {
    let below_root = ctx.raw_path.strip_prefix(ctx.root).unwrap_or_default();
    sap_odata::query::next_link(&ctx.service_root(), below_root, ctx.raw_query, token)
}

/// Finds the entity type a navigation leads to, by name (for nested `$select` checks).
pub(crate) type TargetOf = dyn Fn(&str) -> Option<&'static EntityType> + Sync;

/// A collection answer: `$filter`, `$orderby`, paging (`$skip`, `$top`, `$skiptoken`, page
/// size with `__next`), `$inlinecount`, each row rendered by `render`. Names are checked
/// against `entity`, nested selections against the navigation targets `target_of` finds.
pub(crate) fn list<T>(
    ctx: &RequestContext<'_>,
    query: &QueryOptions,
    (entity, target_of): (&EntityType, &TargetOf),
    rows: Vec<T>,
    record: impl Fn(&T) -> &Record,
    render: impl Fn(&str, &T) -> Node,
) -> Result<Response, SapError> {
    query.check(entity, target_of)?;
    let mut rows = matching(query, rows, &record);
    sort_by(&mut rows, query, |r, p| record(r).get(p).clone());
    let (start, end, next) = page(rows.len(), query, ctx.app.config.page_size)?;
    let root = ctx.service_root();
    let results = rows[start..end].iter().map(|r| render(&root, r)).collect();
    Ok(json(
        StatusCode::OK,
        &collection(
            results,
            query.inline_count.then_some(rows.len() as u64),
            next.map(|t| next_link(ctx, t)),
        ),
    ))
}

type ItemRow = (Record, Option<Arc<Order>>);

async fn all_items(ctx: &RequestContext<'_>) -> Vec<ItemRow> {
    ctx.app
        .store
        .all()
        .await
        .into_iter()
        .flat_map(|o| {
            o.items
                .iter()
                .map(|i| (i.clone(), Some(o.clone())))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn list_items(
    ctx: &RequestContext<'_>,
    query: &QueryOptions,
    items: Vec<ItemRow>,
) -> Result<Response, SapError> {
    list(
        ctx,
        query,
        (&SALES_ORDER_ITEM, &schema::entity_type),
        items,
        |(i, _)| i,
        |root, (i, o)| render::item_node(root, i, o.as_deref(), query),
    )
}

/// Reads the request body up to the configured limit; JSON content types only.
async fn read_body(ctx: &RequestContext<'_>, body: Body) -> Result<bytes::Bytes, SapError> {
    let too_large = || {
        SapError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!(
                "The request body exceeds the maximum size of {} bytes",
                ctx.app.config.max_body_bytes
            ),
        )
    };
    if let Some(ct) = ctx.headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.trim().is_empty() && !ct.starts_with("application/json") {
            return Err(SapError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::MEDIA_TYPE,
                format!("Content type '{ct}' is not supported; send application/json"),
            ));
        }
    }
    let declared = ctx
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > ctx.app.config.max_body_bytes) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, ctx.app.config.max_body_bytes)
        .await
        .map_err(|_| too_large())
}

async fn create_order(ctx: &RequestContext<'_>, body: Body) -> Result<Response, SapError> {
    let bytes = read_body(ctx, body).await?;
    let request = parse_sales_order_create(&bytes)?;
    let numbering = numbering::choose(
        request.header.get_str("SalesOrder"),
        &ctx.app.config.external_range,
    )?;
    let master = ctx.app.master.clone();
    let cz = ctx.app.customizing.clone();
    let user = ctx.principal.user.clone();
    let order = ctx
        .app
        .store
        .create(numbering, move |number| {
            build_order(&request, number, &master, &user, &cz, chrono::Utc::now())
        })
        .await
        .map_err(storage_failed)?
        .map_err(|refused| match refused {
            CreateRefused::Invalid(e) => e,
            CreateRefused::NumberTaken(n) => numbering::already_exists(n),
        })?;
    record(Event::OrderCreated(order.number(), order.items.len()));
    let root = ctx.service_root();
    let mut r = json(
        StatusCode::CREATED,
        &single(render::created_order_node(&root, &order)),
    );
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&render::order_uri(&root, &order)) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&render::etag(&order)) {
        h.insert(header::ETAG, v);
    }
    // S/4 reports the save as a success message in the `sap-message` header
    let saved = serde_json::json!({
        "code": "V1/311",
        "message": format!("Standard Order {} has been saved", order.number()),
        "longtext_url": "",
        "target": "",
        "numericSeverity": 1,
        "severity": "success",
        "transition": true,
        "details": [],
    });
    if let Ok(v) = HeaderValue::from_str(&saved.to_string()) {
        h.insert("sap-message", v);
    }
    Ok(r)
}

/// What `If-Match` says about the current ETag.
fn if_match(headers: &HeaderMap, current: &str) -> Option<bool> {
    let sent = headers
        .get(header::IF_MATCH)?
        .to_str()
        .ok()?
        .trim()
        .to_owned();
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_owned();
    Some(sent == "*" || strip(&sent) == strip(current))
}

/// `A_SalesOrder` has an ETag (`LastChangeDateTime`, `ConcurrencyMode="Fixed"` in S/4's
/// metadata): with `SAP_MOCK_REQUIRE_IF_MATCH` (default on, as S/4) a change or delete without
/// `If-Match` is refused with 428 before anything is read.
fn require_if_match(ctx: &RequestContext<'_>) -> Result<(), SapError> {
    if ctx.app.config.require_if_match && ctx.headers.get(header::IF_MATCH).is_none() {
        return Err(SapError::new(
            StatusCode::PRECONDITION_REQUIRED,
            codes::PRECONDITION_REQUIRED,
            "Precondition required: send If-Match with the entity's ETag",
        ));
    }
    Ok(())
}

fn precondition_failed() -> SapError {
    SapError::new(
        StatusCode::PRECONDITION_FAILED,
        codes::PRECONDITION_FAILED,
        "The entity was changed by another user (ETag mismatch); read it again",
    )
}

async fn update_order(
    ctx: &RequestContext<'_>,
    number: &str,
    body: Body,
) -> Result<Response, SapError> {
    let bytes = read_body(ctx, body).await?;
    let changes = parse_update(&bytes, &SALES_ORDER)?;
    let headers = ctx.headers.clone();
    require_if_match(ctx)?;
    let replace = ctx.method == Method::PUT;
    let (updated, ()) = ctx
        .app
        .store
        .update(number, move |order: &mut Order| {
            if if_match(&headers, &render::etag(order)) == Some(false) {
                return Err(precondition_failed());
            }
            apply_update(order, &changes, replace, chrono::Utc::now())
        })
        .await
        .map_err(storage_failed)?
        .ok_or_else(|| SapError::document_not_found(number))??;
    record(Event::OrderUpdated(number));
    Ok(no_content_with_etag(&updated))
}

fn no_content_with_etag(order: &Order) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&render::etag(order)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// What an item write does to its order.
enum ItemWrite {
    Add(sap_odata::payload::PropertyMap),
    Change(String, sap_odata::payload::PropertyMap, bool),
    Remove(String),
}

/// Adds, changes or removes an item. Items carry no ETag of their own; an `If-Match`, when
/// sent, is checked against the order's.
async fn write_item(
    ctx: &RequestContext<'_>,
    number: &str,
    write: ItemWrite,
) -> Result<Response, SapError> {
    let headers = ctx.headers.clone();
    let master = ctx.app.master.clone();
    let cz = ctx.app.customizing.clone();
    let (order, item_no) = ctx
        .app
        .store
        .update(number, move |order: &mut Order| {
            if if_match(&headers, &render::etag(order)) == Some(false) {
                return Err(precondition_failed());
            }
            let now = chrono::Utc::now();
            match write {
                ItemWrite::Add(sent) => add_item(order, &sent, &master, &cz, now),
                ItemWrite::Change(item, changes, replace) => {
                    change_item(order, &item, &changes, replace, &master, &cz, now).map(|()| item)
                }
                ItemWrite::Remove(item) => remove_item(order, &item, &cz, now).map(|()| item),
            }
        })
        .await
        .map_err(storage_failed)?
        .ok_or_else(|| SapError::document_not_found(number))??;
    record(Event::OrderUpdated(number));
    if ctx.method != Method::POST {
        return Ok(no_content_with_etag(&order));
    }
    let root = ctx.service_root();
    let item = order
        .items
        .iter()
        .find(|i| i.get_str("SalesOrderItem") == item_no)
        .ok_or_else(SapError::internal)?;
    let uri = entity_uri(&root, &SALES_ORDER_ITEM, &[order.number(), &item_no]);
    let node = render::item_node(&root, item, Some(&order), &QueryOptions::default());
    let mut r = json(StatusCode::CREATED, &single(node));
    if let Ok(v) = HeaderValue::from_str(&uri) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn delete_order(ctx: &RequestContext<'_>, number: &str) -> Result<Response, SapError> {
    require_if_match(ctx)?;
    let headers = ctx.headers.clone();
    ctx.app
        .store
        .delete(number, move |order| {
            if if_match(&headers, &render::etag(order)) == Some(false) {
                return Err(precondition_failed());
            }
            crate::sales_order::check_deletable(order)
        })
        .await
        .map_err(storage_failed)?
        .ok_or_else(|| SapError::document_not_found(number))??;
    record(Event::OrderDeleted(number));
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &str) -> QueryOptions {
        QueryOptions::parse(raw).unwrap()
    }

    #[test]
    fn paging_cuts_at_the_page_size_and_hands_out_a_skiptoken() {
        assert_eq!(page(10, &q(""), 4).unwrap(), (0, 4, Some(4)));
        assert_eq!(page(10, &q("$skiptoken=4"), 4).unwrap(), (4, 8, Some(8)));
        assert_eq!(page(10, &q("$skiptoken=8"), 4).unwrap(), (8, 10, None));
        assert_eq!(page(10, &q("$top=5"), 4).unwrap(), (0, 4, Some(4)));
        assert_eq!(
            page(10, &q("$top=5&$skiptoken=4"), 4).unwrap(),
            (4, 5, None)
        );
        assert_eq!(page(10, &q("$skip=3&$top=2"), 4).unwrap(), (3, 5, None));
        assert_eq!(page(10, &q("$skip=30"), 4).unwrap(), (10, 10, None));
        assert!(page(10, &q("$skiptoken=x"), 4).is_err());
    }
}
