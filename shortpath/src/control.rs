//! The control plane of a lab: keeps its dataplane (programs, endpoint
//! map, pins) in step with the lab the `lab` module built. The CLI, bench
//! and trace go through here, so the two layers stay apart.

use serde::Serialize;

use crate::{
    dataplane::{self, AttachKind, DataplaneError, DataplaneState, Mode, ProgramStatus},
    lab::{self, Inventory, LabError},
    netns::{self, Netns},
};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("lab {lab}, node {node}: {source}")]
    Node {
        lab: String,
        node: String,
        #[source]
        source: DataplaneError,
    },
}

/// Builds lab `name` with its dataplane in `mode`; a failure removes
/// everything again.
pub async fn up(
    name: &str,
    cfg: &lab::config::Config,
    force: bool,
    mode: Mode,
    attach: Option<AttachKind>,
) -> Result<lab::plan::Plan, ControlError> {
    if force {
        dataplane::remove_pins(name)?;
    }
    let plan = lab::up(name, cfg, force).await?;
    let ready = async {
        prepare(name).await?;
        if mode != Mode::Bridge {
            set_mode(name, mode, attach).await?;
        }
        Ok::<_, ControlError>(())
    };
    if let Err(e) = ready.await {
        let _ = down(name).await;
        return Err(e);
    }
    Ok(plan)
}

/// Readies every port of the lab for programs (see [`dataplane::prepare`]).
pub async fn prepare(lab: &str) -> Result<(), ControlError> {
    let inv = lab::inventory(lab).await?;
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

/// Brings every node of `lab` to `mode`. `attach` defaults to what the lab
/// already uses, else TCX where the kernel has it.
pub async fn set_mode(
    lab: &str,
    mode: Mode,
    attach: Option<AttachKind>,
) -> Result<DataplaneState, ControlError> {
    let inv = lab::inventory(lab).await?;
    let prev = dataplane::load_state(lab)?;
    let attach = attach.or(prev.attach).unwrap_or_else(AttachKind::best);
    for node in &inv.nodes {
        let spec = inv
            .dataplane_spec(&node.name)
            .expect("inventory lists the node");
        let ns = Netns::new(&spec.netns);
        let node_name = node.name.clone();
        netns::run_in(&ns, move || dataplane::apply(&spec, mode, attach, &prev))
            .await
            .map_err(DataplaneError::from)?
            .map_err(|source| ControlError::Node {
                lab: lab.to_owned(),
                node: node_name,
                source,
            })?;
    }
    let st = DataplaneState {
        mode,
        attach: (mode != Mode::Bridge).then_some(attach),
    };
    dataplane::save_state(lab, &st)?;
    Ok(st)
}

/// The `dataplane` section of `lab status`.
#[derive(Debug, Serialize)]
pub struct DataplaneStatus {
    pub mode: Mode,
    pub attach: Option<AttachKind>,
    pub programs: Vec<ProgramStatus>,
}

pub async fn status(inv: &Inventory) -> Result<DataplaneStatus, ControlError> {
    let st = dataplane::load_state(&inv.name)?;
    let mut programs = Vec::new();
    for node in &inv.nodes {
        let spec = inv
            .dataplane_spec(&node.name)
            .expect("inventory lists the node");
        let ns = Netns::new(&spec.netns);
        programs.extend(
            netns::run_in(&ns, move || dataplane::status(&spec, &st))
                .await
                .map_err(DataplaneError::from)??,
        );
    }
    Ok(DataplaneStatus {
        mode: st.mode,
        attach: st.attach,
        programs,
    })
}

/// Removes a lab and its dataplane pins; idempotent.
pub async fn down(lab: &str) -> Result<(), ControlError> {
    dataplane::remove_pins(lab)?;
    lab::down(lab).await?;
    Ok(())
}
