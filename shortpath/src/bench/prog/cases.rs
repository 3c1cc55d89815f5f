//! What is measured: one crafted frame per program and kind of packet, the
//! device it arrives on, and the path it must take (verdict + counted
//! reason), all read from a running lab.
//!
//! `BPF_PROG_TEST_RUN` hands every repetition the skb the previous one
//! left, so a case's frame must take the same path again after the
//! program's own rewrite:
//! - TTL / hop limit 255 (and `repeat` ≤ 250): the decrement never reaches
//!   the TTL check;
//! - the local-pod frame is the one the lab's pods send to a neighbour on
//!   their subnet (to its MAC: delivered as is), not a routed one, whose
//!   MAC rewrite would turn the next repetition into the bridged case;
//! - `from_pod`'s remote destinations are answered by the next-hop cache
//!   (`redirect_cached`, filled from the node's routes and neighbours as
//!   the agent does), except one address left to the FIB (`redirect`);
//! - `from_pod`'s routed frames get node-a's NIC MAC as source, and so does
//!   the bench's copy of the sending pod's endpoint entry: the FIB rewrite
//!   writes that MAC again, and the source check passes every repetition
//!   (with the pod's own MAC, the 2nd would be `drop_spoofed_mac`).

use std::net::{IpAddr, Ipv4Addr};

use shortpath_common::{
    endpoint::{Endpoint, FLAG_SENT_TO_STACK},
    mode::FastPath,
};

use super::{frames::Udp, ProgBenchError};
use crate::{
    dataplane::{
        reference::{ReferenceObject, ReferenceParams},
        synthetic::SYNTHETIC_IFINDEX,
        Hook, NodeSpec,
    },
    lab::{Inventory, NicInfo, PodInfo},
};

pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_REDIRECT: u32 = 7;
/// TTL / hop limit of every frame.
pub const HOPS: u8 = 255;
/// The most repetitions per call: the TTL of a forwarded frame must stay
/// above 1 for all of them.
pub const MAX_REPEAT: u32 = 250;
/// A destination outside every pod CIDR: a Service ClusterIP.
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The same-node destination pod of `from_pod`'s local case: an entry the
/// bench adds (a benchmarking address outside the synthetic range).
pub const LOCAL_POD_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
pub const LOCAL_POD: Endpoint = Endpoint {
    ifindex: SYNTHETIC_IFINDEX + 1,
    mtu: 1500,
    flags: 0,
    pod_mac: [0x02, 0x53, 0x50, 0, 0, 0x02],
    host_mac: [0x02, 0x53, 0x50, 0, 0, 0x01],
};

/// The destination pod of `from_nic`'s "sent to the stack" case: a pod
/// that has sent packets to the stack (a Service IP: in a cluster, every
/// pod that asks the cluster DNS), so every packet for it is first
/// checked against the flows it sent there (`STACK_FLOWS`). An entry the
/// bench adds, flagged as `from_pod` flags such a pod.
pub const STACK_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 3);
pub const STACK_CLIENT: Endpoint = Endpoint {
    ifindex: SYNTHETIC_IFINDEX + 2,
    flags: FLAG_SENT_TO_STACK,
    pod_mac: [0x02, 0x53, 0x50, 0, 0, 0x03],
    ..LOCAL_POD
};

/// What a case runs: a shortpath program, or the hand-written reference
/// of the same hook (docs/PROG_BENCH.md, "The hand-written reference").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Shortpath(Hook),
    Reference(Hook),
}

impl Program {
    /// The name in the table and the JSON: the program's name in its
    /// object.
    pub fn name(self) -> &'static str {
        match self {
            Program::Shortpath(h) => h.program(),
            Program::Reference(h) => ReferenceObject::name(h),
        }
    }
}

/// The path column of a reference case: it counts nothing, only its
/// verdict and its frame are checked.
pub const REFERENCE_PATH: &str = "(hand-written)";

/// The path a case must take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// TC verdict: [`TC_ACT_REDIRECT`] or [`TC_ACT_OK`].
    pub verdict: u32,
    /// The counter reason (docs/DATAPLANE.md, "Counter reasons").
    pub reason: &'static str,
    /// Whether the TTL / hop limit comes out decremented (the router's
    /// rewrite); else the frame comes out as it went in.
    pub decrements: bool,
}

impl Expect {
    /// Redirected with the router's rewrite: MACs, TTL / hop limit − 1.
    pub fn routed(reason: &'static str) -> Self {
        Self {
            verdict: TC_ACT_REDIRECT,
            reason,
            decrements: true,
        }
    }
    /// Redirected as it is (a frame bridged to a neighbour's MAC).
    pub fn delivered(reason: &'static str) -> Self {
        Self {
            verdict: TC_ACT_REDIRECT,
            reason,
            decrements: false,
        }
    }
    /// To the stack, unchanged.
    pub fn passed(reason: &'static str) -> Self {
        Self {
            verdict: TC_ACT_OK,
            reason,
            decrements: false,
        }
    }
}

fn case(program: Program, packet: &str, udp: Udp, ifindex: u32, expect: Expect) -> Case {
    Case {
        program,
        packet: packet.to_owned(),
        frame: udp.build().expect("one family per frame"),
        ttl_at: udp.ttl_at(),
        ifindex,
        expect,
    }
}

/// One program, one kind of packet.
#[derive(Debug, Clone)]
pub struct Case {
    pub program: Program,
    pub packet: String,
    pub frame: Vec<u8>,
    /// Offset of the TTL / hop limit in `frame`.
    pub ttl_at: usize,
    /// The device the frame arrives on (`__sk_buff.ifindex`); the
    /// counters are keyed by it.
    pub ifindex: u32,
    pub expect: Expect,
}

/// The parts of a lab the cases and their maps come from: its first node
/// (where the programs run) and a pod of its second.
#[derive(Debug, Clone)]
pub struct Topology {
    pub lab: String,
    pub node: String,
    pub remote_node: String,
    pub netns: String,
    pub spec: NodeSpec,
    pub nic: NicInfo,
    pub remote_nic: NicInfo,
    pub bridge_mac: [u8; 6],
    pub sender: PodInfo,
    pub remote: PodInfo,
}

impl Topology {
    pub fn from_inventory(inv: &Inventory) -> Result<Self, ProgBenchError> {
        let lab = inv.name.to_string();
        let bad = |what: String| ProgBenchError::Topology {
            lab: lab.clone(),
            what,
        };
        let [a, b, ..] = inv.nodes.as_slice() else {
            return Err(bad(format!("{} node(s)", inv.nodes.len())));
        };
        let dual_pod = |node: &str| {
            inv.pods_of(node)
                .find(|p| p.ipv4.is_some() && p.ipv6.is_some())
                .cloned()
                .ok_or_else(|| bad(format!("{node} has no pod with IPv4 and IPv6")))
        };
        let sender = dual_pod(a.name.as_str())?;
        let remote = dual_pod(b.name.as_str())?;
        for n in [a, b] {
            if n.nic.ipv4.is_none() || n.nic.ipv6.is_none() {
                return Err(bad(format!(
                    "{}'s {} lacks IPv4 or IPv6",
                    n.name, n.nic.name
                )));
            }
        }
        let spec = inv
            .dataplane_spec(a.name.as_str())
            .ok_or_else(|| bad(format!("no dataplane spec for {}", a.name)))?;
        Ok(Self {
            lab,
            node: a.name.to_string(),
            remote_node: b.name.to_string(),
            netns: a.netns.clone(),
            spec,
            nic: a.nic.clone(),
            remote_nic: b.nic.clone(),
            bridge_mac: a.bridge.mac.0,
            sender,
            remote,
        })
    }

    /// Every case, expecting the paths of `mode`.
    pub fn cases(&self, mode: FastPath) -> Vec<Case> {
        let local = match mode {
            FastPath::Peer => "redirect_peer",
            FastPath::Redirect => "redirect",
        };
        let ip = |a: Option<IpAddr>| a.expect("checked in from_inventory");
        let (pod4, pod6) = (ip(self.sender.ipv4), ip(self.sender.ipv6));
        let (rem4, rem6) = (ip(self.remote.ipv4), ip(self.remote.ipv6));
        let nic = |src: IpAddr, dst: IpAddr| Udp {
            dst_mac: self.nic.mac.0,
            src_mac: self.remote_nic.mac.0,
            src,
            dst,
            hops: HOPS,
        };
        // What the sending pod puts on the wire, from the MAC the bench's
        // entry gives it (see the module docs).
        let pod = |dst: IpAddr, dst_mac: [u8; 6]| Udp {
            dst_mac,
            src_mac: self.sender_mac(),
            src: if dst.is_ipv4() { pod4 } else { pod6 },
            dst,
            hops: HOPS,
        };
        let gw = self.bridge_mac;
        let (nic_if, pod_if) = (self.nic.ifindex, self.sender.host_if.ifindex);
        let (nic4, node_b4) = (ip(self.nic.ipv4), ip(self.remote_nic.ipv4));
        let local_mac = LOCAL_POD.pod_mac;
        use Hook::{FromNic, FromPod};
        use Program::{Reference, Shortpath};
        vec![
            case(
                Shortpath(FromNic),
                "v4 to a local pod",
                nic(rem4, pod4),
                nic_if,
                Expect::routed(local),
            ),
            case(
                Reference(FromNic),
                "v4 to a local pod",
                nic(rem4, pod4),
                nic_if,
                Expect::routed(REFERENCE_PATH),
            ),
            case(
                Shortpath(FromNic),
                "v6 to a local pod",
                nic(rem6, pod6),
                nic_if,
                Expect::routed(local),
            ),
            case(
                Shortpath(FromNic),
                "v4 to a pod that sent to the stack",
                nic(rem4, STACK_CLIENT_IP.into()),
                nic_if,
                Expect::routed(local),
            ),
            case(
                Shortpath(FromNic),
                "v4 to the node (stack)",
                nic(node_b4, nic4),
                nic_if,
                Expect::passed("pass_no_endpoint"),
            ),
            case(
                Shortpath(FromPod),
                "v4 to a remote pod",
                pod(rem4, gw),
                pod_if,
                Expect::routed("redirect_cached"),
            ),
            case(
                Reference(FromPod),
                "v4 to a remote pod",
                pod(rem4, gw),
                pod_if,
                Expect::routed(REFERENCE_PATH),
            ),
            case(
                Shortpath(FromPod),
                "v6 to a remote pod",
                pod(rem6, gw),
                pod_if,
                Expect::routed("redirect_cached"),
            ),
            case(
                Shortpath(FromPod),
                "v4 to a remote pod, FIB",
                pod(self.fib_only().addr(), gw),
                pod_if,
                Expect::routed("redirect"),
            ),
            case(
                Shortpath(FromPod),
                "v4 to a local pod",
                pod(LOCAL_POD_IP.into(), local_mac),
                pod_if,
                Expect::delivered(local),
            ),
            case(
                Shortpath(FromPod),
                "v4 to a Service IP (stack)",
                pod(SERVICE_IP.into(), gw),
                pod_if,
                Expect::passed("pass_not_pod_cidr"),
            ),
        ]
    }

    /// What the hand-written reference is compiled for: node-a's sending
    /// pod (the destination of `from_nic`'s local case) and node-b's pod
    /// (the destination of `from_pod`'s remote case), with the MACs the
    /// dataplane would write.
    pub fn reference(&self) -> ReferenceParams {
        let v4 = |a: Option<IpAddr>| match a {
            Some(IpAddr::V4(a)) => a,
            _ => unreachable!("checked in from_inventory"),
        };
        ReferenceParams {
            pod_addr: v4(self.sender.ipv4),
            pod_host_ifindex: self.sender.host_if.ifindex,
            pod_mac: self.sender.mac.0,
            host_mac: self.sender.host_if.mac.0,
            remote: ipnet::Ipv4Net::new(v4(self.remote.ipv4), 32).expect("a /32"),
            nic_ifindex: self.nic.ifindex,
            nic_mac: self.nic.mac.0,
            gateway_mac: self.remote_nic.mac.0,
        }
    }

    /// A remote pod address whose route the bench's cache leaves to the
    /// FIB (an "ask the FIB" entry): the row of a cache miss. The remote
    /// pod's address + 1 (a /32 inside node-b's pod CIDR).
    pub fn fib_only(&self) -> ipnet::IpNet {
        let IpAddr::V4(a) = self.remote.ipv4.expect("checked in from_inventory") else {
            unreachable!("ipv4 holds an IPv4 address")
        };
        let next = Ipv4Addr::from(u32::from(a).wrapping_add(1));
        ipnet::IpNet::new(next.into(), 32).expect("a /32")
    }

    /// The source MAC of the sending pod's frames and of its entry in the
    /// bench's `from_pod` map: node-a's NIC MAC, which the FIB rewrite
    /// writes as source of a routed frame.
    pub fn sender_mac(&self) -> [u8; 6] {
        self.nic.mac.0
    }
}
