//! [`RecentIds`]: a bounded set of message ids that forgets the oldest
//! first. CloudHub keeps one per node for upstream duplicates (the edge's
//! outbox resends after a lost ack) and one per queue for downstream ids
//! already acked, superseded or sent once.
//!
//! Ids are kept as 64-bit keyed hashes, not strings: about 24 bytes per id
//! instead of ~150, which matters with thousands of nodes. A false match
//! needs a hash collision among a few hundred ids (odds ~10⁻¹⁶).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};

/// A set of at most `capacity` ids; inserting into a full set evicts the
/// oldest id.
#[derive(Debug, Clone)]
pub(crate) struct RecentIds {
    capacity: usize,
    keys: RandomState,
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl RecentIds {
    /// An empty set holding at most `capacity` ids (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        RecentIds {
            capacity: capacity.max(1),
            keys: RandomState::new(),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` was inserted and not yet evicted.
    pub(crate) fn contains(&self, id: &str) -> bool {
        !id.is_empty() && self.set.contains(&self.keys.hash_one(id))
    }

    /// Remembers `id`; returns false when it was already there. Empty ids
    /// are never remembered.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        let hash = self.keys.hash_one(id);
        if id.is_empty() || self.set.contains(&hash) {
            return false;
        }
        while self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(hash);
        self.order.push_back(hash);
        true
    }

    /// How many ids are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_first() {
        let mut r = RecentIds::new(2);
        assert!(r.insert("a"));
        assert!(!r.insert("a"));
        assert!(r.insert("b"));
        assert!(r.insert("c"));
        assert_eq!(r.len(), 2);
        assert!(!r.contains("a"));
        assert!(r.contains("b") && r.contains("c"));
    }

    #[test]
    fn empty_ids_are_ignored() {
        let mut r = RecentIds::new(4);
        assert!(!r.insert(""));
        assert!(!r.contains(""));
    }
}
