//! The two upstreams: pooled clients with timeout, circuit breaker and concurrency bound
//! ([`upstream`], [`breaker`]), and the calls the proxy makes to each system
//! ([`order_client`], [`sap_client`]).

pub mod breaker;
pub mod order_client;
pub mod sap_client;
pub mod upstream;
