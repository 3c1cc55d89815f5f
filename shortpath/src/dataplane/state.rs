//! The lab's dataplane setting, `/run/shortpath/<lab>/dataplane.json`.

use std::{fs, io, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{AttachKind, DataplaneError, Mode};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataplaneState {
    pub mode: Mode,
    /// How programs are attached; `None` while in bridge mode with nothing
    /// attached yet.
    pub attach: Option<AttachKind>,
}

fn path(lab: &str) -> PathBuf {
    crate::runtime::lab_dir(lab).join("dataplane.json")
}

/// The lab's dataplane state; a lab that never had one is in bridge mode.
pub fn load(lab: &str) -> Result<DataplaneState, DataplaneError> {
    let p = path(lab);
    match fs::read_to_string(&p) {
        Ok(s) => serde_json::from_str(&s).map_err(|e| DataplaneError::State {
            path: p,
            source: io::Error::other(e),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DataplaneState {
            mode: Mode::Bridge,
            attach: None,
        }),
        Err(source) => Err(DataplaneError::State { path: p, source }),
    }
}

pub fn save(lab: &str, st: &DataplaneState) -> Result<(), DataplaneError> {
    let p = path(lab);
    let tmp = p.with_extension("json.tmp");
    let write = || -> io::Result<()> {
        fs::write(
            &tmp,
            serde_json::to_string_pretty(st).map_err(io::Error::other)?,
        )?;
        fs::rename(&tmp, &p)
    };
    write().map_err(|source| DataplaneError::State {
        path: p.clone(),
        source,
    })
}
