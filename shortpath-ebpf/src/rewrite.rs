//! Header rewrites of a routed hop: MACs and TTL / hop limit.

use aya_ebpf::{helpers::generated::bpf_csum_update, programs::TcContext};
use shortpath_common::csum;

use core::mem::offset_of;

use crate::{
    load,
    parse::{EthHdr, Ip, Ipv4Hdr, Packet},
};

/// Writes the destination and source MAC, given as the three words they
/// make in the frame (see [`words`](crate::words)).
#[inline(always)]
pub fn set_l2(p: &Packet, l2: &[u32; 3]) {
    // SAFETY: `p.eth` was bounds-checked by `parse` (14 bytes).
    unsafe {
        load::set_u32::<0, _>(p.eth, l2[0]);
        load::set_u32::<4, _>(p.eth, l2[1]);
        load::set_u32::<8, _>(p.eth, l2[2]);
    }
}

/// Writes the destination and source MAC from two arrays (the FIB's
/// answer, a cached next hop).
#[inline(always)]
pub fn set_macs(p: &Packet, dst: &[u8; 6], src: &[u8; 6]) {
    // SAFETY: `p.eth` was bounds-checked by `parse`.
    unsafe {
        load::set_mac::<{ offset_of!(EthHdr, dst) }, _>(p.eth, dst);
        load::set_mac::<{ offset_of!(EthHdr, src) }, _>(p.eth, src);
    }
}

/// Decrements TTL / hop limit. Callers check `ttl() > 1` first (the stack
/// answers expired packets).
///
/// Checksums: IPv4 gets an incremental header checksum update, which
/// compensates the TTL change inside the header, so the one's complement
/// sum over the header — and with it `skb->csum` of a CHECKSUM_COMPLETE
/// packet — does not change. IPv6 has no header checksum: the direct write
/// changes the packet's sum, so `skb->csum` gets the difference through
/// `bpf_csum_update`, or the receiver of a CHECKSUM_COMPLETE packet would
/// see a bad L4 checksum. The word (next header, hop limit) is at offset 6
/// of the IPv6 header; `skb->csum` starts at the network header, so the
/// word is aligned in the sum (the Ethernet header TC pushed in front is
/// 14 bytes, even, as well).
#[inline(always)]
pub fn decrement_ttl(ctx: &TcContext, p: &Packet) {
    match p.ip {
        // SAFETY: headers were bounds-checked by the parser.
        Ip::V4(ip) => unsafe {
            let ttl = (*ip).ttl;
            let check = load::u16_at::<{ offset_of!(Ipv4Hdr, check) }, _>(ip);
            load::set_u16::<{ offset_of!(Ipv4Hdr, check) }, _>(ip, csum::ipv4_ttl_decrement(check));
            (*ip).ttl = ttl - 1;
        },
        Ip::V6(ip) => {
            // SAFETY: headers were bounds-checked by the parser.
            let diff = unsafe {
                let (next, hop) = ((*ip).nexthdr, (*ip).hop_limit);
                (*ip).hop_limit = hop - 1;
                csum::ipv6_hop_limit_decrement_diff(next, hop)
            };
            // Returns -ENOTSUPP unless the skb is CHECKSUM_COMPLETE, where
            // there is nothing to fix: ignored on purpose.
            // SAFETY: the program's own skb; no packet pointer is kept
            // across the call (it does not move packet data).
            let _ = unsafe { bpf_csum_update(ctx.skb.skb, diff) };
        }
    }
}
