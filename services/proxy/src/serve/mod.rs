//! Serving: the client-facing listener and the request path ([`server`]), the lean HTTP/1.1
//! path for what is only relayed ([`h1`]), the pass-through to SAP ([`passthrough`]) and the
//! body types and guards both sides use ([`body`]).

pub mod body;
pub mod h1;
pub mod passthrough;
pub mod server;
