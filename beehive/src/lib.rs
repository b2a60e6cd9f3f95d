//! beehive (being written).
