//! BPF_PROG_TEST_RUN tests of `from_pod`: it needs a node namespace with
//! real devices and routes for its FIB lookups, so it runs inside a lab
//! node (the `from_nic` tests are the dataplane crate's own).

mod common;
#[path = "../../shortpath-dataplane/tests/support/prog.rs"]
mod prog;

use std::{collections::BTreeMap, time::Duration};

use ipnet::IpNet;

use common::{
    packet::{self, Arp, Ext, BROADCAST, ETH_HLEN, V4, V6},
    root_or_skip, TestLab,
};
use shortpath::{
    dataplane::{Hook, NodeSpec, TcObject},
    lab,
    netns::{Netns, NetnsGuard},
    nl::Netlink,
};
use shortpath_common::mode::FastPath;

use prog::*;

/// Remote pod addresses in a second node's pod CIDR.
const REMOTE4: &str = "172.17.2.2";
const REMOTE6: &str = "fd00:172:17:2::2";

const TWO_PODS: &str =
    "[[node]]\nname = \"node-a\"\npods = 2\n[[node]]\nname = \"node-b\"\npods = 1\n";

struct PodBench {
    spec: NodeSpec,
    inv: lab::Inventory,
}

fn pod_bench(lab: &TestLab) -> PodBench {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let inv = rt
        .block_on(lab::inventory(&lab.name.parse().unwrap()))
        .expect("inventory");
    let spec = inv.dataplane_spec("node-a").expect("node-a");
    assert_eq!(spec.pods.len(), 2);
    PodBench { spec, inv }
}

impl PodBench {
    /// A fresh `mode` object whose maps hold node-a's pods and the lab's
    /// pod CIDRs (both nodes', both families).
    fn object(&self, mode: FastPath) -> TcObject {
        self.object_with(mode, &[])
    }
    /// [`PodBench::object`] with `extra` networks among the pod CIDRs.
    fn object_with(&self, mode: FastPath, extra: &[&str]) -> TcObject {
        let mut obj = TcObject::load(mode, None).expect("load");
        assert_eq!(obj.sync_endpoints(&self.spec).unwrap(), (4, 0));
        let mut spec = self.spec.clone();
        spec.cluster_cidrs
            .extend(extra.iter().map(|n| n.parse::<IpNet>().unwrap()));
        assert_eq!(
            obj.sync_pod_cidrs(&spec).unwrap(),
            (4 + extra.len(), 0),
            "{:?}",
            spec.cluster_cidrs
        );
        obj
    }
    fn pod(&self, i: usize) -> &shortpath::lab::PodInfo {
        self.inv.pods_of("node-a").nth(i).unwrap()
    }
    fn ctx(&self, i: usize) -> SkbCtx {
        SkbCtx {
            ifindex: self.pod(i).host_if.ifindex,
            ..Default::default()
        }
    }
    /// A frame pod `i` sends to `dst` through its gateway (the bridge).
    fn v4(&self, i: usize, dst: &str) -> V4 {
        let p = self.pod(i);
        let mut f = V4::new(&p.ipv4.unwrap().to_string(), dst);
        f.src_mac = p.mac.0;
        f.dst_mac = self.inv.node("node-a").unwrap().bridge.mac.0;
        f
    }
    fn v6(&self, i: usize, dst: &str) -> V6 {
        let p = self.pod(i);
        let mut f = V6::new(&p.ipv6.unwrap().to_string(), dst);
        f.src_mac = p.mac.0;
        f.dst_mac = self.gateway_mac();
        f
    }
    fn gateway_mac(&self) -> [u8; 6] {
        self.inv.node("node-a").unwrap().bridge.mac.0
    }
    fn mac(&self, i: usize) -> [u8; 6] {
        self.pod(i).mac.0
    }
    fn ip4(&self, i: usize) -> String {
        self.pod(i).ipv4.unwrap().to_string()
    }
    fn ip6(&self, i: usize) -> String {
        self.pod(i).ipv6.unwrap().to_string()
    }
    /// `frame` as pod `i` would send it: from its MAC, to the gateway.
    fn v4_from(&self, i: usize, src: &str, dst: &str) -> V4 {
        let mut f = V4::new(src, dst);
        f.src_mac = self.mac(i);
        f.dst_mac = self.gateway_mac();
        f
    }
    fn v6_from(&self, i: usize, src: &str, dst: &str) -> V6 {
        let mut f = V6::new(src, dst);
        f.src_mac = self.mac(i);
        f.dst_mac = self.gateway_mac();
        f
    }
    /// An ND message pod `i` sends (its MAC, hop limit 255).
    fn nd(&self, i: usize, src: &str, dst: &str, msg: Vec<u8>) -> V6 {
        let mut f = V6::nd(src, dst, msg);
        f.src_mac = self.mac(i);
        if f.dst_mac == [0; 6] {
            f.dst_mac = self.gateway_mac();
        }
        f
    }
    /// Runs `cases` on pod 0's device of a fresh `mode` object.
    fn check(&self, mode: FastPath, cases: &[Case]) {
        let mut obj = self.object(mode);
        check_cases(
            &mut obj,
            Hook::FromPod,
            self.ctx(0),
            self.pod(0).host_if.ifindex,
            cases,
        );
    }
}

/// A MAC that belongs to no pod.
const FOREIGN_MAC: [u8; 6] = [0x02, 0x66, 0x66, 0, 0, 0x66];
/// Some link-local address of pod 0 (link-local sources are not looked up).
const POD_LL: &str = "fe80::11:22ff:fe33:4455";

fn enter(netns: &str) -> NetnsGuard {
    NetnsGuard::enter(&Netns::new(netns)).expect("enter node namespace")
}

#[test]
fn from_pod_drops_spoofed_sources_and_counts_them() {
    root_or_skip!();
    let lab = TestLab::up_with("ebs", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let mut obj = b.object(FastPath::Redirect);
    let other = b.pod(1).ipv4.unwrap().to_string();
    let mut spoofs = vec![
        V4::new("10.6.6.6", REMOTE4).build(),
        // A real pod's address, sent from another pod's device.
        V4::new(&other, REMOTE4).build(),
        V6::new("fd00:6::6", REMOTE6).build(),
    ];
    let mut own_v4_wrong_dev = b.v4(0, REMOTE4);
    own_v4_wrong_dev.src = other.parse().unwrap();
    spoofs.push(own_v4_wrong_dev.build());
    for f in &spoofs {
        let r = run(&mut obj, Hook::FromPod, f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_SHOT);
    }
    let c = counts(&obj, b.pod(0).host_if.ifindex);
    let expected = BTreeMap::from([("drop_spoofed", spoofs.len() as u64)]);
    assert_eq!(c, expected);
}

#[test]
fn from_pod_same_node_pod_gets_it_directly() {
    root_or_skip!();
    let lab = TestLab::up_with("ebl", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let peer = b.pod(1);
    let (peer4, peer6) = (
        peer.ipv4.unwrap().to_string(),
        peer.ipv6.unwrap().to_string(),
    );
    for (mode, reason) in [
        (FastPath::Redirect, "redirect"),
        (FastPath::Peer, "redirect_peer"),
    ] {
        let mut obj = b.object(mode);
        // Routed via the gateway MAC: the router's rewrite.
        let f = b.v4(0, &peer4).build();
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "{reason} v4");
        assert_routed_rewrite(&r, &f, peer.mac.0, peer.host_if.mac.0, ETH_HLEN + 8);
        let f = b.v6(0, &peer6).build();
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "{reason} v6");
        assert_routed_rewrite(&r, &f, peer.mac.0, peer.host_if.mac.0, ETH_HLEN + 7);
        // Bridged (same subnet, addressed to the pod's MAC): as is.
        let mut bridged = b.v4(0, &peer4);
        bridged.dst_mac = peer.mac.0;
        let f = bridged.build();
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        assert_eq!(r.out, f, "bridged frame is delivered untouched");
        let c = counts(&obj, b.pod(0).host_if.ifindex);
        assert_eq!(c, BTreeMap::from([(reason, 3)]));
    }
}

#[test]
fn from_pod_routes_with_the_fib() {
    root_or_skip!();
    let lab = TestLab::up_with("ebf", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let node_a = b.inv.node("node-a").unwrap().clone();
    let node_b = b.inv.node("node-b").unwrap().clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A route whose gateway never answers: the neighbour stays unresolved.
    // 10.99.0.0/16 plays the pod CIDR of a node that is not there (only
    // pod CIDRs are routed here; see the test below for the rest).
    rt.block_on(async {
        let nl = Netlink::connect(&Netns::new(&node_a.netns)).await.unwrap();
        nl.add_route(
            "10.99.0.0/16".parse().unwrap(),
            "192.168.1.77".parse().unwrap(),
        )
        .await
        .unwrap();
    });
    let _ns = enter(&b.spec.netns);
    let mut obj = b.object_with(FastPath::Peer, &["10.99.0.0/16", "10.200.0.0/16"]);
    let lxc = b.pod(0).host_if.ifindex;

    let f = b.v4(0, "10.99.1.1").build();
    let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "unresolved neighbour");
    assert_eq!(r.out[ETH_HLEN + 8], 63, "TTL − 1 before redirect_neigh");
    assert!(packet::ipv4_header_valid(&r.out));

    // Resolve node-b's NIC, then the FIB gives egress device and MACs.
    shortpath::probe::ping(
        &Netns::new(&node_a.netns),
        node_b.nic.ipv4.unwrap(),
        56,
        Duration::from_secs(3),
    )
    .expect("node-a reaches node-b");
    let remote = b.inv.pods_of("node-b").next().unwrap();
    let f = b.v4(0, &remote.ipv4.unwrap().to_string()).build();
    let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "resolved neighbour");
    assert_routed_rewrite(&r, &f, node_b.nic.mac.0, node_a.nic.mac.0, ETH_HLEN + 8);

    let remote4 = remote.ipv4.unwrap().to_string();
    let mut cases = vec![
        case(
            "pod CIDR without a route",
            b.v4(0, "10.200.0.1").build(),
            TC_ACT_OK,
            "pass_fib_not_forwarded",
        ),
        case(
            "the gateway (a node address in its pod CIDR)",
            b.v4(0, "172.17.1.1").build(),
            TC_ACT_OK,
            "pass_fib_not_forwarded",
        ),
        case(
            "the node's NIC (not a pod CIDR)",
            b.v4(0, "192.168.1.1").build(),
            TC_ACT_OK,
            "pass_not_pod_cidr",
        ),
        case(
            "multicast",
            b.v4(0, "224.0.0.251").build(),
            TC_ACT_OK,
            "pass_multicast",
        ),
        case(
            "v6 multicast",
            b.v6(0, "ff02::fb").build(),
            TC_ACT_OK,
            "pass_multicast",
        ),
        case(
            "ARP",
            Arp::request(b.mac(0), &b.ip4(0), "172.17.1.1").build(),
            TC_ACT_OK,
            "pass_arp",
        ),
    ];
    let mut ll = V6::new("fe80::1", "ff02::2");
    ll.src_mac = b.mac(0);
    cases.push(case(
        "link-local source",
        ll.build(),
        TC_ACT_OK,
        "pass_link_local",
    ));
    let mut ttl = b.v4(0, &remote4);
    ttl.ttl = 1;
    cases.push(case("ttl 1", ttl.build(), TC_ACT_OK, "pass_ttl_expired"));
    let mut big = b.v4(0, &remote4);
    big.payload = 1600;
    cases.push(case(
        "over egress MTU",
        big.build(),
        TC_ACT_OK,
        "pass_fib_frag_needed",
    ));
    // bpf_fib_lookup checks the MTU only when the neighbour is known: the
    // unresolved next hop needs its own check, or bpf_redirect_neigh would
    // hand the device a frame it drops silently.
    let mut big = b.v4(0, "10.99.1.1");
    big.payload = 1600;
    cases.push(case(
        "over egress MTU, unresolved neighbour",
        big.build(),
        TC_ACT_OK,
        "pass_fib_frag_needed",
    ));
    let mut gso = b.ctx(0);
    gso.gso_size = 1400;
    gso.gso_segs = 2;
    let r = run(&mut obj, Hook::FromPod, &big.build(), gso);
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "GSO is segmented to fit");

    let mut expected = BTreeMap::from([("redirect_neigh", 2), ("redirect", 1)]);
    for c in &cases {
        let r = run(&mut obj, Hook::FromPod, &c.frame, b.ctx(0));
        assert_eq!(r.verdict, c.verdict, "{}", c.what);
        assert_eq!(r.out, c.frame, "{}: modified", c.what);
        *expected.entry(c.reason).or_default() += 1;
    }
    assert_eq!(counts(&obj, lxc), expected);
}

/// The next-hop cache answers exactly as the FIB would: same verdict and
/// same bytes for remote pods of both families once the routes are
/// cached (`redirect_cached` instead of `redirect`), the same TTL and MTU
/// treatment, and an "ask the FIB" exception inside a cached route sends
/// that destination back to the FIB. The MACs come from the entry (a
/// changed entry changes the frame), so nothing answers but the map.
#[test]
fn from_pod_cached_next_hops_rewrite_like_the_fib() {
    root_or_skip!();
    let lab = TestLab::up_with("enh", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let node_a = b.inv.node("node-a").unwrap().clone();
    let node_b = b.inv.node("node-b").unwrap().clone();
    for addr in [node_b.nic.ipv4.unwrap(), node_b.nic.ipv6.unwrap()] {
        shortpath::probe::ping(&Netns::new(&node_a.netns), addr, 56, Duration::from_secs(3))
            .expect("node-a reaches node-b (resolves the next hop)");
    }
    let remote = b.inv.pods_of("node-b").next().unwrap();
    let (r4, r6) = (
        remote.ipv4.unwrap().to_string(),
        remote.ipv6.unwrap().to_string(),
    );
    let _ns = enter(&b.spec.netns);
    let mut obj = b.object(FastPath::Peer);
    let lxc = b.pod(0).host_if.ifindex;
    let frames = [b.v4(0, &r4).build(), b.v6(0, &r6).build()];
    let by_fib: Vec<Run> = frames
        .iter()
        .map(|f| run(&mut obj, Hook::FromPod, f, b.ctx(0)))
        .collect();
    for (r, f) in by_fib.iter().zip(&frames) {
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        let ttl_at = if f[12..14] == [0x08, 0x00] {
            ETH_HLEN + 8
        } else {
            ETH_HLEN + 7
        };
        assert_routed_rewrite(r, f, node_b.nic.mac.0, node_a.nic.mac.0, ttl_at);
    }
    assert_eq!(counts(&obj, lxc), BTreeMap::from([("redirect", 2)]));

    let plan = obj.sync_next_hops(&b.spec).expect("cache filled");
    assert_eq!(
        plan.cached(),
        2,
        "node-b's pod CIDRs, both families: {plan:?}"
    );
    for (f, fib) in frames.iter().zip(&by_fib) {
        let r = run(&mut obj, Hook::FromPod, f, b.ctx(0));
        assert_eq!((r.verdict, &r.out), (fib.verdict, &fib.out), "cache = FIB");
    }
    let mut expired = b.v4(0, &r4);
    expired.ttl = 1;
    let mut big = b.v4(0, &r4);
    big.payload = 1600;
    for (what, f, reason) in [
        ("ttl 1", expired.build(), "pass_ttl_expired"),
        ("over the route MTU", big.build(), "pass_fib_frag_needed"),
    ] {
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(
            (r.verdict, &r.out),
            (TC_ACT_OK, &f),
            "{what}: to the stack untouched"
        );
        assert_eq!(counts(&obj, lxc).get(reason), Some(&1), "{what}");
    }
    let mut gso = b.ctx(0);
    gso.gso_size = 1400;
    gso.gso_segs = 2;
    let r = run(&mut obj, Hook::FromPod, &big.build(), gso);
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "GSO is segmented to fit");

    // The answer is the entry's: another MAC in it, another frame.
    // Written through the object, which bumps the generation: the
    // programs' per-CPU next-hop cache holds the sync's entry for this
    // address by now, and must not answer with it any more.
    let net4: ipnet::IpNet = format!("{r4}/32").parse().unwrap();
    let mut entry = shortpath_common::next_hop::NextHop {
        ifindex: node_a.nic.ifindex,
        mtu: 1500,
        smac: node_a.nic.mac.0,
        dmac: [0x02, 0, 0, 0, 0, 0x42],
    };
    obj.insert_next_hop(net4, entry).unwrap();
    let r = run(&mut obj, Hook::FromPod, &frames[0], b.ctx(0));
    assert_eq!(r.out[0..6], entry.dmac, "destination MAC from the entry");
    // An exception inside the cached route: the FIB decides again.
    entry = shortpath_common::next_hop::NextHop::ASK_FIB;
    obj.insert_next_hop(net4, entry).unwrap();
    let r = run(&mut obj, Hook::FromPod, &frames[0], b.ctx(0));
    assert_eq!(r.out, by_fib[0].out);
    assert_eq!(
        counts(&obj, lxc),
        BTreeMap::from([
            ("redirect", 3),
            ("redirect_cached", 4),
            ("pass_ttl_expired", 1),
            ("pass_fib_frag_needed", 1),
        ])
    );
}

/// Only pod addresses are routed with the FIB: a destination outside the
/// cluster's pod CIDRs (a Service IP, the internet) goes to the stack
/// unchanged — kube-proxy's DNAT and the masquerade are there — even when
/// the FIB would forward it, and is counted `pass_not_pod_cidr`. Remote
/// pods still take `redirect` / `redirect_neigh`.
#[test]
fn from_pod_routes_only_pod_cidrs() {
    root_or_skip!();
    let lab = TestLab::up_with("ebc", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let node_a = b.inv.node("node-a").unwrap().clone();
    let node_b = b.inv.node("node-b").unwrap().clone();
    let (b4, b6) = (node_b.nic.ipv4.unwrap(), node_b.nic.ipv6.unwrap());
    let remote = b.inv.pods_of("node-b").next().unwrap().clone();
    let (remote4, remote6) = (
        remote.ipv4.unwrap().to_string(),
        remote.ipv6.unwrap().to_string(),
    );
    // What a real node's default route does: other destinations leave
    // through the NIC, towards node-b here. Another pair of networks is
    // routed via a next hop that never answers (no neighbour).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let nl = Netlink::connect(&Netns::new(&node_a.netns)).await.unwrap();
        for (dest, via) in [
            ("10.99.0.0/16", b4),
            ("fd00:99::/64", b6),
            ("10.98.0.0/16", "192.168.1.77".parse().unwrap()),
            ("fd00:98::/64", "fd00:192:168:1::77".parse().unwrap()),
        ] {
            nl.add_route(dest.parse().unwrap(), via).await.unwrap();
        }
    });
    // Resolve node-b's NIC: the FIB then forwards with SUCCESS.
    for dst in [b4, b6] {
        shortpath::probe::ping(&Netns::new(&node_a.netns), dst, 56, Duration::from_secs(3))
            .expect("node-a reaches node-b");
    }
    let _ns = enter(&b.spec.netns);
    let lxc = b.pod(0).host_if.ifindex;
    let (a_mac, b_mac) = (node_a.nic.mac.0, node_b.nic.mac.0);

    // Outside the pod CIDRs: to the stack, untouched, whatever the FIB says.
    let mut outside = vec![
        (
            "v4 routed, neighbour resolved",
            b.v4(0, "10.99.1.1").build(),
        ),
        (
            "v6 routed, neighbour resolved",
            b.v6(0, "fd00:99::1").build(),
        ),
        (
            "v4 routed, neighbour unresolved",
            b.v4(0, "10.98.1.1").build(),
        ),
        (
            "v6 routed, neighbour unresolved",
            b.v6(0, "fd00:98::1").build(),
        ),
        (
            "v4 Service-like IP, no route",
            b.v4(0, "10.96.0.10").build(),
        ),
        ("v6 no route", b.v6(0, "fd00:96::10").build()),
        ("v4 the node's NIC", b.v4(0, "192.168.1.1").build()),
        ("v6 node-b's NIC", b.v6(0, &b6.to_string()).build()),
    ];
    let mut ttl1 = b.v4(0, "10.99.1.1");
    ttl1.ttl = 1;
    outside.push(("v4 TTL 1", ttl1.build()));
    let mut big = b.v6(0, "fd00:99::1");
    big.payload = 1600;
    outside.push(("v6 over the egress MTU", big.build()));
    let mut obj = b.object(FastPath::Peer);
    for (what, f) in &outside {
        let r = run(&mut obj, Hook::FromPod, f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_OK, "{what}");
        assert_eq!(&r.out, f, "{what}: modified");
    }
    // Remote pods: routed by the program.
    let f = b.v4(0, &remote4).build();
    let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "remote pod v4");
    assert_routed_rewrite(&r, &f, b_mac, a_mac, ETH_HLEN + 8);
    let f = b.v6(0, &remote6).build();
    let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "remote pod v6");
    assert_routed_rewrite(&r, &f, b_mac, a_mac, ETH_HLEN + 7);
    assert_eq!(
        counts(&obj, lxc),
        BTreeMap::from([("pass_not_pod_cidr", outside.len() as u64), ("redirect", 2)])
    );

    // The same destinations as pod CIDRs take the fast path: the FIB would
    // forward them, only the rule kept them off it.
    let mut obj = b.object_with(
        FastPath::Peer,
        &[
            "10.99.0.0/16",
            "fd00:99::/64",
            "10.98.0.0/16",
            "fd00:98::/64",
        ],
    );
    for (what, f, reason, ttl_at) in [
        (
            "v4 resolved",
            b.v4(0, "10.99.1.1").build(),
            "redirect",
            ETH_HLEN + 8,
        ),
        (
            "v6 resolved",
            b.v6(0, "fd00:99::1").build(),
            "redirect",
            ETH_HLEN + 7,
        ),
        (
            "v4 unresolved",
            b.v4(0, "10.98.1.1").build(),
            "redirect_neigh",
            ETH_HLEN + 8,
        ),
        (
            "v6 unresolved",
            b.v6(0, "fd00:98::1").build(),
            "redirect_neigh",
            ETH_HLEN + 7,
        ),
    ] {
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "{what} as a pod CIDR");
        if reason == "redirect" {
            assert_routed_rewrite(&r, &f, b_mac, a_mac, ttl_at);
        } else {
            assert_eq!(r.out[ttl_at], f[ttl_at] - 1, "{what}: TTL − 1");
        }
    }
    assert_eq!(
        counts(&obj, lxc),
        BTreeMap::from([("redirect", 2), ("redirect_neigh", 2)])
    );

    // An empty map (pod CIDRs never written): only local pods take the
    // fast path, nothing is routed.
    let mut obj = TcObject::load(FastPath::Peer, None).expect("load");
    obj.sync_endpoints(&b.spec).unwrap();
    for f in [b.v4(0, &remote4).build(), b.v6(0, &remote6).build()] {
        let r = run(&mut obj, Hook::FromPod, &f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_OK);
        assert_eq!(r.out, f);
    }
    let f = b.v4(0, &b.ip4(1)).build();
    assert_eq!(
        run(&mut obj, Hook::FromPod, &f, b.ctx(0)).verdict,
        TC_ACT_REDIRECT
    );
    assert_eq!(
        counts(&obj, lxc),
        BTreeMap::from([("pass_not_pod_cidr", 2), ("redirect_peer", 1)])
    );
}

/// The Service case on one node: pod 0 is a Service's client, pod 1 its
/// backend. What pod 0 sends outside the pod CIDRs (the Service IP) goes
/// to the stack and is remembered by (family, protocol, pod address, pod
/// port / echo id); pod 1's answers to that address and port — routed via
/// the gateway or bridged to pod 0's MAC — go to the stack unchanged
/// (`pass_stack_flow`), whose conntrack turns their source back into the
/// Service IP. Packets the program routes or delivers itself, and
/// fragments, are not remembered; other ports are still delivered.
#[test]
fn from_pod_hands_replies_of_flows_a_pod_sent_to_the_stack_to_the_stack() {
    root_or_skip!();
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const PORT: u16 = 8080;
    let (svc4, svc6) = ("10.96.0.10", "fd00:96::10");
    let lab = TestLab::up_with("ebr", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let remote = b.inv.pods_of("node-b").next().unwrap().clone();
    let (remote4, remote6) = (
        remote.ipv4.unwrap().to_string(),
        remote.ipv6.unwrap().to_string(),
    );
    let v4 = |i: usize, dst: &str, proto: u8, sport: u16, dport: u16| {
        let mut f = b.v4(i, dst);
        (f.protocol, f.sport, f.dport) = (proto, sport, dport);
        f
    };
    let v6 = |i: usize, dst: &str, proto: u8, sport: u16, dport: u16| {
        let mut f = b.v6(i, dst);
        (f.next_header, f.sport, f.dport) = (proto, sport, dport);
        f
    };
    for (mode, helper) in [
        (FastPath::Redirect, "redirect"),
        (FastPath::Peer, "redirect_peer"),
    ] {
        let mut obj = b.object(mode);
        // Pod 0 → the Service: TCP from 40006, UDP from 40017, echo 0x4242.
        let mut requests = Vec::new();
        for (proto, sport) in [(TCP, 40006), (UDP, 40017)] {
            requests.push(v4(0, svc4, proto, sport, PORT).build());
            requests.push(v6(0, svc6, proto, sport, PORT).build());
        }
        let mut echo = b.v4(0, svc4);
        echo.icmp = Some(packet::echo(8, 0x4242));
        requests.push(echo.build());
        let mut echo = b.v6(0, svc6);
        echo.icmp6 = Some(packet::echo(128, 0x4242));
        requests.push(echo.build());
        for f in &requests {
            assert_passed_unchanged(&run(&mut obj, Hook::FromPod, f, b.ctx(0)), f);
        }
        // Not remembered: a remote pod (the FIB's), a local pod (delivered
        // here), a fragment to the Service (no ports: the stack anyway).
        let fib = [
            v4(0, &remote4, UDP, 50000, PORT).build(),
            v6(0, &remote6, TCP, 50000, PORT).build(),
        ];
        for f in &fib {
            let r = run(&mut obj, Hook::FromPod, f, b.ctx(0));
            assert_eq!(r.verdict, TC_ACT_REDIRECT, "to a remote pod");
        }
        let local = v4(0, &b.ip4(1), UDP, 50001, PORT).build();
        let r = run(&mut obj, Hook::FromPod, &local, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "to a local pod");
        let mut frag = v4(0, svc4, UDP, 50002, PORT);
        frag.frag_off = 0x2000;
        let frag = frag.build();
        let r = run(&mut obj, Hook::FromPod, &frag, b.ctx(0));
        assert_passed_unchanged(&r, &frag);
        let c = counts(&obj, b.pod(0).host_if.ifindex);
        assert_eq!(c["pass_not_pod_cidr"], requests.len() as u64, "{c:?}");
        assert_eq!(c["pass_fragment"], 1, "{c:?}");
        let flows: Vec<String> =
            shortpath::dataplane::read_stack_flows(&obj.stack_flows().unwrap())
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect();
        let (a4, a6) = (b.ip4(0), b.ip6(0));
        assert_eq!(
            flows,
            [
                format!("icmp {a4}:16962"),
                format!("tcp {a4}:40006"),
                format!("udp {a4}:40017"),
                format!("tcp [{a6}]:40006"),
                format!("udp [{a6}]:40017"),
                format!("icmpv6 [{a6}]:16962"),
            ],
            "{mode:?}"
        );

        // Pod 1, the backend, answers pod 0.
        let mut cases = Vec::new();
        for (proto, port, name) in [(TCP, 40006, "tcp"), (UDP, 40017, "udp")] {
            for (fam, f) in [
                ("v4", v4(1, &a4, proto, PORT, port).build()),
                ("v6", v6(1, &a6, proto, PORT, port).build()),
            ] {
                let mut bridged = f.clone();
                bridged[..6].copy_from_slice(&b.mac(0));
                cases.push(case(
                    format!("{fam} {name} reply via the gateway"),
                    f,
                    TC_ACT_OK,
                    "pass_stack_flow",
                ));
                cases.push(case(
                    format!("{fam} {name} reply bridged"),
                    bridged,
                    TC_ACT_OK,
                    "pass_stack_flow",
                ));
            }
            cases.push(case(
                format!("v4 {name} another port"),
                v4(1, &a4, proto, PORT, port + 1).build(),
                TC_ACT_REDIRECT,
                helper,
            ));
            cases.push(case(
                format!("v6 {name} another port"),
                v6(1, &a6, proto, PORT, port + 1).build(),
                TC_ACT_REDIRECT,
                helper,
            ));
        }
        for (id, verdict, reason) in [
            (0x4242u16, TC_ACT_OK, "pass_stack_flow"),
            (0x4243, TC_ACT_REDIRECT, helper),
        ] {
            let mut f = b.v4(1, &a4);
            f.icmp = Some(packet::echo(0, id));
            cases.push(case(
                format!("v4 echo reply {id:#x}"),
                f.build(),
                verdict,
                reason,
            ));
            let mut f = b.v6(1, &a6);
            f.icmp6 = Some(packet::echo(129, id));
            cases.push(case(
                format!("v6 echo reply {id:#x}"),
                f.build(),
                verdict,
                reason,
            ));
        }
        check_cases(
            &mut obj,
            Hook::FromPod,
            b.ctx(1),
            b.pod(1).host_if.ifindex,
            &cases,
        );
    }
}

/// IPv4 options and fragments go to the stack — only after the source
/// check, which reads `saddr` at its fixed offset whatever follows.
#[test]
fn from_pod_checks_the_source_of_ipv4_options_and_fragments() {
    root_or_skip!();
    let lab = TestLab::up_with("ebo", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let mut cases = Vec::new();
    for (src, reason, verdict) in [
        (b.ip4(1), "drop_spoofed", TC_ACT_SHOT),
        ("10.6.6.6".to_owned(), "drop_spoofed", TC_ACT_SHOT),
        ("169.254.1.1".to_owned(), "drop_spoofed", TC_ACT_SHOT),
        (b.ip4(0), "", TC_ACT_OK),
    ] {
        let own = reason.is_empty();
        let mut opts = b.v4_from(0, &src, REMOTE4);
        opts.options = 8;
        let r = if own { "pass_ip_options" } else { reason };
        cases.push(case(format!("{src} options"), opts.build(), verdict, r));
        for (what, frag_off) in [("first fragment", 0x2000u16), ("later fragment", 0x00b9)] {
            let mut f = b.v4_from(0, &src, REMOTE4);
            f.frag_off = frag_off;
            let r = if own { "pass_fragment" } else { reason };
            cases.push(case(format!("{src} {what}"), f.build(), verdict, r));
        }
    }
    cases.push(case(
        "169.254/16 source",
        b.v4_from(0, "169.254.1.1", REMOTE4).build(),
        TC_ACT_SHOT,
        "drop_spoofed",
    ));
    let ll_to_metadata = b.v4_from(0, "169.254.1.1", "169.254.169.254").build();
    cases.push(case(
        "169.254/16 to 169.254/16",
        ll_to_metadata,
        TC_ACT_SHOT,
        "drop_spoofed",
    ));
    b.check(FastPath::Redirect, &cases);
}

/// Every IPv6 extension header kind, spoofed and own: the source check and
/// the ND rules run before extension headers and fragments go to the stack.
#[test]
fn from_pod_checks_the_source_behind_ipv6_extension_headers() {
    root_or_skip!();
    let lab = TestLab::up_with("ebx", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let mut cases = Vec::new();
    let kinds = [
        (Ext::HopByHop, "pass_ipv6_ext_header"),
        (Ext::Routing, "pass_ipv6_ext_header"),
        (Ext::DestOpts, "pass_ipv6_ext_header"),
        (
            Ext::Fragment {
                offset: 0,
                more: true,
            },
            "pass_fragment",
        ),
        (
            Ext::Fragment {
                offset: 185,
                more: false,
            },
            "pass_fragment",
        ),
    ];
    for (ext, own_reason) in kinds {
        for src in [b.ip6(1), "fd00:6::6".to_owned()] {
            let mut f = b.v6_from(0, &src, REMOTE6);
            f.ext = vec![ext];
            cases.push(case(
                format!("{src} {ext:?}"),
                f.build(),
                TC_ACT_SHOT,
                "drop_spoofed",
            ));
        }
        let mut f = b.v6(0, REMOTE6);
        f.ext = vec![ext];
        cases.push(case(
            format!("own {ext:?}"),
            f.build(),
            TC_ACT_OK,
            own_reason,
        ));
    }
    // Four headers are walked; a fifth is too many.
    let four = vec![Ext::HopByHop, Ext::DestOpts, Ext::Routing, Ext::DestOpts];
    let mut f = b.v6(0, REMOTE6);
    f.ext = four.clone();
    cases.push(case(
        "own, 4 headers",
        f.build(),
        TC_ACT_OK,
        "pass_ipv6_ext_header",
    ));
    f.ext.push(Ext::DestOpts);
    cases.push(case(
        "own, 5 headers",
        f.build(),
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    // A chain that runs past the end of the packet.
    let mut cut = b.v6(0, REMOTE6);
    cut.next_header = 60;
    cut.payload = 0;
    let mut cut = cut.build();
    cut.truncate(cut.len() - 4);
    cut[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&4u16.to_be_bytes());
    cases.push(case(
        "own, chain cut short",
        cut,
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    b.check(FastPath::Peer, &cases);
}

/// Tagged frames are never a pod's: 802.1Q and 802.1ad, with a spoofed or
/// the pod's own packet inside, and a double tag.
#[test]
fn from_pod_drops_vlan_tagged_frames() {
    root_or_skip!();
    let lab = TestLab::up_with("ebv", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let own = b.v4(0, REMOTE4).build();
    let spoofed = b.v4_from(0, &b.ip4(1), REMOTE4).build();
    let own6 = b.v6(0, REMOTE6).build();
    let mut cases = Vec::new();
    for (tpid, name) in [(0x8100u16, "802.1Q"), (0x88a8, "802.1ad")] {
        for (inner, f) in [("own", &own), ("spoofed", &spoofed), ("own v6", &own6)] {
            cases.push(case(
                format!("{name} {inner}"),
                packet::vlan(f, tpid, 5),
                TC_ACT_SHOT,
                "drop_vlan",
            ));
        }
    }
    let qinq = packet::vlan(&packet::vlan(&own, 0x8100, 5), 0x88a8, 7);
    cases.push(case("QinQ own", qinq, TC_ACT_SHOT, "drop_vlan"));
    let arp = Arp::request(b.mac(0), &b.ip4(0), "172.17.1.1").build();
    cases.push(case(
        "802.1Q own ARP",
        packet::vlan(&arp, 0x8100, 5),
        TC_ACT_SHOT,
        "drop_vlan",
    ));
    b.check(FastPath::Redirect, &cases);
}

/// ARP goes to the stack only when it speaks for the pod itself: its own
/// IP (or 0.0.0.0 for a probe), from its own MAC in both headers.
#[test]
fn from_pod_arp_must_come_from_the_pod_itself() {
    root_or_skip!();
    let lab = TestLab::up_with("eba", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let (me, other, gw) = (b.ip4(0), b.ip4(1), "172.17.1.1");
    let mac = b.mac(0);
    let mut cases = vec![
        case(
            "request claiming another pod's IP",
            Arp::request(mac, &other, gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "request claiming an unknown IP",
            Arp::request(mac, "172.17.1.77", gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "request claiming a 169.254/16 IP",
            Arp::request(mac, "169.254.1.1", gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "own request",
            Arp::request(mac, &me, gw).build(),
            TC_ACT_OK,
            "pass_arp",
        ),
        case(
            "RFC 5227 probe",
            Arp::request(mac, "0.0.0.0", &me).build(),
            TC_ACT_OK,
            "pass_arp",
        ),
        case(
            "gratuitous ARP",
            Arp::request(mac, &me, &me).build(),
            TC_ACT_OK,
            "pass_arp",
        ),
        case(
            "foreign MAC in both headers",
            Arp::request(FOREIGN_MAC, &me, gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ),
        case(
            "another pod's MAC",
            Arp::request(b.mac(1), &me, gw).build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ),
    ];
    let reply = |sender_ip: &str, sender_mac: [u8; 6]| {
        let mut a = Arp::request(mac, sender_ip, gw);
        a.oper = 2;
        a.eth_dst = b.gateway_mac();
        a.target_mac = b.gateway_mac();
        a.sender_mac = sender_mac;
        a.build()
    };
    cases.push(case("own reply", reply(&me, mac), TC_ACT_OK, "pass_arp"));
    cases.push(case(
        "reply claiming another pod's IP",
        reply(&other, mac),
        TC_ACT_SHOT,
        "drop_spoofed",
    ));
    cases.push(case(
        "reply with a foreign sender MAC",
        reply(&me, FOREIGN_MAC),
        TC_ACT_SHOT,
        "drop_spoofed_mac",
    ));
    let mut probe = Arp::request(mac, "0.0.0.0", &me);
    probe.sender_mac = FOREIGN_MAC;
    cases.push(case(
        "probe with a foreign sender MAC",
        probe.build(),
        TC_ACT_SHOT,
        "drop_spoofed_mac",
    ));
    for (what, edit) in [
        ("htype 6", (|a: &mut Arp| a.htype = 6) as fn(&mut Arp)),
        ("ptype IPv6", |a| a.ptype = 0x86dd),
        ("hlen 8", |a| a.hlen = 8),
        ("plen 16", |a| a.plen = 16),
    ] {
        let mut a = Arp::request(mac, &me, gw);
        edit(&mut a);
        cases.push(case(what, a.build(), TC_ACT_SHOT, "drop_malformed"));
    }
    b.check(FastPath::Redirect, &cases);
}

/// Neighbor Discovery: a pod may resolve and announce its own (or
/// link-local) addresses, never another's, and never act as a router.
#[test]
fn from_pod_nd_may_not_claim_other_addresses_or_routes() {
    root_or_skip!();
    let lab = TestLab::up_with("ebn", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let (me, other) = (b.ip6(0), b.ip6(1));
    let mut cases = vec![
        case(
            "unsolicited NA for another pod",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na(&other)).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "NA for another pod from the pod's global address",
            b.nd(0, &me, "fe80::1", packet::nd_na(&other)).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "NA for an unknown address",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na("fd00:6::6"))
                .build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "RA",
            b.nd(0, POD_LL, "ff02::1", packet::nd_ra()).build(),
            TC_ACT_SHOT,
            "drop_nd_router",
        ),
        case(
            "RA from the pod's global address",
            b.nd(0, &me, "ff02::1", packet::nd_ra()).build(),
            TC_ACT_SHOT,
            "drop_nd_router",
        ),
        case(
            "Redirect",
            b.nd(
                0,
                POD_LL,
                "fe80::99",
                packet::nd_redirect("fe80::1", &other),
            )
            .build(),
            TC_ACT_SHOT,
            "drop_nd_router",
        ),
        case(
            "DAD NS for another pod's address",
            b.nd(0, "::", "ff02::1:ff00:3", packet::nd_ns(&other))
                .build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            "truncated NA",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na(&other)[..12].to_vec())
                .build(),
            TC_ACT_SHOT,
            "drop_malformed",
        ),
        case(
            "link-local source to a global address",
            b.v6_from(0, POD_LL, REMOTE6).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        case(
            ":: source to a global address",
            b.v6_from(0, "::", REMOTE6).build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ),
        // Legitimate ND goes to the stack.
        case(
            "NS for the gateway",
            b.nd(
                0,
                POD_LL,
                "ff02::1:ff00:1",
                packet::nd_ns("fd00:172:17:1::1"),
            )
            .build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "RS",
            b.nd(0, POD_LL, "ff02::2", packet::nd_rs()).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "DAD NS for the pod's own address",
            b.nd(0, "::", "ff02::1:ff00:2", packet::nd_ns(&me)).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "DAD NS for a link-local address",
            b.nd(0, "::", "ff02::1:ff33:4455", packet::nd_ns(POD_LL))
                .build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "NA for the pod's own address",
            b.nd(0, POD_LL, "ff02::1", packet::nd_na(&me)).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
        case(
            "NA for its link-local address, from its global one",
            b.nd(0, &me, "fe80::1", packet::nd_na(POD_LL)).build(),
            TC_ACT_OK,
            "pass_link_local",
        ),
    ];
    // Claims hidden behind extension headers are found all the same.
    for ext in [
        Ext::DestOpts,
        Ext::HopByHop,
        Ext::Fragment {
            offset: 0,
            more: false,
        },
    ] {
        let mut f = b.nd(0, POD_LL, "ff02::1", packet::nd_na(&other));
        f.ext = vec![ext];
        cases.push(case(
            format!("NA for another pod behind {ext:?}"),
            f.build(),
            TC_ACT_SHOT,
            "drop_spoofed",
        ));
    }
    let mut f = b.nd(0, POD_LL, "ff02::1", packet::nd_ra());
    f.ext = vec![Ext::HopByHop, Ext::DestOpts];
    cases.push(case(
        "RA behind two headers",
        f.build(),
        TC_ACT_SHOT,
        "drop_nd_router",
    ));
    // Other ICMPv6 from the pod's own address takes the fast path.
    let mut echo = b.v6(0, &other);
    echo.icmp6 = Some(packet::icmp6_echo());
    cases.push(case(
        "echo to a pod",
        echo.build(),
        TC_ACT_REDIRECT,
        "redirect",
    ));
    b.check(FastPath::Redirect, &cases);
}

/// The rest of the policy: unknown EtherTypes, the pod's address from
/// another MAC, inconsistent or truncated headers are dropped; DHCP
/// discover and group-MAC frames go to the stack, never the fast path.
#[test]
fn from_pod_drops_what_no_pod_sends_and_keeps_group_frames_off_the_fast_path() {
    root_or_skip!();
    let lab = TestLab::up_with("ebm", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let _ns = enter(&b.spec.netns);
    let own4 = b.v4(0, REMOTE4).build();
    let own6 = b.v6(0, REMOTE6).build();
    let mut cases = Vec::new();
    for (what, ethertype) in [
        ("LLDP", 0x88ccu16),
        ("802.3 length", 0x0040),
        ("MPLS", 0x8847),
    ] {
        let mut f = own4.clone();
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        cases.push(case(what, f, TC_ACT_SHOT, "drop_unknown_l3"));
    }
    for (what, mac) in [
        ("foreign MAC", FOREIGN_MAC),
        ("another pod's MAC", b.mac(1)),
    ] {
        let mut f = b.v4(0, REMOTE4);
        f.src_mac = mac;
        cases.push(case(
            format!("v4 {what}"),
            f.build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ));
        let mut f = b.v6(0, REMOTE6);
        f.src_mac = mac;
        cases.push(case(
            format!("v6 {what}"),
            f.build(),
            TC_ACT_SHOT,
            "drop_spoofed_mac",
        ));
    }
    cases.push(case(
        "0.0.0.0 to a unicast address",
        b.v4_from(0, "0.0.0.0", REMOTE4).build(),
        TC_ACT_SHOT,
        "drop_spoofed",
    ));

    // Inconsistent headers.
    let mut edit4 = |what: &str, at: usize, bytes: &[u8]| {
        let mut f = own4.clone();
        f[ETH_HLEN + at..ETH_HLEN + at + bytes.len()].copy_from_slice(bytes);
        packet::fix_ipv4_checksum(&mut f);
        cases.push(case(what, f, TC_ACT_SHOT, "drop_malformed"));
    };
    let tot_len = u16::from_be_bytes([own4[ETH_HLEN + 2], own4[ETH_HLEN + 3]]);
    edit4("tot_len > frame", 2, &(tot_len + 1).to_be_bytes());
    edit4("tot_len < header", 2, &19u16.to_be_bytes());
    edit4("IP version 6", 0, &[0x65]);
    edit4("ihl 4", 0, &[0x44]);
    let mut f = own6.clone();
    f[ETH_HLEN] = 0x40;
    cases.push(case("IPv6 version 4", f, TC_ACT_SHOT, "drop_malformed"));
    let mut f = own6.clone();
    let payload = u16::from_be_bytes([f[ETH_HLEN + 4], f[ETH_HLEN + 5]]);
    f[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&(payload + 1).to_be_bytes());
    cases.push(case(
        "payload_len > frame",
        f,
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    cases.push(case(
        "v4 cut in the payload",
        own4[..own4.len() - 1].to_vec(),
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    cases.push(case(
        "v6 cut in the payload",
        own6[..own6.len() - 1].to_vec(),
        TC_ACT_SHOT,
        "drop_malformed",
    ));
    // Truncated frames: every cut the test runner accepts. It refuses
    // frames shorter than 14 bytes and IPv4 / IPv6 frames shorter than their
    // fixed header (those are injected on a live NIC in tests/dataplane.rs);
    // it takes every cut ARP frame, down to a bare Ethernet header.
    let arp = Arp::request(b.mac(0), &b.ip4(0), "172.17.1.1").build();
    let mut obj = b.object(FastPath::Redirect);
    let mut truncated = 0;
    for (frame, upto) in [
        (&own4, ETH_HLEN + 20),
        (&own6, ETH_HLEN + 40),
        (&arp, arp.len()),
    ] {
        for cut in 1..upto {
            if let Some(r) = try_run(&mut obj, Hook::FromPod, &frame[..cut], b.ctx(0)) {
                assert_eq!(r.verdict, TC_ACT_SHOT, "cut at {cut}");
                truncated += 1;
            }
        }
    }
    assert!(truncated > 0, "the test runner took no truncated frame");
    assert_eq!(
        counts(&obj, b.pod(0).host_if.ifindex),
        BTreeMap::from([("drop_malformed", truncated)]),
        "truncated frames"
    );

    // To the stack: DHCP discover, group MACs with any destination.
    let mut dhcp = b.v4_from(0, "0.0.0.0", "255.255.255.255");
    dhcp.dst_mac = BROADCAST;
    cases.push(case(
        "DHCP discover",
        dhcp.build(),
        TC_ACT_OK,
        "pass_link_local",
    ));
    for (what, mac) in [
        ("broadcast MAC", BROADCAST),
        ("IPv4 multicast MAC", [0x01, 0x00, 0x5e, 0, 0, 1]),
        ("IPv6 multicast MAC", [0x33, 0x33, 0, 0, 0, 1]),
    ] {
        let mut f = b.v4(0, REMOTE4);
        f.dst_mac = mac;
        cases.push(case(
            format!("v4 unicast to {what}"),
            f.build(),
            TC_ACT_OK,
            "pass_multicast",
        ));
        let mut f = b.v6(0, &b.ip6(1));
        f.dst_mac = mac;
        cases.push(case(
            format!("v6 to a local pod, {what}"),
            f.build(),
            TC_ACT_OK,
            "pass_multicast",
        ));
    }
    b.check(FastPath::Peer, &cases);
}
