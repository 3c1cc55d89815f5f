//! The `shortpath` command line: argument types and what each command does.
//! `main.rs` only parses and dispatches, so tests can drive the same code.

mod bench;
mod lab;
mod mode;
mod report;
mod trace;

use clap::{Parser, Subcommand};

pub use lab::LabCommand;

/// Default lab name.
pub const DEFAULT_LAB: &str = "sp";

/// Builds lab `name` from `cfg` in bridge mode for a command that removes
/// it again when done; `why` tells the user.
async fn build_lab(name: &str, cfg: &crate::lab::config::Config, why: &str) -> anyhow::Result<()> {
    eprintln!("{why}: building lab {name}");
    crate::control::up(name, cfg, false, crate::dataplane::Mode::Bridge, None).await?;
    Ok(())
}

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
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Lab(cmd) => lab::run(cmd).await,
        Command::Mode(args) => mode::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Trace(args) => trace::run(args).await,
    }
}
