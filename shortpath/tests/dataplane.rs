//! The eBPF dataplane on live labs: every mode and attach kind carries all
//! traffic, takes the fast path (counters), bypasses netfilter (a counting
//! forward rule stays at zero), switches modes without losing a packet,
//! and leaves no pin behind.

mod common;

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use common::{assert_all_ok, ok, packet, root_or_skip, shortpath, stdout, TestLab};
use serde_json::Value;
use shortpath::{
    lab::netfilter::forwarded_packets,
    netns::{self, Netns},
    probe::{self, Size, UdpSequence},
};

const T: Duration = Duration::from_secs(3);
const TWO_BY_TWO: &str =
    "[[node]]\nname = \"node-a\"\npods = 2\n[[node]]\nname = \"node-b\"\npods = 2\n";

fn status(lab: &TestLab) -> Value {
    let o = ok(shortpath(&["lab", "status", "--json", "--name", &lab.name]));
    serde_json::from_str(&stdout(&o)).expect("status JSON")
}

/// Counters of the program on `ifname` in `netns`.
fn counters(v: &Value, netns: &str, ifname: &str) -> BTreeMap<String, u64> {
    let progs = v["dataplane"]["programs"].as_array().expect("programs[]");
    let p = progs
        .iter()
        .find(|p| p["netns"] == netns && p["ifname"] == ifname)
        .unwrap_or_else(|| panic!("no program on {netns}/{ifname}: {progs:?}"));
    p["counters"]
        .as_object()
        .expect("counters")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, key: &str) -> u64 {
    after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)
}

fn forwarded(rt: &tokio::runtime::Runtime, netns: &str) -> u64 {
    rt.block_on(forwarded_packets(&Netns::new(netns)))
        .expect("read the forward counter")
}

fn set_mode(lab: &TestLab, args: &[&str]) {
    let mut a = vec!["mode", "--name", &lab.name];
    a.extend(args);
    ok(shortpath(&a));
}

/// Everything a fast-path mode must show, for one mode and attach kind.
fn fast_path_suite(mode: &str, attach: &str) {
    let lab = TestLab::up_with(
        "dp",
        Some(TWO_BY_TWO),
        &["--mode", mode, "--attach", attach],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let v = status(&lab);
    assert_eq!(v["mode"], mode);
    assert_eq!(v["dataplane"]["mode"], mode);
    assert_eq!(v["dataplane"]["attach"], attach);
    let progs = v["dataplane"]["programs"].as_array().unwrap();
    assert_eq!(progs.len(), 2 + 4, "two NICs and four pod veths: {progs:?}");
    for p in progs {
        assert_eq!(p["attached"], true, "{p}");
        for key in ["netns", "ifname", "ifindex", "hook", "counters"] {
            assert!(!p[key].is_null(), "{key} missing in {p}");
        }
    }

    let plan = lab.plan();
    let (node_a, node_b) = (plan.nodes[0].netns.clone(), plan.nodes[1].netns.clone());
    let nf_before = (forwarded(&rt, &node_a), forwarded(&rt, &node_b));

    // Reachability: cross-node and same-node, both families, small and
    // full-size packets.
    let pods = lab.pod_endpoints();
    assert_all_ok(&probe::probe_all(&pods, 56, T));
    assert_all_ok(&probe::probe_all_sized(&pods, Size::Mtu(1500), T));

    // 100 MB over TCP each way, intact.
    let (a1, b1) = (&pods[0], &pods[2]);
    for (from, to, dst) in [(a1, b1, b1.ipv4.unwrap()), (b1, a1, a1.ipv6.unwrap())] {
        let t = probe::tcp_transfer(
            &from.netns,
            &to.netns,
            dst,
            100 << 20,
            Duration::from_secs(60),
        )
        .expect("transfer");
        assert!(
            t.intact(),
            "{mode}/{attach}: 100 MB to {dst} corrupted: {t:?}"
        );
    }

    // The fast path took known packets: N pings a1 → b1.
    let n = 200u64;
    let before = status(&lab);
    for _ in 0..n {
        probe::ping(&a1.netns, b1.ipv4.unwrap(), 56, T).expect("ping");
    }
    let after = status(&lab);
    let a_lxc = &plan.pods().next().unwrap().host_if;
    let b_lxc = &plan.nodes[1].pods[0].host_if;
    let helper = if mode == "peer" {
        "redirect_peer"
    } else {
        "redirect"
    };
    let d = |ns: &str, dev: &str, key: &str| {
        delta(&counters(&after, ns, dev), &counters(&before, ns, dev), key)
    };
    assert!(d(&node_a, a_lxc, "redirect") >= n, "requests out of pod a1");
    assert!(
        d(&node_b, "eth1", helper) >= n,
        "requests into pod b1 by {helper}"
    );
    assert!(d(&node_b, b_lxc, "redirect") >= n, "replies out of pod b1");
    assert!(
        d(&node_a, "eth1", helper) >= n,
        "replies into pod a1 by {helper}"
    );

    // The bypass: nothing went through the nodes' forward hooks.
    let nf_after = (forwarded(&rt, &node_a), forwarded(&rt, &node_b));
    assert_eq!(
        nf_after, nf_before,
        "{mode}: netfilter forward counter moved"
    );

    // The same pings in bridge mode go through netfilter.
    set_mode(&lab, &["bridge"]);
    for _ in 0..10 {
        probe::ping(&a1.netns, b1.ipv4.unwrap(), 56, T).expect("ping in bridge mode");
    }
    let nf_bridge = (forwarded(&rt, &node_a), forwarded(&rt, &node_b));
    let v = status(&lab);
    assert_eq!(v["dataplane"]["mode"], "bridge");
    assert!(
        v["dataplane"]["programs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["attached"] == false),
        "programs still attached in bridge mode: {v}"
    );
    assert!(
        nf_bridge.0 - nf_after.0 >= 20 && nf_bridge.1 - nf_after.1 >= 20,
        "bridge: forward counters {nf_after:?} -> {nf_bridge:?}"
    );
}

#[test]
fn redirect_mode_with_tcx() {
    root_or_skip!();
    fast_path_suite("redirect", "tcx");
}

#[test]
fn peer_mode_with_tcx() {
    root_or_skip!();
    fast_path_suite("peer", "tcx");
}

#[test]
fn redirect_mode_with_tc() {
    root_or_skip!();
    fast_path_suite("redirect", "tc");
}

#[test]
fn peer_mode_with_tc() {
    root_or_skip!();
    fast_path_suite("peer", "tc");
}

#[test]
fn mode_switches_under_a_udp_stream_lose_nothing() {
    root_or_skip!();
    let lab = TestLab::up("sw");
    let pods = lab.pod_endpoints();
    let (a, b) = (&pods[0], &pods[1]);
    // Let neighbours settle before counting.
    assert_all_ok(&probe::probe_pair(a, b, 56, T));
    let v4 = UdpSequence::start(&a.netns, &b.netns, b.ipv4.unwrap(), 2000).unwrap();
    let v6 = UdpSequence::start(&b.netns, &a.netns, a.ipv6.unwrap(), 2000).unwrap();
    let switches: &[&[&str]] = &[
        &["redirect"],
        &["peer"],
        &["bridge"],
        &["peer"],
        &["redirect"],
        &["peer", "--attach", "tc"],
        &["redirect"],
        &["bridge"],
        &["redirect", "--attach", "tc"],
        &["peer", "--attach", "tcx"],
        &["bridge"],
    ];
    for args in switches {
        std::thread::sleep(Duration::from_millis(150));
        set_mode(&lab, args);
    }
    std::thread::sleep(Duration::from_millis(150));
    for (what, s) in [("v4 a→b", v4), ("v6 b→a", v6)] {
        let r = s.stop().unwrap();
        assert!(r.sent > 1000, "{what}: stream too short: {r:?}");
        assert_eq!((r.lost, r.duplicated), (0, 0), "{what}: {r:?}");
        assert_eq!(r.received, r.sent, "{what}: {r:?}");
    }
}

#[test]
fn pins_keep_forwarding_after_the_cli_exits_and_lab_down_removes_them() {
    root_or_skip!();
    let lab = TestLab::up_with("pin", None, &["--mode", "peer"]);
    let dir = shortpath::dataplane::PinRoot::shortpath()
        .path()
        .join(&lab.name);
    for node in ["node-a", "node-b"] {
        for f in [
            "links/eth1",
            "maps/ENDPOINTS",
            "maps/COUNTERS",
            "progs/from_nic",
            "progs/from_pod",
        ] {
            assert!(dir.join(node).join(f).exists(), "{node}/{f} not pinned");
        }
    }
    // The CLI has exited; the pinned links still forward.
    let pods = lab.pod_endpoints();
    let before = status(&lab);
    probe::ping(&pods[0].netns, pods[1].ipv4.unwrap(), 56, T).unwrap();
    let after = status(&lab);
    let ns_b = &lab.plan().nodes[1].netns;
    // One echo request in: exactly one redirect into pod b.
    assert_eq!(
        delta(
            &counters(&after, ns_b, "eth1"),
            &counters(&before, ns_b, "eth1"),
            "redirect_peer"
        ),
        1
    );
    // Endpoint map = the node's pods (two addresses each).
    let map = aya::maps::MapData::from_pin(dir.join("node-a/maps/ENDPOINTS")).unwrap();
    assert_eq!(
        map.info().unwrap().map_type().unwrap(),
        aya::maps::MapType::Hash
    );
    let map = aya::maps::Map::HashMap(map);
    let eps: aya::maps::HashMap<
        _,
        shortpath_common::endpoint::EndpointKey,
        shortpath_common::endpoint::Endpoint,
    > = aya::maps::HashMap::try_from(&map).unwrap();
    let pod_a = &lab.plan().nodes[0].pods[0];
    let keys: Vec<_> = eps.keys().map(Result::unwrap).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let IpAddr::V4(a4) = pod_a.ipv4.unwrap().addr() else {
        panic!("v4 pod address")
    };
    let want = shortpath_common::endpoint::EndpointKey::v4(a4.octets());
    assert!(keys.contains(&want));

    ok(shortpath(&["lab", "down", "--name", &lab.name]));
    assert!(!dir.exists(), "pins left behind in {}", dir.display());
    // Idempotent, and the guard's own `lab down` still succeeds.
    ok(shortpath(&["lab", "down", "--name", &lab.name]));
}

/// Sends raw frames out of `ifname` in `netns` (AF_PACKET).
fn inject(netns: &str, ifname: &str, frames: Vec<Vec<u8>>) {
    let ifname = ifname.to_owned();
    netns::run_in_blocking(&Netns::new(netns), move || {
        let ifindex = nix::net::if_::if_nametoindex(ifname.as_str()).expect("device");
        // SAFETY: plain socket syscalls with valid, sized arguments.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "AF_PACKET socket");
            for f in &frames {
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = ifindex as i32;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(&f[..6]);
                let n = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&raw const sll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(
                    n,
                    f.len() as isize,
                    "sendto: {}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        }
    })
    .unwrap();
}

#[test]
fn truncated_frames_on_the_wire_go_to_the_stack() {
    root_or_skip!();
    let lab = TestLab::up_with("tr", None, &["--mode", "peer"]);
    let v = status(&lab);
    let nic_a_mac = v["nodes"][0]["nic"]["mac"].as_str().unwrap().to_owned();
    let mac: Vec<u8> = nic_a_mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let pod_a: IpAddr = v["pods"][0]["ipv4"].as_str().unwrap().parse().unwrap();
    let pod_a6: IpAddr = v["pods"][0]["ipv6"].as_str().unwrap().parse().unwrap();
    let mut v4 = packet::V4::new("172.17.2.2", &pod_a.to_string());
    v4.dst_mac = mac.clone().try_into().unwrap();
    let mut v6 = packet::V6::new("fd00:172:17:2::2", &pod_a6.to_string());
    v6.dst_mac = mac.clone().try_into().unwrap();
    let (f4, f6) = (v4.build(), v6.build());
    let mut frames = Vec::new();
    for (f, ip_len) in [(&f4, 20), (&f6, 40)] {
        for cut in packet::ETH_HLEN + 1..packet::ETH_HLEN + ip_len {
            frames.push(f[..cut].to_vec());
        }
    }
    let sent = frames.len() as u64;
    let ns_a = lab.plan().nodes[0].netns.clone();
    let before = counters(&status(&lab), &ns_a, "eth1");
    inject(&lab.plan().nodes[1].netns, "eth1", frames);
    std::thread::sleep(Duration::from_millis(100));
    let after = counters(&status(&lab), &ns_a, "eth1");
    assert_eq!(delta(&after, &before, "pass_malformed"), sent, "{after:?}");
    assert_eq!(delta(&after, &before, "redirect_peer"), 0, "{after:?}");
}
