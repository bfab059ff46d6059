//! `orderctl backfill`: copies SAP's existing sales orders into the order service, so the new
//! system holds the history before it takes over a route (phase 3).
//!
//! 1. Read every SAP sales order with its items (OData, paged) and every order of the order
//!    service; pair them as `orderctl reconcile` does. Only SAP orders nothing pairs with are
//!    copied: orders dual write already placed on both sides, or an earlier backfill copied,
//!    are left alone.
//! 2. Translate each through the anti-corruption layer (`order-acl`), the same one the proxy's
//!    dual write uses: every SAP property without a modern home is kept in `specifications`,
//!    SAP's own number included. Navigation links (`__deferred`) are not data and are dropped.
//! 3. Create it with `Idempotency-Key: backfill-sap-<SalesOrder>` (the same text as its
//!    correlation id, which is for tracing only): a second run, a concurrent run, or a run
//!    after a crash gets the first order back instead of creating another. The copy also keeps
//!    SAP's `SalesOrder` in its `specifications`, by which reconciliation pairs it with its
//!    source even before its link is set; and the link (step 4) is unique in the order service.
//! 4. Link SAP's number to it (idempotent in the order service).
//!
//! Pairs the order service holds without SAP's number (a backfill or a dual write interrupted
//! between its create and its link) are linked too, as `orderctl reconcile --repair-links`
//! does: a backfill that crashed half-way is finished by running it again.
//!
//! A copied order starts as `created`; SAP's processing statuses travel in `specifications`.
//! Each create and link publishes its events through the outbox like any other change.

use std::collections::HashMap;

use anyhow::Context;
use futures::stream::{self, StreamExt};
use order_acl::TranslateOptions;
use serde_json::Value;

use crate::reconcile::{self, BACKFILL_KEY_PREFIX};

/// Options of `backfill`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoints: reconcile::Endpoints,
    /// Currency for SAP orders that name none (SAP takes it from the customer master).
    #[arg(long, default_value = "EUR")]
    default_currency: String,
    /// Orders copied at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Only list what would be copied.
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What a run did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// SAP orders read.
    pub sap_orders: usize,
    /// SAP orders the order service already holds (paired).
    pub already_present: usize,
    /// SAP numbers copied in this run (or, with `--dry-run`, that would be).
    pub copied: Vec<String>,
    /// SAP numbers set on orders already present that lacked them (or, with `--dry-run`,
    /// that would be).
    pub linked: Vec<String>,
    /// SAP numbers whose linked order lacked what SAP derived (total, net amounts) and was
    /// given SAP's pricing (or, with `--dry-run`, would be).
    pub priced: Vec<String>,
    /// (SAP number, why) of the orders that could not be copied.
    pub failed: Vec<(String, String)>,
}

/// Runs the command; exits with status 1 when an order could not be copied.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let outcome = backfill(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!(
            "SAP orders: {}   already in the order service: {}   {}: {}   {}: {}   {}: {}   failed: {}",
            outcome.sap_orders,
            outcome.already_present,
            if args.dry_run { "to copy" } else { "copied" },
            outcome.copied.len(),
            if args.dry_run { "to link" } else { "linked" },
            outcome.linked.len(),
            if args.dry_run { "to price" } else { "priced" },
            outcome.priced.len(),
            outcome.failed.len()
        );
        for (number, why) in &outcome.failed {
            println!("not copied: SAP order {number}: {why}");
        }
    }
    if !outcome.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

async fn backfill(args: &Args) -> anyhow::Result<Outcome> {
    let client = reqwest::Client::new();
    let ends = &args.endpoints;
    let orders_url = ends.orders();
    let entities = reconcile::fetch_sap_entities(&ends.sap()?, None).await?;
    let new = reconcile::fetch_orders(&client, orders_url).await?;
    let sap: Vec<reconcile::SapOrder> = entities.iter().map(reconcile::sap_order).collect();
    let report = reconcile::reconcile(&sap, &new);
    let by_number: HashMap<&str, &Value> = sap
        .iter()
        .map(|o| o.number.as_str())
        .zip(&entities)
        .collect();
    let mut outcome = Outcome {
        sap_orders: entities.len(),
        already_present: entities.len() - report.missing_in_order_service.len(),
        ..Outcome::default()
    };
    if args.dry_run {
        outcome.copied = report.missing_in_order_service;
        outcome.linked = report.unlinked.into_iter().map(|u| u.sap_number).collect();
        outcome.priced = report.unpriced.into_iter().map(|u| u.sap_number).collect();
        return Ok(outcome);
    }
    // Pairs without SAP's number get it, and pairs lacking what SAP derived get SAP's
    // pricing: the same idempotent link, with SAP's pricing in both cases.
    for (pairs, done) in [
        (&report.unlinked, &mut outcome.linked),
        (&report.unpriced, &mut outcome.priced),
    ] {
        for u in pairs {
            match reconcile::link_sap_number(
                &client,
                orders_url,
                &u.order_id,
                &u.sap_number,
                u.pricing.as_ref(),
            )
            .await
            {
                Ok(()) => done.push(u.sap_number.clone()),
                Err(e) => outcome
                    .failed
                    .push((u.sap_number.clone(), format!("{e:#}"))),
            }
        }
    }
    let opts = TranslateOptions {
        default_currency: args.default_currency.clone(),
    };
    let progress = crate::progress::Progress::new(
        "orders copied",
        report.missing_in_order_service.len() as u64,
        !args.json,
    );
    let results: Vec<(String, anyhow::Result<()>)> = stream::iter(report.missing_in_order_service)
        .map(|number| {
            let entity = by_number[number.as_str()];
            let (client, opts, progress) = (&client, &opts, &progress);
            async move {
                let done = copy_one(client, orders_url, &number, entity, opts).await;
                progress.inc();
                (number, done)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    progress.finish();
    for (number, result) in results {
        match result {
            Ok(()) => outcome.copied.push(number),
            Err(e) => outcome.failed.push((number, format!("{e:#}"))),
        }
    }
    outcome.copied.sort();
    outcome.linked.sort();
    outcome.priced.sort();
    outcome.failed.sort();
    Ok(outcome)
}

/// Creates one SAP order in the order service and links SAP's number to it.
async fn copy_one(
    client: &reqwest::Client,
    orders_url: &str,
    number: &str,
    entity: &Value,
    opts: &TranslateOptions,
) -> anyhow::Result<()> {
    let body = create_body(entity, opts)?;
    let key = format!("{BACKFILL_KEY_PREFIX}{number}");
    let r = client
        .post(format!("{orders_url}/api/v1/orders"))
        .header("idempotency-key", &key)
        .header("x-correlation-id", &key)
        .json(&body)
        .send()
        .await
        .context("creating the order")?;
    let status = r.status();
    let created: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!("the order service refused it ({status}): {created}");
    }
    let id = created["id"]
        .as_str()
        .context("the order service's answer has no id")?;
    reconcile::link_sap_number(
        client,
        orders_url,
        id,
        number,
        order_acl::sap_pricing(entity).as_ref(),
    )
    .await
    .with_context(|| format!("created as {id}, but not linked"))
}

/// The order service's create body for an SAP entity as OData returns it.
pub fn create_body(entity: &Value, opts: &TranslateOptions) -> anyhow::Result<Value> {
    let mut entity = entity.clone();
    drop_navigation_links(&mut entity);
    if let Some(items) = entity.get_mut("to_Item").and_then(|i| i.get_mut("results"))
        && let Some(items) = items.as_array_mut()
    {
        items.iter_mut().for_each(drop_navigation_links);
    }
    // SAP answers "" for a currency it takes from the customer master.
    if entity["TransactionCurrency"] == "" {
        entity
            .as_object_mut()
            .map(|o| o.remove("TransactionCurrency"));
    }
    order_acl::deep_insert_to_order(&entity, opts).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Removes the properties that are links to other entities, not data (`{"__deferred": ...}`).
fn drop_navigation_links(entity: &mut Value) {
    if let Some(o) = entity.as_object_mut() {
        o.retain(|_, v| v.get("__deferred").is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_sap_entity_becomes_a_create_body_with_every_property_kept_and_no_links() {
        let entity = json!({
            "__metadata": {"uri": "…/A_SalesOrder('7')", "type": "API_SALES_ORDER_SRV.A_SalesOrderType"},
            "SalesOrder": "7",
            "SalesOrderType": "OR",
            "SalesOrganization": "1010",
            "SoldToParty": "17100001",
            "PurchaseOrderByCustomer": "PO-7",
            "TransactionCurrency": "",
            "OverallSDProcessStatus": "A",
            "to_Partner": {"__deferred": {"uri": "…/to_Partner"}},
            "to_Item": {"results": [{
                "SalesOrder": "7", "SalesOrderItem": "10", "Material": "TG11",
                "RequestedQuantity": "2", "RequestedQuantityUnit": "PC", "NetAmount": "25.00",
                "to_SalesOrder": {"__deferred": {"uri": "…"}}
            }]}
        });
        let body = create_body(
            &entity,
            &TranslateOptions {
                default_currency: "USD".into(),
            },
        )
        .unwrap();
        assert_eq!(body["customer_id"], "17100001");
        assert_eq!(body["customer_reference"], "PO-7");
        assert_eq!(
            body["currency"], "USD",
            "an empty currency takes the default"
        );
        assert_eq!(body["specifications"]["SalesOrder"], "7");
        assert_eq!(body["specifications"]["OverallSDProcessStatus"], "A");
        assert!(body["specifications"].get("to_Partner").is_none());
        let item = &body["items"][0];
        assert_eq!(
            (&item["sku"], &item["quantity"]),
            (&json!("TG11"), &json!("2"))
        );
        assert_eq!(item["specifications"]["NetAmount"], "25.00");
        assert!(item["specifications"].get("to_SalesOrder").is_none());
    }
}
