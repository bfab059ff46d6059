//! Benchmarks: each runs our code and a peer in the same run and prints the ratio.

pub mod odata_face;
pub mod order_create;
pub mod sap_sync;
