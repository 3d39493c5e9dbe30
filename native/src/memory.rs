//! How the process allocator treats the large buffers of training.
//!
//! Every tensor operation allocates its output and the step frees it again, step after step. By
//! default glibc serves large blocks with `mmap` and returns freed memory to the kernel, so each
//! step faults in freshly zeroed pages for the same buffers (a tenth of a t5-small training step;
//! a matrix product into a fresh output ran at 70-90 instead of 140-160 GFLOP/s here; a full
//! fine-tuning step of t5-small took 1.8 s instead of 1.4 s). Serving every block from the heap
//! and never trimming it keeps them for reuse; the peak resident size stays within a few percent
//! of what the step needs. One arena for every thread: glibc gives each worker thread its own
//! `mmap`'d arenas, which it shrinks with `madvise` whatever the trim threshold, so the shards'
//! gradients and the optimizer's pass faulted in ~170 MB of fresh pages per full fine-tuning step
//! of t5-small (~13 MB with one arena). The threads allocate a few large blocks per operation, so
//! they hardly ever wait on the shared arena's lock.

/// Keeps freed memory in the process for reuse (glibc on Linux; elsewhere the allocator's own
/// policy stands).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts
    // and every value is in its documented range (no mmap'd blocks; never trim the heap; one
    // arena).
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}
