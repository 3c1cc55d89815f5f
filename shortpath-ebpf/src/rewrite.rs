//! Header rewrites of a routed hop: MACs and TTL / hop limit.

use shortpath_common::csum;

use crate::parse::{Ip, Packet};

#[inline(always)]
pub fn set_macs(p: &Packet, dst: &[u8; 6], src: &[u8; 6]) {
    // SAFETY: `p.eth` was bounds-checked by `parse`.
    unsafe {
        (*p.eth).dst = *dst;
        (*p.eth).src = *src;
    }
}

/// Decrements TTL / hop limit; IPv4 gets an incremental checksum update.
/// Callers check `ttl() > 1` first (the stack answers expired packets).
#[inline(always)]
pub fn decrement_ttl(p: &Packet) {
    // SAFETY: headers were bounds-checked by `parse`.
    unsafe {
        match p.ip {
            Ip::V4(ip) => {
                let ttl = (*ip).ttl;
                let check = u16::from_be_bytes((*ip).check);
                (*ip).check = csum::ipv4_ttl_decrement(check, ttl, (*ip).protocol).to_be_bytes();
                (*ip).ttl = ttl - 1;
            }
            Ip::V6(ip) => (*ip).hop_limit -= 1,
        }
    }
}
