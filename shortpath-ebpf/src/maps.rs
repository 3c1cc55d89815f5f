//! Maps of the TC programs. Userspace pins them per node under
//! `/sys/fs/bpf/shortpath/<lab>/<node>/` and shares them between the
//! program generations that replace each other on a mode switch.

use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, PerCpuHashMap},
};
use shortpath_common::{
    counters::{CounterKey, DeviceCounters, DEVICE_SLOTS, MAX_COUNTERS},
    endpoint::{Endpoint, EndpointKey, ENDPOINT_CACHE_SLOTS, FLAG_SENT_TO_STACK, MAX_ENDPOINTS},
    next_hop::{NextHop, MAX_NEXT_HOPS},
    pod_cidr::MAX_POD_CIDRS,
    stack_flow::{StackFlowKey, MAX_STACK_FLOWS, PRESENT},
};

use crate::{
    endpoint_cache::{self, Generation, Slot},
    key::AddrKey,
    words::EndpointWords,
};

/// Pod IPv4 address (its four bytes) → the pod's host-side veth and MACs
/// (filled by userspace). One map per family: the kernel hashes and
/// compares the key on every lookup, and a 4-byte key costs less than the
/// 20 bytes of an [`EndpointKey`] (docs/PERFORMANCE.md).
#[map]
pub static ENDPOINTS_V4: HashMap<u32, Endpoint> = HashMap::with_max_entries(MAX_ENDPOINTS, 0);

/// Pod IPv6 address (its sixteen bytes) → as [`ENDPOINTS_V4`].
#[map]
pub static ENDPOINTS_V6: HashMap<[u32; 4], Endpoint> = HashMap::with_max_entries(MAX_ENDPOINTS, 0);

/// The endpoint generation: bumped by every writer of the endpoint maps
/// and of `NEXT_HOPS` after its write (userspace through the mapping `BPF_F_MMAPABLE`
/// allows, the programs with an atomic add). See [`endpoint_cache`].
#[map]
pub static ENDPOINTS_GEN: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Each CPU's cache of IPv4 endpoints ([`endpoint_cache`]). Not pinned: a
/// new program generation starts with an empty one.
#[map]
pub static ENDPOINT_CACHE_V4: PerCpuArray<Slot<u32, EndpointWords>> =
    PerCpuArray::with_max_entries(ENDPOINT_CACHE_SLOTS, 0);

/// Each CPU's cache of IPv6 endpoints, as [`ENDPOINT_CACHE_V4`].
#[map]
pub static ENDPOINT_CACHE_V6: PerCpuArray<Slot<[u32; 4], EndpointWords>> =
    PerCpuArray::with_max_entries(ENDPOINT_CACHE_SLOTS, 0);

/// Each CPU's cache of the next hops of IPv4 destinations (`NEXT_HOPS`
/// answers that carry a next hop), as [`ENDPOINT_CACHE_V4`]: the same
/// generation covers both maps.
#[map]
pub static NEXT_HOP_CACHE_V4: PerCpuArray<Slot<u32, NextHop>> =
    PerCpuArray::with_max_entries(ENDPOINT_CACHE_SLOTS, 0);

/// Each CPU's cache of the next hops of IPv6 destinations.
#[map]
pub static NEXT_HOP_CACHE_V6: PerCpuArray<Slot<[u32; 4], NextHop>> =
    PerCpuArray::with_max_entries(ENDPOINT_CACHE_SLOTS, 0);

/// The cluster's pod networks, both families (filled by userspace; see
/// `shortpath_common::pod_cidr`). An LPM trie, `BPF_F_NO_PREALLOC`. Empty,
/// it sends everything but local pods to the stack.
#[map]
pub static POD_CIDRS: LpmTrie<EndpointKey, u32> = LpmTrie::with_max_entries(MAX_POD_CIDRS, 0);

/// Routes to other nodes' pods with their next hop resolved (filled and
/// kept current by userspace; see `shortpath_common::next_hop`). An LPM
/// trie with the pod CIDR map's keys, `BPF_F_NO_PREALLOC`.
#[map]
pub static NEXT_HOPS: LpmTrie<EndpointKey, NextHop> = LpmTrie::with_max_entries(MAX_NEXT_HOPS, 0);

/// Flows pods sent to the stack (`from_pod`, `pass_not_pod_cidr`): their
/// replies go to the stack too (see `shortpath_common::stack_flow`). An
/// LRU hash: the least recently used flow makes room for a new one.
#[map]
pub static STACK_FLOWS: LruHashMap<StackFlowKey, u32> =
    LruHashMap::with_max_entries(MAX_STACK_FLOWS, 0);

/// The stack-flow generation: `from_pod` adds one (atomically) after each
/// flow it adds to [`STACK_FLOWS`], so that no CPU's
/// [`STACK_FLOW_CACHE_V4`] keeps answering "not a stack flow" for it.
/// Pinned with `STACK_FLOWS`: program generations share both.
#[map]
pub static STACK_FLOWS_GEN: Array<u64> = Array::with_max_entries(1, 0);

/// Each CPU's IPv4 reply checks that found no stack flow (address, then
/// protocol and port; [`endpoint_cache::absent_or`]). A pod that ever
/// sent a packet to the stack (in a cluster: every pod that asks the
/// cluster DNS, a Service) has every packet for it checked; without this
/// each check is an LRU hash lookup. Not pinned.
#[map]
pub static STACK_FLOW_CACHE_V4: PerCpuArray<Slot<[u32; 2], u32>> =
    PerCpuArray::with_max_entries(ENDPOINT_CACHE_SLOTS, 0);

/// Per device slot (`ifindex % DEVICE_SLOTS`): packets by reason, per CPU.
#[map]
pub static DEVICE_COUNTERS: PerCpuArray<DeviceCounters> =
    PerCpuArray::with_max_entries(DEVICE_SLOTS, 0);

/// (attach ifindex, reason) → packets, per CPU: devices whose array slot
/// another device holds.
#[map]
pub static COUNTERS: PerCpuHashMap<CounterKey, u64> =
    PerCpuHashMap::with_max_entries(MAX_COUNTERS, 0);

/// The endpoint map entry behind `key`, in the map of its family.
#[inline(always)]
fn endpoint_ptr(key: &AddrKey) -> Option<*mut Endpoint> {
    if key.is_v4() {
        ENDPOINTS_V4.get_ptr_mut(key.v4_addr())
    } else {
        ENDPOINTS_V6.get_ptr_mut(key.v6_addr())
    }
}

/// A map value as the programs read it.
#[inline(always)]
fn words_of(p: *mut Endpoint) -> &'static EndpointWords {
    // SAFETY: the element stays alive under the RCU read lock held by the
    // program run, and is only read through this view; `EndpointWords` has
    // the value's layout (checked in `words`), and map values are 8-aligned.
    unsafe { &*(p as *const EndpointWords) }
}

/// The endpoint behind `key`, if this node has one (through this CPU's
/// [`endpoint_cache`] of its family, at `generation`, or at the
/// generation read here when `None`: see [`endpoint_cache::cached`]).
#[inline(always)]
pub fn endpoint(key: &AddrKey, generation: Option<Generation>) -> Option<EndpointWords> {
    if key.is_v4() {
        let lookup = |a: &u32| ENDPOINTS_V4.get_ptr_mut(a).map(words_of);
        endpoint_cache::cached(
            &ENDPOINT_CACHE_V4,
            generation,
            *key.v4_addr(),
            lookup,
            |_| true,
        )
        .copied()
    } else {
        let lookup = |a: &[u32; 4]| ENDPOINTS_V6.get_ptr_mut(a).map(words_of);
        endpoint_cache::cached(
            &ENDPOINT_CACHE_V6,
            generation,
            *key.v6_addr(),
            lookup,
            |_| true,
        )
        .copied()
    }
}

/// Marks the endpoint behind `key` as one that sent packets to the stack
/// ([`FLAG_SENT_TO_STACK`]). A write that races a userspace rewrite of the
/// entry can be lost; the pod's next packet to the stack marks it again.
#[inline(always)]
pub fn mark_sent_to_stack(key: &AddrKey) {
    if let Some(p) = endpoint_ptr(key) {
        // SAFETY: the element stays alive under the program's RCU read
        // lock; every writer only sets this bit.
        unsafe { (*p).flags |= FLAG_SENT_TO_STACK };
        endpoint_cache::bump(&ENDPOINTS_GEN);
    }
}

/// Whether `key` is inside one of the cluster's pod networks.
#[inline(always)]
pub fn in_pod_cidrs(key: &AddrKey) -> bool {
    // A copy, built here: the caller's key stays in registers.
    let key = if key.is_v4() {
        AddrKey::v4(*key.v4_addr())
    } else {
        AddrKey::v6(*key.v6_addr())
    };
    POD_CIDRS.get(key.lookup()).is_some()
}

/// The longest cached route containing `key`: a next hop, or an
/// exception that leaves the packet to the FIB. `None`: not cached.
#[inline(always)]
pub fn next_hop(key: &AddrKey, generation: Generation) -> Option<&'static NextHop> {
    // Only answers are cached: an exception ("ask the FIB") or a miss is
    // looked up every time, as before. The trie's key is built from the
    // address where the trie is asked: a hit in this CPU's cache writes
    // no key to the stack.
    if key.is_v4() {
        let lookup = |a: &u32| NEXT_HOPS.get(AddrKey::v4(*a).lookup());
        endpoint_cache::cached(
            &NEXT_HOP_CACHE_V4,
            Some(generation),
            *key.v4_addr(),
            lookup,
            NextHop::is_cached,
        )
    } else {
        let lookup = |a: &[u32; 4]| NEXT_HOPS.get(AddrKey::v6(*a).lookup());
        endpoint_cache::cached(
            &NEXT_HOP_CACHE_V6,
            Some(generation),
            *key.v6_addr(),
            lookup,
            NextHop::is_cached,
        )
    }
}

/// Remembers a flow handed to the stack. A known flow is only looked up
/// (which marks it recently used): every packet of a Service flow passes
/// here, and an update would take the map's lock and a fresh element.
#[inline(always)]
pub fn remember_stack_flow(key: &StackFlowKey) {
    if STACK_FLOWS.get_ptr(key).is_none() {
        // A failed insert (cannot happen for an LRU map but under memory
        // pressure) only leaves the reply on the fast path, as before.
        if STACK_FLOWS.insert(key, PRESENT, 0).is_ok() {
            // After the insert: no CPU's cache keeps saying "not a
            // stack flow" for it.
            endpoint_cache::bump(&STACK_FLOWS_GEN);
        }
    }
}

/// Whether the pod at `pod` sent its flow of `protocol` and `port` (its
/// end: network order, or the echo identifier) to the stack: IPv4
/// through this CPU's cache of the flows that were not
/// ([`STACK_FLOW_CACHE_V4`]), the map's key built only when the map is
/// asked.
#[inline(always)]
pub fn is_stack_flow(pod: &AddrKey, protocol: u8, port: [u8; 2]) -> bool {
    let present = || {
        let key = StackFlowKey::new(pod.endpoint(), protocol, u16::from_be_bytes(port));
        STACK_FLOWS.get_ptr(key).is_some()
    };
    if !pod.is_v4() {
        return present();
    }
    let words = [
        *pod.v4_addr(),
        u32::from_ne_bytes([protocol, 0, port[0], port[1]]),
    ];
    let generation = Generation::of(&STACK_FLOWS_GEN);
    endpoint_cache::absent_or(&STACK_FLOW_CACHE_V4, generation, words, present)
}
