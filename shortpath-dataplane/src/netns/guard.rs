use std::{fs::File, marker::PhantomData, os::fd::AsFd};

use nix::sched::{setns, CloneFlags};

use super::{Netns, NetnsError};

/// While alive, the current thread is inside a network namespace; dropping
/// it moves the thread back. Not `Send`: the namespace belongs to a thread.
pub struct NetnsGuard {
    original: File,
    name: String,
    _not_send: PhantomData<*const ()>,
}

impl NetnsGuard {
    pub fn enter(ns: &Netns) -> Result<Self, NetnsError> {
        let original = File::open("/proc/thread-self/ns/net")
            .map_err(|e| NetnsError::io(ns.name(), "open current namespace", e))?;
        let target = ns.open()?;
        setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetnsError::io(ns.name(), "setns", e))?;
        Ok(Self {
            original,
            name: ns.name().to_owned(),
            _not_send: PhantomData,
        })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.original.as_fd(), CloneFlags::CLONE_NEWNET) {
            // A thread stuck in the wrong namespace would do the next job in
            // the wrong place: better to stop here.
            panic!("cannot leave network namespace {}: {e}", self.name);
        }
    }
}
