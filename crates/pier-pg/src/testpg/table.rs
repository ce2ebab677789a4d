//! Two containers that grow without stalls, for the ledger.
//!
//! The ledger lives behind the engine's one mutex and only grows. A plain `Vec` or `HashMap`
//! grows by doubling, and at a million entries one doubling (copying every record, or rehashing
//! every key) holds that mutex for hundreds of milliseconds, which shows up as a latency spike in
//! every long benchmark. `Chunked` never moves an element; `Index` spreads keys over shards that
//! each resize on their own, so a resize costs 1/64th of the whole.

use std::borrow::Borrow;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

const CHUNK: usize = 4_096;
const SHARDS: usize = 64;

/// An append-only vector stored in fixed-size chunks: pushes never move earlier elements.
pub(crate) struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends and returns the new element's index.
    pub fn push(&mut self, value: T) -> usize {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let i = self.len;
        let last = self.chunks.len() - 1;
        self.chunks[last].push(value);
        self.len += 1;
        i
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// Removes the element at `i` by moving the last one into its place (the only element that
    /// moves; its new position is `i`). `None` when `i` is out of range.
    pub fn swap_remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let last = self.chunks.last_mut()?.pop()?;
        self.len -= 1;
        if self.chunks.last().is_some_and(Vec::is_empty) {
            // `push` opens a chunk whenever `len` is a multiple of `CHUNK`: no empty one may stay.
            self.chunks.pop();
        }
        if i == self.len {
            return Some(last);
        }
        Some(std::mem::replace(&mut self[i], last))
    }
}

// Positions come from the ledger's own indexes, so an out-of-range one is a bug: panic like `Vec`.
impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> std::ops::IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

/// A hash index (key → position) split into shards.
pub(crate) struct Index<K> {
    shards: Vec<HashMap<K, usize>>,
}

impl<K> Default for Index<K> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
        }
    }
}

impl<K: Hash + Eq> Index<K> {
    /// `K` and its borrowed form hash alike (the `Borrow` contract), so both pick the same shard.
    fn shard<Q: Hash + ?Sized>(key: &Q) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() % SHARDS as u64) as usize
    }

    pub fn get<Q>(&self, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[Self::shard(key)].get(key).copied()
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: K, at: usize) {
        let shard = Self::shard(&key);
        self.shards[shard].insert(key, at);
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[Self::shard(key)].remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_keeps_order_and_positions() {
        let mut c = Chunked::default();
        for i in 0..(CHUNK * 2 + 5) {
            assert_eq!(c.push(i), i);
        }
        assert_eq!(c.len(), CHUNK * 2 + 5);
        assert_eq!(c[CHUNK + 1], CHUNK + 1);
        c[7] = 70;
        assert_eq!(c.iter().nth(7), Some(&70));
        assert!(c.iter().skip(8).copied().eq(8..CHUNK * 2 + 5));
    }

    #[test]
    fn swap_remove_moves_only_the_last_element() {
        let mut c = Chunked::default();
        for i in 0..(CHUNK + 1) {
            c.push(i);
        }
        // The last element is alone in its chunk: removing it drops the chunk.
        assert_eq!(c.swap_remove(CHUNK), Some(CHUNK));
        assert_eq!(c.len(), CHUNK);
        assert_eq!(c.push(7), CHUNK);
        assert_eq!(c[CHUNK], 7);
        assert_eq!(c.swap_remove(3), Some(3));
        assert_eq!(c[3], 7);
        assert_eq!(c.len(), CHUNK);
        assert_eq!(c.swap_remove(CHUNK), None);
        assert!(c.iter().copied().take(3).eq(0..3));
        let mut one = Chunked::default();
        one.push(1);
        assert_eq!(one.swap_remove(0), Some(1));
        assert_eq!(one.len(), 0);
        assert_eq!(one.push(2), 0);
    }

    #[test]
    fn index_finds_by_borrowed_keys() {
        let mut ix: Index<String> = Index::default();
        for i in 0..1_000 {
            ix.insert(format!("k{i}"), i);
        }
        assert_eq!(ix.get("k999"), Some(999));
        assert!(ix.contains_key("k0"));
        assert_eq!(ix.get("nope"), None);
        ix.insert("k5".to_owned(), 55);
        assert_eq!(ix.get("k5"), Some(55));
        let mut pairs: Index<(String, String)> = Index::default();
        pairs.insert(("a".into(), "b".into()), 1);
        assert_eq!(pairs.get(&("a".to_owned(), "b".to_owned())), Some(1));
    }
}
