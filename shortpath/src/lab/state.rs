//! The lab's state file, `/run/shortpath/<lab>/lab.json`: the plan, written
//! before anything is created.

use std::{fs, io, io::Write as _, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::runtime;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// False while `lab up` is building (or after it crashed).
    pub ready: bool,
    pub plan: Plan,
}

fn path(lab: &str) -> PathBuf {
    runtime::lab_dir(lab).join("lab.json")
}

/// Records a new lab; fails with `AlreadyExists` if one is recorded.
pub fn create(plan: &Plan) -> io::Result<()> {
    fs::create_dir_all(runtime::lab_dir(&plan.name))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path(&plan.name))?;
    let state = LabState {
        ready: false,
        plan: plan.clone(),
    };
    f.write_all(serde_json::to_string_pretty(&state)?.as_bytes())
}

pub fn mark_ready(plan: &Plan) -> io::Result<()> {
    let state = LabState {
        ready: true,
        plan: plan.clone(),
    };
    let tmp = path(&plan.name).with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(&state)?)?;
    fs::rename(tmp, path(&plan.name))
}

pub fn load(lab: &str) -> io::Result<Option<LabState>> {
    match fs::read_to_string(path(lab)) {
        Ok(s) => serde_json::from_str(&s).map(Some).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the lab's runtime directory (its own and other layers' files).
pub fn remove(lab: &str) -> io::Result<()> {
    match fs::remove_dir_all(runtime::lab_dir(lab)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Names of recorded labs.
pub fn list() -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    match fs::read_dir(runtime::RUN_DIR) {
        Ok(entries) => {
            for e in entries {
                let e = e?;
                if e.path().join("lab.json").exists() {
                    v.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    v.sort();
    Ok(v)
}
