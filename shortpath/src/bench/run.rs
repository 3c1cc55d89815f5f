//! Running a benchmark on a lab: targets from the inventory, interleaved
//! rounds over modes, mode switches through the control plane.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

use super::{
    load::{self, LoadOptions, Target, Test},
    result::{BenchResult, Machine, Params, RoundResult},
    stats, BenchError, BenchMode, PathKind,
};
use crate::{control, lab, names::LabName, netns::Netns, runtime::LabLock};

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
async fn targets(lab_name: &LabName, path: PathKind) -> Result<(Target, Target), BenchError> {
    let inv = lab::inventory(lab_name)
        .await
        .map_err(control::ControlError::from)?;
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
/// session), so an interrupted run is put back too.
pub async fn run(
    cfg: &BenchConfig,
    lock: &LabLock,
    progress: &dyn Progress,
) -> Result<BenchResult, BenchError> {
    debug_assert_eq!(lock.lab(), &cfg.lab);
    let (pod, host) = targets(&cfg.lab, cfg.path).await?;
    let (rounds, hists) = measure(cfg, lock, &pod, &host, progress).await?;
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
    };
    Ok(BenchResult::summarize(
        Machine::current(),
        params,
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
    pod: &Target,
    host: &Target,
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
            }
            let target = if mode == BenchMode::Host { host } else { pod };
            for &test in &cfg.tests {
                let wrap = |e: BenchError| BenchError::Test {
                    mode,
                    test: test.name(),
                    source: Box::new(e),
                };
                if !cfg.warmup.is_zero() {
                    once(test, target, cfg, cfg.warmup).await.map_err(wrap)?;
                }
                let s = once(test, target, cfg, cfg.duration).await.map_err(wrap)?;
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
