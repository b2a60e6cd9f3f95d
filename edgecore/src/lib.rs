//! edgecore (being written).
