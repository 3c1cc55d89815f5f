//! The next-hop cache kept in step with the node's routes, neighbours and
//! NIC (see `shortpath_common::next_hop` for what `from_pod` does with
//! it).
//!
//! [`observe`] reads what the kernel has, [`plan`] decides the entries from
//! that alone (pure, unit-tested), [`sync`] writes the difference. The
//! agent runs the three on every route, neighbour, rule or NIC event and on
//! its periodic reconcile; the lab runs them at each mode switch.
//!
//! A route is cached only when the FIB would surely give the same answer
//! for every address under it:
//! - the node's policy rules are the default ones (local, main, default,
//!   no selectors) — otherwise nothing is cached;
//! - it is a unicast route of the main table inside one of the cluster's
//!   pod CIDRs, with one next hop: a gateway through the NIC, whose
//!   neighbour entry is valid (reachable, stale, delay, probe, permanent
//!   or noarp, as `bpf_fib_lookup` requires), no TOS, no encapsulation,
//!   no nexthop object; the NIC is up;
//! - no local-table route covers it.
//!
//! Routes inside a cached one that fail these rules become "ask the FIB"
//! exceptions, so the longest match never lets the cache answer for them.

mod map;
mod observe;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use ipnet::IpNet;
use serde::Serialize;
use shortpath_common::next_hop::{NextHop, MAX_NEXT_HOPS};

/// The LPM key of a destination network (the pod CIDR map's layout).
pub use crate::pod_cidrs::key;
pub(crate) use map::{insert, prune, sync};
pub use map::{read, read_pinned, NextHopMap};
pub use observe::observe;

/// The routing tables of a default policy.
pub const TABLE_MAIN: u32 = 254;
pub const TABLE_LOCAL: u32 = 255;

/// A route as the planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub dst: IpNet,
    /// `RTN_UNICAST` (not local, broadcast, blackhole, unreachable, …).
    pub unicast: bool,
    pub tos: u8,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub priority: u32,
    /// Route MTU (`mtu` metric), if set.
    pub mtu: Option<u32>,
    /// Anything the cache cannot reproduce: several next hops, an
    /// encapsulation, a nexthop object, a source prefix.
    pub special: bool,
}

/// A neighbour entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub lladdr: Option<[u8; 6]>,
    /// `NUD_VALID`: what `bpf_fib_lookup` answers SUCCESS with.
    pub valid: bool,
    /// Kernel-managed (`NTF_EXT_MANAGED`): the kernel resolves it again
    /// on its own, whether or not the stack sends through it.
    pub managed: bool,
    /// Set by someone, not learned: permanent, noarp, or installed by a
    /// routing daemon (`NTF_EXT_LEARNED`). Left as it is: making it
    /// managed would drop what they configured.
    pub configured: bool,
}

/// The egress device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub up: bool,
}

/// What the kernel has, as [`observe`] read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Only `lookup local / main / default` rules, without selectors.
    pub default_rules: bool,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    pub nic: Nic,
}

/// The entries the map must hold, or why it holds none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub entries: BTreeMap<IpNet, NextHop>,
    /// Why nothing is cached (the FIB answers everything then).
    pub disabled: Option<&'static str>,
    /// The gateways of cached routes whose neighbour entries the kernel
    /// does not manage yet (see [`keep_resolved`]).
    pub unmanaged: BTreeSet<(u32, IpAddr)>,
}

impl Plan {
    fn off(why: &'static str) -> Self {
        Self {
            entries: BTreeMap::new(),
            disabled: Some(why),
            unmanaged: BTreeSet::new(),
        }
    }

    /// Cached routes (exceptions not counted).
    pub fn cached(&self) -> usize {
        self.entries.values().filter(|n| n.is_cached()).count()
    }
}

/// One cache entry as status and the API show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NextHopEntry {
    pub dst: IpNet,
    /// `None`: an exception, the FIB decides.
    pub ifindex: Option<u32>,
    pub mtu: u32,
    pub smac: String,
    pub dmac: String,
}

impl NextHopEntry {
    pub fn new(dst: IpNet, nh: &NextHop) -> Self {
        let mac = |m: &[u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        Self {
            dst,
            ifindex: nh.is_cached().then_some(nh.ifindex),
            mtu: nh.mtu,
            smac: mac(&nh.smac),
            dmac: mac(&nh.dmac),
        }
    }
}

/// The cache entries for `cluster` (the pod CIDRs) given what the kernel
/// has. See the module's rules.
pub fn plan(cluster: &[IpNet], obs: &Observed) -> Plan {
    if !obs.default_rules {
        return Plan::off("the node has policy routing rules beyond local/main/default");
    }
    if !obs.nic.up {
        return Plan::off("the NIC is down");
    }
    let inside = |n: &IpNet| cluster.iter().any(|c| c.contains(n));
    let local: Vec<&Route> = obs
        .routes
        .iter()
        .filter(|r| r.table == TABLE_LOCAL)
        .collect();
    // The main table's routes by destination: the FIB uses the one of
    // lowest priority; a tie (or a TOS route) is not ours to guess.
    let mut main: BTreeMap<IpNet, Vec<&Route>> = BTreeMap::new();
    for r in obs.routes.iter().filter(|r| r.table == TABLE_MAIN) {
        if inside(&r.dst) {
            main.entry(r.dst).or_default().push(r);
        }
    }
    let mut cached: BTreeMap<IpNet, NextHop> = BTreeMap::new();
    let mut unmanaged = BTreeSet::new();
    let mut exceptions: Vec<IpNet> = Vec::new();
    for (dst, routes) in &main {
        let best = routes.iter().min_by_key(|r| r.priority).copied();
        let tie = routes
            .iter()
            .filter(|r| Some(r.priority) == best.map(|b| b.priority))
            .count()
            > 1;
        let covered_by_local = local.iter().any(|l| l.dst.contains(dst));
        match best.filter(|_| !tie && !covered_by_local && !routes.iter().any(|r| r.tos != 0)) {
            Some(r) => match next_hop(r, obs) {
                Some((nh, gateway)) => {
                    cached.insert(*dst, nh);
                    if !gateway.managed && !gateway.configured {
                        unmanaged.insert((gateway.ifindex, gateway.addr));
                    }
                }
                None => exceptions.push(*dst),
            },
            None => exceptions.push(*dst),
        }
    }
    exceptions.extend(local.iter().map(|r| r.dst).filter(inside));
    let mut entries = cached.clone();
    for e in exceptions {
        // Needed only where a cached route would otherwise answer.
        if cached.keys().any(|c| c.contains(&e) && *c != e) {
            entries.insert(e, NextHop::ASK_FIB);
        }
    }
    if entries.len() > MAX_NEXT_HOPS as usize {
        return Plan::off("more routes inside the pod CIDRs than the cache holds");
    }
    Plan {
        entries,
        disabled: None,
        unmanaged,
    }
}

/// The next hop of a cacheable route, as `bpf_fib_lookup` would return
/// it, and the gateway's neighbour entry it comes from.
fn next_hop<'a>(r: &Route, obs: &'a Observed) -> Option<(NextHop, &'a Neighbour)> {
    if !r.unicast || r.special || r.oif != Some(obs.nic.ifindex) {
        return None;
    }
    let gw = r.gateway?;
    if gw.is_ipv4() != r.dst.addr().is_ipv4() {
        return None;
    }
    let n = obs
        .neighbours
        .iter()
        .find(|n| n.ifindex == obs.nic.ifindex && n.addr == gw && n.valid)?;
    let dmac = n.lladdr?;
    let nh = NextHop {
        ifindex: obs.nic.ifindex,
        mtu: r
            .mtu
            .filter(|m| *m > 0)
            .map_or(obs.nic.mtu, |m| m.min(obs.nic.mtu)),
        smac: obs.nic.mac,
        dmac,
    };
    Some((nh, n))
}

/// Makes the kernel manage (`NTF_EXT_MANAGED`, Linux ≥ 5.16) the neighbour
/// entries of the cached routes' gateways that it does not manage yet
/// (`plan.unmanaged`), in the calling thread's namespace (the node's, in
/// `netns`); returns how many, or what to tell the user when none could be.
///
/// Why: the fast path sends through a gateway without the stack ever
/// using its neighbour entry, so the kernel never re-verifies it, and a
/// gateway that changes its MAC without announcing it would keep the old
/// one in the entry and in the cache for good. A managed entry the kernel
/// probes again whenever it goes stale, like one in use: a changed MAC
/// arrives as a neighbour event within about a reachable time (15–45 s by
/// default), and the agent follows it into the cache. Entries someone
/// configured (permanent, noarp, a routing daemon's) are never in the
/// plan. On older kernels nothing is sent: they ignore the flag and would
/// take the request for "make this entry unresolved".
pub fn keep_resolved(plan: &Plan, netns: &str) -> Result<usize, String> {
    use aya::util::KernelVersion;

    if plan.unmanaged.is_empty() {
        return Ok(0);
    }
    let why = match KernelVersion::current() {
        Ok(v) if v >= KernelVersion::new(5, 16, 0) => {
            let failed: Vec<String> = plan
                .unmanaged
                .iter()
                .filter_map(|(ifindex, addr)| {
                    crate::nl::blocking::manage_neighbour(*ifindex, *addr)
                        .err()
                        .map(|e| format!("{addr} on ifindex {ifindex}: {e}"))
                })
                .collect();
            if failed.is_empty() {
                return Ok(plan.unmanaged.len());
            }
            format!(
                "could not make the neighbour entries of {} kernel-managed",
                failed.join(", ")
            )
        }
        Ok(v) => format!("the kernel ({v}) has no managed neighbour entries (Linux 5.16 or later)"),
        Err(e) => {
            format!("the kernel's version is unknown ({e}), so no neighbour entry is made managed")
        }
    };
    Err(format!(
        "netns {netns}: {why}; a gateway that changes its MAC without announcing it stays black-holed \
         until something resolves it again (docs/DATAPLANE.md, the next-hop cache)"
    ))
}

#[cfg(test)]
mod tests;
