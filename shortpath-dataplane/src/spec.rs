//! What the dataplane needs to know about one node: its NIC, its pods and
//! the cluster's pod networks.

use std::net::IpAddr;

use ipnet::IpNet;

use serde::Serialize;

use crate::{names::NodeName, pins::PinRoot};

/// A device in the node namespace that gets a program.
#[derive(Clone, Debug, Serialize)]
pub struct Port {
    pub ifname: String,
    pub ifindex: u32,
}

/// A pod as the fast path sees it.
#[derive(Clone, Debug, Serialize)]
pub struct PodSpec {
    pub name: String,
    /// Host-side veth (`lxc…`) in the node namespace.
    pub host_if: Port,
    pub host_mac: [u8; 6],
    /// The pod's own interface (`ve0`).
    pub pod_mac: [u8; 6],
    pub mtu: u32,
    pub addrs: Vec<IpAddr>,
}

/// One node: a lab's, or a real one under the agent.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSpec {
    /// The node's pins are in `<pin_root>/<node>/`.
    pub pin_root: PinRoot,
    pub node: NodeName,
    pub netns: String,
    pub nic: Port,
    pub pods: Vec<PodSpec>,
    /// The cluster's pod networks (every node's, both families): the only
    /// destinations `from_pod` routes with the FIB. Everything else goes
    /// to the node's stack (Services, masquerade).
    pub cluster_cidrs: Vec<IpNet>,
}
