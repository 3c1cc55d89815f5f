//! TC ingress of the node NIC: packets arriving from the wire.
//!
//! A packet for a pod on this node skips the bridge, netfilter and the
//! node's routing: L2 is rewritten as the node's router would (destination
//! = pod, source = host veth), TTL / hop limit is decremented, and the
//! packet goes straight to the pod (`redirect` mode: via its host veth;
//! `peer` mode: into its namespace). Everything else goes to the stack
//! untouched.

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use shortpath_common::{counters::Reason, endpoint::FLAG_STACK_ONLY, mode::FastPath};

use crate::{config, counters::count, maps, parse, redirect, rewrite};

const PACKET_HOST: u32 = 0;

pub fn run(ctx: &TcContext) -> i32 {
    // SAFETY: reading a field of the program's own context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let (action, reason) = forward(ctx).unwrap_or_else(|reason| (TC_ACT_OK as i32, reason));
    count(ifindex, reason);
    action
}

fn forward(ctx: &TcContext) -> Result<(i32, Reason), Reason> {
    let mode = config::mode().ok_or(Reason::PassUnconfigured)?;
    // Only frames addressed to this node are routed by it.
    // SAFETY: reading a field of the program's own context.
    if unsafe { (*ctx.skb.skb).pkt_type } != PACKET_HOST {
        return Err(Reason::PassNotForHost);
    }
    let p = parse::parse(ctx)?;
    let ep = maps::endpoint(&p.dst_key()).ok_or(Reason::PassNoEndpoint)?;
    if ep.flags & FLAG_STACK_ONLY != 0 {
        return Err(Reason::PassStackOnly);
    }
    if p.ttl() <= 1 {
        return Err(Reason::PassTtl);
    }
    if !redirect::fits_pod_mtu(ctx, &ep) {
        return Err(Reason::PassMtu);
    }
    rewrite::set_macs(&p, &ep.pod_mac, &ep.host_mac);
    rewrite::decrement_ttl(&p);
    Ok(match mode {
        FastPath::Peer => redirect::into_pod(ctx, &ep),
        FastPath::Redirect => redirect::to_host_veth(&ep),
    })
}
