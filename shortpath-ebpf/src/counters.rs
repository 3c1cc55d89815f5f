//! Per-CPU packet counters by (attach point, reason): an array slot per
//! device (`ifindex % DEVICE_SLOTS`), the hash map for devices whose slot
//! another device holds.

use aya_ebpf::programs::TcContext;
use shortpath_common::counters::{CounterKey, Reason, DEVICE_SLOTS, REASON_SLOTS};

use crate::maps::{COUNTERS, DEVICE_COUNTERS};

/// Counts the packet for the device the program is attached to, at the
/// end of the run. The device is the skb's `skb_iif` (`ingress_ifindex`),
/// which the stack sets to the receiving device before TC ingress runs:
/// one load where `ifindex` is two (`skb->dev->ifindex`), and nothing held
/// in a register through the run.
#[inline(always)]
pub fn count(ctx: &TcContext, reason: Reason) {
    // SAFETY: reading a field of the program's own context.
    let ifindex = unsafe { (*ctx.skb.skb).ingress_ifindex };
    let r = reason as u32 as usize;
    if let Some(slot) = DEVICE_COUNTERS.get_ptr_mut(ifindex & (DEVICE_SLOTS - 1)) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        let s = unsafe { &mut *slot };
        if s.ifindex == 0 {
            s.ifindex = ifindex;
        }
        if s.ifindex == ifindex && r < REASON_SLOTS {
            s.packets[r] += 1;
            return;
        }
    }
    count_in_hash(ifindex, reason);
}

#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value, the key and the 1 get a second stack slot (from_nic: +4 bytes of stack, +11 instructions)"
)]
fn count_in_hash(ifindex: u32, reason: Reason) {
    let key = CounterKey {
        ifindex,
        reason: reason as u32,
    };
    match COUNTERS.get_ptr_mut(&key) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        Some(v) => unsafe { *v += 1 },
        // First packet for this key on this CPU's view: create it. A full
        // map only loses the count, never the packet.
        None => {
            let _ = COUNTERS.insert(&key, &1, 0);
        }
    }
}
