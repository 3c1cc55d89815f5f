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
