//! The hand-written reference programs (`shortpath_ebpf::reference`) and
//! the no-op programs (they do nothing, one per hook so that each has
//! its own run-time counters), loaded only by the benchmarks to compare
//! against.
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub fn ref_from_nic(ctx: TcContext) -> i32 {
    shortpath_ebpf::reference::from_nic(&ctx)
}

#[classifier]
pub fn ref_from_pod(ctx: TcContext) -> i32 {
    shortpath_ebpf::reference::from_pod(&ctx)
}

#[classifier]
pub fn ref_noop_nic(_ctx: TcContext) -> i32 {
    shortpath_ebpf::reference::nothing()
}

#[classifier]
pub fn ref_noop_pod(_ctx: TcContext) -> i32 {
    shortpath_ebpf::reference::nothing()
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
