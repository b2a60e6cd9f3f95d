//! Apiary's quickstart, as a library: [`up::up`] runs cloudcore on its
//! embedded API and one edgecore joined to it in this process, with every
//! file under one data directory; the `apiary` binary wraps it.
//!
//! # Layout
//!
//! - [`layout`]: the data directory and the two configurations in it.
//! - [`up`]: starting, joining, waiting for Ready, stopping.
//! - [`summary`]: the listeners and follow-up commands printed once up.

pub mod layout;
pub mod summary;
pub mod up;
