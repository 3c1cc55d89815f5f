//! The `reference` bench mode: the lab in peer mode, with the hand-written
//! programs (`shortpath_ebpf::reference`) attached in front of the
//! dataplane's on both nodes, compiled for the bench's pod pair. They
//! redirect the pair's packets themselves, so the dataplane's programs
//! never see them, and their bpf_stats counters give the floor under the
//! same load, in the same run, as the `peer` row.
//!
//! The links are TCX links held by this process (nothing is pinned):
//! dropping [`Attached`], or the process dying, detaches them.

use aya::programs::{tc::TcAttachOptions, LinkOrder, TcAttachType};

use super::{prog::Topology, BenchError};
use crate::{
    dataplane::{
        reference::{ReferenceObject, ReferenceParams},
        DataplaneError, Hook, ProgramRun,
    },
    lab::Inventory,
    netns::{self, Netns},
};

const HOOKS: [Hook; 2] = [Hook::FromNic, Hook::FromPod];

/// The reference programs of every node, attached.
pub struct Attached {
    nodes: Vec<(String, ReferenceObject)>,
}

fn error(node: &str, e: DataplaneError) -> BenchError {
    BenchError::ProgramRuns {
        node: node.to_owned(),
        source: Box::new(e),
    }
}

fn topology_err(inv: &Inventory, what: String) -> BenchError {
    BenchError::Topology {
        lab: inv.name.to_string(),
        what,
    }
}

/// Loads and attaches the reference on both nodes of `inv`: on each, for
/// its first dual-stack pod and the other node's, which must be the
/// bench's pods (`server`: the address the load goes to).
pub async fn attach(inv: &Inventory, server: std::net::IpAddr) -> Result<Attached, BenchError> {
    let mut nodes = Vec::new();
    for first in 0..2 {
        let mut view = inv.clone();
        view.nodes.rotate_left(first);
        let t = Topology::from_inventory(&view)
            .map_err(|e| topology_err(inv, format!("reference mode: {e}")))?;
        if first == 0 && t.remote.ipv4 != Some(server) {
            return Err(topology_err(
                inv,
                format!(
                    "reference mode: the hand-written programs serve IPv4 between {} and {}, the bench sends to {server}",
                    t.sender.name, t.remote.name
                ),
            ));
        }
        let params = t.reference();
        let (nic, pod) = (t.nic.name.clone(), t.sender.host_if.name.clone());
        let node = t.node.clone();
        let obj = netns::run_in(&Netns::new(&t.netns), move || load(&params, &nic, &pod))
            .await?
            .map_err(|e| error(&node, e))?;
        nodes.push((node, obj));
    }
    Ok(Attached { nodes })
}

/// In the node's namespace: the reference object, its programs first at
/// the NIC's and the pod veth's TC ingress.
fn load(p: &ReferenceParams, nic: &str, pod: &str) -> Result<ReferenceObject, DataplaneError> {
    let mut obj = ReferenceObject::load(p)?;
    for (hook, dev) in [(Hook::FromNic, nic), (Hook::FromPod, pod)] {
        let name = ReferenceObject::name(hook);
        obj.program(hook)?
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
        for (node, obj) in &mut self.nodes {
            for hook in HOOKS {
                let info = obj
                    .program(hook)
                    .and_then(|p| {
                        p.info()
                            .map_err(|e| DataplaneError::program(ReferenceObject::name(hook), e))
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
