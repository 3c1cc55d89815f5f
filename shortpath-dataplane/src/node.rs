//! One node's dataplane driven piece by piece: the API the node agent and
//! the CNI plugin use (the lab applies whole [`NodeSpec`]s with
//! [`crate::apply`]). Everything runs in the caller's network namespace:
//! the node's.
//!
//! - [`Node::open`] makes sure the node's maps are pinned, so endpoints
//!   live in the kernel from the first one on, whatever the mode, and
//!   writes the cluster's pod CIDRs ([`Node::set_cluster_cidrs`] changes
//!   them, [`Node::cluster_cidrs`] reads the kernel's).
//! - [`Node::setting`] reads what the kernel runs on the node's ports.
//! - [`Node::apply`] switches mode or attach kind (in place, atomically per
//!   port).
//! - [`Node::put_endpoint`] / [`Node::remove_endpoint`] change one pod:
//!   its map entries and its host veth's program, without reloading
//!   anything.

use std::{collections::BTreeMap, net::IpAddr};

use aya::maps::{Map, MapData};
use aya::programs::SchedClassifier;
use ipnet::IpNet;
use serde::Serialize;
use shortpath_common::endpoint::{Endpoint, EndpointKey, AF_INET, AF_INET6};

use crate::{
    attach::{self, ProgramStatus},
    counters::{self, ReasonCounts},
    endpoint_gen::Generation,
    endpoint_maps::{self, EndpointMaps},
    endpoints, kernel, next_hops,
    object::{MAP_NEXT_HOPS, MAP_POD_CIDRS, MAP_STACK_FLOWS, PINNED_MAPS},
    pins::{self, NodePins, PinRoot},
    pod_cidrs::{self, PodCidrMap},
    stack_flows::{self, StackFlow, StackFlowMap},
    AttachKind, DataplaneError, Hook, Mode, NodeName, NodeSpec, PodSpec, Port, TcObject,
};

/// What the kernel runs on a node's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Setting {
    /// One mode and attach kind everywhere (bridge: nothing attached).
    Uniform {
        mode: Mode,
        attach: Option<AttachKind>,
    },
    /// Ports disagree (an interrupted switch, or a port added behind our
    /// back): applying any mode repairs it.
    Mixed,
}

impl Setting {
    /// The node's setting from each port's (mode, attach kind, extra
    /// programs), as the kernel reports them.
    pub fn of_ports(
        ports: impl IntoIterator<Item = (Option<Mode>, Option<AttachKind>, usize)>,
    ) -> Setting {
        let mut seen = None;
        for (mode, attach, extra) in ports {
            if extra > 0 || (attach.is_some() && mode.is_none()) {
                return Setting::Mixed;
            }
            let this = (mode.unwrap_or(Mode::Bridge), attach);
            match seen {
                None => seen = Some(this),
                Some(s) if s == this => {}
                Some(_) => return Setting::Mixed,
            }
        }
        match seen {
            Some((mode, attach)) => Setting::Uniform { mode, attach },
            None => Setting::Mixed,
        }
    }

    /// From [`Node::status`]'s ports.
    pub fn of_programs(programs: &[ProgramStatus]) -> Setting {
        Self::of_ports(
            programs
                .iter()
                .map(|p| (p.mode, p.attach, p.extra_programs)),
        )
    }
}

/// A node: its NIC, its pin directory, a label for messages, and the
/// cluster's pod CIDRs it keeps in the kernel.
#[derive(Clone, Debug)]
pub struct Node {
    pub pin_root: PinRoot,
    pub name: NodeName,
    /// The namespace, as messages name it.
    pub netns: String,
    pub nic: Port,
    /// The pod CIDRs asked for (what [`Node::apply`] writes);
    /// [`Node::cluster_cidrs`] reads what the kernel has.
    cluster_cidrs: Vec<IpNet>,
}

fn key_addr(k: &EndpointKey) -> Option<IpAddr> {
    match k.family {
        AF_INET => Some(IpAddr::from([k.addr[0], k.addr[1], k.addr[2], k.addr[3]])),
        AF_INET6 => Some(IpAddr::from(k.addr)),
        _ => None,
    }
}

impl Node {
    /// Opens the node, creating its pin directories and pinned maps if they
    /// are not there, and makes the pod CIDR map hold `cluster_cidrs` (the
    /// cluster's pod networks, every node's, both families). Other pins are
    /// adopted as they are: nothing is flushed, detached or reloaded.
    pub fn open(
        pin_root: PinRoot,
        name: NodeName,
        netns: String,
        nic: Port,
        cluster_cidrs: Vec<IpNet>,
    ) -> Result<Self, DataplaneError> {
        pod_cidrs::wanted(&cluster_cidrs)?;
        let node = Self {
            pin_root,
            name,
            netns,
            nic,
            cluster_cidrs,
        };
        let pins = node.pins()?;
        if PINNED_MAPS.iter().any(|m| !pins.maps().join(m).exists()) {
            // Loading the object creates and pins the missing maps (a
            // node pinned by an older shortpath lacks POD_CIDRS or
            // STACK_FLOWS); its
            // programs are never loaded into the kernel here.
            let fast = Mode::Peer.fast_path().expect("peer is a fast path");
            drop(TcObject::load(fast, Some(&pins.maps()))?);
        }
        node.write_cluster_cidrs()?;
        Ok(node)
    }

    /// The pod CIDRs this node was opened with (or last set).
    pub fn wanted_cluster_cidrs(&self) -> &[IpNet] {
        &self.cluster_cidrs
    }

    /// Changes the cluster's pod CIDRs: the kernel's map holds exactly
    /// `cidrs` when this returns (new networks are added before stale ones
    /// go), and later [`Node::apply`]s keep them.
    pub fn set_cluster_cidrs(&mut self, cidrs: &[IpNet]) -> Result<(), DataplaneError> {
        pod_cidrs::wanted(cidrs)?;
        self.cluster_cidrs = cidrs.to_vec();
        self.write_cluster_cidrs()
    }

    /// The pod CIDRs as the kernel's map has them, sorted.
    pub fn cluster_cidrs(&self) -> Result<Vec<IpNet>, DataplaneError> {
        pod_cidrs::read(&self.pod_cidr_map()?)
    }

    /// Writes the pod CIDR map. Cached routes outside the new CIDRs go
    /// first: a cached route is forwarded without the pod CIDR check, so
    /// the cache must never hold what the pod CIDR map no longer does.
    /// (New CIDRs get their routes cached by the next sync.)
    fn write_cluster_cidrs(&self) -> Result<(), DataplaneError> {
        next_hops::prune(
            &mut self.next_hop_map()?,
            &self.cluster_cidrs,
            &self.generation()?,
        )?;
        pod_cidrs::sync(&mut self.pod_cidr_map()?, &self.cluster_cidrs).map(|_| ())
    }

    /// Brings the next-hop cache in step with the node's routes,
    /// neighbours, rules and NIC as the kernel has them now (the caller's
    /// namespace is the node's), and has the kernel keep the cached
    /// gateways resolved ([`next_hops::keep_resolved`]). Returns the plan
    /// written, the number of entries (written, removed), and the
    /// gateways' entries newly made managed (or why they could not be,
    /// for the caller to report: the cache is right either way).
    #[allow(clippy::type_complexity)]
    pub fn sync_next_hops(
        &self,
    ) -> Result<(next_hops::Plan, (usize, usize), Result<usize, String>), DataplaneError> {
        let obs = next_hops::observe(self.nic.ifindex).map_err(|e| DataplaneError::NextHops {
            netns: self.netns.clone(),
            source: e,
        })?;
        let plan = next_hops::plan(&self.cluster_cidrs, &obs);
        let changed = next_hops::sync(&mut self.next_hop_map()?, &plan, &self.generation()?)?;
        let managed = next_hops::keep_resolved(&plan, &self.netns);
        Ok((plan, changed, managed))
    }

    /// The next-hop cache as the kernel holds it.
    pub fn next_hops(&self) -> Result<Vec<next_hops::NextHopEntry>, DataplaneError> {
        next_hops::read(&self.next_hop_map()?)
    }

    /// The node's endpoint generation, which every writer of the endpoint
    /// maps and of the next-hop cache bumps after its writes.
    /// Opening it bumps nothing: the next-hop writers bump after each
    /// write.
    fn generation(&self) -> Result<Generation, DataplaneError> {
        Generation::pinned_unbumped(&self.pins()?.maps())
    }

    fn next_hop_map(&self) -> Result<next_hops::NextHopMap<MapData>, DataplaneError> {
        let path = self.pins()?.maps().join(MAP_NEXT_HOPS);
        let md = MapData::from_pin(&path).map_err(|e| DataplaneError::map(MAP_NEXT_HOPS, e))?;
        next_hops::NextHopMap::try_from(Map::LpmTrie(md))
            .map_err(|e| DataplaneError::map(MAP_NEXT_HOPS, e))
    }

    fn pod_cidr_map(&self) -> Result<PodCidrMap<MapData>, DataplaneError> {
        let path = self.pins()?.maps().join(MAP_POD_CIDRS);
        let md = MapData::from_pin(&path).map_err(|e| DataplaneError::map(MAP_POD_CIDRS, e))?;
        PodCidrMap::try_from(Map::LpmTrie(md)).map_err(|e| DataplaneError::map(MAP_POD_CIDRS, e))
    }

    fn pins(&self) -> Result<NodePins, DataplaneError> {
        NodePins::create(&self.pin_root, &self.name)
    }

    /// The whole node as [`crate::apply`] and [`crate::status`] take it.
    pub fn spec(&self, pods: &[PodSpec]) -> NodeSpec {
        NodeSpec {
            pin_root: self.pin_root.clone(),
            node: self.name.clone(),
            netns: self.netns.clone(),
            nic: self.nic.clone(),
            pods: pods.to_vec(),
            cluster_cidrs: self.cluster_cidrs.clone(),
        }
    }

    /// What the kernel runs on the NIC and the pods' host veths.
    pub fn setting(&self, pods: &[PodSpec]) -> Result<Setting, DataplaneError> {
        let links = kernel::Links::read(&self.netns)?;
        let mut views = Vec::new();
        for port in std::iter::once(&self.nic).chain(pods.iter().map(|p| &p.host_if)) {
            let v = kernel::port_view(&kernel::attachments(&self.netns, port, &links)?);
            views.push((v.mode, v.attach, v.extra));
        }
        Ok(Setting::of_ports(views))
    }

    /// Brings the node to `mode`: see [`crate::apply`]. The endpoint map
    /// ends up holding exactly `pods`, the pod CIDR map the node's cluster
    /// CIDRs.
    pub fn apply(
        &self,
        mode: Mode,
        attach: AttachKind,
        pods: &[PodSpec],
    ) -> Result<(), DataplaneError> {
        attach::apply(&self.spec(pods), mode, attach)?;
        if mode == Mode::Bridge {
            // No program holds the map in bridge mode; it stays pinned and
            // keeps the endpoints for the next fast mode.
            let mut map = self.endpoint_map()?;
            endpoints::sync(&mut map, &endpoints::entries(&self.spec(pods)))?;
            self.write_cluster_cidrs()?;
        }
        Ok(())
    }

    fn endpoint_map(&self) -> Result<EndpointMaps<MapData>, DataplaneError> {
        EndpointMaps::pinned(&self.pins()?.maps())
    }

    /// For reads: leaves the programs' endpoint caches alone.
    fn endpoint_map_for_reading(&self) -> Result<EndpointMaps<MapData>, DataplaneError> {
        EndpointMaps::pinned_for_reading(&self.pins()?.maps())
    }

    /// The map's entry for one address.
    pub fn endpoint(&self, addr: IpAddr) -> Result<Option<Endpoint>, DataplaneError> {
        match self
            .endpoint_map_for_reading()?
            .get(&endpoints::key(addr), 0)
        {
            Ok(e) => Ok(Some(endpoints::intent(e))),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(endpoint_maps::map_err(e)),
        }
    }

    /// The endpoint map as the kernel has it: pod address → entry (without
    /// the flags the programs set, as userspace writes them).
    pub fn endpoints(&self) -> Result<BTreeMap<IpAddr, Endpoint>, DataplaneError> {
        let map = self.endpoint_map_for_reading()?;
        let mut out = BTreeMap::new();
        for kv in map.iter() {
            let (k, v) = kv.map_err(endpoint_maps::map_err)?;
            if let Some(a) = key_addr(&k) {
                out.insert(a, endpoints::intent(v));
            }
        }
        Ok(out)
    }

    /// Packets per reason, by attach ifindex.
    pub fn counters(&self) -> Result<BTreeMap<u32, ReasonCounts>, DataplaneError> {
        counters::CounterMaps::pinned(&self.pins()?.maps())?.read()
    }

    /// The flows the node's pods sent to the stack, whose replies take the
    /// stack too (the pinned `STACK_FLOWS` map, sorted).
    pub fn stack_flows(&self) -> Result<Vec<StackFlow>, DataplaneError> {
        let path = self.pins()?.maps().join(MAP_STACK_FLOWS);
        let md = MapData::from_pin(&path).map_err(|e| DataplaneError::map(MAP_STACK_FLOWS, e))?;
        let map = StackFlowMap::try_from(Map::LruHashMap(md))
            .map_err(|e| DataplaneError::map(MAP_STACK_FLOWS, e))?;
        stack_flows::read(&map)
    }

    /// Adds or updates one pod: its addresses point at its host veth (those
    /// of `previous`, its addresses before, that still point there and are
    /// no longer wanted are removed), and in a fast mode the
    /// node's pinned `from_pod` is attached to the host veth. `setting` is
    /// the node's current one ([`Node::setting`]); a mixed node gets only
    /// the map entries (the next [`Node::apply`] attaches).
    pub fn put_endpoint(
        &self,
        pod: &PodSpec,
        previous: &[IpAddr],
        setting: Setting,
    ) -> Result<(), DataplaneError> {
        let mut map = self.endpoint_map()?;
        let want = endpoints::entries(&self.spec(std::slice::from_ref(pod)));
        let err = endpoint_maps::map_err;
        for a in previous {
            let k = endpoints::key(*a);
            let ours = map
                .get(&k, 0)
                .is_ok_and(|e| e.ifindex == pod.host_if.ifindex);
            if ours && !want.contains_key(&k) {
                map.remove(&k).map_err(err)?;
            }
        }
        for (k, v) in &want {
            endpoints::write(&mut map, k, v)?;
        }
        if let Setting::Uniform {
            mode,
            attach: Some(kind),
        } = setting
        {
            if mode.fast_path().is_some() {
                self.attach_pod(&pod.host_if, kind)?;
            }
        }
        Ok(())
    }

    /// Attaches the node's pinned `from_pod` (loaded by the last
    /// [`Node::apply`] to a fast mode) to a host veth.
    pub fn attach_pod(&self, port: &Port, kind: AttachKind) -> Result<(), DataplaneError> {
        let pins = self.pins()?;
        let path = pins.prog(Hook::FromPod.program());
        let mut prog = SchedClassifier::from_pin(&path)
            .map_err(|e| DataplaneError::program(Hook::FromPod.program(), e))?;
        if kind == AttachKind::Tc {
            attach::prepare_port(&self.netns, port, Hook::FromPod)?;
        }
        attach::attach_port(&self.netns, &pins, &mut prog, Hook::FromPod, port, kind)
    }

    /// Removes one pod: its addresses leave the map, and if its host veth
    /// still exists our program leaves it. Idempotent.
    pub fn remove_endpoint(&self, addrs: &[IpAddr], host_if: &Port) -> Result<(), DataplaneError> {
        self.remove_addresses(addrs)?;
        self.detach_pod(host_if)
    }

    /// Removes addresses from the endpoint map; absent ones are fine.
    pub fn remove_addresses(&self, addrs: &[IpAddr]) -> Result<(), DataplaneError> {
        let mut map = self.endpoint_map()?;
        for a in addrs {
            match map.remove(&endpoints::key(*a)) {
                Ok(()) => {}
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(endpoint_maps::map_err(e)),
            }
        }
        Ok(())
    }

    /// Detaches every program of ours from a host veth (if it still
    /// exists) and removes its link pin. Idempotent.
    pub fn detach_pod(&self, host_if: &Port) -> Result<(), DataplaneError> {
        let links = kernel::Links::read(&self.netns)?;
        for a in kernel::attachments(&self.netns, host_if, &links)? {
            kernel::detach(&self.netns, host_if, &a)?;
        }
        let pins = self.pins()?;
        let link = pins.link(&host_if.ifname);
        crate::sys::detach_pinned_link(&link).ok();
        pins::unpin(&link)
    }

    /// Every port with what the kernel has attached and its counters.
    pub fn status(&self, pods: &[PodSpec]) -> Result<Vec<ProgramStatus>, DataplaneError> {
        attach::status(&self.spec(pods))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_uniform_only_when_every_port_agrees() {
        let tcx = Some(AttachKind::Tcx);
        let peer = (Some(Mode::Peer), tcx, 0);
        let none = (None, None, 0);
        assert_eq!(
            Setting::of_ports([peer, peer]),
            Setting::Uniform {
                mode: Mode::Peer,
                attach: tcx
            }
        );
        assert_eq!(
            Setting::of_ports([none, none]),
            Setting::Uniform {
                mode: Mode::Bridge,
                attach: None
            }
        );
        for mixed in [
            vec![peer, none],
            vec![peer, (Some(Mode::Redirect), tcx, 0)],
            vec![peer, (Some(Mode::Peer), Some(AttachKind::Tc), 0)],
            vec![(Some(Mode::Peer), tcx, 1)],
            vec![(None, tcx, 0)],
            vec![],
        ] {
            assert_eq!(
                Setting::of_ports(mixed.clone()),
                Setting::Mixed,
                "{mixed:?}"
            );
        }
    }

    #[test]
    fn map_keys_read_back_as_addresses() {
        for a in ["172.17.1.2", "fd00::2", "0.0.0.0"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(key_addr(&endpoints::key(ip)), Some(ip));
        }
        let bad = EndpointKey {
            family: 7,
            ..Default::default()
        };
        assert_eq!(key_addr(&bad), None);
    }
}
