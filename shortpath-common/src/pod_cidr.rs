//! The pod CIDR map: the cluster's pod networks (every node's, IPv4 and
//! IPv6). `from_pod` routes a packet with the FIB only when its destination
//! is inside one of them; anything else (Services, the internet) goes to the
//! node's stack, whose netfilter DNATs and masquerades it.
//!
//! The map is an LPM trie keyed by [`PodCidrKey`]: a prefix length and the
//! same `{family, pad, addr}` bytes as [`EndpointKey`], so the program
//! looks a destination up with the key it already has. The prefix length
//! counts the family byte and the three pad bytes (always zero) too, so an
//! IPv4 network never matches an IPv6 address or the reverse.

use crate::endpoint::{EndpointKey, AF_INET, AF_INET6};

/// Upper bound of pod CIDRs per cluster (both families).
pub const MAX_POD_CIDRS: u32 = 256;

/// Bits of the key before the address: `family` and `pad`.
pub const HEADER_BITS: u32 = 32;

/// Prefix length of a lookup: every bit of the key (an IPv4 address's
/// zero tail included; stored IPv4 networks stop before it).
pub const LOOKUP_BITS: u32 = HEADER_BITS + 128;

/// Value stored for every network (the map is a set).
pub const PRESENT: u32 = 1;

/// Key of the pod CIDR map, laid out like the kernel's
/// `struct bpf_lpm_trie_key_u8` followed by its data: `prefixlen` bits of
/// `net` (family, pad, address) must match.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodCidrKey {
    /// [`HEADER_BITS`] + the network's prefix length.
    pub prefixlen: u32,
    /// The network address (host bits zero).
    pub net: EndpointKey,
}

impl PodCidrKey {
    /// `addr/len` (`len` ≤ 32; host bits are cleared).
    pub const fn v4(addr: [u8; 4], len: u8) -> Self {
        let len = if len > 32 { 32 } else { len };
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self::masked(AF_INET, a, len)
    }

    /// `addr/len` (`len` ≤ 128; host bits are cleared).
    pub const fn v6(addr: [u8; 16], len: u8) -> Self {
        let len = if len > 128 { 128 } else { len };
        Self::masked(AF_INET6, addr, len)
    }

    const fn masked(family: u8, mut addr: [u8; 16], len: u8) -> Self {
        let mut i = 0;
        while i < 16 {
            let bits = len as i32 - 8 * i as i32;
            addr[i] &= if bits >= 8 {
                0xff
            } else if bits <= 0 {
                0
            } else {
                !(0xffu8 >> bits)
            };
            i += 1;
        }
        Self {
            prefixlen: HEADER_BITS + len as u32,
            net: EndpointKey {
                family,
                pad: [0; 3],
                addr,
            },
        }
    }

    /// The network's own prefix length (without [`HEADER_BITS`]).
    pub const fn net_len(&self) -> u32 {
        self.prefixlen.saturating_sub(HEADER_BITS)
    }

    /// The key that looks `addr` up: the longest stored network containing
    /// it matches.
    pub const fn lookup(addr: EndpointKey) -> Self {
        Self {
            prefixlen: LOOKUP_BITS,
            net: addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_clear_host_bits_and_count_the_header() {
        let k = PodCidrKey::v4([172, 17, 1, 77], 24);
        assert_eq!(k.prefixlen, 32 + 24);
        assert_eq!(k.net_len(), 24);
        assert_eq!(k.net, EndpointKey::v4([172, 17, 1, 0]));
        assert_eq!(
            PodCidrKey::v4([10, 255, 1, 1], 9).net.addr[..4],
            [10, 128, 0, 0]
        );
        assert_eq!(PodCidrKey::v4([1, 2, 3, 4], 0).net.addr, [0; 16]);
        assert_eq!(PodCidrKey::v4([1, 2, 3, 4], 40).net_len(), 32);
        let mut a = [0xffu8; 16];
        a[0] = 0xfd;
        let k = PodCidrKey::v6(a, 68);
        assert_eq!(k.prefixlen, 32 + 68);
        assert_eq!(k.net.family, AF_INET6);
        assert_eq!(
            k.net.addr[..9],
            [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]
        );
        assert_eq!(k.net.addr[9..], [0; 7]);
        assert_eq!(
            PodCidrKey::lookup(EndpointKey::v4([1, 2, 3, 4])).prefixlen,
            160
        );
    }

    #[test]
    fn the_key_has_the_kernel_layout() {
        assert_eq!(core::mem::size_of::<PodCidrKey>(), 4 + 20);
        assert_eq!(core::mem::offset_of!(PodCidrKey, net), 4);
    }
}
