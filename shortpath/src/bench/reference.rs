//! The `reference` bench mode: the lab in peer mode, with the hand-written
//! programs (`shortpath_ebpf::reference`) attached in front of the
//! dataplane's on both nodes, compiled for the bench's pod pair. They
//! redirect the pair's IPv4 packets themselves, so the dataplane's
//! programs never see those, and hand every other packet on to them
//! (`TC_ACT_UNSPEC`: the next program of the TCX chain). Their bpf_stats
//! counters give the floor under the same load, in the same run, as the
//! `peer` row.
//!
//! The `noop` mode attaches, the same way, a program per hook that does
//! nothing but hand the packet on: what bpf_stats charges it is the part
//! of every program's ns/packet that is the counting itself.
//!
//! The links are TCX links held by this process (nothing is pinned):
//! dropping [`Attached`], or the process dying, detaches them.

use std::net::{IpAddr, Ipv4Addr};

use aya::programs::{tc::TcAttachOptions, LinkOrder, TcAttachType};

use super::{BenchError, BenchMode};
use crate::{
    dataplane::{
        self,
        reference::{ReferenceObject, ReferenceParams},
        DataplaneError, Hook, ProgramRun,
    },
    lab::{Inventory, NodeInfo, PodInfo},
    netns::{self, Netns},
};

const HOOKS: [Hook; 2] = [Hook::FromNic, Hook::FromPod];

/// Which programs of the reference object go in front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Programs {
    /// The hand-written redirects.
    Reference,
    /// Programs that do nothing.
    Noop,
}

impl Programs {
    /// The programs `mode` puts in front, if it puts any.
    pub fn of(mode: BenchMode) -> Option<Self> {
        match mode {
            BenchMode::Reference => Some(Programs::Reference),
            BenchMode::Noop => Some(Programs::Noop),
            _ => None,
        }
    }

    fn mode(self) -> BenchMode {
        match self {
            Programs::Reference => BenchMode::Reference,
            Programs::Noop => BenchMode::Noop,
        }
    }

    fn name(self, hook: Hook) -> &'static str {
        match self {
            Programs::Reference => ReferenceObject::name(hook),
            Programs::Noop => ReferenceObject::noop_name(hook),
        }
    }

    fn program(
        self,
        obj: &mut ReferenceObject,
        hook: Hook,
    ) -> Result<&mut aya::programs::SchedClassifier, DataplaneError> {
        match self {
            Programs::Reference => obj.program(hook),
            Programs::Noop => obj.noop(hook),
        }
    }
}

/// The reference (or no-op) programs of every node, attached.
pub struct Attached {
    programs: Programs,
    nodes: Vec<(String, ReferenceObject)>,
}

/// One node's side of the pair: where to attach, and what to compile in.
struct Side {
    node: String,
    netns: String,
    nic: String,
    pod_host_if: String,
    params: ReferenceParams,
}

fn v4(a: Option<IpAddr>) -> Option<Ipv4Addr> {
    match a {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// The bench's pods: the first of each of the first two nodes.
fn pair(inv: &Inventory) -> Result<[(&NodeInfo, &PodInfo); 2], String> {
    let [a, b, ..] = inv.nodes.as_slice() else {
        return Err(format!(
            "{} node(s), the reference needs two",
            inv.nodes.len()
        ));
    };
    Ok([first_pod(inv, a)?, first_pod(inv, b)?])
}

fn first_pod<'a>(
    inv: &'a Inventory,
    n: &'a NodeInfo,
) -> Result<(&'a NodeInfo, &'a PodInfo), String> {
    inv.pods_of(&n.name)
        .next()
        .map(|p| (n, p))
        .ok_or_else(|| format!("{} has no pod", n.name))
}

/// Why the reference cannot run on `inv` on this machine, if it cannot:
/// it needs TCX links (Linux ≥ 6.6) and an IPv4 pod on each of the first
/// two nodes, with IPv4 NICs.
pub fn applicable(inv: &Inventory) -> Result<(), String> {
    sides(inv).map(drop)
}

/// Both nodes' sides, or why the reference cannot run (see [`applicable`]).
fn sides(inv: &Inventory) -> Result<[Side; 2], String> {
    if !dataplane::tcx_supported() {
        return Err("the kernel has no TCX links (Linux ≥ 6.6)".into());
    }
    let [(na, pa), (nb, pb)] = pair(inv)?;
    let side = |(n, p): (&NodeInfo, &PodInfo), (rn, rp): (&NodeInfo, &PodInfo)| {
        let need = |what: &str| format!("{what} has no IPv4 address");
        let pod_addr = v4(p.ipv4).ok_or_else(|| need(p.name.as_str()))?;
        let remote = v4(rp.ipv4).ok_or_else(|| need(rp.name.as_str()))?;
        v4(n.nic.ipv4).ok_or_else(|| need(&format!("{}'s {}", n.name, n.nic.name)))?;
        v4(rn.nic.ipv4).ok_or_else(|| need(&format!("{}'s {}", rn.name, rn.nic.name)))?;
        Ok::<_, String>(Side {
            node: n.name.to_string(),
            netns: n.netns.clone(),
            nic: n.nic.name.clone(),
            pod_host_if: p.host_if.name.clone(),
            params: ReferenceParams {
                pod_addr,
                pod_host_ifindex: p.host_if.ifindex,
                pod_mac: p.mac.0,
                host_mac: p.host_if.mac.0,
                remote: ipnet::Ipv4Net::new(remote, 32).expect("a /32"),
                nic_ifindex: n.nic.ifindex,
                nic_mac: n.nic.mac.0,
                gateway_mac: rn.nic.mac.0,
            },
        })
    };
    Ok([side((na, pa), (nb, pb))?, side((nb, pb), (na, pa))?])
}

fn error(node: &str, e: DataplaneError) -> BenchError {
    BenchError::ProgramRuns {
        node: node.to_owned(),
        source: Box::new(e),
    }
}

/// Loads and attaches the reference (or the no-op programs) on both nodes of
/// `inv`, for the bench's pods; `server` (the address the load goes to)
/// must be the second node's pod's IPv4 address.
pub async fn attach(
    inv: &Inventory,
    server: IpAddr,
    programs: Programs,
) -> Result<Attached, BenchError> {
    let topology = |what: String| BenchError::Topology {
        lab: inv.name.to_string(),
        what: format!("{} mode: {what}", programs.mode()),
    };
    let sides = sides(inv).map_err(topology)?;
    if IpAddr::V4(sides[1].params.pod_addr) != server {
        return Err(topology(format!(
            "the hand-written programs serve IPv4 between the first pods of the first two nodes, the bench sends to {server}"
        )));
    }
    let mut nodes = Vec::new();
    for s in sides {
        let Side {
            node,
            netns,
            nic,
            pod_host_if,
            params,
        } = s;
        let obj = netns::run_in(&Netns::new(&netns), move || {
            load(&params, programs, &nic, &pod_host_if)
        })
        .await?
        .map_err(|e| error(&node, e))?;
        nodes.push((node, obj));
    }
    Ok(Attached { programs, nodes })
}

/// In the node's namespace: the reference object, its `programs` first at
/// the NIC's and the pod veth's TC ingress.
fn load(
    p: &ReferenceParams,
    programs: Programs,
    nic: &str,
    pod: &str,
) -> Result<ReferenceObject, DataplaneError> {
    let mut obj = ReferenceObject::load(p)?;
    for (hook, dev) in [(Hook::FromNic, nic), (Hook::FromPod, pod)] {
        let name = programs.name(hook);
        programs
            .program(&mut obj, hook)?
            .attach_with_options(
                dev,
                TcAttachType::Ingress,
                TcAttachOptions::TcxOrder(LinkOrder::first()),
            )
            .map_err(|e| DataplaneError::program(name, e))?;
    }
    Ok(obj)
}

impl Attached {
    /// The programs' run-time counters, as the dataplane's are read.
    pub fn runs(&mut self) -> Result<Vec<ProgramRun>, BenchError> {
        let mut out = Vec::new();
        let programs = self.programs;
        for (node, obj) in &mut self.nodes {
            for hook in HOOKS {
                let info = programs
                    .program(obj, hook)
                    .and_then(|p| {
                        p.info()
                            .map_err(|e| DataplaneError::program(programs.name(hook), e))
                    })
                    .map_err(|e| error(node, e))?;
                out.push(ProgramRun {
                    hook: hook.program(),
                    program_id: info.id(),
                    run_time_ns: info.run_time().as_nanos() as u64,
                    run_count: info.run_count(),
                });
            }
        }
        Ok(out)
    }
}
