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
//! Several `count(DISTINCT x)` of one `x` share a table (see `PairSet`): each pair carries
//! the set of [`Members`] that counted it, in the high bits of its group word, so a row
//! costs one probe however many of them it counts for.
//!
//! Open addressing with linear probing: a pair is in the first empty-or-equal slot at or
//! after `hash mod capacity`, the capacity a power of two, the load at most 3/4. Slots are the
//! pairs themselves (16 bytes, four to a cache line); an empty slot has the group word
//! [`EMPTY`]. Pairs leave a whole group at a time ([`PairSlots::retain`]), by rebuilding.
//!
//! [`PairTable`]: super::pair_table::PairTable

/// Which of the counts sharing a table counted a pair: bit `j` for the `j`th.
pub(super) type Members = u16;

/// The most counts that can share a table: the members fill bits 48 to 62 of the group
/// word, so that no pair's group word is [`EMPTY`].
pub(super) const MAX_MEMBERS: usize = 15;

const MEMBERS_SHIFT: u32 = 48;
/// The bits of a group word that hold the group's number.
const GROUP_BITS: u64 = (1 << MEMBERS_SHIFT) - 1;

/// The largest group number a table can hold (2^48 - 1 groups: at ten million new groups a
/// second, 325 days of one process).
pub(super) const MAX_GROUP: u64 = GROUP_BITS;

/// The group word of an empty slot.
// INVARIANT: a pair's group word has bit 63 clear (`MAX_MEMBERS`), so it is never EMPTY.
const EMPTY: u64 = u64::MAX;

/// A pair as a slot holds it: the group's number, with the members that counted the pair in
/// bits 48 to 62 (the group word); then the value's bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pair {
    group_word: u64,
    pub bits: u64,
}

impl Pair {
    /// The pair of group `group` (at most [`MAX_GROUP`]) and value `bits`, counted by
    /// `members`.
    pub fn new(group: u64, bits: u64, members: Members) -> Self {
        debug_assert!(group <= MAX_GROUP && usize::from(members) < 1 << MAX_MEMBERS);
        Self {
            group_word: (u64::from(members) << MEMBERS_SHIFT) | group,
            bits,
        }
    }

    const EMPTY: Self = Self {
        group_word: EMPTY,
        bits: 0,
    };

    fn is_empty(&self) -> bool {
        self.group_word == EMPTY
    }

    /// The group's number.
    pub fn group(&self) -> u64 {
        self.group_word & GROUP_BITS
    }

    /// The members that counted the pair.
    pub fn members(&self) -> Members {
        (self.group_word >> MEMBERS_SHIFT) as Members
    }

    fn add_members(&mut self, members: Members) {
        self.group_word |= u64::from(members) << MEMBERS_SHIFT;
    }

    /// Whether `self` and `other` are the same group and value, whoever counted them.
    fn same_key(&self, other: &Self) -> bool {
        self.bits == other.bits && (self.group_word ^ other.group_word) & GROUP_BITS == 0
    }
}

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

    /// Adds `pair`, whose hash is `hash`; returns the members of `pair` that had not
    /// counted it (all of them when the pair was not there). `rehash` gives a kept pair's
    /// hash, for when the table grows.
    pub fn insert(&mut self, pair: Pair, hash: u64, rehash: impl Fn(&Pair) -> u64) -> Members {
        self.reserve(1, rehash);
        self.insert_reserved(pair, hash)
    }

    /// Adds each of `pairs` (a pair and its hash), in order; calls `on_new` with the index of
    /// each that some of its members had not counted before (nor earlier in `pairs`), and
    /// those members. `rehash` gives a kept pair's hash, for when the table grows.
    pub fn insert_batch(
        &mut self,
        pairs: &[(Pair, u64)],
        rehash: impl Fn(&Pair) -> u64,
        mut on_new: impl FnMut(usize, Members),
    ) {
        // Room for every pair up front: the slots do not move while the batch runs.
        self.reserve(pairs.len(), rehash);
        for (i, (pair, hash)) in pairs.iter().enumerate() {
            if let Some((_, ahead)) = pairs.get(i + PREFETCH_DISTANCE) {
                prefetch(&self.slots, self.home(*ahead));
            }
            let new = self.insert_reserved(*pair, *hash);
            if new != 0 {
                on_new(i, new);
            }
        }
    }

    /// Adds `pair` when there is room for it; the members it adds.
    fn insert_reserved(&mut self, pair: Pair, hash: u64) -> Members {
        debug_assert!(!pair.is_empty(), "a pair's group word is never EMPTY");
        let mask = self.slots.len() - 1;
        let mut slot = self.home(hash);
        loop {
            let found = &mut self.slots[slot];
            if found.is_empty() {
                *found = pair;
                self.len += 1;
                return pair.members();
            }
            if found.same_key(&pair) {
                let new = pair.members() & !found.members();
                found.add_members(new);
                return new;
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
        self.refill(needed, old.into_iter().filter(|p| !p.is_empty()), rehash);
    }

    /// Keeps only the pairs `keep` says yes to.
    pub fn retain(&mut self, keep: impl Fn(&Pair) -> bool, rehash: impl Fn(&Pair) -> u64) {
        let kept: Vec<Pair> = self
            .slots
            .iter()
            .filter(|p| !p.is_empty() && keep(p))
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
        self.slots = vec![Pair::EMPTY; capacity];
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
        (pair.group() * 31 + pair.bits) % 7
    }

    fn pair(group: u64, bits: u64) -> Pair {
        Pair::new(group, bits, 1)
    }

    #[test]
    fn a_pair_is_new_once_through_growth_collisions_and_removal() {
        let mut slots = PairSlots::default();
        let pairs: Vec<(Pair, u64)> = (0..200u64)
            .map(|i| pair(i % 10, i % 30))
            .map(|p| (p, hash(&p)))
            .collect();
        let mut new = Vec::new();
        slots.insert_batch(&pairs, hash, |i, _| new.push(i));
        // (i % 10, i % 30) repeats every 30 rows: the first 30 are new, the rest are not.
        assert_eq!(new, (0..30).collect::<Vec<_>>());
        assert_eq!(slots.len(), 30);
        assert!(slots.memory() >= 30 * 16 * 4 / 3);

        for i in 0..1000u64 {
            let p = pair(1000 + i, i);
            assert_eq!(slots.insert(p, hash(&p), hash), 1, "pair {i} is new");
        }
        assert_eq!(
            slots.insert(pair(1999, 999), hash(&pair(1999, 999)), hash),
            0
        );
        assert_eq!(slots.len(), 1030);

        slots.retain(|p| p.group() < 5, hash);
        assert_eq!(slots.len(), 15, "groups 0 to 4 keep their 3 values each");
        let mut again = Vec::new();
        slots.insert_batch(&pairs[..30], hash, |i, _| again.push(i));
        let removed: Vec<usize> = (0..30).filter(|i| i % 10 >= 5).collect();
        assert_eq!(
            again, removed,
            "only the removed groups' pairs are new again"
        );

        slots.retain(|_| false, hash);
        assert_eq!((slots.len(), slots.memory()), (0, 0));
        assert_eq!(slots.insert(pair(3, 4), hash(&pair(3, 4)), hash), 1);
    }

    #[test]
    fn a_shared_pair_is_new_once_for_each_member_and_keeps_its_members_through_growth() {
        let mut slots = PairSlots::default();
        let at = |group, bits, members| {
            let p = Pair::new(group, bits, members);
            (p, hash(&p))
        };
        let mut new = Vec::new();
        // The largest group and every member: the group word is all ones but for bit 63.
        let full = Members::MAX >> 1;
        let batch = [
            at(7, 1, 0b001),
            at(7, 1, 0b011),
            at(7, 1, 0b010),
            at(7, 2, 0b100),
            at(8, 1, 0b100),
            at(MAX_GROUP, 1, full),
            at(MAX_GROUP, 1, 0b001),
        ];
        slots.insert_batch(&batch, hash, |i, members| new.push((i, members)));
        assert_eq!(
            new,
            [(0, 0b001), (1, 0b010), (3, 0b100), (4, 0b100), (5, full)],
            "a member counts a pair once; other groups and values are other pairs"
        );
        assert_eq!(slots.len(), 4);
        // Growing the table moves the pairs with their members.
        for i in 0..500 {
            let (p, h) = at(100 + i, i, 0b001);
            assert_eq!(slots.insert(p, h, hash), 0b001);
        }
        let (p, h) = at(7, 1, 0b111);
        assert_eq!(
            slots.insert(p, h, hash),
            0b100,
            "members 0 and 1 counted it"
        );
        let (p, h) = at(MAX_GROUP, 1, full);
        assert_eq!(slots.insert(p, h, hash), 0);
    }
}
