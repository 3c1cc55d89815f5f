//! shortpath's eBPF dataplane as a library: loading the TC programs,
//! attaching them to a node's NIC and pod veths, keeping the endpoint and
//! pod CIDR maps in step, switching modes in place, reading counters and
//! the kernel's view back.
//!
//! It is keyed by a node identity ([`NodeName`]) and a pin root
//! ([`PinRoot`]) and knows nothing of labs: the lab, the node agent
//! (`shortpathd`) and the CNI plugin drive it the same way.
//!
//! Beside it, the plumbing they all share: [`netns`] (namespace threads),
//! [`nl`] (netlink), [`securefs`] (checked directories), [`names`]
//! (validated names), [`privileges`] and [`sysctl`].

mod attach;
pub mod counters;
mod endpoint_gen;
mod endpoint_maps;
mod endpoints;
mod error;
pub mod kernel;
pub mod names;
pub mod netns;
pub mod next_hops;
pub mod nl;
mod node;
pub mod object;
mod pins;
mod pod_cidrs;
pub mod privileges;
pub mod reference;
mod run_stats;
pub mod securefs;
mod spec;
mod stack_flows;
mod state;
pub mod synthetic;
mod sys;
pub mod sysctl;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use shortpath_common::mode::FastPath;

pub use attach::{apply, prepare, status, ProgramStatus, RunStats};
pub use endpoint_maps::{map_err as endpoint_map_error, EndpointMaps};
pub use endpoints::{entries as endpoint_entries, remove_pinned as remove_pinned_addresses};
pub use error::{DataplaneError, VERIFIER_LOG_ENV};
pub use names::{NodeName, PinName};
pub use node::{Node, Setting};
pub use object::TcObject;
pub use pins::{NodePins, PinRoot, PinRootError, BPFFS};
pub use pod_cidrs::{read as read_pod_cidrs, sync as sync_pod_cidrs, PodCidrMap};
pub use run_stats::{
    node_program_runs, BpfStats, BpfStatsError, Counting, ProgramRun, BPF_STATS_SYSCTL,
};
pub use spec::{NodeSpec, PodSpec, Port};
pub use stack_flows::{read as read_stack_flows, StackFlow, StackFlowMap};
pub use state::DataplaneState;

/// How traffic to and from pods is forwarded.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The stack: routing, bridge, netfilter, backlog. No program attached.
    #[default]
    Bridge,
    /// `bpf_redirect` to the host veth / NIC.
    Redirect,
    /// `bpf_redirect_peer` into the pod.
    Peer,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Bridge, Mode::Redirect, Mode::Peer];

    pub fn fast_path(self) -> Option<FastPath> {
        match self {
            Mode::Bridge => None,
            Mode::Redirect => Some(FastPath::Redirect),
            Mode::Peer => Some(FastPath::Peer),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bridge => "bridge",
            Mode::Redirect => "redirect",
            Mode::Peer => "peer",
        }
    }
}

/// The mode a program was loaded in (the inverse of [`Mode::fast_path`]).
impl From<FastPath> for Mode {
    fn from(f: FastPath) -> Self {
        match f {
            FastPath::Redirect => Mode::Redirect,
            FastPath::Peer => Mode::Peer,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode {s:?}: use bridge, redirect or peer"))
    }
}

/// How programs are attached to the TC ingress hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachKind {
    /// TCX links (Linux ≥ 6.6): pinned links, updated atomically.
    Tcx,
    /// clsact qdisc + cls_bpf direct-action filter, replaced in place.
    Tc,
}

impl AttachKind {
    /// TCX where the kernel has it, else tc.
    pub fn best() -> Self {
        if tcx_supported() {
            AttachKind::Tcx
        } else {
            AttachKind::Tc
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttachKind::Tcx => "tcx",
            AttachKind::Tc => "tc",
        }
    }
}

impl FromStr for AttachKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcx" => Ok(AttachKind::Tcx),
            "tc" => Ok(AttachKind::Tc),
            _ => Err(format!("unknown attach kind {s:?}: use tcx or tc")),
        }
    }
}

impl fmt::Display for AttachKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TCX links arrived in Linux 6.6.
pub fn tcx_supported() -> bool {
    aya::util::KernelVersion::current().is_ok_and(|v| v >= aya::util::KernelVersion::new(6, 6, 0))
}

/// Which program a device gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Node NIC ingress: traffic from the wire.
    FromNic,
    /// Host-side pod veth ingress: traffic the pod sends.
    FromPod,
}

impl Hook {
    pub fn program(self) -> &'static str {
        match self {
            Hook::FromNic => "from_nic",
            Hook::FromPod => "from_pod",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in Mode::ALL {
            assert_eq!(m.to_string().parse::<Mode>().unwrap(), m);
        }
        assert!("fast"
            .parse::<Mode>()
            .unwrap_err()
            .contains("bridge, redirect or peer"));
        assert_eq!(Mode::Bridge.fast_path(), None);
        assert_eq!(Mode::Peer.fast_path(), Some(FastPath::Peer));
        for m in [Mode::Redirect, Mode::Peer] {
            assert_eq!(m.fast_path().map(Mode::from), Some(m));
        }
        assert_eq!("tc".parse::<AttachKind>().unwrap(), AttachKind::Tc);
        assert!("xdp".parse::<AttachKind>().is_err());
    }
}
