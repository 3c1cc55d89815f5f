//! TC ingress of the node NIC: packets arriving from the wire.
//!
//! A packet for a pod on this node skips the bridge, netfilter and the
//! node's routing: L2 is rewritten as the node's router would (destination
//! = pod, source = host veth), TTL / hop limit is decremented, and the
//! packet goes straight to the pod (`redirect` mode: via its host veth;
//! `peer` mode: into its namespace) — unless it is the reply of a flow the
//! pod sent to the stack (a Service backend's answer, see
//! [`stack_flow`](crate::stack_flow)), which the node's conntrack must
//! translate back. Everything else goes to the stack untouched: the
//! program never drops, so whatever the stack would refuse (malformed,
//! bad checksum, martian source) is refused and counted there.

use aya_ebpf::programs::TcContext;
use shortpath_common::{counters::Reason, endpoint::FLAG_STACK_ONLY};

use crate::{
    addr, config,
    counters::count,
    maps,
    parse::{
        self, Ip, Packet, ETH_P_IP, ETH_P_IPV6, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS,
        IPPROTO_ROUTING,
    },
    redirect, rewrite, stack_flow,
};

const PACKET_HOST: u32 = 0;

pub fn run(ctx: &TcContext) -> i32 {
    let (Ok(reason) | Err(reason)) = forward(ctx);
    count(ctx, reason);
    redirect::tc_action(reason)
}

fn forward(ctx: &TcContext) -> Result<Reason, Reason> {
    config::mode().ok_or(Reason::PassUnconfigured)?;
    // Only frames addressed to this node are routed by it.
    // SAFETY: reading a field of the program's own context.
    if unsafe { (*ctx.skb.skb).pkt_type } != PACKET_HOST {
        return Err(Reason::PassNotForHost);
    }
    let p = parse(ctx)?;
    deliver(ctx, &p)
}

/// A parsed packet to a local pod, or why the stack gets it.
#[inline(always)]
fn deliver(ctx: &TcContext, p: &Packet) -> Result<Reason, Reason> {
    let ep = maps::endpoint(&p.dst_key(), None).ok_or(Reason::PassNoEndpoint)?;
    if ep.flags & FLAG_STACK_ONLY != 0 {
        return Err(Reason::PassStackOnly);
    }
    // A reply to a flow the pod sent to the stack (a Service's backend
    // answering): the node's conntrack must undo its DNAT.
    if stack_flow::is_reply(ctx, p, &ep) {
        return Err(Reason::PassStackFlow);
    }
    if p.ttl() <= 1 {
        return Err(Reason::PassTtl);
    }
    if !redirect::fits_pod_mtu(ctx, &ep) {
        return Err(Reason::PassMtu);
    }
    rewrite::set_l2(p, &ep.l2);
    rewrite::decrement_ttl(ctx, p);
    Ok(redirect::into_pod_or_host_veth(ctx, &ep))
}

/// A packet the fast path may forward, or why the stack gets it — the
/// first that applies of: not IP or VLAN-tagged (`pass_not_ip`); truncated
/// or inconsistent headers, including a total / payload length beyond the
/// frame (`pass_malformed`); IPv4 options, fragments, IPv6 extension
/// headers; a bad IPv4 header checksum (`pass_bad_checksum`, the stack
/// counts and drops it); a martian source (`pass_martian`, the stack drops
/// and logs it). A router must not forward any of these as they are.
#[inline(always)]
fn parse(ctx: &TcContext) -> Result<Packet, Reason> {
    let (eth, proto) = parse::eth(ctx).ok_or(Reason::PassMalformed)?;
    if parse::vlan_tagged(ctx, proto) {
        return Err(Reason::PassNotIp);
    }
    match proto {
        ETH_P_IP => {
            let ip = parse::ipv4(ctx).ok_or(Reason::PassMalformed)?;
            // SAFETY: bounds-checked by `parse::ipv4`; the view is only read
            // and ends before the rewrite.
            let l3 = unsafe { &*ip };
            parse::ipv4_fast_path(l3)?;
            if !parse::ipv4_checksum_ok(l3) {
                return Err(Reason::PassBadChecksum);
            }
            if addr::is_martian_v4(l3.saddr()) {
                return Err(Reason::PassMartian);
            }
            Ok(Packet {
                eth,
                ip: Ip::V4(ip),
            })
        }
        ETH_P_IPV6 => {
            let ip = parse::ipv6(ctx).ok_or(Reason::PassMalformed)?;
            // SAFETY: bounds-checked by `parse::ipv6`; the view is only read
            // and ends before the rewrite.
            let l3 = unsafe { &*ip };
            match l3.nexthdr {
                IPPROTO_FRAGMENT => return Err(Reason::PassFragment),
                // Hop-by-hop must be processed by every router; routing and
                // destination options may change where the packet goes.
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                    return Err(Reason::PassExtHeader)
                }
                _ => {}
            }
            if addr::is_martian_v6(&l3.saddr) {
                return Err(Reason::PassMartian);
            }
            Ok(Packet {
                eth,
                ip: Ip::V6(ip),
            })
        }
        _ => Err(Reason::PassNotIp),
    }
}
