//! From tracepoint events to per-packet paths (pure logic, unit tested).
//!
//! A packet is identified by its IPv4 header (addresses, protocol, ports,
//! IP id) and, for the tracer's own probes, by the sequence number in its
//! payload — so it is followed across devices, namespaces and redirects
//! even where the kernel copies the `sk_buff`.
//!
//! - RX path: the packet's first `netif_receive_skb` on the NIC of the node
//!   of the destination pod → `sk_data_ready` on the pod's socket.
//! - TX path: the first `net_dev_queue` on the source pod's interface →
//!   `net_dev_start_xmit` on the NIC of the source pod's node.
//!
//! A `kfree_skb` ends an open path as dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use shortpath_common::trace::{EventKind, TraceEvent, FLAG_TAGGED};

/// Direction of a path, seen from the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Rx,
    Tx,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
        }
    }
}

/// A node of the lab as the tracer sees it.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub name: String,
    pub netns: u32,
    pub nic: u32,
}

/// A pod of the lab as the tracer sees it.
#[derive(Clone, Debug)]
pub struct PodView {
    pub name: String,
    pub addr: [u8; 4],
    pub netns: u32,
    pub ifindex: u32,
    /// Index into [`View::nodes`].
    pub node: usize,
}

/// The lab, by namespace inode and ifindex.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub nodes: Vec<NodeView>,
    pub pods: Vec<PodView>,
    /// Namespace inode → namespace name.
    pub namespaces: HashMap<u32, String>,
    /// (namespace inode, ifindex) → device name.
    pub devices: HashMap<(u32, u32), String>,
}

impl View {
    fn pod(&self, addr: [u8; 4]) -> Option<&PodView> {
        self.pods.iter().find(|p| p.addr == addr)
    }

    /// The pod's node, if the address is a pod's or belongs to a node's pod
    /// subnet: packets to a missing pod still have a receiving node.
    fn node_of(&self, addr: [u8; 4]) -> Option<&NodeView> {
        self.pod(addr).map(|p| &self.nodes[p.node]).or_else(|| {
            self.pods
                .iter()
                .find(|p| p.addr[..3] == addr[..3])
                .map(|p| &self.nodes[p.node])
        })
    }

    pub fn device(&self, netns: u32, ifindex: u32) -> String {
        self.devices
            .get(&(netns, ifindex))
            .cloned()
            .unwrap_or_else(|| format!("if{ifindex}"))
    }

    pub fn namespace(&self, netns: u32) -> String {
        self.namespaces
            .get(&netns)
            .cloned()
            .unwrap_or_else(|| format!("netns:{netns}"))
    }
}

/// One tracepoint hit on a packet's path.
#[derive(Clone, Debug, Serialize)]
pub struct Hop {
    /// Nanoseconds since the path started.
    pub t_ns: u64,
    pub tracepoint: &'static str,
    #[serde(skip)]
    pub kind: EventKind,
    pub netns: String,
    pub device: Option<String>,
    pub cpu: u8,
    /// NET_RX softirq run (0 = outside NET_RX softirq).
    pub softirq: u64,
    #[serde(skip)]
    pub arg: u32,
    /// The hop is in a node's namespace (not a pod's).
    #[serde(skip)]
    pub in_node: bool,
    /// Address of the `sk_buff`.
    #[serde(skip)]
    pub skb: u64,
}

/// A packet's path through one node in one direction.
#[derive(Clone, Debug, Serialize)]
pub struct PacketPath {
    pub direction: Direction,
    /// The probe sequence number, if the packet is a probe.
    pub tag: Option<u32>,
    pub hops: Vec<Hop>,
    /// Total time, when the path reached its end.
    pub path_ns: Option<u64>,
    /// Drop reason (kernel `skb_drop_reason` value) if it was dropped.
    pub drop_reason: Option<u32>,
    /// Backlog enqueues on the receiving NIC before the path started: the
    /// lab's wire is a veth pair (RX only).
    pub wire_backlog: u32,
}

impl PacketPath {
    pub fn complete(&self) -> bool {
        self.path_ns.is_some()
    }

    /// Distinct NET_RX softirq runs the path ran in.
    pub fn softirqs(&self) -> usize {
        self.hops
            .iter()
            .filter(|h| h.softirq != 0)
            .map(|h| h.softirq)
            .collect::<HashSet<_>>()
            .len()
    }

    /// Backlog enqueues (`netif_rx`) on the path.
    pub fn backlog(&self) -> usize {
        self.count(EventKind::Backlog)
    }

    pub fn route_lookups(&self) -> usize {
        self.count(EventKind::RouteLookup)
    }

    /// Route lookups in the node's namespace (forwarding by the stack, or
    /// the dataplane's `bpf_fib_lookup`); the rest are the pods' own.
    pub fn node_route_lookups(&self) -> usize {
        self.hops
            .iter()
            .filter(|h| h.kind == EventKind::RouteLookup && h.in_node)
            .count()
    }

    fn count(&self, kind: EventKind) -> usize {
        self.hops.iter().filter(|h| h.kind == kind).count()
    }

    /// Distinct `sk_buff` addresses along the path: 1 when the kernel kept
    /// the same buffer across devices, namespaces and redirects.
    pub fn skb_addresses(&self) -> usize {
        self.hops
            .iter()
            .map(|h| h.skb)
            .collect::<HashSet<_>>()
            .len()
    }

    /// Where a dropped packet was dropped: "namespace/device".
    pub fn drop_site(&self) -> Option<String> {
        self.drop_reason?;
        let h = self.hops.last()?;
        Some(format!(
            "{}/{}",
            h.netns,
            h.device.as_deref().unwrap_or("-")
        ))
    }

    /// Devices crossed, in order.
    pub fn devices(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in &self.hops {
            if h.kind == EventKind::RouteLookup {
                continue;
            }
            if let Some(d) = &h.device {
                if out.last() != Some(d) {
                    out.push(d.clone());
                }
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    saddr: [u8; 4],
    daddr: [u8; 4],
    proto: u8,
    ip_id: u16,
    sport: u16,
    dport: u16,
    tag: Option<u32>,
}

impl Key {
    fn of(e: &TraceEvent) -> Self {
        let tagged = e.flags & FLAG_TAGGED != 0;
        Self {
            saddr: e.saddr,
            daddr: e.daddr,
            proto: e.proto,
            // A probe is identified by its tag alone: the IP id of a
            // copied or re-fragmented packet may differ.
            ip_id: if tagged { 0 } else { e.ip_id },
            sport: e.sport,
            dport: e.dport,
            tag: tagged.then_some(e.tag),
        }
    }
}

#[derive(Default)]
struct Open {
    rx: Option<usize>,
    tx: Option<usize>,
    wire_backlog: u32,
}

/// Assembles paths from events (any order).
pub fn assemble(view: &View, events: &[TraceEvent]) -> Vec<PacketPath> {
    let mut events: Vec<&TraceEvent> = events.iter().collect();
    events.sort_by_key(|e| e.ts_ns);
    let mut paths: Vec<PacketPath> = Vec::new();
    let mut starts: Vec<u64> = Vec::new();
    let mut open: HashMap<Key, Open> = HashMap::new();

    for e in events {
        let Some(kind) = EventKind::from_u8(e.kind) else {
            continue;
        };
        let key = Key::of(e);
        let state = open.entry(key).or_default();
        let dst_node = view.node_of(e.daddr);
        let src_pod = view.pod(e.saddr);
        let at = |netns: u32, ifindex: u32| e.netns == netns && e.ifindex == ifindex;

        if let Some(node) = dst_node {
            if state.rx.is_none() && at(node.netns, node.nic) {
                match kind {
                    EventKind::Backlog => state.wire_backlog += 1,
                    EventKind::Receive => {
                        state.rx = Some(paths.len());
                        starts.push(e.ts_ns);
                        paths.push(new_path(Direction::Rx, &key, state.wire_backlog));
                        state.wire_backlog = 0;
                    }
                    _ => {}
                }
            }
        }
        if let Some(pod) = src_pod {
            if state.tx.is_none() && kind == EventKind::Queue && at(pod.netns, pod.ifindex) {
                state.tx = Some(paths.len());
                starts.push(e.ts_ns);
                paths.push(new_path(Direction::Tx, &key, 0));
            }
        }

        for dir in [Direction::Rx, Direction::Tx] {
            let slot = match dir {
                Direction::Rx => &mut state.rx,
                Direction::Tx => &mut state.tx,
            };
            let Some(i) = *slot else { continue };
            if kind == EventKind::RouteLookup && e.flow_daddr != e.saddr && e.flow_daddr != e.daddr
            {
                continue;
            }
            let device = match kind {
                EventKind::SocketReady if e.iif != 0 => Some(view.device(e.netns, e.iif)),
                EventKind::RouteLookup | EventKind::SocketReady => None,
                _ if e.ifindex != 0 => Some(view.device(e.netns, e.ifindex)),
                _ => None,
            };
            let path = &mut paths[i];
            path.hops.push(Hop {
                t_ns: e.ts_ns.saturating_sub(starts[i]),
                tracepoint: kind.name(),
                kind,
                netns: view.namespace(e.netns),
                device,
                cpu: e.cpu,
                softirq: e.softirq,
                arg: e.arg,
                in_node: view.nodes.iter().any(|n| n.netns == e.netns),
                skb: e.skb,
            });
            let end = match dir {
                Direction::Rx => {
                    kind == EventKind::SocketReady
                        && view.pod(e.daddr).is_some_and(|p| p.netns == e.netns)
                }
                Direction::Tx => {
                    kind == EventKind::Xmit
                        && src_pod
                            .is_some_and(|p| at(view.nodes[p.node].netns, view.nodes[p.node].nic))
                }
            };
            if end {
                path.path_ns = Some(e.ts_ns.saturating_sub(starts[i]));
                *slot = None;
            } else if kind == EventKind::Drop {
                path.drop_reason = Some(e.arg);
                *slot = None;
            }
        }
    }
    paths
}

fn new_path(direction: Direction, key: &Key, wire_backlog: u32) -> PacketPath {
    PacketPath {
        direction,
        tag: key.tag,
        hops: Vec::new(),
        path_ns: None,
        drop_reason: None,
        wire_backlog,
    }
}

/// Dropped paths by kernel drop reason.
pub fn drops_by_reason(paths: &[PacketPath]) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for p in paths {
        if let Some(r) = p.drop_reason {
            *out.entry(r).or_default() += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shortpath_common::trace::FLAG_IPV4;

    const NODE_A: u32 = 10;
    const NODE_B: u32 = 11;
    const POD_A: u32 = 20;
    const POD_B: u32 = 21;
    const A: [u8; 4] = [172, 17, 1, 2];
    const B: [u8; 4] = [172, 17, 2, 2];

    fn view() -> View {
        let mut devices = HashMap::new();
        for (ns, ifi, name) in [
            (NODE_A, 2, "eth1"),
            (NODE_A, 3, "br0"),
            (NODE_A, 4, "lxc-a"),
            (POD_A, 2, "ve0"),
            (NODE_B, 2, "eth1"),
            (NODE_B, 3, "br0"),
            (NODE_B, 4, "lxc-b"),
            (POD_B, 2, "ve0"),
        ] {
            devices.insert((ns, ifi), name.to_owned());
        }
        View {
            nodes: vec![
                NodeView {
                    name: "node-a".into(),
                    netns: NODE_A,
                    nic: 2,
                },
                NodeView {
                    name: "node-b".into(),
                    netns: NODE_B,
                    nic: 2,
                },
            ],
            pods: vec![
                PodView {
                    name: "pod-a".into(),
                    addr: A,
                    netns: POD_A,
                    ifindex: 2,
                    node: 0,
                },
                PodView {
                    name: "pod-b".into(),
                    addr: B,
                    netns: POD_B,
                    ifindex: 2,
                    node: 1,
                },
            ],
            namespaces: [
                (NODE_A, "node-a"),
                (NODE_B, "node-b"),
                (POD_A, "pod-a"),
                (POD_B, "pod-b"),
            ]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect(),
            devices,
        }
    }

    struct Stream {
        t: u64,
        events: Vec<TraceEvent>,
    }

    impl Stream {
        fn new() -> Self {
            Self {
                t: 1_000,
                events: Vec::new(),
            }
        }

        fn ev(&mut self, kind: EventKind, netns: u32, ifindex: u32, softirq: u64, tag: u32) {
            self.t += 1_000;
            self.events.push(TraceEvent {
                ts_ns: self.t,
                kind: kind as u8,
                netns,
                ifindex,
                softirq,
                saddr: A,
                daddr: B,
                flow_daddr: B,
                proto: 17,
                tag,
                flags: FLAG_IPV4 | FLAG_TAGGED,
                ..Default::default()
            });
        }
    }

    /// Bridge mode, one probe: TX on node-a, wire, RX on node-b.
    fn bridge_packet(s: &mut Stream, tag: u32) {
        use EventKind::*;
        s.ev(Queue, POD_A, 2, 0, tag);
        s.ev(Xmit, POD_A, 2, 0, tag);
        s.ev(Backlog, NODE_A, 4, 0, tag);
        s.ev(Receive, NODE_A, 4, 1, tag);
        s.ev(Receive, NODE_A, 3, 1, tag);
        s.ev(RouteLookup, NODE_A, 2, 1, tag);
        s.ev(Queue, NODE_A, 2, 1, tag);
        s.ev(Xmit, NODE_A, 2, 1, tag);
        // The wire (a veth) queues to the backlog before node-b's NIC.
        s.ev(Backlog, NODE_B, 2, 1, tag);
        s.ev(Receive, NODE_B, 2, 1, tag);
        s.ev(RouteLookup, NODE_B, 3, 1, tag);
        s.ev(Queue, NODE_B, 3, 1, tag);
        s.ev(Xmit, NODE_B, 3, 1, tag);
        s.ev(Queue, NODE_B, 4, 1, tag);
        s.ev(Xmit, NODE_B, 4, 1, tag);
        s.ev(Backlog, POD_B, 2, 1, tag);
        s.ev(Receive, POD_B, 2, 2, tag);
        s.ev(RouteLookup, POD_B, 2, 2, tag);
        s.ev(SocketReady, POD_B, 0, 2, tag);
        s.events.last_mut().unwrap().iif = 2;
    }

    #[test]
    fn bridge_packet_gives_one_rx_and_one_tx_path() {
        let mut s = Stream::new();
        bridge_packet(&mut s, 7);
        let paths = assemble(&view(), &s.events);
        assert_eq!(paths.len(), 2);
        let tx = paths.iter().find(|p| p.direction == Direction::Tx).unwrap();
        let rx = paths.iter().find(|p| p.direction == Direction::Rx).unwrap();
        assert_eq!(tx.devices(), ["ve0", "lxc-a", "br0", "eth1"]);
        assert_eq!(rx.devices(), ["eth1", "br0", "lxc-b", "ve0"]);
        assert_eq!((tx.backlog(), tx.route_lookups(), tx.softirqs()), (1, 1, 1));
        assert_eq!((rx.backlog(), rx.route_lookups(), rx.softirqs()), (1, 2, 2));
        assert_eq!((rx.node_route_lookups(), tx.node_route_lookups()), (1, 1));
        assert_eq!(rx.wire_backlog, 1);
        assert_eq!(tx.path_ns, Some(7_000));
        assert_eq!(rx.path_ns, Some(9_000));
        assert_eq!(rx.tag, Some(7));
        assert_eq!(rx.skb_addresses(), 1);
    }

    #[test]
    fn peer_rx_ends_in_the_pod_without_a_second_receive() {
        use EventKind::*;
        let mut s = Stream::new();
        s.ev(Receive, NODE_B, 2, 5, 1);
        s.ev(RouteLookup, POD_B, 2, 5, 1);
        s.ev(SocketReady, POD_B, 0, 5, 1);
        s.events.last_mut().unwrap().iif = 2;
        let paths = assemble(&view(), &s.events);
        assert_eq!(paths.len(), 1);
        let rx = &paths[0];
        assert_eq!(rx.devices(), ["eth1", "ve0"]);
        assert_eq!((rx.backlog(), rx.route_lookups(), rx.softirqs()), (0, 1, 1));
        assert_eq!(rx.node_route_lookups(), 0);
    }

    #[test]
    fn packets_are_kept_apart_by_tag_and_lookups_for_other_flows_ignored() {
        let mut s = Stream::new();
        bridge_packet(&mut s, 1);
        bridge_packet(&mut s, 2);
        // A lookup for an unrelated destination attributed to this CPU.
        s.ev(EventKind::Receive, NODE_B, 2, 9, 3);
        s.ev(EventKind::RouteLookup, NODE_B, 3, 9, 3);
        s.events.last_mut().unwrap().flow_daddr = [8, 8, 8, 8];
        let paths = assemble(&view(), &s.events);
        let rx: Vec<_> = paths
            .iter()
            .filter(|p| p.direction == Direction::Rx)
            .collect();
        assert_eq!(rx.len(), 3);
        assert!(rx[..2]
            .iter()
            .all(|p| p.complete() && p.route_lookups() == 2));
        assert!(!rx[2].complete());
        assert_eq!(rx[2].route_lookups(), 0);
    }

    #[test]
    fn a_drop_ends_the_path_with_its_reason() {
        use EventKind::*;
        let mut s = Stream::new();
        s.ev(Receive, NODE_B, 2, 1, 4);
        s.ev(Queue, NODE_B, 3, 1, 4);
        s.ev(Drop, NODE_B, 3, 1, 4);
        s.events.last_mut().unwrap().arg = 73;
        let paths = assemble(&view(), &s.events);
        assert_eq!(paths[0].drop_reason, Some(73));
        assert_eq!(paths[0].drop_site().as_deref(), Some("node-b/br0"));
        assert!(!paths[0].complete());
        assert_eq!(drops_by_reason(&paths).get(&73), Some(&1));
    }
}
