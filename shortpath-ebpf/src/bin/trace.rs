//! The packet-path tracer object: BTF tracepoint programs loaded by
//! `shortpath trace`. Separate from the dataplane object so that loading
//! one never loads the other's programs. (The library's map definitions
//! come along into every object; those no program uses are created at load
//! and freed with the loader.)
#![no_std]
#![no_main]

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use shortpath_common::trace::EventKind;
use shortpath_ebpf::trace::{kernel::L3, points};

#[btf_tracepoint(function = "netif_receive_skb")]
pub fn netif_receive_skb(ctx: BtfTracePointContext) -> i32 {
    points::skb_event(EventKind::Receive, ctx.arg(0), L3::Data, 0);
    0
}

#[btf_tracepoint(function = "netif_rx")]
pub fn netif_rx(ctx: BtfTracePointContext) -> i32 {
    points::skb_event(EventKind::Backlog, ctx.arg(0), L3::Data, 0);
    0
}

#[btf_tracepoint(function = "net_dev_queue")]
pub fn net_dev_queue(ctx: BtfTracePointContext) -> i32 {
    points::skb_event(EventKind::Queue, ctx.arg(0), L3::NetworkHeader, 0);
    0
}

#[btf_tracepoint(function = "net_dev_start_xmit")]
pub fn net_dev_start_xmit(ctx: BtfTracePointContext) -> i32 {
    points::skb_event(EventKind::Xmit, ctx.arg(0), L3::NetworkHeader, 0);
    0
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let reason: u64 = ctx.arg(2);
    points::skb_event(
        EventKind::Drop,
        ctx.arg(0),
        L3::NetworkHeader,
        reason as u32,
    );
    0
}

#[btf_tracepoint(function = "fib_table_lookup")]
pub fn fib_table_lookup(ctx: BtfTracePointContext) -> i32 {
    let tb_id: u64 = ctx.arg(0);
    let err: u64 = ctx.arg(3);
    points::route_lookup(tb_id as u32, ctx.arg(1), ctx.arg(2), err as i32);
    0
}

#[btf_tracepoint(function = "sk_data_ready")]
pub fn sk_data_ready(ctx: BtfTracePointContext) -> i32 {
    points::socket_ready(ctx.arg(0));
    0
}

#[btf_tracepoint(function = "softirq_entry")]
pub fn softirq_entry(ctx: BtfTracePointContext) -> i32 {
    let vec: u64 = ctx.arg(0);
    points::softirq(vec as u32, true);
    0
}

#[btf_tracepoint(function = "softirq_exit")]
pub fn softirq_exit(ctx: BtfTracePointContext) -> i32 {
    let vec: u64 = ctx.arg(0);
    points::softirq(vec as u32, false);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
