//! edgecore (being written).
pub mod config;
