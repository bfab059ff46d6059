//! Master data in PostgreSQL (migration 0009): materials, customers and their sales areas,
//! imported from SAP with `PUT /api/v1/master-data`, read by the create path when a caller
//! left out what SAP would derive (unit, currency, price).
//!
//! The create path stays free of look-ups for callers that send every value: a material is
//! looked up only for a line without a unit, without a price (while some material has one),
//! or whose unit may be some material's ISO unit. To know the latter two without a round trip,
//! the store keeps a small summary in memory (the set of ISO units that differ from their base
//! unit, and whether any material has a price), refreshed at most every [`ISO_UNITS_MAX_AGE`]
//! and at once after an upsert through this instance. Right after an upsert through *another*
//! replica that introduces a new ISO unit or the first prices, this instance may keep such a
//! unit as sent, or a line unpriced, for up to that long.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use order_domain::master_data::{Customer, Material, Price, SalesArea};
use order_domain::{
    CurrencyCode, CustomerId, DistributionChannel, Division, MasterData, MasterDataUpsert, Money,
    OrderRequest, SalesOrganization, Sku, Unit,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::ServiceError;

/// Longest time the in-memory set of ISO units is used before it is read again.
pub const ISO_UNITS_MAX_AGE: Duration = Duration::from_secs(5);

/// A material as stored and as `GET /api/v1/master-data/materials/{sku}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaterialRecord {
    /// Material number (SAP `Product`).
    pub sku: String,
    /// SAP base unit code.
    pub base_unit: String,
    /// ISO code of the base unit.
    pub iso_unit: Option<String>,
    /// Net price per base unit (decimal string).
    pub price: Option<String>,
    /// Currency of the price.
    pub currency: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// A sales area as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesAreaRecord {
    /// SAP sales organization.
    pub sales_organization: String,
    /// SAP distribution channel.
    pub distribution_channel: String,
    /// SAP division.
    pub division: String,
    /// The customer's currency there.
    pub currency: String,
}

/// A customer as stored and as `GET /api/v1/master-data/customers/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerRecord {
    /// Customer number.
    pub customer_id: String,
    /// Name.
    pub name: Option<String>,
    /// Sales areas, ordered.
    pub sales_areas: Vec<SalesAreaRecord>,
}

/// What an upsert stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UpsertCounts {
    /// Materials inserted or replaced.
    pub materials: u64,
    /// Customers inserted or replaced.
    pub customers: u64,
    /// Sales areas inserted or replaced.
    pub sales_areas: u64,
}

fn stored<T>(what: &str, r: Result<T, order_domain::ValueError>) -> Result<T, ServiceError> {
    r.map_err(|e| ServiceError::Database(sqlx::Error::Protocol(format!("stored {what}: {e}"))))
}

impl MaterialRecord {
    fn into_domain(self) -> Result<Material, ServiceError> {
        let price = match (&self.price, &self.currency) {
            (Some(p), Some(c)) => Some(Price {
                amount: stored("price", Money::parse(p))?,
                currency: stored("currency", CurrencyCode::parse(c))?,
            }),
            _ => None,
        };
        Ok(Material {
            sku: stored("sku", Sku::parse(&self.sku))?,
            base_unit: stored("base unit", Unit::parse(&self.base_unit))?,
            iso_unit: self
                .iso_unit
                .as_deref()
                .map(Unit::parse)
                .transpose()
                .map_err(|e| ServiceError::Database(sqlx::Error::Protocol(e.0)))?,
            price,
            description: self.description,
        })
    }
}

impl CustomerRecord {
    fn into_domain(self) -> Result<Customer, ServiceError> {
        let sales_areas = self
            .sales_areas
            .into_iter()
            .map(|a| {
                Ok(SalesArea {
                    sales_organization: stored(
                        "sales organization",
                        SalesOrganization::parse(&a.sales_organization),
                    )?,
                    distribution_channel: stored(
                        "distribution channel",
                        DistributionChannel::parse(&a.distribution_channel),
                    )?,
                    division: stored("division", Division::parse(&a.division))?,
                    currency: stored("currency", CurrencyCode::parse(&a.currency))?,
                })
            })
            .collect::<Result<_, ServiceError>>()?;
        Ok(Customer {
            customer_id: stored("customer", CustomerId::parse(&self.customer_id))?,
            name: self.name,
            sales_areas,
        })
    }
}

/// JSON of one material row, with decimals as text (no float on the way).
const MATERIAL_JSON: &str = "json_build_object('sku', m.sku, 'base_unit', m.base_unit, \
    'iso_unit', m.iso_unit, 'price', m.price::text, 'currency', m.price_currency, \
    'description', m.description)";

/// JSON of one customer with its sales areas.
const CUSTOMER_JSON: &str = "json_build_object('customer_id', c.customer_id, 'name', c.name, \
    'sales_areas', coalesce((SELECT json_agg(json_build_object( \
        'sales_organization', a.sales_organization, 'distribution_channel', a.distribution_channel, \
        'division', a.division, 'currency', a.currency) \
      ORDER BY a.sales_organization, a.distribution_channel, a.division) \
      FROM customer_sales_areas a WHERE a.customer_id = c.customer_id), '[]'::json))";

/// What the create path needs to know about all master data, without a query per create.
#[derive(Debug, Default)]
struct Summary {
    /// ISO units that differ from their material's base unit.
    iso_units: HashSet<String>,
    /// Whether any material has a price.
    prices_known: bool,
}

#[derive(Debug, Default)]
struct IsoUnits {
    current: RwLock<Option<(Instant, Arc<Summary>)>>,
    refreshing: AtomicBool,
}

/// The master-data store.
#[derive(Debug, Clone)]
pub struct MasterDataStore {
    pool: PgPool,
    iso_units: Arc<IsoUnits>,
}

impl MasterDataStore {
    /// A store on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            iso_units: Arc::default(),
        }
    }

    /// The summary of all master data (cached, see the module documentation).
    async fn summary(&self) -> Result<Arc<Summary>, ServiceError> {
        let cached = self.iso_units.current.read().ok().and_then(|c| c.clone());
        if let Some((at, set)) = &cached
            && (at.elapsed() < ISO_UNITS_MAX_AGE
                || self.iso_units.refreshing.swap(true, Ordering::AcqRel))
        {
            // Fresh, or stale while another request is already reading the new set.
            return Ok(Arc::clone(set));
        }
        let read: Result<(Vec<String>, bool), sqlx::Error> = sqlx::query_as(
            "SELECT array(SELECT DISTINCT iso_unit FROM materials \
                          WHERE iso_unit IS NOT NULL AND iso_unit IS DISTINCT FROM base_unit), \
                    EXISTS (SELECT 1 FROM materials WHERE price IS NOT NULL)",
        )
        .fetch_one(&self.pool)
        .await;
        self.iso_units.refreshing.store(false, Ordering::Release);
        let (iso_units, prices_known) = read?;
        let set = Arc::new(Summary {
            iso_units: iso_units.into_iter().collect(),
            prices_known,
        });
        if let Ok(mut c) = self.iso_units.current.write() {
            *c = Some((Instant::now(), Arc::clone(&set)));
        }
        Ok(set)
    }

    fn forget_iso_units(&self) {
        if let Ok(mut c) = self.iso_units.current.write() {
            *c = None;
        }
    }

    /// The master data completing `request` needs: nothing (and no query) when it names every
    /// value, else its materials and customer in one round trip.
    pub async fn for_order(&self, request: &OrderRequest) -> Result<MasterData, ServiceError> {
        let summary = self.summary().await?;
        let skus =
            request.materials_needed(|u| summary.iso_units.contains(u), summary.prices_known);
        let customer = request.needs_customer();
        if skus.is_empty() && !customer {
            return Ok(MasterData::default());
        }
        let (materials, found): (
            sqlx::types::Json<Vec<MaterialRecord>>,
            Option<sqlx::types::Json<CustomerRecord>>,
        ) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT coalesce(json_agg({MATERIAL_JSON}), '[]'::json) FROM materials m \
                         WHERE m.sku = ANY($1)), \
                        (SELECT {CUSTOMER_JSON} FROM customers c WHERE $3 AND c.customer_id = $2)"
        )))
        .bind(&skus)
        .bind(request.customer_id.as_str())
        .bind(customer)
        .fetch_one(&self.pool)
        .await?;
        let materials = materials
            .0
            .into_iter()
            .map(|m| Ok((m.sku.clone(), m.into_domain()?)))
            .collect::<Result<HashMap<_, _>, ServiceError>>()?;
        let customer = found.map(|c| c.0.into_domain()).transpose()?;
        Ok(MasterData {
            materials,
            customer,
        })
    }

    /// One material.
    pub async fn material(&self, sku: &str) -> Result<MaterialRecord, ServiceError> {
        let row: Option<sqlx::types::Json<MaterialRecord>> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {MATERIAL_JSON} FROM materials m WHERE m.sku = $1"
            )))
            .bind(sku)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.0)
            .ok_or_else(|| ServiceError::MaterialNotFound(sku.to_owned()))
    }

    /// One customer with its sales areas.
    pub async fn customer(&self, id: &str) -> Result<CustomerRecord, ServiceError> {
        let row: Option<sqlx::types::Json<CustomerRecord>> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {CUSTOMER_JSON} FROM customers c WHERE c.customer_id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.0)
            .ok_or_else(|| ServiceError::CustomerNotFound(id.to_owned()))
    }

    /// Inserts or replaces every material, customer and sales area of `upsert`, in one
    /// transaction (all or nothing). Sales areas a customer has and the upsert does not name
    /// are kept.
    pub async fn upsert(&self, upsert: &MasterDataUpsert) -> Result<UpsertCounts, ServiceError> {
        let mut tx = self.pool.begin().await?;
        let m = &upsert.materials;
        let materials = sqlx::query(
            "INSERT INTO materials (sku, base_unit, iso_unit, price, price_currency, description) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::numeric[], $5::text[], \
                                  $6::text[]) \
             ON CONFLICT (sku) DO UPDATE SET base_unit = EXCLUDED.base_unit, \
               iso_unit = EXCLUDED.iso_unit, price = EXCLUDED.price, \
               price_currency = EXCLUDED.price_currency, description = EXCLUDED.description, \
               updated_at = now()",
        )
        .bind(m.iter().map(|m| m.sku.as_str()).collect::<Vec<_>>())
        .bind(m.iter().map(|m| m.base_unit.as_str()).collect::<Vec<_>>())
        .bind(
            m.iter()
                .map(|m| m.iso_unit.as_ref().map(Unit::as_str))
                .collect::<Vec<_>>(),
        )
        .bind(
            m.iter()
                .map(|m| m.price.as_ref().map(|p| p.amount.value()))
                .collect::<Vec<_>>(),
        )
        .bind(
            m.iter()
                .map(|m| m.price.as_ref().map(|p| p.currency.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            m.iter()
                .map(|m| m.description.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let c = &upsert.customers;
        let customers = sqlx::query(
            "INSERT INTO customers (customer_id, name) \
             SELECT * FROM UNNEST($1::text[], $2::text[]) \
             ON CONFLICT (customer_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()",
        )
        .bind(c.iter().map(|c| c.customer_id.as_str()).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.name.as_deref()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let areas: Vec<(&str, &SalesArea)> = c
            .iter()
            .flat_map(|c| c.sales_areas.iter().map(|a| (c.customer_id.as_str(), a)))
            .collect();
        let sales_areas = sqlx::query(
            "INSERT INTO customer_sales_areas (customer_id, sales_organization, \
               distribution_channel, division, currency) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
             ON CONFLICT (customer_id, sales_organization, distribution_channel, division) \
             DO UPDATE SET currency = EXCLUDED.currency, updated_at = now()",
        )
        .bind(areas.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(
            areas
                .iter()
                .map(|(_, a)| a.sales_organization.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            areas
                .iter()
                .map(|(_, a)| a.distribution_channel.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            areas
                .iter()
                .map(|(_, a)| a.division.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            areas
                .iter()
                .map(|(_, a)| a.currency.as_str())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        self.forget_iso_units();
        Ok(UpsertCounts {
            materials,
            customers,
            sales_areas,
        })
    }
}
