//! The emulator's configuration: every `SAP_MOCK_*` variable, read once at start.
//!
//! This is the only module that reads the environment (through [`platform::config::EnvReader`],
//! which reports every bad variable at once). Each field documents the variable that sets it;
//! `docs/sap-mock.md` is the operator's copy of this list.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform::config::{ConfigError, EnvReader};
use platform::telemetry::LogFormat;

use crate::faults::{ErrorStatus, FaultSettings, Outage};
use crate::numbering::NumberRange;

/// Default internal number range of order type OR.
pub const DEFAULT_INTERNAL_RANGE: NumberRange = NumberRange {
    from: 1_000_001,
    to: 7_999_999_999,
};

/// Default external number range (the order service hands out numbers from 8000000000).
pub const DEFAULT_EXTERNAL_RANGE: NumberRange = NumberRange {
    from: 8_000_000_000,
    to: 9_999_999_999,
};

/// A user allowed to log on (`SAP_MOCK_USERS=name:password,...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Logon name (case-insensitive, as SAP's).
    pub name: String,
    /// Password (case-sensitive).
    pub password: String,
}

/// Everything the emulator needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SAP_MOCK_BIND` (default `0.0.0.0`): address to listen on.
    pub bind: IpAddr,
    /// `SAP_MOCK_PORT` (default 8082; 0 picks a free port).
    pub port: u16,
    /// `SAP_MOCK_USERS`: `name:password` pairs, comma-separated. Empty = anonymous access.
    pub users: Vec<User>,
    /// `SAP_MOCK_DATA_DIR` (default `.data/sap-mock`, inside the project's ignored data
    /// folder): the embedded store lives here.
    pub data_dir: PathBuf,
    /// `SAP_MOCK_MASTER_DATA`: a JSON file of customers/materials added to the demo data.
    pub master_data_file: Option<PathBuf>,
    /// `SAP_MOCK_CLIENT` (default `100`): the SAP client (`sap-client`) this system has.
    pub sap_client: String,
    /// `SAP_MOCK_SYSTEM_ID` (default `MCK`): the system id in cookie names.
    pub system_id: String,
    /// `SAP_MOCK_INTERNAL_RANGE` (default `1000001-7999999999`): the order type's internal number
    /// range; creates without `SalesOrder` are numbered from it.
    pub internal_range: NumberRange,
    /// `SAP_MOCK_FIRST_SALES_ORDER` (default: the internal range's first number): where internal
    /// numbering starts in an empty store; must lie in the internal range.
    pub first_sales_order: u64,
    /// `SAP_MOCK_EXTERNAL_RANGE` (default `8000000000-9999999999`): the order type's external
    /// number range; a create naming a `SalesOrder` in it keeps that number. Must not overlap
    /// the internal range.
    pub external_range: NumberRange,
    /// `SAP_MOCK_REPEATABILITY` (default false): SAP Gateway's repeatable requests
    /// (`RequestID` + `RepeatabilityCreation`) are honoured.
    pub repeatability: bool,
    /// `SAP_MOCK_REPEATABILITY_WINDOW_S` (default 14400 = 4 h): how long a repeat gets the first
    /// answer.
    pub repeatability_window: Duration,
    /// `SAP_MOCK_PAGE_SIZE` (default 1000): server-side page size; longer lists get `__next`.
    pub page_size: usize,
    /// `SAP_MOCK_MAX_BODY_BYTES` (default 1 MiB): larger bodies get 413.
    pub max_body_bytes: usize,
    /// `SAP_MOCK_ADMIN_TOKEN`: when set, the admin endpoint requires `Authorization: Bearer`.
    pub admin_token: Option<String>,
    /// `SAP_MOCK_SHUTDOWN_GRACE_MS` (default 5000): how long open requests may finish.
    pub shutdown_grace: Duration,
    /// `SAP_MOCK_LOG_FORMAT` (`text` or `json`, default `text`).
    pub log_format: LogFormat,
    /// OpenTelemetry traces (the standard `OTEL_*` variables; off without an endpoint).
    pub otel: platform::telemetry::OtelConfig,
    /// Fault knobs at start (`SAP_MOCK_LATENCY_MS` and friends); changeable at runtime.
    pub faults: FaultSettings,
    /// `SAP_MOCK_REJECTION_REASONS` (comma-separated, default [`DEFAULT_REJECTION_REASONS`]):
    /// the reasons for rejection configured in the system (S/4's table TVAG); an item's
    /// `SalesDocumentRjcnReason` must be one of them.
    pub rejection_reasons: Vec<String>,
    /// `SAP_MOCK_REQUIRE_IF_MATCH` (default true): a change or delete of a sales order without
    /// `If-Match` is refused with 428, as S/4 does for entities with an ETag.
    pub require_if_match: bool,
    /// `SAP_MOCK_BILLING_RELEVANCE` (`delivery`, the default, or `order`): how the emulator's
    /// items are billed, see [`BillingRelevance`].
    pub billing_relevance: BillingRelevance,
}

/// SAP's standard reasons for rejection (table TVAG as SAP delivers it), see docs/sap-mock.md.
pub const DEFAULT_REJECTION_REASONS: &[&str] = sap_odata::STANDARD_REJECTION_REASONS;

/// How the items are billed: the billing relevance of their item category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingRelevance {
    /// Delivery-related billing (item category `TAN`, S/4's standard item): the invoice refers
    /// to the delivery; billing needs a delivery first and the order's order-related billing
    /// statuses stay empty (not relevant).
    Delivery,
    /// Order-related billing: the invoice refers to the order item; the item's
    /// `OrderRelatedBillingStatus` and the header's `OverallOrdReltdBillgStatus` move `A` → `C`.
    Order,
}

impl std::str::FromStr for BillingRelevance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "delivery" => Ok(Self::Delivery),
            "order" => Ok(Self::Order),
            other => Err(format!("expected delivery or order, got {other:?}")),
        }
    }
}

/// Parses `00,01,...`: two characters at most each (the field's length), upper case.
pub fn parse_rejection_reasons(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            if r.chars().count() <= 2 && r.chars().all(|c| c.is_ascii_alphanumeric()) {
                Ok(r.to_ascii_uppercase())
            } else {
                Err(format!(
                    "expected codes of one or two letters or digits, got {r:?}"
                ))
            }
        })
        .collect()
}

impl Config {
    /// Defaults for tests: port 0, anonymous, the given data folder, no faults.
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            users: Vec::new(),
            data_dir: data_dir.into(),
            master_data_file: None,
            sap_client: "100".to_owned(),
            system_id: "MCK".to_owned(),
            internal_range: DEFAULT_INTERNAL_RANGE,
            first_sales_order: DEFAULT_INTERNAL_RANGE.from,
            external_range: DEFAULT_EXTERNAL_RANGE,
            repeatability: false,
            repeatability_window: Duration::from_secs(4 * 3600),
            page_size: 1000,
            max_body_bytes: 1024 * 1024,
            admin_token: None,
            shutdown_grace: Duration::from_secs(5),
            log_format: LogFormat::Text,
            otel: platform::telemetry::OtelConfig::off("sap-mock"),
            faults: FaultSettings::default(),
            rejection_reasons: default_rejection_reasons(),
            require_if_match: true,
            billing_relevance: BillingRelevance::Delivery,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(EnvReader::from_process())
    }

    /// Reads the variables of `r` (tests pass a map).
    pub fn from_reader(mut r: EnvReader) -> Result<Self, ConfigError> {
        let users = match r.raw("SAP_MOCK_USERS") {
            None => Vec::new(),
            Some(raw) => parse_users(&raw).unwrap_or_else(|e| {
                r.problem(format!("SAP_MOCK_USERS: {e}"));
                Vec::new()
            }),
        };
        let faults = FaultSettings {
            latency_ms: r.read("SAP_MOCK_LATENCY_MS", 0),
            latency_jitter_ms: r.read("SAP_MOCK_LATENCY_JITTER_MS", 0),
            tail_rate: r.read("SAP_MOCK_TAIL_RATE", 0.0),
            tail_ms: r.read("SAP_MOCK_TAIL_MS", 0),
            error_rate: r.read("SAP_MOCK_ERROR_RATE", 0.0),
            error_status: r.read("SAP_MOCK_ERROR_STATUS", ErrorStatus::Mixed),
            hang_rate: r.read("SAP_MOCK_HANG_RATE", 0.0),
            hang_ms: r.read("SAP_MOCK_HANG_MS", 120_000),
            outage: r.read("SAP_MOCK_OUTAGE", Outage::Off),
            lost_response_rate: r.read("SAP_MOCK_LOST_RESPONSE_RATE", 0.0),
            max_connections: r.read_opt("SAP_MOCK_MAX_CONNECTIONS"),
            gzip_responses: r.read_bool("SAP_MOCK_GZIP_RESPONSES", false),
        };
        if let Err(e) = faults.validate() {
            r.problem(e);
        }
        let internal_range = r.read("SAP_MOCK_INTERNAL_RANGE", DEFAULT_INTERNAL_RANGE);
        let rejection_reasons = match r.raw("SAP_MOCK_REJECTION_REASONS") {
            None => default_rejection_reasons(),
            Some(raw) => parse_rejection_reasons(&raw).unwrap_or_else(|e| {
                r.problem(format!("SAP_MOCK_REJECTION_REASONS: {e}"));
                Vec::new()
            }),
        };
        let config = Self {
            bind: r.read("SAP_MOCK_BIND", IpAddr::from([0, 0, 0, 0])),
            port: r.read("SAP_MOCK_PORT", 8082),
            users,
            data_dir: PathBuf::from(r.read_string("SAP_MOCK_DATA_DIR", ".data/sap-mock")),
            master_data_file: r.raw("SAP_MOCK_MASTER_DATA").map(PathBuf::from),
            sap_client: r.read_string("SAP_MOCK_CLIENT", "100"),
            system_id: r.read_string("SAP_MOCK_SYSTEM_ID", "MCK"),
            internal_range,
            first_sales_order: r.read("SAP_MOCK_FIRST_SALES_ORDER", internal_range.from),
            external_range: r.read("SAP_MOCK_EXTERNAL_RANGE", DEFAULT_EXTERNAL_RANGE),
            repeatability: r.read_bool("SAP_MOCK_REPEATABILITY", false),
            repeatability_window: Duration::from_secs(
                r.read("SAP_MOCK_REPEATABILITY_WINDOW_S", 4 * 3600),
            ),
            page_size: r.read("SAP_MOCK_PAGE_SIZE", 1000),
            max_body_bytes: r.read("SAP_MOCK_MAX_BODY_BYTES", 1024 * 1024),
            admin_token: r.raw("SAP_MOCK_ADMIN_TOKEN"),
            shutdown_grace: Duration::from_millis(r.read("SAP_MOCK_SHUTDOWN_GRACE_MS", 5000)),
            log_format: r.read("SAP_MOCK_LOG_FORMAT", LogFormat::Text),
            otel: platform::telemetry::OtelConfig::read(&mut r, "sap-mock"),
            faults,
            rejection_reasons,
            require_if_match: r.read_bool("SAP_MOCK_REQUIRE_IF_MATCH", true),
            billing_relevance: r.read("SAP_MOCK_BILLING_RELEVANCE", BillingRelevance::Delivery),
        };
        if config.sap_client.len() != 3 || !config.sap_client.bytes().all(|b| b.is_ascii_digit()) {
            r.problem("SAP_MOCK_CLIENT: expected three digits, e.g. 100");
        }
        if config.page_size == 0 {
            r.problem("SAP_MOCK_PAGE_SIZE: must be at least 1");
        }
        if !config.internal_range.contains(config.first_sales_order) {
            r.problem(format!(
                "SAP_MOCK_FIRST_SALES_ORDER: must lie in the internal number range {}",
                config.internal_range
            ));
        }
        if config.internal_range.overlaps(&config.external_range) {
            r.problem(format!(
                "SAP_MOCK_INTERNAL_RANGE {} and SAP_MOCK_EXTERNAL_RANGE {} overlap",
                config.internal_range, config.external_range
            ));
        }
        r.finish()?;
        Ok(config)
    }
}

fn default_rejection_reasons() -> Vec<String> {
    DEFAULT_REJECTION_REASONS
        .iter()
        .map(|r| (*r).to_owned())
        .collect()
}

/// Parses `name:password,name2:password2`.
pub fn parse_users(raw: &str) -> Result<Vec<User>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once(':') {
            Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok(User {
                name: n.to_owned(),
                password: p.to_owned(),
            }),
            _ => Err(format!("expected name:password pairs, got {pair:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_reader(EnvReader::from_map(map))
    }

    #[test]
    fn defaults_follow_the_architecture() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8082);
        assert!(c.users.is_empty());
        assert_eq!(c.sap_client, "100");
        assert_eq!(c.faults, FaultSettings::default());
        assert!(c.require_if_match);
        assert_eq!(c.billing_relevance, BillingRelevance::Delivery);
        assert!(c.rejection_reasons.iter().any(|r| r == "03"));
    }

    #[test]
    fn rejection_reasons_if_match_and_billing_are_read_and_checked() {
        let c = config(&[
            ("SAP_MOCK_REJECTION_REASONS", "01, z1"),
            ("SAP_MOCK_REQUIRE_IF_MATCH", "false"),
            ("SAP_MOCK_BILLING_RELEVANCE", "order"),
        ])
        .unwrap();
        assert_eq!(c.rejection_reasons, ["01", "Z1"]);
        assert!(!c.require_if_match);
        assert_eq!(c.billing_relevance, BillingRelevance::Order);
        assert!(config(&[("SAP_MOCK_REJECTION_REASONS", "001")]).is_err());
        assert!(config(&[("SAP_MOCK_BILLING_RELEVANCE", "never")]).is_err());
    }

    #[test]
    fn users_and_fault_knobs_are_read() {
        let c = config(&[
            ("SAP_MOCK_USERS", "alice:secret, bob:pw"),
            ("SAP_MOCK_LATENCY_MS", "25"),
            ("SAP_MOCK_ERROR_RATE", "0.5"),
            ("SAP_MOCK_OUTAGE", "reset"),
            ("SAP_MOCK_MAX_CONNECTIONS", "8"),
        ])
        .unwrap();
        assert_eq!(c.users.len(), 2);
        assert_eq!(c.users[1].name, "bob");
        assert_eq!(c.faults.latency_ms, 25);
        assert_eq!(c.faults.outage, Outage::Reset);
        assert_eq!(c.faults.max_connections, Some(8));
    }

    #[test]
    fn number_ranges_default_to_internal_below_external_and_are_validated() {
        let c = config(&[]).unwrap();
        assert_eq!(c.internal_range, DEFAULT_INTERNAL_RANGE);
        assert_eq!(c.first_sales_order, 1_000_001);
        assert_eq!(c.external_range.to_string(), "8000000000-9999999999");
        let c = config(&[("SAP_MOCK_FIRST_SALES_ORDER", "5000000")]).unwrap();
        assert_eq!(c.first_sales_order, 5_000_000);
        for bad in [
            vec![("SAP_MOCK_EXTERNAL_RANGE", "7000000000-8999999999")],
            vec![
                ("SAP_MOCK_INTERNAL_RANGE", "1-100"),
                ("SAP_MOCK_FIRST_SALES_ORDER", "101"),
            ],
            vec![("SAP_MOCK_FIRST_SALES_ORDER", "8000000000")],
            vec![("SAP_MOCK_INTERNAL_RANGE", "100-1")],
        ] {
            assert!(config(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_bad_variable_is_reported_together() {
        let e = config(&[
            ("SAP_MOCK_PORT", "http"),
            ("SAP_MOCK_USERS", "nopassword"),
            ("SAP_MOCK_ERROR_RATE", "2"),
            ("SAP_MOCK_CLIENT", "1000"),
        ])
        .unwrap_err();
        assert_eq!(e.problems.len(), 4, "{e}");
    }
}
