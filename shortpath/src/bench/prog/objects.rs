//! One fresh, unpinned object per program, its maps filled with what the
//! cases need, then padded with synthetic endpoints to each map size.

use std::net::IpAddr;

use shortpath_common::{endpoint::EndpointKey, mode::FastPath, next_hop::NextHop};

use super::{
    cases::{Topology, LOCAL_POD, LOCAL_POD_IP},
    ProgBenchError,
};
use crate::dataplane::{counters, endpoint_entries, synthetic, Hook, TcObject};

/// A program under test: its own object, nothing attached, nothing pinned.
pub struct Subject {
    pub hook: Hook,
    pub obj: TcObject,
    /// Entries the cases need (no synthetic ones).
    pub base: usize,
}

fn key(a: IpAddr) -> EndpointKey {
    match a {
        IpAddr::V4(a) => EndpointKey::v4(a.octets()),
        IpAddr::V6(a) => EndpointKey::v6(a.octets()),
    }
}

impl Subject {
    /// Loads `hook`'s program in `mode` with the node's endpoints and pod
    /// CIDRs; for `from_pod` the sending pod's entries carry
    /// [`Topology::sender_mac`] and the local destination pod is added.
    pub fn load(topo: &Topology, hook: Hook, mode: FastPath) -> Result<Self, ProgBenchError> {
        let load = |e| ProgBenchError::Dataplane {
            program: hook.program(),
            source: Box::new(e),
        };
        let mut obj = TcObject::load(mode, None).map_err(load)?;
        obj.program(hook).map_err(load)?;
        let mut want = endpoint_entries(&topo.spec);
        if hook == Hook::FromPod {
            for a in topo.sender.ipv4.iter().chain(&topo.sender.ipv6) {
                if let Some(ep) = want.get_mut(&key(*a)) {
                    ep.pod_mac = topo.sender_mac();
                }
            }
            want.insert(key(LOCAL_POD_IP.into()), LOCAL_POD);
        }
        let mut map = obj.endpoints().map_err(load)?;
        for (k, v) in &want {
            map.insert(k, v, 0)
                .map_err(|e| load(crate::dataplane::DataplaneError::map("ENDPOINTS", e)))?;
        }
        obj.sync_pod_cidrs(&topo.spec).map_err(load)?;
        if hook == Hook::FromPod {
            // The node's routes and neighbours as the agent would cache
            // them, and one destination left to the FIB (its row).
            obj.sync_next_hops(&topo.spec).map_err(load)?;
            let k = crate::dataplane::next_hops::key(topo.fib_only());
            obj.next_hops()
                .map_err(load)?
                .insert(
                    &aya::maps::lpm_trie::Key::new(k.prefixlen, k.net),
                    NextHop::ASK_FIB,
                    0,
                )
                .map_err(|e| load(crate::dataplane::DataplaneError::map("NEXT_HOPS", e)))?;
        }
        Ok(Self {
            hook,
            obj,
            base: want.len(),
        })
    }

    /// Pads the endpoint map with synthetic entries up to `total` (never
    /// below what the cases need); returns the entries it then holds.
    pub fn fill(&mut self, total: usize) -> Result<usize, ProgBenchError> {
        let program = self.hook.program();
        let load = |e| ProgBenchError::Dataplane {
            program,
            source: Box::new(e),
        };
        let mut map = self.obj.endpoints().map_err(load)?;
        let c = synthetic::set(&mut map, total.saturating_sub(self.base))?;
        Ok(c.real + c.synthetic.len())
    }

    /// Packets per reason counted on `ifindex` so far.
    pub fn counts(&self, ifindex: u32) -> Result<counters::ReasonCounts, ProgBenchError> {
        let err = |e| ProgBenchError::Dataplane {
            program: self.hook.program(),
            source: Box::new(e),
        };
        let mut all = self.obj.counts().map_err(err)?;
        Ok(all.remove(&ifindex).unwrap_or_default())
    }
}
