//! What a pod may send: the source checks of `from_pod`, one function per
//! protocol (docs/DATAPLANE.md, "What a pod may send").
//!
//! They run before anything can hand the packet to the stack, because the
//! stack and the bridge forward what they get (rp_filter is off on the
//! nodes) — a spoofed fragment or ARP reply passed "to the stack" would
//! reach other pods unchecked. Each returns the endpoint the source belongs
//! to, or the final reason: a drop, or the pass of a legitimate packet that
//! never takes the fast path.

use shortpath_common::counters::Reason;

use crate::{
    addr,
    endpoint_cache::Generation,
    key::AddrKey,
    maps,
    parse::{ArpHdr, EthHdr, Ipv4Hdr, Ipv6Hdr},
    words::EndpointWords,
};

/// The rule every claimed address goes through: `key` is an address of the
/// pod behind `ifindex` (else `drop_spoofed`), and the frame comes from
/// that pod's MAC (else `drop_spoofed_mac`: another host on the pod's
/// segment, or the pod forging its neighbours' caches).
#[inline(always)]
fn own(
    key: &AddrKey,
    mac: (u32, u16),
    ifindex: u32,
    generation: Generation,
) -> Result<EndpointWords, Reason> {
    match pod_endpoint(key, ifindex, generation) {
        Some(ep) if ep.pod_mac() == mac => Ok(ep),
        Some(_) => Err(Reason::DropSpoofedMac),
        None => Err(Reason::DropSpoofed),
    }
}

/// The endpoint behind `key` if it is an address of the pod behind
/// `ifindex`: the one ownership rule, for sources and ND targets alike.
#[inline(always)]
pub fn pod_endpoint(key: &AddrKey, ifindex: u32, generation: Generation) -> Option<EndpointWords> {
    maps::endpoint(key, Some(generation)).filter(|ep| ep.ifindex == ifindex)
}

/// ARP: always the stack's (`pass_arp`) once its sender is the pod. The
/// sender MAC must equal the Ethernet source; the sender IP must be the
/// pod's own, or 0.0.0.0 for an RFC 5227 probe (which claims nothing).
/// The result is the final reason.
#[inline(always)]
pub fn arp(eth: &EthHdr, arp: &ArpHdr, ifindex: u32, generation: Generation) -> Reason {
    let (src, sha, spa) = (eth.src, arp.sha, arp.spa);
    if spa != [0, 0, 0, 0] {
        if let Err(reason) = own(
            &AddrKey::v4(u32::from_ne_bytes(spa)),
            eth.src_mac(),
            ifindex,
            generation,
        ) {
            return reason;
        }
    }
    if sha != src {
        return Reason::DropSpoofedMac;
    }
    Reason::PassArp
}

/// IPv4: the source must be the pod's own address from the pod's MAC. The
/// one exception is a DHCP client without an address (0.0.0.0 →
/// 255.255.255.255), which goes to the stack as `pass_link_local`.
/// `saddr` sits at a fixed offset, so options and fragments cannot hide it.
#[inline(always)]
pub fn ipv4(
    eth: &EthHdr,
    ip: &Ipv4Hdr,
    ifindex: u32,
    generation: Generation,
) -> Result<EndpointWords, Reason> {
    if ip.saddr() == 0 && ip.daddr() == u32::MAX {
        return Err(Reason::PassLinkLocal);
    }
    own(&AddrKey::v4(ip.saddr()), eth.src_mac(), ifindex, generation)
}

/// IPv6: the pod's own address from the pod's MAC (`Some(endpoint)`), or a
/// link-local / unspecified source (`None`) — only towards a link-local
/// unicast or multicast destination, which no router forwards and which
/// therefore stays on the pod's segment.
#[inline(always)]
pub fn ipv6(
    eth: &EthHdr,
    ip: &Ipv6Hdr,
    ifindex: u32,
    generation: Generation,
) -> Result<Option<EndpointWords>, Reason> {
    if addr::is_v6_link_local_or_unspecified(&ip.saddr) {
        if addr::is_v6_link_local(&ip.daddr) || addr::is_v6_multicast(&ip.daddr) {
            return Ok(None);
        }
        return Err(Reason::DropSpoofed);
    }
    own(&AddrKey::v6(ip.saddr()), eth.src_mac(), ifindex, generation).map(Some)
}
