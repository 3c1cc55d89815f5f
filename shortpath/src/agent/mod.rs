//! `shortpathd`, the node agent: runs the dataplane on one node (a real
//! host's root namespace, or a lab node's namespace) and owns its pinned
//! programs, maps and links.
//!
//! - [`core`]: the node and its endpoints; every change, reconciled with
//!   the kernel.
//! - [`server`] + [`api`]: the local API (unix socket, root only).
//! - [`watch`]: netlink events (a host veth that disappears takes its
//!   endpoint with it).
//! - [`metrics`]: Prometheus text on `--metrics`.
//! - [`store`]: the locked state directory.
//!
//! It never setns: it works in the namespace it was started in.

pub mod api;
pub mod conflist;
pub mod core;
pub mod endpoint;
pub mod host;
pub mod metrics;
pub mod server;
pub mod store;
pub mod watch;

use std::{
    fmt,
    net::SocketAddr,
    path::PathBuf,
    str::FromStr,
    sync::{Arc, Mutex},
};

use ipnet::IpNet;

use crate::dataplane::{AttachKind, Mode, NodeName, PinRoot};
pub use endpoint::PodCidrs;

/// Where the agent keeps things on a real node.
pub const DEFAULT_STATE_DIR: &str = "/run/shortpathd";
pub const DEFAULT_SOCKET: &str = "/run/shortpathd/api.sock";

#[derive(Clone, Debug)]
pub struct Config {
    /// The node's NIC (from_nic goes there).
    pub iface: String,
    pub pod_cidrs: PodCidrs,
    /// The cluster's pod networks (every node's): the only destinations
    /// `from_pod` routes itself. `None`: this node's `pod_cidrs` only.
    pub cluster_cidrs: Option<ClusterCidrs>,
    /// `None`: keep what the kernel runs (peer on a fresh node).
    pub mode: Option<Mode>,
    /// `None`: keep what the kernel has, else TCX where available.
    pub attach: Option<AttachKind>,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub metrics: Option<SocketAddr>,
    pub pin_root: PinRoot,
    pub node: NodeName,
    /// Write the CNI conflist here once ready (`--cni-conf-dir`).
    pub cni: Option<conflist::CniConf>,
}

impl Config {
    /// The cluster CIDRs to run with: `cluster_cidrs`, else the node's own.
    pub fn cluster_cidrs(&self) -> Vec<IpNet> {
        ClusterCidrs::or_node(self.cluster_cidrs.as_ref(), &self.pod_cidrs)
    }

    /// The namespace, as messages name it.
    pub fn netns_label(&self) -> String {
        std::fs::read_link("/proc/self/ns/net")
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "net:[?]".into())
    }
}

/// `--cluster-cidr`: the cluster's pod networks, any number of each
/// family (at most the map's 256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterCidrs(pub Vec<IpNet>);

impl ClusterCidrs {
    /// `cluster`, or without it the node's own pod CIDRs.
    pub fn or_node(cluster: Option<&ClusterCidrs>, pod: &PodCidrs) -> Vec<IpNet> {
        match cluster {
            Some(c) => c.0.clone(),
            None => pod.nets().to_vec(),
        }
    }
}

impl fmt::Display for ClusterCidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        endpoint::write_networks(f, &self.0)
    }
}

impl FromStr for ClusterCidrs {
    type Err = String;
    /// `CIDR[,CIDR…]`: networks, not addresses (`10.0.0.0/16`).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut nets: Vec<IpNet> = Vec::new();
        for part in s.split(',') {
            let net = endpoint::parse_network(part, "cluster CIDR", "10.0.0.0/16")?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        let max = shortpath_common::pod_cidr::MAX_POD_CIDRS as usize;
        if nets.len() > max {
            return Err(format!("{} cluster CIDRs: at most {max}", nets.len()));
        }
        Ok(Self(nets))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Privileges(#[from] crate::privileges::NotPrivileged),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("starting the dataplane on {iface}: {source}")]
    Dataplane {
        iface: String,
        #[source]
        source: crate::dataplane::DataplaneError,
    },
    #[error("API socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink events: {0}")]
    Watch(#[source] std::io::Error),
    #[error("signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("writing the CNI configuration into {dir}: {source}")]
    Conflist {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until SIGTERM or SIGINT. The dataplane keeps forwarding
/// after it exits: programs, links and maps are pinned.
pub async fn run(cfg: Config) -> Result<(), AgentError> {
    crate::privileges::require()?;
    if let Some(addr) = cfg.metrics.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(%addr, "metrics are served beyond loopback: anyone who reaches that address reads them");
    }
    match &cfg.cluster_cidrs {
        None => tracing::warn!(
            pod_cidrs = %cfg.pod_cidrs,
            "no --cluster-cidr: only this node's pod CIDRs take the fast path; traffic to pods of other nodes goes through the stack"
        ),
        Some(c) => {
            for n in cfg.pod_cidrs.nets() {
                if !c.0.iter().any(|m| m.contains(n)) {
                    tracing::warn!(pod_cidr = %n, cluster_cidrs = %c, "the node's own pod CIDR is not inside --cluster-cidr: is the list complete?");
                }
            }
        }
    }
    let store = store::Store::open(&cfg.state_dir)?;
    let c = cfg.clone();
    let (agent, startup) = tokio::task::spawn_blocking(move || core::Agent::start(&c, store))
        .await
        .expect("the start thread does not panic")
        .map_err(|source| AgentError::Dataplane {
            iface: cfg.iface.clone(),
            source,
        })?;
    let nic = agent.node.nic.ifindex;
    tracing::info!(
        node = %cfg.node,
        iface = %cfg.iface,
        pod_cidrs = %cfg.pod_cidrs,
        cluster_cidrs = %ClusterCidrs(cfg.cluster_cidrs()),
        adopted = startup.adopted,
        setting = ?startup.setting,
        endpoints = startup.endpoints,
        reconciled = ?startup.actions,
        "ready"
    );
    let next_hops = agent.next_hops.clone();
    let agent = Arc::new(Mutex::new(agent));
    let api = server::ApiCounts::default();
    let events = watch::Events::default();
    watch::spawn(agent.clone(), events.clone(), next_hops.clone(), nic)
        .map_err(AgentError::Watch)?;
    // Devices that went between the start's reconcile and the watch are
    // caught now, not at the next periodic pass.
    let a = agent.clone();
    let again = tokio::task::spawn_blocking(move || {
        a.lock().unwrap_or_else(|p| p.into_inner()).reconcile()
    })
    .await
    .expect("reconcile does not panic");
    if let Err(e) = again {
        tracing::warn!(error = %e, "reconcile after the watch started");
    }
    if let Some(addr) = cfg.metrics {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Metrics { addr, source })?;
        let src = Arc::new(metrics::Sources {
            agent: agent.clone(),
            api: api.clone(),
            events,
        });
        tokio::spawn(metrics::serve(l, src));
    }
    let listener = server::bind(&cfg.socket).map_err(|source| AgentError::Socket {
        path: cfg.socket.clone(),
        source,
    })?;
    tokio::spawn(server::serve(listener, agent, api));
    // Ready: only now may runtimes send pods here.
    if let Some(cni) = &cfg.cni {
        let path = conflist::write(&cfg, cni).map_err(|source| AgentError::Conflist {
            dir: cni.dir.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), "CNI configuration written");
    }

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!(
        signal = which,
        "stopping; the dataplane keeps forwarding (pinned)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_cidrs_parse_any_number_of_networks() {
        let c: ClusterCidrs = "10.1.0.0/16, fd00:1::/56,10.2.0.0/16,10.1.0.0/16"
            .parse()
            .unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/16,fd00:1::/56,10.2.0.0/16");
        let e = "10.1.0.5/16".parse::<ClusterCidrs>().unwrap_err();
        assert!(e.contains("did you mean 10.1.0.0/16"), "{e}");
        assert!("10.1.0.0".parse::<ClusterCidrs>().is_err());
        assert!("".parse::<ClusterCidrs>().is_err());
        let many: Vec<String> = (0..=256)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        let e = many.join(",").parse::<ClusterCidrs>().unwrap_err();
        assert!(e.contains("at most 256"), "{e}");
    }

    #[test]
    fn cluster_cidrs_default_to_the_node_own() {
        let pod: PodCidrs = "10.1.0.0/24,fd00:1::/64".parse().unwrap();
        assert_eq!(ClusterCidrs::or_node(None, &pod), pod.nets());
        let c: ClusterCidrs = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            ClusterCidrs::or_node(Some(&c), &pod),
            ["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
    }
}
