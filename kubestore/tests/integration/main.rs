//! kubestore's integration tests, one module per area, linked into one test
//! binary: each binary links every dependency again, and one per file
//! filled CI's build disk. nextest still runs every test in its own process.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed set-up step should panic"
)]

mod rest;
mod rest_write;
mod support;
