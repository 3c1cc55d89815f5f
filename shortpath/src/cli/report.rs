use std::path::PathBuf;

use clap::Args;

use super::{
    bench::BenchArgs,
    session::{self, Ctx, LabUse},
};
use crate::{
    bench::{self, BenchMode, PathKind},
    dataplane::Mode,
    lab::config::Config,
    names::LabName,
    report,
    runtime::LabLock,
    trace::{self, Access, Direction, TraceConfig},
};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Directory for report.md, bench.json and the SVG plots.
    #[arg(long, default_value = "shortpath-report")]
    out: PathBuf,
    /// Name of the lab the report builds (and removes).
    #[arg(long, default_value = "spreport")]
    pub name: String,
    /// Seconds per test per round.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Rounds (each runs every mode once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Parallel connections of tcp_stream.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// CPUs for client and server ("C,S", or one for both). Default: both
    /// on CPU 0, so every mode pays the same (no cross-CPU wake-ups, which
    /// on small VMs cost more than the whole network path).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    cpu: Vec<usize>,
    /// Probe packets per mode for the kernel path trace (0: no trace).
    #[arg(long, default_value_t = 10_000)]
    trace_packets: u32,
    /// Leave kernel.bpf_stats_enabled alone (by default the bench sets it
    /// to 1 and puts it back, to measure the programs' ns/packet).
    #[arg(long)]
    no_bpf_stats: bool,
}

pub async fn run(args: ReportArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    let (r, t) = session::with_lab(
        ctx,
        &name,
        LabUse::BuildNew(Config::default_lab()),
        "the report",
        async |lock| measure(&args, &name, lock).await,
    )
    .await?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let path = report::write(&r, t.as_ref(), &command, &args.out)?;
    print!("{}", bench::summary_table(&r));
    let progs = bench::program_table(&r);
    if !progs.is_empty() {
        println!();
        print!("{progs}");
    }
    if let Some(t) = &t {
        println!();
        print!("{}", t.table());
    }
    eprintln!("wrote {}", path.display());
    Ok(0)
}

/// Bench, then trace, on the report's lab.
async fn measure(
    args: &ReportArgs,
    name: &LabName,
    lock: &LabLock,
) -> anyhow::Result<(bench::BenchResult, Option<trace::TraceResult>)> {
    let bench_args = BenchArgs {
        name: args.name.clone(),
        modes: BenchMode::ALL.to_vec(),
        tests: report::default_tests(),
        duration: args.duration,
        warmup: 0.5,
        rounds: args.rounds,
        path: PathKind::Remote,
        streams: args.streams,
        cpu: args.cpu.clone(),
        json: None,
        plot: None,
        no_bpf_stats: args.no_bpf_stats,
    };
    let r = super::bench::measure(&bench_args.config(name)?, lock, !args.no_bpf_stats).await?;
    if args.trace_packets == 0 {
        return Ok((r, None));
    }
    let cfg = TraceConfig {
        lab: name.clone(),
        modes: Mode::ALL.to_vec(),
        directions: vec![Direction::Rx, Direction::Tx],
        packets: args.trace_packets,
        rate_pps: 5_000,
        to: None,
        follow: None,
        sample: 1,
    };
    let t = trace::run(&cfg, Access::Switch(lock), &|what: &str| {
        eprintln!("{what}")
    })
    .await?;
    Ok((r, Some(t)))
}
