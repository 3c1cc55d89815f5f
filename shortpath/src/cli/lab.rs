use std::{path::PathBuf, time::Duration};

use clap::Subcommand;

use super::{
    session::{self, Ctx},
    DEFAULT_LAB,
};
use crate::{
    control::{self, DataplaneStatus},
    dataplane::{AttachKind, Mode},
    lab::{self, config::Config, Inventory},
    names::LabName,
    netns::Netns,
    probe::{self, Endpoint},
    runtime::{LabLock, Wait},
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
        /// Dataplane to start with.
        #[arg(long, default_value = "bridge")]
        mode: Mode,
        /// How programs attach: tcx (Linux ≥ 6.6, default there) or tc.
        #[arg(long)]
        attach: Option<AttachKind>,
        /// Run shortpathd in every node namespace: pods become its
        /// endpoints, and `mode` switches through it.
        #[arg(long)]
        agent: bool,
        /// Run shortpathd with CNI: each agent writes a conflist (in
        /// /run/shortpath/<lab>/agents/<node>/cni/net.d) for a container
        /// runtime started in the node (implies --agent).
        #[arg(long)]
        cni: bool,
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
    /// Check reachability: ICMP, UDP and TCP between every pair of pods
    /// and every pair of nodes, over every family of the lab.
    Check {
        #[arg(long, default_value = DEFAULT_LAB)]
        name: String,
        /// Payload bytes per probe.
        #[arg(long, default_value_t = 56)]
        size: usize,
    },
    /// Print the default topology file, to copy and edit.
    Config,
}

impl LabCommand {
    pub(super) fn lab_name(&self) -> Option<&str> {
        match self {
            LabCommand::Up { name, .. }
            | LabCommand::Down { name }
            | LabCommand::Status { name, .. }
            | LabCommand::Exec { name, .. }
            | LabCommand::Check { name, .. } => Some(name),
            LabCommand::Config => None,
        }
    }
}

pub async fn run(
    cmd: LabCommand,
    name: Option<LabName>,
    wait: Wait,
    ctx: impl FnOnce() -> anyhow::Result<Ctx>,
) -> anyhow::Result<i32> {
    let lab_name = || name.clone().expect("the command takes a lab name");
    match cmd {
        LabCommand::Up {
            config,
            force,
            mode,
            attach,
            agent,
            cni,
            ..
        } => {
            let agents = match (agent, cni) {
                (_, true) => control::LabAgents::WithCni,
                (true, false) => control::LabAgents::Yes,
                (false, false) => control::LabAgents::No,
            };
            let name = lab_name();
            // The whole config is checked before anything is created.
            let cfg = match &config {
                Some(p) => Config::load(p)?,
                None => Config::default_lab(),
            };
            let ctx = ctx()?;
            let lock = ctx.lock(&name).await?;
            // Without --force an existing lab is left alone, also when a
            // signal comes before `up` has refused it.
            let touches_existing = force || lab::load_state(&name)?.is_none();
            let plan = session::or_undo(
                &ctx,
                async { Ok(control::up(&lock, &cfg, force, mode, attach, agents).await?) },
                async || {
                    if !touches_existing {
                        return Ok("nothing was changed".into());
                    }
                    control::down(&lock).await?;
                    Ok(format!("removed lab {name}, which it was building"))
                },
            )
            .await?;
            eprintln!(
                "lab {name} is up in {mode} mode: {} nodes, {} pods (shortpath lab status --name {name})",
                plan.nodes.len(),
                plan.pods().count()
            );
            Ok(0)
        }
        LabCommand::Down { .. } => {
            let name = lab_name();
            // No signal handler: a signal stops the removal where it is,
            // and running `lab down` again finishes it (it is idempotent).
            let lock = LabLock::acquire(&name, wait).await?;
            control::down(&lock).await?;
            eprintln!("lab {name} is down");
            Ok(0)
        }
        LabCommand::Status { json, .. } => {
            let name = lab_name();
            let inv = lab::inventory(&name).await?;
            let dp = control::status(&inv).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status_json(&inv, &dp))?);
            } else {
                print!("{}", status_text(&inv, &dp));
            }
            Ok(0)
        }
        LabCommand::Exec { target, cmd, .. } => {
            // Returns only if the command could not be started.
            Err(lab::exec(&lab_name(), &target, &cmd).into())
        }
        LabCommand::Check { size, .. } => check(&lab_name(), size).await,
        LabCommand::Config => {
            print!("{}", lab::config::DEFAULT_TOML);
            Ok(0)
        }
    }
}

/// Node and pod endpoints of a lab, for probes.
pub fn endpoints(plan: &lab::plan::Plan) -> (Vec<Endpoint>, Vec<Endpoint>) {
    let nodes = plan
        .nodes
        .iter()
        .map(|n| Endpoint {
            name: n.name.to_string(),
            netns: Netns::new(&n.netns),
            ipv4: n.nic_ipv4.map(|a| a.addr()),
            ipv6: n.nic_ipv6.map(|a| a.addr()),
        })
        .collect();
    let pods = plan
        .pods()
        .map(|p| Endpoint {
            name: p.name.to_string(),
            netns: Netns::new(&p.netns),
            ipv4: p.ipv4.map(|a| a.addr()),
            ipv6: p.ipv6.map(|a| a.addr()),
        })
        .collect();
    (nodes, pods)
}

async fn check(name: &LabName, size: usize) -> anyhow::Result<i32> {
    let st = lab::ready_state(name)?;
    let (nodes, pods) = endpoints(&st.plan);
    let results = tokio::task::spawn_blocking(move || {
        let t = Duration::from_secs(2);
        let mut r = probe::probe_all(&pods, size, t);
        r.extend(probe::probe_all(&nodes, size, t));
        r
    })
    .await?;
    let mut table = Table::new(["FROM", "TO", "DST", "PROTO", "RESULT"]);
    let mut failed = 0;
    for p in &results {
        let res = match &p.outcome {
            Ok(rtt) => format!("ok {:.0} µs", rtt.as_secs_f64() * 1e6),
            Err(e) => {
                failed += 1;
                format!("FAIL {e}")
            }
        };
        table.row([
            p.from.clone(),
            p.to.clone(),
            p.dst.to_string(),
            p.proto.name().to_owned(),
            res,
        ]);
    }
    print!("{table}");
    println!("{} probes, {} failed", results.len(), failed);
    Ok(if failed == 0 { 0 } else { 1 })
}

fn status_json(inv: &Inventory, dp: &DataplaneStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(inv).expect("inventory serializes");
    v["mode"] = dp.mode.as_str().into();
    v["drift"] = dp.drift.clone().into();
    v["dataplane"] = serde_json::to_value(dp).expect("dataplane status serializes");
    v
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

fn status_text(inv: &Inventory, dp: &DataplaneStatus) -> String {
    let attach = dp.attach.map_or("-", AttachKind::as_str);
    let mut out = format!(
        "lab {}  mode {} (attach {attach})  netfilter {}  mtu {}\n",
        inv.name, dp.mode, inv.netfilter, inv.mtu
    );
    if let Some(d) = &dp.drift {
        out += &format!("drift: {d}\n");
    }
    out.push('\n');
    let mut nodes = Table::new(["NODE", "NETNS", "NIC", "IFINDEX", "IPV4", "IPV6", "MAC"]);
    for n in &inv.nodes {
        nodes.row([
            n.name.to_string(),
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
            p.name.to_string(),
            p.node.to_string(),
            p.netns.clone(),
            opt(&p.ipv4),
            opt(&p.ipv6),
            p.mac.to_string(),
            format!("{} ({})", p.host_if.name, p.host_if.ifindex),
        ]);
    }
    out += &pods.to_string();
    if !dp.programs.is_empty() {
        out.push('\n');
        out += &super::mode::counters_table(&dp.programs).to_string();
        if crate::sysctl::get("kernel.bpf_stats_enabled").is_ok_and(|v| v == "0") {
            out += "NS/PKT needs kernel.bpf_stats_enabled=1 (sysctl -w kernel.bpf_stats_enabled=1; it costs a little per packet)\n";
        }
    }
    if dp.next_hops.iter().any(|n| !n.entries.is_empty()) {
        out.push('\n');
        let mut t = Table::new(["NODE", "NEXT HOP FOR", "VIA", "DST MAC", "SRC MAC", "MTU"]);
        for n in &dp.next_hops {
            for e in &n.entries {
                let (via, dmac, smac, mtu) = match e.ifindex {
                    Some(i) => (
                        i.to_string(),
                        e.dmac.clone(),
                        e.smac.clone(),
                        e.mtu.to_string(),
                    ),
                    None => ("ask the FIB".to_owned(), "-".into(), "-".into(), "-".into()),
                };
                t.row([n.node.clone(), e.dst.to_string(), via, dmac, smac, mtu]);
            }
        }
        out += &t.to_string();
    }
    if let Some(agents) = &dp.agents {
        out.push('\n');
        let mut t = Table::new(["AGENT", "STATE", "PID", "ENDPOINTS", "SOCKET"]);
        for a in agents {
            let h = |k: &str| {
                a.health
                    .as_ref()
                    .and_then(|h| h.get(k))
                    .map_or_else(|| "-".to_owned(), ToString::to_string)
            };
            let state = match (&a.health, &a.error) {
                (Some(h), _) if h.get("ready") == Some(&serde_json::Value::Bool(true)) => {
                    "ready".to_owned()
                }
                (Some(_), _) => "starting".to_owned(),
                (None, Some(e)) => format!("down: {e}"),
                (None, None) => "down".to_owned(),
            };
            t.row([
                a.node.clone(),
                state,
                h("pid"),
                h("endpoints"),
                a.socket.display().to_string(),
            ]);
        }
        out += &t.to_string();
    }
    out
}
