//! TC ingress of a pod's host-side veth: packets the pod sends.
//!
//! 1. The frame must be one a pod may send, from the pod's own address and
//!    MAC ([`source`](crate::source), docs/DATAPLANE.md "What a pod may
//!    send"); otherwise it is dropped and counted. This runs before any
//!    step that could hand the packet to the stack, which would forward it.
//! 2. ARP, ND, link-local, group-MAC, fragmented and option-carrying
//!    packets then go to the stack, so the bridge keeps answering for the
//!    gateway and the lab can switch back to `bridge`.
//! 3. A destination whose route the next-hop cache holds (`NEXT_HOPS`,
//!    another node's pods) gets that next hop's MACs, TTL − 1 and
//!    `bpf_redirect` to the NIC without a FIB lookup (`redirect_cached`).
//! 4. A destination pod on this node gets the packet directly, unless the
//!    packet is the reply of a flow that pod sent to the stack
//!    (`pass_stack_flow`, see [`stack_flow`](crate::stack_flow)).
//! 5. Any other destination inside the cluster's pod CIDRs (`POD_CIDRS`) is routed
//!    with the node's FIB: rewrite L2 + TTL and transmit on the egress
//!    device, or let `bpf_redirect_neigh` resolve an unknown neighbour.
//!    What the FIB does not forward goes to the stack, and so does every
//!    other destination (`pass_not_pod_cidr`): Service IPs need the node's
//!    DNAT, the internet its masquerade. Such a flow is remembered, so
//!    that its replies meet the node's conntrack too.

use aya_ebpf::programs::TcContext;
use shortpath_common::{
    counters::Reason, endpoint::FLAG_STACK_ONLY, mode::FastPath, next_hop::NextHop,
};

use crate::{
    config,
    counters::count,
    endpoint_cache::Generation,
    fib::{self, Fib},
    ipv6, maps,
    parse::{self, EthHdr, Ip, Packet, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
    redirect, rewrite, source, stack_flow,
    words::{self, EndpointWords},
};

pub fn run(ctx: &TcContext) -> i32 {
    // The pod's host veth: the device the packet arrived on, `skb_iif`,
    // which the stack sets to the receiving device before TC ingress (one
    // load; `ifindex` is two, `skb->dev->ifindex`).
    // SAFETY: reading a field of the program's own context.
    let ifindex = unsafe { (*ctx.skb.skb).ingress_ifindex };
    let (Ok(reason) | Err(reason)) = forward(ctx, ifindex);
    count(ctx, reason);
    redirect::tc_action(reason)
}

fn forward(ctx: &TcContext, ifindex: u32) -> Result<Reason, Reason> {
    let mode = config::mode().ok_or(Reason::PassUnconfigured)?;
    // One generation for every cache lookup of this run: the source's
    // endpoint, the destination's next hop or endpoint.
    let generation = Generation::now();
    let (p, own) = parse(ctx, ifindex, generation)?;

    let dst = p.dst_key();
    if dst.is_multicast() {
        return Err(Reason::PassMulticast);
    }
    if dst.is_link_local_or_unspecified() {
        return Err(Reason::PassLinkLocal);
    }
    // A remote node's pods: the route resolved ahead of time, when the
    // control plane could (every cached route is inside the pod CIDRs and
    // leaves through the NIC; a pod of this node inside one has its own
    // route, an "ask the FIB" exception). First, so that traffic to other
    // nodes skips the endpoint lookup.
    let cached = maps::next_hop(&dst, generation);
    if let Some(nh) = cached.filter(|nh| nh.is_cached()) {
        return to_cached_next_hop(ctx, &p, nh);
    }
    if let Some(ep) = maps::endpoint(&dst, Some(generation)) {
        return to_local_pod(ctx, &p, &ep, mode);
    }
    // Only pod addresses are routed here: a Service IP must meet the
    // node's DNAT, the internet its masquerade.
    if cached.is_none() && !maps::in_pod_cidrs(&dst) {
        // Its replies must take the stack too (the reverse NAT).
        stack_flow::remember(ctx, &p, &own);
        return Err(Reason::PassNotPodCidr);
    }

    if p.ttl() <= 1 {
        return Err(Reason::PassTtl);
    }
    match fib::lookup(ctx, &p, ifindex)? {
        Fib::Forward {
            ifindex,
            smac,
            dmac,
        } => {
            rewrite::set_macs(&p, &dmac, &smac);
            rewrite::decrement_ttl(ctx, &p);
            Ok(redirect::to_device(ifindex))
        }
        Fib::NoNeigh { ifindex, params } => {
            rewrite::decrement_ttl(ctx, &p);
            Ok(redirect::to_neighbour(ifindex, &params))
        }
    }
}

/// A destination whose route the next-hop cache holds: the rewrite the
/// FIB's answer would have led to, without asking it. TTL and MTU get the
/// same treatment as on the FIB path.
#[inline(always)]
fn to_cached_next_hop(ctx: &TcContext, p: &Packet, nh: &NextHop) -> Result<Reason, Reason> {
    if p.ttl() <= 1 {
        return Err(Reason::PassTtl);
    }
    if !fib::fits_route_mtu(ctx, nh.ifindex, nh.mtu) {
        return Err(Reason::PassFibFragNeeded);
    }
    rewrite::set_l2(p, &words::next_hop_l2(nh));
    rewrite::decrement_ttl(ctx, p);
    Ok(redirect::to_cached_next_hop(nh.ifindex))
}

/// The pod's frame as the fast path may forward it and the pod's endpoint
/// (its source's), or the final reason.
/// Drops (in this order): Ethernet header cut short (`drop_malformed`),
/// VLAN tag (`drop_vlan`), EtherType other than ARP / IPv4 / IPv6
/// (`drop_unknown_l3`), then the per-protocol rules below.
#[inline(always)]
fn parse(
    ctx: &TcContext,
    ifindex: u32,
    generation: Generation,
) -> Result<(Packet, EndpointWords), Reason> {
    let (eth, proto) = parse::eth(ctx).ok_or(Reason::DropMalformed)?;
    // A tagged frame would be bridged to other pods' VLANs unchecked; pods
    // here send untagged frames only.
    if parse::vlan_tagged(ctx, proto) {
        return Err(Reason::DropVlan);
    }
    match proto {
        ETH_P_IP => v4(ctx, eth, ifindex, generation),
        ETH_P_IPV6 => v6(ctx, eth, ifindex, generation),
        ETH_P_ARP => {
            let arp = parse::arp(ctx).ok_or(Reason::DropMalformed)?;
            // SAFETY: bounds-checked by `parse::eth`; only read here.
            Err(source::arp(unsafe { &*eth }, arp, ifindex, generation))
        }
        _ => Err(Reason::DropUnknownL3),
    }
}

/// IPv4: well-formed (`drop_malformed`), own source and MAC
/// (`drop_spoofed`, `drop_spoofed_mac`; DHCP discover passes), then what
/// the stack keeps: group MAC, stack-only pod, options, fragments.
#[inline(always)]
fn v4(
    ctx: &TcContext,
    eth: *mut EthHdr,
    ifindex: u32,
    generation: Generation,
) -> Result<(Packet, EndpointWords), Reason> {
    let ip = parse::ipv4(ctx).ok_or(Reason::DropMalformed)?;
    // SAFETY: both bounds-checked by the parsers. The checks only read; the
    // views end before anything writes the packet (through `Packet`).
    let (l2, l3) = unsafe { (&*eth, &*ip) };
    let own = source::ipv4(l2, l3, ifindex, generation)?;
    stack_keeps(l2, &own)?;
    parse::ipv4_fast_path(l3)?;
    Ok((
        Packet {
            eth,
            ip: Ip::V4(ip),
        },
        own,
    ))
}

/// IPv6: well-formed (`drop_malformed`), own source and MAC or link scope
/// (`drop_spoofed`, `drop_spoofed_mac`), the extension-header chain and the
/// ND rules for every source ([`ipv6::check_nd`]), then what the stack
/// keeps: link scope, group MAC, stack-only pod, extension headers,
/// fragments.
#[inline(always)]
fn v6(
    ctx: &TcContext,
    eth: *mut EthHdr,
    ifindex: u32,
    generation: Generation,
) -> Result<(Packet, EndpointWords), Reason> {
    let ip = parse::ipv6(ctx).ok_or(Reason::DropMalformed)?;
    // SAFETY: both bounds-checked by the parsers. The checks only read (and
    // `bpf_skb_load_bytes` does not move data); the views end before
    // anything writes the packet (through `Packet`).
    let (l2, l3) = unsafe { (&*eth, &*ip) };
    let own = source::ipv6(l2, l3, ifindex, generation)?;
    let chain = ipv6::walk(ctx, l3)?;
    ipv6::check_nd(ctx, l3, &chain, ifindex, generation)?;
    let own = own.ok_or(Reason::PassLinkLocal)?;
    stack_keeps(l2, &own)?;
    if chain.fragment {
        return Err(Reason::PassFragment);
    }
    if chain.ext {
        return Err(Reason::PassExtHeader);
    }
    Ok((
        Packet {
            eth,
            ip: Ip::V6(ip),
        },
        own,
    ))
}

/// Legitimate packets the fast path leaves to the stack, checked once the
/// source is known to be the pod's:
/// - a group destination MAC (broadcast, multicast: the I/G bit) is for
///   every host on the segment, never one routed or redirected copy;
/// - a stack-only pod's traffic.
#[inline(always)]
fn stack_keeps(eth: &EthHdr, own: &EndpointWords) -> Result<(), Reason> {
    if eth.dst[0] & 1 != 0 {
        return Err(Reason::PassMulticast);
    }
    if own.flags & FLAG_STACK_ONLY != 0 {
        return Err(Reason::PassStackOnly);
    }
    Ok(())
}

/// A pod on the same node. A frame addressed to the peer pod's MAC was
/// bridged (same subnet): it is delivered as is. A frame addressed to the
/// gateway was routed: it gets the router's rewrite.
fn to_local_pod(
    ctx: &TcContext,
    p: &Packet,
    ep: &EndpointWords,
    mode: FastPath,
) -> Result<Reason, Reason> {
    if ep.flags & FLAG_STACK_ONLY != 0 {
        return Err(Reason::PassStackOnly);
    }
    // The reply of a flow the destination pod sent to the stack: a backend
    // on this node answering a Service client on this node.
    if stack_flow::is_reply(ctx, p, ep) {
        return Err(Reason::PassStackFlow);
    }
    if !redirect::fits_pod_mtu(ctx, ep) {
        return Err(Reason::PassMtu);
    }
    if p.eth_dst() != ep.pod_mac() {
        if p.ttl() <= 1 {
            return Err(Reason::PassTtl);
        }
        rewrite::set_l2(p, &ep.l2);
        rewrite::decrement_ttl(ctx, p);
    }
    Ok(match mode {
        FastPath::Peer => redirect::into_pod(ctx, ep),
        FastPath::Redirect => redirect::to_host_veth(ep),
    })
}
