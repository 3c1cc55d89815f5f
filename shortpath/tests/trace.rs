//! `shortpath trace` end to end: structural facts of each mode's kernel
//! path, asserted as counts and device lists from the kernel's own
//! tracepoints — never as times.

mod common;

use std::{process::Command, thread, time::Duration};

use common::{
    namespaces_of, ok, root_or_skip, shortpath, shortpath_env, stderr, stdout, unique_name,
    TestLab, BIN,
};
use serde_json::Value;

fn trace_json(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("trace.json");
    let mut all = vec!["trace"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    ok(shortpath(&all));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn devices(s: &Value) -> Vec<String> {
    s["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("no devices: {s}"))
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

fn num(s: &Value, k: &str) -> f64 {
    s[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {s}"))
}

const PACKETS: u64 = 500;

#[test]
fn each_mode_takes_the_path_the_article_describes() {
    root_or_skip!();
    let lab = TestLab::up("tr");
    let v = trace_json(&[
        "--name",
        &lab.name,
        "--packets",
        &PACKETS.to_string(),
        "--rate",
        "5000",
    ]);
    let plan = lab.plan();
    let node_b = plan.node("node-b").unwrap();
    let pod_b = plan.pods().find(|p| p.node == "node-b").unwrap();
    let pod_a = plan.pods().find(|p| p.node == "node-a").unwrap();
    let (nic, br, lxc_b, lxc_a, ve) = (
        node_b.nic.as_str(),
        node_b.bridge.as_str(),
        pod_b.host_if.as_str(),
        pod_a.host_if.as_str(),
        pod_b.ifname.as_str(),
    );

    for mode in ["bridge", "redirect", "peer"] {
        for dir in ["rx", "tx"] {
            let s = &v["summary"][mode][dir];
            let traced = s["packets"].as_u64().unwrap();
            // Every probe is followed end to end (a few may be in flight or
            // lost to a full ring buffer on a loaded machine).
            assert!(
                traced >= PACKETS * 95 / 100,
                "{mode} {dir}: {traced} paths: {s}"
            );
            assert!(num(s, "path_us_p50") > 0.0 && num(s, "path_us_p50") <= num(s, "path_us_p99"));
            assert!(num(s, "softirqs_per_packet") >= 1.0, "{mode} {dir}: {s}");
            assert!(
                s["drops"].as_object().unwrap().is_empty(),
                "{mode} {dir}: {s}"
            );
            assert!(num(s, "devices_share") > 0.9, "{mode} {dir}: {s}");
            // The skb address survives veths, the bridge and redirects.
            assert!(
                (num(s, "skbs_per_packet") - 1.0).abs() < 0.05,
                "{mode} {dir}: {s}"
            );
        }
        let rx = &v["summary"][mode]["rx"];
        // The lab's wire is a veth: one backlog enqueue before the NIC.
        assert!(
            (num(rx, "wire_backlog_per_packet") - 1.0).abs() < 0.05,
            "{mode}: {rx}"
        );
    }

    let rx = |m: &str| &v["summary"][m]["rx"];
    let tx = |m: &str| &v["summary"][m]["tx"];
    // Bridge RX: routed by the node into br0, then the host veth, and a
    // backlog enqueue (a second receive) before the pod sees it.
    assert_eq!(devices(rx("bridge")), [nic, br, lxc_b, ve]);
    assert!((num(rx("bridge"), "backlog_per_packet") - 1.0).abs() < 0.05);
    assert!(num(rx("bridge"), "node_route_lookups_per_packet") >= 0.95);
    // Redirect RX: straight to the host veth: no bridge, no node route
    // lookup, still the backlog enqueue of the veth pair.
    assert_eq!(devices(rx("redirect")), [nic, lxc_b, ve]);
    assert!((num(rx("redirect"), "backlog_per_packet") - 1.0).abs() < 0.05);
    assert!(num(rx("redirect"), "node_route_lookups_per_packet") < 0.05);
    // Peer RX: from the NIC straight into the pod: no backlog enqueue.
    assert_eq!(devices(rx("peer")), [nic, ve]);
    assert!(num(rx("peer"), "backlog_per_packet") < 0.05);
    assert!(num(rx("peer"), "node_route_lookups_per_packet") < 0.05);
    // The pod's own input route lookup remains in every mode.
    for m in ["bridge", "redirect", "peer"] {
        assert!(
            num(rx(m), "route_lookups_per_packet") > num(rx(m), "node_route_lookups_per_packet"),
            "{m}: {}",
            rx(m)
        );
    }
    // TX: bridge goes through br0; the fast paths leave by the NIC
    // straight from the host veth.
    let node_a_nic = plan.node("node-a").unwrap().nic.as_str();
    let pod_if_a = pod_a.ifname.as_str();
    let br_a = plan.node("node-a").unwrap().bridge.as_str();
    assert_eq!(devices(tx("bridge")), [pod_if_a, lxc_a, br_a, node_a_nic]);
    for m in ["redirect", "peer"] {
        assert_eq!(devices(tx(m)), [pod_if_a, lxc_a, node_a_nic], "{m}");
    }

    for mode in ["bridge", "redirect", "peer"] {
        let run = &v["runs"][mode];
        assert_eq!(run["probes"]["sent"].as_u64(), Some(PACKETS), "{run}");
        assert!(run["events"].as_u64().unwrap() > PACKETS * 4);
        // The representative path lists its hops with namespaces.
        let hops = run["paths"]["rx"]["hops"].as_array().unwrap();
        assert_eq!(hops[0]["tracepoint"], "netif_receive_skb");
        assert_eq!(hops.last().unwrap()["tracepoint"], "sk_data_ready");
    }
    // The lab is back in its original mode.
    let status = ok(shortpath(&["mode", "--name", &lab.name]));
    let said = format!("{}{}", stdout(&status), common::stderr(&status));
    assert!(said.contains("bridge"), "{said}");
}

#[test]
fn probes_to_an_address_without_a_pod_are_dropped_with_a_reason() {
    root_or_skip!();
    let lab = TestLab::up("trd");
    // In node-b's pod subnet, but no pod has it: node-b cannot resolve it.
    let v = trace_json(&[
        "--name",
        &lab.name,
        "--modes",
        "peer",
        "--direction",
        "rx",
        "--packets",
        "300",
        "--rate",
        "1000",
        "--to",
        "172.17.2.200",
    ]);
    let rx = &v["summary"]["peer"]["rx"];
    assert_eq!(rx["packets"].as_u64(), Some(0), "{rx}");
    let drops = rx["drops"].as_object().unwrap();
    let total: u64 = drops.values().map(|n| n.as_u64().unwrap()).sum();
    assert!(total >= 290, "{rx}");
    assert!(
        drops.keys().all(|r| r.starts_with("NEIGH_")),
        "drops are attributed to neighbour resolution: {rx}"
    );
    let at = rx["drops_at"].as_object().unwrap();
    let br = lab.plan().node("node-b").unwrap().bridge.clone();
    assert!(
        at.keys().all(|k| k.ends_with(&format!("/{br}"))),
        "dropped on node-b's bridge, waiting for ARP: {rx}"
    );
    assert!(v["summary"]["peer"]["tx"].is_null(), "--direction rx only");
}

#[test]
fn trace_builds_its_own_lab_prints_a_path_and_cleans_up() {
    root_or_skip!();
    let name = unique_name("tro");
    let o = ok(shortpath(&[
        "trace",
        "--name",
        &name,
        "--modes",
        "bridge,peer",
        "--packets",
        "200",
        "--path",
    ]));
    let out = stdout(&o);
    for needle in [
        "bridge",
        "peer",
        "netif_receive_skb",
        "sk_data_ready",
        "net_dev_start_xmit",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    assert!(
        out.contains('%'),
        "the cut against bridge is printed:\n{out}"
    );
    assert!(namespaces_of(&name).is_empty(), "trace removed its lab");
}

#[test]
fn follow_traces_live_traffic_of_the_current_mode() {
    root_or_skip!();
    let lab = TestLab::up("trf");
    ok(shortpath(&["mode", "--name", &lab.name, "redirect"]));
    // Live traffic: a bench run of udp_rr in the current mode.
    let name = lab.name.clone();
    let load = thread::spawn(move || {
        Command::new(BIN)
            .args([
                "bench",
                "--name",
                &name,
                "--modes",
                "redirect",
                "--tests",
                "udp_rr",
                "--duration",
                "4",
                "--warmup",
                "0",
                "--rounds",
                "1",
            ])
            .output()
            .unwrap()
    });
    thread::sleep(Duration::from_millis(800));
    let v = trace_json(&[
        "--name",
        &lab.name,
        "--follow",
        "--duration",
        "1.5",
        "--sample",
        "4",
    ]);
    ok(load.join().unwrap());
    assert_eq!(v["params"]["traffic"], "follow");
    let rx = &v["summary"]["redirect"]["rx"];
    let tx = &v["summary"]["redirect"]["tx"];
    assert!(rx["packets"].as_u64().unwrap() > 10, "{rx}");
    assert!(tx["packets"].as_u64().unwrap() > 10, "{tx}");
    assert!(!devices(rx).iter().any(|d| d == "br0"), "{rx}");
    assert!(
        v["summary"].get("bridge").is_none(),
        "follow does not switch modes"
    );
}

#[test]
fn a_kernel_without_optional_tracepoints_gets_nulls_and_a_message() {
    root_or_skip!();
    let lab = TestLab::up("trk");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("t.json");
    let args = [
        "trace",
        "--name",
        &lab.name,
        "--modes",
        "peer",
        "--packets",
        "200",
        "--json",
        json.to_str().unwrap(),
    ];
    let o = ok(shortpath_env(
        &args,
        &[("SHORTPATH_TRACE_SKIP", "fib_table_lookup,netif_rx")],
    ));
    assert!(
        stderr(&o).contains("fib_table_lookup unavailable")
            && stderr(&o).contains("route lookups not reported"),
        "{}",
        stderr(&o)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rx = &v["summary"]["peer"]["rx"];
    assert!(
        rx["packets"].as_u64().unwrap() > 0,
        "paths still assembled: {rx}"
    );
    assert!(
        rx["route_lookups_per_packet"].is_null() && rx["backlog_per_packet"].is_null(),
        "{rx}"
    );
    assert!(!rx["softirqs_per_packet"].is_null(), "{rx}");
    assert_eq!(
        v["params"]["unavailable_tracepoints"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Without a tracepoint paths need, trace refuses and names it.
    let o = shortpath_env(&args, &[("SHORTPATH_TRACE_SKIP", "sk_data_ready")]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("tracepoint sk_data_ready"),
        "{}",
        stderr(&o)
    );
}
