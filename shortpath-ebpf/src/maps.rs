//! Maps of the TC programs. Userspace pins them per node under
//! `/sys/fs/bpf/shortpath/<lab>/<node>/` and shares them between the
//! program generations that replace each other on a mode switch.

use aya_ebpf::{
    macros::map,
    maps::{lpm_trie::Key, HashMap, LpmTrie, LruHashMap, PerCpuHashMap},
};
use shortpath_common::{
    counters::{CounterKey, MAX_COUNTERS},
    endpoint::{Endpoint, EndpointKey, MAX_ENDPOINTS},
    pod_cidr::{LOOKUP_BITS, MAX_POD_CIDRS},
    stack_flow::{StackFlowKey, MAX_STACK_FLOWS, PRESENT},
};

/// Pod address → the pod's host-side veth and MACs (filled by userspace).
#[map]
pub static ENDPOINTS: HashMap<EndpointKey, Endpoint> = HashMap::with_max_entries(MAX_ENDPOINTS, 0);

/// The cluster's pod networks, both families (filled by userspace; see
/// `shortpath_common::pod_cidr`). An LPM trie, `BPF_F_NO_PREALLOC`. Empty,
/// it sends everything but local pods to the stack.
#[map]
pub static POD_CIDRS: LpmTrie<EndpointKey, u32> = LpmTrie::with_max_entries(MAX_POD_CIDRS, 0);

/// Flows pods sent to the stack (`from_pod`, `pass_not_pod_cidr`): their
/// replies go to the stack too (see `shortpath_common::stack_flow`). An
/// LRU hash: the least recently used flow makes room for a new one.
#[map]
pub static STACK_FLOWS: LruHashMap<StackFlowKey, u32> =
    LruHashMap::with_max_entries(MAX_STACK_FLOWS, 0);

/// (attach ifindex, reason) → packets, per CPU.
#[map]
pub static COUNTERS: PerCpuHashMap<CounterKey, u64> =
    PerCpuHashMap::with_max_entries(MAX_COUNTERS, 0);

/// The endpoint behind `key`, if this node has one.
#[inline(always)]
pub fn endpoint(key: &EndpointKey) -> Option<Endpoint> {
    // SAFETY: the value is copied out while the RCU read lock held by the
    // program run keeps the element alive.
    ENDPOINTS.get_ptr(key).map(|p| unsafe { *p })
}

/// Whether `key` is inside one of the cluster's pod networks.
#[inline(always)]
pub fn in_pod_cidrs(key: &EndpointKey) -> bool {
    POD_CIDRS.get(Key::new(LOOKUP_BITS, *key)).is_some()
}

/// Remembers a flow handed to the stack. A known flow is only looked up
/// (which marks it recently used): every packet of a Service flow passes
/// here, and an update would take the map's lock and a fresh element.
#[inline(always)]
pub fn remember_stack_flow(key: &StackFlowKey) {
    if STACK_FLOWS.get_ptr(key).is_none() {
        // A failed insert (cannot happen for an LRU map but under memory
        // pressure) only leaves the reply on the fast path, as before.
        let _ = STACK_FLOWS.insert(key, PRESENT, 0);
    }
}

/// Whether a pod sent this flow to the stack.
#[inline(always)]
pub fn is_stack_flow(key: &StackFlowKey) -> bool {
    STACK_FLOWS.get_ptr(key).is_some()
}
