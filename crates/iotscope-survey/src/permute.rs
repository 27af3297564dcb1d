//! The probe order: a keyed pseudo-random permutation of every
//! (address, port) index, so probes spread over the whole target space
//! instead of hammering one network, and shards split it without overlap.
//!
//! A four-round unbalanced Feistel network over the smallest power of two
//! that covers the space, with cycle walking to stay inside it (fewer than
//! two steps on average, as the domain is less than twice the space): a bijection on
//! `0..n` for any `n`, deterministic from the seed, O(1) memory, and cheap
//! to start at any position (which is what resuming needs). ZMap's cyclic
//! group was the alternative; it needs a prime and a generator per size.

/// A bijection on `0..n`.
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    bits: u32,
    keys: [u64; 4],
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Permutation {
    /// A permutation of `0..n` (n >= 1) chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = (64 - n.saturating_sub(1).leading_zeros()).max(2);
        let mut s = seed;
        let keys = [0; 4].map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix(s)
        });
        Permutation { n, bits, keys }
    }

    /// Size of the permuted range.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn encrypt(&self, x: u64) -> u64 {
        // Halves of unequal width when `bits` is odd: each round moves the
        // low part up and mixes it into the high one, so the widths swap
        // every round and come back after the (even) number of rounds.
        let (mut wa, mut wb) = (self.bits - self.bits / 2, self.bits / 2);
        let (mut a, mut b) = (x >> wb, x & ((1u64 << wb) - 1));
        for k in self.keys {
            let f = mix(b ^ k) & ((1u64 << wa) - 1);
            (a, b) = (b, a ^ f);
            (wa, wb) = (wb, wa);
        }
        (a << wb) | b
    }

    /// The element at position `i` (`i < n`).
    pub fn get(&self, i: u64) -> u64 {
        let mut x = self.encrypt(i);
        while x >= self.n {
            x = self.encrypt(x);
        }
        x
    }
}

/// The positions of shard `index` of `count`: every `count`-th position from
/// `index`. Shards are disjoint and together cover `0..n`.
pub fn shard_positions(n: u64, index: u32, count: u32) -> impl Iterator<Item = u64> {
    (index as u64..n).step_by(count.max(1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_index_exactly_once_for_awkward_sizes() {
        for n in [1u64, 2, 3, 5, 7, 100, 1000, 4097, 65_537, 393_216] {
            let p = Permutation::new(n, 42);
            let seen: HashSet<u64> = (0..n).map(|i| p.get(i)).collect();
            assert_eq!(seen.len() as u64, n, "n={n}");
            assert!(seen.iter().all(|&x| x < n));
        }
    }

    #[test]
    fn seeds_change_the_order_and_shards_partition_it() {
        let (a, b) = (Permutation::new(1000, 1), Permutation::new(1000, 2));
        assert_ne!(
            (0..10).map(|i| a.get(i)).collect::<Vec<_>>(),
            (0..10).map(|i| b.get(i)).collect::<Vec<_>>()
        );
        let mut all = HashSet::new();
        for s in 0..3 {
            for pos in shard_positions(1000, s, 3) {
                assert!(all.insert(a.get(pos)), "overlap");
            }
        }
        assert_eq!(all.len(), 1000);
    }
}
