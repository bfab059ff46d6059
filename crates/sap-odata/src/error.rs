//! The OData V2 error body, as SAP Gateway writes it.
//!
//! Minimum that SAP's JavaScript client reads: `error.message.value`. SAP also sends `code`
//! (message class and number, e.g. `V1/320`) and an `innererror` with the application, a
//! transaction id, a timestamp, resolution hints and `errordetails`; other clients read those.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::SERVICE_NAME;

/// `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ODataError {
    /// The error.
    pub error: ErrorBody,
}

/// The `error` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// SAP message id, `CLASS/NUMBER` (e.g. `V1/320`).
    pub code: String,
    /// The human message.
    pub message: ErrorMessage,
    /// SAP's technical details; optional for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub innererror: Option<InnerError>,
}

/// `error.message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// Language (`en`).
    pub lang: String,
    /// The message text; what SAP's client puts in its exception message.
    pub value: String,
}

/// `error.innererror`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnerError {
    /// Which service raised it.
    pub application: Application,
    /// 32 upper-case hex digits.
    pub transactionid: String,
    /// `YYYYMMDDhhmmss.fffffff` (UTC).
    pub timestamp: String,
    /// Where to look for help.
    #[serde(rename = "Error_Resolution")]
    pub error_resolution: ErrorResolution,
    /// Every message raised, the first being the one in `message`.
    pub errordetails: Vec<ErrorDetail>,
}

/// `innererror.application`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// Application component (`SD-SLS-API`).
    pub component_id: String,
    /// `/SAP/`.
    pub service_namespace: String,
    /// `API_SALES_ORDER_SRV`.
    pub service_id: String,
    /// `0001`.
    pub service_version: String,
}

/// `innererror.Error_Resolution`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResolution {
    /// Transaction hint.
    #[serde(rename = "SAP_Transaction")]
    pub sap_transaction: String,
    /// Note hint.
    #[serde(rename = "SAP_Note")]
    pub sap_note: String,
}

/// One entry of `innererror.errordetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Message id.
    pub code: String,
    /// Text.
    pub message: String,
    /// Property the message is about, or `""`.
    pub propertyref: String,
    /// `error`, `warning`, `info`.
    pub severity: String,
    /// Target, or `""`.
    pub target: String,
}

impl ODataError {
    /// An error with code and English message and no inner error.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorBody {
                code: code.into(),
                message: ErrorMessage {
                    lang: "en".to_owned(),
                    value: message.into(),
                },
                innererror: None,
            },
        }
    }

    /// Adds SAP's `innererror`, repeating the message in `errordetails` (with `propertyref`
    /// when the error is about one property).
    pub fn with_inner_error(
        mut self,
        transaction_id: impl Into<String>,
        at: DateTime<Utc>,
        property: Option<&str>,
    ) -> Self {
        let detail = ErrorDetail {
            code: self.error.code.clone(),
            message: self.error.message.value.clone(),
            propertyref: property.unwrap_or_default().to_owned(),
            severity: "error".to_owned(),
            target: String::new(),
        };
        self.error.innererror = Some(InnerError {
            application: Application {
                component_id: "SD-SLS-API".to_owned(),
                service_namespace: "/SAP/".to_owned(),
                service_id: SERVICE_NAME.to_owned(),
                service_version: "0001".to_owned(),
            },
            transactionid: transaction_id.into(),
            timestamp: format!(
                "{}.{:07}",
                at.format("%Y%m%d%H%M%S"),
                at.timestamp_subsec_nanos() / 100
            ),
            error_resolution: ErrorResolution {
                sap_transaction: "For backend administrators: use ADT feed reader \"SAP Gateway Error Log\" or run transaction /IWFND/ERROR_LOG on SAP Gateway hub system and search for entries with the timestamp above for more details".to_owned(),
                sap_note: "See SAP Note 1797736 for error analysis (https://service.sap.com/sap/support/notes/1797736)".to_owned(),
            },
            errordetails: vec![detail],
        });
        self
    }

    /// The message text (`error.message.value`).
    pub fn message(&self) -> &str {
        &self.error.message.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_body_is_what_the_sdk_reads() {
        let e = ODataError::new("V1/320", "Enter a sold-to party");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":{"code":"V1/320","message":{"lang":"en","value":"Enter a sold-to party"}}}"#
        );
    }

    #[test]
    fn the_inner_error_carries_sap_fields() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T14:20:57.381Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = ODataError::new("V1/320", "Enter a sold-to party").with_inner_error(
            "ABC",
            at,
            Some("SoldToParty"),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v["error"]["innererror"]["timestamp"],
            "20261124142057.3810000"
        );
        assert_eq!(
            v["error"]["innererror"]["errordetails"][0]["propertyref"],
            "SoldToParty"
        );
        assert!(v["error"]["innererror"]["Error_Resolution"]["SAP_Note"].is_string());
        let back: ODataError = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
