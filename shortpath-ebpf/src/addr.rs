//! Address classes the programs decide on: who may be forwarded, who stays
//! on the link, what no router forwards at all.

use shortpath_common::endpoint::{EndpointKey, AF_INET};

/// Multicast or broadcast destination (the stack owns those).
#[inline(always)]
pub fn is_multicast(key: &EndpointKey) -> bool {
    if key.family == AF_INET {
        key.addr[0] & 0xf0 == 0xe0 || key.addr[..4] == [255, 255, 255, 255]
    } else {
        is_v6_multicast(&key.addr)
    }
}

/// Unspecified or link-local address: ND, DAD, DHCP — stack business.
#[inline(always)]
pub fn is_link_local_or_unspecified(key: &EndpointKey) -> bool {
    if key.family == AF_INET {
        key.addr[..4] == [0, 0, 0, 0] || (key.addr[0] == 169 && key.addr[1] == 254)
    } else {
        is_v6_link_local_or_unspecified(&key.addr)
    }
}

/// fe80::/10 or ::.
#[inline(always)]
pub fn is_v6_link_local_or_unspecified(a: &[u8; 16]) -> bool {
    is_v6_link_local(a) || *a == [0u8; 16]
}

/// fe80::/10.
#[inline(always)]
pub fn is_v6_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xfe && a[1] & 0xc0 == 0x80
}

/// ff00::/8.
#[inline(always)]
pub fn is_v6_multicast(a: &[u8; 16]) -> bool {
    a[0] == 0xff
}

/// An IPv4 source no router forwards: this network (0/8), loopback
/// (127/8), link-local (169.254/16), multicast (224/4), limited broadcast.
#[inline(always)]
pub fn is_martian_v4(a: [u8; 4]) -> bool {
    a[0] == 0
        || a[0] == 127
        || (a[0] == 169 && a[1] == 254)
        || a[0] & 0xf0 == 0xe0
        || a == [255, 255, 255, 255]
}

/// An IPv6 source no router forwards: unspecified, loopback, link-local,
/// multicast, IPv4-mapped (::ffff:0:0/96, never on the wire).
#[inline(always)]
pub fn is_martian_v6(a: &[u8; 16]) -> bool {
    if is_v6_link_local(a) || is_v6_multicast(a) {
        return true;
    }
    // ::, ::1 and ::ffff:a.b.c.d share ten leading zero bytes.
    if a[..10] != [0u8; 10] {
        return false;
    }
    a[10..12] == [0xff, 0xff] || (a[10..15] == [0u8; 5] && a[15] <= 1)
}
