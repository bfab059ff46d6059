//! The admin endpoint: fault knobs at runtime, counts, master data, health.
//!
//! - `GET /sap-mock/admin/faults`: the knobs in force.
//! - `PUT /sap-mock/admin/faults`: replace them (omitted fields take their defaults).
//! - `PATCH /sap-mock/admin/faults`: change only the fields sent.
//! - `DELETE /sap-mock/admin/faults`: back to the settings the process started with.
//! - `GET /sap-mock/admin/stats`: orders, items, next number, open sessions, hung requests.
//! - `GET /sap-mock/admin/master-data`: the catalogue in force.
//! - `POST /sap-mock/admin/deliveries`, `POST /sap-mock/admin/billing`: fulfilment steps; each
//!   creates a subsequent document on the order's document flow ([`crate::document_flow`]).
//! - `GET /sap-mock/health`: liveness.
//!
//! With `SAP_MOCK_ADMIN_TOKEN` set, every admin call needs `Authorization: Bearer <token>`.
//! Faults never apply here, so an operator can always switch them off.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;
use crate::faults::FaultSettings;

/// Middleware on every admin route: with `SAP_MOCK_ADMIN_TOKEN` set, the request must carry
/// `Authorization: Bearer <token>`; otherwise 401.
pub async fn require_token(
    State(app): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &app.config.admin_token {
        let sent = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(token.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "admin token required"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

fn bad(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.to_string()})),
    )
        .into_response()
}

/// `GET /sap-mock/admin/faults`.
pub async fn get_faults(State(app): State<Arc<AppState>>) -> Response {
    Json(app.faults.current()).into_response()
}

/// `PUT /sap-mock/admin/faults`.
pub async fn put_faults(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let settings: FaultSettings = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    store_faults(&app, settings)
}

/// `PATCH /sap-mock/admin/faults`.
pub async fn patch_faults(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let changes: Value = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => Value::Object(m),
        Ok(_) => return bad("expected a JSON object of fault settings"),
        Err(e) => return bad(e),
    };
    let mut merged = serde_json::to_value(app.faults.current()).unwrap_or_default();
    if let (Value::Object(target), Value::Object(changes)) = (&mut merged, changes) {
        target.extend(changes);
    }
    match serde_json::from_value::<FaultSettings>(merged) {
        Ok(s) => store_faults(&app, s),
        Err(e) => bad(e),
    }
}

fn store_faults(app: &AppState, settings: FaultSettings) -> Response {
    match app.faults.replace(settings) {
        Ok(s) => {
            tracing::info!(faults = ?s, "sap_mock_faults_changed");
            Json(s).into_response()
        }
        Err(e) => bad(e),
    }
}

/// `DELETE /sap-mock/admin/faults`.
pub async fn reset_faults(State(app): State<Arc<AppState>>) -> Response {
    let s = app.faults.reset();
    tracing::info!(faults = ?s, "sap_mock_faults_reset");
    Json(s).into_response()
}

/// `GET /sap-mock/admin/stats`.
pub async fn stats(State(app): State<Arc<AppState>>) -> Response {
    let (orders, items) = app.store.counts().await;
    let next = app.store.next_number().ok();
    Json(json!({
        "orders": orders,
        "items": items,
        "next_sales_order": next.map(|n| n.to_string()),
        "sessions": app.sessions.len(),
        "hanging_requests": app.hanging.load(std::sync::atomic::Ordering::SeqCst),
    }))
    .into_response()
}

/// `GET /sap-mock/admin/master-data`.
pub async fn master_data(State(app): State<Arc<AppState>>) -> Response {
    Json(app.master.as_ref().clone()).into_response()
}

/// `GET /sap-mock/health`.
pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// The body of the fulfilment calls: `{"SalesOrder":"..."}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FulfilmentRequest {
    #[serde(rename = "SalesOrder")]
    sales_order: String,
}

/// Which fulfilment step to simulate.
#[derive(Debug, Clone, Copy)]
enum Step {
    Delivery,
    Billing,
}

/// `POST /sap-mock/admin/deliveries {"SalesOrder":"..."}`: delivers every open item not
/// rejected (delivery and goods issue in one step), as S/4 would after shipping.
pub async fn deliver(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    fulfil(&app, &body, Step::Delivery).await
}

/// `POST /sap-mock/admin/billing {"SalesOrder":"..."}`: bills the order's items not rejected
/// (delivery-related billing needs them delivered first).
pub async fn bill(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    fulfil(&app, &body, Step::Billing).await
}

async fn fulfil(app: &AppState, body: &[u8], step: Step) -> Response {
    use crate::document_flow::{record_billing, record_delivery};
    use crate::sales_order::{Fulfilment, bill, deliver};
    let request: FulfilmentRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let number = request.sales_order.trim().to_owned();
    let cz = app.customizing.clone();
    let outcome = app
        .store
        .fulfil(&number, move |order, numbers| {
            let now = chrono::Utc::now();
            let done = match step {
                Step::Delivery => deliver(order, &cz, now),
                Step::Billing => bill(order, &cz, now),
            }
            .map_err(|e| e.message)?;
            match done {
                // the step's document goes on the order's document flow
                Fulfilment::Done(items) => {
                    let document = match step {
                        Step::Delivery => {
                            let n = numbers.draw_delivery();
                            record_delivery(order, &items, &n, &cz, now);
                            n
                        }
                        Step::Billing => {
                            let n = numbers.draw_billing_document();
                            record_billing(order, &items, &n, &cz, now);
                            n
                        }
                    };
                    Ok((items, document))
                }
                Fulfilment::NothingOpen => {
                    Err("no item of the order is open for this step".to_owned())
                }
                Fulfilment::NotDelivered(items) => Err(format!(
                    "delivery-related billing needs the items delivered first; not delivered: {}",
                    items.join(", ")
                )),
            }
        })
        .await;
    let conflict =
        |message: String| (StatusCode::CONFLICT, Json(json!({"error": message}))).into_response();
    match outcome {
        Err(e) => {
            tracing::error!(error = %e, "sap_mock_storage_failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "storage failed"})),
            )
                .into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("sales order {number} does not exist")})),
        )
            .into_response(),
        Ok(Some(Err(message))) => conflict(message),
        Ok(Some(Ok((order, (items, document))))) => {
            crate::events::record(crate::events::Event::OrderUpdated(&number));
            let h = &order.header;
            Json(json!({
                "SalesOrder": order.number(),
                "items": items,
                // the outbound delivery or invoice created, as on the order's document flow
                "SubsequentDocument": document,
                "OverallDeliveryStatus": h.get_str("OverallDeliveryStatus"),
                "OverallSDProcessStatus": h.get_str("OverallSDProcessStatus"),
                "OverallOrdReltdBillgStatus": h.get_str("OverallOrdReltdBillgStatus"),
                "LastChangeDateTime": h.get("LastChangeDateTime").to_json(),
            }))
            .into_response()
        }
    }
}
