//! The stack-flow map: flows a pod sent to the node's stack, so that
//! their replies go through the stack too.
//!
//! `from_pod` hands a pod's packet to a destination outside the cluster's
//! pod CIDRs to the stack (`pass_not_pod_cidr`): a Service IP, which the
//! node's netfilter DNATs to a backend pod. The backend answers from its
//! own address, so its reply looks like pod → pod traffic; delivered
//! straight into the client pod, it would skip the conntrack entry that
//! must rewrite its source back to the Service IP. So `from_pod` records
//! the flow, keyed by what every reply carries on the client's side — the
//! pod's address and its port — and before any delivery into a local pod
//! both programs look the packet's destination address and port up: a
//! known flow goes to the stack (`pass_stack_flow`).
//!
//! The key has no remote end: a reply comes from the backend, not from the
//! address the pod sent to. A pod reusing the port for a pod → pod flow
//! only makes that flow's packets take the stack (correct, slower).
//!
//! Ports, as the pod sees them:
//! - TCP, UDP: the pod's source port (a reply's destination port);
//! - ICMP / ICMPv6 echo: the identifier, recorded from an echo request and
//!   looked up for an echo reply. Other ICMP messages carry no flow here.

use crate::endpoint::{EndpointKey, AF_INET, AF_INET6};

/// Upper bound of remembered flows per node (an LRU map: the least
/// recently used entry makes room for a new one).
pub const MAX_STACK_FLOWS: u32 = 65536;

/// The value of every entry (the map is a set).
pub const PRESENT: u32 = 1;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Bytes of the L4 header the key is built from: the UDP header, the start
/// of a TCP header, an ICMP echo header (type, code, checksum, id, seq).
pub const L4_HEAD: usize = 8;

/// Key of the stack-flow map: a pod's end of a flow. IPv4 addresses use
/// the first four bytes of `addr` (as in [`EndpointKey`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackFlowKey {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// IP protocol: TCP, UDP, ICMP (IPv4) or ICMPv6 (IPv6).
    pub protocol: u8,
    /// The pod's port (TCP, UDP) or echo identifier, network byte order.
    pub port: [u8; 2],
    /// The pod's address.
    pub addr: [u8; 16],
}

/// Which side of a flow an L4 header is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// A packet the pod sends: its source port, an echo request.
    FromPod,
    /// A packet for the pod: its destination port, an echo reply.
    ToPod,
}

impl StackFlowKey {
    /// The key of `pod`'s (an endpoint key: family and address) flow
    /// whose packet carries `protocol` and the L4 header `l4` (its first
    /// [`L4_HEAD`] bytes), seen from `side`; `None` for a protocol or an
    /// ICMP message that carries no flow here.
    #[inline(always)]
    pub fn of(pod: &EndpointKey, protocol: u8, l4: &[u8; L4_HEAD], side: Side) -> Option<Self> {
        let port = Self::port_in(pod.family, protocol, l4, side)?;
        if pod.family != AF_INET && pod.family != AF_INET6 {
            return None;
        }
        Some(Self {
            family: pod.family,
            protocol,
            port,
            addr: pod.addr,
        })
    }

    /// The pod's port (network order) or echo identifier in a packet of
    /// `family` carrying `protocol` and the L4 header `l4`, seen from
    /// `side` — the part of [`of`](Self::of) that reads the packet.
    #[inline(always)]
    pub fn port_in(family: u8, protocol: u8, l4: &[u8; L4_HEAD], side: Side) -> Option<[u8; 2]> {
        Some(match (family, protocol, side) {
            (_, IPPROTO_TCP | IPPROTO_UDP, Side::FromPod) => [l4[0], l4[1]],
            (_, IPPROTO_TCP | IPPROTO_UDP, Side::ToPod) => [l4[2], l4[3]],
            (AF_INET, IPPROTO_ICMP, Side::FromPod) if l4[0] == ICMP_ECHO_REQUEST => [l4[4], l4[5]],
            (AF_INET, IPPROTO_ICMP, Side::ToPod) if l4[0] == ICMP_ECHO_REPLY => [l4[4], l4[5]],
            (AF_INET6, IPPROTO_ICMPV6, Side::FromPod) if l4[0] == ICMPV6_ECHO_REQUEST => {
                [l4[4], l4[5]]
            }
            (AF_INET6, IPPROTO_ICMPV6, Side::ToPod) if l4[0] == ICMPV6_ECHO_REPLY => [l4[4], l4[5]],
            _ => return None,
        })
    }

    /// The key of a pod's flow given its parts (userspace, tests).
    pub const fn new(pod: &EndpointKey, protocol: u8, port: u16) -> Self {
        Self {
            family: pod.family,
            protocol,
            port: port.to_be_bytes(),
            addr: pod.addr,
        }
    }

    /// The port (or echo identifier) in host order.
    pub const fn port(&self) -> u16 {
        u16::from_be_bytes(self.port)
    }

    /// The pod's address as an endpoint key.
    pub const fn pod(&self) -> EndpointKey {
        EndpointKey {
            family: self.family,
            pad: [0; 3],
            addr: self.addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD4: EndpointKey = EndpointKey::v4([172, 17, 1, 2]);

    fn pod6() -> EndpointKey {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0xfd, 0, 0x01, 0x72]);
        a[15] = 2;
        EndpointKey::v6(a)
    }

    /// UDP / TCP: source port 4321 → destination port 80.
    const PORTS: [u8; 8] = [0x10, 0xe1, 0, 80, 0, 0, 0, 0];

    #[test]
    fn a_request_and_its_reply_have_the_same_key() {
        for pod in [POD4, pod6()] {
            for proto in [IPPROTO_TCP, IPPROTO_UDP] {
                let out = StackFlowKey::of(&pod, proto, &PORTS, Side::FromPod).unwrap();
                assert_eq!(out, StackFlowKey::new(&pod, proto, 4321));
                assert_eq!(out.port(), 4321);
                assert_eq!(out.pod(), pod);
                // The reply: 80 → 4321.
                let reply = [0, 80, 0x10, 0xe1, 0, 0, 0, 0];
                assert_eq!(
                    StackFlowKey::of(&pod, proto, &reply, Side::ToPod),
                    Some(out)
                );
                // Another port, another flow.
                assert_ne!(
                    StackFlowKey::of(&pod, proto, &PORTS, Side::ToPod),
                    Some(out)
                );
            }
            let udp = StackFlowKey::of(&pod, IPPROTO_UDP, &PORTS, Side::FromPod);
            let tcp = StackFlowKey::of(&pod, IPPROTO_TCP, &PORTS, Side::FromPod);
            assert_ne!(udp, tcp);
        }
    }

    #[test]
    fn echo_requests_are_recorded_and_echo_replies_looked_up_by_identifier() {
        let req4 = [8, 0, 0xab, 0xcd, 0x12, 0x34, 0, 1];
        let rep4 = [0, 0, 0xab, 0xcd, 0x12, 0x34, 0, 1];
        let k = StackFlowKey::of(&POD4, IPPROTO_ICMP, &req4, Side::FromPod).unwrap();
        assert_eq!(k, StackFlowKey::new(&POD4, IPPROTO_ICMP, 0x1234));
        assert_eq!(
            StackFlowKey::of(&POD4, IPPROTO_ICMP, &rep4, Side::ToPod),
            Some(k)
        );
        // A request towards the pod, a reply from it, errors: no flow.
        assert_eq!(
            StackFlowKey::of(&POD4, IPPROTO_ICMP, &req4, Side::ToPod),
            None
        );
        assert_eq!(
            StackFlowKey::of(&POD4, IPPROTO_ICMP, &rep4, Side::FromPod),
            None
        );
        let unreachable = [3, 3, 0, 0, 0, 0, 0, 0];
        for side in [Side::FromPod, Side::ToPod] {
            assert_eq!(
                StackFlowKey::of(&POD4, IPPROTO_ICMP, &unreachable, side),
                None
            );
        }
        let pod6 = pod6();
        let req6 = [128, 0, 0, 0, 0x12, 0x34, 0, 1];
        let rep6 = [129, 0, 0, 0, 0x12, 0x34, 0, 1];
        let k = StackFlowKey::of(&pod6, IPPROTO_ICMPV6, &req6, Side::FromPod).unwrap();
        assert_eq!(k.port(), 0x1234);
        assert_eq!(
            StackFlowKey::of(&pod6, IPPROTO_ICMPV6, &rep6, Side::ToPod),
            Some(k)
        );
        // ICMP of the other family, other protocols: no flow.
        assert_eq!(
            StackFlowKey::of(&pod6, IPPROTO_ICMP, &req4, Side::FromPod),
            None
        );
        assert_eq!(
            StackFlowKey::of(&POD4, IPPROTO_ICMPV6, &req6, Side::FromPod),
            None
        );
        for proto in [0u8, 47, 50, 132] {
            assert_eq!(StackFlowKey::of(&POD4, proto, &PORTS, Side::FromPod), None);
        }
        let bad = EndpointKey { family: 7, ..POD4 };
        assert_eq!(
            StackFlowKey::of(&bad, IPPROTO_UDP, &PORTS, Side::FromPod),
            None
        );
    }

    #[test]
    fn families_never_collide_and_the_layout_is_fixed() {
        // An IPv6 address whose first bytes are an IPv4 pod's.
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[172, 17, 1, 2]);
        let v6 = StackFlowKey::of(&EndpointKey::v6(a), IPPROTO_UDP, &PORTS, Side::FromPod);
        let v4 = StackFlowKey::of(&POD4, IPPROTO_UDP, &PORTS, Side::FromPod);
        assert_eq!(v4.unwrap().addr, v6.unwrap().addr);
        assert_ne!(v4, v6);
        assert_eq!(core::mem::size_of::<StackFlowKey>(), 20);
        assert_eq!(core::mem::offset_of!(StackFlowKey, protocol), 1);
        assert_eq!(core::mem::offset_of!(StackFlowKey, port), 2);
        assert_eq!(core::mem::offset_of!(StackFlowKey, addr), 4);
    }
}
