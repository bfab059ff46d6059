//! Benchmark of the proxy against nginx and the upstream directly (work in progress).

fn main() {}
