//! The lab's state file, `/run/shortpath/<lab>/lab.json`: the plan, written
//! before anything is created. It is a cache of what `lab up` intended;
//! what exists is read back from the kernel ([`super::inventory`]).

use std::io;

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::{
    names::LabName,
    runtime::{self, LabLock},
};

/// The lab's state file in its runtime directory.
pub const STATE_FILE: &str = runtime::LAB_STATE;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// False while `lab up` is building (or after it crashed).
    pub ready: bool,
    pub plan: Plan,
}

/// Records the plan of a lab about to be built (not ready yet).
pub fn create(lock: &LabLock, plan: &Plan) -> io::Result<()> {
    save(lock, plan, false)
}

pub fn mark_ready(lock: &LabLock, plan: &Plan) -> io::Result<()> {
    save(lock, plan, true)
}

fn save(lock: &LabLock, plan: &Plan, ready: bool) -> io::Result<()> {
    debug_assert_eq!(&plan.name, lock.lab());
    let state = LabState {
        ready,
        plan: plan.clone(),
    };
    runtime::write_json(lock, STATE_FILE, &state)
}

/// The recorded lab, if any. Every name in it is validated on the way in.
pub fn load(lab: &LabName) -> io::Result<Option<LabState>> {
    match runtime::read_state(lab, STATE_FILE)? {
        None => Ok(None),
        Some(s) => {
            let st: LabState = serde_json::from_str(&s).map_err(|e| {
                io::Error::other(format!(
                    "{}: {e}",
                    runtime::lab_dir(lab).join(STATE_FILE).display()
                ))
            })?;
            if &st.plan.name != lab {
                return Err(io::Error::other(format!(
                    "{}: records lab {:?}, not {lab:?}",
                    runtime::lab_dir(lab).join(STATE_FILE).display(),
                    st.plan.name.as_str()
                )));
            }
            // Namespace names become paths under /run/netns: they must be
            // exactly the ones the validated names make.
            if let Some(ns) = st.plan.foreign_namespace() {
                return Err(io::Error::other(format!(
                    "{}: namespace {ns:?} is not one lab {lab} would create; remove the file and its namespaces by hand",
                    runtime::lab_dir(lab).join(STATE_FILE).display(),
                )));
            }
            Ok(Some(st))
        }
    }
}

/// Forgets the lab (its state file); the lock's release removes the
/// runtime directory once nothing else is in it.
pub fn remove(lock: &LabLock) -> io::Result<()> {
    runtime::remove_state(lock, STATE_FILE)
}
