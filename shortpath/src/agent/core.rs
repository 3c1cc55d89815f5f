//! The agent's node: its dataplane, its endpoints, and every change to
//! them. Synchronous; the server runs each request on a blocking thread
//! under one lock, so changes are serialized (one writer per node).
//!
//! The kernel is the truth: the endpoint map says which addresses go
//! where, and what is attached says the mode. The record file
//! (`endpoints.json`) only adds names to what the map holds, and is
//! reconciled against it on start and on every netlink event.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::Instant,
};

use serde::Serialize;
use serde_json::{json, Value};

use super::{
    api::{ApiError, EndpointRequest, ErrorCode},
    endpoint::{self, EndpointId, PodCidrs, Record},
    host,
    store::Store,
    Config,
};
use crate::dataplane::{
    AttachKind, DataplaneError, Mode, Node, PodSpec, Port, ProgramStatus, Setting,
};

/// Attempts at the start's mode setting, each after a reconcile that drops
/// pods whose devices vanished during the one before.
const START_APPLY_ROUNDS: u32 = 5;

const RECORDS: &str = "endpoints.json";
/// The last mode asked for (by `--mode` or `mode_set`): what a restart
/// without `--mode` repairs a half-switched node to.
const WANTED: &str = "mode.json";

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Wanted {
    mode: Mode,
    attach: AttachKind,
}

/// What reconciling did, by kind (also exported as metrics).
pub type Actions = BTreeMap<&'static str, u64>;

pub struct Agent {
    pub node: Node,
    pub cidrs: PodCidrs,
    records: BTreeMap<EndpointId, Record>,
    /// What the kernel runs, as of the last apply or check.
    setting: Setting,
    /// The attach kind to use for fast modes.
    attach: AttachKind,
    store: Store,
    pub actions: Actions,
    pub started: Instant,
    pub ready: bool,
    /// The next-hop cache's syncer (its state for status and metrics).
    pub next_hops: super::watch::NextHops,
}

/// Loading the eBPF object (ELF, BTF) allocates several MiB that glibc
/// keeps in its arenas once freed; hand them back so an idle agent stays
/// small.
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

/// How a start went, for the log and for tests.
#[derive(Debug, Serialize)]
pub struct Startup {
    /// The kernel already ran the wanted mode: nothing was loaded or
    /// attached.
    pub adopted: bool,
    pub setting: Setting,
    pub endpoints: usize,
    pub actions: Actions,
}

impl Agent {
    /// Opens the node and adopts what the kernel has: pinned maps and
    /// programs are reused, the endpoint map is never flushed, and programs
    /// are (re)attached only if the kernel does not already run the wanted
    /// mode — then in place, never detached first.
    pub fn start(cfg: &Config, store: Store) -> Result<(Self, Startup), DataplaneError> {
        let nic = host::port(&cfg.iface).map_err(|source| DataplaneError::Query {
            netns: cfg.netns_label(),
            ifname: cfg.iface.clone(),
            source,
        })?;
        let node = Node::open(
            cfg.pin_root.clone(),
            cfg.node.clone(),
            cfg.netns_label(),
            nic,
            cfg.cluster_cidrs(),
        )?;
        let records: BTreeMap<EndpointId, Record> = match store.read::<Vec<Record>>(RECORDS) {
            Ok(Some(v)) => v.into_iter().map(|r| (r.id.clone(), r)).collect(),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(error = %e, "endpoint records unreadable; rebuilding them from the kernel");
                BTreeMap::new()
            }
        };
        let mut agent = Self {
            node,
            cidrs: cfg.pod_cidrs.clone(),
            records,
            setting: Setting::Mixed,
            attach: cfg.attach.unwrap_or_else(AttachKind::best),
            store,
            actions: Actions::new(),
            started: Instant::now(),
            ready: false,
            next_hops: Default::default(),
        };
        agent.reconcile()?;
        let now = agent.node.setting(&agent.pods())?;
        let (want_mode, want_attach) = match (cfg.mode, now) {
            (Some(m), _) => (m, cfg.attach.unwrap_or(agent.attach)),
            // No mode asked: keep the kernel's.
            (None, Setting::Uniform { mode, attach }) => {
                (mode, cfg.attach.or(attach).unwrap_or(agent.attach))
            }
            // Half-switched (killed during a switch): finish the last
            // switch asked for.
            (None, Setting::Mixed) => match agent.store.read::<Wanted>(WANTED) {
                Ok(Some(w)) => (w.mode, cfg.attach.unwrap_or(w.attach)),
                _ => (Mode::Peer, agent.attach),
            },
        };
        let want = Setting::Uniform {
            mode: want_mode,
            attach: (want_mode != Mode::Bridge).then_some(want_attach),
        };
        let adopted = now == want;
        agent.attach = want_attach;
        if adopted {
            agent.setting = now;
        } else {
            // A pod deleted during the start takes its veth with it in the
            // middle of the attach: drop what vanished and try again. Pods
            // can keep going while the runtime deletes many at once, so
            // a few rounds, each after a reconcile; an error that is not
            // about vanished pods fails every round and ends the start.
            let mut round = 1;
            while let Err(e) = agent.apply(want_mode, want_attach) {
                if round == START_APPLY_ROUNDS {
                    return Err(e);
                }
                tracing::warn!(error = %e, round, "setting the mode failed; reconciling and retrying");
                agent.reconcile()?;
                round += 1;
            }
        }
        agent.ready = true;
        trim_heap();
        let startup = Startup {
            adopted,
            setting: agent.setting,
            endpoints: agent.records.len(),
            actions: agent.actions.clone(),
        };
        Ok((agent, startup))
    }

    pub fn pods(&self) -> Vec<PodSpec> {
        self.records.values().map(Record::pod).collect()
    }

    fn save(&self) -> Result<(), ApiError> {
        let v: Vec<&Record> = self.records.values().collect();
        self.store.write(RECORDS, &v).map_err(internal)
    }

    fn count(&mut self, what: &'static str, n: u64) {
        if n > 0 {
            *self.actions.entry(what).or_default() += n;
        }
    }

    fn apply(&mut self, mode: Mode, attach: AttachKind) -> Result<(), DataplaneError> {
        // Intent first: a kill during the switch is finished on restart.
        self.store
            .write(WANTED, &Wanted { mode, attach })
            .map_err(|source| DataplaneError::State {
                path: self.store.path(WANTED),
                source,
            })?;
        let applied = self.node.apply(mode, attach, &self.pods());
        trim_heap();
        applied?;
        self.setting = Setting::Uniform {
            mode,
            attach: (mode != Mode::Bridge).then_some(attach),
        };
        self.attach = attach;
        Ok(())
    }

    /// Brings records and the kernel's endpoint map together:
    /// - an endpoint whose host veth is gone is removed (map, link pin);
    /// - a map entry for a device that is gone is removed;
    /// - a map entry for a live device with no record is adopted under the
    ///   device's name;
    /// - a record whose map entries are missing is written back.
    ///
    /// Returns the number of changes.
    pub fn reconcile(&mut self) -> Result<u64, DataplaneError> {
        let before: u64 = self.actions.values().sum();
        let live = host::devices();
        let alive = |ifindex: u32, name: &str| live.get(&ifindex).is_some_and(|n| n == name);

        let stale: Vec<EndpointId> = self
            .records
            .values()
            .filter(|r| !alive(r.ifindex, &r.host_if))
            .map(|r| r.id.clone())
            .collect();
        for id in stale {
            let r = self.records.remove(&id).expect("listed");
            self.node.remove_endpoint(&r.addrs, &r.port())?;
            tracing::info!(endpoint = %id, host_if = %r.host_if, ifindex = r.ifindex, "host veth gone: endpoint removed");
            self.count("stale_endpoint_removed", 1);
        }

        let kernel = self.node.endpoints()?;
        let mut by_ifindex: BTreeMap<u32, Vec<(IpAddr, shortpath_common::endpoint::Endpoint)>> =
            BTreeMap::new();
        for (a, e) in &kernel {
            by_ifindex.entry(e.ifindex).or_default().push((*a, *e));
        }
        let known: BTreeSet<u32> = self.records.values().map(|r| r.ifindex).collect();
        for (ifindex, entries) in by_ifindex {
            let addrs: Vec<IpAddr> = entries.iter().map(|(a, _)| *a).collect();
            match live.get(&ifindex) {
                None => {
                    let port = Port {
                        ifname: format!("if{ifindex}"),
                        ifindex,
                    };
                    self.node.remove_endpoint(&addrs, &port)?;
                    tracing::info!(ifindex, addrs = ?addrs, "map entries for a device that is gone: removed");
                    self.count("stale_map_entry_removed", addrs.len() as u64);
                }
                Some(name) if !known.contains(&ifindex) => {
                    let Ok(id) = EndpointId::new(name) else {
                        continue;
                    };
                    let e = entries[0].1;
                    let r = Record {
                        id: id.clone(),
                        host_if: name.clone(),
                        ifindex,
                        addrs,
                        pod_mac: crate::nl::Mac(e.pod_mac),
                        host_mac: crate::nl::Mac(e.host_mac),
                        mtu: e.mtu,
                        adopted: true,
                    };
                    tracing::info!(endpoint = %id, ifindex, "map entries without a record: adopted");
                    self.records.insert(id, r);
                    self.count("endpoint_adopted", 1);
                }
                Some(_) => {
                    // A known device: entries its record does not name are
                    // left over from a change that never completed (the
                    // agent died before recording it).
                    let r = self
                        .records
                        .values()
                        .find(|r| r.ifindex == ifindex)
                        .expect("known");
                    let stray: Vec<IpAddr> =
                        addrs.into_iter().filter(|a| !r.addrs.contains(a)).collect();
                    if !stray.is_empty() {
                        self.node.remove_addresses(&stray)?;
                        tracing::info!(endpoint = %r.id, addrs = ?stray, "map entries the record does not name: removed");
                        self.count("stray_map_entry_removed", stray.len() as u64);
                    }
                }
            }
        }
        let missing: Vec<Record> = self
            .records
            .values()
            .filter(|r| {
                r.addrs
                    .iter()
                    .any(|a| kernel.get(a).is_none_or(|e| e.ifindex != r.ifindex))
            })
            .cloned()
            .collect();
        for r in missing {
            match self.node.put_endpoint(&r.pod(), &[], self.setting) {
                Ok(()) => {
                    tracing::info!(endpoint = %r.id, "map entries missing: written back");
                    self.count("map_entry_restored", 1);
                }
                // The veth went while we looked (a pod being deleted):
                // the endpoint goes with it.
                Err(_) if !host::exists(r.ifindex) => {
                    self.node.remove_addresses(&r.addrs)?;
                    self.node.detach_pod(&r.port())?;
                    self.records.remove(&r.id);
                    tracing::info!(endpoint = %r.id, host_if = %r.host_if, "host veth gone: endpoint removed");
                    self.count("stale_endpoint_removed", 1);
                }
                Err(e) => return Err(e),
            }
        }
        let changed = self.actions.values().sum::<u64>() - before;
        if changed > 0 {
            self.save().map_err(|e| DataplaneError::State {
                path: self.store.path(RECORDS),
                source: std::io::Error::other(e.message),
            })?;
        }
        Ok(changed)
    }

    /// The device `ifindex` went away (netlink): its endpoint goes now.
    pub fn device_gone(&mut self, ifindex: u32) -> Result<(), DataplaneError> {
        if self.records.values().any(|r| r.ifindex == ifindex) {
            self.reconcile()?;
        }
        Ok(())
    }

    pub fn add(&mut self, req: &EndpointRequest) -> Result<Value, ApiError> {
        let c = endpoint::check(req, &self.cidrs)?;
        let link = host::link(&c.host_if).map_err(|e| {
            ApiError::new(
                ErrorCode::Invalid,
                format!("endpoint {}: host interface {:?}: {e}", c.id, c.host_if),
            )
        })?;
        if link.index == self.node.nic.ifindex {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                format!("endpoint {}: {} is the node's NIC", c.id, c.host_if),
            ));
        }
        // An address may move only from a device that is gone.
        for a in &c.addrs {
            if let Some(e) = self.node.endpoint(*a).map_err(internal)? {
                if e.ifindex != link.index && host::exists(e.ifindex) {
                    let owner = self
                        .records
                        .values()
                        .find(|r| r.ifindex == e.ifindex)
                        .map_or_else(|| format!("ifindex {}", e.ifindex), |r| r.id.to_string());
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        format!("endpoint {}: {a} belongs to endpoint {owner}", c.id),
                    ));
                }
            }
        }
        // A record adopted from the map gives way to the first real one.
        let adopted: Vec<EndpointId> = self
            .records
            .values()
            .filter(|r| r.adopted && r.ifindex == link.index && r.id != c.id)
            .map(|r| r.id.clone())
            .collect();
        if let Some(other) = self
            .records
            .values()
            .find(|r| r.ifindex == link.index && r.id != c.id && !r.adopted)
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "endpoint {}: {} is endpoint {}'s host interface",
                    c.id, c.host_if, other.id
                ),
            ));
        }
        let record = Record {
            id: c.id.clone(),
            host_if: link.name.clone(),
            ifindex: link.index,
            addrs: c.addrs,
            pod_mac: c.pod_mac,
            host_mac: link.mac,
            mtu: c.mtu.unwrap_or(link.mtu),
            adopted: false,
        };
        let previous = self.records.get(&c.id).cloned();
        if let Some(prev) = &previous {
            if prev.ifindex != record.ifindex {
                // Moved to another device: the old one lets go first.
                self.node
                    .remove_endpoint(&prev.addrs, &prev.port())
                    .map_err(internal)?;
            }
        }
        let before: &[IpAddr] = previous.as_ref().map_or(&[], |p| &p.addrs);
        if let Err(e) = self.node.put_endpoint(&record.pod(), before, self.setting) {
            // Nothing half-done: the record's addresses leave the map again.
            let _ = self.node.remove_endpoint(&record.addrs, &record.port());
            if let Some(prev) = &previous {
                let _ = self.node.put_endpoint(&prev.pod(), &[], self.setting);
            }
            return Err(internal(e));
        }
        for id in adopted {
            self.records.remove(&id);
            tracing::info!(endpoint = %record.id, adopted = %id, "endpoint takes over an adopted one");
        }
        let verb = if previous.is_some() {
            "updated"
        } else {
            "added"
        };
        tracing::info!(endpoint = %record.id, host_if = %record.host_if, ifindex = record.ifindex, addrs = ?record.addrs, "endpoint {verb}");
        self.records.insert(record.id.clone(), record.clone());
        self.save()?;
        Ok(json!({ "endpoint": record, "created": previous.is_none() }))
    }

    pub fn remove(&mut self, id: &str) -> Result<Value, ApiError> {
        let id =
            EndpointId::new(id).map_err(|e| ApiError::new(ErrorCode::Invalid, e.to_string()))?;
        let Some(r) = self.records.get(&id).cloned() else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no endpoint {id} (see endpoint_list)"),
            ));
        };
        self.node
            .remove_endpoint(&r.addrs, &r.port())
            .map_err(internal)?;
        self.records.remove(&id);
        self.save()?;
        tracing::info!(endpoint = %id, host_if = %r.host_if, "endpoint removed");
        Ok(json!({ "removed": r }))
    }

    /// Records with what the kernel's map holds for each address.
    pub fn list(&self) -> Result<Value, ApiError> {
        let kernel = self.node.endpoints().map_err(internal)?;
        let out: Vec<Value> = self
            .records
            .values()
            .map(|r| {
                let in_map = r
                    .addrs
                    .iter()
                    .all(|a| kernel.get(a).is_some_and(|e| e.ifindex == r.ifindex));
                json!({ "endpoint": r, "in_kernel": in_map })
            })
            .collect();
        Ok(json!({ "endpoints": out, "map_entries": kernel.len() }))
    }

    /// The mode as the kernel runs it now.
    pub fn mode(&self) -> Result<Value, ApiError> {
        let now = self.node.setting(&self.pods()).map_err(internal)?;
        Ok(serde_json::to_value(now).expect("serializes"))
    }

    pub fn set_mode(&mut self, mode: Mode, attach: Option<AttachKind>) -> Result<Value, ApiError> {
        let attach = attach.unwrap_or(self.attach);
        if attach == AttachKind::Tcx && !crate::dataplane::tcx_supported() {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                DataplaneError::NoTcx.to_string(),
            ));
        }
        let before = self.setting;
        self.apply(mode, attach).map_err(internal)?;
        tracing::info!(from = ?before, to = ?self.setting, "mode set");
        self.mode()
    }

    pub fn programs(&self) -> Result<Vec<ProgramStatus>, DataplaneError> {
        self.node.status(&self.pods())
    }

    /// The dataplane part of `lab status`, for this node.
    pub fn status(&self) -> Result<Value, ApiError> {
        let programs = self.programs().map_err(internal)?;
        let setting = Setting::of_programs(&programs);
        // From the kernel's map, like the mode.
        let cluster_cidrs = self.node.cluster_cidrs().map_err(internal)?;
        // As in `lab status`: `mode` (bridge, redirect, peer or mixed) and
        // `attach` from the kernel, then every port.
        let (mode, attach) = match setting {
            Setting::Uniform { mode, attach } => (mode.as_str(), attach),
            Setting::Mixed => ("mixed", None),
        };
        Ok(json!({
            "mode": mode,
            "attach": attach,
            "node": self.node.name,
            "netns": self.node.netns,
            "nic": self.node.nic,
            "pod_cidrs": self.cidrs,
            "cluster_cidrs": cluster_cidrs,
            "setting": setting,
            "programs": programs,
            "endpoints": self.records.len(),
            "reconcile_actions": self.actions,
            // The kernel's map, and how the agent keeps it.
            "next_hops": {
                "entries": self.node.next_hops().map_err(internal)?,
                "sync": self.next_hops.snapshot(),
            },
        }))
    }

    pub fn health(&self) -> Value {
        json!({
            "ready": self.ready,
            "pid": std::process::id(),
            "node": self.node.name,
            "uptime_ms": self.started.elapsed().as_millis() as u64,
            "endpoints": self.records.len(),
            "setting": self.setting,
            // What the CNI plugin gives pods: the NIC's MTU, read now.
            "nic": {
                "ifname": self.node.nic.ifname,
                "ifindex": self.node.nic.ifindex,
                "mtu": host::link(&self.node.nic.ifname).ok().map(|l| l.mtu),
            },
        })
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    pub fn setting(&self) -> Setting {
        self.setting
    }
}
