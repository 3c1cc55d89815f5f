//! Flows a pod sent to the node's stack, and their replies
//! (docs/DATAPLANE.md, "Replies of flows the stack has seen"; the key is
//! `shortpath_common::stack_flow`).
//!
//! A pod's packet to a Service IP goes to the stack, whose conntrack DNATs
//! it to a backend pod. The backend answers from its own address: a
//! pod → pod packet that, delivered straight into the client pod, would
//! skip the conntrack entry that must turn its source back into the
//! Service IP. So [`remember`] records the pod's end of what `from_pod`
//! hands to the stack for being outside the pod CIDRs, and [`is_reply`]
//! tells both programs, before they deliver into a local pod, that the
//! packet must take the stack instead.

use aya_ebpf::programs::TcContext;
use shortpath_common::{
    endpoint::{AF_INET, AF_INET6, FLAG_SENT_TO_STACK},
    stack_flow::{Side, StackFlowKey},
};

use crate::{maps, parse::Packet, words::EndpointWords};

/// Records the pod's end (source address, source port / echo id) of a
/// packet the pod (`own`, its endpoint) sends to the stack. TCP, UDP and
/// echo requests only. The pod's entry is marked first
/// ([`FLAG_SENT_TO_STACK`]), so no reply can be checked before it is.
#[inline(always)]
pub fn remember(ctx: &TcContext, p: &Packet, own: &EndpointWords) {
    if own.flags & FLAG_SENT_TO_STACK == 0 {
        maps::mark_sent_to_stack(&p.src_key());
    }
    if let Some((proto, l4)) = p.l4_head(ctx) {
        if let Some(key) = StackFlowKey::of(p.src_key().endpoint(), proto, &l4, Side::FromPod) {
            maps::remember_stack_flow(&key);
        }
    }
}

/// Whether a packet for a local pod (`ep`; destination address,
/// destination port / echo id) belongs to a flow that pod sent to the
/// stack. Packets without a port (other protocols, ICMP other than echo
/// replies, L4 header cut short) never do, and neither do packets to a
/// pod that never sent anything to the stack: most packets skip the
/// lookup.
#[inline(always)]
pub fn is_reply(ctx: &TcContext, p: &Packet, ep: &EndpointWords) -> bool {
    if ep.flags & FLAG_SENT_TO_STACK == 0 {
        return false;
    }
    let Some((proto, l4)) = p.l4_head(ctx) else {
        return false;
    };
    let dst = p.dst_key();
    let family = if dst.is_v4() { AF_INET } else { AF_INET6 };
    match StackFlowKey::port_in(family, proto, &l4, Side::ToPod) {
        Some(port) => maps::is_stack_flow(&dst, proto, port),
        None => false,
    }
}
