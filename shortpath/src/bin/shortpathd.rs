//! shortpathd: the shortpath node agent. See `shortpath::agent`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use shortpath::{
    agent::{self, ClusterCidrs, Config, PodCidrs},
    dataplane::{AttachKind, Mode, NodeName, PinRoot},
};

/// Runs shortpath's eBPF dataplane on this node: attaches from_nic to the
/// NIC, keeps pod endpoints (added through the API socket) on the fast
/// path, and adopts what is pinned when restarted.
#[derive(Parser, Debug)]
#[command(name = "shortpathd", version)]
struct Args {
    /// The node's NIC, where traffic from other nodes arrives.
    #[arg(long)]
    iface: String,
    /// This node's pod network(s): V4[,V6], e.g. 10.1.0.0/24,fd00:1::/64.
    #[arg(long, value_name = "V4[,V6]")]
    pod_cidr: PodCidrs,
    /// The cluster's pod networks, every node's, both families, e.g.
    /// 10.1.0.0/16,fd00:1::/56: the only destinations pods reach on the
    /// fast path (anything else, such as Service IPs and the internet, goes
    /// through the node's netfilter). Default: this node's --pod-cidr only,
    /// so traffic to other nodes' pods goes through the stack.
    #[arg(long, value_name = "CIDR[,CIDR…]")]
    cluster_cidr: Option<ClusterCidrs>,
    /// Forwarding mode; default: what the kernel runs now, peer on a fresh
    /// node.
    #[arg(long)]
    mode: Option<Mode>,
    /// How programs are attached; default: what the kernel has, else tcx
    /// where the kernel has it.
    #[arg(long)]
    attach: Option<AttachKind>,
    /// State directory (locked: one agent per node).
    #[arg(long, default_value = agent::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// API socket (mode 0600, root only).
    #[arg(long, default_value = agent::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default;
    /// use 127.0.0.1:PORT).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Where the node's pins live, below /sys/fs/bpf.
    #[arg(long, default_value = "/sys/fs/bpf/shortpath")]
    pin_root: PinRoot,
    /// The node's name: its pins are in PIN_ROOT/NODE.
    #[arg(long, default_value = "node")]
    node: NodeName,
    /// Once ready, write 05-shortpath.conflist into this CNI configuration
    /// directory (e.g. /etc/cni/net.d); it stays when the agent stops.
    #[arg(long, value_name = "DIR")]
    cni_conf_dir: Option<PathBuf>,
    /// A JSON file with the conflist's `ipam` section (default: host-local
    /// over --pod-cidr).
    #[arg(long, value_name = "FILE", requires = "cni_conf_dir")]
    cni_ipam: Option<PathBuf>,
    /// The plugin's log file (one line per call).
    #[arg(long, value_name = "FILE", requires = "cni_conf_dir")]
    cni_log_file: Option<PathBuf>,
    /// Chain the reference portmap plugin after shortpath (hostPort).
    #[arg(long, requires = "cni_conf_dir")]
    cni_portmap: bool,
}

fn fail(msg: &str) -> ! {
    tracing::error!("{msg}");
    std::process::exit(2);
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHORTPATHD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cni = match args.cni_conf_dir {
        None => None,
        Some(dir) => {
            let ipam = match &args.cni_ipam {
                None => None,
                Some(f) => match std::fs::read(f).map_err(|e| e.to_string()).and_then(|b| {
                    serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string())
                }) {
                    Ok(v) if v.get("type").is_some_and(serde_json::Value::is_string) => Some(v),
                    Ok(_) => fail(&format!(
                        "--cni-ipam {}: an ipam section needs a \"type\"",
                        f.display()
                    )),
                    Err(e) => fail(&format!("--cni-ipam {}: {e}", f.display())),
                },
            };
            Some(agent::conflist::CniConf {
                dir,
                ipam,
                log_file: args.cni_log_file,
                portmap: args.cni_portmap,
            })
        }
    };
    let cfg = Config {
        iface: args.iface,
        pod_cidrs: args.pod_cidr,
        cluster_cidrs: args.cluster_cidr,
        mode: args.mode,
        attach: args.attach,
        state_dir: args.state_dir,
        socket: args.socket,
        metrics: args.metrics,
        pin_root: args.pin_root,
        node: args.node,
        cni,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_keep_alive(Duration::from_secs(5))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(agent::run(cfg)) {
        tracing::error!("{e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            tracing::error!("  caused by: {s}");
            src = s.source();
        }
        std::process::exit(1);
    }
}
