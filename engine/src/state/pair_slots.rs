//! [`PairSlots`]: a set of `(group number, value bits)` pairs, the [`PairTable`] of values
//! kept as bits (see `pair_table.rs`), built to insert a batch of pairs at the speed of
//! memory rather than at its latency.
//!
//! A partition's table holds millions of pairs, far more than the caches, so nearly every
//! probe of a new batch's pairs misses them. Probed one after the other, each waits for its
//! cache line; [`PairSlots::insert_batch`] asks for the line of the pair a few places ahead
//! ([`prefetch`]) while it probes the current one, so the misses overlap. A general-purpose
//! table does not say where a key's slot is before it probes, so it cannot be asked for it
//! ahead. Measured on this project's machine: 4 M distinct pairs among 20 M random probes
//! took 3.2 s with `hashbrown`'s `HashTable` (entry API), 1.8–1.9 s here; on Nexmark q16 the
//! probes went from 2 640 to 1 210 profile samples (`benches/RESULTS.md`, session 10).
//!
//! Open addressing with linear probing: a pair is in the first empty-or-equal slot at or
//! after `hash mod capacity`, the capacity a power of two, the load at most 3/4. Slots are the
//! pairs themselves (16 bytes, four to a cache line); an empty slot has the group number
//! [`EMPTY`]. Pairs leave a whole group at a time ([`PairSlots::retain`]), by rebuilding.
//!
//! [`PairTable`]: super::pair_table::PairTable

/// A pair: the group's number, then the value's bits.
pub(super) type Pair = (u64, u64);

/// The group number of an empty slot.
// INVARIANT: group numbers count up from 0, one per group (`GroupNumbers`), so no group
// reaches it.
const EMPTY: u64 = u64::MAX;

/// How many pairs ahead of the probe [`PairSlots::insert_batch`] prefetches: enough misses
/// in flight to cover a memory access, few enough that the lines are still cached when their
/// probe comes (8 and 16 measured the same).
const PREFETCH_DISTANCE: usize = 8;

const MIN_CAPACITY: usize = 64;

/// A set of pairs; see the module docs.
#[derive(Debug, Default)]
pub(super) struct PairSlots {
    slots: Vec<Pair>,
    len: usize,
}

impl PairSlots {
    /// The slot where probing for `hash` starts.
    fn home(&self, hash: u64) -> usize {
        // The capacity is a power of two.
        hash as usize & (self.slots.len() - 1)
    }

    /// Adds `pair`, whose hash is `hash`; whether it was not there. `rehash` gives a kept
    /// pair's hash, for when the table grows.
    pub fn insert(&mut self, pair: Pair, hash: u64, rehash: impl Fn(&Pair) -> u64) -> bool {
        self.reserve(1, rehash);
        self.insert_reserved(pair, hash)
    }

    /// Adds each of `pairs` (a pair and its hash), in order; calls `on_new` with the index of
    /// each that was not there before (nor earlier in `pairs`). `rehash` gives a kept pair's
    /// hash, for when the table grows.
    pub fn insert_batch(
        &mut self,
        pairs: &[(Pair, u64)],
        rehash: impl Fn(&Pair) -> u64,
        mut on_new: impl FnMut(usize),
    ) {
        // Room for every pair up front: the slots do not move while the batch runs.
        self.reserve(pairs.len(), rehash);
        for (i, (pair, hash)) in pairs.iter().enumerate() {
            if let Some((_, ahead)) = pairs.get(i + PREFETCH_DISTANCE) {
                prefetch(&self.slots, self.home(*ahead));
            }
            if self.insert_reserved(*pair, *hash) {
                on_new(i);
            }
        }
    }

    /// Adds `pair` when there is room for it.
    fn insert_reserved(&mut self, pair: Pair, hash: u64) -> bool {
        debug_assert!(pair.0 != EMPTY, "a group number is never EMPTY");
        let mask = self.slots.len() - 1;
        let mut slot = self.home(hash);
        loop {
            let found = self.slots[slot];
            if found == pair {
                return false;
            }
            if found.0 == EMPTY {
                self.slots[slot] = pair;
                self.len += 1;
                return true;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Makes room for `additional` more pairs, growing the capacity (a power of two) so that
    /// the load stays at most 3/4.
    fn reserve(&mut self, additional: usize, rehash: impl Fn(&Pair) -> u64) {
        let needed = self.len + additional;
        if needed * 4 <= self.slots.len() * 3 {
            return;
        }
        let old = std::mem::take(&mut self.slots);
        self.refill(needed, old.into_iter().filter(|p| p.0 != EMPTY), rehash);
    }

    /// Keeps only the pairs `keep` says yes to.
    pub fn retain(&mut self, keep: impl Fn(&Pair) -> bool, rehash: impl Fn(&Pair) -> u64) {
        let kept: Vec<Pair> = self
            .slots
            .iter()
            .filter(|p| p.0 != EMPTY && keep(p))
            .copied()
            .collect();
        self.refill(kept.len(), kept.into_iter(), rehash);
    }

    /// Puts `pairs` into fresh slots with room for `room` pairs (none when `room` is 0).
    fn refill(
        &mut self,
        room: usize,
        pairs: impl Iterator<Item = Pair>,
        rehash: impl Fn(&Pair) -> u64,
    ) {
        let capacity = match room {
            0 => 0,
            _ => (room * 4 / 3 + 1).next_power_of_two().max(MIN_CAPACITY),
        };
        self.slots = vec![(EMPTY, 0); capacity];
        self.len = 0;
        for pair in pairs {
            self.insert_reserved(pair, rehash(&pair));
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the slots.
    pub fn memory(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Pair>()
    }
}

/// Asks the processor to bring `slots[slot]`'s cache line in; a hint, with no effect on
/// what the program computes.
fn prefetch(slots: &[Pair], slot: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(pair) = slots.get(slot) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch never faults and changes no memory; the address is that of an
        // element of `slots` besides (checked by `get`).
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(pair).cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slots, slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pair: &Pair) -> u64 {
        // Few distinct hashes, so that probes run over collisions and wrap around the end.
        (pair.0 * 31 + pair.1) % 7
    }

    #[test]
    fn a_pair_is_new_once_through_growth_collisions_and_removal() {
        let mut slots = PairSlots::default();
        let pairs: Vec<(Pair, u64)> = (0..200u64)
            .map(|i| ((i % 10, i % 30), 0))
            .map(|(p, _)| (p, hash(&p)))
            .collect();
        let mut new = Vec::new();
        slots.insert_batch(&pairs, hash, |i| new.push(i));
        // (i % 10, i % 30) repeats every 30 rows: the first 30 are new, the rest are not.
        assert_eq!(new, (0..30).collect::<Vec<_>>());
        assert_eq!(slots.len(), 30);
        assert!(slots.memory() >= 30 * 16 * 4 / 3);

        for i in 0..1000u64 {
            let pair = (1000 + i, i);
            assert!(slots.insert(pair, hash(&pair), hash), "pair {i} is new");
        }
        assert!(!slots.insert((1999, 999), hash(&(1999, 999)), hash));
        assert_eq!(slots.len(), 1030);

        slots.retain(|p| p.0 < 5, hash);
        assert_eq!(slots.len(), 15, "groups 0 to 4 keep their 3 values each");
        let mut again = Vec::new();
        slots.insert_batch(&pairs[..30], hash, |i| again.push(i));
        let removed: Vec<usize> = (0..30).filter(|i| i % 10 >= 5).collect();
        assert_eq!(
            again, removed,
            "only the removed groups' pairs are new again"
        );

        slots.retain(|_| false, hash);
        assert_eq!((slots.len(), slots.memory()), (0, 0));
        assert!(slots.insert((3, 4), hash(&(3, 4)), hash));
    }
}
