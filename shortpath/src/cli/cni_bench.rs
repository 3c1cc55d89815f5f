//! `shortpath cni-bench`: the CNI plugin's ADD and DEL time per call, and
//! what N pods leave behind, on a lab of its own.

use std::path::PathBuf;

use clap::Args;

use super::session::{self, Ctx, LabUse};
use crate::{bench::cni, lab::config::Config, names::LabName};

#[derive(Debug, Args, Clone)]
pub struct CniBenchArgs {
    /// Name of the lab it builds (and removes afterwards).
    #[arg(long, default_value = "spcni")]
    pub name: String,
    /// Pods to add on the first node, then remove.
    #[arg(long, default_value_t = 100)]
    pub pods: usize,
    /// Plugin calls at a time.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Also write the figures as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(args: CniBenchArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    anyhow::ensure!(args.pods > 0, "--pods must be at least 1");
    anyhow::ensure!(args.parallel > 0, "--parallel must be at least 1");
    // Before any lab is built: what the run execs.
    let plugin = cni::plugin_path()?;
    let cni_path = cni::ipam_dir()?;
    let r = session::with_lab(
        ctx,
        &name,
        LabUse::BuildNewWithAgents(Config::default_lab()),
        "cni-bench",
        async |lock| cni::run(lock, plugin, cni_path, args.pods, args.parallel).await,
    )
    .await?;
    print!("{}", r.text());
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&r)?)?;
    }
    if !r.clean() {
        eprintln!(
            "error: {} calls failed, {} things left behind",
            r.failures.len(),
            r.leaks.total()
        );
        return Ok(1);
    }
    Ok(0)
}
