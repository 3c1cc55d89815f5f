//! The hand-written reference: the article's two redirects as one writes
//! them for a single pod pair, with addresses, ifindexes and MACs fixed at
//! load time (frozen `.rodata`, which the verifier treats as constants).
//! No map lookups, no counters, no validation beyond what the redirect
//! itself needs, IPv4 only. Every other packet is handed on with
//! `TC_ACT_UNSPEC`: under TCX the next program (the dataplane's) runs.
//! Headers are read and written with the same word accesses as the
//! dataplane's ([`load`](crate::load)).
//!
//! `shortpath prog-bench` times these programs next to `from_nic` /
//! `from_pod` on the same frames, and `shortpath bench --modes reference`
//! attaches them in front of the dataplane's for the bench's pod pair, so
//! the cost of what shortpath adds (endpoint and route maps, the router's
//! checks, counters) is a difference measured in one run, not a figure
//! remembered from elsewhere (docs/PROG_BENCH.md, docs/BENCH.md). The
//! object carries the crate's map definitions (every binary of the crate
//! does), which the loader creates and these programs never use.

use core::mem::offset_of;

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::generated::{bpf_redirect, bpf_redirect_peer},
    programs::TcContext,
    Global,
};
use shortpath_common::csum;

use crate::{
    load,
    parse::{EthHdr, Ipv4Hdr, ETH_HLEN, ETH_P_IP, IPV4_HLEN},
};

/// The local pod's IPv4 address, as its four bytes read natively.
#[unsafe(no_mangle)]
pub static REF_POD_ADDR: Global<u32> = Global::new(0);
/// The pod's host-side veth (the `bpf_redirect_peer` target).
#[unsafe(no_mangle)]
pub static REF_POD_IFINDEX: Global<u32> = Global::new(0);
/// Destination + source MAC of frames into the pod (pod, host veth): the
/// first 12 bytes of the frame, as three words.
#[unsafe(no_mangle)]
pub static REF_POD_L2: Global<[u32; 3]> = Global::new([0; 3]);
/// The remote pod network and its mask, as their bytes read natively.
#[unsafe(no_mangle)]
pub static REF_REMOTE_NET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub static REF_REMOTE_MASK: Global<u32> = Global::new(u32::MAX);
/// The NIC (the `bpf_redirect` target of pod traffic).
#[unsafe(no_mangle)]
pub static REF_NIC_IFINDEX: Global<u32> = Global::new(0);
/// Destination + source MAC of frames to the remote node (gateway, NIC).
#[unsafe(no_mangle)]
pub static REF_NIC_L2: Global<[u32; 3]> = Global::new([0; 3]);

/// The Ethernet and IPv4 headers, if the frame starts with them.
#[inline(always)]
fn ipv4(ctx: &TcContext) -> Option<(*mut EthHdr, *mut Ipv4Hdr)> {
    let data = ctx.data();
    if data + ETH_HLEN + IPV4_HLEN > ctx.data_end() {
        return None;
    }
    let eth = data as *mut EthHdr;
    // SAFETY: bounds-checked above.
    if unsafe { (*eth).proto() } != ETH_P_IP {
        return None;
    }
    Some((eth, (data + ETH_HLEN) as *mut Ipv4Hdr))
}

/// The router's rewrite: both MACs, TTL − 1 with its checksum update.
/// `None` (hand to the stack) when the TTL would expire.
#[inline(always)]
fn rewrite(eth: *mut EthHdr, ip: *mut Ipv4Hdr, l2: [u32; 3]) -> Option<()> {
    // SAFETY: both headers were bounds-checked by `ipv4`.
    unsafe {
        let ttl = (*ip).ttl;
        if ttl <= 1 {
            return None;
        }
        load::set_u32::<0, _>(eth, l2[0]);
        load::set_u32::<4, _>(eth, l2[1]);
        load::set_u32::<8, _>(eth, l2[2]);
        let check = load::u16_at::<{ offset_of!(Ipv4Hdr, check) }, _>(ip);
        load::set_u16::<{ offset_of!(Ipv4Hdr, check) }, _>(ip, csum::ipv4_ttl_decrement(check));
        (*ip).ttl = ttl - 1;
    }
    Some(())
}

/// NIC ingress: a packet for the pod goes into its namespace.
pub fn from_nic(ctx: &TcContext) -> i32 {
    let Some((eth, ip)) = ipv4(ctx) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: bounds-checked by `ipv4`.
    if unsafe { (*ip).daddr() } != REF_POD_ADDR.load() {
        return TC_ACT_UNSPEC;
    }
    if rewrite(eth, ip, REF_POD_L2.load()).is_none() {
        return TC_ACT_UNSPEC;
    }
    // SAFETY: a helper call with plain arguments.
    unsafe { bpf_redirect_peer(REF_POD_IFINDEX.load(), 0) as i32 }
}

/// Pod veth ingress: a packet for the remote pod network goes out the NIC.
pub fn from_pod(ctx: &TcContext) -> i32 {
    let Some((eth, ip)) = ipv4(ctx) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: bounds-checked by `ipv4`.
    let dst = unsafe { (*ip).daddr() };
    if dst & REF_REMOTE_MASK.load() != REF_REMOTE_NET.load() {
        return TC_ACT_UNSPEC;
    }
    if rewrite(eth, ip, REF_NIC_L2.load()).is_none() {
        return TC_ACT_UNSPEC;
    }
    // SAFETY: a helper call with plain arguments.
    unsafe { bpf_redirect(REF_NIC_IFINDEX.load(), 0) as i32 }
}

/// A program that hands every packet on at once. What bpf_stats
/// charges it per packet is what the kernel's clock reads around a run
/// cost, with nothing of the program in it; `shortpath bench --modes
/// noop` attaches it in front of the dataplane's programs to measure
/// that under the bench's load (docs/BENCH.md).
#[inline(always)]
pub fn nothing() -> i32 {
    TC_ACT_UNSPEC
}
