//! cloudcore (being written).
pub mod config;
