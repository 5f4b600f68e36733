//! glibc malloc settings for kiln's allocation pattern: every tensor op allocates a fresh
//! buffer of up to a few MB and frees it microseconds later. By default glibc serves blocks
//! over 128 KiB (a threshold that grows only slowly) with mmap and returns freed heap tops
//! to the kernel, so each op paid for fresh zeroed pages in page faults; a training step
//! spent about a third of its time there. Keeping such blocks in the heap makes them reuse
//! warm memory. The cost is a resident size that stays at its peak.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    use std::os::raw::c_int;
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    // SAFETY: mallopt only changes allocator parameters; called before any threads start.
    unsafe {
        // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
