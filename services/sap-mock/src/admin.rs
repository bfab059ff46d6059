//! The admin endpoint: fault knobs at runtime, counts, master data, health.
//!
//! - `GET /sap-mock/admin/faults`: the knobs in force.
//! - `PUT /sap-mock/admin/faults`: replace them (omitted fields take their defaults).
//! - `PATCH /sap-mock/admin/faults`: change only the fields sent.
//! - `DELETE /sap-mock/admin/faults`: back to the settings the process started with.
//! - `GET /sap-mock/admin/stats`: orders, items, next number, open sessions, hung requests.
//! - `GET /sap-mock/admin/master-data`: the catalogue in force.
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
