//! A running lab as the kernel has it: ifindexes, MACs and addresses read
//! back over netlink, for status output and for the dataplane.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{plan::Plan, LabError};
use crate::{
    dataplane::{NodeSpec, PodSpec, Port},
    names::{LabName, NodeName, PodName},
    netns::Netns,
    nl::{Link, Mac, Netlink},
};

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub name: LabName,
    pub netfilter: &'static str,
    pub mtu: u32,
    pub nodes: Vec<NodeInfo>,
    pub pods: Vec<PodInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub name: NodeName,
    pub netns: String,
    pub nic: NicInfo,
    pub bridge: NicInfo,
    pub pod_ipv4: Option<String>,
    pub pod_ipv6: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NicInfo {
    pub name: String,
    pub ifindex: u32,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub mac: Mac,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodInfo {
    pub name: PodName,
    pub node: NodeName,
    pub netns: String,
    pub ifname: String,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub mac: Mac,
    pub ifindex: u32,
    pub mtu: u32,
    pub host_if: HostIf,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostIf {
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
}

impl Inventory {
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every node's pod networks, IPv4 then IPv6: the cluster CIDRs each
    /// node's dataplane routes with the FIB.
    pub fn cluster_cidrs(&self) -> Vec<IpNet> {
        let v4 = self.nodes.iter().filter_map(|n| n.pod_ipv4.as_deref());
        let v6 = self.nodes.iter().filter_map(|n| n.pod_ipv6.as_deref());
        v4.chain(v6)
            .map(|c| c.parse().expect("a plan's pod CIDRs are networks"))
            .collect()
    }

    /// What the dataplane needs of node `name`: its NIC, its pods and the
    /// cluster's pod CIDRs.
    pub fn dataplane_spec(&self, name: &str) -> Option<NodeSpec> {
        let node = self.node(name)?;
        let port = |name: &str, ifindex| Port {
            ifname: name.to_owned(),
            ifindex,
        };
        Some(NodeSpec {
            pin_root: super::pin_root(&self.name),
            node: node.name.clone(),
            netns: node.netns.clone(),
            nic: port(&node.nic.name, node.nic.ifindex),
            pods: self
                .pods_of(name)
                .map(|p| PodSpec {
                    name: p.name.to_string(),
                    host_if: port(&p.host_if.name, p.host_if.ifindex),
                    host_mac: p.host_if.mac.0,
                    pod_mac: p.mac.0,
                    mtu: p.mtu,
                    addrs: p.ipv4.into_iter().chain(p.ipv6).collect(),
                })
                .collect(),
            cluster_cidrs: self.cluster_cidrs(),
        })
    }

    pub fn pods_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a PodInfo> + 'a {
        self.pods.iter().filter(move |p| p.node == node)
    }
}

fn nic(link: Link, ipv4: Option<IpAddr>, ipv6: Option<IpAddr>) -> NicInfo {
    NicInfo {
        name: link.name,
        ifindex: link.index,
        ipv4,
        ipv6,
        mac: link.mac,
    }
}

/// Reads lab `name` back from the kernel.
pub async fn inventory(name: &LabName) -> Result<Inventory, LabError> {
    let st = super::ready_state(name)?;
    from_plan(&st.plan).await
}

async fn from_plan(plan: &Plan) -> Result<Inventory, LabError> {
    let mut nodes = Vec::new();
    let mut pods = Vec::new();
    for n in &plan.nodes {
        let h = Netlink::connect(&Netns::new(&n.netns)).await?;
        let nic_link = h.link(&n.nic).await?;
        let br_link = h.link(&n.bridge).await?;
        nodes.push(NodeInfo {
            name: n.name.clone(),
            netns: n.netns.clone(),
            nic: nic(
                nic_link,
                n.nic_ipv4.map(|a| a.addr()),
                n.nic_ipv6.map(|a| a.addr()),
            ),
            bridge: nic(
                br_link,
                n.gw_ipv4.map(|a| a.addr()),
                n.gw_ipv6.map(|a| a.addr()),
            ),
            pod_ipv4: n.pod_ipv4.map(|s| s.to_string()),
            pod_ipv6: n.pod_ipv6.map(|s| s.to_string()),
        });
        for p in &n.pods {
            let host = h.link(&p.host_if).await?;
            let ph = Netlink::connect(&Netns::new(&p.netns)).await?;
            let ve = ph.link(&p.ifname).await?;
            pods.push(PodInfo {
                name: p.name.clone(),
                node: n.name.clone(),
                netns: p.netns.clone(),
                ifname: p.ifname.clone(),
                ipv4: p.ipv4.map(|a| a.addr()),
                ipv6: p.ipv6.map(|a| a.addr()),
                mac: ve.mac,
                ifindex: ve.index,
                mtu: ve.mtu,
                host_if: HostIf {
                    name: host.name,
                    ifindex: host.index,
                    mac: host.mac,
                },
            });
        }
    }
    Ok(Inventory {
        name: plan.name.clone(),
        netfilter: plan.netfilter.as_str(),
        mtu: plan.mtu,
        nodes,
        pods,
    })
}
