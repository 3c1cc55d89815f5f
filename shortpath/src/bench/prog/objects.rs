//! One fresh, unpinned object per program, its maps filled with what the
//! cases need, then padded with synthetic endpoints to each map size; and
//! the hand-written reference, which looks up no map.

use std::net::IpAddr;

use aya::programs::SchedClassifier;

use shortpath_common::{endpoint::EndpointKey, mode::FastPath, next_hop::NextHop};

use super::{
    cases::{Program, Topology, LOCAL_POD, LOCAL_POD_IP, STACK_CLIENT, STACK_CLIENT_IP},
    ProgBenchError,
};
use crate::dataplane::{
    counters, endpoint_entries, reference::ReferenceObject, synthetic, DataplaneError, Hook,
    TcObject,
};

enum Object {
    Shortpath(TcObject),
    Reference(ReferenceObject),
}

/// A program under test: its own object, nothing attached, nothing pinned.
pub struct Subject {
    pub program: Program,
    obj: Object,
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
    /// [`Topology::sender_mac`] and the local destination pod is added,
    /// for `from_nic` a pod that sent packets to the stack.
    pub fn load(topo: &Topology, hook: Hook, mode: FastPath) -> Result<Self, ProgBenchError> {
        let program = Program::Shortpath(hook);
        let load = |e| ProgBenchError::Dataplane {
            program: program.name(),
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
        } else {
            want.insert(key(STACK_CLIENT_IP.into()), STACK_CLIENT);
        }
        let mut map = obj.endpoints().map_err(load)?;
        for (k, v) in &want {
            map.insert(k, v, 0)
                .map_err(|e| load(crate::dataplane::endpoint_map_error(e)))?;
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
            program,
            obj: Object::Shortpath(obj),
            base: want.len(),
        })
    }

    /// Loads the hand-written reference of `hook`, compiled for the
    /// topology's pods.
    pub fn reference(topo: &Topology, hook: Hook) -> Result<Self, ProgBenchError> {
        let program = Program::Reference(hook);
        let obj =
            ReferenceObject::load(&topo.reference()).map_err(|e| ProgBenchError::Dataplane {
                program: program.name(),
                source: Box::new(e),
            })?;
        Ok(Self {
            program,
            obj: Object::Reference(obj),
            base: 0,
        })
    }

    fn err(&self, e: DataplaneError) -> ProgBenchError {
        ProgBenchError::Dataplane {
            program: self.program.name(),
            source: Box::new(e),
        }
    }

    /// The program, loaded into the kernel.
    pub fn classifier(&mut self) -> Result<&mut SchedClassifier, ProgBenchError> {
        let r = match (&mut self.obj, self.program) {
            (Object::Shortpath(o), Program::Shortpath(h)) => o.program(h),
            (Object::Reference(o), Program::Reference(h)) => o.program(h),
            _ => unreachable!("loaded together"),
        };
        let name = self.program.name();
        r.map_err(|e| ProgBenchError::Dataplane {
            program: name,
            source: Box::new(e),
        })
    }

    /// Whether the program counts its packets (the reference does not).
    pub fn counts_packets(&self) -> bool {
        matches!(self.obj, Object::Shortpath(_))
    }

    /// Pads the endpoint map with synthetic entries up to `total` (never
    /// below what the cases need); returns the entries it then holds.
    pub fn fill(&mut self, total: usize) -> Result<usize, ProgBenchError> {
        let Object::Shortpath(obj) = &mut self.obj else {
            return Ok(0);
        };
        let mut map = obj.endpoints().map_err(|e| ProgBenchError::Dataplane {
            program: self.program.name(),
            source: Box::new(e),
        })?;
        let c = synthetic::set(&mut map, total.saturating_sub(self.base))?;
        Ok(c.real + c.synthetic.len())
    }

    /// Packets per reason counted on `ifindex` so far (none for the
    /// reference).
    pub fn counts(&self, ifindex: u32) -> Result<counters::ReasonCounts, ProgBenchError> {
        let Object::Shortpath(obj) = &self.obj else {
            return Ok(Default::default());
        };
        let mut all = obj.counts().map_err(|e| self.err(e))?;
        Ok(all.remove(&ifindex).unwrap_or_default())
    }
}
