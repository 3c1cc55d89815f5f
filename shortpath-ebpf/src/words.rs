//! Endpoint map values as the programs read them: the fields they test as
//! words, and the two MACs as the three words of the Ethernet addresses
//! they become (destination, then source — the order of the frame).
//! `shortpath_common::endpoint::Endpoint` stores them in that order on
//! purpose, so a rewrite is three aligned loads from the map value and
//! three stores into the frame ([`rewrite::set_l2`](crate::rewrite::set_l2)),
//! where a copy of the byte arrays costs a load and a store per byte.

use core::mem::{offset_of, size_of};

use shortpath_common::endpoint::Endpoint;

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

/// The two bytes a word starts with, as a native `u16` of them.
#[inline(always)]
fn first_half(w: u32) -> u16 {
    let [a, b, _, _] = w.to_ne_bytes();
    u16::from_ne_bytes([a, b])
}
