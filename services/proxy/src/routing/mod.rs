//! Routes and modes: the route table with each route's mode and policy, persisted and audited
//! ([`routes`]), and the `sales-orders` route's create and reads in every mode
//! ([`sales_orders`]).

pub mod routes;
pub mod sales_orders;
