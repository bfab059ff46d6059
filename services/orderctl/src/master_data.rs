//! `orderctl master-data import`: loads master data (materials with units and prices,
//! customers with their sales areas and currencies) into the order service, so it completes
//! orders as SAP does (`PUT /api/v1/master-data`).
//!
//! - `--file FILE`: the upsert body's own JSON shape
//!   (`{"materials":[{"sku","base_unit","iso_unit","price","currency","description"}],
//!   "customers":[{"customer_id","name","sales_areas":[...]}]}`). The whole file is validated
//!   first, with the order service's own rules (`order-domain`), so a bad file stores nothing
//!   and its errors name the file's entries.
//! - `--from-sap`: reads SAP's standard OData V2 APIs, following SAP's paging (`__next`, else
//!   `$skip`): `API_PRODUCT_SRV/A_Product` (`Product`, `BaseUnit`, descriptions via
//!   `to_Description`; the V2 `A_Product` has no ISO code of the base unit, so `iso_unit` stays
//!   empty), `API_BUSINESS_PARTNER/A_CustomerSalesArea` (`Customer`, sales area,
//!   `Currency`) and `A_Customer` (`CustomerName`), and the material prices of
//!   `API_SLSPRICINGCONDITIONRECORD_SRV/A_SlsPrcgConditionRecord` (condition type `PPR0` by
//!   default: `ConditionRateValue` in `ConditionRateValueUnit` per `ConditionQuantity`
//!   `ConditionQuantityUnit`, valid today, for a material and no customer, from
//!   `to_SlsPrcgCndnRecdValidity`). Entries SAP holds that the order service would refuse are
//!   skipped and named.
//!
//! Both send the data in batches (`--batch`), each one transaction in the order service, and
//! report progress on stderr when there is more than one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use order_domain::MasterDataDraft;
use order_domain::master_data::{CustomerDraft, MaterialDraft, SalesAreaDraft};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::reconcile::Endpoints;

/// `orderctl master-data ...`
#[derive(clap::Subcommand)]
pub enum Command {
    /// Import materials and customers into the order service, from a file or from SAP.
    Import(ImportArgs),
}

/// Options of `master-data import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// A JSON file in the upsert body's shape.
    #[arg(
        long,
        conflicts_with = "from_sap",
        required_unless_present = "from_sap"
    )]
    file: Option<PathBuf>,
    /// Read SAP's product, business partner and pricing APIs instead.
    #[arg(long)]
    from_sap: bool,
    #[command(flatten)]
    endpoints: Endpoints,
    /// Pricing condition type of the material price (SAP's base price in S/4: PPR0).
    #[arg(long, default_value = "PPR0")]
    condition_type: String,
    /// Only prices of this sales organization (else the latest valid one of any).
    #[arg(long)]
    sales_organization: Option<String>,
    /// Language of the material descriptions.
    #[arg(long, default_value = "EN")]
    language: String,
    /// Entries per request to the order service (each one transaction).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Entries per SAP page.
    #[arg(long, default_value_t = 1000)]
    page: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// Materials stored.
    pub materials: u64,
    /// Customers stored.
    pub customers: u64,
    /// Sales areas stored.
    pub sales_areas: u64,
    /// Entries read from SAP that were not imported, with why.
    pub skipped: Vec<String>,
}

/// Runs the command.
pub async fn run(command: Command) -> anyhow::Result<()> {
    let Command::Import(args) = command;
    let client = reqwest::Client::new();
    let (draft, skipped) = if args.from_sap {
        let draft = read_sap(&args).await?;
        keep_valid(draft)
    } else {
        let path = args
            .file
            .as_ref()
            .context("--file or --from-sap is needed")?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let draft: MasterDataDraft = serde_json::from_str(&text)
            .with_context(|| format!("{} is not master data JSON", path.display()))?;
        if let Err(errors) = draft.parse() {
            let named: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            bail!(
                "{} is refused, nothing was imported:\n  {}",
                path.display(),
                named.join("\n  ")
            );
        }
        (draft, Vec::new())
    };
    let mut outcome = upload(&client, args.endpoints.orders(), &draft, args.batch.max(1)).await?;
    outcome.skipped = skipped;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!(
            "Imported {} materials, {} customers and {} sales areas into the order service{}.",
            outcome.materials,
            outcome.customers,
            outcome.sales_areas,
            if outcome.skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {}", outcome.skipped.len())
            }
        );
        for s in &outcome.skipped {
            println!("skipped: {s}");
        }
    }
    Ok(())
}

/// Drops the entries the order service would refuse, naming each.
fn keep_valid(draft: MasterDataDraft) -> (MasterDataDraft, Vec<String>) {
    let mut skipped = Vec::new();
    let materials = draft
        .materials
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            let one = MasterDataDraft {
                materials: Some(vec![m.clone()]),
                customers: None,
            };
            match one.parse() {
                Ok(_) => true,
                Err(e) => {
                    skipped.push(format!(
                        "material {}: {}",
                        m.sku.as_deref().unwrap_or("?"),
                        describe(&e)
                    ));
                    false
                }
            }
        })
        .collect();
    let customers = draft
        .customers
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            let one = MasterDataDraft {
                materials: None,
                customers: Some(vec![c.clone()]),
            };
            match one.parse() {
                Ok(_) => true,
                Err(e) => {
                    skipped.push(format!(
                        "customer {}: {}",
                        c.customer_id.as_deref().unwrap_or("?"),
                        describe(&e)
                    ));
                    false
                }
            }
        })
        .collect();
    (
        MasterDataDraft {
            materials: Some(materials),
            customers: Some(customers),
        },
        skipped,
    )
}

fn describe(errors: &[order_domain::FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends the data in batches of `batch` entries, materials first.
async fn upload(
    client: &reqwest::Client,
    orders_url: &str,
    draft: &MasterDataDraft,
    batch: usize,
) -> anyhow::Result<Outcome> {
    let materials = draft.materials.as_deref().unwrap_or_default();
    let customers = draft.customers.as_deref().unwrap_or_default();
    let batches = materials.len().div_ceil(batch) + customers.len().div_ceil(batch);
    let mut outcome = Outcome::default();
    let mut sent = 0;
    let mut put = async |body: Value, what: &str, done: usize, of: usize| -> anyhow::Result<()> {
        let url = format!("{orders_url}/api/v1/master-data");
        let r = client
            .put(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("sending master data to {url}"))?;
        let status = r.status();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("the order service refused {what} ({status}): {answer}");
        }
        outcome.materials += answer["materials"].as_u64().unwrap_or(0);
        outcome.customers += answer["customers"].as_u64().unwrap_or(0);
        outcome.sales_areas += answer["sales_areas"].as_u64().unwrap_or(0);
        sent += 1;
        if batches > 1 {
            eprintln!("master-data import: {what} {done} of {of} ({sent}/{batches} batches)");
        }
        Ok(())
    };
    for (i, chunk) in materials.chunks(batch).enumerate() {
        let done = (i * batch + chunk.len()).min(materials.len());
        put(
            json!({ "materials": chunk }),
            "materials",
            done,
            materials.len(),
        )
        .await?;
    }
    for (i, chunk) in customers.chunks(batch).enumerate() {
        let done = (i * batch + chunk.len()).min(customers.len());
        put(
            json!({ "customers": chunk }),
            "customers",
            done,
            customers.len(),
        )
        .await?;
    }
    Ok(outcome)
}

const PRODUCT_SERVICE: &str = "/sap/opu/odata/sap/API_PRODUCT_SRV";
const PARTNER_SERVICE: &str = "/sap/opu/odata/sap/API_BUSINESS_PARTNER";
const PRICING_SERVICE: &str = "/sap/opu/odata/sap/API_SLSPRICINGCONDITIONRECORD_SRV";

fn text(v: &Value, key: &str) -> Option<String> {
    v[key]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn decimal(v: &Value, key: &str) -> Option<Decimal> {
    match &v[key] {
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// A material price found in SAP's condition records.
#[derive(Debug, Clone, PartialEq)]
struct MaterialPrice {
    per_unit: Decimal,
    currency: String,
    unit: Option<String>,
    valid_from: NaiveDate,
}

/// The material prices of the condition records: per material, the latest record valid
/// `today` that prices the material for no particular customer.
fn material_prices(
    records: &[Value],
    sales_organization: Option<&str>,
    today: NaiveDate,
) -> HashMap<String, MaterialPrice> {
    let mut prices: HashMap<String, MaterialPrice> = HashMap::new();
    for r in records {
        if r["ConditionIsDeleted"].as_bool() == Some(true) {
            continue;
        }
        let (Some(rate), Some(currency)) = (
            decimal(r, "ConditionRateValue"),
            text(r, "ConditionRateValueUnit"),
        ) else {
            continue;
        };
        let per = decimal(r, "ConditionQuantity")
            .filter(|q| *q > Decimal::ZERO)
            .unwrap_or(Decimal::ONE);
        let validities = r["to_SlsPrcgCndnRecdValidity"]["results"]
            .as_array()
            .or_else(|| r["to_SlsPrcgCndnRecdValidity"].as_array())
            .cloned()
            .unwrap_or_default();
        for v in &validities {
            let Some(material) = text(v, "Material") else {
                continue;
            };
            if text(v, "Customer").is_some() {
                continue;
            }
            if let Some(so) = sales_organization
                && text(v, "SalesOrganization").as_deref() != Some(so)
            {
                continue;
            }
            let from = text(v, "ConditionValidityStartDate")
                .and_then(|d| order_acl::parse_odata_date(&d))
                .unwrap_or(NaiveDate::MIN);
            let to = text(v, "ConditionValidityEndDate")
                .and_then(|d| order_acl::parse_odata_date(&d))
                .unwrap_or(NaiveDate::MAX);
            if !(from <= today && today <= to) {
                continue;
            }
            let price = MaterialPrice {
                per_unit: (rate / per).round_dp(3).normalize(),
                currency: currency.clone(),
                unit: text(r, "ConditionQuantityUnit"),
                valid_from: from,
            };
            match prices.get(&material) {
                Some(p) if p.valid_from >= from => {}
                _ => {
                    prices.insert(material, price);
                }
            }
        }
    }
    prices
}

/// Builds the upsert from SAP's products, customer sales areas, customer names and prices.
fn assemble(
    products: &[Value],
    sales_areas: &[Value],
    customers: &[Value],
    prices: &HashMap<String, MaterialPrice>,
    language: &str,
) -> MasterDataDraft {
    let materials = products
        .iter()
        .filter_map(|p| {
            let sku = text(p, "Product")?;
            let base_unit = text(p, "BaseUnit");
            let descriptions = p["to_Description"]["results"]
                .as_array()
                .or_else(|| p["to_Description"].as_array())
                .cloned()
                .unwrap_or_default();
            let description = descriptions
                .iter()
                .find(|d| text(d, "Language").as_deref() == Some(language))
                .or(descriptions.first())
                .and_then(|d| text(d, "ProductDescription"));
            // A price per another unit than the base unit cannot price a base-unit line.
            let price = prices
                .get(&sku)
                .filter(|pr| pr.unit.is_none() || pr.unit == base_unit);
            Some(MaterialDraft {
                sku: Some(sku),
                base_unit,
                // `A_Product` (API_PRODUCT_SRV, OData V2) declares no `BaseISOUnit`
                iso_unit: None,
                price: price.map(|pr| pr.per_unit.to_string()),
                currency: price.map(|pr| pr.currency.clone()),
                description,
            })
        })
        .collect();
    let names: HashMap<String, String> = customers
        .iter()
        .filter_map(|c| Some((text(c, "Customer")?, text(c, "CustomerName")?)))
        .collect();
    let mut by_customer: Vec<(String, Vec<SalesAreaDraft>)> = Vec::new();
    for a in sales_areas {
        let Some(customer) = text(a, "Customer") else {
            continue;
        };
        let area = SalesAreaDraft {
            sales_organization: text(a, "SalesOrganization"),
            distribution_channel: text(a, "DistributionChannel"),
            division: text(a, "Division"),
            currency: text(a, "Currency"),
        };
        match by_customer.iter_mut().find(|(c, _)| *c == customer) {
            Some((_, areas)) => areas.push(area),
            None => by_customer.push((customer, vec![area])),
        }
    }
    let customers = by_customer
        .into_iter()
        .map(|(id, areas)| CustomerDraft {
            name: names.get(&id).cloned(),
            customer_id: Some(id),
            sales_areas: Some(areas),
        })
        .collect();
    MasterDataDraft {
        materials: Some(materials),
        customers: Some(customers),
    }
}

async fn read_sap(args: &ImportArgs) -> anyhow::Result<MasterDataDraft> {
    let sap = args.endpoints.sap()?;
    let page = args.page.max(1);
    let products = sap.fetch_set(
        &format!("{PRODUCT_SERVICE}/A_Product"),
        "$select=Product,BaseUnit,to_Description/Language,to_Description/ProductDescription&$expand=to_Description&$orderby=Product",
        page,
    )
    .await?;
    eprintln!(
        "master-data import: {} products read from SAP",
        products.len()
    );
    let sales_areas = sap.fetch_set(
        &format!("{PARTNER_SERVICE}/A_CustomerSalesArea"),
        "$select=Customer,SalesOrganization,DistributionChannel,Division,Currency&$orderby=Customer",
        page,
    )
    .await?;
    let customers = sap
        .fetch_set(
            &format!("{PARTNER_SERVICE}/A_Customer"),
            "$select=Customer,CustomerName&$orderby=Customer",
            page,
        )
        .await?;
    eprintln!(
        "master-data import: {} customer sales areas read from SAP",
        sales_areas.len()
    );
    let filter = format!(
        "$filter=ConditionType%20eq%20'{}'&$expand=to_SlsPrcgCndnRecdValidity",
        args.condition_type
    );
    let records = sap
        .fetch_set(
            &format!("{PRICING_SERVICE}/A_SlsPrcgConditionRecord"),
            &filter,
            page,
        )
        .await?;
    eprintln!(
        "master-data import: {} pricing condition records read from SAP",
        records.len()
    );
    let today = chrono::Utc::now().date_naive();
    let prices = material_prices(&records, args.sales_organization.as_deref(), today);
    Ok(assemble(
        &products,
        &sales_areas,
        &customers,
        &prices,
        &args.language,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sap_products_sales_areas_and_prices_become_one_upsert() {
        let records = [
            json!({"ConditionRecord": "1", "ConditionRateValue": "125.000", "ConditionRateValueUnit": "EUR",
                   "ConditionQuantity": "10", "ConditionQuantityUnit": "PC", "ConditionIsDeleted": false,
                   "to_SlsPrcgCndnRecdValidity": {"results": [
                       {"Material": "TG11", "SalesOrganization": "1010", "Customer": "",
                        "ConditionValidityStartDate": "/Date(1704067200000)/",
                        "ConditionValidityEndDate": "/Date(253402214400000)/"}]}}),
            // Customer-specific: not the material's price.
            json!({"ConditionRecord": "2", "ConditionRateValue": "1.00", "ConditionRateValueUnit": "EUR",
                   "to_SlsPrcgCndnRecdValidity": {"results": [{"Material": "TG11", "Customer": "17100001"}]}}),
            // Expired.
            json!({"ConditionRecord": "3", "ConditionRateValue": "2.00", "ConditionRateValueUnit": "EUR",
                   "to_SlsPrcgCndnRecdValidity": {"results": [{"Material": "TG12",
                        "ConditionValidityEndDate": "/Date(1704067200000)/"}]}}),
        ];
        let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let prices = material_prices(&records, None, today);
        assert_eq!(prices.len(), 1);
        assert_eq!(
            prices["TG11"].per_unit.to_string(),
            "12.5",
            "per one base unit"
        );
        let products = [
            json!({"Product": "TG11", "BaseUnit": "PC",
                   "to_Description": {"results": [{"Language": "DE", "ProductDescription": "Handelsware"},
                                                  {"Language": "EN", "ProductDescription": "Trading Good"}]}}),
            json!({"Product": "TG12", "BaseUnit": "PC"}),
        ];
        let areas = [
            json!({"Customer": "17100001", "SalesOrganization": "1010", "DistributionChannel": "10", "Division": "00", "Currency": "EUR"}),
            json!({"Customer": "17100001", "SalesOrganization": "1710", "DistributionChannel": "10", "Division": "00", "Currency": "USD"}),
        ];
        let customers = [json!({"Customer": "17100001", "CustomerName": "Domestic Customer DE 1"})];
        let draft = assemble(&products, &areas, &customers, &prices, "EN");
        let upsert = draft.parse().expect("valid for the order service");
        assert_eq!(upsert.materials.len(), 2);
        let tg11 = &upsert.materials[0];
        assert_eq!(
            tg11.price.as_ref().unwrap().amount.value().to_string(),
            "12.5"
        );
        assert_eq!(tg11.description.as_deref(), Some("Trading Good"));
        assert!(upsert.materials[1].price.is_none());
        assert_eq!(upsert.customers[0].sales_areas.len(), 2);
        assert_eq!(
            upsert.customers[0].name.as_deref(),
            Some("Domestic Customer DE 1")
        );
    }

    #[test]
    fn entries_the_order_service_would_refuse_are_skipped_and_named() {
        let draft = MasterDataDraft {
            materials: Some(vec![
                MaterialDraft {
                    sku: Some("TG11".into()),
                    base_unit: Some("PC".into()),
                    ..MaterialDraft::default()
                },
                MaterialDraft {
                    sku: Some("NO-UNIT".into()),
                    ..MaterialDraft::default()
                },
            ]),
            customers: None,
        };
        let (kept, skipped) = keep_valid(draft);
        assert_eq!(kept.materials.unwrap().len(), 1);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("NO-UNIT"), "{skipped:?}");
    }
}
