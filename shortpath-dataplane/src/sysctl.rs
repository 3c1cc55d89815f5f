//! Kernel parameters under /proc/sys, written from the calling thread's
//! network namespace (call inside `netns::run_in` for a node).

use std::{fs, io, path::PathBuf};

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

pub fn set(key: &str, value: &str) -> io::Result<()> {
    fs::write(path(key), value)
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {key}={value}: {e}")))
}

pub fn get(key: &str) -> io::Result<String> {
    fs::read_to_string(path(key)).map(|s| s.trim().to_owned())
}
