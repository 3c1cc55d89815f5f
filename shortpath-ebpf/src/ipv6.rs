//! IPv6 beyond the fixed header: the extension-header chain and the
//! Neighbor Discovery messages a pod may (not) send.
//!
//! Reads go through `bpf_skb_load_bytes` (`ctx.load`), so the chain may
//! sit in paged data and every offset is checked by the helper.

use aya_ebpf::programs::TcContext;
use shortpath_common::counters::Reason;

use crate::{
    addr,
    endpoint_cache::Generation,
    key::AddrKey,
    parse::{
        Ipv6Hdr, ETH_HLEN, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ICMPV6,
        IPPROTO_ROUTING, IPV6_HLEN,
    },
    source,
};

/// Extension headers walked before the upper layer; a longer chain is
/// treated as malformed (legitimate traffic uses one or two).
const MAX_EXT_HEADERS: usize = 4;

const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;
/// Offset of the target address in NS and NA (type, code, checksum,
/// flags / reserved).
const ND_TARGET: usize = 8;

/// Where the upper-layer header of an IPv6 packet is.
pub struct Chain {
    /// Upper-layer protocol; `None` in a fragment with a non-zero offset,
    /// which carries no upper-layer header.
    pub upper: Option<u8>,
    /// Frame offset of the upper-layer header.
    pub offset: usize,
    /// A hop-by-hop, routing or destination-options header was crossed.
    pub ext: bool,
    /// A fragment header was crossed.
    pub fragment: bool,
}

#[inline(always)]
fn is_ext(nh: u8) -> bool {
    nh == IPPROTO_HOPOPTS
        || nh == IPPROTO_ROUTING
        || nh == IPPROTO_DSTOPTS
        || nh == IPPROTO_FRAGMENT
}

/// Walks at most [`MAX_EXT_HEADERS`] extension headers. A fragment header
/// with offset 0 continues to its next header; a later fragment ends the
/// walk without an upper layer. `Err(DropMalformed)` for a longer chain or
/// one cut short by the end of the packet.
#[inline(always)]
pub fn walk(ctx: &TcContext, ip: &Ipv6Hdr) -> Result<Chain, Reason> {
    let mut nh = ip.nexthdr;
    let mut chain = Chain {
        upper: None,
        offset: ETH_HLEN + IPV6_HLEN,
        ext: false,
        fragment: false,
    };
    // The hot path (TCP, UDP, ICMPv6 right after the header) never loops.
    for _ in 0..MAX_EXT_HEADERS {
        if !is_ext(nh) {
            break;
        }
        // Every extension header starts with (next header, length).
        let [next, len]: [u8; 2] = ctx.load(chain.offset).map_err(|_| Reason::DropMalformed)?;
        if nh == IPPROTO_FRAGMENT {
            chain.fragment = true;
            let frag: [u8; 2] = ctx
                .load(chain.offset + 2)
                .map_err(|_| Reason::DropMalformed)?;
            if u16::from_be_bytes(frag) & 0xfff8 != 0 {
                return Ok(chain);
            }
            chain.offset += 8;
        } else {
            chain.ext = true;
            chain.offset += (len as usize + 1) * 8;
        }
        nh = next;
    }
    // Too long a chain, or a last header running past the packet's end.
    if is_ext(nh) || chain.offset > ctx.len() as usize {
        return Err(Reason::DropMalformed);
    }
    chain.upper = Some(nh);
    Ok(chain)
}

/// The Neighbor Discovery rules for a pod (any source address):
/// - Router Advertisement and Redirect are router messages: a pod sending
///   them would steer its neighbours' traffic → `drop_nd_router`.
/// - A Neighbor Advertisement may only announce the pod's own addresses or
///   a link-local one → else `drop_spoofed`.
/// - Duplicate address detection (NS from ::) may only probe those too,
///   else it would make another pod give up its address → `drop_spoofed`.
///
/// Truncated ND messages are `drop_malformed`. Everything else passes.
#[inline(always)]
pub fn check_nd(
    ctx: &TcContext,
    ip: &Ipv6Hdr,
    chain: &Chain,
    ifindex: u32,
    generation: Generation,
) -> Result<(), Reason> {
    if chain.upper != Some(IPPROTO_ICMPV6) {
        return Ok(());
    }
    let kind: u8 = ctx.load(chain.offset).map_err(|_| Reason::DropMalformed)?;
    match kind {
        ND_ROUTER_ADVERT | ND_REDIRECT => Err(Reason::DropNdRouter),
        ND_NEIGHBOR_ADVERT => own_target(ctx, chain, ifindex, generation),
        ND_NEIGHBOR_SOLICIT if ip.saddr == [0u8; 16] => own_target(ctx, chain, ifindex, generation),
        _ => Ok(()),
    }
}

/// The NS / NA target is link-local or an address of the pod behind
/// `ifindex`.
#[inline(always)]
fn own_target(
    ctx: &TcContext,
    chain: &Chain,
    ifindex: u32,
    generation: Generation,
) -> Result<(), Reason> {
    let target: [u8; 16] = ctx
        .load(chain.offset + ND_TARGET)
        .map_err(|_| Reason::DropMalformed)?;
    if addr::is_v6_link_local(&target) {
        return Ok(());
    }
    match source::pod_endpoint(&AddrKey::v6_bytes(target), ifindex, generation) {
        Some(_) => Ok(()),
        None => Err(Reason::DropSpoofed),
    }
}
