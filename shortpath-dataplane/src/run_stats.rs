//! What the attached programs cost per packet, from the kernel's bpf_stats:
//! the run-time counters of every program on a node's ports, and counting
//! turned on for a measurement.
//!
//! While counting is on the kernel reads the clock before and after every
//! program run and adds the difference to the program's `run_time_ns`
//! (`run_cnt` counts the runs). That costs a little on every run, so
//! figures measured with it on include it. Counting is on while
//! `kernel.bpf_stats_enabled` is 1 or while any process holds a
//! `BPF_ENABLE_STATS` descriptor (Linux ≥ 5.8), which the kernel closes
//! when the process ends however it ends: [`BpfStats::enable`] takes the
//! descriptor, and only falls back to the sysctl where there is none.

use std::io;

use super::{status, sysctl, DataplaneError, NodeSpec};

/// The sysctl that makes the kernel count program run time.
pub const BPF_STATS_SYSCTL: &str = "kernel.bpf_stats_enabled";

/// One program attached to a node's ports, and its counters at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramRun {
    /// `from_nic` or `from_pod`.
    pub hook: &'static str,
    /// The kernel's id: a mode switch loads new programs with new ids.
    pub program_id: u32,
    pub run_time_ns: u64,
    pub run_count: u64,
}

/// Every program the kernel shows attached to the node's ports, once each:
/// the kernel counts per program, and one program serves all the pod veths
/// of a node. Call inside the node's namespace.
pub fn node_program_runs(spec: &NodeSpec) -> Result<Vec<ProgramRun>, DataplaneError> {
    let mut out: Vec<ProgramRun> = Vec::new();
    for p in status(spec)? {
        let (Some(program_id), Some(run)) = (p.program_id, p.run) else {
            continue;
        };
        if out.iter().all(|r| r.program_id != program_id) {
            out.push(ProgramRun {
                hook: p.hook,
                program_id,
                run_time_ns: run.run_time_ns,
                run_count: run.run_count,
            });
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum BpfStatsError {
    #[error("reading {BPF_STATS_SYSCTL}: {source} (is /proc/sys mounted?)")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("{source} (counting program run time needs root and a writable /proc/sys)")]
    Enable {
        #[source]
        source: io::Error,
    },
    #[error("{source}: {BPF_STATS_SYSCTL} is still 1; put it back by hand: sysctl -w {BPF_STATS_SYSCTL}={previous}")]
    Restore {
        previous: String,
        #[source]
        source: io::Error,
    },
}

/// How [`BpfStats::enable`] turned counting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// A `BPF_ENABLE_STATS` descriptor held by the guard: the sysctl is
    /// untouched, and counting ends when the descriptor closes (the guard
    /// dropped, or the process gone, even by SIGKILL).
    Descriptor,
    /// The kernel has no `BPF_ENABLE_STATS`: the sysctl was 0, the guard
    /// set it to 1 and puts it back. A process killed before that leaves
    /// it at 1.
    Sysctl,
    /// The sysctl was 1 already: left alone.
    AlreadyOn,
}

/// Program run-time counting on for as long as this lives (see
/// [`Counting`]). With [`Counting::Sysctl`], the value found is put back
/// by [`BpfStats::restore`] or, on an early return, a panic or a dropped
/// future (Ctrl-C), when dropped.
#[derive(Debug)]
pub struct BpfStats {
    previous: String,
    how: Counting,
    /// The `BPF_ENABLE_STATS` descriptor ([`Counting::Descriptor`]).
    fd: Option<std::os::fd::OwnedFd>,
    /// This guard set the sysctl and has not put it back yet.
    set: bool,
}

impl BpfStats {
    /// The sysctl's value now. (Counting held by a descriptor does not
    /// show in it.)
    pub fn is_on() -> Result<bool, BpfStatsError> {
        Ok(sysctl::get(BPF_STATS_SYSCTL).map_err(|source| BpfStatsError::Read { source })? != "0")
    }

    /// Turns counting on for the life of the returned guard.
    pub fn enable() -> Result<Self, BpfStatsError> {
        let found = sysctl::get(BPF_STATS_SYSCTL);
        let guard = |previous: &str, how, fd, set| Self {
            previous: previous.to_owned(),
            how,
            fd,
            set,
        };
        if let Ok(v) = &found {
            if v != "0" {
                return Ok(guard(v, Counting::AlreadyOn, None, false));
            }
        }
        // The descriptor needs no /proc/sys: tried even when the sysctl
        // cannot be read.
        let unread = "unreadable";
        match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => {
                let previous = found.as_deref().unwrap_or(unread);
                return Ok(guard(previous, Counting::Descriptor, Some(fd), false));
            }
            Err(e) => log::info!("BPF_ENABLE_STATS: {e}; setting {BPF_STATS_SYSCTL} instead"),
        }
        let previous = found.map_err(|source| BpfStatsError::Read { source })?;
        sysctl::set(BPF_STATS_SYSCTL, "1").map_err(|source| BpfStatsError::Enable { source })?;
        Ok(guard(&previous, Counting::Sysctl, None, true))
    }

    /// How counting was turned on.
    pub fn counting(&self) -> Counting {
        self.how
    }

    /// The sysctl's value found before [`BpfStats::enable`].
    pub fn previous(&self) -> &str {
        &self.previous
    }

    /// Whether this guard changed the sysctl (it was 0, and there was no
    /// `BPF_ENABLE_STATS`).
    pub fn changed(&self) -> bool {
        self.set
    }

    /// Ends counting now: closes the descriptor, or puts the sysctl's value
    /// back (nothing if it was 1 already).
    pub fn restore(mut self) -> Result<(), BpfStatsError> {
        self.fd = None;
        self.put_back()
    }

    fn put_back(&mut self) -> Result<(), BpfStatsError> {
        if !std::mem::take(&mut self.set) {
            return Ok(());
        }
        sysctl::set(BPF_STATS_SYSCTL, &self.previous).map_err(|source| BpfStatsError::Restore {
            previous: self.previous.clone(),
            source,
        })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(e) = self.put_back() {
            log::warn!("{e}");
        }
    }
}
