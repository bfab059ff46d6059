//! The OData face served by the new side (`events` and `retired` alike): SAP's reads
//! translated to the order service's search ([`read`]), creates ([`create`]) and changes
//! ([`write`]), `$batch` ([`batch`]), and SAP's session layer for a retired route (logon,
//! CSRF tokens and cookies, `$metadata`, the service document: [`session`]). Fed by the
//! `sap-odata` contract and the `order-acl` translation.

pub mod batch;
pub mod create;
pub mod read;
pub mod session;
pub mod write;
