//! Memory allocation for the binaries.
//!
//! A CPU training step allocates and frees hundreds of large tensors.
//! glibc's malloc returns each big buffer to the kernel and the next one
//! page-faults in again: a quarter of a step went to page faults. The
//! binaries use mimalloc as their global allocator (`#[global_allocator]`
//! in `src/main.rs` and `benches/train_step.rs`) and call
//! [`keep_freed_memory`] first, so freed memory is reused, not purged.

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, the
/// same in mimalloc v2 and v3; the Rust bindings name options only up to
/// `mi_option_eager_commit_delay` = 14).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to purge freed memory back to the OS. Call before
/// any heavy work; harmless when mimalloc is not the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: setting an option is allowed at any time; -1 means "no purging".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Tells mimalloc to return freed memory to the OS at once (purge delay
/// 0), so that resident memory follows the live data: `stilts bench
/// --live-memory` measures the peak this way, to compare with the memory
/// estimate (which counts live tensors). Slower (page faults again).
pub fn return_freed_memory() {
    // SAFETY: setting an option is allowed at any time; 0 means "purge at once".
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_collect(true);
    }
}
