//! Route lookups in the node's FIB with `bpf_fib_lookup`.

use core::mem::{size_of, MaybeUninit};

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
    let mut slot = MaybeUninit::uninit();
    let params = zeroed(&mut slot);
    params.ifindex = iif;
    // SAFETY: headers were bounds-checked by `parse`; union fields are
    // written in the layout the kernel reads for the chosen family.
    unsafe {
        match p.ip {
            Ip::V4(ip) => {
                params.family = AF_INET;
                params.__bindgen_anon_2.tos = (*ip).tos;
                params.__bindgen_anon_3.ipv4_src = (*ip).saddr();
                params.__bindgen_anon_4.ipv4_dst = (*ip).daddr();
            }
            Ip::V6(ip) => {
                params.family = AF_INET6;
                // Traffic class + flow label, network order.
                let w = (*ip).vtc_flow;
                params.__bindgen_anon_2.flowinfo =
                    u32::from_ne_bytes([w[0] & 0x0f, w[1], w[2], w[3]]);
                params.__bindgen_anon_3.ipv6_src = (*ip).saddr();
                params.__bindgen_anon_4.ipv6_dst = (*ip).daddr();
            }
        }
    }
    let rc = unsafe {
        fib_lookup_helper(
            ctx.skb.skb as *mut _,
            params,
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
            params: *params,
        }),
        BPF_FIB_LKUP_RET_NOT_FWDED => Err(Reason::PassFibLocal),
        BPF_FIB_LKUP_RET_FRAG_NEEDED => Err(Reason::PassFibFragNeeded),
        _ => Err(Reason::PassFibOther),
    }
}

/// An 8-byte aligned stack slot for a lookup request.
#[repr(C, align(8))]
struct ParamsSlot(bpf_fib_lookup);

const WORDS: usize = size_of::<bpf_fib_lookup>() / 8;
const _: () = assert!(size_of::<bpf_fib_lookup>().is_multiple_of(8));

/// Zeroes the request in `slot`, in place, and returns it.
///
/// `core::mem::zeroed()` of the 64-byte struct (or any copy of a zeroed
/// one) becomes a `memset` call, which the BPF backend emits as a call
/// into a byte loop: some 330 instructions per lookup. Eight volatile
/// word stores cannot be merged back into one.
#[inline(always)]
fn zeroed(slot: &mut MaybeUninit<ParamsSlot>) -> &mut bpf_fib_lookup {
    let words = slot.as_mut_ptr() as *mut u64;
    for i in 0..WORDS {
        // SAFETY: `i` < WORDS words lie inside the aligned slot.
        unsafe { words.add(i).write_volatile(0) };
    }
    // SAFETY: every byte was written; all-zero is a valid request
    // (plain-old-data).
    unsafe { &mut slot.assume_init_mut().0 }
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
