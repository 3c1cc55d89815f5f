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
pub mod core;
pub mod endpoint;
mod host;
pub mod metrics;
pub mod server;
pub mod store;
pub mod watch;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

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
    /// `None`: keep what the kernel runs (peer on a fresh node).
    pub mode: Option<Mode>,
    /// `None`: keep what the kernel has, else TCX where available.
    pub attach: Option<AttachKind>,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub metrics: Option<SocketAddr>,
    pub pin_root: PinRoot,
    pub node: NodeName,
}

impl Config {
    /// The namespace, as messages name it.
    pub fn netns_label(&self) -> String {
        std::fs::read_link("/proc/self/ns/net")
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "net:[?]".into())
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
}

/// Runs the agent until SIGTERM or SIGINT. The dataplane keeps forwarding
/// after it exits: programs, links and maps are pinned.
pub async fn run(cfg: Config) -> Result<(), AgentError> {
    crate::privileges::require()?;
    if let Some(addr) = cfg.metrics.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(%addr, "metrics are served beyond loopback: anyone who reaches that address reads them");
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
        adopted = startup.adopted,
        setting = ?startup.setting,
        endpoints = startup.endpoints,
        reconciled = ?startup.actions,
        "ready"
    );
    let agent = Arc::new(Mutex::new(agent));
    let api = server::ApiCounts::default();
    let events = watch::Events::default();
    watch::spawn(agent.clone(), events.clone(), nic).map_err(AgentError::Watch)?;
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
