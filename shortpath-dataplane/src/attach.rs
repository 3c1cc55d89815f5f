//! Attaching a node's programs and switching them in place.
//!
//! Every function here runs on a thread inside the node's namespace:
//! interface names and ifindexes are resolved there.
//!
//! Replacement is atomic per hook: a TCX link is updated to the new program
//! (`BPF_LINK_UPDATE`), a cls_bpf filter is changed in place (same priority
//! and handle). Packets see the old or the new program, never none.

use std::io;

use aya::programs::{
    links::{FdLink, LinkError, PinnedLink},
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle},
    LinkOrder, ProgramError, SchedClassifier, TcAttachType,
};
use serde::Serialize;

use super::{
    counters::{self, ReasonCounts},
    endpoints,
    kernel::{self, PortView},
    object::MAP_LEGACY_ENDPOINTS,
    pins::{self, NodePins},
    AttachKind, DataplaneError, Hook, Mode, NodeSpec, Port, TcObject,
};
use crate::nl::blocking::TcHook;

/// Our cls_bpf filter's fixed identity on every device, so a later run
/// (another process) can replace or remove exactly it.
const TC_PRIORITY: u16 = 1;
const TC_HANDLE_RAW: u16 = 1;
const TC_HANDLE: TcHandle = TcHandle::new(0, TC_HANDLE_RAW);

fn ports(spec: &NodeSpec) -> Vec<(Port, Hook)> {
    std::iter::once((spec.nic.clone(), Hook::FromNic))
        .chain(spec.pods.iter().map(|p| (p.host_if.clone(), Hook::FromPod)))
        .collect()
}

/// Gives every port a clsact qdisc, the anchor of tc filters. Adding a
/// qdisc briefly deactivates the device (`dev_deactivate`: packets sent in
/// that instant are dropped), so this runs when ports are created, before
/// traffic, and never during a mode switch. Idempotent. Call inside the
/// node's namespace.
pub fn prepare(spec: &NodeSpec) -> Result<(), DataplaneError> {
    for (port, hook) in ports(spec) {
        prepare_port(&spec.netns, &port, hook)?;
    }
    Ok(())
}

/// [`prepare`] for one port.
pub(crate) fn prepare_port(netns: &str, port: &Port, hook: Hook) -> Result<(), DataplaneError> {
    match tc::qdisc_add_clsact(&port.ifname) {
        Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Ok(()) => Ok(()),
        Err(e) => Err(DataplaneError::Attach {
            netns: netns.to_owned(),
            program: hook.program(),
            ifname: port.ifname.clone(),
            ifindex: port.ifindex,
            attach: "clsact qdisc",
            source: Box::new(e.into()),
        }),
    }
}

/// Brings one node to `mode` with programs attached the `attach` way,
/// starting from whatever the kernel has attached (not what a state file
/// says). Call inside the node's namespace.
pub fn apply(spec: &NodeSpec, mode: Mode, attach: AttachKind) -> Result<(), DataplaneError> {
    let ports = ports(spec);

    let Some(fast) = mode.fast_path() else {
        // Bridge: the stack does everything. Every program of ours the
        // kernel shows on the node's devices goes, whatever was recorded;
        // detaching is atomic per hook too.
        kernel::detach_everything(&spec.netns)?;
        if let Some(pins) = NodePins::existing(&spec.pin_root, &spec.node)? {
            remove_link_pins(&pins, &[])?;
            for hook in [Hook::FromNic, Hook::FromPod] {
                pins::unpin(&pins.prog(hook.program()))?;
            }
            pins::unpin(&pins.maps().join(MAP_LEGACY_ENDPOINTS))?;
        }
        return Ok(());
    };
    if attach == AttachKind::Tcx && !super::tcx_supported() {
        return Err(DataplaneError::NoTcx);
    }

    // TCX needs no qdisc: a real node's NIC is left as it is. tc filters
    // need clsact (the lab adds it when it creates ports; here it is only
    // added where missing).
    if attach == AttachKind::Tc {
        prepare(spec)?;
    }
    let pins = NodePins::create(&spec.pin_root, &spec.node)?;
    let mut obj = TcObject::load(fast, Some(&pins.maps()))?;
    endpoints::sync(&mut obj.endpoints()?, &endpoints::entries(spec))?;
    // Before any program of this generation runs: the pinned map may be
    // empty (a node's first apply), and then from_pod sends everything but
    // local pods to the stack.
    // Cached routes outside the (new) pod CIDRs go before the CIDRs do:
    // the programs running now forward a cached route without that check.
    let generation = obj.generation()?;
    super::next_hops::prune(&mut obj.next_hops()?, &spec.cluster_cidrs, &generation)?;
    obj.sync_pod_cidrs(spec)?;
    // The routes to other nodes' pods, resolved now; the agent keeps them
    // current from netlink events (a lab without one: at each switch).
    // Their gateways' neighbour entries the kernel keeps resolved itself.
    let plan = obj.sync_next_hops(spec)?;
    if let Err(why) = super::next_hops::keep_resolved(&plan, &spec.netns) {
        log::warn!("{why}");
    }
    for hook in [Hook::FromNic, Hook::FromPod] {
        let path = pins.prog(hook.program());
        pins::unpin(&path)?;
        obj.program(hook)?
            .pin(&path)
            .map_err(|e| DataplaneError::Pin {
                path: path.clone(),
                source: io::Error::other(e),
            })?;
    }
    for (port, hook) in &ports {
        attach_port(&spec.netns, &pins, obj.program(*hook)?, *hook, port, attach)?;
    }
    // Link pins are kept only for the TCX links of ports in use.
    match attach {
        AttachKind::Tcx => remove_link_pins(&pins, &ports)?,
        AttachKind::Tc => remove_link_pins(&pins, &[])?,
    }
    // No program of an older shortpath is attached any more.
    pins::unpin(&pins.maps().join(MAP_LEGACY_ENDPOINTS))?;
    Ok(())
}

/// Attaches `prog` (the program for `hook`) to `port` the `attach` way,
/// replacing ours in place, then removes anything else of ours there.
pub(crate) fn attach_port(
    netns: &str,
    pins: &NodePins,
    prog: &mut SchedClassifier,
    hook: Hook,
    port: &Port,
    attach: AttachKind,
) -> Result<(), DataplaneError> {
    let wrap = |source| DataplaneError::Attach {
        netns: netns.to_owned(),
        program: hook.program(),
        ifname: port.ifname.clone(),
        ifindex: port.ifindex,
        attach: attach.as_str(),
        source: Box::new(source),
    };
    match attach {
        AttachKind::Tcx => attach_tcx(prog, pins, port).map_err(wrap)?,
        AttachKind::Tc => attach_tc(prog, port).map_err(wrap)?,
    }
    // Anything else of ours on the port — the other attach kind after a
    // tc ↔ tcx switch, leftovers of an interrupted run — goes now.
    // Nothing is lost either way: after tc → tcx the new TCX program
    // runs before cls_bpf and its verdict ends the chain; after tcx →
    // tc the old TCX program keeps handling packets until its link is
    // detached, and from then on the new filter does.
    let id = prog
        .info()
        .map_err(|e| DataplaneError::program(hook.program(), e))?
        .id();
    if kernel::sole_attachment(port, attach, id).unwrap_or(false) {
        return Ok(());
    }
    let keep = own_attachment(pins, port, attach)?;
    let links = kernel::Links::read(netns)?;
    for a in kernel::attachments(netns, port, &links)? {
        if !keep.matches(&a) {
            kernel::detach(netns, port, &a)?;
        }
    }
    Ok(())
}

/// Which attachment on a port is the one this run made.
enum Keep {
    TcxLink(Option<u32>),
    TcFilter,
}

impl Keep {
    fn matches(&self, a: &kernel::Attachment) -> bool {
        match self {
            Keep::TcxLink(id) => {
                a.kind == AttachKind::Tcx && id.is_some_and(|id| a.link_ids().contains(&id))
            }
            Keep::TcFilter => {
                a.kind == AttachKind::Tc
                    && a.hook == TcHook::Ingress
                    && a.tc_id() == Some((TC_PRIORITY, u32::from(TC_HANDLE_RAW)))
            }
        }
    }
}

fn own_attachment(pins: &NodePins, port: &Port, kind: AttachKind) -> Result<Keep, DataplaneError> {
    Ok(match kind {
        AttachKind::Tcx => {
            let path = pins.link(&port.ifname);
            Keep::TcxLink(
                super::sys::pinned_link_id(&path)
                    .map_err(|source| DataplaneError::Pin { path, source })?,
            )
        }
        AttachKind::Tc => Keep::TcFilter,
    })
}

/// Updates the pinned TCX link of `port` to `prog`, or creates and pins it.
fn attach_tcx(
    prog: &mut SchedClassifier,
    pins: &NodePins,
    port: &Port,
) -> Result<(), ProgramError> {
    let path = pins.link(&port.ifname);
    if let Ok(pinned) = PinnedLink::from_pin(&path) {
        let link = SchedClassifierLink::try_from(FdLink::from(pinned));
        match link.map(|l| prog.attach_to_link(l)) {
            Ok(Ok(id)) => {
                // The pin keeps the link; dropping our handle closes an fd.
                drop(prog.take_link(id)?);
                return Ok(());
            }
            // A link whose device went away (pod deleted and re-created):
            // start over with a fresh one.
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let id = prog.attach_with_options(
        &port.ifname,
        TcAttachType::Ingress,
        TcAttachOptions::TcxOrder(LinkOrder::default()),
    )?;
    let link: FdLink = prog
        .take_link(id)?
        .try_into()
        .map_err(|e: LinkError| ProgramError::IOError(io::Error::other(e)))?;
    link.pin(&path)
        .map_err(|e| ProgramError::IOError(io::Error::other(e)))?;
    Ok(())
}

/// Changes our cls_bpf filter on `port` to `prog`, or creates it.
/// The clsact qdisc is there already ([`prepare`]).
fn attach_tc(prog: &mut SchedClassifier, port: &Port) -> Result<(), ProgramError> {
    let existing = SchedClassifierLink::attached(
        &port.ifname,
        TcAttachType::Ingress,
        TC_PRIORITY,
        TC_HANDLE,
        None,
    )
    .map_err(ProgramError::IOError)?;
    let id = match prog.attach_to_link(existing) {
        Ok(id) => id,
        Err(_) => prog.attach_with_options(
            &port.ifname,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(NlOptions {
                priority: TC_PRIORITY,
                handle: TC_HANDLE,
                ..Default::default()
            }),
        )?,
    };
    // The filter holds the program; our handle must not remove it on drop.
    std::mem::forget(prog.take_link(id)?);
    Ok(())
}

/// Link pins of devices that are not (or no longer) ports: deleted pods, or
/// every one of them when `ports` is empty. A pinned link is detached
/// before its pin goes, so it stops at once.
pub(crate) fn remove_link_pins(
    pins: &NodePins,
    ports: &[(Port, Hook)],
) -> Result<(), DataplaneError> {
    let Ok(entries) = std::fs::read_dir(pins.links()) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !ports.iter().any(|(p, _)| p.ifname == name) {
            let path = e.path();
            super::sys::detach_pinned_link(&path).map_err(|source| DataplaneError::Pin {
                path: path.clone(),
                source,
            })?;
            pins::unpin(&path)?;
        }
    }
    Ok(())
}

/// One port, what the kernel has attached to it, and what its program
/// counted.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramStatus {
    pub netns: String,
    pub ifname: String,
    pub ifindex: u32,
    pub hook: &'static str,
    /// Whether the kernel shows one of our programs on the device's TC
    /// ingress (TCX link query or tc filter dump).
    pub attached: bool,
    /// How, as the kernel reports it.
    pub attach: Option<AttachKind>,
    pub program_id: Option<u32>,
    /// The mode the attached program was loaded in (from its `.rodata`).
    pub mode: Option<Mode>,
    /// Further programs of ours on the device (leftovers of an interrupted
    /// switch); 0 normally.
    pub extra_programs: usize,
    pub counters: ReasonCounts,
    /// The attached program's run time as the kernel counts it while
    /// `kernel.bpf_stats_enabled` is 1 (for all devices it runs on).
    pub run: Option<RunStats>,
}

/// A program's kernel run-time counters (`bpf_prog_info`).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct RunStats {
    pub run_time_ns: u64,
    pub run_count: u64,
    /// `run_time_ns / run_count`; `None` before the first counted run.
    pub ns_per_packet: Option<f64>,
}

impl RunStats {
    /// The counters of program `id`; `None` if it cannot be read.
    pub fn of(id: u32) -> Option<Self> {
        let (run_time_ns, run_count) = kernel::run_stats(id).ok()?;
        Some(Self {
            run_time_ns,
            run_count,
            ns_per_packet: (run_count > 0).then(|| run_time_ns as f64 / run_count as f64),
        })
    }
}

/// Every port of a node with what the kernel has attached and the
/// counters. Call inside the node namespace.
pub fn status(spec: &NodeSpec) -> Result<Vec<ProgramStatus>, DataplaneError> {
    let pins = NodePins::existing(&spec.pin_root, &spec.node)?;
    // A node whose maps are not (all) pinned yet — a first switch killed
    // half-way — has no counters to show; the next switch pins them.
    let counts = match pins
        .as_ref()
        .map(|p| counters::CounterMaps::pinned(&p.maps()))
    {
        Some(Ok(maps)) => maps.read()?,
        _ => Default::default(),
    };
    let mut out = Vec::new();
    let links = kernel::Links::read(&spec.netns)?;
    for (port, hook) in ports(spec) {
        let atts = kernel::attachments(&spec.netns, &port, &links)?;
        let PortView {
            attach,
            program_id,
            mode,
            extra,
        } = kernel::port_view(&atts);
        out.push(ProgramStatus {
            netns: spec.netns.clone(),
            ifname: port.ifname.clone(),
            ifindex: port.ifindex,
            hook: hook.program(),
            attached: attach.is_some(),
            attach,
            program_id,
            mode,
            extra_programs: extra,
            counters: counts.get(&port.ifindex).cloned().unwrap_or_default(),
            run: program_id.and_then(RunStats::of),
        });
    }
    Ok(out)
}
