//! Route lookups in the node's FIB with `bpf_fib_lookup`.

use core::mem::size_of;

use aya_ebpf::{
    bindings::{
        bpf_check_mtu_ret::BPF_MTU_CHK_RET_FRAG_NEEDED, bpf_fib_lookup,
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_NOT_FWDED, BPF_FIB_LKUP_RET_NO_NEIGH,
        BPF_FIB_LKUP_RET_SUCCESS,
    },
    helpers::generated::{bpf_check_mtu, bpf_fib_lookup as fib_lookup_helper},
    programs::TcContext,
};
use shortpath_common::{
    counters::Reason,
    endpoint::{AF_INET, AF_INET6},
};

use crate::parse::{Ip, Packet};

pub enum Fib {
    /// Route and neighbour known: egress device and the MACs to write.
    Forward {
        ifindex: u32,
        smac: [u8; 6],
        dmac: [u8; 6],
    },
    /// Route known, neighbour not resolved: `bpf_redirect_neigh` resolves it.
    /// `params` carries the next hop the kernel filled in. The packet fits
    /// the egress MTU (checked here, see [`lookup`]).
    NoNeigh {
        ifindex: u32,
        params: bpf_fib_lookup,
    },
}

/// Looks up the packet's destination as if it had arrived on `iif`.
///
/// `tot_len` stays 0 so the kernel checks the egress MTU against the skb
/// itself, GSO-aware; a non-zero `tot_len` would send every GSO packet of a
/// bulk TCP flow to the stack. The kernel does that check only on SUCCESS;
/// for NO_NEIGH it is done here with `bpf_check_mtu`, or an oversized
/// non-GSO packet would be handed to `bpf_redirect_neigh` and dropped
/// silently by the device instead of getting its frag-needed /
/// packet-too-big from the stack.
///
/// Without flags the lookup walks the policy rules like the stack does, but
/// with mark 0; see docs/DATAPLANE.md.
#[inline(always)]
pub fn lookup(ctx: &TcContext, p: &Packet, iif: u32) -> Result<Fib, Reason> {
    // SAFETY: plain-old-data struct, all-zero is a valid request.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.ifindex = iif;
    // SAFETY: headers were bounds-checked by `parse`; union fields are
    // written in the layout the kernel reads for the chosen family.
    unsafe {
        match p.ip {
            Ip::V4(ip) => {
                params.family = AF_INET;
                params.__bindgen_anon_2.tos = (*ip).tos;
                params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes((*ip).saddr);
                params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes((*ip).daddr);
            }
            Ip::V6(ip) => {
                params.family = AF_INET6;
                // Traffic class + flow label, network order.
                let w = (*ip).vtc_flow;
                params.__bindgen_anon_2.flowinfo =
                    u32::from_ne_bytes([w[0] & 0x0f, w[1], w[2], w[3]]);
                params.__bindgen_anon_3.ipv6_src = addr6((*ip).saddr);
                params.__bindgen_anon_4.ipv6_dst = addr6((*ip).daddr);
            }
        }
    }
    let rc = unsafe {
        fib_lookup_helper(
            ctx.skb.skb as *mut _,
            &mut params,
            size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    #[allow(clippy::unnecessary_cast)]
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => Ok(Fib::Forward {
            ifindex: params.ifindex,
            smac: params.smac,
            dmac: params.dmac,
        }),
        BPF_FIB_LKUP_RET_NO_NEIGH if !fits_egress_mtu(ctx, params.ifindex) => {
            Err(Reason::PassFibFragNeeded)
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => Ok(Fib::NoNeigh {
            ifindex: params.ifindex,
            params,
        }),
        BPF_FIB_LKUP_RET_NOT_FWDED => Err(Reason::PassFibLocal),
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Err(Reason::PassFibFragNeeded),
        _ => Err(Reason::PassFibOther),
    }
}

/// Whether the packet fits a cached route's MTU: its length (L2 header
/// included) against the MTU, and only above that — a GSO packet, which
/// is segmented to fit, or one too big — the kernel's `bpf_check_mtu`,
/// which knows the difference. The FIB lookup makes the same check.
#[inline(always)]
pub fn fits_route_mtu(ctx: &TcContext, ifindex: u32, mtu: u32) -> bool {
    ctx.len() <= mtu + crate::parse::ETH_HLEN as u32 || fits_egress_mtu(ctx, ifindex)
}

/// `bpf_check_mtu` of the skb against `ifindex` (input length 0: the skb's
/// own length; GSO packets pass, they are segmented to fit). Only a clear
/// FRAG_NEEDED counts as "does not fit"; an error (device gone) is left to
/// the redirect, which fails the same way.
#[inline(always)]
fn fits_egress_mtu(ctx: &TcContext, ifindex: u32) -> bool {
    let mut len: u32 = 0;
    // SAFETY: the program's own skb; `len` outlives the call.
    let rc = unsafe { bpf_check_mtu(ctx.skb.skb as *mut _, ifindex, &mut len, 0, 0) };
    rc != BPF_MTU_CHK_RET_FRAG_NEEDED as i64
}

#[inline(always)]
fn addr6(a: [u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}
