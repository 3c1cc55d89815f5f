//! The eBPF dataplane on live labs: every mode and attach kind carries all
//! traffic, takes the fast path (counters), bypasses netfilter (a counting
//! forward rule stays at zero), switches modes without losing a packet,
//! and leaves no pin behind.

mod common;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

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
    let v = lab.status();
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
    let before = lab.status();
    for _ in 0..n {
        probe::ping(&a1.netns, b1.ipv4.unwrap(), 56, T).expect("ping");
    }
    let after = lab.status();
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
    // Out of a pod towards the other node: from the next-hop cache (the
    // lab resolves the gateways before a fast mode), or the FIB.
    let out = |ns: &str, dev: &str| d(ns, dev, "redirect_cached") + d(ns, dev, "redirect");
    assert!(out(&node_a, a_lxc) >= n, "requests out of pod a1");
    assert!(
        d(&node_b, "eth1", helper) >= n,
        "requests into pod b1 by {helper}"
    );
    assert!(out(&node_b, b_lxc) >= n, "replies out of pod b1");
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
    let v = lab.status();
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
    let dir = lab.pin_dir();
    for node in ["node-a", "node-b"] {
        for f in [
            "links/eth1",
            "maps/ENDPOINTS_V4",
            "maps/ENDPOINTS_V6",
            "maps/ENDPOINTS_GEN",
            "maps/COUNTERS",
            "maps/POD_CIDRS",
            "maps/STACK_FLOWS",
            "progs/from_nic",
            "progs/from_pod",
        ] {
            assert!(dir.join(node).join(f).exists(), "{node}/{f} not pinned");
        }
    }
    // The CLI has exited; the pinned links still forward.
    let pods = lab.pod_endpoints();
    let before = lab.status();
    probe::ping(&pods[0].netns, pods[1].ipv4.unwrap(), 56, T).unwrap();
    let after = lab.status();
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
    // Endpoint maps = the node's pods (two addresses each), one hash map
    // per family keyed by the bare address.
    let pinned = |name: &str| {
        let map = aya::maps::MapData::from_pin(dir.join("node-a/maps").join(name)).unwrap();
        assert_eq!(
            map.info().unwrap().map_type().unwrap(),
            aya::maps::MapType::Hash,
            "{name}"
        );
        aya::maps::Map::HashMap(map)
    };
    let (v4, v6) = (pinned("ENDPOINTS_V4"), pinned("ENDPOINTS_V6"));
    let v4: aya::maps::HashMap<_, [u8; 4], shortpath_common::endpoint::Endpoint> =
        aya::maps::HashMap::try_from(&v4).unwrap();
    let v6: aya::maps::HashMap<_, [u8; 16], shortpath_common::endpoint::Endpoint> =
        aya::maps::HashMap::try_from(&v6).unwrap();
    let pod_a = &lab.plan().nodes[0].pods[0];
    let addr = |a: Option<ipnet::IpNet>| a.expect("pod address").addr();
    let IpAddr::V4(a4) = addr(pod_a.ipv4) else {
        panic!("v4 pod address")
    };
    let IpAddr::V6(a6) = addr(pod_a.ipv6) else {
        panic!("v6 pod address")
    };
    let keys4: Vec<_> = v4.keys().map(Result::unwrap).collect();
    let keys6: Vec<_> = v6.keys().map(Result::unwrap).collect();
    assert_eq!(keys4, [a4.octets()]);
    assert_eq!(keys6, [a6.octets()]);
    // Pod CIDRs = every node's pod networks, both families.
    assert_eq!(pod_cidrs(&dir.join("node-a")), LAB_CIDRS);

    ok(shortpath(&["lab", "down", "--name", &lab.name]));
    assert!(!dir.exists(), "pins left behind in {}", dir.display());
    // Idempotent, and the guard's own `lab down` still succeeds.
    ok(shortpath(&["lab", "down", "--name", &lab.name]));
}

/// A node pinned by a shortpath from before the per-family endpoint maps
/// has its single `ENDPOINTS` map (20-byte keys), which that version's
/// programs read while attached: the CNI plugin's fallback DEL removes a
/// pod's addresses from it too, and the first apply of this version
/// unpins it once its own programs are attached.
#[test]
fn the_endpoint_map_of_an_older_version_is_kept_clean_then_unpinned() {
    root_or_skip!();
    let lab = TestLab::up_with("leg", None, &["--mode", "peer"]);
    let maps = lab.pin_dir().join("node-a/maps");
    let legacy = maps.join("ENDPOINTS");
    let o = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&legacy)
        .args(["type", "hash", "key", "20", "value", "24", "entries", "16"])
        .args(["name", "ENDPOINTS"])
        .output()
        .expect("bpftool");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pod_a = &lab.plan().nodes[0].pods[0];
    let IpAddr::V4(a4) = pod_a.ipv4.expect("v4").addr() else {
        panic!("v4 pod address")
    };
    let key = shortpath_common::endpoint::EndpointKey::v4(a4.octets());
    let open = || {
        let md = aya::maps::MapData::from_pin(&legacy).expect("legacy pin");
        let m: aya::maps::HashMap<
            _,
            shortpath_common::endpoint::EndpointKey,
            shortpath_common::endpoint::Endpoint,
        > = aya::maps::HashMap::try_from(aya::maps::Map::HashMap(md)).unwrap();
        m
    };
    open()
        .insert(key, shortpath_common::endpoint::Endpoint::default(), 0)
        .unwrap();

    let node: shortpath::dataplane::NodeName = "node-a".parse().unwrap();
    let root = shortpath::dataplane::PinRoot::shortpath()
        .join(&lab.name)
        .unwrap();
    let removed =
        shortpath::dataplane::remove_pinned_addresses(&root, &node, &[IpAddr::V4(a4)]).unwrap();
    assert_eq!(removed, 2, "from the legacy map and from ENDPOINTS_V4");
    assert!(open().get(&key, 0).is_err(), "gone from the legacy map");

    set_mode(&lab, &["redirect"]);
    assert!(!legacy.exists(), "unpinned by the apply");
    assert!(maps.join("ENDPOINTS_V4").exists());
}

const LAB_CIDRS: [&str; 4] = [
    "172.17.1.0/24",
    "172.17.2.0/24",
    "fd00:172:17:1::/64",
    "fd00:172:17:2::/64",
];

/// The pod CIDRs pinned for the node whose pin directory is `node_dir`.
fn pod_cidrs(node_dir: &std::path::Path) -> Vec<String> {
    let md = aya::maps::MapData::from_pin(node_dir.join("maps/POD_CIDRS")).unwrap();
    let map = shortpath::dataplane::PodCidrMap::try_from(aya::maps::Map::LpmTrie(md)).unwrap();
    shortpath::dataplane::read_pod_cidrs(&map)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The node API keeps the pod CIDRs: `Node::open` writes its own set
/// (pods outside it still reach each other, through the stack), and
/// `set_cluster_cidrs` changes it in the kernel at once; `lab mode`
/// (apply) writes the lab's set again.
#[test]
fn node_writes_and_reads_back_the_cluster_cidrs() {
    root_or_skip!();
    let lab = TestLab::up_with("cc", None, &["--mode", "peer"]);
    let plan = lab.plan();
    let node_a = &plan.nodes[0];
    let dir = lab.pin_dir().join("node-a");
    assert_eq!(pod_cidrs(&dir), LAB_CIDRS);
    let nic_ifindex = netns::run_in_blocking(&Netns::new(&node_a.netns), || {
        nix::net::if_::if_nametoindex("eth1").unwrap()
    })
    .unwrap();
    let only_own: Vec<ipnet::IpNet> = vec![
        node_a.pod_ipv4.unwrap().into(),
        node_a.pod_ipv6.unwrap().into(),
    ];
    let mut node = shortpath::dataplane::Node::open(
        shortpath::lab::pin_root(&lab.name.parse().unwrap()),
        "node-a".parse().unwrap(),
        node_a.netns.clone(),
        shortpath::dataplane::Port {
            ifname: "eth1".into(),
            ifindex: nic_ifindex,
        },
        only_own.clone(),
    )
    .unwrap();
    let strings = |v: &[ipnet::IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(strings(&node.cluster_cidrs().unwrap()), strings(&only_own));

    // node-b's pod is outside node-a's set now: pod-a reaches it through
    // the stack, counted as such.
    let pods = lab.pod_endpoints();
    let lxc = &node_a.pods[0].host_if;
    let before = counters(&lab.status(), &node_a.netns, lxc);
    assert_all_ok(&probe::probe_pair(&pods[0], &pods[1], 56, T));
    let after = counters(&lab.status(), &node_a.netns, lxc);
    assert!(
        delta(&after, &before, "pass_not_pod_cidr") >= 2,
        "{after:?}"
    );
    assert_eq!(delta(&after, &before, "redirect"), 0, "{after:?}");
    assert_eq!(
        delta(&after, &before, "redirect_cached"),
        0,
        "a route cached before the CIDRs shrank: {after:?}"
    );

    let all: Vec<ipnet::IpNet> = LAB_CIDRS.iter().map(|c| c.parse().unwrap()).collect();
    node.set_cluster_cidrs(&all).unwrap();
    assert_eq!(strings(&node.cluster_cidrs().unwrap()), LAB_CIDRS);
    let before = after;
    assert_all_ok(&probe::probe_pair(&pods[0], &pods[1], 56, T));
    let after = counters(&lab.status(), &node_a.netns, lxc);
    assert_eq!(delta(&after, &before, "pass_not_pod_cidr"), 0, "{after:?}");
    assert!(delta(&after, &before, "redirect") >= 2, "{after:?}");

    node.set_cluster_cidrs(&[]).unwrap();
    assert_eq!(node.cluster_cidrs().unwrap(), []);
    set_mode(&lab, &["redirect"]);
    assert_eq!(pod_cidrs(&dir), LAB_CIDRS, "apply writes the lab's set");
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
    let v = lab.status();
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
    let before = counters(&lab.status(), &ns_a, "eth1");
    inject(&lab.plan().nodes[1].netns, "eth1", frames);
    std::thread::sleep(Duration::from_millis(100));
    let after = counters(&lab.status(), &ns_a, "eth1");
    assert_eq!(delta(&after, &before, "pass_malformed"), sent, "{after:?}");
    assert_eq!(delta(&after, &before, "redirect_peer"), 0, "{after:?}");
}

/// Service IPs and port as kube-proxy would have them: DNATed by the
/// client's node to a backend pod — of the other node for the first pair,
/// of the client's own node for the second.
const SERVICE_PORT: u16 = 8080;
const SERVICE4: &str = "10.96.0.10";
const SERVICE6: &str = "fd00:96::10";
const LOCAL_SERVICE4: &str = "10.96.0.11";
const LOCAL_SERVICE6: &str = "fd00:96::11";
/// The client and a local backend on node-a, a remote backend on node-b.
const SERVICE_LAB: &str =
    "[[node]]\nname = \"node-a\"\npods = 2\n[[node]]\nname = \"node-b\"\npods = 1\n";

/// A UDP echo server bound to `addr` in `ns`: answers every datagram with
/// its payload, and returns the sources it saw once stopped.
fn udp_backend(ns: &Netns, addr: IpAddr) -> netns::PortServer<Vec<SocketAddr>> {
    netns::PortServer::start(ns, T, move |port, stop| {
        let s = UdpSocket::bind(SocketAddr::new(addr, 0)).expect("backend bind");
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        port.send(s.local_addr().unwrap().port());
        let mut seen = Vec::new();
        let mut buf = [0u8; 1500];
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            if let Ok((n, peer)) = s.recv_from(&mut buf) {
                seen.push(peer);
                let _ = s.send_to(&buf[..n], peer);
            }
        }
        seen
    })
    .unwrap_or_else(|e| panic!("backend in {ns}: {e}"))
}

/// Sends one datagram from `ns` to `to` and waits for the echo (three
/// tries of a second: the first one may wait for neighbours); returns
/// where the answer came from.
fn udp_ask(ns: &Netns, to: SocketAddr) -> Result<SocketAddr, String> {
    let th = netns::spawn_in(ns, move || -> Result<SocketAddr, String> {
        let any: SocketAddr = if to.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
            .parse()
            .unwrap();
        let s = UdpSocket::bind(any).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let msg = format!("hello {to}");
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            s.send_to(msg.as_bytes(), to).map_err(|e| e.to_string())?;
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                if &buf[..n] == msg.as_bytes() {
                    return Ok(from);
                }
            }
        }
        Err(format!("no answer from {to} within 3 s"))
    })
    .unwrap();
    netns::join_thread(th).expect("client thread")
}

/// A TCP echo server bound to `addr` in `ns`: echoes each connection
/// until the client closes it, and returns the peers it accepted once
/// stopped.
fn tcp_backend(ns: &Netns, addr: IpAddr) -> netns::PortServer<Vec<SocketAddr>> {
    netns::PortServer::start(ns, T, move |port, stop| {
        let l = TcpListener::bind(SocketAddr::new(addr, 0)).expect("backend bind");
        l.set_nonblocking(true).unwrap();
        port.send(l.local_addr().unwrap().port());
        let mut seen = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let Ok((mut c, peer)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            seen.push(peer);
            c.set_nonblocking(false).unwrap();
            c.set_read_timeout(Some(T)).unwrap();
            let mut buf = [0u8; 1500];
            while let Ok(n @ 1..) = c.read(&mut buf) {
                if c.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
        seen
    })
    .unwrap_or_else(|e| panic!("backend in {ns}: {e}"))
}

/// Connects from `ns` to `to` (3 s), sends a line and reads its echo back.
fn tcp_ask(ns: &Netns, to: SocketAddr) -> Result<(), String> {
    let th = netns::spawn_in(ns, move || -> Result<(), String> {
        let mut s = TcpStream::connect_timeout(&to, T).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(T)).unwrap();
        let msg = format!("hello {to}");
        s.write_all(msg.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).map_err(|e| format!("echo: {e}"))?;
        if buf != msg.as_bytes() {
            return Err(format!("echo differs: {:?}", String::from_utf8_lossy(&buf)));
        }
        Ok(())
    })
    .unwrap();
    netns::join_thread(th).expect("client thread")
}

/// One Service of the test: its IP, the backend pod's address and echo
/// servers, the client's address.
struct Service {
    ip: IpAddr,
    place: &'static str,
    backend: IpAddr,
    client: IpAddr,
    udp: netns::PortServer<Vec<SocketAddr>>,
    tcp: netns::PortServer<Vec<SocketAddr>>,
}

/// A pod → Service flow through the node's netfilter: node-a DNATs
/// 10.96.0.10:8080 (and a v6 Service IP) to a pod of node-b and
/// 10.96.0.11:8080 (and a v6 one) to a pod of node-a, UDP and TCP, as
/// kube-proxy does, and routes the Service range out of its NIC, as a real
/// node's default route would. `from_pod` hands the requests to the stack
/// (the FIB would have sent them, un-DNATed, to node-b, which has no route
/// for them) and remembers them; the backends' replies — pod → pod packets
/// — are handed to node-a's stack too (`from_nic` for node-b's backend,
/// `from_pod`'s local delivery for node-a's), whose conntrack turns their
/// source back into the Service IP: the TCP connections complete and the
/// UDP answers come from the Service address, in peer, redirect and bridge
/// mode.
#[test]
fn pod_to_service_goes_through_the_nodes_dnat() {
    root_or_skip!();
    let lab = TestLab::up_with("svc", Some(SERVICE_LAB), &["--mode", "peer"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plan = lab.plan();
    let (node_a, node_b) = (&plan.nodes[0], &plan.nodes[1]);
    let (client, local, remote) = (&node_a.pods[0], &node_a.pods[1], &node_b.pods[0]);
    let client_ns = Netns::new(&client.netns);
    let mut services = Vec::new();
    for (pod, [v4, v6], place) in [
        (remote, [SERVICE4, SERVICE6], "node-b"),
        (local, [LOCAL_SERVICE4, LOCAL_SERVICE6], "node-a"),
    ] {
        let ns = Netns::new(&pod.netns);
        for (ip, backend, client) in [
            (v4, pod.ipv4.unwrap().addr(), client.ipv4.unwrap().addr()),
            (v6, pod.ipv6.unwrap().addr(), client.ipv6.unwrap().addr()),
        ] {
            services.push(Service {
                ip: ip.parse().unwrap(),
                place,
                backend,
                client,
                udp: udp_backend(&ns, backend),
                tcp: tcp_backend(&ns, backend),
            });
        }
    }
    let mut rules = String::new();
    for s in &services {
        let (fam, to) = match s.backend {
            IpAddr::V4(b) => ("ip", b.to_string()),
            IpAddr::V6(b) => ("ip6", format!("[{b}]")),
        };
        for (proto, port) in [("udp", s.udp.port()), ("tcp", s.tcp.port())] {
            rules += &format!(
                "\t\t{fam} daddr {} {proto} dport {SERVICE_PORT} dnat {fam} to {to}:{port}\n",
                s.ip
            );
        }
    }
    let ruleset = format!(
        "table inet sp_services {{
\tchain prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
{rules}\t}}
}}
"
    );
    let ns_a = Netns::new(&node_a.netns);
    rt.block_on(async {
        shortpath::lab::netfilter::apply(&ns_a, &ruleset)
            .await
            .expect("DNAT rules");
        let nl = shortpath::nl::Netlink::connect(&ns_a).await.unwrap();
        let (via4, via6) = (
            node_b.nic_ipv4.unwrap().addr(),
            node_b.nic_ipv6.unwrap().addr(),
        );
        nl.add_route("10.96.0.0/12".parse().unwrap(), via4)
            .await
            .unwrap();
        nl.add_route("fd00:96::/108".parse().unwrap(), via6)
            .await
            .unwrap();
    });
    // Pod to pod first: neighbours resolved, so the FIB would forward the
    // Service IPs at once.
    assert_all_ok(&probe::probe_all(&lab.pod_endpoints(), 56, T));

    for mode in ["peer", "redirect", "bridge"] {
        if mode != "peer" {
            set_mode(&lab, &[mode]);
        }
        let before = lab.status();
        let nf_before = forwarded(&rt, &node_a.netns);
        let mut wrong = Vec::new();
        for s in &services {
            let to = SocketAddr::new(s.ip, SERVICE_PORT);
            let what = format!("{mode}: {to} (backend {} on {})", s.backend, s.place);
            match udp_ask(&client_ns, to) {
                Ok(from) if from == to => {}
                Ok(from) => wrong.push(format!(
                    "{what}: UDP answer from {from}, not the Service (no reverse NAT)"
                )),
                Err(e) => wrong.push(format!("{what}: UDP: {e}")),
            }
            if let Err(e) = tcp_ask(&client_ns, to) {
                wrong.push(format!("{what}: TCP: {e}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        if mode == "bridge" {
            continue;
        }
        let after = lab.status();
        let d = |dev: &str, key: &str| {
            delta(
                &counters(&after, &node_a.netns, dev),
                &counters(&before, &node_a.netns, dev),
                key,
            )
        };
        // Per Service at least one datagram and a SYN, an ACK with data,
        // a FIN (and so on) each way.
        let n = services.len() as u64;
        assert!(
            d(&client.host_if, "pass_not_pod_cidr") >= 4 * n,
            "{mode}: requests to the stack: {after}"
        );
        assert!(
            d("eth1", "pass_stack_flow") >= 2 * 3,
            "{mode}: node-b's replies to node-a's stack: {after}"
        );
        assert!(
            d(&local.host_if, "pass_stack_flow") >= 2 * 3,
            "{mode}: the local backend's replies to the stack: {after}"
        );
        assert!(
            forwarded(&rt, &node_a.netns) - nf_before >= 2 * n,
            "{mode}: the flows crossed node-a's forward hook"
        );
    }
    // The flows the fast modes remembered, in node-a's pinned map (shared
    // by both generations): one per client socket, UDP and TCP, in two
    // modes; none on node-b, whose pods sent nothing to the stack.
    let pins = lab.pin_dir();
    let flows = |node: &str| {
        let md = aya::maps::MapData::from_pin(pins.join(node).join("maps/STACK_FLOWS")).unwrap();
        let map =
            shortpath::dataplane::StackFlowMap::try_from(aya::maps::Map::LruHashMap(md)).unwrap();
        shortpath::dataplane::read_stack_flows(&map).unwrap()
    };
    let remembered = flows("node-a");
    assert_eq!(remembered.len(), 2 * 2 * services.len(), "{remembered:?}");
    assert!(
        remembered.iter().all(|f| services
            .iter()
            .any(|s| s.client == f.addr && [6, 17].contains(&f.protocol))),
        "{remembered:?}"
    );
    assert_eq!(flows("node-b"), []);
    // The backends saw the client itself (no masquerade inside the
    // cluster), in every mode.
    for s in services {
        for (proto, seen) in [("udp", s.udp.finish()), ("tcp", s.tcp.finish())] {
            let seen = seen.expect("backend thread");
            assert!(seen.len() >= 3, "{} {proto}: {seen:?}", s.ip);
            assert!(
                seen.iter().all(|p| p.ip() == s.client),
                "{} {proto}: {seen:?}",
                s.ip
            );
        }
    }
}

/// Restores `kernel.bpf_stats_enabled` when dropped.
struct BpfStats(String);

impl BpfStats {
    fn set(v: &str) -> Self {
        let old = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap();
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", v).unwrap();
        Self(old.trim().to_owned())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.0);
    }
}

/// `lab status` shows each port's program's nanoseconds per packet from
/// the kernel's bpf_stats, and they move only while the sysctl is on.
#[test]
fn status_shows_ns_per_packet_while_bpf_stats_is_on() {
    root_or_skip!();
    let lab = TestLab::up_with("ns", None, &["--mode", "peer"]);
    let pods = lab.pod_endpoints();
    let (a, b) = (&pods[0], &pods[1]);
    let nic_b = |v: &Value| {
        v["dataplane"]["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["hook"] == "from_nic" && p["netns"] == format!("{}-node-b", lab.name))
            .unwrap()["run"]
            .clone()
    };
    let stream = |n: u32| {
        let s = UdpSequence::start(&a.netns, &b.netns, b.ipv4.unwrap(), n).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        s.stop().unwrap()
    };
    let off = BpfStats::set("0");
    let before = nic_b(&lab.status());
    stream(1000);
    let after = nic_b(&lab.status());
    assert_eq!(
        before["run_count"], after["run_count"],
        "counted with bpf_stats off"
    );
    drop(off);
    let _on = BpfStats::set("1");
    let r = stream(1000);
    let run = nic_b(&lab.status());
    let runs = run["run_count"].as_u64().unwrap() - after["run_count"].as_u64().unwrap();
    assert!(
        runs >= r.received,
        "{runs} runs counted for {} packets: {run}",
        r.received
    );
    let ns = run["ns_per_packet"].as_f64().unwrap();
    assert!(ns > 1.0 && ns < 100_000.0, "{ns} ns per packet");
    let text = stdout(&ok(shortpath(&["lab", "status", "--name", &lab.name])));
    assert!(text.contains("NS/PKT"), "{text}");
}
