//! cloudcore (being written).
