//! The address key of every map lookup, built once per address.
//!
//! One 8-byte aligned stack slot holds a prefix length followed by the
//! [`EndpointKey`] bytes (family, pad, address): the endpoint hash maps
//! are looked up with the address words alone (`ENDPOINTS_V4`: one word,
//! `ENDPOINTS_V6`: four), the LPM tries (`POD_CIDRS`, `NEXT_HOPS`, keyed
//! by `shortpath_common::pod_cidr::PodCidrKey`) with the whole slot, which
//! is laid out like their keys, and the stack-flow keys take the
//! [`EndpointKey`] part. Nothing is copied between the lookups.
//!
//! The slot is written as whole words: building an `EndpointKey` field by
//! field zeroes its byte arrays with `memset`, which the BPF backend
//! emits as a call into a byte loop (about 80 instructions for one IPv4
//! key).

use aya_ebpf::maps::lpm_trie::Key;
use shortpath_common::{
    endpoint::{EndpointKey, AF_INET, AF_INET6},
    pod_cidr::LOOKUP_BITS,
};

#[repr(C, align(8))]
pub struct AddrKey {
    /// `[prefix length, family + pad, address words…]`.
    words: [u32; 6],
}

const _: () = assert!(core::mem::size_of::<EndpointKey>() == 20);
const _: () = assert!(core::mem::size_of::<Key<EndpointKey>>() == 24);

impl AddrKey {
    /// An IPv4 address in network order (`from_ne_bytes` of its bytes).
    #[inline(always)]
    pub fn v4(addr: u32) -> Self {
        Self {
            words: [
                LOOKUP_BITS,
                u32::from_ne_bytes([AF_INET, 0, 0, 0]),
                addr,
                0,
                0,
                0,
            ],
        }
    }

    /// An IPv6 address as four network-order words.
    #[inline(always)]
    pub fn v6(a: [u32; 4]) -> Self {
        Self {
            words: [
                LOOKUP_BITS,
                u32::from_ne_bytes([AF_INET6, 0, 0, 0]),
                a[0],
                a[1],
                a[2],
                a[3],
            ],
        }
    }

    /// An IPv6 address from its bytes.
    #[inline(always)]
    pub fn v6_bytes(a: [u8; 16]) -> Self {
        let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
        Self::v6([w(0), w(4), w(8), w(12)])
    }

    #[inline(always)]
    pub fn is_v4(&self) -> bool {
        self.words[1] == u32::from_ne_bytes([AF_INET, 0, 0, 0])
    }

    /// The address's first word in host order.
    fn head(&self) -> u32 {
        u32::from_be(self.words[2])
    }

    /// Multicast or broadcast destination (the stack owns those):
    /// 224.0.0.0/4, 255.255.255.255, ff00::/8.
    #[inline(always)]
    pub fn is_multicast(&self) -> bool {
        let a = self.head();
        if self.is_v4() {
            a >> 28 == 0xe || a == u32::MAX
        } else {
            a >> 24 == 0xff
        }
    }

    /// Unspecified or link-local address (ND, DAD, DHCP: stack business):
    /// 0.0.0.0, 169.254.0.0/16, ::, fe80::/10.
    #[inline(always)]
    pub fn is_link_local_or_unspecified(&self) -> bool {
        let a = self.head();
        if self.is_v4() {
            a == 0 || a >> 16 == 0xa9fe
        } else {
            a >> 22 == 0xfe80 >> 6 || self.words[2..] == [0; 4]
        }
    }

    /// The key of `ENDPOINTS_V4`: the IPv4 address word. Only meaningful
    /// when [`is_v4`](Self::is_v4).
    #[inline(always)]
    pub fn v4_addr(&self) -> &u32 {
        &self.words[2]
    }

    /// The key of `ENDPOINTS_V6`: the four IPv6 address words. Only
    /// meaningful when not [`is_v4`](Self::is_v4).
    #[inline(always)]
    pub fn v6_addr(&self) -> &[u32; 4] {
        // SAFETY: words 2..6 are four initialised, aligned u32s.
        unsafe { &*(self.words.as_ptr().add(2) as *const [u32; 4]) }
    }

    /// The address as an [`EndpointKey`] (family, pad, address), the
    /// first part of a stack-flow key.
    #[inline(always)]
    pub fn endpoint(&self) -> &EndpointKey {
        // SAFETY: words 1..6 are the 20 bytes of an `EndpointKey` (plain
        // bytes, alignment 1), initialised by the constructors.
        unsafe { &*(self.words.as_ptr().add(1) as *const EndpointKey) }
    }

    /// The key of an LPM lookup of every bit of the address
    /// ([`LOOKUP_BITS`]).
    #[inline(always)]
    pub fn lookup(&self) -> &Key<EndpointKey> {
        // SAFETY: `Key` is `repr(C, packed)`: a u32 prefix length followed
        // by the data, 24 bytes, as the words are laid out.
        unsafe { &*(self as *const Self as *const Key<EndpointKey>) }
    }
}
