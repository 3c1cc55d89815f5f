//! A real container runtime creates pods on the fast path: containerd 1.6
//! (Debian's, with runc) runs inside each lab node's namespace, and `ctr
//! run --cni` calls shortpath's plugin with the conflist the node's agent
//! wrote. Containers on two nodes reach each other (ICMP and TCP) on the
//! peer fast path, and removing them leaves nothing behind.

mod common;

use common::{
    containerd::{self, agent, must, peer_delivered},
    TestLab,
};
use shortpath::agent::api::Request;

#[test]
fn ctr_run_cni_containers_on_two_nodes_talk_on_the_fast_path_and_leave_nothing() {
    common::root_or_skip!();
    let lab = TestLab::up_with("cr", None, &["--cni", "--mode", "peer"]);
    let mut a = containerd::start(&lab, "node-a", "");
    let mut b = containerd::start(&lab, "node-b", "");
    a.run("c1", &["/bin/sleep", "600"]).unwrap();
    a.run("c2", &["/bin/sleep", "600"]).unwrap();
    b.run("c3", &["/bin/nc", "-ll", "-p", "7777", "-e", "/bin/cat"])
        .unwrap();
    let (ip1, ip2, ip3) = (
        a.ip("c1").unwrap(),
        a.ip("c2").unwrap(),
        b.ip("c3").unwrap(),
    );
    for (ip, net) in [(ip1, "172.17.1."), (ip2, "172.17.1."), (ip3, "172.17.2.")] {
        assert!(
            ip.to_string().starts_with(net),
            "{ip} not from its node's pod CIDR"
        );
    }
    let before = peer_delivered(&lab, "node-b");
    // ICMP: across nodes both ways, and on one node.
    for (c, from, to) in [
        (&a, "c1", ip3),
        (&b, "c3", ip1),
        (&a, "c2", ip1),
        (&a, "c1", ip2),
    ] {
        let o = c.exec(from, &["/bin/ping", "-c", "3", "-W", "2", &to.to_string()]);
        must(o, &format!("{from} ping {to}"));
    }
    // TCP across nodes: c3 echoes.
    let o = must(
        a.exec(
            "c1",
            &[
                "/bin/sh",
                "-c",
                &format!("echo hello-over-tcp | /bin/nc -w 2 {ip3} 7777"),
            ],
        ),
        "c1 → c3 tcp",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "hello-over-tcp");
    let delivered = peer_delivered(&lab, "node-b") - before;
    assert!(
        delivered >= 6,
        "node-b's from_nic put only {delivered} packets straight into pods"
    );
    // The agents know each container, in the kernel.
    for (node, n) in [("node-a", 2), ("node-b", 1)] {
        let l = agent(&lab, node, Request::EndpointList);
        let cnt = l["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["endpoint"]["id"]
                    .as_str()
                    .unwrap()
                    .starts_with("default-c")
            })
            .count();
        assert_eq!(cnt, n, "{node}: {l}");
        assert!(
            l["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["in_kernel"] == true),
            "{l}"
        );
    }
    // Remove: nothing left (veths, endpoints, leases).
    a.remove_all().unwrap();
    b.remove_all().unwrap();
    for (c, node) in [(&a, "node-a"), (&b, "node-b")] {
        let veths = c.veths().unwrap();
        assert!(veths.is_empty(), "{node}: veths left {veths:?}");
        assert!(
            c.leases().is_empty(),
            "{node}: leases left {:?}\nCNI log: {}",
            c.leases(),
            c.cni_log()
        );
        let l = agent(&lab, node, Request::EndpointList);
        assert!(!l.to_string().contains("default-c"), "{node}: {l}");
        let log = c.cni_log();
        assert!(
            log.contains("command=ADD") && log.contains("command=DEL"),
            "{log}"
        );
        assert!(!log.contains("result=error"), "{log}");
    }
}
