//! The control plane of a lab: keeps its dataplane (programs, endpoint
//! map, pins) in step with the lab the `lab` module built. The CLI, bench
//! and trace go through here, so the two layers stay apart.
//!
//! Every change takes the lab's [`LabLock`]. The kernel is the truth: what
//! is attached is read back from it, and the lab's `dataplane.json` only
//! records the last setting asked for; `status` reports a drift when the
//! two disagree, and `set_mode` starts from what the kernel has.
//!
//! A lab built with agents ([`agents`]) has one `shortpathd` per node: the
//! pods are its endpoints and modes are switched through it, so each node
//! has one writer.

pub mod agents;

use serde::Serialize;

use crate::{
    dataplane::{self, kernel, AttachKind, DataplaneError, DataplaneState, Mode, ProgramStatus},
    fault::{self, Fault},
    lab::{self, Inventory, LabError},
    names::LabName,
    netns::{self, Netns},
    runtime::{self, LabLock},
};

/// The lab's record of its dataplane setting, next to `lab.json`.
const DATAPLANE_FILE: &str = "dataplane.json";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("lab {lab}, node {node}: {source}")]
    Node {
        lab: LabName,
        node: String,
        #[source]
        source: Box<DataplaneError>,
    },
    #[error("lab {lab}: dataplane state {file}: {source}")]
    State {
        lab: LabName,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Fault(#[from] Fault),
    #[error(transparent)]
    Agents(#[from] agents::AgentsError),
}

/// The setting recorded for `lab` (bridge if none was).
pub fn recorded(lab: &LabName) -> Result<DataplaneState, ControlError> {
    let err = |source| ControlError::State {
        lab: lab.clone(),
        file: DATAPLANE_FILE,
        source,
    };
    match runtime::read_state(lab, DATAPLANE_FILE).map_err(err)? {
        None => Ok(DataplaneState::default()),
        // A cache that cannot be read must not stand in the way of the
        // command that repairs it: it counts as "bridge", and `status`
        // shows the drift if the kernel runs something else.
        Some(s) => Ok(serde_json::from_str(&s).unwrap_or_else(|e| {
            log::warn!(
                "lab {lab}: ignoring {}: {e}",
                runtime::lab_dir(lab).join(DATAPLANE_FILE).display()
            );
            DataplaneState::default()
        })),
    }
}

fn record(lock: &LabLock, st: &DataplaneState) -> Result<(), ControlError> {
    runtime::write_json(lock, DATAPLANE_FILE, st).map_err(|source| ControlError::State {
        lab: lock.lab().clone(),
        file: DATAPLANE_FILE,
        source,
    })
}

/// Whether a lab's nodes run shortpathd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabAgents {
    No,
    /// One agent per node (`lab up --agent`).
    Yes,
    /// And each writes a CNI conflist (`lab up --cni`).
    WithCni,
}

/// Builds the lab of `lock` with its dataplane in `mode`; a failure removes
/// everything again. With `force`, an existing lab of that name goes first.
pub async fn up(
    lock: &LabLock,
    cfg: &lab::config::Config,
    force: bool,
    mode: Mode,
    attach: Option<AttachKind>,
    lab_agents: LabAgents,
) -> Result<lab::plan::Plan, ControlError> {
    if force {
        down(lock).await?;
    }
    let plan = lab::up(lock, cfg).await?;
    let ready = async {
        record(lock, &DataplaneState::default())?;
        prepare(lock).await?;
        if lab_agents != LabAgents::No {
            let attach = attach.unwrap_or_else(AttachKind::best);
            let inv = lab::inventory(lock.lab()).await?;
            agents::start(lock, &inv, mode, attach, lab_agents == LabAgents::WithCni).await?;
            record(
                lock,
                &DataplaneState {
                    mode,
                    attach: (mode != Mode::Bridge).then_some(attach),
                },
            )?;
        } else if mode != Mode::Bridge {
            set_mode(lock, mode, attach).await?;
        }
        Ok::<_, ControlError>(())
    };
    if let Err(e) = ready.await {
        let _ = down(lock).await;
        return Err(e);
    }
    Ok(plan)
}

/// Readies every port of the lab for programs (see [`dataplane::prepare`]).
pub async fn prepare(lock: &LabLock) -> Result<(), ControlError> {
    let inv = lab::inventory(lock.lab()).await?;
    for node in &inv.nodes {
        let spec = inv
            .dataplane_spec(&node.name)
            .expect("inventory lists the node");
        let ns = Netns::new(&spec.netns);
        netns::run_in(&ns, move || dataplane::prepare(&spec))
            .await
            .map_err(DataplaneError::from)??;
    }
    Ok(())
}

/// Brings every node of the lab to `mode`, from whatever the kernel has
/// attached now. `attach` defaults to how programs are attached now, else
/// to the recorded setting, else TCX where the kernel has it.
pub async fn set_mode(
    lock: &LabLock,
    mode: Mode,
    attach: Option<AttachKind>,
) -> Result<DataplaneState, ControlError> {
    let lab = lock.lab();
    let inv = lab::inventory(lab).await?;
    let now = status(&inv).await?;
    let attach = attach
        .or(now.attach)
        .or(now.recorded.attach)
        .unwrap_or_else(AttachKind::best);
    if agents::enabled(lab) {
        // Each node's agent is its one writer.
        agents::set_mode(lock, &inv, mode, attach).await?;
    } else {
        apply_each(lock, &inv, mode, attach).await?;
    }
    let st = DataplaneState {
        mode,
        attach: (mode != Mode::Bridge).then_some(attach),
    };
    record(lock, &st)?;
    Ok(st)
}

/// [`dataplane::apply`] on every node, from the lab's own process.
async fn apply_each(
    lock: &LabLock,
    inv: &Inventory,
    mode: Mode,
    attach: AttachKind,
) -> Result<(), ControlError> {
    let lab = lock.lab();
    if mode != Mode::Bridge {
        resolve_gateways(inv).await;
    }
    for (i, node) in inv.nodes.iter().enumerate() {
        if i > 0 {
            fault::point("mode-between-nodes").await?;
        }
        let spec = inv
            .dataplane_spec(&node.name)
            .expect("inventory lists the node");
        let ns = Netns::new(&spec.netns);
        netns::run_in(&ns, move || dataplane::apply(&spec, mode, attach))
            .await
            .map_err(DataplaneError::from)?
            .map_err(|source| ControlError::Node {
                lab: lab.clone(),
                node: node.name.to_string(),
                source: Box::new(source),
            })?;
    }
    Ok(())
}

/// Has every node resolve the other nodes' NIC addresses (the lab's
/// gateways) with a ping, so that `dataplane::apply` finds their neighbour
/// entries and caches the routes through them. A lab without agents has
/// nobody to fill the next-hop cache later (the agents follow neighbour
/// events). A gateway that does not answer only leaves its routes to the
/// FIB.
async fn resolve_gateways(inv: &Inventory) {
    let mut pings = Vec::new();
    for from in &inv.nodes {
        for to in inv.nodes.iter().filter(|n| n.name != from.name) {
            for addr in [to.nic.ipv4, to.nic.ipv6].into_iter().flatten() {
                pings.push((Netns::new(&from.netns), addr));
            }
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        for (ns, addr) in pings {
            let _ = crate::probe::ping(&ns, addr, 0, std::time::Duration::from_millis(300));
        }
    })
    .await;
}

/// The mode the kernel runs, read from what is attached to every port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelMode {
    /// Nothing of ours attached anywhere.
    Bridge,
    Redirect,
    Peer,
    /// Ports or nodes disagree (an interrupted switch).
    Mixed,
}

impl KernelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KernelMode::Bridge => "bridge",
            KernelMode::Redirect => "redirect",
            KernelMode::Peer => "peer",
            KernelMode::Mixed => "mixed",
        }
    }

    /// The uniform mode, if there is one.
    pub fn mode(self) -> Option<Mode> {
        match self {
            KernelMode::Bridge => Some(Mode::Bridge),
            KernelMode::Redirect => Some(Mode::Redirect),
            KernelMode::Peer => Some(Mode::Peer),
            KernelMode::Mixed => None,
        }
    }
}

impl std::fmt::Display for KernelMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `dataplane` section of `lab status`: the kernel's view first.
#[derive(Debug, Serialize)]
pub struct DataplaneStatus {
    /// What the kernel runs.
    pub mode: KernelMode,
    /// How our programs are attached, when every attached one agrees.
    pub attach: Option<AttachKind>,
    /// What the lab's state file records.
    pub recorded: DataplaneState,
    /// Why the state file and the kernel disagree; `None` when they agree.
    pub drift: Option<String>,
    /// Every port, with what the kernel has attached and the counters.
    pub programs: Vec<ProgramStatus>,
    /// Each node's next-hop cache, from its pinned map.
    pub next_hops: Vec<NodeNextHops>,
    /// Each node's agent, when the lab runs agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<agents::AgentStatus>>,
}

/// One node's next-hop cache as the kernel holds it.
#[derive(Debug, Serialize)]
pub struct NodeNextHops {
    pub node: String,
    pub entries: Vec<dataplane::next_hops::NextHopEntry>,
}

pub async fn status(inv: &Inventory) -> Result<DataplaneStatus, ControlError> {
    let recorded = recorded(&inv.name)?;
    let mut programs = Vec::new();
    let mut next_hops = Vec::new();
    for node in &inv.nodes {
        let spec = inv
            .dataplane_spec(&node.name)
            .expect("inventory lists the node");
        next_hops.push(NodeNextHops {
            node: node.name.to_string(),
            entries: dataplane::next_hops::read_pinned(&spec)?,
        });
        let ns = Netns::new(&spec.netns);
        programs.extend(
            netns::run_in(&ns, move || dataplane::status(&spec))
                .await
                .map_err(DataplaneError::from)??,
        );
    }
    let (mode, attach) = kernel_mode(&programs);
    let drift = drift(mode, attach, &recorded, &programs);
    Ok(DataplaneStatus {
        mode,
        attach,
        recorded,
        drift,
        programs,
        next_hops,
        agents: agents::status(inv).await,
    })
}

/// The lab-wide mode from every port's attachment.
fn kernel_mode(programs: &[ProgramStatus]) -> (KernelMode, Option<AttachKind>) {
    let kinds: std::collections::BTreeSet<_> = programs
        .iter()
        .filter_map(|p| p.attach.map(|k| k.as_str()))
        .collect();
    let attach = match kinds.len() {
        1 => programs.iter().find_map(|p| p.attach),
        _ => None,
    };
    let extras = programs.iter().any(|p| p.extra_programs > 0);
    if programs.iter().all(|p| !p.attached) && !extras {
        return (KernelMode::Bridge, None);
    }
    let modes: std::collections::BTreeSet<_> = programs.iter().map(|p| p.mode).collect();
    let uniform = !extras && attach.is_some() && programs.iter().all(|p| p.attached);
    let mode = match (uniform, modes.into_iter().collect::<Vec<_>>().as_slice()) {
        (true, [Some(Mode::Redirect)]) => KernelMode::Redirect,
        (true, [Some(Mode::Peer)]) => KernelMode::Peer,
        _ => KernelMode::Mixed,
    };
    (mode, attach)
}

fn describe(p: &ProgramStatus) -> String {
    match (p.attach, p.mode) {
        (None, _) => "nothing attached".to_owned(),
        (Some(k), Some(m)) => format!("{m} ({k})"),
        (Some(k), None) => format!("an unknown mode ({k})"),
    }
}

fn drift(
    mode: KernelMode,
    attach: Option<AttachKind>,
    recorded: &DataplaneState,
    programs: &[ProgramStatus],
) -> Option<String> {
    let fix = "run `shortpath mode <bridge|redirect|peer>` to repair";
    if mode == KernelMode::Mixed {
        let mut groups: Vec<(String, usize)> = Vec::new();
        for p in programs {
            let mut d = describe(p);
            if p.extra_programs > 0 {
                d += &format!(" + {} more", p.extra_programs);
            }
            match groups.iter_mut().find(|(g, _)| *g == d) {
                Some((_, n)) => *n += 1,
                None => groups.push((d, 1)),
            }
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|(d, n)| format!("{n} of {} ports {d}", programs.len()))
            .collect();
        return Some(format!(
            "ports disagree ({}); the state file records {}; {fix}",
            parts.join(", "),
            setting(recorded.mode, recorded.attach)
        ));
    }
    let kernel = mode.mode().expect("not mixed");
    let recorded_attach = recorded.attach.filter(|_| recorded.mode != Mode::Bridge);
    if kernel != recorded.mode || (kernel != Mode::Bridge && attach != recorded_attach) {
        return Some(format!(
            "the state file records {}, the kernel runs {} on every port; {fix}",
            setting(recorded.mode, recorded_attach),
            setting(kernel, attach)
        ));
    }
    None
}

fn setting(mode: Mode, attach: Option<AttachKind>) -> String {
    match (mode, attach) {
        (Mode::Bridge, _) | (_, None) => mode.to_string(),
        (m, Some(k)) => format!("{m} ({k})"),
    }
}

/// Removes a lab and its dataplane; idempotent. Programs are detached
/// first: a namespace some process still holds would keep its devices, and
/// the programs on them, alive after the lab is gone.
pub async fn down(lock: &LabLock) -> Result<(), ControlError> {
    if let Some(st) = lab::load_state(lock.lab()).map_err(LabError::State)? {
        let names: Vec<String> = st.plan.nodes.iter().map(|n| n.name.to_string()).collect();
        agents::stop(lock.lab(), &names).await;
        for node in &st.plan.nodes {
            let ns = Netns::new(&node.netns);
            if !ns.exists() {
                continue;
            }
            let name = node.netns.clone();
            match netns::run_in(&ns, move || kernel::detach_everything(&name)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => log::warn!("{e} (the namespace goes anyway)"),
                Err(e) => log::warn!("{e} (the namespace goes anyway)"),
            }
        }
    }
    lab::pin_root(lock.lab()).remove_all()?;
    lab::down(lock).await?;
    let _ = std::fs::remove_dir_all(runtime::lab_dir(lock.lab()).join("agents"));
    for file in [agents::AGENTS_FILE, DATAPLANE_FILE] {
        runtime::remove_state(lock, file).map_err(|source| ControlError::State {
            lab: lock.lab().clone(),
            file,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::counters::ReasonCounts;

    fn port(attach: Option<AttachKind>, mode: Option<Mode>, extra: usize) -> ProgramStatus {
        ProgramStatus {
            netns: "l-a".into(),
            ifname: "x".into(),
            ifindex: 1,
            hook: "from_pod",
            attached: attach.is_some(),
            attach,
            program_id: attach.map(|_| 7),
            mode,
            extra_programs: extra,
            counters: ReasonCounts::new(),
            run: None,
        }
    }

    const TCX: Option<AttachKind> = Some(AttachKind::Tcx);
    const PEER: Option<Mode> = Some(Mode::Peer);

    #[test]
    fn the_kernel_mode_is_uniform_or_mixed() {
        assert_eq!(
            kernel_mode(&vec![port(None, None, 0); 3]),
            (KernelMode::Bridge, None)
        );
        assert_eq!(
            kernel_mode(&[port(TCX, PEER, 0), port(TCX, PEER, 0)]),
            (KernelMode::Peer, TCX)
        );
        assert_eq!(
            kernel_mode(&[port(TCX, PEER, 0), port(None, None, 0)]).0,
            KernelMode::Mixed
        );
        assert_eq!(
            kernel_mode(&[port(TCX, PEER, 0), port(TCX, Some(Mode::Redirect), 0)]).0,
            KernelMode::Mixed
        );
        assert_eq!(
            kernel_mode(&[port(TCX, PEER, 0), port(Some(AttachKind::Tc), PEER, 0)]),
            (KernelMode::Mixed, None)
        );
        assert_eq!(kernel_mode(&[port(TCX, PEER, 1)]).0, KernelMode::Mixed);
        assert_eq!(kernel_mode(&[port(None, None, 1)]).0, KernelMode::Mixed);
    }

    #[test]
    fn drift_is_reported_when_the_record_and_the_kernel_disagree() {
        let bridge = DataplaneState::default();
        let peer = DataplaneState {
            mode: Mode::Peer,
            attach: TCX,
        };
        let ports = [port(TCX, PEER, 0), port(None, None, 0)];
        let (m, a) = kernel_mode(&ports);
        let d = drift(m, a, &bridge, &ports).unwrap();
        assert!(d.contains("1 of 2 ports peer (tcx)"), "{d}");
        assert!(d.contains("1 of 2 ports nothing attached"), "{d}");
        assert!(d.contains("records bridge"), "{d}");

        let all = vec![port(TCX, PEER, 0); 2];
        let (m, a) = kernel_mode(&all);
        assert_eq!(drift(m, a, &peer, &all), None);
        let d = drift(m, a, &bridge, &all).unwrap();
        assert!(
            d.contains("records bridge, the kernel runs peer (tcx)"),
            "{d}"
        );
        let tc = DataplaneState {
            attach: Some(AttachKind::Tc),
            ..peer
        };
        assert!(drift(m, a, &tc, &all).is_some());

        let none = vec![port(None, None, 0); 2];
        let (m, a) = kernel_mode(&none);
        assert_eq!(drift(m, a, &bridge, &none), None);
        assert!(drift(m, a, &peer, &none)
            .unwrap()
            .contains("records peer (tcx), the kernel runs bridge"));
    }
}
