//! Per-CPU packet counters by (attach point, reason).

use shortpath_common::counters::{CounterKey, Reason};

use crate::maps::COUNTERS;

#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value, the key and the 1 get a second stack slot (from_nic: +4 bytes of stack, +11 instructions)"
)]
pub fn count(ifindex: u32, reason: Reason) {
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
