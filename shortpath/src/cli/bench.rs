use std::{path::PathBuf, time::Duration};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::{
    session::{self, Ctx, LabUse},
    DEFAULT_LAB,
};
use crate::{
    bench::{self, BenchConfig, BenchMode, BenchResult, PathKind, Test},
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
    /// Modes, in the order rounds run them.
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
        async |lock| measure(&cfg, lock).await,
    )
    .await
}

/// The bench itself, with a progress bar, as the holder of `lock`.
pub async fn measure(cfg: &BenchConfig, lock: &LabLock) -> anyhow::Result<BenchResult> {
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
    let r = bench::run(cfg, lock, &progress).await;
    bar.finish_and_clear();
    Ok(r?)
}

pub async fn run(args: BenchArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    let r = run_bench(ctx, &name, &args).await?;
    print!("{}", bench::summary_table(&r));
    let lat = bench::latency_table(&r);
    if !lat.is_empty() {
        println!();
        print!("{lat}");
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
