//! The next-hop cache: routes to other nodes' pods, resolved ahead of time.
//!
//! `from_pod` would otherwise ask the FIB (`bpf_fib_lookup`) for every
//! packet to a remote pod. The node's control plane (the agent, or the
//! lab at a mode switch) resolves each route inside the cluster's pod
//! CIDRs that leaves through the NIC via a gateway: egress device, MTU,
//! the NIC's MAC and the gateway's MAC from the neighbour table. It keeps
//! the entries in step with route, neighbour and link changes.
//!
//! The map is an LPM trie with the pod CIDR map's keys
//! ([`PodCidrKey`](crate::pod_cidr::PodCidrKey)), so the longest match is
//! the route the FIB would pick. A route inside a cached one that cannot
//! be cached (another device, no resolved neighbour, multipath, a local
//! address) is stored as a [`NextHop::ASK_FIB`] entry, so the cache never
//! answers for a destination the FIB routes differently.

/// Upper bound of cached routes and exceptions per node.
pub const MAX_NEXT_HOPS: u32 = 1024;

/// Where a cached route sends a packet, as `bpf_fib_lookup` would have
/// said: `ifindex` 0 means "no cached answer, ask the FIB".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    /// Egress device (the NIC); 0: ask the FIB.
    pub ifindex: u32,
    /// The route's MTU (the device's, or a smaller route MTU): larger
    /// packets that are not GSO get the FIB's frag-needed handling.
    pub mtu: u32,
    /// Source MAC of the rewritten frame: the egress device's.
    pub smac: [u8; 6],
    /// Destination MAC: the gateway's, from the neighbour table.
    pub dmac: [u8; 6],
}

impl NextHop {
    /// An exception inside a cached route: the FIB decides.
    pub const ASK_FIB: NextHop = NextHop {
        ifindex: 0,
        mtu: 0,
        smac: [0; 6],
        dmac: [0; 6],
    };

    /// Whether the entry carries an answer.
    pub const fn is_cached(&self) -> bool {
        self.ifindex != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable_and_ask_fib_is_no_answer() {
        assert_eq!(core::mem::size_of::<NextHop>(), 20);
        assert!(!NextHop::ASK_FIB.is_cached());
        assert!(NextHop {
            ifindex: 3,
            ..NextHop::ASK_FIB
        }
        .is_cached());
    }
}
