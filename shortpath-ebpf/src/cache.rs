//! Per-CPU caches in front of the endpoint maps and the next-hop trie.
//!
//! A hash map or LPM trie lookup is a call into the kernel that hashes or
//! walks, compares keys and returns through this CPU's return thunk; live,
//! the endpoint lookup alone cost about as much as the rest of `from_nic`
//! (docs/PERFORMANCE.md). Each CPU keeps the answers its programs got in
//! direct-mapped arrays (`ENDPOINT_CACHE`, `NEXT_HOP_CACHE`: one slot per
//! address hash), whose lookups the verifier inlines: a hit reads one slot
//! and calls nothing. An answer is cached whether the map had the address
//! or not.
//!
//! **Never stale.** Every slot is tagged with the cache generation
//! (`CACHE_GEN`) read *before* the map lookup that filled it, and a slot
//! counts only while the generation is unchanged. Every writer of the
//! cached maps bumps the generation *after* its write: userspace after each
//! insert and remove (and once whenever it opens the maps, which repairs a
//! writer killed between the two), and `from_pod` after it sets
//! `FLAG_SENT_TO_STACK` (an atomic add). A slot filled from a value that a
//! later write replaced therefore carries an older generation than the one
//! that write left: a miss.
//!
//! This needs the CPU to keep loads in program order (the generation
//! before the map's), which x86-64 does; elsewhere (cfg `ordered_loads`
//! unset) the programs look the maps up every time. A slot is written on
//! its own CPU only, marked empty while it changes.

use crate::key::AddrKey;

/// One cached answer for an address.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot<V> {
    /// The address ([`AddrKey::words`]); a family word of 0: empty.
    pub addr: [u32; 5],
    /// The low half of `CACHE_GEN` when the map was looked up.
    pub generation: u32,
    /// 1: the map had the address (`value` is its), 0: it had not.
    pub found: u32,
    pub value: V,
}

/// The answer for `key`: from this CPU's `cache` when its slot holds `key`
/// at the current generation, else from `lookup` (and then cached).
#[cfg(ordered_loads)]
#[inline(always)]
pub fn get<V: Copy>(
    cache: &aya_ebpf::maps::PerCpuArray<Slot<V>>,
    slots: u32,
    key: &AddrKey,
    lookup: impl FnOnce(&AddrKey) -> Option<V>,
) -> Option<V> {
    use core::sync::atomic::{compiler_fence, Ordering};

    let Some(generation) = crate::maps::CACHE_GEN.get_ptr(0) else {
        return lookup(key);
    };
    // SAFETY: an aligned array value; writers change it atomically.
    let generation = unsafe { core::ptr::read_volatile(generation) } as u32;
    let w = key.words();
    // A multiplicative hash of the address words.
    let h = (w[1] ^ w[2] ^ w[3] ^ w[4]).wrapping_mul(0x9e37_79b1);
    let Some(slot) = cache.get_ptr_mut(h >> (32 - slots.trailing_zeros())) else {
        return lookup(key);
    };
    // SAFETY: this CPU's copy of the slot; only programs on this CPU write
    // it, and none runs while we do.
    let slot = unsafe { &mut *slot };
    let a = &slot.addr;
    if slot.generation == generation
        && a[0] == w[0]
        && a[1] == w[1]
        && a[2] == w[2]
        && a[3] == w[3]
        && a[4] == w[4]
    {
        return (slot.found != 0).then_some(slot.value);
    }
    // The generation was read above, before the lookup.
    compiler_fence(Ordering::SeqCst);
    let answer = lookup(key);
    slot.addr[0] = 0;
    compiler_fence(Ordering::SeqCst);
    slot.generation = generation;
    slot.found = answer.is_some() as u32;
    if let Some(v) = answer {
        slot.value = v;
    }
    slot.addr[1] = w[1];
    slot.addr[2] = w[2];
    slot.addr[3] = w[3];
    slot.addr[4] = w[4];
    compiler_fence(Ordering::SeqCst);
    slot.addr[0] = w[0];
    answer
}

/// Without ordered loads: the map, every time.
#[cfg(not(ordered_loads))]
#[inline(always)]
pub fn get<V: Copy>(
    _cache: &aya_ebpf::maps::PerCpuArray<Slot<V>>,
    _slots: u32,
    key: &AddrKey,
    lookup: impl FnOnce(&AddrKey) -> Option<V>,
) -> Option<V> {
    lookup(key)
}

/// Tells every CPU's caches that a cached map changed (after the write):
/// an atomic add (`lock ... +=`, BPF_ATOMIC) to the generation, which
/// userspace adds to atomically as well.
#[cfg(ordered_loads)]
#[inline(always)]
pub fn invalidate() {
    if let Some(generation) = crate::maps::CACHE_GEN.get_ptr_mut(0) {
        // SAFETY: an aligned 8-byte array value.
        unsafe {
            core::arch::asm!(
                "lock *(u64 *)({0} + 0) += {1}",
                in(reg) generation,
                in(reg) 1u64,
                options(nostack),
            );
        }
    }
}

/// Without the caches there is nothing to tell.
#[cfg(not(ordered_loads))]
#[inline(always)]
pub fn invalidate() {}
