//! "Was key K already seen in bucket B?" in O(1) per packet, exactly, for
//! any arrival order.
//!
//! Each key keeps the latest bucket it was seen in and a 32-bit window of
//! the buckets before it. Captures arrive almost in time order, so nearly
//! every answer comes from the window. A bucket that slides out of the
//! window while set is moved to a shared overflow set, so a packet that
//! arrives very late (say, a second file older than the first) is still
//! answered exactly. Rejected: a hash set of every (bucket, key) pair, which
//! costs a random memory access per packet and several times the memory.

use std::collections::HashSet;

use foldhash::fast::RandomState;

const WINDOW: u32 = 32;

/// Per-key presence state; the zero value means "never seen".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    last: u32,
    /// Bit i set: seen in bucket `last - i`.
    mask: u32,
}

/// Buckets of keys that slid out of their window.
#[derive(Default)]
pub struct Overflow {
    set: HashSet<(u32, u64), RandomState>,
}

impl Presence {
    /// True if the key had never been seen at all.
    #[inline]
    pub fn is_new(&self) -> bool {
        self.mask == 0
    }

    /// Records the key in `bucket`; true if it was not yet recorded there.
    #[inline]
    pub fn mark(&mut self, bucket: u32, key: u64, overflow: &mut Overflow) -> bool {
        if self.mask != 0 && bucket == self.last {
            return false;
        }
        self.mark_slow(bucket, key, overflow)
    }

    #[inline(never)]
    fn mark_slow(&mut self, bucket: u32, key: u64, overflow: &mut Overflow) -> bool {
        if self.mask == 0 {
            *self = Presence {
                last: bucket,
                mask: 1,
            };
            return true;
        }
        if bucket > self.last {
            let shift = bucket - self.last;
            // Spill the bits that leave the window.
            let leaving = if shift >= WINDOW {
                self.mask
            } else {
                self.mask >> (WINDOW - shift)
            };
            if leaving != 0 {
                for i in 0..WINDOW {
                    if self.mask & (1 << i) != 0 && i + shift >= WINDOW {
                        overflow.set.insert((self.last - i, key));
                    }
                }
            }
            self.mask = if shift >= WINDOW {
                1
            } else {
                (self.mask << shift) | 1
            };
            self.last = bucket;
            return true;
        }
        let back = self.last - bucket;
        if back < WINDOW {
            let bit = 1 << back;
            let fresh = self.mask & bit == 0;
            self.mask |= bit;
            fresh
        } else {
            overflow.set.insert((bucket, key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agrees_with_a_plain_set(events in proptest::collection::vec((0u64..4, 0u32..120), 1..400)) {
            let mut state = [Presence::default(); 4];
            let mut overflow = Overflow::default();
            let mut truth = HashSet::new();
            for (key, bucket) in events {
                let fresh = state[key as usize].mark(bucket, key, &mut overflow);
                prop_assert_eq!(fresh, truth.insert((bucket, key)), "key {} bucket {}", key, bucket);
            }
        }
    }

    #[test]
    fn in_order_runs_never_touch_the_overflow() {
        let mut p = Presence::default();
        let mut o = Overflow::default();
        for b in 0..20 {
            assert!(p.mark(b, 1, &mut o));
            assert!(!p.mark(b, 1, &mut o));
        }
        assert!(o.set.is_empty());
    }
}
