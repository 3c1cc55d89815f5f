//! The endpoint map: pod IP address → where the pod is on this node.

/// Linux address family numbers used in [`EndpointKey::family`].
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// Upper bound of endpoints (pod addresses) per node.
pub const MAX_ENDPOINTS: u32 = 16384;

/// Slots of each CPU's endpoint cache in the programs (a power of two):
/// endpoints looked up recently, valid while the endpoint generation
/// (the `ENDPOINTS_GEN` map, which every writer bumps) is unchanged.
pub const ENDPOINT_CACHE_SLOTS: u32 = 256;

/// Key of the endpoint map: one entry per pod address (IPv4 and IPv6 alike).
/// IPv4 addresses use the first four bytes of `addr`; the rest is zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub family: u8,
    pub pad: [u8; 3],
    pub addr: [u8; 16],
}

impl EndpointKey {
    pub const fn v4(addr: [u8; 4]) -> Self {
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self {
            family: AF_INET,
            pad: [0; 3],
            addr: a,
        }
    }

    pub const fn v6(addr: [u8; 16]) -> Self {
        Self {
            family: AF_INET6,
            pad: [0; 3],
            addr,
        }
    }
}

/// The endpoint is known but its traffic stays on the stack (for example a
/// pod whose policy needs netfilter).
pub const FLAG_STACK_ONLY: u32 = 1 << 0;

/// Set by `from_pod`, never by userspace (which keeps it when it rewrites
/// an entry): the pod sent packets to the stack (a Service IP, the
/// internet), so packets to it may be replies the stack must see. Only
/// for such pods do the programs look the packet up in the stack-flow map.
pub const FLAG_SENT_TO_STACK: u32 = 1 << 1;

/// The flags the programs own.
pub const KERNEL_FLAGS: u32 = FLAG_SENT_TO_STACK;

/// Where a pod lives on this node, as the fast path needs it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// ifindex of the host-side veth (`lxc…`) in the node namespace.
    pub ifindex: u32,
    /// MTU of the pod's interface: larger non-GSO packets go to the stack
    /// (which fragments or sends ICMP) instead of being dropped by the peer.
    pub mtu: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// MAC of the pod's interface (`ve0`): destination of rewritten frames.
    pub pod_mac: [u8; 6],
    /// MAC of the host-side veth: source of rewritten frames. Right after
    /// `pod_mac`, as in the frame, and word-aligned with it: the programs
    /// copy both as three words.
    pub host_mac: [u8; 6],
}
