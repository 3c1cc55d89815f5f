//! The resolved topology of a lab: every namespace, device, address and
//! route, derived from the config. Written to the state file before
//! anything is created, so `lab down` can always find what to remove.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::config::{host, Config, Netfilter};
use crate::{
    names::{LabName, NodeName, PodName},
    netns::Netns,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub name: LabName,
    pub mtu: u32,
    pub netfilter: Netfilter,
    pub wire: WirePlan,
    pub nodes: Vec<NodePlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePlan {
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    /// With more than two nodes, the NICs hang off a bridge in this
    /// namespace (the switch); with two they are one veth pair.
    pub switch: Option<SwitchPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchPlan {
    pub netns: String,
    pub bridge: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub name: NodeName,
    pub netns: String,
    /// The node's NIC (one end of the wire).
    pub nic: String,
    pub nic_ipv4: Option<IpNet>,
    pub nic_ipv6: Option<IpNet>,
    /// Name of the NIC's peer device in the switch namespace, if any.
    pub switch_port: Option<String>,
    pub bridge: String,
    pub bridge_mac: [u8; 6],
    pub gw_ipv4: Option<IpNet>,
    pub gw_ipv6: Option<IpNet>,
    pub pod_ipv4: Option<Ipv4Net>,
    pub pod_ipv6: Option<Ipv6Net>,
    pub pods: Vec<PodPlan>,
    /// Routes to the other nodes' pod subnets via their NIC addresses.
    pub routes: Vec<RoutePlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPlan {
    pub name: PodName,
    pub node: NodeName,
    pub netns: String,
    /// The pod's interface (`ve0`).
    pub ifname: String,
    /// The host-side veth in the node (`lxc…`), a port of the bridge.
    pub host_if: String,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePlan {
    pub dest: IpNet,
    pub via: IpAddr,
}

impl Plan {
    pub fn new(name: &LabName, cfg: &Config) -> Self {
        let switch = (cfg.nodes.len() > 2).then(|| SwitchPlan {
            netns: format!("{name}-switch"),
            bridge: "sw0".to_owned(),
        });
        let nic_addr = |k: usize| {
            (
                cfg.wire
                    .ipv4
                    .map(|n| with_prefix(host(n.into(), k as u32 + 1), n.prefix_len())),
                cfg.wire
                    .ipv6
                    .map(|n| with_prefix(host(n.into(), k as u32 + 1), n.prefix_len())),
            )
        };
        let mut nodes: Vec<NodePlan> = cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let netns = format!("{name}-{}", n.name);
                let (nic_ipv4, nic_ipv6) = nic_addr(k);
                let pods = n
                    .pods
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PodPlan {
                        name: p.clone(),
                        node: n.name.clone(),
                        netns: format!("{netns}-{p}"),
                        ifname: cfg.devices.pod_if.clone(),
                        host_if: format!(
                            "{}{:08x}",
                            cfg.devices.host_if_prefix,
                            fnv1a(&format!("{}/{}", n.name, p))
                        ),
                        ipv4: n
                            .pod_ipv4
                            .map(|s| with_prefix(host(s.into(), i as u32 + 2), s.prefix_len())),
                        ipv6: n
                            .pod_ipv6
                            .map(|s| with_prefix(host(s.into(), i as u32 + 2), s.prefix_len())),
                    })
                    .collect();
                let h = fnv1a(&format!("{name}/{}/bridge", n.name)).to_be_bytes();
                NodePlan {
                    name: n.name.clone(),
                    netns,
                    nic: cfg.wire.name.clone(),
                    nic_ipv4,
                    nic_ipv6,
                    switch_port: switch.as_ref().map(|_| format!("port{k}")),
                    bridge: cfg.devices.bridge.clone(),
                    // Locally administered and fixed: the bridge would
                    // otherwise take a port's MAC and change it as pods come
                    // and go, under the pods' neighbour caches.
                    bridge_mac: [0x02, 0x53, h[0], h[1], h[2], h[3]],
                    gw_ipv4: n
                        .pod_ipv4
                        .map(|s| with_prefix(host(s.into(), 1), s.prefix_len())),
                    gw_ipv6: n
                        .pod_ipv6
                        .map(|s| with_prefix(host(s.into(), 1), s.prefix_len())),
                    pod_ipv4: n.pod_ipv4,
                    pod_ipv6: n.pod_ipv6,
                    pods,
                    routes: Vec::new(),
                }
            })
            .collect();
        let subnets: Vec<(usize, Option<IpNet>, Option<IpNet>)> = nodes
            .iter()
            .enumerate()
            .map(|(k, n)| (k, n.pod_ipv4.map(Into::into), n.pod_ipv6.map(Into::into)))
            .collect();
        for (k, node) in nodes.iter_mut().enumerate() {
            for &(other, v4, v6) in subnets.iter().filter(|(o, ..)| *o != k) {
                let (via4, via6) = nic_addr(other);
                if let (Some(dest), Some(via)) = (v4, via4) {
                    node.routes.push(RoutePlan {
                        dest,
                        via: via.addr(),
                    });
                }
                if let (Some(dest), Some(via)) = (v6, via6) {
                    node.routes.push(RoutePlan {
                        dest,
                        via: via.addr(),
                    });
                }
            }
        }
        Plan {
            name: name.clone(),
            mtu: cfg.mtu,
            netfilter: cfg.netfilter,
            wire: WirePlan {
                ipv4: cfg.wire.ipv4,
                ipv6: cfg.wire.ipv6,
                switch,
            },
            nodes,
        }
    }

    /// Every namespace of the lab: switch, nodes, then pods.
    pub fn namespaces(&self) -> Vec<Netns> {
        let mut v: Vec<Netns> = self
            .wire
            .switch
            .iter()
            .map(|s| Netns::new(&s.netns))
            .collect();
        v.extend(self.nodes.iter().map(|n| Netns::new(&n.netns)));
        v.extend(self.pods().map(|p| Netns::new(&p.netns)));
        v
    }

    /// A namespace name that is not the one this plan's validated names
    /// make (`<lab>-<node>`, `<lab>-<node>-<pod>`, `<lab>-switch`): a state
    /// file edited by hand or from another version.
    pub fn foreign_namespace(&self) -> Option<&str> {
        let lab = &self.name;
        let switch = self
            .wire
            .switch
            .iter()
            .filter(|s| s.netns != format!("{lab}-switch"))
            .map(|s| s.netns.as_str());
        let nodes = self.nodes.iter().flat_map(|n| {
            let node = (n.netns != format!("{lab}-{}", n.name)).then_some(n.netns.as_str());
            node.into_iter().chain(
                n.pods
                    .iter()
                    .filter(move |p| {
                        p.node != n.name || p.netns != format!("{lab}-{}-{}", n.name, p.name)
                    })
                    .map(|p| p.netns.as_str()),
            )
        });
        switch.chain(nodes).next()
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodPlan> {
        self.nodes.iter().flat_map(|n| n.pods.iter())
    }

    /// Every node's pod networks, IPv4 then IPv6: the lab's cluster CIDRs
    /// (the destinations each node's `from_pod` routes with the FIB).
    pub fn cluster_cidrs(&self) -> Vec<IpNet> {
        let v4 = self.nodes.iter().filter_map(|n| n.pod_ipv4.map(IpNet::V4));
        let v6 = self.nodes.iter().filter_map(|n| n.pod_ipv6.map(IpNet::V6));
        v4.chain(v6).collect()
    }

    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn pod(&self, name: &str) -> Option<&PodPlan> {
        self.pods().find(|p| p.name == name)
    }

    /// The namespace of `node`, `pod` or `node/pod`.
    pub fn target(&self, target: &str) -> Option<Netns> {
        if let Some((node, pod)) = target.split_once('/') {
            return self
                .node(node)?
                .pods
                .iter()
                .find(|p| p.name == pod)
                .map(|p| Netns::new(&p.netns));
        }
        self.node(target)
            .map(|n| Netns::new(&n.netns))
            .or_else(|| self.pod(target).map(|p| Netns::new(&p.netns)))
    }
}

fn with_prefix(addr: IpAddr, prefix: u8) -> IpNet {
    IpNet::new(addr, prefix).expect("prefix comes from a valid subnet")
}

/// 32-bit FNV-1a: short, stable device names and MACs.
pub fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_matches_the_article() {
        let p = Plan::new(&LabName::new("sp").unwrap(), &Config::default_lab());
        assert!(p.wire.switch.is_none());
        let a = &p.nodes[0];
        assert_eq!(a.netns, "sp-node-a");
        assert_eq!(a.nic_ipv4.unwrap().to_string(), "192.168.1.1/24");
        assert_eq!(
            p.nodes[1].nic_ipv6.unwrap().to_string(),
            "fd00:192:168:1::2/64"
        );
        assert_eq!(a.gw_ipv4.unwrap().to_string(), "172.17.1.1/24");
        assert_eq!(a.pods[0].netns, "sp-node-a-pod-a");
        assert_eq!(a.pods[0].ipv4.unwrap().to_string(), "172.17.1.2/24");
        assert!(a.pods[0].host_if.starts_with("lxc") && a.pods[0].host_if.len() == 11);
        let routes: Vec<String> = a
            .routes
            .iter()
            .map(|r| format!("{} via {}", r.dest, r.via))
            .collect();
        assert_eq!(
            routes,
            [
                "172.17.2.0/24 via 192.168.1.2",
                "fd00:172:17:2::/64 via fd00:192:168:1::2"
            ]
        );
        assert_eq!(p.namespaces().len(), 4);
        assert_eq!(
            p.target("node-b/pod-b"),
            Some(Netns::new("sp-node-b-pod-b"))
        );
        assert_eq!(p.target("pod-a"), Some(Netns::new("sp-node-a-pod-a")));
        assert_eq!(p.target("node-a"), Some(Netns::new("sp-node-a")));
        assert_eq!(p.target("nope"), None);
        assert_eq!(p.foreign_namespace(), None);
        let cluster: Vec<String> = p.cluster_cidrs().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            cluster,
            [
                "172.17.1.0/24",
                "172.17.2.0/24",
                "fd00:172:17:1::/64",
                "fd00:172:17:2::/64"
            ]
        );
        let mut bad = p.clone();
        bad.nodes[1].pods[0].netns = "../../tmp".into();
        assert_eq!(bad.foreign_namespace(), Some("../../tmp"));
        let mut bad = p.clone();
        bad.nodes[0].netns = "sp-node-b".into();
        assert_eq!(bad.foreign_namespace(), Some("sp-node-b"));
    }

    #[test]
    fn three_nodes_get_a_switch_and_full_mesh_routes() {
        let cfg = Config::parse(
            "families=[\"ipv4\"]\n[[node]]\nname=\"a\"\npods=2\n[[node]]\nname=\"b\"\n[[node]]\nname=\"c\"\n",
            "t",
        )
        .unwrap();
        let p = Plan::new(&LabName::new("x").unwrap(), &cfg);
        assert_eq!(p.wire.switch.as_ref().unwrap().netns, "x-switch");
        assert_eq!(p.nodes[2].switch_port.as_deref(), Some("port2"));
        assert_eq!(p.nodes[0].routes.len(), 2);
        assert_eq!(
            p.nodes[0].pods[1].ipv4.unwrap().to_string(),
            "172.17.1.3/24"
        );
        let hosts: std::collections::HashSet<_> =
            p.nodes[0].pods.iter().map(|p| &p.host_if).collect();
        assert_eq!(hosts.len(), 2);
        assert_eq!(p.namespaces().len(), 1 + 3 + 4);
    }
}
