//! Keyed token buckets with a hard bound on memory.
//!
//! Why our own and not `governor`: the getToken failure limit must run on the engine's clock
//! (tests and operators reason in the engine's time; `governor` reads its own monotonic clock),
//! and the bound on memory is the point here, so eviction is explicit:
//! - a bucket that has refilled to its burst is indistinguishable from an absent one, so dropping
//!   it loses nothing; that is the first thing pruning does;
//! - if the map is still over 90% of its bound after that (someone spreads requests over more
//!   keys than the bound within one refill period), the fullest buckets (the ones least recently
//!   used, roughly LRU) go until 90% remains. Pruning is O(n) and happens at most once per
//!   `max_keys / 10` new keys, so its amortised cost per request is constant.
//!   Evicting a bucket gives that key a fresh burst; with a 100k bound an attacker needs more
//!   than 100k distinct keys (addresses) per refill period for that, and with that many
//!   addresses it could spread its requests over them anyway.

use dashmap::DashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

pub struct KeyedBuckets<K: Eq + Hash> {
    map: DashMap<K, Bucket>,
    /// Tokens added per millisecond.
    rate_per_ms: f64,
    burst: f64,
    max_keys: usize,
    pruning: AtomicBool,
}

impl<K: Eq + Hash + Clone> KeyedBuckets<K> {
    /// `per_period` tokens every `period_ms`, at most `burst` saved up; at most `max_keys` keys.
    pub fn new(per_period: u32, period_ms: u64, burst: u32, max_keys: usize) -> Self {
        Self {
            map: DashMap::new(),
            rate_per_ms: f64::from(per_period) / period_ms.max(1) as f64,
            burst: f64::from(burst.max(1)),
            max_keys: max_keys.max(10),
            pruning: AtomicBool::new(false),
        }
    }

    fn level(&self, b: &Bucket, now_ms: i64) -> f64 {
        let elapsed = (now_ms - b.at_ms).max(0) as f64;
        (b.tokens + elapsed * self.rate_per_ms).min(self.burst)
    }

    /// Whether `key` has a token left (nothing is taken).
    pub fn allows(&self, key: &K, now_ms: i64) -> bool {
        match self.map.get(key) {
            Some(b) => self.level(&b, now_ms) >= 1.0,
            None => true,
        }
    }

    /// Takes a token from `key`; false (nothing taken) when it has none left.
    pub fn take(&self, key: &K, now_ms: i64) -> bool {
        self.update(key, now_ms, false)
    }

    /// Takes a token from `key` even when none is left (the level stays at zero): for counting
    /// failures after the fact.
    pub fn charge(&self, key: &K, now_ms: i64) {
        self.update(key, now_ms, true);
    }

    fn update(&self, key: &K, now_ms: i64, always: bool) -> bool {
        if let Some(mut b) = self.map.get_mut(key) {
            let level = self.level(&b, now_ms);
            let ok = level >= 1.0;
            if ok || always {
                *b = Bucket {
                    tokens: (level - 1.0).max(0.0),
                    at_ms: now_ms,
                };
            }
            return ok;
        }
        if self.map.len() >= self.max_keys {
            self.prune(now_ms);
        }
        self.map.insert(
            key.clone(),
            Bucket {
                tokens: self.burst - 1.0,
                at_ms: now_ms,
            },
        );
        true
    }

    /// Keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn prune(&self, now_ms: i64) {
        // One pruner at a time; the others insert meanwhile (the overshoot is bounded by the
        // requests in flight).
        if self.pruning.swap(true, Ordering::Acquire) {
            return;
        }
        self.map.retain(|_, b| self.level(b, now_ms) < self.burst);
        let target = self.max_keys / 10 * 9;
        let len = self.map.len();
        if len > target {
            let mut levels: Vec<f64> = self
                .map
                .iter()
                .map(|e| self.level(e.value(), now_ms))
                .collect();
            let excess = len - target;
            // The `excess` fullest buckets go: find the level of the last one, then drop those
            // above it and just enough of those at it.
            let (_, threshold, _) =
                levels.select_nth_unstable_by(excess - 1, |a, b| b.total_cmp(a));
            let threshold = *threshold;
            let above = levels.iter().filter(|l| **l > threshold).count();
            let mut ties = excess - above;
            self.map.retain(|_, b| {
                let l = self.level(b, now_ms);
                if l > threshold {
                    false
                } else if l == threshold && ties > 0 {
                    ties -= 1;
                    false
                } else {
                    true
                }
            });
            tracing::warn!(
                kept = self.map.len(),
                evicted = excess,
                "rate limiter at its key bound: evicted the least used keys"
            );
        }
        self.pruning.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let b = KeyedBuckets::new(10, 1000, 3, 100);
        assert!(b.take(&1, 0) && b.take(&1, 0) && b.take(&1, 0));
        assert!(!b.take(&1, 0));
        assert!(b.take(&2, 0), "another key has its own bucket");
        assert!(b.take(&1, 100), "one token back after 100 ms at 10/s");
        assert!(!b.take(&1, 100));
    }

    #[test]
    fn charge_counts_failures_and_allows_reads_only() {
        let b = KeyedBuckets::new(20, 60_000, 20, 100);
        for _ in 0..20 {
            assert!(b.allows(&"k", 0));
            b.charge(&"k", 0);
        }
        assert!(!b.allows(&"k", 0));
        b.charge(&"k", 0);
        assert!(b.allows(&"k", 61_000), "refilled a minute later");
    }

    #[test]
    fn memory_is_bounded_and_busy_keys_survive_eviction() {
        let b = KeyedBuckets::new(1, 60_000, 5, 100);
        // A busy key: its bucket is empty.
        for _ in 0..5 {
            b.charge(&0u32, 0);
        }
        for k in 1..10_000u32 {
            b.take(&k, 0);
            assert!(b.len() <= 101, "bounded: {}", b.len());
        }
        assert!(!b.allows(&0, 0), "the busiest key is kept, not reset");
    }

    #[test]
    fn refilled_buckets_are_dropped_first() {
        let b = KeyedBuckets::new(1, 1000, 1, 10);
        for k in 0..10u32 {
            b.take(&k, 0);
        }
        b.take(&99, 5_000);
        assert_eq!(b.len(), 1, "all old buckets had refilled");
    }
}
