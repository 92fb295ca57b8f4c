//! Memory allocation for the binaries.
//!
//! A CPU training step allocates and frees hundreds of large tensors.
//! glibc's malloc returns each big buffer to the kernel and the next one
//! page-faults in again: a quarter of a step went to page faults. The
//! binaries use mimalloc as their global allocator (`#[global_allocator]`
//! in `src/main.rs` and `benches/train_step.rs`) and call
//! [`keep_freed_memory`] first, so freed memory is reused, not purged.
//!
//! `stilts bench --live-memory` needs the opposite: resident memory that
//! follows the live tensors, to compare with the memory estimate. mimalloc
//! told to purge at once still kept 0.33 GiB resident beyond the live
//! allocations at the scaled shape of `benches/README.md` (bf16 weights:
//! live allocations 3.135 GB, counted by a wrapper allocator, equal to the
//! tensors' bytes; anonymous resident memory 3.46 GB, also after
//! `mi_collect(true)` on every thread): the 8% by which every bf16-weight
//! row peaked above its estimate. [`Allocator`] therefore switches to the
//! system allocator from [`return_freed_memory`] on, with every allocation
//! of 1 MiB or more its own mapping, unmapped when freed (glibc's
//! `M_MMAP_THRESHOLD`): 0.06 GB above the live bytes there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static SYSTEM: AtomicBool = AtomicBool::new(false);

/// mimalloc, or the system allocator after [`return_freed_memory`]; each
/// block is freed by the allocator that made it (mimalloc knows its own:
/// `mi_is_in_heap_region`).
pub struct Allocator;

fn mimalloc_owns(p: *mut u8) -> bool {
    // Until the switch (once, never back) every block is mimalloc's: no
    // lookup on the common path.
    // SAFETY: a query on an address; no access through it.
    !SYSTEM.load(Ordering::Relaxed)
        || unsafe { libmimalloc_sys::mi_is_in_heap_region(p as *const _) }
}

// SAFETY: every block goes back to the allocator that made it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if SYSTEM.load(Ordering::Relaxed) {
            System.alloc(l)
        } else {
            mimalloc::MiMalloc.alloc(l)
        }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if SYSTEM.load(Ordering::Relaxed) {
            System.alloc_zeroed(l)
        } else {
            mimalloc::MiMalloc.alloc_zeroed(l)
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if mimalloc_owns(p) {
            mimalloc::MiMalloc.dealloc(p, l)
        } else {
            System.dealloc(p, l)
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if mimalloc_owns(p) {
            mimalloc::MiMalloc.realloc(p, l, n)
        } else {
            System.realloc(p, l, n)
        }
    }
}

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, the
/// same in mimalloc v2 and v3; the Rust bindings name options only up to
/// `mi_option_eager_commit_delay` = 14).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to purge freed memory back to the OS. Call before
/// any heavy work; harmless when mimalloc is not the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: setting an option is allowed at any time; -1 means "no purging".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    // Under an address-space limit (`ulimit -v`) mimalloc's 1 GiB arena
    // reservations would use it up in a few steps, and one refused
    // reservation aborts the process: reserve 64 MiB at a time, so the
    // virtual size grows with the data and the script's memory check
    // (`stilts_script::context::address_space_limit`) sees it coming.
    if stilts_script::context::address_space_limit().is_some() {
        // SAFETY: as above; the value is in KiB.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_RESERVE, 64 * 1024) }
    }
}

/// mimalloc's `mi_option_arena_reserve` (its position in `mi_option_e`,
/// v2 and v3), in KiB.
const MI_OPTION_ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;

/// Makes resident memory follow the live data: new allocations come from
/// the system allocator, each of 1 MiB or more its own mapping returned
/// to the OS when freed (glibc), and mimalloc returns what it frees at
/// once (purge delay 0). `stilts bench --live-memory` measures the peak
/// this way, to compare with the memory estimate (which counts live
/// tensors). Slower (page faults again). Takes effect for the global
/// allocator only where it is [`Allocator`].
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: glibc's mallopt, before any system allocation is made.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 20);
            mallopt(M_TRIM_THRESHOLD, 0);
        }
    }
    SYSTEM.store(true, Ordering::Relaxed);
    // SAFETY: setting an option is allowed at any time; 0 means "purge at once".
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_collect(true);
    }
}
