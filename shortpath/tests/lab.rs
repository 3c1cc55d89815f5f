//! `shortpath lab`: real namespaces, real packets.

mod common;

use std::time::Duration;

use common::*;
use shortpath::probe::{self, Proto};

const T: Duration = Duration::from_secs(3);

#[test]
fn default_lab_carries_icmp_udp_tcp_both_ways_and_both_families() {
    root_or_skip!();
    let lab = TestLab::up("dl");
    let pods = lab.pod_endpoints();
    assert_eq!(pods.len(), 2);
    let mut results = probe::probe_pair(&pods[0], &pods[1], 100, T);
    results.extend(probe::probe_pair(&pods[1], &pods[0], 100, T));
    // 2 directions x 2 families x 3 protocols
    assert_eq!(results.len(), 12);
    let nodes = lab.node_endpoints();
    results.extend(probe::probe_all(&nodes, 100, T));
    assert_eq!(results.len(), 24);
    assert!(results
        .iter()
        .any(|p| p.proto == Proto::Tcp && p.dst.is_ipv6()));
    assert_all_ok(&results);
}

#[test]
fn two_nodes_three_pods_full_mesh() {
    root_or_skip!();
    let cfg = "[[node]]\nname = \"node-a\"\npods = 3\n[[node]]\nname = \"node-b\"\npods = 3\n";
    let lab = TestLab::up_with("m", Some(cfg), &[]);
    let pods = lab.pod_endpoints();
    assert_eq!(pods.len(), 6);
    let results = probe::probe_all(&pods, 64, T);
    // 30 ordered pairs x 2 families x 3 protocols
    assert_eq!(results.len(), 180);
    assert_all_ok(&results);
}

#[test]
fn three_nodes_share_a_switch() {
    root_or_skip!();
    let cfg = "[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\n[[node]]\nname = \"c\"\n";
    let lab = TestLab::up_with("sw", Some(cfg), &[]);
    assert!(namespaces_of(&lab.name).contains(&format!("{}-switch", lab.name)));
    assert_all_ok(&probe::probe_all(&lab.pod_endpoints(), 64, T));
    assert_all_ok(&probe::probe_all(&lab.node_endpoints(), 64, T));
}

#[test]
fn ipv4_only_lab_without_netfilter() {
    root_or_skip!();
    let cfg = "families = [\"ipv4\"]\nnetfilter = \"none\"\n[[node]]\nname = \"node-a\"\n[[node]]\nname = \"node-b\"\n";
    let lab = TestLab::up_with("v4", Some(cfg), &[]);
    let results = probe::probe_all(&lab.pod_endpoints(), 64, T);
    assert_eq!(results.len(), 6);
    assert_all_ok(&results);
    let plan = lab.plan();
    let o = ok(shortpath(&[
        "lab",
        "exec",
        "--name",
        &lab.name,
        &plan.nodes[0].name,
        "--",
        "nft",
        "list",
        "ruleset",
    ]));
    assert!(
        stdout(&o).trim().is_empty(),
        "netfilter = none installs no rules: {}",
        stdout(&o)
    );
}

#[test]
fn cni_bridge_netfilter_is_installed_and_counts_forwarding() {
    root_or_skip!();
    let lab = TestLab::up("nf");
    let node = lab.plan().nodes[0].netns.clone();
    let ns = shortpath::netns::Netns::new(&node);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = rt
        .block_on(shortpath::lab::netfilter::forwarded_packets(&ns))
        .unwrap();
    let pods = lab.pod_endpoints();
    for _ in 0..5 {
        probe::ping(&pods[0].netns, pods[1].ipv4.unwrap(), 56, T).unwrap();
    }
    let after = rt
        .block_on(shortpath::lab::netfilter::forwarded_packets(&ns))
        .unwrap();
    // 5 requests out, 5 replies in, each through routing and the bridge.
    assert!(after - before >= 10, "forward counter {before} -> {after}");
    let o = ok(shortpath(&[
        "lab",
        "exec",
        "--name",
        &lab.name,
        "node-a",
        "--",
        "sysctl",
        "-n",
        "net.bridge.bridge-nf-call-iptables",
    ]));
    assert_eq!(stdout(&o).trim(), "1");
}

#[test]
fn status_json_schema() {
    root_or_skip!();
    let lab = TestLab::up("st");
    let o = ok(shortpath(&["lab", "status", "--name", &lab.name, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json is JSON");
    assert_eq!(v["name"], lab.name.as_str());
    assert_eq!(v["mode"], "bridge");
    let nodes = v["nodes"].as_array().expect("nodes[]");
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        for k in ["name", "netns"] {
            assert!(n[k].is_string(), "node.{k}: {n}");
        }
        let nic = &n["nic"];
        assert_eq!(nic["name"], "eth1");
        assert!(nic["ifindex"].as_u64().unwrap() > 0);
        assert!(nic["ipv4"].as_str().unwrap().starts_with("192.168.1."));
        assert!(nic["ipv6"]
            .as_str()
            .unwrap()
            .starts_with("fd00:192:168:1::"));
        assert_eq!(nic["mac"].as_str().unwrap().len(), 17);
    }
    let pods = v["pods"].as_array().expect("pods[]");
    assert_eq!(pods.len(), 2);
    for p in pods {
        for k in ["name", "node", "netns", "ipv4", "ipv6", "mac"] {
            assert!(p[k].is_string(), "pod.{k}: {p}");
        }
        assert!(p["ifindex"].as_u64().unwrap() > 0);
        assert!(p["host_if"]["name"].as_str().unwrap().starts_with("lxc"));
        assert!(p["host_if"]["ifindex"].as_u64().unwrap() > 0);
        assert_eq!(p["host_if"]["mac"].as_str().unwrap().len(), 17);
    }
    let text = stdout(&ok(shortpath(&["lab", "status", "--name", &lab.name])));
    assert!(text.contains("pod-a") && text.contains("eth1"), "{text}");
}

#[test]
fn exec_runs_in_the_namespace_and_returns_the_exit_code() {
    root_or_skip!();
    let lab = TestLab::up("ex");
    let o = ok(shortpath(&[
        "lab", "exec", "--name", &lab.name, "pod-a", "--", "ip", "-o", "addr", "show", "dev", "ve0",
    ]));
    assert!(stdout(&o).contains("172.17.1.2/24"), "{}", stdout(&o));
    let o = shortpath(&[
        "lab",
        "exec",
        "--name",
        &lab.name,
        "node-b/pod-b",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    let o = shortpath(&["lab", "exec", "--name", &lab.name, "nowhere", "--", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no node, pod or node/pod named \"nowhere\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn up_twice_is_refused_unless_forced() {
    root_or_skip!();
    let lab = TestLab::up("tw");
    let o = shortpath(&["lab", "up", "--name", &lab.name]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    ok(shortpath(&["lab", "up", "--name", &lab.name, "--force"]));
    assert_all_ok(&probe::probe_all(&lab.pod_endpoints(), 32, T));
}

#[test]
fn down_removes_everything_and_is_idempotent() {
    root_or_skip!();
    let links_before = root_links();
    let name = unique_name("dn");
    ok(shortpath(&["lab", "up", "--name", &name]));
    assert_eq!(namespaces_of(&name).len(), 4);
    ok(shortpath(&["lab", "down", "--name", &name]));
    assert!(
        namespaces_of(&name).is_empty(),
        "left: {:?}",
        namespaces_of(&name)
    );
    assert!(!std::path::Path::new("/run/shortpath").join(&name).exists());
    assert_eq!(
        root_links(),
        links_before,
        "the root namespace's links are untouched"
    );
    ok(shortpath(&["lab", "down", "--name", &name]));
    let o = shortpath(&["lab", "status", "--name", &name]);
    assert!(!o.status.success());
}

#[test]
fn failure_half_way_leaves_nothing_behind() {
    root_or_skip!();
    let name = unique_name("ff");
    for step in ["namespaces", "pods"] {
        let o = shortpath_env(
            &["lab", "up", "--name", &name],
            &[("SHORTPATH_FAULT", step)],
        );
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(&format!("injected failure at {step}")),
            "{}",
            stderr(&o)
        );
        assert!(
            namespaces_of(&name).is_empty(),
            "after failing at {step}: {:?}",
            namespaces_of(&name)
        );
        assert!(!std::path::Path::new("/run/shortpath").join(&name).exists());
    }
}

#[test]
fn down_cleans_up_after_a_crash_during_up() {
    root_or_skip!();
    let name = unique_name("cr");
    let o = shortpath_env(
        &["lab", "up", "--name", &name],
        &[("SHORTPATH_FAULT", "abort:pods")],
    );
    assert!(!o.status.success());
    assert_eq!(
        namespaces_of(&name).len(),
        4,
        "the crash left the namespaces"
    );
    let o = shortpath(&["lab", "status", "--name", &name]);
    assert!(stderr(&o).contains("crashed"), "{}", stderr(&o));
    ok(shortpath(&["lab", "down", "--name", &name]));
    assert!(namespaces_of(&name).is_empty());
}

#[test]
fn bad_config_creates_nothing() {
    root_or_skip!();
    let name = unique_name("bc");
    let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(f.path(), "mtu = 1500\n[[node]]\nname = \"a\"\npod_ipv4 = \"10.0.0.0/8\"\n[[node]]\nname = \"b\"\npod_ipv4 = \"10.1.0.0/16\"\n").unwrap();
    let path = f.path().to_string_lossy().into_owned();
    let o = shortpath(&["lab", "up", "--name", &name, "--config", &path]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{path}:7: node[1].pod_ipv4: 10.1.0.0/16 (b's pod_ipv4) overlaps a's pod_ipv4"
        )),
        "{err}"
    );
    assert!(namespaces_of(&name).is_empty());
    assert!(!std::path::Path::new("/run/shortpath").join(&name).exists());
}

#[test]
fn clear_errors_for_bad_names_and_missing_labs() {
    root_or_skip!(); // as another user, every command stops at the privilege check
    let o = shortpath(&["lab", "up", "--name", "bad/name"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid lab name"), "{}", stderr(&o));
    let o = shortpath(&["lab", "status", "--name", "never-built-lab"]);
    assert!(stderr(&o).contains("no lab named"), "{}", stderr(&o));
}

#[test]
fn non_root_gets_one_clear_error() {
    root_or_skip!();
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("setpriv (util-linux) is needed for this test");
    }
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "lab",
            "up",
            "--name",
            "nr",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("needs root"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
}
