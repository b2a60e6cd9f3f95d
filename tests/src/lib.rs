//! tests (being written).
