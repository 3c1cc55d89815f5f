//! The CNI plugin's cost per call, as a runtime pays it: `shortpath-cni`
//! exec'd in the first node's namespace (`nsenter --net=…`) with a crafted
//! CNI_* environment and a config on stdin, `host-local` IPAM in a data
//! directory of its own, against the node's shortpathd. N pods are added
//! (P calls at a time), then removed; each call is timed from exec to exit.
//! Then what the pods left is counted: veths, leases, agent endpoints and
//! map entries, link pins, namespaces. A measurement command, not a test:
//! it prints figures.

use std::{
    collections::BTreeSet,
    io::Write as _,
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use serde::Serialize;
use serde_json::{json, Value};

use crate::{
    agent::api::{self, Request},
    control::agents,
    lab::{self, NodeInfo},
    names::LabName,
    netns::{self, Netns},
    runtime::{self, LabLock},
};

/// The goal for one ADD on this kind of machine.
pub const ADD_P99_GOAL_MS: f64 = 50.0;

/// The network name in the config (and host-local's lease directory).
const NET_NAME: &str = "shortpath-bench";

/// Where the reference plugins are installed (Debian's
/// containernetworking-plugins, then the upstream default).
const IPAM_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// `shortpath-cni` beside the running executable.
pub fn plugin_path() -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("shortpath-cni");
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build it with cargo build --release",
        path.display()
    );
    Ok(path)
}

/// The directory that holds `host-local`, for CNI_PATH.
pub fn ipam_dir() -> anyhow::Result<PathBuf> {
    IPAM_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("host-local").is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the host-local IPAM plugin is not in {}: run scripts/setup.sh (containernetworking-plugins)",
                IPAM_DIRS.join(" or ")
            )
        })
}

/// Wall time of one kind of call, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct CallLatency {
    pub calls: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl CallLatency {
    fn of(mut ms: Vec<f64>) -> Option<Self> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        Some(Self {
            calls: ms.len(),
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            max_ms: *ms.last().expect("not empty"),
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
        })
    }
}

/// What the pods left behind, against what was there before them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Leaks {
    /// Host veths (`sp…`) in the node's namespace.
    pub veths: Vec<String>,
    /// host-local lease files.
    pub leases: Vec<String>,
    /// Endpoints the agent still lists.
    pub endpoints: Vec<String>,
    /// Entries in the node's endpoint map beyond those before.
    pub map_entries: i64,
    /// Pinned links under `<pin root>/<node>/links`.
    pub link_pins: Vec<String>,
    /// Pod namespaces still there.
    pub namespaces: Vec<String>,
}

impl Leaks {
    pub fn total(&self) -> usize {
        self.veths.len()
            + self.leases.len()
            + self.endpoints.len()
            + self.map_entries.unsigned_abs() as usize
            + self.link_pins.len()
            + self.namespaces.len()
    }
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct CniBench {
    pub lab: String,
    pub node: String,
    pub pods: usize,
    pub parallel: usize,
    pub add: Option<CallLatency>,
    pub del: Option<CallLatency>,
    /// Wall time of all ADDs, of all DELs.
    pub add_phase_s: f64,
    pub del_phase_s: f64,
    /// Calls that failed (ADD or DEL), with the plugin's answer.
    pub failures: Vec<String>,
    pub leaks: Leaks,
}

/// The node's kernel and agent view that leaks are counted against.
struct Snapshot {
    veths: BTreeSet<String>,
    endpoints: BTreeSet<String>,
    map_entries: i64,
    link_pins: BTreeSet<String>,
}

/// One pod: its namespace and container id.
struct Pod {
    ns: Netns,
    id: String,
}

/// Everything one run needs, shared by its threads.
struct Setup {
    plugin: PathBuf,
    cni_path: PathBuf,
    node_ns: String,
    conf: Value,
    stop: Arc<AtomicBool>,
}

/// Deletes the pod namespaces and the work directory when the run ends,
/// also when it is interrupted (the future dropped): workers stop after
/// their current call.
struct Cleanup {
    stop: Arc<AtomicBool>,
    namespaces: Vec<String>,
    work: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for n in &self.namespaces {
            let _ = Netns::new(n).delete();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// A host veth the plugin made: `sp` and 12 hex digits.
fn plugin_veth(name: &str) -> bool {
    name.len() == 14 && name.starts_with("sp") && name[2..].bytes().all(|c| c.is_ascii_hexdigit())
}

/// host-local ranges inside the node's pod CIDRs, clear of the lab's own
/// pods (.2 onwards): from .20 to 5 below the broadcast address, and the
/// same offsets in the IPv6 one. Errors if `pods` do not fit.
fn ranges(node: &NodeInfo, pods: usize) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut room = usize::MAX;
    if let Some(v4) = node.pod_ipv4.as_deref() {
        let net: ipnet::Ipv4Net = v4.parse()?;
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        anyhow::ensure!(
            last - first >= 64,
            "node {}'s IPv4 pod CIDR {net} is too small",
            node.name
        );
        let (start, end) = (first + 20, last - 5);
        room = room.min((end - start + 1) as usize);
        out.push(json!([{
            "subnet": net.to_string(),
            "rangeStart": IpAddr::V4(start.into()).to_string(),
            "rangeEnd": IpAddr::V4(end.into()).to_string(),
        }]));
    }
    if let Some(v6) = node.pod_ipv6.as_deref() {
        let net: ipnet::Ipv6Net = v6.parse()?;
        anyhow::ensure!(
            net.prefix_len() <= 112,
            "node {}'s IPv6 pod CIDR {net} is too small",
            node.name
        );
        let first = u128::from(net.network());
        let (start, end) = (first + 0x20, first + 0xfffa);
        room = room.min((end - start + 1) as usize);
        out.push(json!([{
            "subnet": net.to_string(),
            "rangeStart": IpAddr::V6(start.into()).to_string(),
            "rangeEnd": IpAddr::V6(end.into()).to_string(),
        }]));
    }
    anyhow::ensure!(!out.is_empty(), "node {} has no pod CIDR", node.name);
    anyhow::ensure!(
        pods <= room,
        "node {}'s pod CIDRs have room for {room} pods here: use --pods {room} or fewer",
        node.name
    );
    Ok(out)
}

/// One plugin call: (wall time from exec to exit, success, stdout).
fn call(s: &Setup, command: &str, pod: &Pod, conf: &[u8]) -> anyhow::Result<(f64, bool, Value)> {
    let t = Instant::now();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", Netns::new(&s.node_ns).path().display()))
        .arg(&s.plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &pod.id)
        .env("CNI_NETNS", pod.ns.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &s.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run nsenter {}: {e}", s.plugin.display()))?;
    // A plugin that exits without reading its config shows in its answer.
    let _ = child.stdin.take().expect("piped").write_all(conf);
    let o = child.wait_with_output()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let text = String::from_utf8_lossy(&o.stdout);
    let out = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "stdout": text }))
    };
    let out = if !o.status.success() && !out.is_object() {
        json!({ "status": o.status.to_string(), "stderr": String::from_utf8_lossy(&o.stderr) })
    } else {
        out
    };
    Ok((ms, o.status.success(), out))
}

/// Runs `work` on every pod index with `parallel` threads; returns each
/// call's time, and the failures.
fn phase(
    pods: usize,
    parallel: usize,
    stop: &AtomicBool,
    work: impl Fn(usize) -> Result<f64, String> + Sync,
) -> (Vec<f64>, Vec<String>) {
    let next = AtomicUsize::new(0);
    let times = Mutex::new(Vec::with_capacity(pods));
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..parallel {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= pods || stop.load(Ordering::SeqCst) {
                    break;
                }
                match work(i) {
                    Ok(ms) => times.lock().expect("not poisoned").push(ms),
                    Err(e) => failures.lock().expect("not poisoned").push(e),
                }
            });
        }
    });
    (
        times.into_inner().expect("not poisoned"),
        failures.into_inner().expect("not poisoned"),
    )
}

fn snapshot(lab: &LabName, node: &NodeInfo) -> anyhow::Result<Snapshot> {
    let names = netns::run_in_blocking(&Netns::new(&node.netns), || {
        nix::net::if_::if_nameindex().map(|l| {
            l.iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
    })??;
    let list = api::call(&agents::socket(lab, &node.name), &Request::EndpointList)?;
    let endpoints = list["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["endpoint"]["id"].as_str().map(str::to_owned))
        .collect();
    let links = lab::pin_root(lab)
        .path()
        .join(node.name.as_str())
        .join("links");
    let link_pins = std::fs::read_dir(&links)
        .map_err(|e| anyhow::anyhow!("{}: {e}", links.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    Ok(Snapshot {
        veths: names.into_iter().filter(|n| plugin_veth(n)).collect(),
        endpoints,
        map_entries: list["map_entries"].as_i64().unwrap_or(0),
        link_pins,
    })
}

/// What is there now that was not before.
fn leaks(before: &Snapshot, after: &Snapshot, leases_dir: &Path, pods: &[Pod]) -> Leaks {
    let new = |a: &BTreeSet<String>, b: &BTreeSet<String>| b.difference(a).cloned().collect();
    let leases = std::fs::read_dir(leases_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("last_reserved_ip") && n != "lock")
                .collect()
        })
        .unwrap_or_default();
    Leaks {
        veths: new(&before.veths, &after.veths),
        leases,
        endpoints: new(&before.endpoints, &after.endpoints),
        map_entries: after.map_entries - before.map_entries,
        link_pins: new(&before.link_pins, &after.link_pins),
        namespaces: pods
            .iter()
            .filter(|p| p.ns.exists())
            .map(|p| p.ns.name().to_owned())
            .collect(),
    }
}

/// Runs the measurement on the first node of the lab of `lock` (built with
/// agents): `pods` pods added, `parallel` calls at a time, then removed.
pub async fn run(
    lock: &LabLock,
    plugin: PathBuf,
    cni_path: PathBuf,
    pods: usize,
    parallel: usize,
) -> anyhow::Result<CniBench> {
    let lab = lock.lab().clone();
    anyhow::ensure!(agents::enabled(&lab), "lab {lab} runs no agents");
    let inv = lab::inventory(&lab).await?;
    let node = inv.nodes.first().expect("a lab has nodes").clone();
    let work = runtime::lab_dir(&lab).join("cni-bench");
    let names: Vec<String> = (0..pods).map(|i| format!("{lab}-cb{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let _cleanup = Cleanup {
        stop: stop.clone(),
        namespaces: names.clone(),
        work: work.clone(),
    };
    std::fs::create_dir_all(&work)?;
    let conf = json!({
        "cniVersion": "1.1.0",
        "name": NET_NAME,
        "type": "shortpath",
        "socket": agents::socket(&lab, &node.name),
        "pinRoot": lab::pin_root(&lab).path(),
        "node": node.name.as_str(),
        "logFile": work.join("plugin.log"),
        "ipam": {
            "type": "host-local",
            "dataDir": work.join("ipam"),
            "ranges": ranges(&node, pods)?,
        }
    });
    let setup = Arc::new(Setup {
        plugin,
        cni_path,
        node_ns: node.netns.clone(),
        conf,
        stop,
    });
    let parallel = parallel.clamp(1, pods.max(1));
    let (lab2, node2) = (lab.clone(), node.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<CniBench> {
        let s = &setup;
        let before = snapshot(&lab2, &node2)?;
        let pod_list: Vec<Pod> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Pod {
                ns: Netns::new(n),
                id: format!("cnibench{i}"),
            })
            .collect();
        for p in &pod_list {
            p.ns.create()?;
        }
        // ADD every pod; keep each result for its DEL (prevResult).
        let results: Vec<Mutex<Value>> = (0..pods).map(|_| Mutex::new(Value::Null)).collect();
        let add_conf = serde_json::to_vec(&s.conf)?;
        let t = Instant::now();
        let (add_ms, mut failures) = phase(pods, parallel, &s.stop, |i| {
            let pod = &pod_list[i];
            let (ms, ok, out) =
                call(s, "ADD", pod, &add_conf).map_err(|e| format!("ADD {}: {e}", pod.id))?;
            if !ok {
                return Err(format!("ADD {}: {out}", pod.id));
            }
            *results[i].lock().expect("not poisoned") = out;
            Ok(ms)
        });
        let add_phase_s = t.elapsed().as_secs_f64();
        // DEL every pod (also those whose ADD failed: a runtime does), then
        // its namespace, as a runtime removes a sandbox.
        let t = Instant::now();
        let (del_ms, del_failures) = phase(pods, parallel, &s.stop, |i| {
            let pod = &pod_list[i];
            let mut conf = s.conf.clone();
            let prev = results[i].lock().expect("not poisoned").clone();
            if !prev.is_null() {
                conf["prevResult"] = prev;
            }
            let conf = serde_json::to_vec(&conf).expect("serializes");
            let r = call(s, "DEL", pod, &conf).map_err(|e| format!("DEL {}: {e}", pod.id));
            let _ = pod.ns.delete();
            let (ms, ok, out) = r?;
            if !ok {
                return Err(format!("DEL {}: {out}", pod.id));
            }
            Ok(ms)
        });
        let del_phase_s = t.elapsed().as_secs_f64();
        failures.extend(del_failures);
        anyhow::ensure!(!s.stop.load(Ordering::SeqCst), "stopped");
        let after = snapshot(&lab2, &node2)?;
        let leaks = leaks(
            &before,
            &after,
            &work.join("ipam").join(NET_NAME),
            &pod_list,
        );
        Ok(CniBench {
            lab: lab2.to_string(),
            node: node2.name.to_string(),
            pods,
            parallel,
            add: CallLatency::of(add_ms),
            del: CallLatency::of(del_ms),
            add_phase_s,
            del_phase_s,
            failures,
            leaks,
        })
    })
    .await?
}

impl CniBench {
    /// Whether every call succeeded and nothing was left.
    pub fn clean(&self) -> bool {
        self.failures.is_empty() && self.leaks.total() == 0
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "shortpath-cni on {} of lab {}: {} pods, {} call{} at a time \
             (exec → exit, via nsenter; host-local IPAM)\n\n",
            self.node,
            self.lab,
            self.pods,
            self.parallel,
            if self.parallel == 1 { "" } else { "s" }
        );
        let mut t =
            crate::table::Table::new(["CALL", "CALLS", "P50 ms", "P99 ms", "MAX ms", "MEAN ms"]);
        for (name, l) in [("ADD", &self.add), ("DEL", &self.del)] {
            match l {
                Some(l) => t.row([
                    name.to_owned(),
                    l.calls.to_string(),
                    format!("{:.1}", l.p50_ms),
                    format!("{:.1}", l.p99_ms),
                    format!("{:.1}", l.max_ms),
                    format!("{:.1}", l.mean_ms),
                ]),
                None => t.row([name, "0", "-", "-", "-", "-"]),
            };
        }
        out += &t.to_string();
        let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        out += &format!(
            "\nall ADDs {:.2} s ({:.0} pods/s), all DELs {:.2} s ({:.0} pods/s)\n",
            self.add_phase_s,
            rate(self.add.as_ref().map_or(0, |l| l.calls), self.add_phase_s),
            self.del_phase_s,
            rate(self.del.as_ref().map_or(0, |l| l.calls), self.del_phase_s),
        );
        if let Some(a) = &self.add {
            out += &format!(
                "goal ADD p99 ≤ {ADD_P99_GOAL_MS:.0} ms: {} ({:.1} ms)\n",
                if a.p99_ms <= ADD_P99_GOAL_MS {
                    "met"
                } else {
                    "missed"
                },
                a.p99_ms
            );
        }
        let l = &self.leaks;
        out += &format!(
            "leaks: {} (veths {}, IPAM leases {}, agent endpoints {}, map entries {}, link pins {}, namespaces {})\n",
            if l.total() == 0 { "none".to_owned() } else { l.total().to_string() },
            l.veths.len(),
            l.leases.len(),
            l.endpoints.len(),
            l.map_entries,
            l.link_pins.len(),
            l.namespaces.len()
        );
        for (what, v) in [
            ("veths", &l.veths),
            ("leases", &l.leases),
            ("endpoints", &l.endpoints),
            ("link pins", &l.link_pins),
            ("namespaces", &l.namespaces),
        ] {
            if !v.is_empty() {
                out += &format!("  {what} left: {}\n", v.join(" "));
            }
        }
        if !self.failures.is_empty() {
            out += &format!("{} calls failed:\n", self.failures.len());
            for f in self.failures.iter().take(10) {
                out += &format!("  {f}\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_call_times() {
        let l = CallLatency::of((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!(
            (l.calls, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 51.0, 99.0, 100.0)
        );
        assert!((l.mean_ms - 50.5).abs() < 1e-9);
        assert!(CallLatency::of(vec![]).is_none());
    }

    #[test]
    fn only_the_plugins_veths_count() {
        assert!(plugin_veth("sp1aa13b51c5df"));
        assert!(!plugin_veth("spd0"));
        assert!(!plugin_veth("lxcc34f3dad"));
        assert!(!plugin_veth("spzzzzzzzzzzzz"));
    }

    #[test]
    fn ranges_leave_the_lab_pods_alone_and_bound_the_pod_count() {
        let node = NodeInfo {
            name: "node-a".parse().unwrap(),
            netns: "x-node-a".into(),
            nic: nic(),
            bridge: nic(),
            pod_ipv4: Some("172.17.1.0/24".into()),
            pod_ipv6: Some("fd00:172:17:1::/64".into()),
        };
        let r = ranges(&node, 100).unwrap();
        assert_eq!(r[0][0]["rangeStart"], "172.17.1.20");
        assert_eq!(r[0][0]["rangeEnd"], "172.17.1.250");
        assert_eq!(r[1][0]["rangeStart"], "fd00:172:17:1::20");
        assert!(ranges(&node, 231).is_ok());
        assert!(ranges(&node, 232).is_err());
    }

    fn nic() -> lab::NicInfo {
        lab::NicInfo {
            name: "eth1".into(),
            ifindex: 2,
            ipv4: None,
            ipv6: None,
            mac: crate::nl::Mac([2, 0, 0, 0, 0, 1]),
        }
    }
}
