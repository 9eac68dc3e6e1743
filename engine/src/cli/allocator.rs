//! The process allocator of the `weir` binary and the benchmarks: mimalloc, told to keep the
//! memory a micro-batch frees for the next one, in ordinary pages ([`configure`]).
//!
//! Every trigger allocates and frees buffers of about the same sizes. glibc's allocator hands
//! them back to the kernel and faults fresh zeroed pages in again each time; mimalloc keeps
//! them, but by default still purges (decommits) memory unused for a second, and measured on
//! Nexmark q7 that purge-and-refault costs as much as the aggregation itself (see
//! `benches/RESULTS.md`). [`keep_freed_memory`] switches purging off, as a JVM keeps its heap:
//! freed memory stays mapped and is reused, and the resident size does not shrink after a
//! spike. Setting `MIMALLOC_PURGE_DELAY` (milliseconds; `0` purges at once) overrides this.
//!
//! mimalloc also asks Linux for transparent huge pages on its memory (`MADV_HUGEPAGE`). Where
//! the kernel then defragments on demand (the common `defrag = madvise` setting), a fault
//! compacts memory and zeroes a whole 2 MiB page while the micro-batch waits.
//! [`small_pages_only`] switches huge pages off for the process; measured on the stateful
//! Nexmark queries, it cut system time by 35–43 % on q5, q15 and q16 (q16: 2.37 → 1.54 s; it
//! rose slightly on q7 and q17) and wall time by 4–18 % on all five measured
//! (`benches/RESULTS.md`, session 9). Setting `MIMALLOC_ALLOW_THP` overrides this.

/// Tunes the allocator for micro-batches ([`keep_freed_memory`], [`small_pages_only`]); call
/// first in `main`.
pub fn configure() {
    keep_freed_memory();
    small_pages_only();
}

/// The allocator to install with `#[global_allocator]`.
pub type Allocator = mimalloc::MiMalloc;

/// mimalloc 3's index of `mi_option_purge_delay` in `mi_option_t` (the Rust binding names
/// no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Switches mimalloc's purging off unless `MIMALLOC_PURGE_DELAY` is set.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table, which it
    // reads atomically; any value is valid for this option (-1 means never purge).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// Switches transparent huge pages off for this process (Linux; elsewhere nothing), unless
/// `MIMALLOC_ALLOW_THP` is set.
pub fn small_pages_only() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `PR_SET_THP_DISABLE` takes an integer flag and touches no memory of ours; on
    // an old kernel without it the call fails with EINVAL, which is harmless.
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hard_coded_index_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reading an option has no preconditions.
        #[allow(unsafe_code)]
        let read = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // 1000 ms is the purge delay's default; its neighbours default to 1 and 0, so a
        // mimalloc upgrade that renumbers the options fails here.
        assert_eq!(read(), 1000);
        keep_freed_memory();
        assert_eq!(read(), -1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_switched_off_for_the_process() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return;
        }
        small_pages_only();
        // SAFETY: reading the flag takes no arguments that point anywhere.
        #[allow(unsafe_code)]
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
    }
}
