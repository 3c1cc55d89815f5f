//! How a command that changes a lab runs: it takes the lab's lock (or waits
//! for it), notes what to put back, does its work — stopping at a signal —
//! and then always puts things back: a lab it built is removed, a lab it
//! found is returned to the mode the kernel had. bench, trace and report
//! share this; `lab up` and `mode` use the same pieces.

use anyhow::Context as _;

use super::interrupt::{Interrupt, Interrupted, Signal};
use crate::{
    control,
    dataplane::{DataplaneState, Mode},
    lab::{self, config::Config},
    names::LabName,
    netns,
    runtime::{LabLock, Wait},
};

/// What every command gets besides its arguments.
pub struct Ctx {
    pub wait: Wait,
    pub interrupt: Interrupt,
}

impl Ctx {
    /// Takes the writer lock of `name`; a signal while waiting ends the
    /// command (nothing was changed yet).
    pub async fn lock(&self, name: &LabName) -> anyhow::Result<LabLock> {
        match self.interrupt.race(LabLock::acquire(name, self.wait)).await {
            Ok(lock) => Ok(lock?),
            Err(signal) => Err(Interrupted {
                signal,
                done: "nothing was changed".into(),
            }
            .into()),
        }
    }
}

/// Which lab a command works on.
pub enum LabUse {
    /// The lab if it is up, else one built from this config (and removed
    /// afterwards).
    BuildIfMissing(Config),
    /// Always a new lab from this config, removed afterwards; an existing
    /// lab of that name is an error.
    BuildNew(Config),
    /// As `BuildNew`, with a shortpathd per node, in peer mode.
    BuildNewWithAgents(Config),
    /// As `BuildNewWithAgents`, and every agent writes a CNI conflist
    /// (`lab up --cni`). With `keep`, a run that succeeds leaves the lab
    /// up; a failure or a signal still removes it.
    BuildNewWithCni { config: Config, keep: bool },
}

/// What the session puts back at the end.
enum Restore {
    /// Remove the lab: the session built it.
    Remove,
    /// Bring the lab back to this setting (what the kernel ran at start).
    Mode(DataplaneState),
}

/// The kernel's current setting of a lab, refusing a half-switched one.
pub async fn current_setting(name: &LabName) -> anyhow::Result<DataplaneState> {
    let st = control::status(&lab::inventory(name).await?).await?;
    match st.mode.mode() {
        Some(mode) => Ok(DataplaneState {
            mode,
            attach: st.attach,
        }),
        None => anyhow::bail!(
            "lab {name}: {}",
            st.drift.unwrap_or_else(|| "ports disagree".into())
        ),
    }
}

/// Puts the lab of `lock` back in `st` if the kernel runs something else.
pub async fn restore_mode(lock: &LabLock, st: DataplaneState) -> anyhow::Result<String> {
    let now = control::status(&lab::inventory(lock.lab()).await?).await?;
    let same = now.mode.mode() == Some(st.mode)
        && (st.mode == Mode::Bridge || st.attach.is_none() || now.attach == st.attach);
    if !same {
        control::set_mode(lock, st.mode, st.attach).await?;
    }
    Ok(format!("lab {} is back in {} mode", lock.lab(), st.mode))
}

/// Runs `work` on lab `name` as described in the module docs. The result
/// is `work`'s; a signal gives an [`Interrupted`] error after the cleanup.
pub async fn with_lab<T>(
    ctx: &Ctx,
    name: &LabName,
    lab_use: LabUse,
    why: &str,
    work: impl AsyncFnOnce(&LabLock) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let lock = ctx.lock(name).await?;
    let exists = lab::load_state(name)?.is_some();
    let (build, agents, keep) = match lab_use {
        LabUse::BuildNew(_) | LabUse::BuildNewWithAgents(_) | LabUse::BuildNewWithCni { .. }
            if exists =>
        {
            anyhow::bail!(
                "lab {name} exists; {why} builds its own: remove it (shortpath lab down --name {name}) or pass another --name"
            )
        }
        LabUse::BuildNew(cfg) => (Some(cfg), control::LabAgents::No, false),
        LabUse::BuildNewWithAgents(cfg) => (Some(cfg), control::LabAgents::Yes, false),
        LabUse::BuildNewWithCni { config, keep } => {
            (Some(config), control::LabAgents::WithCni, keep)
        }
        LabUse::BuildIfMissing(cfg) => ((!exists).then_some(cfg), control::LabAgents::No, false),
    };
    let mut restore = None;
    let started = ctx
        .interrupt
        .race(async {
            match &build {
                Some(cfg) => {
                    restore = Some(Restore::Remove);
                    eprintln!("{why}: building lab {name}");
                    let mode = match agents {
                        control::LabAgents::No => Mode::Bridge,
                        control::LabAgents::Yes | control::LabAgents::WithCni => Mode::Peer,
                    };
                    control::up(&lock, cfg, false, mode, None, agents).await?;
                }
                None => restore = Some(Restore::Mode(current_setting(name).await?)),
            }
            Ok::<_, anyhow::Error>(())
        })
        .await;
    let outcome = match started {
        Ok(Ok(())) => ctx.interrupt.race(work(&lock)).await,
        Ok(Err(e)) => Ok(Err(e)),
        Err(signal) => Err(signal),
    };
    // Changes already under way finish before anything is put back.
    netns::wait_idle().await;
    if keep && matches!(outcome, Ok(Ok(_))) {
        restore = None;
    }
    let ended = match restore {
        None => Ok(String::new()),
        Some(Restore::Remove) => control::down(&lock)
            .await
            .map(|()| format!("removed lab {name}, which it had built"))
            .with_context(|| format!("removing lab {name}")),
        Some(Restore::Mode(st)) => restore_mode(&lock, st)
            .await
            .with_context(|| format!("putting lab {name} back in {} mode", st.mode)),
    };
    finish(outcome, ended)
}

/// Runs `work` until it completes or a signal comes. After a signal, the
/// changes already under way finish, then `undo` puts things back, and the
/// result is an [`Interrupted`] error saying what `undo` did.
pub async fn or_undo<T>(
    ctx: &Ctx,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
    undo: impl AsyncFnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<T> {
    match ctx.interrupt.race(work).await {
        Ok(r) => r,
        Err(signal) => {
            netns::wait_idle().await;
            finish(Err(signal), undo().await)
        }
    }
}

/// Combines a command's outcome with its cleanup's.
pub fn finish<T>(
    outcome: Result<anyhow::Result<T>, Signal>,
    ended: anyhow::Result<String>,
) -> anyhow::Result<T> {
    match (outcome, ended) {
        (Ok(Ok(v)), Ok(_)) => Ok(v),
        (Ok(Ok(_)), Err(e)) => Err(e),
        (Ok(Err(e)), Ok(_)) => Err(e),
        (Ok(Err(e)), Err(cleanup)) => {
            eprintln!("warning: cleaning up failed too: {cleanup:#}");
            Err(e)
        }
        (Err(signal), Ok(done)) => Err(Interrupted { signal, done }.into()),
        (Err(signal), Err(cleanup)) => Err(Interrupted {
            signal,
            done: format!("putting things back failed: {cleanup:#}"),
        }
        .into()),
    }
}
