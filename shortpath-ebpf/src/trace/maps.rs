//! Maps and load-time configuration of the tracer.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
    Global,
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
#[unsafe(no_mangle)]
pub static OFFSETS: Global<Offsets> = Global::new(Offsets::ZERO);

#[inline(always)]
pub fn offsets() -> Option<Offsets> {
    let o = OFFSETS.load();
    (o.valid != 0).then_some(o)
}

#[inline(always)]
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
