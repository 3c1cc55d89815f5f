//! `shortpath bench`: every mode measured against the bridge baseline and
//! the host floor (node to node over the same link), in one run, with
//! interleaved rounds so machine drift hits every mode alike.

pub mod agent;
pub mod cni;
pub mod load;
pub mod plot;
pub mod prog;
pub mod reference;
mod result;
mod run;
pub mod scale;
pub mod scale_plot;
pub mod stats;
mod table;

use std::{fmt, str::FromStr};

use serde::Serialize;

use crate::{control::ControlError, dataplane::Mode, netns::NetnsError};

pub use load::{LoadOptions, Sample, Target, Test};
pub use result::{
    BenchResult, BpfStatsRun, BpfStatsSetting, Machine, Params, RoundResult, Summary,
};
pub use run::{run, BenchConfig, Progress};
pub use table::endpoints_note;
pub use table::{
    above_noop_note, bpf_stats_note, human, latency_table, paths, program_table, summary_table,
};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the benchmark server did not start within 2 s")]
    ServerStart,
    #[error("a benchmark thread panicked")]
    Panicked,
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Control(Box<ControlError>),
    #[error(
        "lab {lab}: {what} (use a lab with two pods on its first node, or let bench build its own)"
    )]
    Topology { lab: String, what: String },
    #[error(
        "node {node}: reading the programs' run-time counters: {source} (pass --no-bpf-stats to measure without them)"
    )]
    ProgramRuns {
        node: String,
        #[source]
        source: Box<crate::dataplane::DataplaneError>,
    },
    #[error(
        "lab {lab}, node {node}: the endpoint map (--endpoints): {source} (run without --endpoints, or check the lab with `shortpath lab status --name {lab}`)"
    )]
    Endpoints {
        lab: String,
        node: String,
        #[source]
        source: Box<crate::dataplane::synthetic::SyntheticError>,
    },
    #[error(
        "lab {lab}, node {node}: the endpoint map held {now} entries after {after}, not the {held} the bench filled it to: something rewrote it during the run (an agent, another command?); run the bench again while nothing else changes the lab"
    )]
    EndpointsChanged {
        lab: String,
        node: String,
        after: String,
        held: usize,
        now: usize,
    },
    #[error("{mode} {test}: {source}")]
    Test {
        mode: BenchMode,
        test: &'static str,
        #[source]
        source: Box<BenchError>,
    },
}

impl From<ControlError> for BenchError {
    fn from(e: ControlError) -> Self {
        BenchError::Control(Box::new(e))
    }
}

/// What a measurement runs on: a dataplane mode on the pod path, or the
/// host floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchMode {
    Bridge,
    Redirect,
    Peer,
    /// Node to node over the NIC: no pod, no bridge, no program.
    Host,
    /// Peer mode with the hand-written reference programs in front of the
    /// dataplane's (IPv4, the bench's pod pair only; see `reference.rs`).
    /// Not in [`BenchMode::ALL`]: asked for by name.
    Reference,
    /// Peer mode with a program that does nothing in front of the
    /// dataplane's, at both hooks of the same nodes as `reference`: its
    /// ns/packet is what bpf_stats charges any program here (the clock
    /// reads around each run). Its throughput carries one more program
    /// per hook, so tables of throughput and latency leave it out. Asked
    /// for by name.
    Noop,
}

impl BenchMode {
    pub const ALL: [BenchMode; 4] = [
        BenchMode::Bridge,
        BenchMode::Redirect,
        BenchMode::Peer,
        BenchMode::Host,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Bridge => "bridge",
            BenchMode::Redirect => "redirect",
            BenchMode::Peer => "peer",
            BenchMode::Host => "host",
            BenchMode::Reference => "reference",
            BenchMode::Noop => "noop",
        }
    }

    /// The dataplane mode the lab is put in. The host floor runs with no
    /// program attached.
    pub fn dataplane(self) -> Mode {
        match self {
            BenchMode::Bridge | BenchMode::Host => Mode::Bridge,
            BenchMode::Redirect => Mode::Redirect,
            BenchMode::Peer | BenchMode::Reference | BenchMode::Noop => Mode::Peer,
        }
    }

    /// Whether its throughput and latency stand for a path users run:
    /// everything but `noop`, whose extra program only serves to
    /// measure the measurement.
    pub fn is_a_path(self) -> bool {
        self != BenchMode::Noop
    }
}

impl fmt::Display for BenchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BenchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BenchMode::ALL
            .into_iter()
            .chain([BenchMode::Reference, BenchMode::Noop])
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown mode {s:?}: use bridge, redirect, peer, host, reference or noop")
            })
    }
}

/// Which pods the load runs between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Pod on the first node → pod on the second node.
    Remote,
    /// Pod → another pod on the same node.
    Local,
}
