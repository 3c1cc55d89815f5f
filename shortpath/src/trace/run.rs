//! A trace run on a lab: for each mode, switch the dataplane, attach the
//! tracer, send the probe stream (or follow live traffic), detach, and turn
//! the events into per-packet paths and figures.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    os::unix::fs::MetadataExt,
    time::Duration,
};

use serde::Serialize;

use super::{
    btf::Btf,
    path::{self, Direction, NodeView, PacketPath, PodView, View},
    stream::{ProbeCounts, ProbeStream},
    summary::{self, DirectionSummary},
    tracer::{self, Filter, Tracer, Unavailable},
    TraceError,
};
use crate::{
    bench::Machine, control, dataplane::Mode, lab, names::LabName, netns::Netns, runtime::LabLock,
};

/// How long a packet may wait for ARP before the kernel drops it: three
/// probes 1 s apart, with a margin for timers that fire late on a busy
/// machine (at 3.5 s a full local test run once ended the trace with most
/// probes still queued).
const NEIGHBOUR_TIMEOUT: Duration = Duration::from_millis(4500);

#[derive(Clone, Debug)]
pub struct TraceConfig {
    pub lab: LabName,
    pub modes: Vec<Mode>,
    pub directions: Vec<Direction>,
    pub packets: u32,
    pub rate_pps: u32,
    /// Probe destination; default: the first pod of the second node.
    pub to: Option<Ipv4Addr>,
    /// Trace live traffic for this long instead of sending probes (the
    /// lab's current mode only).
    pub follow: Option<Duration>,
    /// With `follow`: trace 1 packet in `sample`.
    pub sample: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct TraceParams {
    pub lab: String,
    pub modes: Vec<Mode>,
    pub directions: Vec<Direction>,
    /// "probes" or "follow".
    pub traffic: &'static str,
    pub packets: u32,
    pub rate_pps: u32,
    pub from: String,
    pub to: String,
    pub follow_s: Option<f64>,
    pub sample: u32,
    /// Where the RX path ends.
    pub rx_end: &'static str,
    /// Optional tracepoints this kernel could not attach; what they
    /// measure is reported as null.
    pub unavailable_tracepoints: Vec<Unavailable>,
}

/// What one mode's run saw.
#[derive(Clone, Debug, Serialize)]
pub struct ModeRun {
    pub events: usize,
    /// Events the ring buffer had no room for.
    pub lost_events: u64,
    pub probes: Option<ProbeCounts>,
    /// The path nearest the median time, per direction.
    pub paths: BTreeMap<Direction, PacketPath>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TraceResult {
    pub machine: Machine,
    pub params: TraceParams,
    /// `summary.<mode>.<rx|tx>`.
    pub summary: BTreeMap<String, BTreeMap<Direction, DirectionSummary>>,
    pub runs: BTreeMap<String, ModeRun>,
}

impl TraceResult {
    pub fn get(&self, mode: Mode, dir: Direction) -> Option<&DirectionSummary> {
        self.summary.get(&mode.to_string())?.get(&dir)
    }

    /// Each traced mode's run, in the order the modes were traced.
    pub fn runs_in_order(&self) -> impl Iterator<Item = (Mode, &ModeRun)> {
        self.params
            .modes
            .iter()
            .filter_map(|m| Some((*m, self.runs.get(m.as_str())?)))
    }

    pub fn table(&self) -> crate::table::Table {
        let order: Vec<String> = self.params.modes.iter().map(Mode::to_string).collect();
        summary::table(&self.summary, &order)
    }
}

fn inode(ns: &str) -> Result<u32, TraceError> {
    std::fs::metadata(Netns::new(ns).path())
        .map(|m| m.ino() as u32)
        .map_err(|source| TraceError::Io {
            what: "stat network namespace",
            source,
        })
}

fn v4(a: Option<IpAddr>) -> Option<Ipv4Addr> {
    match a {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// The lab as the tracer sees it, and the probe endpoints.
async fn view(lab_name: &LabName) -> Result<(View, Vec<(Netns, Ipv4Addr)>), TraceError> {
    let inv = lab::inventory(lab_name)
        .await
        .map_err(control::ControlError::from)?;
    let mut v = View::default();
    for node in &inv.nodes {
        let ns = inode(&node.netns)?;
        v.namespaces.insert(ns, node.netns.clone());
        v.devices
            .insert((ns, node.nic.ifindex), node.nic.name.clone());
        v.devices
            .insert((ns, node.bridge.ifindex), node.bridge.name.clone());
        v.nodes.push(NodeView {
            name: node.name.to_string(),
            netns: ns,
            nic: node.nic.ifindex,
        });
    }
    let mut pods = Vec::new();
    for pod in &inv.pods {
        let ns = inode(&pod.netns)?;
        let node = inv
            .nodes
            .iter()
            .position(|n| n.name == pod.node)
            .ok_or_else(|| TraceError::Topology {
                lab: lab_name.to_string(),
                what: format!("pod {} is on unknown node {}", pod.name, pod.node),
            })?;
        v.namespaces.insert(ns, pod.netns.clone());
        v.devices.insert((ns, pod.ifindex), pod.ifname.clone());
        let node_ns = v.nodes[node].netns;
        v.devices
            .insert((node_ns, pod.host_if.ifindex), pod.host_if.name.clone());
        if let Some(addr) = v4(pod.ipv4) {
            v.pods.push(PodView {
                name: pod.name.to_string(),
                addr: addr.octets(),
                netns: ns,
                ifindex: pod.ifindex,
                node,
            });
            pods.push((Netns::new(&pod.netns), addr));
        }
    }
    Ok((v, pods))
}

/// The probe stream: first pod of the first node → first pod of the
/// second node (or `to`).
fn stream(
    cfg: &TraceConfig,
    view: &View,
    pods: &[(Netns, Ipv4Addr)],
) -> Result<ProbeStream, TraceError> {
    let topo = |what: &str| TraceError::Topology {
        lab: cfg.lab.to_string(),
        what: what.to_owned(),
    };
    let on = |node: usize| {
        view.pods
            .iter()
            .zip(pods)
            .find(|(p, _)| p.node == node)
            .map(|(_, x)| x.clone())
    };
    let (from, _) = on(0).ok_or_else(|| topo("the first node has no IPv4 pod"))?;
    let (to_ns, to) = match cfg.to {
        Some(to) => (
            pods.iter()
                .find(|(_, a)| *a == to)
                .map(|(ns, _)| ns.clone()),
            to,
        ),
        None => {
            let (ns, a) = on(1).ok_or_else(|| topo("the second node has no IPv4 pod"))?;
            (Some(ns), a)
        }
    };
    Ok(ProbeStream {
        from,
        receiver: to_ns,
        to,
        packets: cfg.packets,
        rate_pps: cfg.rate_pps,
    })
}

/// How a trace may touch the lab.
pub enum Access<'a> {
    /// Switch modes as the holder of the lab's lock (putting the lab back
    /// in its mode is the caller's, see the CLI's session).
    Switch(&'a LabLock),
    /// Follow live traffic in the current mode; nothing is changed.
    Follow,
}

/// Runs the trace.
pub async fn run(
    cfg: &TraceConfig,
    access: Access<'_>,
    progress: &dyn Fn(&str),
) -> Result<TraceResult, TraceError> {
    let btf = Btf::kernel()?;
    let reasons = btf.enum_values("skb_drop_reason");
    let reason = |r: u32| {
        reasons
            .get(&(r as i64))
            .map(|n| n.trim_start_matches("SKB_DROP_REASON_").to_owned())
            .unwrap_or_else(|| format!("reason {r}"))
    };
    let (view, pods) = view(&cfg.lab).await?;
    let inums: Vec<u32> = view.namespaces.keys().copied().collect();
    let probe = stream(cfg, &view, &pods)?;
    let current = control::status(
        &lab::inventory(&cfg.lab)
            .await
            .map_err(control::ControlError::from)?,
    )
    .await?
    .mode;
    let filter = match cfg.follow {
        Some(_) => Filter::Sample(cfg.sample.max(1)),
        None => Filter::Probes,
    };
    let offsets = tracer::offsets(&btf, filter)?;
    let modes = match access {
        Access::Follow => vec![current.mode().ok_or(TraceError::MixedMode {
            lab: cfg.lab.to_string(),
        })?],
        Access::Switch(_) => cfg.modes.clone(),
    };

    let mut summary = BTreeMap::new();
    let mut runs = BTreeMap::new();
    let mut unavailable: Vec<Unavailable> = Vec::new();
    let mut outcome = Ok(());
    for mode in &modes {
        progress(&format!("tracing {mode}"));
        let once = async {
            if let Access::Switch(lock) = access {
                control::set_mode(lock, *mode, None).await?;
            }
            trace_once(cfg, &probe, &inums, offsets).await
        };
        match once.await {
            Ok((collected, probes, missing)) => {
                for m in missing.iter().filter(|_| runs.is_empty()) {
                    progress(&format!(
                        "tracepoint {} unavailable ({}): {} not reported",
                        m.tracepoint, m.error, m.measures
                    ));
                }
                unavailable = missing;
                let names: Vec<&str> = unavailable.iter().map(|u| u.tracepoint).collect();
                let (dirs, run) = figures(cfg, &view, &collected, probes, &reason, &names);
                summary.insert(mode.to_string(), dirs);
                runs.insert(mode.to_string(), run);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    outcome?;
    let params = TraceParams {
        lab: cfg.lab.to_string(),
        modes,
        directions: cfg.directions.clone(),
        traffic: if cfg.follow.is_some() {
            "follow"
        } else {
            "probes"
        },
        packets: cfg.packets,
        rate_pps: cfg.rate_pps,
        from: probe.from.name().to_owned(),
        to: probe.to.to_string(),
        follow_s: cfg.follow.map(|d| d.as_secs_f64()),
        sample: cfg.sample.max(1),
        rx_end: "sock:sk_data_ready (the packet is the tail of the socket's receive queue)",
        unavailable_tracepoints: unavailable,
    };
    Ok(TraceResult {
        machine: Machine::current(),
        params,
        summary,
        runs,
    })
}

/// One mode's figures per direction, and what its run saw.
fn figures(
    cfg: &TraceConfig,
    view: &View,
    collected: &tracer::Collected,
    probes: Option<ProbeCounts>,
    reason: &dyn Fn(u32) -> String,
    missing: &[&str],
) -> (BTreeMap<Direction, DirectionSummary>, ModeRun) {
    let paths = path::assemble(view, &collected.events);
    let mut dirs = BTreeMap::new();
    let mut reps = BTreeMap::new();
    for &d in &cfg.directions {
        dirs.insert(d, summary::summarize(&paths, d, reason, missing));
        if let Some(p) = summary::representative(&paths, d) {
            reps.insert(d, p.clone());
        }
    }
    let run = ModeRun {
        events: collected.events.len(),
        lost_events: collected.lost,
        probes,
        paths: reps,
    };
    (dirs, run)
}

async fn trace_once(
    cfg: &TraceConfig,
    probe: &ProbeStream,
    inums: &[u32],
    offsets: shortpath_common::trace::Offsets,
) -> Result<(tracer::Collected, Option<ProbeCounts>, Vec<Unavailable>), TraceError> {
    let tracer = Tracer::start(inums, offsets)?;
    let missing = tracer.unavailable.clone();
    let probes = match cfg.follow {
        Some(d) => {
            tokio::time::sleep(d).await;
            None
        }
        None => {
            let stream = probe.clone();
            let counts = tokio::task::spawn_blocking(move || stream.run())
                .await
                .map_err(|_| TraceError::Panicked);
            match counts {
                Ok(Ok(c)) => {
                    // The stream waited for its receiver to see the last
                    // probes. Probes to an address without a pod wait in
                    // the neighbour queue until resolution fails (3 probes,
                    // 1 s apart): stay attached to see where they drop.
                    if probe.receiver.is_none() {
                        tokio::time::sleep(NEIGHBOUR_TIMEOUT).await;
                    }
                    Some(c)
                }
                Ok(Err(e)) | Err(e) => {
                    let _ = tracer.stop();
                    return Err(e);
                }
            }
        }
    };
    let collected = tokio::task::spawn_blocking(move || tracer.stop())
        .await
        .map_err(|_| TraceError::Panicked)??;
    Ok((collected, probes, missing))
}
