//! `shortpath demo`: real containers on the fast path, on a lab of its own
//! (see [`crate::demo`]).

use clap::Args;

use super::session::{self, Ctx, LabUse};
use crate::{
    control,
    demo::{self, containerd},
    lab::config::Config,
    names::LabName,
    netns,
    runtime::{LabLock, Wait},
};

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Name of the lab it builds (and removes afterwards).
    #[arg(long, default_value = "spdemo")]
    pub name: String,
    /// Leave the lab, the containerds and the containers running, and
    /// print how to use them and how to remove them.
    #[arg(long, conflicts_with = "down")]
    pub keep: bool,
    /// Remove what `demo --keep` left: containers, containerds, the lab.
    #[arg(long)]
    pub down: bool,
}

pub async fn run(
    args: DemoArgs,
    name: LabName,
    wait: Wait,
    ctx: impl FnOnce() -> anyhow::Result<Ctx>,
) -> anyhow::Result<i32> {
    if args.down {
        return down(&name, wait).await;
    }
    let kept = containerd::present(&name);
    anyhow::ensure!(
        kept.is_empty(),
        "a demo kept with --keep runs in lab {name} (containerd in {}): remove it with `shortpath demo --name {name} --down`",
        kept.join(", ")
    );
    // Before any lab is built: what the demo runs.
    containerd::check_host(&containerd::plugin_path())?;
    println!("shortpath demo: containerd runs real containers on lab {name}'s fast path (peer mode, an agent and a CNI conflist per node)");
    let out = session::with_lab(
        &ctx()?,
        &name,
        LabUse::BuildNewWithCni {
            config: Config::default_lab(),
            keep: args.keep,
        },
        "demo",
        async |lock| demo::run(lock, args.keep).await,
    )
    .await?;
    match &out.kept {
        Some(text) => println!("\n{text}"),
        None => {
            let left: Vec<String> = netns::list()?
                .into_iter()
                .filter(|n| n.starts_with(&format!("{name}-")))
                .collect();
            if left.is_empty() {
                println!(
                    "\nlab {name} removed: no namespace, agent or containerd of the demo is left"
                );
            } else {
                println!("\nlab {name} removed, but namespaces are left: {left:?}");
            }
        }
    }
    if !out.failures.is_empty() {
        eprintln!("error: the demo did not show everything it should:");
        for f in &out.failures {
            eprintln!("  {f}");
        }
        return Ok(1);
    }
    Ok(0)
}

/// Removes a demo kept with `--keep`; fine when there is none.
async fn down(name: &LabName, wait: Wait) -> anyhow::Result<i32> {
    // As `lab down`: no signal handler; running it again finishes it.
    let lock = LabLock::acquire(name, wait).await?;
    let nodes = tokio::task::block_in_place(|| demo::remove_kept(name))?;
    if !nodes.is_empty() {
        eprintln!(
            "removed the containers and containerd of {}",
            nodes.join(" and ")
        );
    }
    control::down(&lock).await?;
    eprintln!("lab {name} is down");
    Ok(0)
}
