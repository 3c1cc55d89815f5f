//! The next-hop cache under the agent (`lab up --agent`): `from_pod`
//! forwards to the other node's pods from the cache (`redirect_cached`),
//! and when the gateway's MAC changes in the middle of a stream the agent
//! rewrites the entry from the netlink event: nothing sent after the entry
//! changed is lost. The figures (event → entry, loss window) are printed.
//! An unannounced change reaches the cache too, through the managed
//! neighbour entry the agent has the kernel keep for the gateway.

mod common;

use std::{
    net::IpAddr,
    process::Command,
    time::{Duration, Instant},
};

use aya::maps::{Map, MapData};
use common::{assert_all_ok, root_or_skip, TestLab};
use shortpath::{
    dataplane::next_hops::{self, NextHopEntry, NextHopMap},
    probe::{self, UdpSequence},
};

const T: Duration = Duration::from_secs(3);
const NEW_MAC: &str = "02:5a:00:00:00:42";
const PPS: u32 = 2000;

fn entries(lab: &TestLab, node: &str) -> Vec<NextHopEntry> {
    let path = format!("/sys/fs/bpf/shortpath/{}/{node}/maps/NEXT_HOPS", lab.name);
    let md = MapData::from_pin(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let map = NextHopMap::try_from(Map::LpmTrie(md)).expect("an LPM trie");
    next_hops::read(&map).expect("read the cache")
}

fn mac_of(netns: &str, dev: &str) -> String {
    let o = Command::new("ip")
        .args(["-n", netns, "-j", "link", "show", dev])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0]["address"].as_str().unwrap().to_owned()
}

fn run(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Polls `f` every 100 µs until it holds; the time it first held.
fn wait_for(what: &str, limit: Duration, f: impl Fn() -> bool) -> Instant {
    let start = Instant::now();
    loop {
        if f() {
            return Instant::now();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_micros(100));
    }
}

#[test]
fn the_agent_follows_a_gateway_mac_change_without_black_holing_after_it() {
    root_or_skip!();
    let lab = TestLab::up_with("nhm", None, &["--agent", "--mode", "peer"]);
    let plan = lab.plan();
    let nb = &plan.nodes[1];
    let pods = lab.pod_endpoints();
    let (a, b) = (&pods[0], &pods[1]);
    assert_all_ok(&probe::probe_pair(a, b, 56, T));
    let b_pods = IpAddr::V4(nb.pod_ipv4.unwrap().network());
    let old = mac_of(&nb.netns, &nb.nic);
    let cached = |mac: &str| {
        entries(&lab, "node-a")
            .iter()
            .any(|e| e.dst.addr() == b_pods && e.ifindex.is_some() && e.dmac == mac)
    };
    wait_for("node-b's pod CIDR cached on node-a", T, || cached(&old));

    // node-b announces its new MAC (gratuitous ARP, unsolicited NA), as a
    // gateway that changes its MAC must: node-a's neighbour entries follow,
    // then the agent's cache. (Unannounced, the old MAC stays in node-a's
    // neighbour table, which the FIB lookup would return as well: the
    // fast path never makes the stack re-resolve it.)
    for key in [
        format!("net.ipv4.conf.{}.arp_notify=1", nb.nic),
        format!("net.ipv6.conf.{}.ndisc_notify=1", nb.nic),
    ] {
        run(&["ip", "netns", "exec", &nb.netns, "sysctl", "-qw", &key]);
    }
    let stream = UdpSequence::start(&a.netns, &b.netns, b.ipv4.unwrap(), PPS).unwrap();
    let started = stream.started;
    std::thread::sleep(Duration::from_millis(300));
    let changed = Instant::now();
    run(&[
        "ip", "-n", &nb.netns, "link", "set", &nb.nic, "address", NEW_MAC,
    ]);
    let updated = wait_for("node-a's cache entry takes the new MAC", T, || {
        cached(NEW_MAC)
    });
    std::thread::sleep(Duration::from_millis(300));
    let r = stream.stop().unwrap();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    // When datagram `seq` left: the stream's start + seq / rate (the
    // sender starts a little after `started`: this errs early).
    let sent_at = |seq: u64| started + Duration::from_secs_f64(seq as f64 / f64::from(PPS));
    let lag = updated - changed;
    let window = r
        .lost_span
        .map(|(first, last)| sent_at(last + 1).saturating_duration_since(sent_at(first)));
    eprintln!(
        "MAC change → node-a's cache entry updated in {:.2} ms; {} of {} datagrams lost{}",
        ms(lag),
        r.lost,
        r.sent,
        window.map_or(String::new(), |w| format!(" over {:.2} ms", ms(w))),
    );
    assert!(r.sent > 1000, "stream too short: {r:?}");
    assert!(
        lag < Duration::from_millis(500),
        "entry updated after {lag:?}"
    );
    if let Some((_, last)) = r.lost_span {
        // Nothing black-holed once the entry changed: the last loss left
        // before it (2 ms of slack for the sender's start and the packets
        // already in flight).
        let after = sent_at(last).saturating_duration_since(updated);
        assert!(
            after <= Duration::from_millis(2),
            "datagram {last} was lost {:.2} ms after the entry changed: {r:?}",
            ms(after)
        );
    }
    assert_eq!(r.duplicated, 0, "{r:?}");
    // The stream ran on the cache. node-b's address change flushed its
    // neighbours (and with them its cached routes): traffic resolves the
    // next hop again (redirect_neigh), and the agent caches it with the
    // NIC's new MAC as the source.
    let redirected = Command::new(common::BIN)
        .args(["lab", "status", "--name", &lab.name, "--json"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&redirected.stdout);
    assert!(status.contains("redirect_cached"), "{status}");
    assert_all_ok(&probe::probe_pair(b, a, 56, T));
    let b_cached = || {
        let e = entries(&lab, "node-b");
        !e.is_empty()
            && e.iter()
                .filter(|e| e.ifindex.is_some())
                .all(|e| e.smac == NEW_MAC)
    };
    if std::panic::catch_unwind(|| wait_for("node-b's entries", T, b_cached)).is_err() {
        panic!(
            "node-b's entries did not take its NIC's new MAC: {:?}",
            entries(&lab, "node-b")
        );
    }
    assert_all_ok(&probe::probe_pair(a, b, 56, T));
}

/// A gateway that changes its MAC without announcing it: the agent has
/// the kernel manage the gateway's neighbour entry, so the kernel resolves
/// it again by itself although the fast path never uses it, and the cache
/// follows the neighbour event. Without the managed entry the old MAC
/// stays (the entry goes stale and nothing probes it). node-a's neighbour
/// timers are shortened so the test takes seconds (defaults: 15–45 s of
/// reachable time). The time it took is printed.
#[test]
fn an_unannounced_gateway_mac_change_reaches_the_cache_through_a_managed_neighbour() {
    root_or_skip!();
    let lab = TestLab::up_with("nhu", None, &["--agent", "--mode", "peer"]);
    let plan = lab.plan();
    let (na, nb) = (&plan.nodes[0], &plan.nodes[1]);
    let pods = lab.pod_endpoints();
    let (a, b) = (&pods[0], &pods[1]);
    let gw = nb.nic_ipv4.unwrap().addr().to_string();
    for family in ["ipv4", "ipv6"] {
        for key in [
            format!("net.{family}.neigh.{}.base_reachable_time_ms=1000", na.nic),
            format!("net.{family}.neigh.{}.delay_first_probe_time=1", na.nic),
            format!("net.{family}.neigh.{}.retrans_time_ms=200", na.nic),
        ] {
            run(&["ip", "netns", "exec", &na.netns, "sysctl", "-qw", &key]);
        }
    }
    // node-b must not announce the change.
    for key in [
        format!("net.ipv4.conf.{}.arp_notify=0", nb.nic),
        format!("net.ipv6.conf.{}.ndisc_notify=0", nb.nic),
    ] {
        run(&["ip", "netns", "exec", &nb.netns, "sysctl", "-qw", &key]);
    }
    // node-a resolves node-b again, with the short timers.
    run(&["ip", "-n", &na.netns, "neigh", "flush", "dev", &na.nic]);
    assert_all_ok(&probe::probe_pair(a, b, 56, T));
    // Both families' routes to node-b's pods hold `mac`.
    let b_pods = [
        IpAddr::V4(nb.pod_ipv4.unwrap().network()),
        IpAddr::V6(nb.pod_ipv6.unwrap().network()),
    ];
    let cached = |mac: &str| {
        let e = entries(&lab, "node-a");
        b_pods.iter().all(|net| {
            e.iter()
                .any(|e| e.dst.addr() == *net && e.ifindex.is_some() && e.dmac == mac)
        })
    };
    let old = mac_of(&nb.netns, &nb.nic);
    wait_for("node-b's pod CIDRs cached on node-a", T, || cached(&old));
    let managed = || {
        let o = Command::new("ip")
            .args(["-d", "-n", &na.netns, "neigh", "show", &gw, "dev", &na.nic])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).contains(" managed ")
    };
    wait_for("node-a's entry for its gateway is managed", T, managed);

    let changed = Instant::now();
    run(&[
        "ip", "-n", &nb.netns, "link", "set", &nb.nic, "address", NEW_MAC,
    ]);
    let limit = Duration::from_secs(20);
    let updated = wait_for("node-a's cache entries take the new MAC", limit, || {
        cached(NEW_MAC)
    });
    eprintln!(
        "unannounced MAC change → node-a's cache entries (IPv4 and IPv6) updated in {:.1} s (reachable time 0.5–1.5 s, first probe after 1 s)",
        (updated - changed).as_secs_f64()
    );
    assert_all_ok(&probe::probe_pair(a, b, 56, T));
}

/// A lab without agents fills the cache at every switch to a fast mode,
/// having its nodes resolve each other first: from `lab up --mode peer`
/// on, node-a's pods reach node-b's from the cache, both families, and
/// `lab status` shows the entries the kernel holds.
#[test]
fn a_lab_without_agents_caches_the_routes_from_its_first_mode_switch() {
    root_or_skip!();
    let lab = TestLab::up_with("nhl", None, &["--mode", "peer"]);
    let plan = lab.plan();
    let nb = &plan.nodes[1];
    let o = Command::new(common::BIN)
        .args(["lab", "status", "--name", &lab.name, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let node_a = v["dataplane"]["next_hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "node-a")
        .unwrap_or_else(|| panic!("no node-a in {v}"));
    for net in [
        nb.pod_ipv4.unwrap().to_string(),
        nb.pod_ipv6.unwrap().to_string(),
    ] {
        let e = node_a["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["dst"] == net.as_str())
            .unwrap_or_else(|| panic!("{net} not cached: {node_a}"));
        assert!(e["ifindex"].as_u64().is_some(), "{e}");
        assert_eq!(e["dmac"], mac_of(&nb.netns, &nb.nic), "{e}");
    }
    let pods = lab.pod_endpoints();
    assert_all_ok(&probe::probe_pair(&pods[0], &pods[1], 56, T));
    let o = Command::new(common::BIN)
        .args(["lab", "status", "--name", &lab.name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("NEXT HOP FOR"), "{text}");
    let pod_a_line = text
        .lines()
        .find(|l| l.contains("from_pod") && l.contains(&format!("{}-node-a", lab.name)))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(pod_a_line.contains("redirect_cached="), "{pod_a_line}");
}
