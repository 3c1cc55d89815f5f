//! `shortpath prog-bench`: each TC program timed per kind of packet with
//! BPF_PROG_TEST_RUN, at several endpoint-map sizes (docs/PROG_BENCH.md).

use std::path::PathBuf;

use clap::Args;

use super::{
    session::{self, Ctx, LabUse},
    DEFAULT_LAB,
};
use crate::{
    bench::prog::{self, ProgBenchConfig, ProgBenchResult},
    dataplane::Mode,
    lab::config::Config,
    names::LabName,
};

#[derive(Debug, Args, Clone)]
pub struct ProgBenchArgs {
    /// Lab whose first node lends its namespace, addresses and MACs; built
    /// (and removed afterwards) if it is not up. Its dataplane is not
    /// touched: the programs are fresh copies.
    #[arg(long, default_value = DEFAULT_LAB)]
    pub name: String,
    /// Mode the programs are loaded in: redirect or peer.
    #[arg(long, default_value = "peer")]
    pub mode: Mode,
    /// Endpoint-map sizes (entries in total; synthetic ones fill up).
    #[arg(long, value_delimiter = ',', default_value = "1,100,10000")]
    pub endpoints: Vec<usize>,
    /// BPF_PROG_TEST_RUN calls per case and size (median, p10, p90 of them).
    #[arg(long, default_value_t = 400)]
    pub runs: usize,
    /// Runs of the program per call, on one skb (at most 250: see
    /// docs/PROG_BENCH.md).
    #[arg(long, default_value_t = prog::MAX_REPEAT)]
    pub repeat: u32,
    /// Write the results as JSON (schema: docs/PROG_BENCH.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl ProgBenchArgs {
    pub fn config(&self) -> anyhow::Result<ProgBenchConfig> {
        let Some(mode) = self.mode.fast_path() else {
            anyhow::bail!("--mode bridge runs no program: use --mode redirect or --mode peer");
        };
        let cfg = ProgBenchConfig {
            mode,
            endpoints: self.endpoints.clone(),
            runs: self.runs,
            repeat: self.repeat,
        };
        cfg.check()?;
        Ok(cfg)
    }
}

/// Runs prog-bench on lab `name`, building the default lab first if it is
/// not up (and removing it afterwards).
pub async fn run_prog_bench(
    ctx: &Ctx,
    name: &LabName,
    args: &ProgBenchArgs,
) -> anyhow::Result<ProgBenchResult> {
    let cfg = args.config()?;
    session::with_lab(
        ctx,
        name,
        LabUse::BuildIfMissing(Config::default_lab()),
        "lab is not up",
        async |lock| Ok(prog::measure(lock.lab(), &cfg).await?),
    )
    .await
}

pub async fn run(args: ProgBenchArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    let r = run_prog_bench(ctx, &name, &args).await?;
    print!("{}", prog::table(&r));
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&r)?)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(0)
}
