//! Endpoint map values and next hops as the programs read them: the
//! fields they test as words, and the two MACs as the three words of the
//! Ethernet addresses they become (destination, then source — the order
//! of the frame). `shortpath_common::endpoint::Endpoint` stores them in
//! that order on purpose, so a rewrite is three aligned loads from the map
//! value and three stores into the frame
//! ([`rewrite::set_l2`](crate::rewrite::set_l2)), where a copy of the byte
//! arrays costs a load and a store per byte — and more, where the compiler
//! parks the bytes in stack slots until it writes them (`from_pod`'s
//! cached next hop did: about 60 instructions for its two MACs).

use core::mem::{offset_of, size_of};

use shortpath_common::{endpoint::Endpoint, next_hop::NextHop};

/// An `ENDPOINTS_V4` / `ENDPOINTS_V6` value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EndpointWords {
    /// The pod's host-side veth.
    pub ifindex: u32,
    pub mtu: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `pod_mac`, `host_mac`: the L2 addresses of a frame into the pod.
    pub l2: [u32; 3],
}

const _: () = assert!(size_of::<EndpointWords>() == size_of::<Endpoint>());
const _: () = assert!(offset_of!(Endpoint, ifindex) == offset_of!(EndpointWords, ifindex));
const _: () = assert!(offset_of!(Endpoint, mtu) == offset_of!(EndpointWords, mtu));
const _: () = assert!(offset_of!(Endpoint, flags) == offset_of!(EndpointWords, flags));
const _: () = assert!(offset_of!(Endpoint, pod_mac) == offset_of!(EndpointWords, l2));
const _: () = assert!(offset_of!(Endpoint, host_mac) == offset_of!(EndpointWords, l2) + 6);

impl EndpointWords {
    /// The pod's MAC as [`EthHdr::src_mac`](crate::parse::EthHdr::src_mac)
    /// gives a frame's.
    #[inline(always)]
    pub fn pod_mac(&self) -> (u32, u16) {
        (self.l2[0], first_half(self.l2[1]))
    }
}

// `NextHop` keeps its MACs source first, at even offsets: they are read as
// half-words.
const _: () = assert!(offset_of!(NextHop, smac) == 8 && offset_of!(NextHop, dmac) == 14);

/// The frame's two MACs of a `NEXT_HOPS` entry (gateway, then the
/// device's own) as the three words they make, read as six half-words
/// (map values are 8-aligned). Called where the frame is written, so the
/// words are not held across the MTU check's helper call.
#[inline(always)]
pub fn next_hop_l2(nh: &NextHop) -> [u32; 3] {
    let h = nh as *const NextHop as *const u16;
    // SAFETY: half-words 4..10 are the two MACs, inside the value and
    // 2-aligned (asserted above).
    let half = |i: usize| u32::from(unsafe { h.add(i).read() });
    // The word of two half-words in memory order.
    #[cfg(target_endian = "little")]
    let word = |a: u32, b: u32| a | b << 16;
    #[cfg(target_endian = "big")]
    let word = |a: u32, b: u32| a << 16 | b;
    [
        word(half(7), half(8)),
        word(half(9), half(4)),
        word(half(5), half(6)),
    ]
}

/// The two bytes a word starts with, as a native `u16` of them.
#[inline(always)]
fn first_half(w: u32) -> u16 {
    let [a, b, _, _] = w.to_ne_bytes();
    u16::from_ne_bytes([a, b])
}
