//! SAP Gateway's repeatable requests, off unless `SAP_MOCK_REPEATABILITY=true` (on S/4 an
//! administrator enables them).
//!
//! A `POST` carrying `RequestID` (the client's GUID for the request) and `RepeatabilityCreation`
//! (when it was first created) runs once. Every repeat with the same `RequestID` within the
//! window gets the first answer again, byte for byte, instead of a second execution, and both
//! carry `RepeatabilityResult: accepted`. A repeat that arrives while the first is still running
//! waits for its answer. Answers that did not execute the request (logon failed, CSRF token
//! missing) are not remembered, so a corrected retry runs. Kept in memory: a restart forgets
//! them (documented limit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::OnceCell;

/// Response header naming how repeatability was handled.
pub const RESULT_HEADER: &str = "repeatabilityresult";

/// A remembered answer.
#[derive(Debug, Clone)]
pub struct Remembered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Remembered {
    /// Buffers `r` so it can be sent again.
    pub async fn from_response(r: Response) -> Self {
        let (parts, body) = r.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
            at: Instant::now(),
        }
    }

    /// The answer again, marked `RepeatabilityResult: accepted`.
    pub fn to_response(&self) -> Response {
        let mut r = Response::new(Body::from(self.body.clone()));
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers.clone();
        r.headers_mut()
            .insert(RESULT_HEADER, HeaderValue::from_static("accepted"));
        r
    }
}

/// The request ids seen within the window.
#[derive(Debug)]
pub struct Repeatability {
    window: Duration,
    seen: Mutex<HashMap<String, Arc<OnceCell<Remembered>>>>,
}

impl Repeatability {
    /// Remembers answers for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The slot of `request_id`: empty for a first request (or after the window), filled with
    /// the first answer for a repeat. Forgets answers older than the window.
    pub fn slot(&self, request_id: &str) -> Arc<OnceCell<Remembered>> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window;
        seen.retain(|_, cell| cell.get().is_none_or(|r| r.at.elapsed() < window));
        seen.entry(request_id.to_owned())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone()
    }
}

/// The `RequestID` of a repeatable request: both headers present, `RequestID` not empty.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    let id = headers.get("requestid")?.to_str().ok()?.trim();
    let created = headers.get("repeatabilitycreation")?.to_str().ok()?.trim();
    (!id.is_empty() && !created.is_empty() && id.len() <= 64).then(|| id.to_owned())
}

/// Whether an answer means the request was executed (and so must not run again).
pub fn executed(status: StatusCode) -> bool {
    !matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::SERVICE_UNAVAILABLE
    )
}
