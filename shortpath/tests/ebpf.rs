//! BPF_PROG_TEST_RUN tests of the TC programs: crafted frames in, verdict,
//! rewritten bytes and counters out. Loading them also proves the kernel
//! verifier accepts both programs in both modes.
//!
//! `from_nic` runs against maps filled here (no device needed). `from_pod`
//! needs a node namespace with real devices and routes for its FIB lookups,
//! so it runs inside a lab node.

mod common;

use std::{collections::BTreeMap, time::Duration};

use aya::programs::{TestRun, TestRunOptions};
use common::{
    packet::{self, ETH_HLEN, V4, V6},
    TestLab,
};
use shortpath::{
    dataplane::{counters, Hook, NodeSpec, TcObject},
    lab,
    netns::{Netns, NetnsGuard},
    nl::Netlink,
};
use shortpath_common::{
    endpoint::{Endpoint, EndpointKey, FLAG_STACK_ONLY},
    mode::FastPath,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

/// `struct __sk_buff` as BPF_PROG_TEST_RUN takes it (192 bytes).
#[derive(Default, Clone, Copy)]
struct SkbCtx {
    ifindex: u32,
    gso_segs: u32,
    gso_size: u32,
}

impl SkbCtx {
    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 192];
        b[40..44].copy_from_slice(&self.ifindex.to_ne_bytes());
        b[164..168].copy_from_slice(&self.gso_segs.to_ne_bytes());
        b[176..180].copy_from_slice(&self.gso_size.to_ne_bytes());
        b
    }
}

struct Run {
    verdict: u32,
    out: Vec<u8>,
}

fn run(obj: &mut TcObject, hook: Hook, frame: &[u8], ctx: SkbCtx) -> Run {
    try_run(obj, hook, frame, ctx)
        .unwrap_or_else(|| panic!("BPF_PROG_TEST_RUN refused {} bytes", frame.len()))
}

/// `None` when the kernel's test runner refuses the frame (EINVAL).
fn try_run(obj: &mut TcObject, hook: Hook, frame: &[u8], ctx: SkbCtx) -> Option<Run> {
    let prog = obj.program(hook).expect("program loads and verifies");
    let mut out = vec![0u8; frame.len() + 512];
    let ctx = ctx.bytes();
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.ctx_in = Some(&ctx);
    let r = match prog.test_run(opts) {
        Ok(r) => r,
        Err(aya::programs::ProgramError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
        {
            return None
        }
        Err(e) => panic!("BPF_PROG_TEST_RUN with {} bytes: {e}", frame.len()),
    };
    out.truncate(r.data_size_out as usize);
    Some(Run {
        verdict: r.return_value,
        out,
    })
}

fn counts(obj: &TcObject, ifindex: u32) -> BTreeMap<&'static str, u64> {
    counters::read(&obj.counters().unwrap())
        .unwrap()
        .remove(&ifindex)
        .unwrap_or_default()
}

// ---------------------------------------------------------------- from_nic

/// BPF_PROG_TEST_RUN receives on the loopback device (ifindex 1) whose MAC
/// is all-zero: frames to 00:00:00:00:00:00 are PACKET_HOST.
const LO: u32 = 1;
const POD_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x02];
const HOST_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 0x01];
const POD_IFINDEX: u32 = 42;
const POD4: &str = "172.17.1.2";
const POD6: &str = "fd00:172:17:1::2";
const REMOTE4: &str = "172.17.2.2";
const REMOTE6: &str = "fd00:172:17:2::2";

fn nic_object(mode: FastPath) -> TcObject {
    common::require_root();
    let mut obj = TcObject::load(mode, None).expect("load object");
    let ep = Endpoint {
        ifindex: POD_IFINDEX,
        mtu: 1500,
        flags: 0,
        pod_mac: POD_MAC,
        host_mac: HOST_MAC,
    };
    let mut map = obj.endpoints().unwrap();
    map.insert(EndpointKey::v4([172, 17, 1, 2]), ep, 0).unwrap();
    let v6: std::net::Ipv6Addr = POD6.parse().unwrap();
    map.insert(EndpointKey::v6(v6.octets()), ep, 0).unwrap();
    let stack_only = Endpoint {
        flags: FLAG_STACK_ONLY,
        ..ep
    };
    map.insert(EndpointKey::v4([172, 17, 1, 9]), stack_only, 0)
        .unwrap();
    let small = Endpoint { mtu: 100, ..ep };
    map.insert(EndpointKey::v4([172, 17, 1, 10]), small, 0)
        .unwrap();
    obj
}

fn nic(obj: &mut TcObject, frame: &[u8]) -> Run {
    run(obj, Hook::FromNic, frame, SkbCtx::default())
}

/// The frame went to the stack exactly as it came.
#[track_caller]
fn assert_passed_unchanged(r: &Run, frame: &[u8]) {
    assert_eq!(r.verdict, TC_ACT_OK, "verdict");
    assert_eq!(r.out, frame, "a passed frame must not be modified");
}

#[track_caller]
fn assert_routed_rewrite(r: &Run, frame: &[u8], dst: [u8; 6], src: [u8; 6], ttl_at: usize) {
    assert_eq!(r.out.len(), frame.len());
    assert_eq!(r.out[0..6], dst, "destination MAC");
    assert_eq!(r.out[6..12], src, "source MAC");
    assert_eq!(r.out[ttl_at], frame[ttl_at] - 1, "TTL / hop limit − 1");
    if frame[12..14] == [0x08, 0x00] {
        assert!(packet::ipv4_header_valid(&r.out), "IPv4 header checksum");
        // Only TTL and checksum changed in the IP header.
        let ip = ETH_HLEN..ETH_HLEN + 20;
        let diff: Vec<usize> = ip
            .clone()
            .filter(|&i| r.out[i] != frame[i])
            .map(|i| i - ETH_HLEN)
            .collect();
        assert!(diff.iter().all(|i| [8, 10, 11].contains(i)), "{diff:?}");
    }
    // Addresses and payload: after the IPv4 checksum / IPv6 hop limit.
    let rest = if frame[12..14] == [0x08, 0x00] {
        ETH_HLEN + 12
    } else {
        ttl_at + 1
    };
    assert_eq!(
        r.out[rest..],
        frame[rest..],
        "addresses and payload untouched"
    );
}

#[test]
fn from_nic_redirects_a_local_pod_over_ipv4_and_ipv6() {
    let mut obj = nic_object(FastPath::Redirect);
    let f4 = V4::new(REMOTE4, POD4).build();
    let r = nic(&mut obj, &f4);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_routed_rewrite(&r, &f4, POD_MAC, HOST_MAC, ETH_HLEN + 8);

    let f6 = V6::new(REMOTE6, POD6).build();
    let r = nic(&mut obj, &f6);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
    assert_routed_rewrite(&r, &f6, POD_MAC, HOST_MAC, ETH_HLEN + 7);

    assert_eq!(counts(&obj, LO).get("redirect"), Some(&2));
}

#[test]
fn from_nic_peer_mode_redirects_into_the_pod() {
    let mut obj = nic_object(FastPath::Peer);
    for frame in [
        V4::new(REMOTE4, POD4).build(),
        V6::new(REMOTE6, POD6).build(),
    ] {
        let r = nic(&mut obj, &frame);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
        assert_eq!(r.out[0..6], POD_MAC);
    }
    let c = counts(&obj, LO);
    assert_eq!(c.get("redirect_peer"), Some(&2), "{c:?}");
    assert_eq!(c.get("redirect"), None, "{c:?}");
}

#[test]
fn from_nic_ttl_rewrite_keeps_the_checksum_valid_for_every_ttl() {
    let mut obj = nic_object(FastPath::Redirect);
    for ttl in [2u8, 3, 64, 128, 255] {
        let mut p = V4::new(REMOTE4, POD4);
        p.ttl = ttl;
        let f = p.build();
        let r = nic(&mut obj, &f);
        assert_eq!(r.verdict, TC_ACT_REDIRECT, "ttl {ttl}");
        assert_routed_rewrite(&r, &f, POD_MAC, HOST_MAC, ETH_HLEN + 8);
    }
}

#[test]
fn from_nic_hands_everything_else_to_the_stack_unchanged() {
    let mut obj = nic_object(FastPath::Peer);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown v4",
            V4::new(REMOTE4, "172.17.1.77").build(),
            "pass_no_endpoint",
        ),
        (
            "unknown v6",
            V6::new(REMOTE6, "fd00:172:17:1::77").build(),
            "pass_no_endpoint",
        ),
        // Broadcast: not addressed to this host.
        ("arp request", packet::arp(), "pass_not_for_host"),
        (
            "stack only",
            V4::new(REMOTE4, "172.17.1.9").build(),
            "pass_stack_only",
        ),
    ];
    let mut lldp = V4::new(REMOTE4, POD4).build();
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    cases.push(("lldp", lldp, "pass_not_ip"));
    let mut vlan = V4::new(REMOTE4, POD4).build();
    vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    cases.push(("vlan", vlan, "pass_not_ip"));

    let mut opts = V4::new(REMOTE4, POD4);
    opts.options = 8;
    cases.push(("ip options", opts.build(), "pass_ip_options"));
    for (what, frag_off) in [("first fragment", 0x2000u16), ("later fragment", 0x00b9)] {
        let mut p = V4::new(REMOTE4, POD4);
        p.frag_off = frag_off;
        cases.push((what, p.build(), "pass_fragment"));
    }
    let mut df = V4::new(REMOTE4, POD4);
    df.frag_off = 0x4000; // DF alone is not a fragment: forwarded
    let df = df.build();
    for ttl in [0u8, 1] {
        let mut p = V4::new(REMOTE4, POD4);
        p.ttl = ttl;
        cases.push(("ttl", p.build(), "pass_ttl_expired"));
        let mut p = V6::new(REMOTE6, POD6);
        p.hop_limit = ttl;
        cases.push(("hop limit", p.build(), "pass_ttl_expired"));
    }
    for (what, nh, reason) in [
        ("v6 fragment", 44u8, "pass_fragment"),
        ("v6 hop-by-hop", 0, "pass_ipv6_ext_header"),
        ("v6 routing", 43, "pass_ipv6_ext_header"),
        ("v6 dest opts", 60, "pass_ipv6_ext_header"),
    ] {
        let mut p = V6::new(REMOTE6, POD6);
        p.next_header = nh;
        cases.push((what, p.build(), reason));
    }
    let mut other = V4::new(REMOTE4, POD4);
    other.dst_mac = [0x02, 0x99, 0, 0, 0, 1];
    cases.push(("other host's MAC", other.build(), "pass_not_for_host"));
    let mut bad_version = V4::new(REMOTE4, POD4).build();
    bad_version[ETH_HLEN] = 0x55;
    cases.push(("IP version 5", bad_version, "pass_malformed"));
    let mut short_ihl = V4::new(REMOTE4, POD4).build();
    short_ihl[ETH_HLEN] = 0x44;
    cases.push(("ihl 4", short_ihl, "pass_malformed"));
    let mut big = V4::new(REMOTE4, "172.17.1.10");
    big.payload = 200; // endpoint MTU is 100
    cases.push(("over pod MTU", big.build(), "pass_mtu"));

    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for (what, frame, reason) in &cases {
        let r = nic(&mut obj, frame);
        assert_eq!(r.verdict, TC_ACT_OK, "{what}");
        assert_eq!(&r.out, frame, "{what}: frame modified");
        *expected.entry(reason).or_default() += 1;
    }
    let r = nic(&mut obj, &df);
    assert_eq!(r.verdict, TC_ACT_REDIRECT, "DF set");
    *expected.entry("redirect_peer").or_default() += 1;
    assert_eq!(counts(&obj, LO), expected);
}

#[test]
fn from_nic_truncated_frames_at_every_header_boundary_go_to_the_stack() {
    let mut obj = nic_object(FastPath::Redirect);
    let f4 = V4::new(REMOTE4, POD4).build();
    let f6 = V6::new(REMOTE6, POD6).build();
    // This kernel's test runner itself refuses (EINVAL) a frame shorter
    // than the L3 header its EtherType announces; such frames are injected
    // on a live NIC instead (tests/dataplane.rs). Every cut it accepts must
    // go to the stack untouched.
    let mut malformed = 0;
    for (frame, ip_len) in [(&f4, 20), (&f6, 40)] {
        for cut in ETH_HLEN + 1..ETH_HLEN + ip_len {
            if let Some(r) = try_run(&mut obj, Hook::FromNic, &frame[..cut], SkbCtx::default()) {
                assert_passed_unchanged(&r, &frame[..cut]);
                malformed += 1;
            }
        }
    }
    // Headers claiming less than they are.
    let mut short = f4.clone();
    short[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&19u16.to_be_bytes());
    let r = nic(&mut obj, &short);
    assert_passed_unchanged(&r, &short);
    malformed += 1;
    let c = counts(&obj, LO);
    assert_eq!(c.get("pass_malformed"), Some(&malformed), "{c:?}");
    assert_eq!(c.len(), 1, "{c:?}");
    // The smallest complete headers are forwarded (L4 is not our business).
    for (frame, ip_len) in [(&f4, 20), (&f6, 40)] {
        let r = nic(&mut obj, &frame[..ETH_HLEN + ip_len]);
        assert_eq!(r.verdict, TC_ACT_REDIRECT);
    }
}

#[test]
fn from_nic_gso_packets_are_not_held_to_the_pod_mtu() {
    let mut obj = nic_object(FastPath::Peer);
    let mut big = V4::new(REMOTE4, "172.17.1.10");
    big.payload = 200;
    let frame = big.build();
    let gso = SkbCtx {
        gso_size: 64,
        gso_segs: 4,
        ..Default::default()
    };
    let r = run(&mut obj, Hook::FromNic, &frame, gso);
    assert_eq!(r.verdict, TC_ACT_REDIRECT);
}

// ---------------------------------------------------------------- from_pod

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
    fn object(&self, mode: FastPath) -> TcObject {
        let mut obj = TcObject::load(mode, None).expect("load");
        assert_eq!(obj.sync_endpoints(&self.spec).unwrap(), (4, 0));
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
        f.dst_mac = self.inv.node("node-a").unwrap().bridge.mac.0;
        f
    }
}

fn enter(netns: &str) -> NetnsGuard {
    NetnsGuard::enter(&Netns::new(netns)).expect("enter node namespace")
}

#[test]
fn from_pod_drops_spoofed_sources_and_counts_them() {
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
    assert_eq!(c.get("drop_spoofed"), Some(&(spoofs.len() as u64)), "{c:?}");
}

#[test]
fn from_pod_same_node_pod_gets_it_directly() {
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
        assert_eq!(c.get(reason), Some(&3), "{c:?}");
    }
}

#[test]
fn from_pod_routes_with_the_fib() {
    let lab = TestLab::up_with("ebf", Some(TWO_PODS), &[]);
    let b = pod_bench(&lab);
    let node_a = b.inv.node("node-a").unwrap().clone();
    let node_b = b.inv.node("node-b").unwrap().clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A route whose gateway never answers: the neighbour stays unresolved.
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
    let mut obj = b.object(FastPath::Peer);
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

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "no route",
            b.v4(0, "10.200.0.1").build(),
            "pass_fib_not_forwarded",
        ),
        (
            "the node itself",
            b.v4(0, "192.168.1.1").build(),
            "pass_fib_not_forwarded",
        ),
        (
            "multicast",
            b.v4(0, "224.0.0.251").build(),
            "pass_multicast",
        ),
        (
            "v6 multicast",
            b.v6(0, "ff02::fb").build(),
            "pass_multicast",
        ),
        ("ARP", packet::arp(), "pass_not_ip"),
    ];
    let mut ll = V6::new("fe80::1", "ff02::2");
    ll.src_mac = b.pod(0).mac.0;
    cases.push(("link-local source", ll.build(), "pass_link_local"));
    let mut ttl = b.v4(0, &remote.ipv4.unwrap().to_string());
    ttl.ttl = 1;
    cases.push(("ttl 1", ttl.build(), "pass_ttl_expired"));
    let mut big = b.v4(0, &remote.ipv4.unwrap().to_string());
    big.payload = 1600;
    cases.push(("over egress MTU", big.build(), "pass_fib_frag_needed"));
    for (what, f, reason) in &cases {
        let r = run(&mut obj, Hook::FromPod, f, b.ctx(0));
        assert_eq!(r.verdict, TC_ACT_OK, "{what}");
        assert_eq!(&r.out, f, "{what}: modified");
        let c = counts(&obj, lxc);
        assert!(c.get(reason).is_some_and(|n| *n >= 1), "{what}: {c:?}");
    }
    let c = counts(&obj, lxc);
    assert_eq!(c.get("redirect_neigh"), Some(&1), "{c:?}");
    assert_eq!(c.get("redirect"), Some(&1), "{c:?}");
}
