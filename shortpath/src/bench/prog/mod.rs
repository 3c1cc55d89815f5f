//! `shortpath prog-bench`: each TC program timed per kind of packet with
//! `BPF_PROG_TEST_RUN` and `repeat`, at several endpoint-map sizes
//! (docs/PROG_BENCH.md).
//!
//! The programs are fresh, unpinned copies loaded here, never the lab's:
//! the lab only lends its first node's namespace (the FIB lookups of
//! `from_pod` need its devices and routes), its addresses and MACs.

mod cases;
mod frames;
mod measure;
mod objects;
mod run;
mod summary;
mod table;

use std::net::IpAddr;

use serde::Serialize;
use shortpath_common::{endpoint::MAX_ENDPOINTS, mode::FastPath};

use crate::{
    bench::Machine,
    dataplane::{synthetic::SyntheticError, DataplaneError},
    lab::{self, LabError},
    names::LabName,
    netns::{self, Netns, NetnsError},
    probe::ProbeError,
};

pub use cases::{Case, Expect, Program, Topology, HOPS, MAX_REPEAT};
pub use summary::{quantile, spread, Spread};
pub use table::table;

/// What the figures are, printed under the table and kept in the JSON.
pub const METHOD: &str = "BPF_PROG_TEST_RUN figures: the kernel's own timing of the program on one skb (no device, no bpf_stats overhead)";

#[derive(Debug, thiserror::Error)]
pub enum ProgBenchError {
    #[error("lab {lab}: {what} (prog-bench needs two nodes with a dual-stack pod each, as the default lab has)")]
    Topology { lab: String, what: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("netns {netns}: {remote} does not answer a ping ({source}); the remote-pod cases need the neighbour entry of {remote_node}'s NIC: check the lab with `shortpath lab check --name {lab}`")]
    Neighbour {
        lab: String,
        netns: String,
        remote_node: String,
        remote: IpAddr,
        #[source]
        source: Box<ProbeError>,
    },
    #[error("{program}: {source}")]
    Dataplane {
        program: &'static str,
        #[source]
        source: Box<DataplaneError>,
    },
    #[error(transparent)]
    Synthetic(#[from] SyntheticError),
    #[error("BPF_PROG_TEST_RUN of {program} with \"{packet}\" on ifindex {ifindex}: {source} (it needs root, and the device must exist in the node's namespace: is the lab intact? shortpath lab status)")]
    TestRun {
        program: &'static str,
        packet: String,
        ifindex: u32,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("{program}, \"{packet}\": {got}; the case expects {want}. No figure: it would not measure the intended path (see docs/PROG_BENCH.md; check the lab with `shortpath lab check`)")]
    WrongPath {
        program: &'static str,
        packet: String,
        got: String,
        want: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProgBenchConfig {
    /// The mode the programs are loaded in.
    pub mode: FastPath,
    /// Endpoint-map sizes (total entries), in the order they run.
    pub endpoints: Vec<usize>,
    /// Calls per case and size.
    pub runs: usize,
    /// Runs per call.
    pub repeat: u32,
}

impl Default for ProgBenchConfig {
    fn default() -> Self {
        Self {
            mode: FastPath::Peer,
            endpoints: vec![1, 100, 10_000],
            runs: 400,
            repeat: MAX_REPEAT,
        }
    }
}

impl ProgBenchConfig {
    pub fn check(&self) -> Result<(), ProgBenchError> {
        let bad = |s: String| Err(ProgBenchError::Config(s));
        if self.runs == 0 {
            return bad("--runs must be at least 1".into());
        }
        if !(1..=MAX_REPEAT).contains(&self.repeat) {
            return bad(format!(
                "--repeat must be 1 to {MAX_REPEAT}: the runs of one call share one skb, and a forwarded frame's TTL ({HOPS}) must stay above 1 for all of them"
            ));
        }
        if self.endpoints.is_empty() {
            return bad("--endpoints: give at least one map size".into());
        }
        let max = MAX_ENDPOINTS as usize;
        if let Some(n) = self.endpoints.iter().find(|n| !(1..=max).contains(*n)) {
            return bad(format!("--endpoints {n}: a map size is 1 to {max}"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub lab: String,
    pub node: String,
    pub remote_node: String,
    pub mode: &'static str,
    pub endpoints: Vec<usize>,
    pub runs: usize,
    pub repeat: u32,
    pub hops: u8,
    /// `kernel.bpf_stats_enabled` during the run: when on, every run also
    /// pays the kernel's run-time accounting.
    pub bpf_stats_enabled: bool,
}

/// One case at one map size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    /// The size asked for.
    pub endpoints: usize,
    /// Entries the map held: more than asked when the cases need more.
    pub entries: usize,
    #[serde(flatten)]
    pub spread: Spread,
    pub runs: usize,
    pub repeat: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub program: &'static str,
    pub packet: String,
    /// The counter reason every run took.
    pub path: &'static str,
    pub verdict: u32,
    pub frame_bytes: usize,
    pub sizes: Vec<SizeResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgBenchResult {
    pub machine: Machine,
    pub params: Params,
    pub method: &'static str,
    pub cases: Vec<CaseResult>,
}

/// A lab's topology and the cases it gives, before anything runs; tests
/// may change the cases.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub topology: Topology,
    pub cases: Vec<Case>,
}

/// Reads lab `lab` back from the kernel and builds the cases for `mode`.
pub async fn prepare(lab: &LabName, mode: FastPath) -> Result<Prepared, ProgBenchError> {
    let inv = lab::inventory(lab).await?;
    let topology = Topology::from_inventory(&inv)?;
    let cases = topology.cases(mode);
    Ok(Prepared { topology, cases })
}

/// Runs every case of `p` at every size of `cfg`, on a thread inside the
/// lab's first node.
pub async fn run(p: Prepared, cfg: &ProgBenchConfig) -> Result<ProgBenchResult, ProgBenchError> {
    cfg.check()?;
    let cfg = cfg.clone();
    let ns = Netns::new(&p.topology.netns);
    netns::run_in(&ns, move || run::run_here(&p, &cfg)).await?
}

/// [`prepare`] and [`run`].
pub async fn measure(
    lab: &LabName,
    cfg: &ProgBenchConfig,
) -> Result<ProgBenchResult, ProgBenchError> {
    run(prepare(lab, cfg.mode).await?, cfg).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_limits() {
        assert!(ProgBenchConfig::default().check().is_ok());
        let with = |f: fn(&mut ProgBenchConfig)| {
            let mut c = ProgBenchConfig::default();
            f(&mut c);
            c.check().unwrap_err().to_string()
        };
        assert!(with(|c| c.repeat = 251).contains("1 to 250"));
        assert!(with(|c| c.repeat = 0).contains("--repeat"));
        assert!(with(|c| c.runs = 0).contains("--runs"));
        assert!(with(|c| c.endpoints.clear()).contains("--endpoints"));
        assert!(with(|c| c.endpoints = vec![1, 0]).contains("--endpoints 0"));
        assert!(with(|c| c.endpoints = vec![16385]).contains("1 to 16384"));
    }
}
