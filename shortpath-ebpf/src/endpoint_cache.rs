//! A per-CPU cache in front of the endpoint maps.
//!
//! A hash map lookup is a call into the kernel that hashes the key, walks
//! a bucket and compares keys; live, it costs about as much as the rest of
//! `from_nic` (docs/PERFORMANCE.md). Each CPU keeps the endpoints it last
//! looked up in a direct-mapped array (`ENDPOINT_CACHE`, one slot per
//! address hash), whose lookup the verifier inlines: a hit reads one slot
//! and calls nothing.
//!
//! **Never stale.** Every slot is tagged with the endpoint generation
//! (`ENDPOINTS_GEN`) read *before* the map lookup that filled it, and a
//! slot counts only while the generation is unchanged. Every writer of the
//! endpoint maps bumps the generation *after* its write: userspace after
//! each insert and remove (and once whenever it opens the maps, which
//! repairs a writer killed between the two), and `from_pod` after it sets
//! `FLAG_SENT_TO_STACK` (an atomic add). A slot filled from a value that a
//! later write replaced therefore carries an older generation than the
//! one that write left: a miss.
//!
//! This needs the CPU to keep loads in program order (the generation
//! before the map's element), which x86-64 does; elsewhere (cfg
//! `ordered_loads` unset) the programs look the maps up directly. It also
//! needs a slot to be read and written by one program at a time: a slot is
//! only touched on its own CPU, and programs on one CPU do not interleave
//! — except on PREEMPT_RT kernels, where the loader leaves the cache off
//! ([`config::cache_endpoints`](crate::config::cache_endpoints)).
//! Absent addresses are not cached: a miss costs the lookup it always did.

#[cfg(ordered_loads)]
use shortpath_common::endpoint::ENDPOINT_CACHE_SLOTS;

use crate::{key::AddrKey, words::EndpointWords};

/// One cached endpoint.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot {
    /// The address ([`AddrKey::words`]); a family word of 0: empty (no
    /// address has it).
    pub addr: [u32; 5],
    pub pad: u32,
    /// `ENDPOINTS_GEN` when the value was looked up.
    pub generation: u64,
    pub endpoint: EndpointWords,
}

// The slot index is the top bits of a 32-bit hash.
const _: () = assert!(
    shortpath_common::endpoint::ENDPOINT_CACHE_SLOTS.is_power_of_two()
        && shortpath_common::endpoint::ENDPOINT_CACHE_SLOTS >= 2
);

/// The slot of `key`: a multiplicative hash of its address words.
#[cfg(ordered_loads)]
#[inline(always)]
fn index(key: &AddrKey) -> u32 {
    let w = key.words();
    let h = (w[1] ^ w[2] ^ w[3] ^ w[4]).wrapping_mul(0x9e37_79b1);
    h >> (32 - ENDPOINT_CACHE_SLOTS.trailing_zeros())
}

/// The endpoint behind `key`: from this CPU's cache when its slot holds
/// `key` at the current generation, else from `lookup` (and then cached).
#[cfg(ordered_loads)]
#[inline(always)]
pub fn endpoint(
    key: &AddrKey,
    lookup: impl FnOnce(&AddrKey) -> Option<EndpointWords>,
) -> Option<EndpointWords> {
    use core::sync::atomic::{compiler_fence, Ordering};

    use crate::maps::{ENDPOINTS_GEN, ENDPOINT_CACHE};

    if !crate::config::cache_endpoints() {
        return lookup(key);
    }
    let Some(generation) = ENDPOINTS_GEN.get_ptr(0) else {
        return lookup(key);
    };
    // SAFETY: an aligned array value; writers change it atomically.
    let generation = unsafe { core::ptr::read_volatile(generation) };
    let Some(slot) = ENDPOINT_CACHE.get_ptr_mut(index(key)) else {
        return lookup(key);
    };
    // SAFETY: this CPU's copy of the slot; only programs on this CPU
    // touch it, and (PREEMPT_RT aside, where the cache is off) none runs
    // while we do.
    let slot = unsafe { &mut *slot };
    let w = key.words();
    let a = &slot.addr;
    if slot.generation == generation
        && a[0] == w[0]
        && a[1] == w[1]
        && a[2] == w[2]
        && a[3] == w[3]
        && a[4] == w[4]
    {
        return Some(slot.endpoint);
    }
    // The generation was read above, before the lookup.
    compiler_fence(Ordering::SeqCst);
    let ep = lookup(key)?;
    slot.addr[0] = w[0];
    slot.addr[1] = w[1];
    slot.addr[2] = w[2];
    slot.addr[3] = w[3];
    slot.addr[4] = w[4];
    slot.generation = generation;
    slot.endpoint = ep;
    Some(ep)
}

/// Without ordered loads: the map, every time.
#[cfg(not(ordered_loads))]
#[inline(always)]
pub fn endpoint(
    key: &AddrKey,
    lookup: impl FnOnce(&AddrKey) -> Option<EndpointWords>,
) -> Option<EndpointWords> {
    lookup(key)
}

/// Tells every CPU's cache that an endpoint changed (after the write):
/// an atomic add (`lock ... +=`, BPF_ATOMIC) to the generation, which
/// userspace adds to atomically as well.
#[cfg(ordered_loads)]
#[inline(always)]
pub fn invalidate() {
    if let Some(generation) = crate::maps::ENDPOINTS_GEN.get_ptr_mut(0) {
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

/// Without the cache there is nothing to tell.
#[cfg(not(ordered_loads))]
#[inline(always)]
pub fn invalidate() {}
