//! The order domain: what an order *is*, independent of HTTP, SQL or SAP.
//!
//! Everything that enters the system is parsed into these types, so an order that exists in
//! memory is valid by construction (habit 2 of `STYLE.md`):
//!
//! - [`values`]: newtypes with private fields that only parse (`CustomerId`, `Sku`, `Quantity`,
//!   `CurrencyCode`, ...). Each constructor names the rule it enforces.
//! - [`order`]: a validated [`order::NewOrder`] with its [`order::NewOrderLine`]s, built from
//!   untrusted input by [`order::NewOrder::parse`], which reports *every* offending field at once.
//! - [`status`]: the status state machine; transitions are methods returning `Result`.
//!
//! This crate imports no other workspace crate and does no I/O.

pub mod currency;
pub mod order;
pub mod status;
pub mod values;

pub use order::{FieldError, NewOrder, NewOrderLine, OrderDraft, OrderLineDraft};
pub use status::{OrderStatus, TransitionError};
pub use values::{
    CurrencyCode, CustomerId, CustomerReference, DistributionChannel, Division, Money, OrderNumber,
    OrderType, Quantity, SalesOrganization, SapOrderNumber, Sku, Unit, ValueError,
};
