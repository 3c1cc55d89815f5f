//! Every way the fast path hands a packet on, each in one place with the
//! conditions under which it is legal. All return the counter reason; the
//! TC action follows from it ([`tc_action`]).

use core::mem::size_of;

use aya_ebpf::{
    bindings::{bpf_fib_lookup, bpf_redir_neigh, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::generated::{bpf_redirect, bpf_redirect_neigh, bpf_redirect_peer},
    programs::TcContext,
};
use shortpath_common::{
    counters::{Reason, Verdict},
    mode::FastPath,
};

use crate::words::EndpointWords;

const PACKET_HOST: u32 = 0;

/// The TC action of a packet counted with `reason`: `TC_ACT_REDIRECT`
/// after a redirect helper succeeded, `TC_ACT_OK` (the stack) for a pass,
/// `TC_ACT_SHOT` for a drop. Reason numbers are ranged by verdict, so this
/// is two comparisons, and the programs carry one value, the reason, from
/// their decision to their end.
#[inline(always)]
pub fn tc_action(reason: Reason) -> i32 {
    match Verdict::of_number(reason as u32) {
        Verdict::Redirect => TC_ACT_REDIRECT,
        Verdict::Pass => TC_ACT_OK,
        Verdict::Drop => TC_ACT_SHOT,
    }
}

#[inline(always)]
fn verdict(rc: i64, reason: Reason) -> Reason {
    if rc as i32 == TC_ACT_REDIRECT {
        reason
    } else {
        // Only invalid flags make these helpers fail; the frame is already
        // rewritten, so it must not reach the stack as if untouched.
        Reason::DropRedirectError
    }
}

/// `bpf_redirect(host veth, egress)`: the packet is transmitted on the
/// pod's host-side veth, whose peer (`ve0`) receives it through the CPU
/// backlog (`netif_rx`), i.e. in a second softirq pass.
///
/// Legal from any TC hook; the target only needs to be up.
#[inline(always)]
pub fn to_host_veth(ep: &EndpointWords) -> Reason {
    verdict(unsafe { bpf_redirect(ep.ifindex, 0) }, Reason::Redirect)
}

/// `bpf_redirect_peer(host veth)`: the packet switches into the pod's
/// namespace and is received on `ve0` within the same softirq — no backlog.
///
/// Legal only from TC *ingress* (from_nic, from_pod) and only when
/// `ep.ifindex` is a veth whose peer lives in another namespace. The peer
/// drops silently what fails its MTU check, so callers check the MTU first.
/// Kernels before 6.15 keep `pkt_type` across the switch: frames the host
/// veth saw as OTHERHOST (routed via the bridge MAC) must become HOST or
/// the pod's stack discards them.
#[inline(always)]
pub fn into_pod(ctx: &TcContext, ep: &EndpointWords) -> Reason {
    // SAFETY: reading a field of the program's own context.
    if unsafe { (*ctx.skb.skb).pkt_type } != PACKET_HOST {
        let _ = ctx.change_type(PACKET_HOST);
    }
    verdict(
        unsafe { bpf_redirect_peer(ep.ifindex, 0) },
        Reason::RedirectPeer,
    )
}

/// A local pod's way in, by the loaded mode: [`into_pod`] in `peer` mode,
/// [`to_host_veth`] in `redirect` mode. The mode is read here, where it is
/// used, rather than held in a register from the program's start: it is a
/// constant of the loaded object, and the register is worth more.
#[inline(always)]
pub fn into_pod_or_host_veth(ctx: &TcContext, ep: &EndpointWords) -> Reason {
    if crate::config::mode() == Some(FastPath::Peer) {
        into_pod(ctx, ep)
    } else {
        to_host_veth(ep)
    }
}

/// `bpf_redirect(egress device)` after a successful FIB lookup: MACs are
/// already rewritten from the lookup result.
///
/// Legal from any TC hook. The MACs come from the neighbour table at lookup
/// time; they can go stale until the next lookup (pitfalls: cilium #37725).
#[inline(always)]
pub fn to_device(ifindex: u32) -> Reason {
    verdict(unsafe { bpf_redirect(ifindex, 0) }, Reason::Redirect)
}

/// `bpf_redirect(egress device)` with the MACs of a cached next hop
/// (`NEXT_HOPS`), already written.
///
/// Legal from any TC hook. The entry is as fresh as the control plane
/// keeps it: it follows route, neighbour and link events (the agent), so
/// a changed gateway MAC is in the map once that event is handled.
#[inline(always)]
pub fn to_cached_next_hop(ifindex: u32) -> Reason {
    verdict(unsafe { bpf_redirect(ifindex, 0) }, Reason::RedirectCached)
}

/// `bpf_redirect_neigh(egress device, next hop)`: the kernel resolves the
/// neighbour (sending ARP/ND if needed) and fills in the L2 header.
///
/// Legal from TC only, with the next hop the FIB lookup returned; keeps
/// `skb->sk`, so TCP backpressure survives the redirect.
#[inline(always)]
pub fn to_neighbour(ifindex: u32, fib: &bpf_fib_lookup) -> Reason {
    // SAFETY: plain-old-data, the union is filled for the family below.
    let mut nh: bpf_redir_neigh = unsafe { core::mem::zeroed() };
    nh.nh_family = fib.family as u32;
    // SAFETY: `ipv6_dst` spans the union, so copying it copies the IPv4
    // next hop as well; the kernel reads the member `nh_family` selects.
    unsafe {
        nh.__bindgen_anon_1.ipv6_nh = fib.__bindgen_anon_4.ipv6_dst;
    }
    let rc =
        unsafe { bpf_redirect_neigh(ifindex, &mut nh, size_of::<bpf_redir_neigh>() as i32, 0) };
    verdict(rc, Reason::RedirectNeigh)
}

/// Whether the pod's veth accepts the frame: the veth peer drops what is
/// larger than its MTU (plus L2 header and one VLAN tag) unless it is GSO.
/// Such packets go to the stack, which fragments or answers with ICMP.
/// The length first: `gso_size` lives in the skb's shared info, at the end
/// of the data buffer, a cache line that a packet within the MTU (nearly
/// every one) need not touch.
#[inline(always)]
pub fn fits_pod_mtu(ctx: &TcContext, ep: &EndpointWords) -> bool {
    // SAFETY: reading a field of the program's own context.
    ctx.len() <= ep.mtu + crate::parse::ETH_HLEN as u32 + 4
        || unsafe { (*ctx.skb.skb).gso_size } != 0
}
