//! TC ingress of a pod's host-side veth: packets the pod sends.
//!
//! 1. The source must be an address of the pod behind this device
//!    (anti-spoofing); otherwise the packet is dropped and counted.
//! 2. A destination pod on this node gets the packet directly.
//! 3. Anything else is routed with the node's FIB: rewrite L2 + TTL and
//!    transmit on the egress device, or let `bpf_redirect_neigh` resolve an
//!    unknown neighbour. What the FIB does not forward goes to the stack.
//!
//! ARP, ND and link-local traffic always go to the stack, so the bridge
//! keeps answering for the gateway and the lab can switch back to `bridge`.

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    programs::TcContext,
};
use shortpath_common::{
    counters::Reason,
    endpoint::{Endpoint, FLAG_STACK_ONLY},
    mode::FastPath,
};

use crate::{
    config,
    counters::count,
    fib::{self, Fib},
    maps,
    parse::{self, Packet},
    redirect, rewrite,
};

pub fn run(ctx: &TcContext) -> i32 {
    // SAFETY: reading a field of the program's own context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let (action, reason) =
        forward(ctx, ifindex).unwrap_or_else(|reason| (TC_ACT_OK as i32, reason));
    count(ifindex, reason);
    action
}

fn forward(ctx: &TcContext, ifindex: u32) -> Result<(i32, Reason), Reason> {
    let mode = config::mode().ok_or(Reason::PassUnconfigured)?;
    let p = parse::parse(ctx)?;

    let src = p.src_key();
    if parse::is_link_local_or_unspecified(&src) {
        return Err(Reason::PassLinkLocal);
    }
    match maps::endpoint(&src) {
        Some(own) if own.ifindex == ifindex => {
            if own.flags & FLAG_STACK_ONLY != 0 {
                return Err(Reason::PassStackOnly);
            }
        }
        _ => return Ok((TC_ACT_SHOT as i32, Reason::DropSpoofed)),
    }

    let dst = p.dst_key();
    if parse::is_multicast(&dst) {
        return Err(Reason::PassMulticast);
    }
    if parse::is_link_local_or_unspecified(&dst) {
        return Err(Reason::PassLinkLocal);
    }
    if let Some(ep) = maps::endpoint(&dst) {
        return to_local_pod(ctx, &p, &ep, mode);
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
            rewrite::decrement_ttl(&p);
            Ok(redirect::to_device(ifindex))
        }
        Fib::NoNeigh { ifindex, params } => {
            rewrite::decrement_ttl(&p);
            Ok(redirect::to_neighbour(ifindex, &params))
        }
    }
}

/// A pod on the same node. A frame addressed to the peer pod's MAC was
/// bridged (same subnet): it is delivered as is. A frame addressed to the
/// gateway was routed: it gets the router's rewrite.
fn to_local_pod(
    ctx: &TcContext,
    p: &Packet,
    ep: &Endpoint,
    mode: FastPath,
) -> Result<(i32, Reason), Reason> {
    if ep.flags & FLAG_STACK_ONLY != 0 {
        return Err(Reason::PassStackOnly);
    }
    if !redirect::fits_pod_mtu(ctx, ep) {
        return Err(Reason::PassMtu);
    }
    if p.eth_dst() != ep.pod_mac {
        if p.ttl() <= 1 {
            return Err(Reason::PassTtl);
        }
        rewrite::set_macs(p, &ep.pod_mac, &ep.host_mac);
        rewrite::decrement_ttl(p);
    }
    Ok(match mode {
        FastPath::Peer => redirect::into_pod(ctx, ep),
        FastPath::Redirect => redirect::to_host_veth(ep),
    })
}
