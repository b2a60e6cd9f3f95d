//! Fan-in benchmark (placeholder).
fn main() {}
