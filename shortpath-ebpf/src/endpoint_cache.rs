//! A per-CPU cache in front of the endpoint maps and the next-hop map.
//!
//! A hash map lookup is a call into the kernel that hashes the key, walks
//! a bucket and compares keys; live, it costs about as much as the rest of
//! `from_nic` (docs/PERFORMANCE.md), and the walk of the next-hop LPM trie
//! is the largest piece of `from_pod`'s path to another node. Each CPU
//! keeps the endpoints and next hops it last looked up in direct-mapped
//! arrays per family (`ENDPOINT_CACHE_V4`, `ENDPOINT_CACHE_V6`,
//! `NEXT_HOP_CACHE_V4`, `NEXT_HOP_CACHE_V6`, one slot per address hash),
//! whose lookup the verifier inlines: a hit reads one slot and calls
//! nothing.
//!
//! **Never stale.** Every slot is tagged with the endpoint generation
//! (`ENDPOINTS_GEN`, plus one) read *before* the map lookup that filled it, and a
//! slot counts only while the generation is unchanged. Every writer of the
//! endpoint maps and of `NEXT_HOPS` bumps the generation *after* its write:
//! userspace after each insert and remove (and once whenever it opens the
//! endpoint maps, which repairs a writer killed between the two), and
//! `from_pod` after it sets `FLAG_SENT_TO_STACK` (an atomic add). A slot filled from a value that a
//! later write replaced therefore carries an older generation than the
//! one that write left: a miss. A program reads the generation once per
//! run, before its first lookup ([`Generation::now`]), and compares every
//! slot of that run with it.
//!
//! This needs the CPU to keep loads in program order (the generation
//! before the map's element), which x86-64 does; elsewhere (cfg
//! `ordered_loads` unset) the programs look the maps up directly. It also
//! needs a slot to be read and written by one program at a time: a slot is
//! only touched on its own CPU, and programs on one CPU do not interleave
//! — except on PREEMPT_RT kernels, where the loader leaves the cache off
//! ([`config::cache_endpoints`](crate::config::cache_endpoints)).
//! Absent addresses are not cached, and neither are next-hop entries that
//! leave the packet to the FIB: a miss costs the lookup it always did.

#[cfg(ordered_loads)]
use aya_ebpf::maps::PerCpuArray;
use shortpath_common::endpoint::ENDPOINT_CACHE_SLOTS;

/// An address an endpoint cache holds: IPv4 (its word, `ENDPOINT_CACHE_V4`)
/// or IPv6 (its four words, `ENDPOINT_CACHE_V6`). One cache per family
/// keeps a slot's address one word for IPv4, where a shared slot compared
/// five (the family and four address words) on every hit.
pub trait Addr: Copy {
    /// The slot index: the top bits of a multiplicative hash.
    fn slot(&self) -> u32;
    /// Word-wise equality (`==` on an array may become a `bcmp` call).
    fn same(&self, other: &Self) -> bool;
}

/// Top bits of a multiplicative hash: the slot of `h`.
#[inline(always)]
fn top_bits(h: u32) -> u32 {
    h.wrapping_mul(0x9e37_79b1) >> (32 - ENDPOINT_CACHE_SLOTS_LOG2)
}

const ENDPOINT_CACHE_SLOTS_LOG2: u32 = ENDPOINT_CACHE_SLOTS.trailing_zeros();

impl Addr for u32 {
    #[inline(always)]
    fn slot(&self) -> u32 {
        top_bits(*self)
    }

    #[inline(always)]
    fn same(&self, other: &Self) -> bool {
        *self == *other
    }
}

/// A stack-flow key's IPv4 part: the pod's address, then the protocol
/// and the port (`STACK_FLOW_CACHE_V4`).
impl Addr for [u32; 2] {
    #[inline(always)]
    fn slot(&self) -> u32 {
        top_bits(self[0] ^ self[1])
    }

    #[inline(always)]
    fn same(&self, o: &Self) -> bool {
        self[0] == o[0] && self[1] == o[1]
    }
}

impl Addr for [u32; 4] {
    #[inline(always)]
    fn slot(&self) -> u32 {
        top_bits(self[0] ^ self[1] ^ self[2] ^ self[3])
    }

    #[inline(always)]
    fn same(&self, o: &Self) -> bool {
        self[0] == o[0] && self[1] == o[1] && self[2] == o[2] && self[3] == o[3]
    }
}

/// One cached answer: an endpoint, or a next hop.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Slot<A, V> {
    /// `ENDPOINTS_GEN` + 1 when the value was looked up; 0: empty (an
    /// all-zero slot matches no generation, whatever its address).
    pub tag: u64,
    pub value: V,
    pub addr: A,
}

// The slot index is the top bits of a 32-bit hash.
const _: () = assert!(ENDPOINT_CACHE_SLOTS.is_power_of_two() && ENDPOINT_CACHE_SLOTS >= 2);

/// The tag of the current endpoint generation (`ENDPOINTS_GEN` + 1), read
/// once per program run, before the run's first lookup, and shared by all
/// of its cache lookups: one read where each lookup made its own. Reading
/// it earlier than a lookup keeps the rule (the generation before the map
/// element): a slot filled with an older tag only misses sooner. A run
/// that bumps the generation itself ([`bump`]) looks nothing up
/// afterwards. Tag 0 (which an empty slot carries): the cache is off,
/// every lookup goes to the map — also for the one generation whose tag
/// wraps to 0. One word, where an `Option` took a flag and a value, two
/// stack slots in `from_pod`.
#[derive(Clone, Copy)]
pub struct Generation(
    #[cfg_attr(
        not(ordered_loads),
        expect(
            dead_code,
            reason = "without ordered loads there is no cache to compare it with"
        )
    )]
    u64,
);

impl Generation {
    /// The generation now, or "off" when the loader left the cache off.
    #[cfg(ordered_loads)]
    #[inline(always)]
    pub fn now() -> Self {
        Self::of(&crate::maps::ENDPOINTS_GEN)
    }

    /// The generation `map` (its one u64) holds now, or "off".
    #[cfg(ordered_loads)]
    #[inline(always)]
    pub fn of(map: &aya_ebpf::maps::Array<u64>) -> Self {
        Self(read_tag(map).unwrap_or(0))
    }

    /// Without ordered loads there is no cache.
    #[cfg(not(ordered_loads))]
    #[inline(always)]
    pub fn now() -> Self {
        Self(0)
    }

    /// Without ordered loads there is no cache.
    #[cfg(not(ordered_loads))]
    #[inline(always)]
    pub fn of(_map: &aya_ebpf::maps::Array<u64>) -> Self {
        Self(0)
    }
}

/// The generation `map` holds now, plus one, read before any lookup that
/// follows; `None` when the loader left the cache off.
#[cfg(ordered_loads)]
#[inline(always)]
fn read_tag(map: &aya_ebpf::maps::Array<u64>) -> Option<u64> {
    use core::sync::atomic::{compiler_fence, Ordering};

    if !crate::config::cache_endpoints() {
        return None;
    }
    let generation = map.get_ptr(0)?;
    // SAFETY: an aligned array value; writers change it atomically.
    let tag = unsafe { core::ptr::read_volatile(generation) }.wrapping_add(1);
    compiler_fence(Ordering::SeqCst);
    Some(tag)
}

/// Whether `present` says yes for `addr`, remembering the noes: a slot of
/// this CPU's `cache` holding `addr` at `generation` answers "no" without
/// asking. For a map whose writers only ever bump `generation` after they
/// add (`STACK_FLOWS`, `STACK_FLOWS_GEN`): a removal only makes a cached
/// "no" truer, an addition after the slot was filled changes the
/// generation, so the slot misses.
#[cfg(ordered_loads)]
#[inline(always)]
pub fn absent_or<A: Addr>(
    cache: &PerCpuArray<Slot<A, u32>>,
    generation: Generation,
    addr: A,
    present: impl FnOnce() -> bool,
) -> bool {
    let Generation(tag) = generation;
    if tag == 0 {
        return present();
    }
    let Some(slot) = cache.get_ptr_mut(addr.slot()) else {
        return present();
    };
    // SAFETY: this CPU's copy of the slot, as in `cached`.
    let slot = unsafe { &mut *slot };
    if slot.tag == tag && slot.addr.same(&addr) {
        return false;
    }
    if present() {
        return true;
    }
    slot.addr = addr;
    slot.tag = tag;
    false
}

/// Without ordered loads: the map, every time.
#[cfg(not(ordered_loads))]
#[inline(always)]
pub fn absent_or<A: Addr, C>(
    _cache: &C,
    _generation: Generation,
    _addr: A,
    present: impl FnOnce() -> bool,
) -> bool {
    present()
}

/// The value behind `addr`: from this CPU's `cache` when its slot holds
/// `addr` at `generation`, else from `lookup`, and then cached if `keep`
/// says so.
///
/// `None` reads the generation here, inside the caller's path of this
/// family: a program with one lookup (`from_nic`) passes it. A generation
/// read before the family split, as [`Generation::now`] does, lets the
/// compiler join the IPv4 and IPv6 paths around it: from_nic measured
/// 7–9 ns more per packet live with the paths joined (udp_rr; 2–6 ns in
/// udp_pps), with fewer instructions.
#[cfg(ordered_loads)]
#[inline(always)]
pub fn cached<A: Addr, V: Copy>(
    cache: &PerCpuArray<Slot<A, V>>,
    generation: Option<Generation>,
    addr: A,
    lookup: impl FnOnce(&A) -> Option<&'static V>,
    keep: impl FnOnce(&V) -> bool,
) -> Option<&'static V> {
    let tag = match generation {
        Some(Generation(0)) => return lookup(&addr),
        Some(Generation(tag)) => tag,
        None => match read_tag(&crate::maps::ENDPOINTS_GEN) {
            Some(tag) => tag,
            None => return lookup(&addr),
        },
    };
    let Some(slot) = cache.get_ptr_mut(addr.slot()) else {
        return lookup(&addr);
    };
    // SAFETY: this CPU's copy of the slot; only programs on this CPU
    // touch it, and (PREEMPT_RT aside, where the cache is off) none runs
    // while we do.
    let slot = unsafe { &mut *slot };
    if slot.tag == tag && slot.addr.same(&addr) {
        return Some(&slot.value);
    }
    let v = lookup(&addr)?;
    if keep(v) {
        slot.addr = addr;
        slot.tag = tag;
        copy_words(&mut slot.value, v);
    }
    Some(v)
}

/// `*dst = *src` as word loads and stores: a plain copy of a struct from
/// one place in memory to another becomes a `memmove` call, a byte loop
/// (`tc_programs_call_no_byte_loop_builtins` fails on it).
#[cfg(ordered_loads)]
#[inline(always)]
fn copy_words<V: Copy>(dst: &mut V, src: &V) {
    const {
        assert!(core::mem::size_of::<V>().is_multiple_of(4) && core::mem::align_of::<V>() >= 4);
    }
    let (d, s) = (dst as *mut V as *mut u32, src as *const V as *const u32);
    for i in 0..core::mem::size_of::<V>() / 4 {
        // SAFETY: `i` words lie inside both values, which are 4-aligned
        // (checked above); volatile so that the loop is not turned back
        // into a `memmove`.
        unsafe { d.add(i).write_volatile(s.add(i).read_volatile()) };
    }
}

/// Without ordered loads: the map, every time.
#[cfg(not(ordered_loads))]
#[inline(always)]
pub fn cached<A: Addr, V, C>(
    _cache: &C,
    _generation: Option<Generation>,
    addr: A,
    lookup: impl FnOnce(&A) -> Option<&'static V>,
    _keep: impl FnOnce(&V) -> bool,
) -> Option<&'static V> {
    lookup(&addr)
}

/// Tells every CPU's cache that what `map`'s generation covers changed
/// (after the write): an atomic add of one (`lock ... +=`, BPF_ATOMIC),
/// as userspace adds to `ENDPOINTS_GEN`.
#[cfg(ordered_loads)]
#[inline(always)]
pub fn bump(map: &aya_ebpf::maps::Array<u64>) {
    if let Some(generation) = map.get_ptr_mut(0) {
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
pub fn bump(_map: &aya_ebpf::maps::Array<u64>) {}
