//! orderctl (being written).
fn main() {}
