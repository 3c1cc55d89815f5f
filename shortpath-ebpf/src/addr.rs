//! Address classes the programs decide on: who may be forwarded, who stays
//! on the link, what no router forwards at all.

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
/// `addr` in network order (as [`Ipv4Hdr::saddr`](crate::parse::Ipv4Hdr::saddr)
/// reads it).
#[inline(always)]
pub fn is_martian_v4(addr: u32) -> bool {
    let a = u32::from_be(addr);
    let first = a >> 24;
    first == 0 || first == 127 || a >> 16 == 0xa9fe || a >> 28 == 0xe || a == u32::MAX
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
