//! The dataplane object: TC programs attached by `shortpath` to the node
//! NIC (`from_nic`) and to every pod's host-side veth (`from_pod`).
#![no_std]
#![no_main]

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub fn from_nic(ctx: TcContext) -> i32 {
    shortpath_ebpf::from_nic::run(&ctx)
}

#[classifier]
pub fn from_pod(ctx: TcContext) -> i32 {
    shortpath_ebpf::from_pod::run(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
