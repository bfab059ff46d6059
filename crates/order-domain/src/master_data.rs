//! Master data: what SAP derives an order's missing values from (the material's units and
//! price, the customer's currency per sales area), and the bulk upsert that imports it.
//!
//! - [`MasterDataDraft`] is the upsert body as sent; [`MasterDataDraft::parse`] validates it
//!   into a [`MasterDataUpsert`], naming every bad field (`materials[3].base_unit`).
//! - [`MasterData`] is what one create looked up: the materials of its lines and the sales
//!   areas of its customer. [`crate::OrderRequest::complete`] derives from it.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::order::FieldError;
use crate::values::{
    CurrencyCode, CustomerId, DistributionChannel, Division, Money, SalesOrganization, Sku, Unit,
    ValueError,
};

/// Most materials or customers one upsert may carry.
pub const MAX_UPSERT_ENTRIES: usize = 5000;

/// Longest material description (SAP `ProductDescription`) and customer name
/// (SAP `CustomerName` holds 80).
pub const MAX_DESCRIPTION_LEN: usize = 80;

/// A material's price: per base unit, in its currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Price {
    /// Net price per base unit.
    pub amount: Money,
    /// Currency of the price.
    pub currency: CurrencyCode,
}

/// One material (SAP product) as completion needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Material {
    /// Material number (SAP `Product`).
    pub sku: Sku,
    /// SAP's base unit code, e.g. `PC`.
    pub base_unit: Unit,
    /// The base unit's ISO code, e.g. `PCE`.
    pub iso_unit: Option<Unit>,
    /// Net price per base unit, when known.
    pub price: Option<Price>,
    /// Description.
    pub description: Option<String>,
}

/// One sales area of a customer with the currency SAP uses there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SalesArea {
    /// SAP sales organization.
    pub sales_organization: SalesOrganization,
    /// SAP distribution channel.
    pub distribution_channel: DistributionChannel,
    /// SAP division.
    pub division: Division,
    /// The customer's currency in this sales area.
    pub currency: CurrencyCode,
}

/// One customer with its sales areas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    /// Customer number (SAP `Customer`, the order's `SoldToParty`).
    pub customer_id: CustomerId,
    /// Name.
    pub name: Option<String>,
    /// Sales areas.
    pub sales_areas: Vec<SalesArea>,
}

/// The master data one create looked up.
#[derive(Debug, Clone, Default)]
pub struct MasterData {
    /// Materials by SKU (only those looked up).
    pub materials: HashMap<String, Material>,
    /// The order's customer, when looked up and known.
    pub customer: Option<Customer>,
}

impl MasterData {
    /// The currency of the order's customer in the order's sales area: among the customer's
    /// sales areas that match what the order names of its sales area (all of them when it
    /// names none), the one currency they share.
    pub fn currency_for(&self, order: &crate::OrderRequest) -> Result<CurrencyCode, ValueError> {
        let Some(customer) = &self.customer else {
            return Err(ValueError(format!(
                "is required: customer {} is not in the master data",
                order.customer_id
            )));
        };
        let matching: Vec<&SalesArea> = customer
            .sales_areas
            .iter()
            .filter(|a| {
                order
                    .sales_organization
                    .as_ref()
                    .is_none_or(|v| *v == a.sales_organization)
                    && order
                        .distribution_channel
                        .as_ref()
                        .is_none_or(|v| *v == a.distribution_channel)
                    && order.division.as_ref().is_none_or(|v| *v == a.division)
            })
            .collect();
        let currencies: HashSet<&str> = matching.iter().map(|a| a.currency.as_str()).collect();
        match (matching.first(), currencies.len()) {
            (Some(a), 1) => Ok(a.currency.clone()),
            (None, _) => Err(ValueError(format!(
                "is required: customer {} has no sales area matching the order's in the master data",
                order.customer_id
            ))),
            _ => Err(ValueError(format!(
                "is required: customer {} has sales areas in several currencies in the master \
                 data (name the sales_organization, distribution_channel and division)",
                order.customer_id
            ))),
        }
    }
}

/// The bulk upsert body as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MasterDataDraft {
    /// Materials to insert or replace. A SKU named twice: the last entry wins.
    pub materials: Option<Vec<MaterialDraft>>,
    /// Customers to insert or replace, with sales areas to insert or replace. A customer named
    /// twice: the last entry's name, the sales areas of every entry (a sales area named twice:
    /// the last entry's currency).
    pub customers: Option<Vec<CustomerDraft>>,
}

/// One material as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaterialDraft {
    /// Material number (SAP `Product`). Required.
    #[cfg_attr(feature = "openapi", schema(example = "TG11"))]
    pub sku: Option<String>,
    /// SAP base unit code (SAP `BaseUnit`). Required.
    #[cfg_attr(feature = "openapi", schema(example = "PC"))]
    pub base_unit: Option<String>,
    /// ISO code of the base unit (SAP `BaseISOUnit`).
    #[cfg_attr(feature = "openapi", schema(example = "PCE"))]
    pub iso_unit: Option<String>,
    /// Decimal string, net price per base unit; with `currency`.
    #[cfg_attr(feature = "openapi", schema(example = "12.50"))]
    pub price: Option<String>,
    /// Currency of `price`; required with it.
    #[cfg_attr(feature = "openapi", schema(example = "EUR"))]
    pub currency: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// One customer as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerDraft {
    /// Customer number. Required.
    #[cfg_attr(feature = "openapi", schema(example = "17100001"))]
    pub customer_id: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Sales areas (upserted; areas not named are kept).
    pub sales_areas: Option<Vec<SalesAreaDraft>>,
}

/// One sales area as sent.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SalesAreaDraft {
    /// SAP sales organization. Required.
    #[cfg_attr(feature = "openapi", schema(example = "1010"))]
    pub sales_organization: Option<String>,
    /// SAP distribution channel. Required.
    #[cfg_attr(feature = "openapi", schema(example = "10"))]
    pub distribution_channel: Option<String>,
    /// SAP division. Required.
    #[cfg_attr(feature = "openapi", schema(example = "00"))]
    pub division: Option<String>,
    /// The customer's currency in this sales area. Required.
    #[cfg_attr(feature = "openapi", schema(example = "EUR"))]
    pub currency: Option<String>,
}

/// A validated upsert. An upload naming one key twice is taken as the same entries sent in
/// uploads one after the other: the last entry wins. A material named twice is the last
/// entry; a customer named twice has the last entry's name and the sales areas of every entry,
/// a sales area named twice (by one customer) the last entry's currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterDataUpsert {
    /// Materials, each SKU once (where it was first named, with its last entry's values).
    pub materials: Vec<Material>,
    /// Customers, each id once, each sales area once.
    pub customers: Vec<Customer>,
}

/// Puts `area` among `areas`: in place of the one with its key, else at the end.
fn upsert_area(areas: &mut Vec<SalesArea>, area: SalesArea) {
    let same = |a: &SalesArea| {
        a.sales_organization == area.sales_organization
            && a.distribution_channel == area.distribution_channel
            && a.division == area.division
    };
    match areas.iter_mut().find(|a| same(a)) {
        Some(a) => *a = area,
        None => areas.push(area),
    }
}

fn parse_description(raw: &str) -> Result<String, ValueError> {
    let len = raw.chars().count();
    if len > MAX_DESCRIPTION_LEN {
        return Err(ValueError(format!(
            "must be at most {MAX_DESCRIPTION_LEN} characters (got {len})"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(ValueError("must not contain control characters".into()));
    }
    Ok(raw.to_owned())
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn take<T>(
        &mut self,
        field: &str,
        raw: Option<&String>,
        required: bool,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match raw {
            None if required => {
                self.0.push(FieldError::new(field, "is required"));
                None
            }
            None => None,
            Some(raw) => match parse(raw) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.0.push(FieldError::new(field, e.0));
                    None
                }
            },
        }
    }

    fn count(&mut self, field: &str, n: usize) {
        if n > MAX_UPSERT_ENTRIES {
            self.0.push(FieldError::new(
                field,
                format!("must contain at most {MAX_UPSERT_ENTRIES} entries (got {n})"),
            ));
        }
    }
}

impl MasterDataDraft {
    /// Validates the upsert, reporting every offending field at once. A key named twice is no
    /// error: the last entry wins (see [`MasterDataUpsert`]).
    pub fn parse(&self) -> Result<MasterDataUpsert, Vec<FieldError>> {
        let mut e = Errors(Vec::new());
        let mut out = MasterDataUpsert::default();
        let materials = self.materials.as_deref().unwrap_or_default();
        e.count("materials", materials.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, m) in materials.iter().enumerate() {
            let at = |f: &str| format!("materials[{i}].{f}");
            let sku = e.take(&at("sku"), m.sku.as_ref(), true, Sku::parse);
            let base_unit = e.take(&at("base_unit"), m.base_unit.as_ref(), true, Unit::parse);
            let iso_unit = e.take(&at("iso_unit"), m.iso_unit.as_ref(), false, Unit::parse);
            let amount = e.take(&at("price"), m.price.as_ref(), false, Money::parse);
            let currency = e.take(
                &at("currency"),
                m.currency.as_ref(),
                false,
                CurrencyCode::parse,
            );
            let description = e.take(
                &at("description"),
                m.description.as_ref(),
                false,
                parse_description,
            );
            match (&m.price, &m.currency) {
                (Some(_), None) => {
                    e.0.push(FieldError::new(at("currency"), "is required with a price"))
                }
                (None, Some(_)) => {
                    e.0.push(FieldError::new(at("price"), "is required with a currency"))
                }
                _ => {}
            }
            if let (Some(sku), Some(base_unit)) = (sku, base_unit) {
                let price = match (amount, currency) {
                    (Some(amount), Some(currency)) => Some(Price { amount, currency }),
                    _ => None,
                };
                let material = Material {
                    sku,
                    base_unit,
                    iso_unit,
                    price,
                    description,
                };
                match seen.get(material.sku.as_str()) {
                    Some(&at) => out.materials[at] = material,
                    None => {
                        seen.insert(material.sku.as_str().to_owned(), out.materials.len());
                        out.materials.push(material);
                    }
                }
            }
        }
        let customers = self.customers.as_deref().unwrap_or_default();
        e.count("customers", customers.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, c) in customers.iter().enumerate() {
            let at = |f: &str| format!("customers[{i}].{f}");
            let customer_id = e.take(
                &at("customer_id"),
                c.customer_id.as_ref(),
                true,
                CustomerId::parse,
            );
            let name = e.take(&at("name"), c.name.as_ref(), false, parse_description);
            let mut areas = Vec::new();
            for (j, a) in c
                .sales_areas
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let at = |f: &str| format!("customers[{i}].sales_areas[{j}].{f}");
                let so = e.take(
                    &at("sales_organization"),
                    a.sales_organization.as_ref(),
                    true,
                    SalesOrganization::parse,
                );
                let dc = e.take(
                    &at("distribution_channel"),
                    a.distribution_channel.as_ref(),
                    true,
                    DistributionChannel::parse,
                );
                let dv = e.take(&at("division"), a.division.as_ref(), true, Division::parse);
                let cur = e.take(
                    &at("currency"),
                    a.currency.as_ref(),
                    true,
                    CurrencyCode::parse,
                );
                if let (Some(so), Some(dc), Some(dv), Some(cur)) = (so, dc, dv, cur) {
                    upsert_area(
                        &mut areas,
                        SalesArea {
                            sales_organization: so,
                            distribution_channel: dc,
                            division: dv,
                            currency: cur,
                        },
                    );
                }
            }
            if let Some(customer_id) = customer_id {
                match seen.get(customer_id.as_str()) {
                    Some(&at) => {
                        // As a second upload would: its name, its areas upserted onto those kept.
                        let earlier = &mut out.customers[at];
                        earlier.name = name;
                        for area in areas {
                            upsert_area(&mut earlier.sales_areas, area);
                        }
                    }
                    None => {
                        seen.insert(customer_id.as_str().to_owned(), out.customers.len());
                        out.customers.push(Customer {
                            customer_id,
                            name,
                            sales_areas: areas,
                        });
                    }
                }
            }
        }
        if e.0.is_empty() { Ok(out) } else { Err(e.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(v: serde_json::Value) -> MasterDataDraft {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_valid_upsert_parses_with_prices_and_sales_areas() {
        let u = draft(serde_json::json!({
            "materials": [{"sku":"TG11","base_unit":"PC","iso_unit":"PCE","price":"12.50","currency":"EUR","description":"Trading good 11"},
                          {"sku":"TG12","base_unit":"PC"}],
            "customers": [{"customer_id":"17100001","name":"Domestic Customer DE 1",
                           "sales_areas":[{"sales_organization":"1010","distribution_channel":"10","division":"00","currency":"EUR"}]}]
        }))
        .parse()
        .unwrap();
        assert_eq!(u.materials.len(), 2);
        assert_eq!(
            u.materials[0].price.as_ref().unwrap().currency.as_str(),
            "EUR"
        );
        assert!(u.materials[1].price.is_none());
        assert_eq!(u.customers[0].sales_areas.len(), 1);
    }

    #[test]
    fn every_bad_master_data_field_is_named_at_once() {
        let errors = draft(serde_json::json!({
            "materials": [{"sku":"TG11","base_unit":"PIECE"},
                          {"sku":"TG12","base_unit":"PC","price":"1.00"},
                          {"sku":"TG13","base_unit":"PC","currency":"EUR"}],
            "customers": [{"customer_id":"17100001","sales_areas":[{"sales_organization":"1010","distribution_channel":"10","division":"00","currency":"eur"}]},
                          {"name":"no id"}]
        }))
        .parse()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "materials[0].base_unit",
                "materials[1].currency",
                "materials[2].price",
                "customers[0].sales_areas[0].currency",
                "customers[1].customer_id"
            ]
        );
    }

    #[test]
    fn a_key_named_twice_in_one_upsert_takes_the_last_entry_as_a_second_upload_would() {
        let u = draft(serde_json::json!({
            "materials": [{"sku":"TG11","base_unit":"PC","price":"12.50","currency":"EUR"},
                          {"sku":"TG12","base_unit":"PC"},
                          {"sku":"TG11","base_unit":"KG","description":"second"}],
            "customers": [{"customer_id":"17100001","name":"first",
                           "sales_areas":[{"sales_organization":"1010","distribution_channel":"10","division":"00","currency":"EUR"},
                                          {"sales_organization":"1710","distribution_channel":"10","division":"00","currency":"USD"},
                                          {"sales_organization":"1010","distribution_channel":"10","division":"00","currency":"CHF"}]},
                          {"customer_id":"17100001","name":"second",
                           "sales_areas":[{"sales_organization":"1710","distribution_channel":"10","division":"00","currency":"CAD"},
                                          {"sales_organization":"2010","distribution_channel":"10","division":"00","currency":"GBP"}]}]
        }))
        .parse()
        .unwrap();
        let skus: Vec<&str> = u.materials.iter().map(|m| m.sku.as_str()).collect();
        assert_eq!(skus, ["TG11", "TG12"], "each SKU once");
        let tg11 = &u.materials[0];
        assert_eq!(tg11.base_unit.as_str(), "KG", "the last entry");
        assert!(tg11.price.is_none(), "the last entry names no price");
        assert_eq!(tg11.description.as_deref(), Some("second"));
        assert_eq!(u.customers.len(), 1);
        let c = &u.customers[0];
        assert_eq!(c.name.as_deref(), Some("second"));
        let areas: Vec<(&str, &str)> = c
            .sales_areas
            .iter()
            .map(|a| (a.sales_organization.as_str(), a.currency.as_str()))
            .collect();
        assert_eq!(areas, [("1010", "CHF"), ("1710", "CAD"), ("2010", "GBP")]);
    }
}
