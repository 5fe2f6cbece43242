//! The `execd` binary's malloc settings (glibc), for every command: memory
//! freed in bulk stays with the process for the next allocations instead
//! of going back to the kernel at once.
//!
//! A client receiving a file (`execd cp` down) gets it in WebSocket frames
//! of up to 1 MiB; each frame's payload is a fresh allocation that lives
//! until the file's writer has written it. With glibc's defaults those
//! allocations were handed back and faulted in again, zeroed, frame after
//! frame: 512 MiB down cost the client ~0.45 s of system time, and
//! ~0.28 s with the thresholds below.
//!
//! A streamed process's output chunks (up to 1 MiB each) stay allocated
//! until the client acknowledges them when it has an output window; an ack
//! frees a quarter of the window's chunks at once. With glibc's defaults the
//! trim threshold follows the largest freed mmap chunk (~1 MiB) at twice its
//! size, so nearly every ack's free handed megabytes back to the kernel
//! (`madvise(MADV_DONTNEED)` on a thread arena) and the next reads and
//! frames faulted them back in zeroed (`clear_page_erms`): the larger the
//! window, the more per ack (a 32 MiB window streamed at ~70 % of the
//! unwindowed rate). Fixed thresholds, the largest glibc's own adaptive
//! policy reaches (32 MiB mmap, 64 MiB trim), keep that memory for reuse.
//! The server's resident size still follows its output budget down: the
//! budget's explicit `malloc_trim` (after every 32 MiB evicted and at the
//! end of each connection, `execd_process::budget`) ignores the threshold,
//! and whole idle arena heaps are still released. An operator's own
//! `MALLOC_*_` or `GLIBC_TUNABLES` settings win.

/// Allocations below this come from the heap (glibc's adaptive maximum).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 * 1024 * 1024;
/// Free memory at the top of a heap goes back to the kernel past this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 * 1024 * 1024;

/// Variables through which an operator sets glibc's malloc themselves.
const OPERATOR_SETTINGS: [&str; 3] = [
    "GLIBC_TUNABLES",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
];

/// Apply the settings above, unless the environment sets malloc already.
/// Call before any thread starts.
pub fn keep_freed_memory() {
    if OPERATOR_SETTINGS
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; no other thread
    // allocates yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
