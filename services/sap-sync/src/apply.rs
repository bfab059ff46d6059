//! Bringing SAP's order to the state one event carries: read SAP's order by key, plan
//! ([`crate::plan`]), make the first call, and again until the plan is empty. Each round reads
//! SAP afresh, so a lost answer, a `412` or a create SAP refuses as a number it has all end in
//! "SAP already has it" instead of a repeated effect.

use reqwest::Method;
use serde_json::Value;

use crate::plan::{self, Plan, Step};
use crate::sap::{CallContext, Sap, SapError, SapOrder, item_path};

/// How many read-plan-call rounds one event may take (a change has one or two calls; a
/// conflicting writer can cost a few more).
const MAX_ROUNDS: usize = 24;

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// SAP got `calls` calls (at least one).
    Changed {
        /// Calls made.
        calls: usize,
    },
    /// SAP already had it: a repeat (after a crash, a rebalance, a lost answer) recognised.
    AlreadyThere,
    /// Nothing for SAP (why).
    NotForSap(&'static str),
}

/// Why an event could not be applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    /// SAP refused the change: the order is parked.
    #[error("{0}")]
    Refused(SapError),
    /// SAP is not answering: try again later (nothing is known to be half-done that a retry
    /// would repeat: the retry reads first).
    #[error("{0}")]
    Unavailable(SapError),
}

fn classify(e: SapError) -> ApplyError {
    match e {
        SapError::Refused { .. } => ApplyError::Refused(e),
        other => ApplyError::Unavailable(other),
    }
}

/// Applies `desired` (an order snapshot as JSON). `try_create_first`: the event is the order's
/// first and no earlier attempt was made, so the create is sent without a read before it (SAP
/// refuses a number it has, and the read follows then): one call per new order.
pub async fn apply(
    sap: &Sap,
    desired: &Value,
    try_create_first: bool,
    ctx: &CallContext,
) -> Result<Applied, ApplyError> {
    let Some(number) = plan::sap_number(desired).map(str::to_owned) else {
        return Ok(Applied::NotForSap("the order has no number"));
    };
    let mut calls = 0usize;
    let mut duplicate = false;
    // A blind create names the number: only ours. An order known to SAP by SAP's own number
    // (a backfilled copy) is read first; SAP refuses a create of an internal number anyway.
    let ours = desired["order_number"].as_str() == Some(number.as_str());
    if try_create_first && ours && desired["status"].as_str() != Some("voided") {
        let body = plan::create_body(desired);
        match sap
            .write(
                Method::POST,
                "/A_SalesOrder",
                Some(&body),
                None,
                ctx,
                "create",
            )
            .await
        {
            Ok(_) => return Ok(Applied::Changed { calls: 1 }),
            Err(e) if e.is_number_taken() => duplicate = true,
            Err(e) => return Err(classify(e)),
        }
    }
    for _ in 0..MAX_ROUNDS {
        let current = sap.read(&number, ctx).await.map_err(classify)?;
        let steps = match plan::plan(desired, current.as_ref().map(|o| &o.entity)) {
            Plan::Nothing(why) => {
                return Ok(match (calls, current.is_some() || duplicate) {
                    (0, true) => {
                        metrics::counter!("sap_sync_duplicates_recognised_total").increment(1);
                        Applied::AlreadyThere
                    }
                    (0, false) => Applied::NotForSap(why),
                    (n, _) => Applied::Changed { calls: n },
                });
            }
            Plan::Steps(s) => s,
        };
        let Some(step) = steps.into_iter().next() else {
            continue;
        };
        match call(sap, &number, &step, current.as_ref(), ctx).await {
            Ok(()) => calls += 1,
            // Read again and plan again: someone else changed the order, or it exists.
            Err(SapError::Stale) => {}
            Err(e) if e.is_number_taken() => duplicate = true,
            Err(e) => return Err(classify(e)),
        }
    }
    Err(ApplyError::Unavailable(SapError::Unavailable(format!(
        "SAP's order {number} did not settle after {MAX_ROUNDS} rounds"
    ))))
}

fn etag_for(current: Option<&SapOrder>, item: Option<&str>) -> Option<String> {
    let order = current?;
    if let Some(no) = item
        && let Some(items) = order.entity["to_Item"]["results"].as_array()
        && let Some(e) = items
            .iter()
            .find(|i| {
                i["SalesOrderItem"]
                    .as_str()
                    .is_some_and(|s| s.trim_start_matches('0') == no)
            })
            .and_then(|i| i["__metadata"]["etag"].as_str())
    {
        return Some(e.to_owned());
    }
    order.etag.clone()
}

async fn call(
    sap: &Sap,
    number: &str,
    step: &Step,
    current: Option<&SapOrder>,
    ctx: &CallContext,
) -> Result<(), SapError> {
    let name = step.name();
    match step {
        Step::Create { body } => sap
            .write(Method::POST, "/A_SalesOrder", Some(body), None, ctx, name)
            .await
            .map(|_| ()),
        Step::ChangeHeader { fields } => sap
            .write(
                Method::PATCH,
                &format!("/A_SalesOrder('{number}')"),
                Some(&Value::Object(fields.clone())),
                etag_for(current, None).as_deref(),
                ctx,
                name,
            )
            .await
            .map(|_| ()),
        Step::ChangeItem { item, fields } => sap
            .write(
                Method::PATCH,
                &item_path(number, item),
                Some(&Value::Object(fields.clone())),
                etag_for(current, Some(item)).as_deref(),
                ctx,
                name,
            )
            .await
            .map(|_| ()),
        Step::AddItem { body } => sap
            .write(
                Method::POST,
                &format!("/A_SalesOrder('{number}')/to_Item"),
                Some(body),
                None,
                ctx,
                name,
            )
            .await
            .map(|_| ()),
        Step::DeleteItem { item } => sap
            .write(
                Method::DELETE,
                &item_path(number, item),
                None,
                etag_for(current, Some(item)).as_deref(),
                ctx,
                name,
            )
            .await
            .map(|_| ()),
    }
}
