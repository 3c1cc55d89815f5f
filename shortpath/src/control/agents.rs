//! A lab whose nodes run `shortpathd` (`lab up --agent`): one agent per
//! node namespace, started from the binary beside `shortpath`, with its
//! state, socket and log in `/run/shortpath/<lab>/agents/<node>/`. The lab
//! registers its pods as endpoints, switches modes through the agents, and
//! stops them before it goes.
//!
//! Only the agent's public API is used: its command line and its socket.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;

use super::ControlError;
use crate::{
    agent::api::{self, ClientError, EndpointRequest, Request},
    dataplane::{AttachKind, Mode},
    lab::{self, Inventory, NodeInfo},
    names::LabName,
    netns::{self, Netns},
    runtime::{self, LabLock},
};

/// The runtime file whose presence says the lab runs agents.
pub const AGENTS_FILE: &str = "agents.json";
/// Environment variable naming the agent binary (default: `shortpathd`
/// beside the running `shortpath`).
pub const AGENT_BIN_ENV: &str = "SHORTPATHD";
/// Each agent serves `/metrics` on this port of its node's own loopback.
pub const METRICS: &str = "127.0.0.1:9464";
const READY_WITHIN: Duration = Duration::from_secs(10);
const STOP_WITHIN: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("cannot find the agent binary {path}: {source} (cargo build --release builds shortpathd beside shortpath, or set {AGENT_BIN_ENV})")]
    Binary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lab {lab}, node {node}: starting shortpathd: {source}")]
    Spawn {
        lab: LabName,
        node: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lab {lab}, node {node}: shortpathd did not become ready within {READY_WITHIN:?}; its log ({log}) ends with:\n{tail}")]
    NotReady {
        lab: LabName,
        node: String,
        log: String,
        tail: String,
    },
    #[error("lab {lab}, node {node}: {source}")]
    Api {
        lab: LabName,
        node: String,
        #[source]
        source: ClientError,
    },
}

/// A node's agent directory.
pub fn dir(lab: &LabName, node: &str) -> PathBuf {
    runtime::lab_dir(lab).join("agents").join(node)
}

pub fn socket(lab: &LabName, node: &str) -> PathBuf {
    dir(lab, node).join("api.sock")
}

/// Where node `node`'s agent writes its CNI conflist (`lab up --cni`).
pub fn cni_conf_dir(lab: &LabName, node: &str) -> PathBuf {
    dir(lab, node).join("cni").join("net.d")
}

/// Whether the lab's agents write CNI configurations (`lab up --cni`).
pub fn cni_enabled(lab: &LabName) -> bool {
    runtime::read_state(lab, AGENTS_FILE)
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .is_some_and(|v| v["cni"] == true)
}

/// The IPAM section a lab node's conflist gets: host-local over the
/// node's pod CIDRs, from .100 (::100) on, clear of the lab's own pods,
/// with its leases in the agent's directory.
fn cni_ipam(lab: &LabName, node: &NodeInfo) -> Value {
    let mut ranges = Vec::new();
    if let Some(v4) = node
        .pod_ipv4
        .as_deref()
        .and_then(|s| s.parse::<ipnet::Ipv4Net>().ok())
    {
        let start = std::net::Ipv4Addr::from(u32::from(v4.network()) + 100);
        ranges.push(
            serde_json::json!([{ "subnet": v4.to_string(), "rangeStart": start.to_string() }]),
        );
    }
    if let Some(v6) = node
        .pod_ipv6
        .as_deref()
        .and_then(|s| s.parse::<ipnet::Ipv6Net>().ok())
    {
        let start = std::net::Ipv6Addr::from(u128::from(v6.network()) + 0x100);
        ranges.push(
            serde_json::json!([{ "subnet": v6.to_string(), "rangeStart": start.to_string() }]),
        );
    }
    serde_json::json!({
        "type": "host-local",
        "dataDir": dir(lab, &node.name).join("cni").join("ipam"),
        "ranges": ranges,
    })
}

/// Whether the lab was built with agents.
pub fn enabled(lab: &LabName) -> bool {
    runtime::read_state(lab, AGENTS_FILE).is_ok_and(|s| s.is_some())
}

fn binary() -> Result<PathBuf, AgentsError> {
    let path = match std::env::var_os(AGENT_BIN_ENV) {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .map(|e| e.with_file_name("shortpathd"))
            .unwrap_or_else(|_| PathBuf::from("shortpathd")),
    };
    std::fs::metadata(&path).map_err(|source| AgentsError::Binary {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn cidrs(node: &NodeInfo) -> String {
    [&node.pod_ipv4, &node.pod_ipv6]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(",")
}

fn call(lab: &LabName, node: &str, req: &Request) -> Result<Value, AgentsError> {
    api::call(&socket(lab, node), req).map_err(|source| AgentsError::Api {
        lab: lab.clone(),
        node: node.to_owned(),
        source,
    })
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Starts one agent per node (in `mode`), waits until each answers, and
/// registers the node's pods with it.
pub async fn start(
    lock: &LabLock,
    inv: &Inventory,
    mode: Mode,
    attach: AttachKind,
    cni: bool,
) -> Result<(), ControlError> {
    let lab = lock.lab();
    let bin = binary()?;
    runtime::write_json(
        lock,
        AGENTS_FILE,
        &serde_json::json!({ "binary": bin, "cni": cni }),
    )
    .map_err(|source| ControlError::State {
        lab: lab.clone(),
        file: AGENTS_FILE,
        source,
    })?;
    let cluster = inv.cluster_cidrs();
    for node in &inv.nodes {
        launch(lab, node, &cluster, Some((mode, attach))).await?;
        register(lab, inv, node).await?;
    }
    Ok(())
}

/// Kills node `node`'s agent (SIGKILL: no goodbye) and starts it again
/// without a mode, so it adopts what the kernel runs. Returns the new pid
/// and how long it took from spawn to ready.
pub async fn restart(lab: &LabName, node: &NodeInfo) -> Result<(u32, Duration), ControlError> {
    if let Some(pid) = agent_pid(lab, &node.name) {
        use nix::sys::signal::{kill, Signal};
        let _ = kill(pid, Signal::SIGKILL);
        let t = Instant::now();
        while kill(pid, None).is_ok() && t.elapsed() < STOP_WITHIN {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let cluster = lab::ready_state(lab)?.plan.cluster_cidrs();
    Ok(launch(lab, node, &cluster, None).await?)
}

/// Starts node `node`'s agent in its namespace, detached, and waits until
/// it answers ready. `cluster`: every node's pod CIDRs (`--cluster-cidr`).
async fn launch(
    lab: &LabName,
    node: &NodeInfo,
    cluster: &[IpNet],
    setting: Option<(Mode, AttachKind)>,
) -> Result<(u32, Duration), AgentsError> {
    let bin = binary()?;
    let d = dir(lab, &node.name);
    let spawn_err = |source| AgentsError::Spawn {
        lab: lab.clone(),
        node: node.name.to_string(),
        source,
    };
    crate::agent::store::ensure_dir("agent state", &d)
        .map_err(|e| spawn_err(std::io::Error::other(e)))?;
    let log_path = d.join("agent.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(spawn_err)?;
    let fd = Netns::new(&node.netns)
        .open()
        .map_err(|e| spawn_err(std::io::Error::other(e)))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--iface")
        .arg(&node.nic.name)
        .arg("--pod-cidr")
        .arg(cidrs(node))
        .arg("--cluster-cidr")
        .arg(crate::agent::ClusterCidrs(cluster.to_vec()).to_string());
    if let Some((mode, attach)) = setting {
        cmd.arg("--mode")
            .arg(mode.as_str())
            .arg("--attach")
            .arg(attach.as_str());
    }
    if cni_enabled(lab) {
        let cni = d.join("cni");
        std::fs::create_dir_all(&cni).map_err(spawn_err)?;
        let ipam = cni.join("ipam.json");
        std::fs::write(&ipam, cni_ipam(lab, node).to_string()).map_err(spawn_err)?;
        cmd.arg("--cni-conf-dir")
            .arg(cni_conf_dir(lab, &node.name))
            .arg("--cni-ipam")
            .arg(&ipam)
            .arg("--cni-log-file")
            .arg(cni.join("cni.log"))
            .arg("--cni-portmap");
    }
    cmd.arg("--state-dir")
        .arg(&d)
        .arg("--socket")
        .arg(socket(lab, &node.name))
        .arg("--pin-root")
        .arg(lab::pin_root(lab).to_string())
        .arg("--node")
        .arg(node.name.as_str())
        .arg("--metrics")
        .arg(METRICS)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(spawn_err)?)
        .stderr(log);
    // SAFETY: only async-signal-safe calls (setns, setsid) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            netns::enter_in_child(&fd)?;
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let started = Instant::now();
    let child = cmd.spawn().map_err(spawn_err)?;
    let pid = child.id();
    // It outlives us: it is reaped by init once we are gone.
    std::mem::forget(child);
    loop {
        let (l, name) = (lab.clone(), node.name.to_string());
        let r = tokio::task::spawn_blocking(move || call(&l, &name, &Request::Health))
            .await
            .expect("health call does not panic");
        match r {
            Ok(v)
                if v.get("ready") == Some(&Value::Bool(true))
                    && v.get("pid") == Some(&pid.into()) =>
            {
                return Ok((pid, started.elapsed()))
            }
            _ if started.elapsed() > READY_WITHIN => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return Err(AgentsError::NotReady {
                    lab: lab.clone(),
                    node: node.name.to_string(),
                    log: log_path.display().to_string(),
                    tail: log_tail(&log_path),
                });
            }
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Registers the node's pods with its agent (id: the pod's name).
async fn register(lab: &LabName, inv: &Inventory, node: &NodeInfo) -> Result<(), ControlError> {
    for pod in inv.pods.iter().filter(|p| p.node == node.name) {
        let req = Request::EndpointAdd {
            endpoint: EndpointRequest {
                id: pod.name.to_string(),
                host_if: pod.host_if.name.clone(),
                addrs: [pod.ipv4, pod.ipv6]
                    .into_iter()
                    .flatten()
                    .map(|a| a.to_string())
                    .collect(),
                pod_mac: pod.mac.to_string(),
                mtu: Some(pod.mtu),
            },
        };
        let (lab, name) = (lab.clone(), node.name.to_string());
        tokio::task::spawn_blocking(move || call(&lab, &name, &req))
            .await
            .expect("API call does not panic")?;
    }
    Ok(())
}

/// Switches every node through its agent.
pub async fn set_mode(
    lock: &LabLock,
    inv: &Inventory,
    mode: Mode,
    attach: AttachKind,
) -> Result<(), ControlError> {
    for (i, node) in inv.nodes.iter().enumerate() {
        if i > 0 {
            crate::fault::point("mode-between-nodes").await?;
        }
        let (lab, name) = (lock.lab().clone(), node.name.to_string());
        let req = Request::ModeSet {
            mode,
            attach: Some(attach),
        };
        tokio::task::spawn_blocking(move || call(&lab, &name, &req))
            .await
            .expect("API call does not panic")?;
    }
    Ok(())
}

/// One node's agent as `lab status` shows it.
#[derive(Debug, Serialize)]
pub struct AgentStatus {
    pub node: String,
    pub socket: PathBuf,
    pub running: bool,
    /// The agent's health answer (pid, ready, endpoints, setting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every node's agent, asked over its socket; `None` without agents.
pub async fn status(inv: &Inventory) -> Option<Vec<AgentStatus>> {
    if !enabled(&inv.name) {
        return None;
    }
    let mut out = Vec::new();
    for node in &inv.nodes {
        let (lab, name) = (inv.name.clone(), node.name.to_string());
        let r = tokio::task::spawn_blocking(move || call(&lab, &name, &Request::Health))
            .await
            .expect("health call does not panic");
        let (health, error) = match r {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_string())),
        };
        out.push(AgentStatus {
            node: node.name.to_string(),
            socket: socket(&inv.name, &node.name),
            running: health.is_some(),
            health,
            error,
        });
    }
    Some(out)
}

/// The pid holding a node's agent lock, if it is a live shortpathd.
fn agent_pid(lab: &LabName, node: &str) -> Option<nix::unistd::Pid> {
    let text = std::fs::read_to_string(dir(lab, node).join("agent.lock")).ok()?;
    let pid: i32 = text.trim().strip_prefix("pid ")?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    Path::new(std::str::from_utf8(argv0).ok()?)
        .file_name()
        .is_some_and(|n| n == "shortpathd")
        .then(|| nix::unistd::Pid::from_raw(pid))
}

/// Stops the agents of every node named in `nodes` (SIGTERM, then SIGKILL
/// after a grace period). Idempotent.
pub async fn stop(lab: &LabName, nodes: &[String]) {
    use nix::sys::signal::{kill, Signal};
    let pids: Vec<_> = nodes.iter().filter_map(|n| agent_pid(lab, n)).collect();
    for pid in &pids {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    let started = Instant::now();
    while pids.iter().any(|p| kill(*p, None).is_ok()) && started.elapsed() < STOP_WITHIN {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for pid in &pids {
        let _ = kill(*pid, Signal::SIGKILL);
    }
}
