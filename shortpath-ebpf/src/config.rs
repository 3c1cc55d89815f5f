//! Load-time configuration. Userspace sets these globals with
//! `EbpfLoader::override_global`; they live in frozen `.rodata`, so the
//! verifier prunes the branches of the mode that is not loaded.

use aya_ebpf::Global;
use shortpath_common::mode::FastPath;

/// A `FastPath` value. 0 (unset) makes every program hand packets to the
/// stack untouched, so a loader bug cannot blackhole traffic.
#[unsafe(no_mangle)]
pub static MODE: Global<u32> = Global::new(0);

#[inline(always)]
pub fn mode() -> Option<FastPath> {
    FastPath::from_u32(MODE.load())
}

/// 1: the programs use the per-CPU endpoint cache
/// ([`endpoint_cache`](crate::endpoint_cache)). The loader sets it except
/// on PREEMPT_RT kernels, where two programs can interleave on one CPU;
/// 0 (unset) looks the maps up every time, which is always correct.
#[unsafe(no_mangle)]
pub static CACHE_ENDPOINTS: Global<u32> = Global::new(0);

#[inline(always)]
pub fn cache_endpoints() -> bool {
    CACHE_ENDPOINTS.load() == 1
}
