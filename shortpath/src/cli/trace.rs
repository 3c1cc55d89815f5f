use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use super::{
    session::{self, Ctx, LabUse},
    DEFAULT_LAB,
};
use crate::{
    dataplane::Mode,
    lab::{self, config::Config},
    names::LabName,
    trace::{self, summary, Access, Direction, TraceConfig, TraceResult},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Directions {
    Rx,
    Tx,
    Both,
}

#[derive(Debug, Args, Clone)]
pub struct TraceArgs {
    /// Lab to trace; built (and removed afterwards) if it is not up.
    #[arg(long, default_value = DEFAULT_LAB)]
    pub name: String,
    /// Modes to trace, in order.
    #[arg(long, value_delimiter = ',', default_value = "bridge,redirect,peer")]
    pub modes: Vec<Mode>,
    /// RX: NIC → pod socket on the receiving node; TX: pod → NIC on the
    /// sending node.
    #[arg(long, value_enum, default_value = "both")]
    pub direction: Directions,
    /// Probe packets per mode (UDP, pod to remote pod).
    #[arg(long, default_value_t = 10_000)]
    pub packets: u32,
    /// Probe rate, packets per second.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u32,
    /// Send the probes to this IPv4 address instead of the remote pod
    /// (an address without a pod shows where and why packets are dropped).
    #[arg(long)]
    pub to: Option<Ipv4Addr>,
    /// Trace live traffic (e.g. a bench run) in the current mode for
    /// --duration seconds instead of sending probes.
    #[arg(long)]
    pub follow: bool,
    /// Seconds to follow live traffic.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// With --follow: trace one packet in N (chosen by IP header).
    #[arg(long, default_value_t = 1)]
    pub sample: u32,
    /// Print one representative packet's hops per mode and direction.
    #[arg(long)]
    pub path: bool,
    /// Write the full results as JSON (schema: docs/TRACE.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl TraceArgs {
    pub fn config(&self, lab: &LabName) -> anyhow::Result<TraceConfig> {
        anyhow::ensure!(self.packets > 0, "--packets must be at least 1");
        anyhow::ensure!(!self.modes.is_empty(), "--modes is empty");
        anyhow::ensure!(
            self.duration > 0.0 || !self.follow,
            "--duration must be positive"
        );
        Ok(TraceConfig {
            lab: lab.clone(),
            modes: self.modes.clone(),
            directions: match self.direction {
                Directions::Rx => vec![Direction::Rx],
                Directions::Tx => vec![Direction::Tx],
                Directions::Both => vec![Direction::Rx, Direction::Tx],
            },
            packets: self.packets,
            rate_pps: self.rate.max(1),
            to: self.to,
            follow: self.follow.then(|| Duration::from_secs_f64(self.duration)),
            sample: self.sample.max(1),
        })
    }
}

/// Runs a trace on lab `name`. Probing switches modes: it builds the lab
/// first if it is not up (and removes it afterwards) and puts a lab it
/// found back in its mode. Following live traffic changes nothing.
pub async fn run_trace(ctx: &Ctx, name: &LabName, args: &TraceArgs) -> anyhow::Result<TraceResult> {
    let cfg = args.config(name)?;
    let progress = |what: &str| eprintln!("{what}");
    if args.follow {
        anyhow::ensure!(
            lab::load_state(name)?.is_some(),
            "lab {name} is not up: --follow traces traffic on a running lab"
        );
        return session::or_undo(
            ctx,
            async { Ok(trace::run(&cfg, Access::Follow, &progress).await?) },
            async || Ok("the tracer is detached".into()),
        )
        .await;
    }
    session::with_lab(
        ctx,
        name,
        LabUse::BuildIfMissing(Config::default_lab()),
        "lab is not up",
        async |lock| Ok(trace::run(&cfg, Access::Switch(lock), &progress).await?),
    )
    .await
}

pub async fn run(args: TraceArgs, name: LabName, ctx: &Ctx) -> anyhow::Result<i32> {
    let r = run_trace(ctx, &name, &args).await?;
    print!("{}", r.table());
    println!(
        "RX: first netif_receive_skb on the receiving NIC → {}. TX: first net_dev_queue on the pod's interface → net_dev_start_xmit on the node's NIC.",
        r.params.rx_end
    );
    for (mode, run) in r.runs_in_order() {
        if run.lost_events > 0 {
            eprintln!(
                "{mode}: {} events lost (ring buffer full): lower --rate or raise --sample",
                run.lost_events
            );
        }
    }
    if args.path {
        for (mode, run) in r.runs_in_order() {
            for (dir, p) in &run.paths {
                println!(
                    "\n{mode} {}: probe {} in {:.1} µs",
                    dir.name(),
                    p.tag.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                    p.path_ns.unwrap_or_default() as f64 / 1000.0
                );
                print!("{}", summary::listing(p));
            }
        }
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&r)?)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(0)
}
