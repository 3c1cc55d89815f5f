//! Maps and load-time configuration of the tracer.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use shortpath_common::trace::{CpuState, Offsets, MAX_TRACED_NETNS, RING_BYTES};

/// Events to userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Namespace inode numbers of the lab (filled by userspace) → node index.
#[map]
pub static NETNS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_TRACED_NETNS, 0);

/// Softirq run and last packet, per CPU.
#[map]
pub static CPU: PerCpuArray<CpuState> = PerCpuArray::with_max_entries(1, 0);

/// Events lost because the ring buffer was full, per CPU.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Kernel structure offsets for this kernel; all zero = do nothing.
/// Frozen `.rodata`: the verifier sees every field as a constant, so
/// `skb + OFFSETS.skb_dev` is a fixed offset into a BTF-typed pointer it
/// checks against the kernel's `struct sk_buff`.
#[unsafe(no_mangle)]
static OFFSETS: Offsets = Offsets::ZERO;

/// One field of [`OFFSETS`], read so the compiler cannot assume the zero
/// it was initialized with.
macro_rules! offset {
    ($field:ident) => {
        // SAFETY: a read of an immutable static.
        unsafe { core::ptr::read_volatile(&$crate::trace::maps::offsets_ref().$field) } as u64
    };
}
pub(crate) use offset;

#[inline(always)]
pub fn offsets_ref() -> &'static Offsets {
    &OFFSETS
}

#[inline(always)]
pub fn enabled() -> bool {
    offset!(valid) != 0
}

#[inline(always)]
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "by value, the key gets a second stack slot (changes the tracer's code)"
)]
pub fn is_lab_netns(inum: u32) -> bool {
    // SAFETY: the value is not read, only its presence.
    inum != 0 && unsafe { NETNS.get(&inum) }.is_some()
}

#[inline(always)]
pub fn cpu_state() -> Option<&'static mut CpuState> {
    // SAFETY: per-CPU slot; programs on this CPU do not preempt each other
    // in a way that tears a single field update.
    CPU.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

#[inline(always)]
pub fn count_lost() {
    if let Some(p) = LOST.get_ptr_mut(0) {
        // SAFETY: per-CPU counter.
        unsafe { *p += 1 };
    }
}
