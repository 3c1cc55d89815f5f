//! `shortpath lab`: the article's topology (nodes, a wire between them,
//! a bridge and pods per node) built entirely inside network namespaces.
//! The root namespace is never touched.

pub mod config;
mod inventory;
pub mod netfilter;
pub mod plan;
mod state;
mod up;

use crate::{fault::Fault, names::LabName, netns::NetnsError, nl::NlError};

pub use inventory::{inventory, Inventory, NicInfo, NodeInfo, PodInfo};
pub use state::{load as load_state, LabState, STATE_FILE};
pub use up::{down, exec, up};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("lab {0:?} already exists: use `shortpath lab down --name {0}` or `lab up --force`")]
    Exists(LabName),
    #[error("network namespace {ns} exists but is not part of a shortpath lab; remove it (ip netns del {ns}) or choose another --name")]
    NamespaceTaken { ns: String },
    #[error("no lab named {0:?} (see `shortpath lab status`, or create it with `shortpath lab up --name {0}`)")]
    NotFound(LabName),
    #[error("lab {0:?} is being built or its build crashed: run `shortpath lab down --name {0}`")]
    NotReady(LabName),
    #[error("{0}")]
    Preflight(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Netlink(#[from] NlError),
    #[error("netns {netns}: {source}")]
    Sysctl {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netfilter(#[from] netfilter::NetfilterError),
    #[error("lab state in /run/shortpath: {0}")]
    State(#[source] std::io::Error),
    #[error(transparent)]
    Fault(#[from] Fault),
    #[error("lab {lab}: no node, pod or node/pod named {target:?}")]
    NoTarget { lab: LabName, target: String },
    #[error("cannot run {cmd}: {source}")]
    Exec {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where a lab's nodes keep their pins: `/sys/fs/bpf/shortpath/<lab>/`.
pub fn pin_root(lab: &LabName) -> shortpath_dataplane::PinRoot {
    shortpath_dataplane::PinRoot::shortpath()
        .join(lab)
        .expect("a lab name is a valid pin directory name")
}

/// Loads a ready lab's state.
pub fn ready_state(name: &LabName) -> Result<LabState, LabError> {
    match state::load(name).map_err(LabError::State)? {
        None => Err(LabError::NotFound(name.clone())),
        Some(s) if !s.ready => Err(LabError::NotReady(name.clone())),
        Some(s) => Ok(s),
    }
}
