//! order-service (being written).
fn main() {}
