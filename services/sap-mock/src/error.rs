//! The one error type of the emulator's OData face, and its one mapping to HTTP.
//!
//! Every refusal is an [`SapError`]: an HTTP status, SAP's message id (`V1/320`, ...) and text,
//! and optionally the property it is about. [`IntoResponse`] writes it as SAP Gateway does: the
//! OData error JSON with `innererror` (transaction id, timestamp, `errordetails`). 5xx bodies
//! stay generic; their cause is logged where they are raised.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use sap_odata::ODataError;
use sap_odata::filter::FilterError;
use sap_odata::payload::PayloadError;
use sap_odata::query::QueryError;
use sap_odata::uri::UriError;

/// Message ids used by the emulator. SAP's own where known (`V1/320`, `V1/302`, `V1/392`,
/// Gateway's parser GUID), otherwise SAP-like ids in the right message class.
pub mod codes {
    /// Sold-to party missing.
    pub const SOLD_TO_MISSING: &str = "V1/320";
    /// A required header field (order type, sales area) missing.
    pub const FIELD_MISSING: &str = "V1/323";
    /// Sales document not found.
    pub const DOCUMENT_NOT_FOUND: &str = "V1/302";
    /// Unknown sold-to party.
    pub const CUSTOMER_UNKNOWN: &str = "V1/317";
    /// Unknown sales area.
    pub const SALES_AREA_UNKNOWN: &str = "V1/314";
    /// Unknown order type.
    pub const ORDER_TYPE_UNKNOWN: &str = "V1/898";
    /// Item without material.
    pub const MATERIAL_MISSING: &str = "V1/391";
    /// Unknown material.
    pub const MATERIAL_UNKNOWN: &str = "V1/392";
    /// Quantity zero or negative.
    pub const QUANTITY_NOT_POSITIVE: &str = "V1/084";
    /// Unit not the material's.
    pub const UNIT_UNKNOWN: &str = "V1/802";
    /// No price in the order currency / value too large.
    pub const PRICING_FAILED: &str = "V1/803";
    /// Item number given twice or malformed.
    pub const ITEM_NUMBER_INVALID: &str = "V1/399";
    /// `SalesOrder` named on create lies outside the order type's external number range. No
    /// public SAP source gave the id of S/4's own message: chosen in class V1.
    pub const NUMBER_NOT_IN_EXTERNAL_RANGE: &str = "V1/017";
    /// `SalesOrder` named on create is taken already. No public SAP source gave the id of S/4's
    /// own message: chosen in class V1.
    pub const DOCUMENT_ALREADY_EXISTS: &str = "V1/018";
    /// `SalesDocumentRjcnReason` not among the configured reasons (table TVAG). S/4's own id
    /// is not verified: chosen in class V1.
    pub const REJECTION_REASON_UNKNOWN: &str = "V1/206";
    /// A delivered item cannot be rejected, deleted or changed in quantity. S/4's own id is not
    /// verified: chosen in class V1.
    pub const ITEM_HAS_SUBSEQUENT_DOCUMENTS: &str = "V1/087";
    /// A `$batch` body that does not parse as multipart/mixed.
    pub const BATCH_INVALID: &str = sap_odata::batch::BATCH_INVALID;
    /// A field that cannot change after creation.
    pub const FIELD_NOT_CHANGEABLE: &str = "V1/047";
    /// Malformed request body.
    pub const MALFORMED_BODY: &str = "CX_SXML_PARSE_ERROR";
    /// Property unknown to the entity type.
    pub const PROPERTY_INVALID: &str = "/IWBEP/CM_MGW_RT/021";
    /// Value of the wrong type / format.
    pub const VALUE_INVALID: &str = "/IWBEP/CM_MGW_RT/022";
    /// Value longer than the field.
    pub const VALUE_TOO_LONG: &str = "/IWBEP/CM_MGW_RT/120";
    /// `$filter` syntax (SAP Gateway's parser id).
    pub const FILTER_SYNTAX: &str = sap_odata::query::FILTER_SYNTAX;
    /// Other query option problems.
    pub const QUERY_INVALID: &str = sap_odata::query::QUERY_INVALID;
    /// Resource path unknown.
    pub const RESOURCE_NOT_FOUND: &str = "/IWFND/CM_MGW/025";
    /// Method not allowed on the resource.
    pub const METHOD_NOT_ALLOWED: &str = "/IWFND/CM_MGW/014";
    /// If-Match stale.
    pub const PRECONDITION_FAILED: &str = "/IWBEP/CM_MGW_RT/098";
    /// If-Match missing.
    pub const PRECONDITION_REQUIRED: &str = "/IWBEP/CM_MGW_RT/099";
    /// Logon failed.
    pub const LOGON_FAILED: &str = sap_odata::session::LOGON_FAILED;
    /// Body too large.
    pub const BODY_TOO_LARGE: &str = "/IWFND/CM_MGW/041";
    /// Content type not supported.
    pub const MEDIA_TYPE: &str = "/IWFND/CM_MGW/042";
    /// Injected or internal failure.
    pub const INTERNAL: &str = "/IWFND/CM_BEC/026";
    /// Service unavailable (outage, connection limit).
    pub const UNAVAILABLE: &str = "/IWFND/CM_BEC/030";
}

/// A refusal at the OData face.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SapError {
    /// HTTP status.
    pub status: StatusCode,
    /// SAP message id.
    pub code: &'static str,
    /// Message text (`error.message.value`).
    pub message: String,
    /// Property the message is about, if any.
    pub property: Option<String>,
}

impl SapError {
    /// A refusal with `status`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            property: None,
        }
    }

    /// A 400 Bad Request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Names the property the error is about.
    pub fn on(mut self, property: impl Into<String>) -> Self {
        self.property = Some(property.into());
        self
    }

    /// 404 for an unknown resource path.
    pub fn resource_not_found(segment: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::RESOURCE_NOT_FOUND,
            format!("Resource not found for segment '{segment}'"),
        )
    }

    /// 404 for a sales order that does not exist.
    pub fn document_not_found(number: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::DOCUMENT_NOT_FOUND,
            format!("SD document {number} is not in the database or has been archived"),
        )
    }

    /// 405 for a method the resource does not support.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            format!("Method '{method}' is not allowed for this resource"),
        )
    }

    /// A generic 500 (the cause is logged by the caller).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "Internal server error",
        )
    }

    /// The OData error body.
    pub fn body(&self) -> ODataError {
        let txid = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        ODataError::new(self.code, self.message.clone()).with_inner_error(
            txid,
            chrono::Utc::now(),
            self.property.as_deref(),
        )
    }
}

impl IntoResponse for SapError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut r = (self.status, body).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        h.insert("dataserviceversion", HeaderValue::from_static("1.0"));
        r
    }
}

impl From<FilterError> for SapError {
    fn from(e: FilterError) -> Self {
        let code = if e.message.starts_with("Invalid token") {
            codes::FILTER_SYNTAX
        } else {
            codes::QUERY_INVALID
        };
        SapError::bad_request(code, e.message)
    }
}

impl From<QueryError> for SapError {
    fn from(e: QueryError) -> Self {
        SapError::bad_request(e.sap_code(), e.to_string())
    }
}

impl From<UriError> for SapError {
    fn from(e: UriError) -> Self {
        match e {
            UriError::BadSegment(s) => SapError::resource_not_found(&s),
            other => SapError::bad_request(codes::QUERY_INVALID, other.to_string()),
        }
    }
}

impl From<PayloadError> for SapError {
    fn from(e: PayloadError) -> Self {
        let property = e.property().map(str::to_owned);
        let code = e.sap_code();
        let mut err = SapError::bad_request(code, e.to_string());
        err.property = property;
        err
    }
}
