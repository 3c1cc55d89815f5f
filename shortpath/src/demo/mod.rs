//! `shortpath demo`: real containers on the fast path, narrated. On a lab
//! built with `--cni` in peer mode, containerd runs in node-a and node-b
//! ([`containerd`]); `ctr run --cni` starts two busybox containers on
//! node-a and a TCP echo server on node-b, each wired by shortpath-cni and
//! registered with its node's shortpathd. Then a ping and a TCP echo cross
//! the nodes, the agents' counters show which packets took the fast path,
//! and removing the containers leaves nothing behind.
//!
//! Everything the demo reads comes from the public interfaces: the
//! containers themselves (`ip addr`), the agents' API (`status`,
//! `endpoint_list`), the node's links, host-local's lease files and the
//! plugin's log.

pub mod containerd;

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

use serde::Deserialize;
use serde_json::Value;

use self::containerd::Containerd;
use crate::{
    agent::api::{self, Request},
    control::agents,
    names::LabName,
    runtime::LabLock,
};

/// The TCP echo server's port in c3.
pub const ECHO_PORT: u16 = 7777;
const PINGS: &str = "3";
/// The redirects the counters show, in the order of the table.
const REDIRECTS: [&str; 4] = [
    "redirect_peer",
    "redirect_cached",
    "redirect_neigh",
    "redirect",
];

/// A container of the demo.
struct Container {
    id: &'static str,
    /// Index into the demo's containerds (0: node-a, 1: node-b).
    on: usize,
    role: &'static str,
    cmd: &'static [&'static str],
}

const CONTAINERS: [Container; 3] = [
    Container {
        id: "c1",
        on: 0,
        role: "sleeps",
        cmd: &["/bin/sleep", "1000000"],
    },
    Container {
        id: "c2",
        on: 0,
        role: "sleeps",
        cmd: &["/bin/sleep", "1000000"],
    },
    Container {
        id: "c3",
        on: 1,
        role: "TCP echo server on :7777",
        cmd: &["/bin/nc", "-ll", "-p", "7777", "-e", "/bin/cat"],
    },
];
const NODES: [&str; 2] = ["node-a", "node-b"];

/// One port of a node as its agent reports it (`status`).
#[derive(Clone, Debug, Deserialize)]
pub struct Port {
    pub ifname: String,
    pub hook: String,
    pub counters: BTreeMap<String, u64>,
}

impl Port {
    fn get(&self, reason: &str) -> u64 {
        self.counters.get(reason).copied().unwrap_or(0)
    }

    /// What it counted since `before` (the same port, earlier).
    fn minus(&self, before: Option<&Port>) -> Port {
        let mut d = self.clone();
        for (k, v) in &mut d.counters {
            *v = v.saturating_sub(before.map_or(0, |b| b.get(k)));
        }
        d
    }

    /// Packets the program left to the node's stack.
    fn passed(&self) -> u64 {
        self.counters
            .iter()
            .filter(|(k, _)| k.starts_with("pass_"))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Node `node`'s agent, over its API socket.
pub fn agent(lab: &LabName, node: &str, req: &Request) -> anyhow::Result<Value> {
    let sock = agents::socket(lab, node);
    Ok(api::call(&sock, req)?)
}

/// Every port of node `node` with its counters, from its agent.
pub fn ports(lab: &LabName, node: &str) -> anyhow::Result<Vec<Port>> {
    let st = agent(lab, node, &Request::Status)?;
    Ok(serde_json::from_value(st["programs"].clone())?)
}

/// The ports of each of the demo's nodes.
fn every_port(lab: &LabName) -> anyhow::Result<Vec<Vec<Port>>> {
    NODES.iter().map(|n| ports(lab, n)).collect()
}

/// Packets node `node`'s from_nic put straight into pods
/// (`redirect_peer`).
pub fn peer_delivered(lab: &LabName, node: &str) -> anyhow::Result<u64> {
    Ok(ports(lab, node)?
        .iter()
        .filter(|p| p.hook == "from_nic")
        .map(|p| p.get("redirect_peer"))
        .sum())
}

/// The agent's endpoint holding `addr`: its id, host veth and whether the
/// kernel's map has it.
fn endpoint_of(list: &Value, addr: IpAddr) -> Option<(String, String, bool)> {
    list["endpoints"].as_array()?.iter().find_map(|e| {
        let ep = &e["endpoint"];
        ep["addrs"]
            .as_array()?
            .iter()
            .any(|a| a.as_str() == Some(&addr.to_string()))
            .then(|| {
                (
                    ep["id"].as_str().unwrap_or_default().to_owned(),
                    ep["host_if"].as_str().unwrap_or_default().to_owned(),
                    e["in_kernel"] == true,
                )
            })
    })
}

fn endpoint_ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["endpoint"]["id"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// A blocking step (processes, the agents' sockets), then a chance for a
/// signal to stop the demo: the caller races this future against it.
async fn blocking<T>(f: impl FnOnce() -> T) -> T {
    let v = tokio::task::block_in_place(f);
    tokio::task::yield_now().await;
    v
}

/// How the demo went.
pub struct Outcome {
    /// Steps that did not show what they should have.
    pub failures: Vec<String>,
    /// What was left running (`--keep`): how to use it and remove it.
    pub kept: Option<String>,
}

/// The demo's narration, on stdout as it goes.
macro_rules! say {
    ($($t:tt)*) => { println!($($t)*) };
}

/// `ping` output's summary: "3/3 replies, rtt avg 0.071 ms".
fn ping_summary(out: &str) -> String {
    let got = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| {
            let n: Vec<&str> = l.split_whitespace().collect();
            Some(format!("{}/{} replies", n.get(3)?, n.first()?))
        })
        .unwrap_or_else(|| "no summary".into());
    let avg = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| {
            l.split('=')
                .nth(1)?
                .trim()
                .split('/')
                .nth(1)
                .map(str::to_owned)
        });
    match avg {
        Some(a) => format!("{got}, rtt avg {a} ms"),
        None => got,
    }
}

/// Runs the demo on the lab of `lock` (built with `--cni`, in peer mode).
/// With `keep`, the containerds and containers stay; otherwise they are
/// removed, and what is left afterwards is checked.
pub async fn run(lock: &LabLock, keep: bool) -> anyhow::Result<Outcome> {
    let lab = lock.lab().clone();
    anyhow::ensure!(
        agents::cni_enabled(&lab),
        "lab {lab} was not built with --cni"
    );
    let mut failures = Vec::new();

    say!("\n1. containerd in each node, on the CNI configuration the node's shortpathd wrote");
    let mut ctrds: Vec<Containerd> = Vec::new();
    for node in NODES {
        let c = blocking(|| Containerd::start(&lab, node, "")).await?;
        say!(
            "   {node}: {} (conflist from {})",
            c.dir().display(),
            agents::cni_conf_dir(&lab, node).display()
        );
        ctrds.push(c);
    }

    say!("\n2. three busybox containers, `ctr run --rm --cni`: shortpath-cni wires each one, host-local gives the address, the node's agent puts it on the fast path");
    let before_ids: Vec<Vec<String>> = blocking(|| {
        NODES
            .iter()
            .map(|n| agent(&lab, n, &Request::EndpointList).map(|l| endpoint_ids(&l)))
            .collect::<anyhow::Result<_>>()
    })
    .await?;
    for c in &CONTAINERS {
        let ctrd = &mut ctrds[c.on];
        blocking(|| ctrd.run(c.id, c.cmd)).await?;
    }
    // Address and veth of each container.
    let mut addrs: BTreeMap<&str, IpAddr> = BTreeMap::new();
    let mut veths: BTreeMap<&str, String> = BTreeMap::new();
    for c in &CONTAINERS {
        let node = NODES[c.on];
        let ctrd = &ctrds[c.on];
        let ip = blocking(|| ctrd.ip(c.id)).await?;
        let list = blocking(|| agent(&lab, node, &Request::EndpointList)).await?;
        let ep = match endpoint_of(&list, ip) {
            Some((id, host_if, true)) => {
                veths.insert(c.id, host_if.clone());
                format!("endpoint {id} on {host_if}, in the kernel")
            }
            Some((id, _, false)) => {
                failures.push(format!("{}'s endpoint {id} is not in the kernel", c.id));
                format!("endpoint {id}, NOT in the kernel")
            }
            None => {
                failures.push(format!("{node}'s agent has no endpoint for {ip}"));
                "NO endpoint".to_owned()
            }
        };
        say!("   {}  {node}  {ip:<15} {:<26} {ep}", c.id, c.role);
        addrs.insert(c.id, ip);
    }

    let before = blocking(|| every_port(&lab)).await?;

    say!("\n3. ping, {PINGS} packets each way");
    for (from, to) in [("c1", "c3"), ("c3", "c1"), ("c2", "c1")] {
        let (cf, ct) = (container(from), container(to));
        let ip = addrs[to].to_string();
        let ctrd = &ctrds[cf.on];
        let o = blocking(|| ctrd.exec(from, &["/bin/ping", "-c", PINGS, "-W", "2", &ip])).await?;
        let text = String::from_utf8_lossy(&o.stdout);
        let result = if o.status.success() {
            ping_summary(&text)
        } else {
            failures.push(format!("ping {from} → {to} failed"));
            format!(
                "FAILED: {} {}",
                ping_summary(&text),
                String::from_utf8_lossy(&o.stderr).trim()
            )
        };
        say!(
            "   {from} ({}) → {to} ({}) {ip:<15} {result}",
            NODES[cf.on],
            NODES[ct.on]
        );
    }

    say!("\n4. TCP: c1 (node-a) connects to c3:{ECHO_PORT} (node-b), which echoes");
    let msg = "hello from c1";
    let script = format!("echo '{msg}' | /bin/nc -w 2 {} {ECHO_PORT}", addrs["c3"]);
    let o = blocking(|| ctrds[0].exec("c1", &["/bin/sh", "-c", &script])).await?;
    let got = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    if o.status.success() && got == msg {
        say!("   sent \"{msg}\", got \"{got}\" back");
    } else {
        failures.push("the TCP echo failed".into());
        say!(
            "   FAILED: sent \"{msg}\", got \"{got}\" ({}) {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }

    let after = blocking(|| every_port(&lab)).await?;
    say!("\n5. the fast path, as the agents count it (packets during 3 and 4)");
    let names: BTreeMap<&str, &str> = veths.iter().map(|(c, v)| (v.as_str(), *c)).collect();
    let mut t = crate::table::Table::new([
        "NODE",
        "HOOK",
        "DEVICE",
        "REDIRECT_PEER",
        "REDIRECT_CACHED",
        "REDIRECT_NEIGH",
        "REDIRECT",
        "TO THE STACK",
    ]);
    // (node, "nic" or the container) → what its program counted.
    let mut delta: BTreeMap<(&str, &str), BTreeMap<String, u64>> = BTreeMap::new();
    let mut passed: BTreeMap<String, u64> = BTreeMap::new();
    for (i, node) in NODES.iter().enumerate() {
        for p in &after[i] {
            let (key, label) = match (p.hook.as_str(), names.get(p.ifname.as_str())) {
                ("from_nic", _) => ("nic", format!("{} (NIC)", p.ifname)),
                (_, Some(c)) => (*c, format!("{} ({c})", p.ifname)),
                // The lab's own pods.
                _ => continue,
            };
            let old = before[i]
                .iter()
                .find(|q| q.ifname == p.ifname && q.hook == p.hook);
            let d = p.minus(old);
            for (k, v) in d.counters.iter().filter(|(k, _)| k.starts_with("pass_")) {
                *passed.entry(k.clone()).or_default() += v;
            }
            let mut row = vec![node.to_string(), p.hook.clone(), label];
            row.extend(REDIRECTS.map(|r| d.get(r).to_string()));
            row.push(d.passed().to_string());
            t.row(row);
            delta.insert((node, key), d.counters);
        }
    }
    for line in t.to_string().lines() {
        say!("   {line}");
    }
    let get = |node: &str, key: &str, reasons: &[&str]| -> u64 {
        let d = delta.get(&(node, key));
        reasons
            .iter()
            .map(|r| d.and_then(|d| d.get(*r)).copied().unwrap_or(0))
            .sum()
    };
    const OUT: &[&str] = &["redirect_cached", "redirect_neigh", "redirect"];
    const IN: &[&str] = &["redirect_peer"];
    let fast = [
        get("node-a", "c1", OUT),
        get("node-b", "nic", IN),
        get("node-b", "c3", OUT),
        get("node-a", "nic", IN),
    ];
    say!(
        "   c1 → c3: node-a's from_pod sent {} packets of c1 straight out of the NIC (redirect_cached, redirect_neigh, redirect); node-b's from_nic put {} straight into c3 (redirect_peer).",
        fast[0],
        fast[1]
    );
    say!(
        "   c3 → c1: node-b's from_pod sent {} packets of c3 straight out of the NIC; node-a's from_nic put {} straight into c1.",
        fast[2],
        fast[3]
    );
    say!(
        "   c2 ↔ c1 (one node): from_pod put {} packets straight into the other container (redirect_peer).",
        get("node-a", "c2", IN) + get("node-a", "c1", IN)
    );
    say!("   Those packets skipped the nodes' IP stack: the programs looked up the next hop themselves and handed each packet to the next device.");
    let passed: Vec<String> = passed
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !passed.is_empty() {
        say!(
            "   To the stack, by reason (what the fast path leaves to it on purpose: ARP, link-local, frames for other hosts): {}.",
            passed.join(", ")
        );
    }
    if fast.contains(&0) {
        failures.push("the counters show no fast path in one direction".into());
    }

    if keep {
        let kept = kept_text(&lab, &ctrds, &addrs);
        for c in ctrds {
            c.keep();
        }
        return Ok(Outcome {
            failures,
            kept: Some(kept),
        });
    }

    say!("\n6. removing the containers: each `ctr run --rm` calls the plugin's DEL");
    let failed_before = failures.len();
    for (i, ctrd) in ctrds.iter_mut().enumerate() {
        let node = NODES[i];
        if let Err(e) = blocking(|| ctrd.remove_all()).await {
            failures.push(e.to_string());
        }
        let ctrd = &*ctrd;
        let (links, leases, log) = blocking(|| (ctrd.veths(), ctrd.leases(), ctrd.cni_log())).await;
        let links = links?;
        let list = blocking(|| agent(&lab, node, &Request::EndpointList)).await?;
        let extra: Vec<String> = endpoint_ids(&list)
            .into_iter()
            .filter(|id| !before_ids[i].contains(id))
            .collect();
        let (adds, dels) = (
            log.matches("command=ADD").count(),
            log.matches("command=DEL").count(),
        );
        let errors = log.matches("result=error").count();
        say!(
            "   {node}: {} sp… veths, {} container endpoints (map entries {}), {} IPAM leases; CNI calls: {adds} ADD, {dels} DEL, {errors} failed",
            links.len(),
            extra.len(),
            list["map_entries"],
            leases.len()
        );
        if !links.is_empty() || !extra.is_empty() || !leases.is_empty() {
            failures.push(format!(
                "{node}: left behind: veths {links:?}, endpoints {extra:?}, leases {leases:?}"
            ));
        }
        if errors > 0 {
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("result=error")).collect();
            failures.push(format!("{node}: CNI calls failed:\n{}", lines.join("\n")));
        }
    }
    for c in ctrds.drain(..) {
        let (node, dir) = (c.node().to_owned(), c.dir().to_owned());
        blocking(|| drop(c)).await;
        let left = containerd::processes_naming(&dir);
        if !left.is_empty() {
            failures.push(format!("{node}: containerd processes left: {left:?}"));
        }
    }
    if failures.len() == failed_before {
        say!("   nothing left; containerd stopped in both nodes");
    }
    Ok(Outcome {
        failures,
        kept: None,
    })
}

fn container(id: &str) -> &'static Container {
    CONTAINERS
        .iter()
        .find(|c| c.id == id)
        .expect("one of the demo's containers")
}

/// How to use what `--keep` left, and how to remove it.
fn kept_text(lab: &LabName, ctrds: &[Containerd], addrs: &BTreeMap<&str, IpAddr>) -> String {
    let sock = |i: usize| -> PathBuf { ctrds[i].socket() };
    format!(
        "Kept (--keep): lab {lab}, containerd in node-a and node-b, containers c1 and c2 (node-a) and c3 (node-b).\n\
         \x20 a shell in c1:        sudo ctr --address {} task exec -t --exec-id sh c1 /bin/sh\n\
         \x20                       (then: ping {c3}   or   echo hi | nc -w 1 {c3} {ECHO_PORT})\n\
         \x20 node-b's containers:  sudo ctr --address {} task ls\n\
         \x20 node-b's counters:    sudo shortpath agent --socket {} status\n\
         \x20 the lab:              sudo shortpath lab status --name {lab}\n\
         \x20 remove it all:        sudo shortpath demo --name {lab} --down\n\
         \x20                       (not `shortpath lab down` alone: it would leave the containerds running)\n",
        sock(0).display(),
        sock(1).display(),
        agents::socket(lab, "node-b").display(),
        c3 = addrs["c3"],
    )
}

/// Removes what `shortpath demo --keep` left in `lab`'s nodes: the
/// containers (each `ctr run` calls DEL while the agents still run), the
/// containerds and their shims. Returns the nodes it cleaned.
pub fn remove_kept(lab: &LabName) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    for node in containerd::present(lab) {
        if let Some(mut c) = Containerd::adopt(lab, &node) {
            let r = c.remove_all();
            let dir = c.dir().to_owned();
            drop(c);
            r?;
            let left = containerd::processes_naming(&dir);
            anyhow::ensure!(
                left.is_empty(),
                "{node}: containerd processes left: {left:?}"
            );
            done.push(node);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_reads_busybox_ping() {
        let out = "PING 172.17.2.100 (172.17.2.100): 56 data bytes\n\
                   64 bytes from 172.17.2.100: seq=0 ttl=62 time=0.068 ms\n\n\
                   --- 172.17.2.100 ping statistics ---\n\
                   3 packets transmitted, 2 packets received, 33% packet loss\n\
                   round-trip min/avg/max = 0.068/0.071/0.080 ms\n";
        assert_eq!(ping_summary(out), "2/3 replies, rtt avg 0.071 ms");
        assert_eq!(ping_summary(""), "no summary");
    }

    #[test]
    fn endpoints_are_found_by_address() {
        let list = serde_json::json!({"endpoints": [
            {"endpoint": {"id": "pod-a", "host_if": "vpa", "addrs": ["172.17.1.10"]}, "in_kernel": true},
            {"endpoint": {"id": "default-c1_eth0", "host_if": "sp1", "addrs": ["172.17.1.100", "fd00:1::100"]}, "in_kernel": false},
        ]});
        assert_eq!(
            endpoint_of(&list, "172.17.1.100".parse().unwrap()),
            Some(("default-c1_eth0".into(), "sp1".into(), false))
        );
        assert_eq!(endpoint_of(&list, "172.17.1.101".parse().unwrap()), None);
        assert_eq!(endpoint_ids(&list), ["default-c1_eth0", "pod-a"]);
    }
}
