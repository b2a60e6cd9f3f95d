//! The quickstart's integration tests: the real `apiary` binary, driven
//! as a user would drive it.

#![allow(
    clippy::unwrap_used,
    reason = "tests: a failed set-up step should panic"
)]

mod driver;
mod up;
