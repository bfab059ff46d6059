//! `orderctl reconcile`: proves that SAP and the order service agree, order by order.
//!
//! Both sides are read in full through their public APIs (SAP's OData `A_SalesOrder` with its
//! items, paged; the order service's `/api/v1/orders`, keyset-paged). Orders are paired by the
//! link the migration keeps: the SAP number linked to the new order (dual write), else the same
//! number on both sides (a number reserved from SAP's external range names the order in both),
//! SAP's `ExternalDocumentID` carrying our correlation id (the proxy's stamp) or our order number
//! (sap-sync's stamp), or, for orders `orderctl backfill` copied from SAP, SAP's `SalesOrder`
//! kept in their `specifications` (and, for copies made before the backfill used an
//! Idempotency-Key, the SAP number in their correlation id `backfill-sap-<SalesOrder>`). Then:
//!
//! - **missing in SAP**: a live new order (not voided) with no SAP partner;
//! - **missing in the order service**: an SAP order no new order pairs with;
//! - **duplicates**: several SAP orders claiming the same new order;
//! - **mismatches**: paired orders whose customer, reference, currency, total or items (material,
//!   quantity, unit, net amount) differ. Pairs that differ only in what SAP derives (amounts)
//!   are listed as **unpriced** too, and `--repair-links` gives them SAP's pricing.
//!
//! Pairs found only through the stamp, whose new order does not carry SAP's number, are listed
//! as **unlinked** (not drift: both systems hold the same order). The proxy links SAP's number
//! right after answering the client; a proxy killed in that millisecond leaves the link undone,
//! and `--repair-links` sets it through the order service's API.
//!
//! The drift (sum of all four) can be reported to the proxy, whose readiness criteria need a
//! fresh zero before a route moves forward.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::odata_read::SapReader;

/// Where the two systems are (shared by `reconcile` and `backfill`).
#[derive(clap::Args)]
pub struct Endpoints {
    /// SAP's base URL (the service path is appended): `http://` or `https://`.
    #[arg(long, env = "SAP_URL", default_value = "http://127.0.0.1:8082")]
    sap_url: String,
    /// For an `https` SAP: PEM file of the CA certificate(s) that sign SAP's certificate (then
    /// the only ones trusted); unset: the system's CA store.
    #[arg(long, env = "SAP_CA_FILE")]
    sap_ca_file: Option<std::path::PathBuf>,
    /// SAP user (basic authentication).
    #[arg(long, env = "SAP_USER")]
    sap_user: Option<String>,
    /// SAP password.
    #[arg(long, env = "SAP_PASSWORD", hide_env_values = true)]
    sap_password: Option<String>,
    /// The order service's base URL.
    #[arg(
        long,
        env = "ORDER_SERVICE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    orders_url: String,
}

impl Endpoints {
    /// SAP to read from (TLS for an `https` URL; a bad CA file is refused here, before any
    /// call).
    pub fn sap(&self) -> anyhow::Result<SapReader> {
        SapReader::new(&self.sap_url, self.sap_ca_file.as_ref(), self.sap_auth())
    }

    /// The order service's base URL without a trailing slash.
    pub fn orders(&self) -> &str {
        self.orders_url.trim_end_matches('/')
    }

    /// SAP's basic-authentication credentials, when both are given.
    pub fn sap_auth(&self) -> Option<(&str, &str)> {
        match (&self.sap_user, &self.sap_password) {
            (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
            _ => None,
        }
    }
}

/// Options of `reconcile`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoints: Endpoints,
    /// Report the drift of this route to the proxy's admin API.
    #[arg(long)]
    report_route: Option<String>,
    /// The proxy's admin API.
    #[arg(long, env = "PROXY_ADMIN_URL", default_value = "http://127.0.0.1:9080")]
    admin_url: String,
    /// Bearer token of the admin API.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when there is any drift.
    #[arg(long)]
    fail_on_drift: bool,
    /// Link SAP's number to every unlinked new order (`PUT .../sap-order-number`).
    #[arg(long)]
    repair_links: bool,
}

/// Prefix of the `Idempotency-Key` (and correlation id) of the creates `orderctl backfill` makes;
/// the rest is the SAP order's number. The key makes a backfill run again (even after a crash
/// between create and link, or two at once) create nothing twice. Copies made before the key
/// was used carry the prefix only in their correlation id, which reconciliation still reads
/// (correlation ids are for tracing and never deduplicate).
pub const BACKFILL_KEY_PREFIX: &str = "backfill-sap-";

/// The SAP service root below the base URL.
const SAP_SERVICE: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";

/// The fields compared between the systems, with their item lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparable {
    /// SAP `SoldToParty` / `customer_id`.
    pub customer: String,
    /// SAP `PurchaseOrderByCustomer` / `customer_reference`.
    pub reference: String,
    /// SAP `TransactionCurrency` / `currency` (empty when SAP left it to the customer master).
    pub currency: String,
    /// SAP `TotalNetAmount` / `total_net_amount`, normalized (empty when absent).
    pub total: String,
    /// (material, quantity, unit, net amount) per item, in item order, decimals normalized.
    pub items: Vec<(String, String, String, String)>,
}

/// An SAP sales order as reconciliation sees it.
#[derive(Debug, Clone)]
pub struct SapOrder {
    /// `SalesOrder`.
    pub number: String,
    /// `ExternalDocumentID`.
    pub external_id: String,
    /// Compared fields.
    pub fields: Comparable,
    /// What SAP derived (currency, prices, net amounts) in the order service's terms, adopted
    /// with a link (`order_acl::sap_pricing`).
    pub pricing: Option<Value>,
}

/// A new order as reconciliation sees it.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// `id`.
    pub id: String,
    /// `order_number`.
    pub number: String,
    /// `correlation_id`.
    pub correlation_id: String,
    /// `sap_order_number`.
    pub sap_number: Option<String>,
    /// `specifications.SalesOrder`: the SAP order a backfill copied this one from.
    pub copied_from: Option<String>,
    /// `status`.
    pub status: String,
    /// Compared fields.
    pub fields: Comparable,
}

/// What reconciliation found.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// SAP orders read.
    pub sap_orders: usize,
    /// New orders read (voided ones included).
    pub new_orders: usize,
    /// Pairs found.
    pub paired: usize,
    /// New order numbers without an SAP partner.
    pub missing_in_sap: Vec<String>,
    /// SAP numbers without a new partner.
    pub missing_in_order_service: Vec<String>,
    /// New order number → the SAP numbers that claim it (more than one).
    pub duplicates: BTreeMap<String, Vec<String>>,
    /// (new order number, SAP number, differing fields).
    pub mismatches: Vec<(String, String, Vec<String>)>,
    /// Pairs found through the stamp only, the new order not carrying SAP's number yet.
    pub unlinked: Vec<Unlinked>,
    /// Linked pairs that differ only in what SAP derives (total, net amounts): counted as
    /// mismatches, and repaired by linking again with SAP's pricing (`--repair-links`).
    pub unpriced: Vec<Unlinked>,
}

/// A pair whose link is missing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unlinked {
    /// The new order's id.
    pub order_id: String,
    /// Its order number.
    pub order_number: String,
    /// The SAP order that carries its stamp.
    pub sap_number: String,
    /// SAP's pricing, adopted with the link.
    #[serde(skip)]
    pub pricing: Option<Value>,
}

impl Report {
    /// Orders missing, duplicated or mismatched.
    pub fn drift(&self) -> usize {
        self.missing_in_sap.len()
            + self.missing_in_order_service.len()
            + self.duplicates.values().map(|v| v.len() - 1).sum::<usize>()
            + self.mismatches.len()
    }
}

/// Decimal text normalized for comparison (`"2.000"` and `"2"` are the same quantity).
/// Text that is not a plain decimal is compared as it is.
fn normalize_decimal(raw: &str) -> String {
    let raw = raw.trim();
    if f64::from_str(raw).is_err() || raw.contains(['e', 'E', '-', '+']) {
        return raw.to_owned();
    }
    let (int, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let frac = frac.trim_end_matches('0');
    let int = match int.trim_start_matches('0') {
        "" => "0",
        digits => digits,
    };
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

/// Pairs the two sides and lists every difference.
pub fn reconcile(sap: &[SapOrder], new: &[NewOrder]) -> Report {
    let mut report = Report {
        sap_orders: sap.len(),
        new_orders: new.len(),
        ..Report::default()
    };
    let by_sap_number: HashMap<&str, &SapOrder> =
        sap.iter().map(|o| (o.number.as_str(), o)).collect();
    let mut by_external: HashMap<&str, Vec<&SapOrder>> = HashMap::new();
    for o in sap.iter().filter(|o| !o.external_id.is_empty()) {
        by_external
            .entry(o.external_id.as_str())
            .or_default()
            .push(o);
    }
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    for order in new {
        let mut partners: Vec<&SapOrder> = Vec::new();
        if let Some(linked) = order
            .sap_number
            .as_deref()
            .and_then(|n| by_sap_number.get(n))
        {
            partners.push(linked);
        }
        let sources = [
            Some(order.number.as_str()),
            order.copied_from.as_deref(),
            order.correlation_id.strip_prefix(BACKFILL_KEY_PREFIX),
        ];
        for number in sources.into_iter().flatten() {
            if let Some(source) = by_sap_number.get(number)
                && !partners.iter().any(|p| p.number == source.number)
            {
                partners.push(source);
            }
        }
        for key in [order.correlation_id.as_str(), order.number.as_str()] {
            for o in by_external.get(key).into_iter().flatten() {
                if !partners.iter().any(|p| p.number == o.number) {
                    partners.push(o);
                }
            }
        }
        let live = order.status != "voided";
        match partners.as_slice() {
            [] if live => report.missing_in_sap.push(order.number.clone()),
            [] => {}
            [first, rest @ ..] => {
                for p in &partners {
                    claimed.insert(p.number.as_str(), order.number.as_str());
                }
                if !rest.is_empty() {
                    report.duplicates.insert(
                        order.number.clone(),
                        partners.iter().map(|p| p.number.clone()).collect(),
                    );
                }
                if !live {
                    // A voided order must not exist in SAP: its partner is drift.
                    report.mismatches.push((
                        order.number.clone(),
                        first.number.clone(),
                        vec!["voided here but present in SAP".into()],
                    ));
                    continue;
                }
                report.paired += 1;
                let pair = || Unlinked {
                    order_id: order.id.clone(),
                    order_number: order.number.clone(),
                    sap_number: first.number.clone(),
                    pricing: first.pricing.clone(),
                };
                if order.sap_number.is_none() && rest.is_empty() {
                    report.unlinked.push(pair());
                }
                let diffs = differences(&order.fields, &first.fields);
                if !diffs.is_empty()
                    && order.sap_number.as_deref() == Some(first.number.as_str())
                    && only_amounts_differ(&order.fields, &first.fields)
                {
                    report.unpriced.push(pair());
                }
                if !diffs.is_empty() {
                    report
                        .mismatches
                        .push((order.number.clone(), first.number.clone(), diffs));
                }
            }
        }
    }
    report.missing_in_order_service = sap
        .iter()
        .filter(|o| !claimed.contains_key(o.number.as_str()))
        .map(|o| o.number.clone())
        .collect();
    report
}

fn differences(ours: &Comparable, sap: &Comparable) -> Vec<String> {
    let mut diffs = Vec::new();
    if ours.customer != sap.customer {
        diffs.push(format!("customer {} vs {}", ours.customer, sap.customer));
    }
    if ours.reference != sap.reference {
        diffs.push(format!(
            "reference {:?} vs {:?}",
            ours.reference, sap.reference
        ));
    }
    if !sap.currency.is_empty() && ours.currency != sap.currency {
        diffs.push(format!("currency {} vs {}", ours.currency, sap.currency));
    }
    if !sap.total.is_empty() && ours.total != sap.total {
        diffs.push(format!("total {:?} vs {:?}", ours.total, sap.total));
    }
    if ours.items != sap.items {
        diffs.push(format!("items {:?} vs {:?}", ours.items, sap.items));
    }
    diffs
}

/// True when the only differences are what SAP derives (total, item net amounts): the new
/// side lacks SAP's pricing, which a link with it repairs.
fn only_amounts_differ(ours: &Comparable, sap: &Comparable) -> bool {
    let strip = |c: &Comparable| Comparable {
        total: String::new(),
        items: c
            .items
            .iter()
            .map(|(m, q, u, _)| (m.clone(), q.clone(), u.clone(), String::new()))
            .collect(),
        ..c.clone()
    };
    differences(&strip(ours), &strip(sap)).is_empty()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// The fields reconciliation compares, from an SAP entity.
pub fn sap_order(v: &Value) -> SapOrder {
    let items = v["to_Item"]["results"]
        .as_array()
        .or_else(|| v["to_Item"].as_array())
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        text(i, "Material"),
                        normalize_decimal(&text(i, "RequestedQuantity")),
                        text(i, "RequestedQuantityUnit"),
                        normalize_decimal(&text(i, "NetAmount")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    SapOrder {
        number: text(v, "SalesOrder"),
        external_id: text(v, "ExternalDocumentID"),
        fields: Comparable {
            customer: text(v, "SoldToParty"),
            reference: text(v, "PurchaseOrderByCustomer"),
            currency: text(v, "TransactionCurrency"),
            total: normalize_decimal(&text(v, "TotalNetAmount")),
            items,
        },
        pricing: order_acl::sap_pricing(v),
    }
}

fn new_order(v: &Value) -> NewOrder {
    let items = v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        text(i, "sku"),
                        normalize_decimal(&text(i, "quantity")),
                        text(i, "unit"),
                        normalize_decimal(&text(i, "net_amount")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    NewOrder {
        id: text(v, "id"),
        number: text(v, "order_number"),
        correlation_id: text(v, "correlation_id"),
        sap_number: v["sap_order_number"].as_str().map(str::to_owned),
        copied_from: v["specifications"]["SalesOrder"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        status: text(v, "status"),
        fields: Comparable {
            customer: text(v, "customer_id"),
            reference: text(v, "customer_reference"),
            currency: text(v, "currency"),
            total: normalize_decimal(&text(v, "total_net_amount")),
            items,
        },
    }
}

/// Reads every SAP sales order with its items, following SAP's paging.
pub async fn fetch_sap(sap: &SapReader) -> anyhow::Result<Vec<SapOrder>> {
    let select = "SalesOrder,ExternalDocumentID,SoldToParty,PurchaseOrderByCustomer,TransactionCurrency,TotalNetAmount,to_Item/SalesOrderItem,to_Item/Material,to_Item/RequestedQuantity,to_Item/RequestedQuantityUnit,to_Item/NetAmount";
    let entities = fetch_sap_entities(sap, Some(select)).await?;
    Ok(entities.iter().map(sap_order).collect())
}

/// Reads every SAP sales order entity with its items expanded (only the `select`ed properties
/// when given), in `SalesOrder` order, following SAP's paging.
pub async fn fetch_sap_entities(
    sap: &SapReader,
    select: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let select = select.map(|s| format!("$select={s}&")).unwrap_or_default();
    let query = format!("{select}$expand=to_Item&$orderby=SalesOrder");
    let path = format!("{SAP_SERVICE}/A_SalesOrder");
    sap.fetch_set(&path, &query, 500).await
}

/// Reads every order of the order service.
pub async fn fetch_orders(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<NewOrder>> {
    let mut orders = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/api/v1/orders?limit=200&cursor={c}"),
            None => format!("{base}/api/v1/orders?limit=200"),
        };
        let r = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("reading {url}"))?;
        if !r.status().is_success() {
            bail!("the order service answered {} to {url}", r.status());
        }
        let page: Value = r.json().await?;
        orders.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(new_order),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(orders),
        }
    }
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let ends = &args.endpoints;
    let sap = fetch_sap(&ends.sap()?).await?;
    let new = fetch_orders(&client, ends.orders()).await?;
    let report = reconcile(&sap, &new);
    let drift = report.drift();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"drift": drift, "report": report}))?
        );
    } else {
        print_report(&report);
    }
    if args.repair_links {
        let linked = repair_links(&client, ends.orders(), &report.unlinked).await;
        println!(
            "linked {linked} of {} unlinked orders",
            report.unlinked.len()
        );
        let priced = repair_links(&client, ends.orders(), &report.unpriced).await;
        println!(
            "gave SAP's amounts to {priced} of {} orders that lacked them",
            report.unpriced.len()
        );
    }
    if let Some(route) = &args.report_route {
        let token = args
            .admin_token
            .as_deref()
            .context("reporting to the proxy needs ADMIN_TOKEN")?;
        let url = format!(
            "{}/admin/v1/routes/{route}/reconciliation",
            args.admin_url.trim_end_matches('/')
        );
        let r = client
            .put(&url)
            .bearer_auth(token)
            // Both sides were read in full: the report covers every order (what the proxy's
            // gate into `retired` needs).
            .json(&json!({
                "drift": drift, "scope": "full",
                "sap_orders": sap.len(), "new_orders": new.len(),
            }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("the proxy refused the report: {}", r.status());
        }
        println!("reported drift {drift} for route {route}");
    }
    if args.fail_on_drift && drift > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Sets SAP's number on each unlinked order. The order service's link is idempotent (the same
/// number again is a no-op), so a repair that races the proxy's own link is harmless.
pub async fn repair_links(
    client: &reqwest::Client,
    orders_url: &str,
    unlinked: &[Unlinked],
) -> usize {
    let mut linked = 0;
    for u in unlinked {
        match link_sap_number(
            client,
            orders_url,
            &u.order_id,
            &u.sap_number,
            u.pricing.as_ref(),
        )
        .await
        {
            Ok(()) => linked += 1,
            Err(e) => eprintln!("order {}: {e:#}", u.order_number),
        }
    }
    linked
}

/// Sets SAP's number on one order of the order service (`PUT .../sap-order-number`; the same
/// number again is a no-op there), adopting what SAP derived (`pricing`) when given.
pub async fn link_sap_number(
    client: &reqwest::Client,
    orders_url: &str,
    order_id: &str,
    sap_number: &str,
    pricing: Option<&Value>,
) -> anyhow::Result<()> {
    let mut body = json!({ "sap_order_number": sap_number });
    if let Some(p) = pricing {
        body["pricing"] = p.clone();
    }
    let r = client
        .put(format!(
            "{orders_url}/api/v1/orders/{order_id}/sap-order-number"
        ))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("linking SAP order {sap_number}"))?;
    if !r.status().is_success() {
        let status = r.status();
        bail!(
            "the order service refused SAP number {sap_number} ({status}): {}",
            r.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "SAP orders: {}   new orders: {}   paired: {}   drift: {}",
        r.sap_orders,
        r.new_orders,
        r.paired,
        r.drift()
    );
    for n in &r.missing_in_sap {
        println!("missing in SAP:            order {n}");
    }
    for n in &r.missing_in_order_service {
        println!("missing in order service:  SAP order {n}");
    }
    for (n, saps) in &r.duplicates {
        println!(
            "duplicate in SAP:          order {n} is SAP orders {}",
            saps.join(", ")
        );
    }
    for (n, s, diffs) in &r.mismatches {
        println!(
            "mismatch:                  order {n} / SAP {s}: {}",
            diffs.join("; ")
        );
    }
    for u in &r.unlinked {
        println!(
            "unlinked (not drift):      order {} is SAP order {} by its stamp",
            u.order_number, u.sap_number
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(customer: &str, qty: &str) -> Comparable {
        Comparable {
            customer: customer.into(),
            reference: "PO-1".into(),
            currency: "EUR".into(),
            total: "25".into(),
            items: vec![(
                "TG11".into(),
                normalize_decimal(qty),
                "PC".into(),
                "25".into(),
            )],
        }
    }

    fn sap(number: &str, external: &str, f: Comparable) -> SapOrder {
        SapOrder {
            number: number.into(),
            external_id: external.into(),
            fields: f,
            pricing: None,
        }
    }

    fn new(number: &str, corr: &str, link: Option<&str>, status: &str, f: Comparable) -> NewOrder {
        NewOrder {
            id: format!("id-{number}"),
            number: number.into(),
            correlation_id: corr.into(),
            sap_number: link.map(Into::into),
            copied_from: None,
            status: status.into(),
            fields: f,
        }
    }

    #[test]
    fn agreeing_systems_have_no_drift_whatever_the_decimal_scale() {
        let s = [sap("1", "", fields("17100001", "2"))];
        let n = [new(
            "8000000001",
            "c1",
            Some("1"),
            "created",
            fields("17100001", "2.000"),
        )];
        let r = reconcile(&s, &n);
        assert_eq!((r.paired, r.drift()), (1, 0), "{r:?}");
        assert!(r.unlinked.is_empty());
    }

    #[test]
    fn a_pair_found_by_its_stamp_alone_is_unlinked_but_not_drift() {
        let s = [
            sap("1", "c1", fields("17100001", "2")),
            sap("2", "c2", fields("17100001", "2")),
        ];
        let n = [
            new("8000000001", "c1", None, "created", fields("17100001", "2")),
            new(
                "8000000002",
                "c2",
                Some("2"),
                "created",
                fields("17100001", "2"),
            ),
        ];
        let r = reconcile(&s, &n);
        assert_eq!((r.paired, r.drift()), (2, 0), "{r:?}");
        assert_eq!(
            r.unlinked,
            [Unlinked {
                order_id: "id-8000000001".into(),
                order_number: "8000000001".into(),
                sap_number: "1".into(),
                pricing: None,
            }]
        );
    }

    #[test]
    fn a_linked_pair_lacking_sap_s_amounts_is_drift_and_listed_for_repair() {
        let s = [sap("8000000001", "", fields("17100001", "2"))];
        let mut lacking = fields("17100001", "2");
        lacking.total = String::new();
        lacking.items[0].3 = String::new();
        let n = [new(
            "8000000001",
            "c1",
            Some("8000000001"),
            "created",
            lacking,
        )];
        let r = reconcile(&s, &n);
        assert_eq!(r.drift(), 1, "{r:?}");
        assert!(r.mismatches[0].2.iter().any(|d| d.starts_with("total")));
        assert_eq!(r.unpriced.len(), 1);
        // Another customer is not an amount SAP derives: no repair by pricing.
        let mut other = fields("17100002", "2");
        other.total = String::new();
        let n = [new(
            "8000000001",
            "c1",
            Some("8000000001"),
            "created",
            other,
        )];
        assert!(reconcile(&s, &n).unpriced.is_empty());
    }

    #[test]
    fn every_kind_of_drift_is_named_by_order() {
        let s = [
            sap("1", "", fields("17100001", "2")),
            sap("2", "k-2", fields("17100001", "2")),
            sap("3", "k-2", fields("17100001", "2")),
            sap("4", "", fields("17100001", "2")),
            sap("5", "", fields("17100001", "2")),
        ];
        let n = [
            new(
                "8000000001",
                "c1",
                Some("1"),
                "created",
                fields("17100002", "2"),
            ),
            new(
                "8000000002",
                "k-2",
                None,
                "created",
                fields("17100001", "2"),
            ),
            new(
                "8000000003",
                "c3",
                None,
                "confirmed",
                fields("17100001", "2"),
            ),
            new(
                "8000000004",
                "c4",
                Some("5"),
                "voided",
                fields("17100001", "2"),
            ),
        ];
        let r = reconcile(&s, &n);
        assert_eq!(r.mismatches.len(), 2, "{r:?}");
        assert_eq!(r.mismatches[0].0, "8000000001");
        assert!(r.mismatches[1].2[0].contains("voided"));
        assert_eq!(r.duplicates["8000000002"], ["2", "3"]);
        assert_eq!(r.missing_in_sap, ["8000000003"]);
        assert_eq!(r.missing_in_order_service, ["4"]);
        assert_eq!(r.drift(), 5);
    }

    #[test]
    fn copies_and_shared_numbers_pair_with_their_sap_order_before_any_link() {
        let s = [
            sap("5", "", fields("17100001", "1")),
            sap("6", "", fields("17100001", "1")),
            sap("8000000009", "", fields("17100001", "1")),
        ];
        let mut by_key = new(
            "8000000001",
            "backfill-sap-5",
            None,
            "created",
            fields("17100001", "1"),
        );
        by_key.copied_from = Some("5".into());
        let n = [
            by_key,
            // An old copy: only its correlation id names its source.
            new(
                "8000000002",
                "backfill-sap-6",
                None,
                "created",
                fields("17100001", "1"),
            ),
            // A reserved number, the same in both systems.
            new("8000000009", "c9", None, "created", fields("17100001", "1")),
        ];
        let r = reconcile(&s, &n);
        assert_eq!((r.paired, r.drift()), (3, 0), "{r:?}");
        assert_eq!(r.unlinked.len(), 3);
    }
}
