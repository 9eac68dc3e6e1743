//! A hash of row-encoded keys that is the same in every process and release (so that a
//! `count(DISTINCT)` pair goes to the same state partition after a restart), and fast enough
//! for the operators' in-memory key indexes.

pub(crate) const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Murmur3's 64-bit finalizer: every input bit moves the high and the low output bits.
pub(crate) fn mix(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// A hash of a row encoding that is the same in every process and release, read 8 bytes at
/// a time.
pub(crate) fn stable_hash(key: &[u8]) -> u64 {
    let mut chunks = key.chunks_exact(8);
    let mut hash = (key.len() as u64).wrapping_mul(K);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    let mut tail = [0; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    mix((hash ^ u64::from_le_bytes(tail)).wrapping_mul(K))
}
