//! The `shortpath` command line: argument types and what each command does.
//! `main.rs` only parses and dispatches, so tests can drive the same code.
//!
//! Every command first turns its lab name into a [`LabName`] (one clear
//! line and nothing touched if it is not one), then checks privileges;
//! commands that change a lab take its lock and run under a [`session`].

mod agent;
mod agent_bench;
mod bench;
mod cni_bench;
mod demo;
mod interrupt;
mod lab;
mod mode;
mod prog_bench;
mod report;
pub mod session;
mod trace;

use clap::{Parser, Subcommand};

pub use interrupt::Interrupted;
pub use lab::LabCommand;

use crate::{names::LabName, privileges, runtime::Wait};

/// Default lab name.
pub const DEFAULT_LAB: &str = "sp";

#[derive(Debug, Parser)]
#[command(
    name = "shortpath",
    version,
    about = "eBPF fast paths for container networking, with the lab, benchmark and tracer that prove them"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// When another command is changing the lab, fail at once instead of
    /// waiting for it.
    #[arg(long, global = true)]
    pub no_wait: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build, inspect and remove the two-node lab (network namespaces).
    #[command(subcommand)]
    Lab(LabCommand),
    /// Show or switch a running lab's dataplane: bridge, redirect or peer.
    /// Switching replaces programs in place; no packet is lost.
    Mode(mode::ModeArgs),
    /// Measure every mode against the bridge baseline and the host floor.
    Bench(bench::BenchArgs),
    /// Reproduce the article on this machine: lab, bench, report.md and
    /// plots, then clean up.
    Report(report::ReportArgs),
    /// Trace each mode's per-packet kernel path: devices, softirqs,
    /// backlog enqueues, route lookups, path time, drops.
    Trace(trace::TraceArgs),
    /// Talk to a running shortpathd (health, status, mode, endpoints).
    Agent(agent::AgentArgs),
    /// Measure shortpathd: API latency, idle memory and CPU, restart to
    /// ready while adopting many endpoints (builds its own lab).
    AgentBench(agent_bench::AgentBenchArgs),
    /// Measure the CNI plugin: ADD and DEL time per call for N pods, and
    /// what they leave behind (builds its own lab).
    CniBench(cni_bench::CniBenchArgs),
    /// Time each TC program per kind of packet with BPF_PROG_TEST_RUN, at
    /// several endpoint-map sizes (fresh programs; the lab lends a node).
    ProgBench(prog_bench::ProgBenchArgs),
    /// Show real containers on the fast path: a lab with containerd in
    /// two nodes, containers that ping and talk TCP across, the agents'
    /// counters, and nothing left afterwards (builds its own lab).
    Demo(demo::DemoArgs),
}

impl Command {
    /// The lab name the command was given, if it takes one.
    fn lab_name(&self) -> Option<&str> {
        match self {
            Command::Lab(c) => c.lab_name(),
            Command::Mode(a) => Some(&a.name),
            Command::Bench(a) => Some(&a.name),
            Command::Report(a) => Some(&a.name),
            Command::Trace(a) => Some(&a.name),
            Command::AgentBench(a) => Some(&a.name),
            Command::CniBench(a) => Some(&a.name),
            Command::ProgBench(a) => Some(&a.name),
            Command::Demo(a) => Some(&a.name),
            Command::Agent(_) => None,
        }
    }

    /// Everything but printing the default config touches namespaces,
    /// devices or eBPF.
    fn needs_privileges(&self) -> bool {
        !matches!(self, Command::Lab(LabCommand::Config))
    }
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let name = cli.command.lab_name().map(LabName::new).transpose()?;
    if cli.command.needs_privileges() {
        privileges::require()?;
    }
    let wait = if cli.no_wait {
        Wait::NoWait
    } else {
        Wait::Block
    };
    // Signal handlers only for what races them (see session.rs): elsewhere
    // a signal keeps its default action.
    let ctx = || -> anyhow::Result<session::Ctx> {
        Ok(session::Ctx {
            wait,
            interrupt: interrupt::Interrupt::install()?,
        })
    };
    match cli.command {
        Command::Lab(cmd) => lab::run(cmd, name, wait, ctx).await,
        Command::Mode(args) => mode::run(args, name.expect("mode takes a name"), ctx).await,
        Command::Bench(args) => bench::run(args, name.expect("bench takes a name"), &ctx()?).await,
        Command::Report(args) => {
            report::run(args, name.expect("report takes a name"), &ctx()?).await
        }
        Command::Trace(args) => trace::run(args, name.expect("trace takes a name"), &ctx()?).await,
        Command::Agent(args) => agent::run(args),
        Command::AgentBench(args) => {
            agent_bench::run(args, name.expect("agent-bench takes a name"), &ctx()?).await
        }
        Command::CniBench(args) => {
            cni_bench::run(args, name.expect("cni-bench takes a name"), &ctx()?).await
        }
        Command::ProgBench(args) => {
            prog_bench::run(args, name.expect("prog-bench takes a name"), &ctx()?).await
        }
        Command::Demo(args) => demo::run(args, name.expect("demo takes a name"), wait, ctx).await,
    }
}
