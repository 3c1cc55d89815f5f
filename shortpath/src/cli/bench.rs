use std::{path::PathBuf, time::Duration};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{
    session::{self, Ctx, LabUse},
    DEFAULT_LAB,
};
use crate::{
    bench::{
        self, BenchConfig, BenchMode, BenchResult, BpfStatsRun, BpfStatsSetting, PathKind, Test,
    },
    dataplane::{BpfStats, Counting, Mode, BPF_STATS_SYSCTL},
    lab::config::Config,
    names::LabName,
    report,
    runtime::LabLock,
};

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Lab to run on; built (and removed afterwards) if it is not up.
    #[arg(long, default_value = DEFAULT_LAB)]
    pub name: String,
    /// Modes, in the order rounds run them: bridge, redirect, peer, host,
    /// and on request reference (hand-written programs) and noop (programs
    /// that do nothing: what counting costs).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bridge,redirect,peer,host"
    )]
    pub modes: Vec<BenchMode>,
    /// Tests to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "udp_rr,tcp_rr,tcp_crr,tcp_stream,udp_pps"
    )]
    pub tests: Vec<Test>,
    /// Seconds per test per round.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Warm-up seconds before each measurement (not counted).
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
    /// Rounds; each round runs every mode once.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Pod to remote pod, or to a pod on the same node.
    #[arg(long, value_enum, default_value = "remote")]
    pub path: PathKind,
    /// Parallel connections of tcp_stream.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// CPUs for the client and server threads: "C,S" (or one CPU for both).
    #[arg(long, value_delimiter = ',')]
    pub cpu: Vec<usize>,
    /// Write the full results as JSON (schema: docs/BENCH.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write SVG plots into this directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Count no program run time (by default the kernel counts it for the
    /// run, through a BPF_ENABLE_STATS descriptor, to measure the programs'
    /// ns/packet).
    #[arg(long)]
    pub no_bpf_stats: bool,
    /// Fill every node's endpoint map with synthetic entries (stack-only,
    /// benchmarking addresses) up to N entries in total for the run; they
    /// are removed afterwards. Default: the maps are left as they are.
    #[arg(long, value_name = "N")]
    pub endpoints: Option<usize>,
}

impl BenchArgs {
    pub(super) fn config(&self, lab: &LabName) -> anyhow::Result<BenchConfig> {
        anyhow::ensure!(self.rounds >= 1, "--rounds must be at least 1");
        anyhow::ensure!(self.duration > 0.0, "--duration must be positive");
        anyhow::ensure!(
            !self.modes.is_empty() && !self.tests.is_empty(),
            "nothing to run"
        );
        let cpus = match self.cpu.as_slice() {
            [] => None,
            [c] => Some((*c, *c)),
            [c, s] => Some((*c, *s)),
            _ => anyhow::bail!("--cpu takes one or two CPU numbers: client[,server]"),
        };
        if let Some(n) = self.endpoints {
            bench::scale::check_endpoints("--endpoints", n)?;
        }
        Ok(BenchConfig {
            lab: lab.clone(),
            modes: self.modes.clone(),
            tests: self.tests.clone(),
            duration: Duration::from_secs_f64(self.duration),
            warmup: Duration::from_secs_f64(self.warmup.max(0.0)),
            rounds: self.rounds,
            path: self.path,
            streams: self.streams.max(1),
            cpus,
            // Decided by `measure`, which holds the sysctl for the run.
            bpf_stats: BpfStatsRun::new(BpfStatsSetting::NotNeeded, None),
            endpoints: self.endpoints,
        })
    }
}

/// The lab a bench builds when none is up.
fn own_lab(path: PathKind) -> anyhow::Result<Config> {
    Ok(match path {
        PathKind::Remote => Config::default_lab(),
        PathKind::Local => Config::parse(
            "[[node]]\nname = \"node-a\"\npods = 2\n[[node]]\nname = \"node-b\"\npods = 1\n",
            "bench lab",
        )?,
    })
}

/// Runs a bench on lab `name`, building the lab first if it is not up
/// (and removing it afterwards); a lab it found is put back in its mode.
pub async fn run_bench(ctx: &Ctx, name: &LabName, args: &BenchArgs) -> anyhow::Result<BenchResult> {
    let cfg = args.config(name)?;
    let lab = own_lab(args.path)?;
    session::with_lab(
        ctx,
        name,
        LabUse::BuildIfMissing(lab),
        "lab is not up",
        async |lock| measure(&cfg, lock, !args.no_bpf_stats).await,
    )
    .await
}

/// The bench itself, with a progress bar, as the holder of `lock`. With
/// `bpf_stats`, `kernel.bpf_stats_enabled` is 1 while it measures (and put
/// back afterwards, also when it fails or is interrupted).
pub async fn measure(
    cfg: &BenchConfig,
    lock: &LabLock,
    bpf_stats: bool,
) -> anyhow::Result<BenchResult> {
    let has_programs = cfg.modes.iter().any(|m| m.dataplane() != Mode::Bridge);
    let (switch, stats) = StatsSwitch::start(bpf_stats, has_programs);
    let cfg = BenchConfig {
        bpf_stats: stats,
        ..cfg.clone()
    };
    let bar = ProgressBar::new(cfg.steps());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let progress = |label: &str| {
        bar.inc(1);
        bar.set_message(label.to_owned());
    };
    let r = bench::run(&cfg, lock, &progress).await;
    bar.finish_and_clear();
    let restored = switch.finish();
    let mut r = r?;
    r.bpf_stats.restored = restored;
    Ok(r)
}

/// Program run-time counting for one bench: how it was turned on is
/// printed, and it ends when the bench ends, fails or is dropped by a
/// signal (a descriptor closes; a sysctl set is put back).
struct StatsSwitch(Option<BpfStats>);

impl StatsSwitch {
    fn start(enable: bool, has_programs: bool) -> (Self, BpfStatsRun) {
        use BpfStatsSetting::*;
        let run = |s, prev: &str| BpfStatsRun::new(s, Some(prev.to_owned()));
        if !has_programs {
            return (Self(None), BpfStatsRun::new(NotNeeded, None));
        }
        let counted = "the programs' NS/PKT is measured with it on: the kernel reads the clock around every program run, a small cost redirect and peer carry in this run";
        if !enable {
            let (setting, line) = match BpfStats::is_on() {
                Ok(true) => (
                    run(AlreadyOn, "1"),
                    format!("{BPF_STATS_SYSCTL} is 1 already (--no-bpf-stats: left alone); {counted}"),
                ),
                Ok(false) => (
                    run(LeftOff, "0"),
                    format!("--no-bpf-stats: {BPF_STATS_SYSCTL} left at 0, so no NS/PKT for the programs"),
                ),
                Err(e) => (
                    BpfStatsRun::new(Unavailable, None),
                    format!("{e}: no NS/PKT for the programs"),
                ),
            };
            eprintln!("bpf_stats: {line}");
            return (Self(None), setting);
        }
        match BpfStats::enable() {
            Ok(g) if g.counting() == Counting::Descriptor => {
                eprintln!(
                    "bpf_stats: run-time counting on for this run through a BPF_ENABLE_STATS descriptor ({BPF_STATS_SYSCTL} stays {}; the kernel stops counting when bench exits, however it exits; --no-bpf-stats does not count); {counted}",
                    g.previous()
                );
                let setting = run(DescriptorForRun, g.previous());
                (Self(Some(g)), setting)
            }
            Ok(g) if g.changed() => {
                eprintln!(
                    "bpf_stats: {BPF_STATS_SYSCTL} set to 1 for this run (put back to {} after; --no-bpf-stats leaves it alone); {counted}",
                    g.previous()
                );
                let setting = run(SetForRun, g.previous());
                (Self(Some(g)), setting)
            }
            Ok(g) => {
                eprintln!("bpf_stats: {BPF_STATS_SYSCTL} is 1 already (left as it is); {counted}");
                (Self(None), run(AlreadyOn, g.previous()))
            }
            Err(e) => {
                eprintln!(
                    "warning: bpf_stats: {e}; measuring without the programs' NS/PKT (--no-bpf-stats does not try)"
                );
                (Self(None), BpfStatsRun::new(Unavailable, None))
            }
        }
    }

    /// Puts the value found back; `Some(done)` when this run had set it.
    fn finish(mut self) -> Option<bool> {
        self.put_back()
    }

    fn put_back(&mut self) -> Option<bool> {
        let g = self.0.take()?;
        let previous = g.previous().to_owned();
        if g.counting() == Counting::Descriptor {
            drop(g);
            eprintln!("bpf_stats: counting off (descriptor closed)");
            return None;
        }
        match g.restore() {
            Ok(()) => {
                eprintln!("bpf_stats: {BPF_STATS_SYSCTL} put back to {previous}");
                Some(true)
            }
            Err(e) => {
                eprintln!("warning: bpf_stats: {e}");
                Some(false)
            }
        }
    }
}

impl Drop for StatsSwitch {
    fn drop(&mut self) {
        self.put_back();
    }
}

pub async fn run(args: BenchArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    let r = run_bench(ctx, &name, &args).await?;
    print!("{}", bench::summary_table(&r));
    let lat = bench::latency_table(&r);
    if !lat.is_empty() {
        println!();
        print!("{lat}");
    }
    if r.bpf_stats.sysctl != BpfStatsSetting::NotNeeded {
        let progs = bench::program_table(&r);
        println!();
        if !progs.is_empty() {
            print!("{progs}");
        }
        if let Some(note) = bench::above_noop_note(&r) {
            println!("{note}");
        }
        println!("{}", bench::bpf_stats_note(&r));
    }
    if let Some(note) = bench::endpoints_note(&r) {
        println!();
        println!("{note}");
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&r)?)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(dir) = &args.plot {
        let files = report::write_plots(&r, dir)?;
        eprintln!("wrote {} plots to {}", files.len(), dir.display());
    }
    Ok(0)
}
