//! `POST .../$batch`: several requests in one `multipart/mixed` body, as OData V2 defines it
//! (odata.org, "Batch Processing", V2) and SAP Gateway answers it.
//!
//! The body is a sequence of parts: a retrieve request (`application/http`, a `GET`) or a
//! changeset (`multipart/mixed` with its own boundary) of change requests. Each part is served
//! exactly as the same request sent alone would be ([`crate::odata::serve`]), with the logon,
//! client and CSRF check of the `$batch` request itself. A changeset is atomic: its changes run
//! inside one [`Store::changeset`](crate::store::Store::changeset), and if one fails nothing of
//! the changeset is stored and its answer is that single error response. The answer is
//! `202 Accepted` with one `multipart/mixed` part per request part, in order.
//!
//! Content-ID referencing: a change with `Content-ID: n` that creates an entity can be named
//! `$n` by the URL of a later change of the same changeset.
//!
//! The wire format (boundaries, parts, embedded requests, the multipart answer) is the shared
//! [`sap_odata::batch`], which the proxy's `$batch` face parses and renders with too; this
//! module owns only what running the parts means here.

use std::collections::HashMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use sap_odata::batch::{
    AnswerPart, BatchError, BatchPart, PartRequest, ResponsePart, answer_content_type, boundary_of,
    parse, render_answer, resolve_target,
};

use crate::error::{SapError, codes};
use crate::events::{Event, record};
use crate::odata::{RequestContext, effective_method, serve as serve_one};
use crate::store::ChangesetOutcome;

/// A wire-format refusal as the emulator's OData error (`400`, Gateway's batch message id).
fn refused(e: BatchError) -> SapError {
    SapError::bad_request(e.sap_code(), e.to_string())
}

/// Answers `POST .../$batch`.
pub(crate) async fn serve(ctx: &RequestContext<'_>, body: Body) -> Result<Response, SapError> {
    if ctx.method != Method::POST {
        return Err(SapError::method_not_allowed(ctx.method.as_str()));
    }
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = boundary_of(content_type).ok_or_else(|| refused(BatchError::NotMultipart))?;
    let max = ctx.app.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|_| {
        SapError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!("The request body exceeds the maximum size of {max} bytes"),
        )
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| refused(BatchError::NotUtf8))?;
    let parts = parse(text, &boundary).map_err(refused)?;

    let mut answers = Vec::with_capacity(parts.len());
    for part in &parts {
        answers.push(match part {
            BatchPart::Request(r) => {
                let response = if r.is_retrieve() {
                    run_part(ctx, r, &HashMap::new()).await
                } else {
                    refused(BatchError::ChangeOutsideChangeset {
                        method: r.method.clone(),
                    })
                    .into_response()
                };
                AnswerPart::Response(response_part(response).await)
            }
            BatchPart::Changeset(requests) => run_changeset(ctx, requests).await?,
        });
    }
    let answer_boundary = format!("batch_{}", uuid::Uuid::new_v4());
    let mut r = (
        StatusCode::ACCEPTED,
        render_answer(&answer_boundary, &answers),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&answer_content_type(&answer_boundary)) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(r)
}

/// Runs a changeset inside one store changeset; answers the changeset of its responses, or
/// the first failure alone (and nothing stored).
async fn run_changeset(
    ctx: &RequestContext<'_>,
    requests: &[PartRequest],
) -> Result<AnswerPart, SapError> {
    let work = async {
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut responses = Vec::new();
        for r in requests {
            let response = if r.is_retrieve() {
                refused(BatchError::RetrieveInChangeset).into_response()
            } else {
                run_part(ctx, r, &ids).await
            };
            if response.status().is_client_error() || response.status().is_server_error() {
                return (Err(response), ChangesetOutcome::Discard);
            }
            if let (Some(id), Some(location)) = (
                &r.content_id,
                response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok()),
            ) && let Some((_, below)) = location.split_once(ctx.root)
            {
                ids.insert(id.clone(), below.to_owned());
            }
            responses.push(response);
        }
        (Ok(responses), ChangesetOutcome::Commit)
    };
    let outcome = ctx.app.store.changeset(work).await.map_err(|e| {
        tracing::error!(error = %e, "sap_mock_storage_failed");
        SapError::internal()
    })?;
    Ok(match outcome {
        Err(failed) => AnswerPart::Response(response_part(failed).await),
        Ok(responses) => {
            let mut parts = Vec::with_capacity(responses.len());
            for r in responses {
                parts.push(response_part(r).await);
            }
            AnswerPart::Changeset {
                boundary: format!("changeset_{}", uuid::Uuid::new_v4()),
                responses: parts,
            }
        }
    })
}

/// Serves one part as if it had been sent alone, with the batch's logon; `$n` in its URL
/// names the entity created by the change with `Content-ID: n` (`ids`).
async fn run_part(
    ctx: &RequestContext<'_>,
    r: &PartRequest,
    ids: &HashMap<String, String>,
) -> Response {
    let answer = async {
        let (path, query) =
            resolve_target(ctx.root, &r.target, &|id| ids.get(id).cloned()).map_err(refused)?;
        let mut headers = HeaderMap::new();
        for (k, v) in &r.headers {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        if let Some(host) = ctx.headers.get(header::HOST) {
            headers.entry(header::HOST).or_insert(host.clone());
        }
        let method = Method::from_bytes(r.method.as_bytes()).map_err(|_| {
            refused(BatchError::UnknownMethod {
                method: r.method.clone(),
            })
        })?;
        let method = effective_method(&method, &headers);
        let inner = RequestContext {
            app: ctx.app,
            root: ctx.root,
            method: &method,
            headers: &headers,
            raw_path: &path,
            raw_query: &query,
            principal: ctx.principal,
        };
        serve_one(&inner, Body::from(r.body.clone())).await
    };
    match answer.await {
        Ok(r) => r,
        Err(e) => {
            record(Event::Refused(e.status.as_u16(), e.code));
            e.into_response()
        }
    }
}

/// A response as an answer part: status, the headers SAP carries in parts, the body.
async fn response_part(r: Response) -> ResponsePart {
    let (parts, body) = r.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    ResponsePart::of_answer(parts.status, &parts.headers, &body)
}
