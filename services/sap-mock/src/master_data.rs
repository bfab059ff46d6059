//! Master data: the customers, materials, sales areas and order types orders are checked
//! against and priced from.
//!
//! The default catalogue follows SAP's best-practice demo data (company 1010, Germany):
//! sales organization 1010, distribution channel 10, division 00, order type OR, domestic
//! customers 17100001.. and trading goods TG10..TG15 priced in EUR per piece. A JSON file
//! (`SAP_MOCK_MASTER_DATA`) adds entries or overrides them by id; its shape is [`MasterDataFile`]
//! and `docs/sap-mock.md` shows an example.

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A sales area (organization, channel, division) and its document currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesArea {
    /// Sales organization (`1010`).
    pub sales_organization: String,
    /// Distribution channel (`10`).
    pub distribution_channel: String,
    /// Division (`00`).
    pub division: String,
    /// Currency of orders in this area (`EUR`).
    pub currency: String,
}

/// A customer (business partner) that can be the sold-to party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Customer number (`17100001`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Payment terms copied into orders (`0004`).
    #[serde(default)]
    pub payment_terms: String,
    /// Incoterms (`EXW`).
    #[serde(default)]
    pub incoterms: String,
}

/// A material that can be ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Material {
    /// Material number (`TG11`).
    pub id: String,
    /// Description, copied to `SalesOrderItemText`.
    pub description: String,
    /// Base unit (SAP internal, `PC`); orders must use it.
    pub base_unit: String,
    /// ISO code of the base unit (`PCE`).
    pub iso_unit: String,
    /// Net price per base unit.
    pub price: Decimal,
    /// Currency of the price.
    pub currency: String,
    /// Material group (`L001`).
    #[serde(default)]
    pub material_group: String,
    /// Gross weight per base unit.
    #[serde(default)]
    pub gross_weight: Decimal,
    /// Net weight per base unit.
    #[serde(default)]
    pub net_weight: Decimal,
    /// Weight unit (`KG`).
    #[serde(default)]
    pub weight_unit: String,
}

/// The shape of the master data file: every list optional; entries replace defaults by id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MasterDataFile {
    /// Sales areas to add.
    pub sales_areas: Vec<SalesArea>,
    /// Order types to add (`OR`, `TA`, ...).
    pub order_types: Vec<String>,
    /// Customers to add or replace.
    pub customers: Vec<Customer>,
    /// Materials to add or replace.
    pub materials: Vec<Material>,
}

/// The catalogue in force.
#[derive(Debug, Clone, Serialize)]
pub struct MasterData {
    /// Sales areas.
    pub sales_areas: Vec<SalesArea>,
    /// Order types.
    pub order_types: Vec<String>,
    /// Customers by id.
    pub customers: BTreeMap<String, Customer>,
    /// Materials by id.
    pub materials: BTreeMap<String, Material>,
}

/// Why the master data file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MasterDataError {
    /// The file could not be read.
    #[error("cannot read master data file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid master data JSON.
    #[error("master data file {path} is invalid: {source}")]
    Parse {
        /// The path.
        path: String,
        /// The cause.
        source: serde_json::Error,
    },
}

impl MasterData {
    /// SAP's best-practice demo data.
    pub fn demo() -> Self {
        let mut customers = BTreeMap::new();
        for n in 1..=10 {
            let id = format!("171000{n:02}");
            customers.insert(
                id.clone(),
                Customer {
                    id,
                    name: format!("Domestic Customer DE {n}"),
                    payment_terms: "0004".to_owned(),
                    incoterms: "EXW".to_owned(),
                },
            );
        }
        let goods = [
            (
                "TG10",
                "Trading Good 10, PD, Reorder Point",
                Decimal::new(1000, 2),
            ),
            (
                "TG11",
                "Trading Good 11, PD, Reorder Point",
                Decimal::new(1250, 2),
            ),
            (
                "TG12",
                "Trading Good 12, PD, Stock Transfer",
                Decimal::new(1800, 2),
            ),
            (
                "TG13",
                "Trading Good 13, PD, Serial Number",
                Decimal::new(2200, 2),
            ),
            ("TG14", "Trading Good 14, PD, Batch", Decimal::new(2500, 2)),
            (
                "TG15",
                "Trading Good 15, PD, Third Party",
                Decimal::new(3000, 2),
            ),
        ];
        let materials = goods
            .into_iter()
            .map(|(id, description, price)| {
                (
                    id.to_owned(),
                    Material {
                        id: id.to_owned(),
                        description: description.to_owned(),
                        base_unit: "PC".to_owned(),
                        iso_unit: "PCE".to_owned(),
                        price,
                        currency: "EUR".to_owned(),
                        material_group: "L001".to_owned(),
                        gross_weight: Decimal::new(1, 0),
                        net_weight: Decimal::new(9, 1),
                        weight_unit: "KG".to_owned(),
                    },
                )
            })
            .collect();
        Self {
            sales_areas: vec![SalesArea {
                sales_organization: "1010".to_owned(),
                distribution_channel: "10".to_owned(),
                division: "00".to_owned(),
                currency: "EUR".to_owned(),
            }],
            order_types: vec!["OR".to_owned()],
            customers,
            materials,
        }
    }

    /// The demo data extended by `file`.
    pub fn extended(mut self, file: MasterDataFile) -> Self {
        for area in file.sales_areas {
            self.sales_areas.retain(|a| {
                (&a.sales_organization, &a.distribution_channel, &a.division)
                    != (
                        &area.sales_organization,
                        &area.distribution_channel,
                        &area.division,
                    )
            });
            self.sales_areas.push(area);
        }
        for t in file.order_types {
            if !self.order_types.contains(&t) {
                self.order_types.push(t);
            }
        }
        for c in file.customers {
            self.customers.insert(c.id.clone(), c);
        }
        for m in file.materials {
            self.materials.insert(m.id.clone(), m);
        }
        self
    }

    /// The demo data, extended by the file at `path` when given.
    pub fn load(path: Option<&Path>) -> Result<Self, MasterDataError> {
        let demo = Self::demo();
        let Some(path) = path else { return Ok(demo) };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MasterDataError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: MasterDataFile =
            serde_json::from_str(&text).map_err(|source| MasterDataError::Parse {
                path: shown,
                source,
            })?;
        Ok(demo.extended(file))
    }

    /// The sales area with these codes.
    pub fn sales_area(&self, org: &str, channel: &str, division: &str) -> Option<&SalesArea> {
        self.sales_areas.iter().find(|a| {
            a.sales_organization == org
                && a.distribution_channel == channel
                && a.division == division
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalogue_has_the_best_practice_entries() {
        let m = MasterData::demo();
        assert!(m.sales_area("1010", "10", "00").is_some());
        assert!(m.customers.contains_key("17100001"));
        assert_eq!(m.materials["TG11"].price, Decimal::new(1250, 2));
        assert!(m.order_types.contains(&"OR".to_owned()));
    }

    #[test]
    fn a_file_adds_and_overrides_entries_by_id() {
        let file: MasterDataFile = serde_json::from_str(
            r#"{"customers":[{"id":"17100099","name":"Test"}],
                "materials":[{"id":"TG11","description":"x","base_unit":"PC","iso_unit":"PCE","price":"1.00","currency":"EUR"}],
                "order_types":["TA"]}"#,
        )
        .unwrap();
        let m = MasterData::demo().extended(file);
        assert!(m.customers.contains_key("17100099"));
        assert!(m.customers.contains_key("17100001"));
        assert_eq!(m.materials["TG11"].price, Decimal::new(100, 2));
        assert!(m.order_types.contains(&"TA".to_owned()));
    }

    #[test]
    fn an_unknown_field_in_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("md.json");
        std::fs::write(&path, r#"{"customer":[]}"#).unwrap();
        assert!(matches!(
            MasterData::load(Some(&path)),
            Err(MasterDataError::Parse { .. })
        ));
    }
}
