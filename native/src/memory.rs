//! How the process allocator treats the large buffers of training.
//!
//! Every tensor operation allocates its output and the step frees it again, step after step. By
//! default glibc serves large blocks with `mmap` and returns freed memory to the kernel, so each
//! step faults in freshly zeroed pages for the same buffers (a tenth of a t5-small training step,
//! and a matrix product on a fresh output ran at 70-90 instead of 140-160 GFLOP/s here).
//! Serving them from the heap and not trimming it keeps them for reuse; the peak resident size
//! stays what the step needs.

/// Keeps freed memory in the process for reuse (glibc on Linux; elsewhere the allocator's own
/// policy stands).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's largest mmap threshold on 64-bit: blocks up to 32 MiB come from the heap.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only changes allocator parameters; it is called before any thread
        // starts and both values are in their documented ranges.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
