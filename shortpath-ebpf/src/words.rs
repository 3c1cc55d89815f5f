//! Map values as the programs read them: the fields they test as words,
//! and the two MACs of an entry as the three words of the Ethernet
//! addresses they become (destination, then source — the order of the
//! frame). Both value types store their MACs in that order on purpose
//! (`shortpath_common::endpoint::Endpoint`, `next_hop::NextHop`), so a
//! rewrite is three aligned loads from the map value and three stores into
//! the frame ([`rewrite::set_l2`](crate::rewrite::set_l2)), where a copy of
//! the byte arrays costs a load and a store per byte.

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
    /// The pod's MAC as `parse::mac_words` gives a frame's.
    #[inline(always)]
    pub fn pod_mac(&self) -> (u32, u16) {
        (self.l2[0], first_half(self.l2[1]))
    }
}

/// A `NEXT_HOPS` value.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NextHopWords {
    /// Egress device; 0: ask the FIB.
    pub ifindex: u32,
    pub mtu: u32,
    /// `dmac`, `smac`: the L2 addresses of a frame to the next hop.
    pub l2: [u32; 3],
}

const _: () = assert!(size_of::<NextHopWords>() == size_of::<NextHop>());
const _: () = assert!(offset_of!(NextHop, ifindex) == offset_of!(NextHopWords, ifindex));
const _: () = assert!(offset_of!(NextHop, mtu) == offset_of!(NextHopWords, mtu));
const _: () = assert!(offset_of!(NextHop, dmac) == offset_of!(NextHopWords, l2));
const _: () = assert!(offset_of!(NextHop, smac) == offset_of!(NextHopWords, l2) + 6);

impl NextHopWords {
    /// Whether the entry carries an answer (else: ask the FIB).
    #[inline(always)]
    pub fn is_cached(&self) -> bool {
        self.ifindex != 0
    }
}

/// The two bytes a word starts with, as a native `u16` of them.
#[inline(always)]
fn first_half(w: u32) -> u16 {
    let [a, b, _, _] = w.to_ne_bytes();
    u16::from_ne_bytes([a, b])
}
