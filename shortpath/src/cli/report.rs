use std::{path::PathBuf, time::Instant};

use anyhow::Context as _;
use clap::Args;

use super::{
    bench::BenchArgs,
    session::{self, Ctx, LabUse},
};
use crate::{
    bench::{
        self,
        prog::{self, ProgBenchConfig},
        PathKind,
    },
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
    /// Count no program run time (by default the bench has the kernel count
    /// it for the run, to measure the programs' ns/packet).
    #[arg(long)]
    no_bpf_stats: bool,
    /// Endpoint-map sizes of the scale section ("Cost against the number
    /// of endpoints"): a short peer bench and a prog-bench at each.
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
    scale_endpoints: Vec<usize>,
    /// Seconds per test per size in the scale section.
    #[arg(long, default_value_t = 2.0)]
    scale_duration: f64,
    /// Leave the scale section out.
    #[arg(long)]
    no_scale: bool,
}

/// prog-bench calls per case and size in the scale section.
const SCALE_PROG_RUNS: usize = 100;

pub async fn run(args: ReportArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    if !args.no_scale {
        anyhow::ensure!(
            !args.scale_endpoints.is_empty(),
            "--scale-endpoints: give at least one map size (or --no-scale)"
        );
        for &n in &args.scale_endpoints {
            bench::scale::check_endpoints("--scale-endpoints", n)?;
        }
        anyhow::ensure!(
            args.scale_duration > 0.0,
            "--scale-duration must be positive"
        );
    }
    let (r, scale, t) = session::with_lab(
        ctx,
        &name,
        LabUse::BuildNew(Config::default_lab()),
        "the report",
        async |lock| measure(&args, &name, lock).await,
    )
    .await?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let path = report::write(&r, scale.as_ref(), t.as_ref(), &command, &args.out)?;
    print!("{}", bench::summary_table(&r));
    let progs = bench::program_table(&r);
    if !progs.is_empty() {
        println!();
        print!("{progs}");
    }
    if let Some(note) = bench::above_noop_note(&r) {
        println!("{note}");
    }
    if let Some(s) = &scale {
        println!();
        print!("{}", report::scale::table(s));
        println!("(scale section: {:.0} s)", s.elapsed_s);
    }
    if let Some(t) = &t {
        println!();
        print!("{}", t.table());
    }
    eprintln!("wrote {}", path.display());
    Ok(0)
}

type Measured = (
    bench::BenchResult,
    Option<report::scale::ScaleResult>,
    Option<trace::TraceResult>,
);

/// Bench, scale, then trace, on the report's lab.
async fn measure(args: &ReportArgs, name: &LabName, lock: &LabLock) -> anyhow::Result<Measured> {
    let reference = bench::reference::applicable(&crate::lab::inventory(name).await?);
    if let Err(why) = &reference {
        eprintln!("report: no `reference` mode (the hand-written programs): {why}");
    }
    let bench_args = BenchArgs {
        name: args.name.clone(),
        modes: report::modes(&reference),
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
        endpoints: None,
    };
    let r = super::bench::measure(&bench_args.config(name)?, lock, !args.no_bpf_stats).await?;
    let scale = if args.no_scale {
        None
    } else {
        Some(
            scale(args, &bench_args, name, lock)
                .await
                .context("the scale section (--no-scale leaves it out)")?,
        )
    };
    if args.trace_packets == 0 {
        return Ok((r, scale, None));
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
    Ok((r, scale, Some(t)))
}

/// The scale section: at each size, a short peer bench with every node's
/// endpoint map filled to it; then prog-bench at the same sizes.
async fn scale(
    args: &ReportArgs,
    base: &BenchArgs,
    name: &LabName,
    lock: &LabLock,
) -> anyhow::Result<report::scale::ScaleResult> {
    let start = Instant::now();
    let mut cfgs = Vec::new();
    for &n in &args.scale_endpoints {
        let a = BenchArgs {
            modes: vec![report::scale::MODE],
            tests: report::scale::TESTS.to_vec(),
            duration: args.scale_duration,
            rounds: 1,
            endpoints: Some(n),
            ..base.clone()
        };
        cfgs.push(a.config(name)?);
    }
    let mut benches = Vec::new();
    for cfg in &cfgs {
        eprintln!(
            "scale: {} endpoints per node, {} mode",
            cfg.endpoints.unwrap_or_default(),
            report::scale::MODE
        );
        benches.push(super::bench::measure(cfg, lock, !args.no_bpf_stats).await?);
    }
    let prog_cfg = ProgBenchConfig {
        endpoints: args.scale_endpoints.clone(),
        runs: SCALE_PROG_RUNS,
        ..ProgBenchConfig::default()
    };
    eprintln!(
        "scale: prog-bench at {:?} endpoints, {} calls per case and size",
        prog_cfg.endpoints, prog_cfg.runs
    );
    let prog_r = prog::measure(lock.lab(), &prog_cfg).await?;
    let first = &cfgs[0];
    let params = report::scale::ScaleParams {
        endpoints: args.scale_endpoints.clone(),
        mode: report::scale::MODE,
        tests: first.tests.clone(),
        duration_s: first.duration.as_secs_f64(),
        warmup_s: first.warmup.as_secs_f64(),
        rounds: first.rounds,
        cpus: first.cpus,
        prog_bench_runs: prog_cfg.runs,
        prog_bench_repeat: prog_cfg.repeat,
    };
    Ok(report::scale::ScaleResult::new(
        params,
        benches,
        prog_r,
        start.elapsed(),
    ))
}
