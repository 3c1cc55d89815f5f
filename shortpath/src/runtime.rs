//! Where shortpath keeps per-lab runtime state: `/run/shortpath/<lab>/`
//! (tmpfs, so it goes away with the namespaces on reboot). Each layer owns
//! its own file in there.

use std::path::PathBuf;

pub const RUN_DIR: &str = "/run/shortpath";

pub fn lab_dir(lab: &str) -> PathBuf {
    PathBuf::from(RUN_DIR).join(lab)
}

/// Lab names end up in namespace names, paths and bpffs pins.
pub fn validate_lab_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 24
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid lab name {name:?}: use 1 to 24 letters, digits, '-' or '_' (not starting with '-')"
        ))
    }
}
