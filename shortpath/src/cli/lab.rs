use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use super::DEFAULT_LAB;
use crate::{
    lab::{self, config::Config, Inventory},
    table::Table,
};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a lab (default: the article's two nodes, one pod each).
    Up {
        /// Topology file (TOML); see `shortpath lab config`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Lab name: namespaces are <name>-<node> and <name>-<node>-<pod>.
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Remove an existing lab of that name first.
        #[arg(long)]
        force: bool,
    },
    /// Remove everything of a lab (idempotent, also after a crash).
    Down {
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
    },
    /// Show a lab: nodes, pods, devices, addresses.
    Status {
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Machine-readable output (schema: docs/STATUS.md).
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a node or pod namespace.
    Exec {
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// A node, a pod, or node/pod.
        target: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Print the default topology file, to copy and edit.
    Config,
}

pub async fn run(cmd: LabCommand) -> anyhow::Result<i32> {
    match cmd {
        LabCommand::Up {
            config,
            name,
            force,
        } => {
            let cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default_lab(),
            };
            let plan = lab::up(&name, &cfg, force).await?;
            eprintln!(
                "lab {name} is up: {} nodes, {} pods (shortpath lab status --name {name})",
                plan.nodes.len(),
                plan.pods().count()
            );
            Ok(0)
        }
        LabCommand::Down { name } => {
            lab::down(&name).await?;
            eprintln!("lab {name} is down");
            Ok(0)
        }
        LabCommand::Status { name, json } => {
            let inv = lab::inventory(&name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status_json(&inv))?);
            } else {
                print!("{}", status_text(&inv));
            }
            Ok(0)
        }
        LabCommand::Exec { name, target, cmd } => {
            let status =
                lab::exec(&name, &target, &cmd).with_context(|| format!("lab exec {target}"))?;
            Ok(status.code().unwrap_or(128 + status_signal(&status)))
        }
        LabCommand::Config => {
            print!("{}", lab::config::DEFAULT_TOML);
            Ok(0)
        }
    }
}

fn status_signal(s: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    s.signal().unwrap_or(0)
}

fn status_json(inv: &Inventory) -> serde_json::Value {
    let mut v = serde_json::to_value(inv).expect("inventory serializes");
    v["mode"] = "bridge".into();
    v
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn status_text(inv: &Inventory) -> String {
    let mut out = format!(
        "lab {}  mode bridge  netfilter {}  mtu {}\n\n",
        inv.name, inv.netfilter, inv.mtu
    );
    let mut nodes = Table::new(["NODE", "NETNS", "NIC", "IFINDEX", "IPV4", "IPV6", "MAC"]);
    for n in &inv.nodes {
        nodes.row([
            n.name.clone(),
            n.netns.clone(),
            n.nic.name.clone(),
            n.nic.ifindex.to_string(),
            opt(&n.nic.ipv4),
            opt(&n.nic.ipv6),
            n.nic.mac.to_string(),
        ]);
    }
    out += &nodes.to_string();
    out.push('\n');
    let mut pods = Table::new(["POD", "NODE", "NETNS", "IPV4", "IPV6", "MAC", "HOST IF"]);
    for p in &inv.pods {
        pods.row([
            p.name.clone(),
            p.node.clone(),
            p.netns.clone(),
            opt(&p.ipv4),
            opt(&p.ipv6),
            p.mac.to_string(),
            format!("{} ({})", p.host_if.name, p.host_if.ifindex),
        ]);
    }
    out += &pods.to_string();
    out
}
