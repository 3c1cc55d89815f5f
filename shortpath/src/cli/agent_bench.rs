//! `shortpath agent-bench`: shortpathd's footprint, on a lab of its own.

use std::{path::PathBuf, time::Duration};

use clap::Args;

use super::session::{self, Ctx, LabUse};
use crate::{bench::agent, lab::config::Config, names::LabName};

#[derive(Debug, Args, Clone)]
pub struct AgentBenchArgs {
    /// Name of the lab it builds (and removes afterwards).
    #[arg(long, default_value = "spagent")]
    pub name: String,
    /// Endpoints to add (on veths of their own) before measuring.
    #[arg(long, default_value_t = 1000)]
    pub endpoints: usize,
    /// Seconds to watch the idle agent's CPU.
    #[arg(long, default_value_t = 10.0)]
    pub idle: f64,
    /// Also write the figures as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub async fn run(args: AgentBenchArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    anyhow::ensure!(args.idle > 0.0, "--idle must be positive");
    let idle = Duration::from_secs_f64(args.idle);
    let f = session::with_lab(
        ctx,
        &name,
        LabUse::BuildNewWithAgents(Config::default_lab()),
        "agent-bench",
        async |lock| agent::run(lock, args.endpoints, idle).await,
    )
    .await?;
    print!("{}", f.text());
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&f)?)?;
    }
    Ok(0)
}
