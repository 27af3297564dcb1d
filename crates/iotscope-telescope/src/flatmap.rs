//! An open-addressing hash map from integer keys to small values, with a
//! prefetch hint.
//!
//! Why not `HashMap`: the telescope's hot loop looks up a source and a
//! (source, port) pair for every packet in tables too large for the cache.
//! Processing packets in small batches and prefetching each table line one
//! step ahead hides most of that memory latency, and std's map has no way to
//! ask where a key will live. Keys are attacker-chosen addresses, so the
//! hash is keyed by a per-process random seed (folded multiply, as foldhash).
//!
//! Invariants: keys below `u64::MAX`; the table is at most half full, so a
//! probe sequence is short and always ends at an empty slot.

use std::hash::{BuildHasher, Hasher};

const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Map from `u64` keys (< `u64::MAX`) to `V`.
pub struct FlatMap<V> {
    /// key + 1, 0 marks an empty slot.
    keys: Vec<u64>,
    values: Vec<V>,
    mask: usize,
    len: usize,
    seed: u64,
}

impl<V: Copy + Default> Default for FlatMap<V> {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl<V: Copy + Default> FlatMap<V> {
    /// A map sized for `n` keys before it grows.
    pub fn with_capacity(n: usize) -> Self {
        let slots = (n * 2).next_power_of_two().max(16);
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        FlatMap {
            keys: vec![0; slots],
            values: vec![V::default(); slots],
            mask: slots - 1,
            len: 0,
            seed,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn slot(&self, key: u64) -> usize {
        let m = (key ^ self.seed) as u128 * MULTIPLIER as u128;
        ((m as u64) ^ ((m >> 64) as u64)) as usize & self.mask
    }

    /// Hints the CPU to load the line where `key` lives.
    #[inline(always)]
    pub fn prefetch(&self, key: u64) {
        let i = self.slot(key);
        prefetch(self.keys.as_ptr().wrapping_add(i));
        prefetch(self.values.as_ptr().wrapping_add(i));
    }

    /// The value of `key`, inserting `V::default()` if absent; true when inserted.
    #[inline]
    pub fn entry(&mut self, key: u64) -> (&mut V, bool) {
        debug_assert!(key < u64::MAX);
        if self.len * 2 >= self.keys.len() {
            self.grow();
        }
        let tag = key + 1;
        let mut i = self.slot(key);
        loop {
            let k = self.keys[i];
            if k == tag {
                return (&mut self.values[i], false);
            }
            if k == 0 {
                self.keys[i] = tag;
                self.len += 1;
                return (&mut self.values[i], true);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: u64) -> Option<&V> {
        let tag = key + 1;
        let mut i = self.slot(key);
        loop {
            match self.keys[i] {
                0 => return None,
                k if k == tag => return Some(&self.values[i]),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        let old_keys = std::mem::take(&mut self.keys);
        let old_values = std::mem::take(&mut self.values);
        let slots = old_keys.len() * 2;
        self.keys = vec![0; slots];
        self.values = vec![V::default(); slots];
        self.mask = slots - 1;
        for (k, v) in old_keys.into_iter().zip(old_values) {
            if k != 0 {
                let mut i = self.slot(k - 1);
                while self.keys[i] != 0 {
                    i = (i + 1) & self.mask;
                }
                self.keys[i] = k;
                self.values[i] = v;
            }
        }
    }

    /// All (key, value) pairs, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        self.keys
            .iter()
            .zip(&self.values)
            .filter(|(k, _)| **k != 0)
            .map(|(k, v)| (k - 1, v))
    }
}

/// Prefetch a cache line into all levels; a no-op where unsupported.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, even on invalid addresses.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #[test]
        fn behaves_like_a_hashmap(keys in proptest::collection::vec(0u64..5000, 0..4000)) {
            let mut flat: FlatMap<u32> = FlatMap::with_capacity(4);
            let mut std_map: HashMap<u64, u32> = HashMap::new();
            for k in keys {
                let (v, inserted) = flat.entry(k);
                prop_assert_eq!(inserted, !std_map.contains_key(&k));
                *v += 1;
                *std_map.entry(k).or_default() += 1;
            }
            prop_assert_eq!(flat.len(), std_map.len());
            for (k, v) in flat.iter() {
                prop_assert_eq!(Some(v), std_map.get(&k));
            }
            for (k, v) in &std_map {
                prop_assert_eq!(flat.get(*k), Some(v));
            }
        }
    }

    #[test]
    fn key_zero_and_large_keys() {
        let mut m: FlatMap<u8> = FlatMap::default();
        *m.entry(0).0 = 7;
        *m.entry(u64::MAX - 1).0 = 9;
        assert_eq!(
            (m.get(0), m.get(u64::MAX - 1), m.get(1)),
            (Some(&7), Some(&9), None)
        );
    }
}
