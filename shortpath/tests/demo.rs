//! `shortpath demo`, the binary, end to end: it builds its own lab with
//! containerd in two nodes, shows the containers' addresses, a ping and a
//! TCP echo across nodes and the fast-path counters, exits 0, and leaves
//! no namespace, containerd or runtime directory of its lab behind. With
//! `--keep` it leaves them running until `--down`.

mod common;

use std::{
    path::Path,
    sync::{Mutex, MutexGuard},
};

use shortpath::{demo::containerd, names::LabName, runtime};

/// Two demos at once would share 2 cores with four containerds.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A demo's lab; whatever a failed test left of it is removed on drop
/// (`demo --down` is idempotent).
struct Demo {
    name: String,
    _one: MutexGuard<'static, ()>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = common::shortpath(&["demo", "--name", &self.name, "--down"]);
    }
}

/// Runs `shortpath demo` on a new lab name with `extra` arguments; it must
/// succeed. Returns the demo and its output.
fn demo(prefix: &str, extra: &[&str]) -> (Demo, String) {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = Demo {
        name: common::unique_name(prefix),
        _one: one,
    };
    let mut args = vec!["demo", "--name", &d.name];
    args.extend(extra);
    let o = common::shortpath(&args);
    let out = common::stdout(&o);
    assert!(o.status.success(), "{out}\n{}", common::stderr(&o));
    (d, out)
}

/// Processes whose command line names the lab's runtime directory (its
/// containerds, their shims, `ctr run`).
fn processes_of(lab: &str) -> Vec<(i32, String)> {
    containerd::processes_naming(&runtime::lab_dir(&lab.parse::<LabName>().unwrap()))
}

fn assert_nothing_left(lab: &str) {
    assert!(
        common::namespaces_of(lab).is_empty(),
        "{:?}",
        common::namespaces_of(lab)
    );
    assert!(processes_of(lab).is_empty(), "{:?}", processes_of(lab));
    let dir = Path::new(runtime::RUN_DIR).join(lab);
    assert!(!dir.exists(), "{} is left", dir.display());
}

/// The counter columns of the table row for `node`, `hook` and the device
/// label ending in `what` ("(NIC)", "(c1)"): redirect_peer,
/// redirect_cached, redirect_neigh, redirect, to the stack.
fn counters(out: &str, node: &str, hook: &str, what: &str) -> [u64; 5] {
    let line = out
        .lines()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        .find(|w| w.len() == 9 && w[0] == node && w[1] == hook && w[3] == what)
        .unwrap_or_else(|| panic!("no counters for {node} {hook} {what}:\n{out}"));
    [4, 5, 6, 7, 8].map(|i| line[i].parse().unwrap())
}

#[test]
fn demo_shows_containers_on_the_fast_path_and_leaves_nothing() {
    common::root_or_skip!();
    let (d, out) = demo("dm", &[]);
    let name = &d.name;
    // Each container's address, from its node's IPAM range (.100 on).
    for (c, node, net) in [
        ("c1", "node-a", "172.17.1.1"),
        ("c2", "node-a", "172.17.1.1"),
        ("c3", "node-b", "172.17.2.1"),
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{c}  {node}  ")))
            .unwrap_or_else(|| panic!("no line for {c}:\n{out}"));
        assert!(
            line.contains(net) && line.contains("in the kernel"),
            "{line}"
        );
    }
    assert!(out.contains("3/3 replies"), "{out}");
    assert!(
        out.contains("sent \"hello from c1\", got \"hello from c1\" back"),
        "{out}"
    );
    // The fast path both ways: out of a pod from the next-hop cache or the
    // FIB (redirect_cached, redirect_neigh, redirect),
    // into the pod on the other node with redirect_peer.
    let [_, cached, neigh, redirect, _] = counters(&out, "node-a", "from_pod", "(c1)");
    assert!(cached + neigh + redirect >= 6, "{out}");
    let [peer, ..] = counters(&out, "node-b", "from_nic", "(NIC)");
    assert!(peer >= 6, "{out}");
    let [_, cached, neigh, redirect, _] = counters(&out, "node-b", "from_pod", "(c3)");
    assert!(cached + neigh + redirect >= 6, "{out}");
    let [peer, ..] = counters(&out, "node-a", "from_nic", "(NIC)");
    assert!(peer >= 6, "{out}");
    assert!(out.contains("nothing left"), "{out}");
    assert_nothing_left(name);
}

#[test]
fn demo_keep_leaves_it_running_until_down() {
    common::root_or_skip!();
    let (d, out) = demo("dk", &["--keep"]);
    let name = &d.name;
    assert!(
        out.contains(&format!("shortpath demo --name {name} --down")),
        "{out}"
    );
    // The lab, both containerds and the containers still run: c1 still
    // reaches c3's echo server, through the command the demo printed.
    assert_eq!(common::namespaces_of(name).len(), 4, "two nodes, two pods");
    let daemons = processes_of(name)
        .into_iter()
        .filter(|(_, c)| c.starts_with("containerd "))
        .count();
    assert_eq!(daemons, 2, "{:?}", processes_of(name));
    let shell = out
        .lines()
        .find_map(|l| l.split_once("a shell in c1:"))
        .map(|(_, cmd)| cmd.trim().trim_start_matches("sudo ").to_owned())
        .unwrap_or_else(|| panic!("no shell command:\n{out}"));
    let c3 = out
        .lines()
        .find_map(|l| l.split_once("(then: ping "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address of c3:\n{out}"))
        .to_owned();
    let cmd = format!(
        "{} /bin/ping -c 1 -W 2 {c3}",
        shell.replace(" -t ", " ").strip_suffix(" /bin/sh").unwrap()
    );
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{cmd}: {}", common::stderr(&o));
    // A second demo of that name refuses, and says how to remove the first.
    let o = common::shortpath(&["demo", "--name", name]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("--down"),
        "{}",
        common::stderr(&o)
    );
    common::ok(common::shortpath(&["demo", "--name", name, "--down"]));
    assert_nothing_left(name);
}
