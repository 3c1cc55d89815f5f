//! Running a benchmark on a lab: targets from the inventory, interleaved
//! rounds over modes, mode switches through the control plane.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

use super::{
    load::{self, LoadOptions, Target, Test},
    reference,
    result::{BenchResult, BpfStatsRun, Machine, Params, RoundResult},
    scale::EndpointFill,
    stats::{self, ProgramCosts},
    BenchError, BenchMode, PathKind,
};
use crate::{
    control,
    dataplane::{self, DataplaneError, Mode, ProgramRun},
    lab::{self, Inventory},
    names::LabName,
    netns::{self, Netns},
    runtime::LabLock,
};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub lab: LabName,
    pub modes: Vec<BenchMode>,
    pub tests: Vec<Test>,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    pub path: PathKind,
    pub streams: usize,
    pub cpus: Option<(usize, usize)>,
    /// How the programs' run time is counted; with `counted`, every
    /// measurement of a mode with programs reads their counters before
    /// and after.
    pub bpf_stats: BpfStatsRun,
    /// Entries every node's endpoint map holds during the measurements
    /// (real + synthetic); `None`: the maps are left as they are.
    pub endpoints: Option<usize>,
}

impl BenchConfig {
    /// Measurements a run makes (for progress bars).
    pub fn steps(&self) -> u64 {
        (self.rounds * self.modes.len() * self.tests.len()) as u64
    }
}

/// Progress callback: called after each measurement with a label.
pub trait Progress {
    fn step(&self, label: &str);
}

impl<F: Fn(&str)> Progress for F {
    fn step(&self, label: &str) {
        self(label)
    }
}

/// Pod and host targets of the lab.
fn targets(inv: &Inventory, path: PathKind) -> Result<(Target, Target), BenchError> {
    let lab_name = &inv.name;
    let topo = |what: &str| BenchError::Topology {
        lab: lab_name.to_string(),
        what: what.to_owned(),
    };
    let (n0, n1) = match inv.nodes.as_slice() {
        [a, b, ..] => (a, b),
        _ => return Err(topo("needs two nodes")),
    };
    let first: Vec<_> = inv.pods_of(&n0.name).collect();
    let client = first.first().ok_or_else(|| topo("first node has no pod"))?;
    let server = match path {
        PathKind::Remote => *inv
            .pods_of(&n1.name)
            .collect::<Vec<_>>()
            .first()
            .ok_or_else(|| topo("second node has no pod"))?,
        PathKind::Local => *first
            .get(1)
            .ok_or_else(|| topo("--path local needs two pods on the first node"))?,
    };
    let addr = server
        .ipv4
        .or(server.ipv6)
        .ok_or_else(|| topo("pod has no address"))?;
    let pod = Target {
        client: Netns::new(&client.netns),
        server: Netns::new(&server.netns),
        addr,
    };
    let host_addr = if addr.is_ipv4() {
        n1.nic.ipv4
    } else {
        n1.nic.ipv6
    };
    let host = Target {
        client: Netns::new(&n0.netns),
        server: Netns::new(&n1.netns),
        addr: host_addr
            .ok_or_else(|| topo("second node's NIC has no address of the pods' family"))?,
    };
    Ok((pod, host))
}

/// Runs the benchmark, switching modes as the holder of the lab's lock.
/// Putting the lab back in its mode is the caller's (see the CLI's
/// session), so an interrupted run is put back too. With
/// `cfg.endpoints`, the synthetic entries go before this returns, and
/// when it is dropped unfinished.
pub async fn run(
    cfg: &BenchConfig,
    lock: &LabLock,
    progress: &dyn Progress,
) -> Result<BenchResult, BenchError> {
    debug_assert_eq!(lock.lab(), &cfg.lab);
    let inv = lab::inventory(&cfg.lab)
        .await
        .map_err(control::ControlError::from)?;
    let (pod, host) = targets(&inv, cfg.path)?;
    let mut fill = cfg.endpoints.map(|n| EndpointFill::new(&inv, n));
    let (rounds, hists) = measure(cfg, lock, &inv, &pod, &host, &mut fill, progress).await?;
    let endpoints = fill.map(EndpointFill::finish).transpose()?;
    let params = Params {
        lab: cfg.lab.to_string(),
        path: cfg.path,
        family: if pod.addr.is_ipv4() { "ipv4" } else { "ipv6" },
        modes: cfg.modes.clone(),
        tests: cfg.tests.clone(),
        duration_s: cfg.duration.as_secs_f64(),
        warmup_s: cfg.warmup.as_secs_f64(),
        rounds: cfg.rounds,
        streams: cfg.streams,
        cpus: cfg.cpus,
        endpoints,
    };
    Ok(BenchResult::summarize(
        Machine::current(),
        params,
        cfg.bpf_stats.clone(),
        rounds,
        hists,
    ))
}

type Measured = (
    Vec<RoundResult>,
    BTreeMap<(BenchMode, Test), Histogram<u64>>,
);

async fn measure(
    cfg: &BenchConfig,
    lock: &LabLock,
    inv: &Inventory,
    pod: &Target,
    host: &Target,
    fill: &mut Option<EndpointFill>,
    progress: &dyn Progress,
) -> Result<Measured, BenchError> {
    let mut rounds = Vec::new();
    let mut hists: BTreeMap<(BenchMode, Test), Histogram<u64>> = BTreeMap::new();
    let mut current = None;
    for round in 0..cfg.rounds {
        for &mode in &cfg.modes {
            if current != Some(mode.dataplane()) {
                control::set_mode(lock, mode.dataplane(), None).await?;
                current = Some(mode.dataplane());
                // A switch to a fast mode rewrites the maps with the real
                // endpoints only.
                if let Some(f) = fill.as_mut() {
                    f.fill()?;
                }
            }
            let target = if mode == BenchMode::Host { host } else { pod };
            // Attached for this mode's tests only; dropped (detached)
            // before the next mode, and with the run on an error.
            let mut reference = match reference::Programs::of(mode) {
                Some(programs) => Some(reference::attach(inv, pod.addr, programs).await?),
                None => None,
            };
            for &test in &cfg.tests {
                let wrap = |e: BenchError| BenchError::Test {
                    mode,
                    test: test.name(),
                    source: Box::new(e),
                };
                if !cfg.warmup.is_zero() {
                    once(test, target, cfg, cfg.warmup).await.map_err(wrap)?;
                }
                // Program ids change with every mode switch: read them
                // from the kernel around each measurement.
                let counted = cfg.bpf_stats.counted && mode.dataplane() != Mode::Bridge;
                let before = if counted {
                    Some(runs(inv, &mut reference).await.map_err(wrap)?)
                } else {
                    None
                };
                let s = once(test, target, cfg, cfg.duration).await.map_err(wrap)?;
                let programs = match before {
                    Some(b) => {
                        stats::program_costs(&b, &runs(inv, &mut reference).await.map_err(wrap)?)
                    }
                    None => ProgramCosts::new(),
                };
                if let Some(f) = fill.as_ref() {
                    f.verify(&format!("{mode} {}", test.name()))?;
                }
                let latency = s.latency.as_ref().and_then(stats::percentiles);
                if let Some(h) = s.latency {
                    match hists.get_mut(&(mode, test)) {
                        Some(all) => all.add(&h).expect("same histogram bounds"),
                        None => {
                            hists.insert((mode, test), h);
                        }
                    }
                }
                rounds.push(RoundResult {
                    round,
                    mode,
                    test,
                    value: s.value,
                    unit: test.unit(),
                    latency,
                    loss_pct: s.loss_pct,
                    programs,
                });
                progress.step(&format!(
                    "round {}/{} {mode} {}",
                    round + 1,
                    cfg.rounds,
                    test.name()
                ));
            }
        }
    }
    Ok((rounds, hists))
}

async fn once(
    test: Test,
    target: &Target,
    cfg: &BenchConfig,
    duration: Duration,
) -> Result<load::Sample, BenchError> {
    let target = target.clone();
    let opts = LoadOptions {
        duration,
        streams: cfg.streams,
        cpus: cfg.cpus,
    };
    tokio::task::spawn_blocking(move || load::run(test, &target, &opts))
        .await
        .map_err(|_| BenchError::Panicked)?
}

/// The run-time counters of what runs in this mode: the reference (or
/// no-op) programs when they are attached, else the lab's.
async fn runs(
    inv: &Inventory,
    reference: &mut Option<reference::Attached>,
) -> Result<Vec<ProgramRun>, BenchError> {
    match reference {
        Some(r) => r.runs(),
        None => program_runs(inv).await,
    }
}

/// The run-time counters of every program attached in the lab, all nodes.
async fn program_runs(inv: &Inventory) -> Result<Vec<ProgramRun>, BenchError> {
    let mut out = Vec::new();
    for node in &inv.nodes {
        let spec = inv
            .dataplane_spec(&node.name)
            .expect("inventory lists the node");
        let ns = Netns::new(&spec.netns);
        let runs = netns::run_in(&ns, move || dataplane::node_program_runs(&spec))
            .await
            .map_err(DataplaneError::from)
            .and_then(|r| r)
            .map_err(|source| BenchError::ProgramRuns {
                node: node.name.to_string(),
                source: Box::new(source),
            })?;
        out.extend(runs);
    }
    Ok(out)
}
