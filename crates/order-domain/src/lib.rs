//! The order domain: what an order *is*, independent of HTTP, SQL or SAP.
//!
//! Everything that enters the system is parsed into these types, so an order that exists in
//! memory is valid by construction (habit 2 of `STYLE.md`):
//!
//! - [`values`]: newtypes with private fields that only parse (`CustomerId`, `Sku`, `Quantity`,
//!   `CurrencyCode`, ...). Each constructor names the rule it enforces.
//! - [`order`]: an untrusted [`order::OrderDraft`] parsed into an [`order::OrderRequest`] (every
//!   offending field reported at once), completed from master data into a [`order::NewOrder`]
//!   with its [`order::NewOrderLine`]s.
//! - [`master_data`]: materials and customers (units, prices, currencies per sales area), from
//!   which [`order::OrderRequest::complete`] derives what a caller left out, as SAP does.
//! - [`status`]: the status state machine; transitions are methods returning `Result`.
//! - [`etag`]: an order's version as the entity tag its `ETag` and `If-Match` carry.
//!
//! This crate imports no other workspace crate and does no I/O.

pub mod currency;
pub mod etag;
pub mod master_data;
pub mod order;
pub mod status;
pub mod values;

pub use etag::{parse_version_etag, version_etag};
pub use master_data::{MasterData, MasterDataDraft, MasterDataUpsert};
pub use order::{
    CompletionError, FieldError, NewOrder, NewOrderLine, OrderDraft, OrderLineDraft, OrderRequest,
    RequestedLine, open_total,
};
pub use status::{OrderStatus, StatusReport, TransitionError};
pub use values::{
    CurrencyCode, CustomerId, CustomerReference, DistributionChannel, Division, Money, OrderNumber,
    OrderType, Quantity, RejectionReason, SalesOrganization, SapOrderNumber, Sku, Unit, ValueError,
};
