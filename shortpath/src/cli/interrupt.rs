//! SIGINT and SIGTERM while a command changes a lab: the work in progress
//! is dropped at its next await point, threads already changing the kernel
//! finish ([`crate::netns::wait_idle`]), then the command puts things back
//! (mode restored, a lab it built removed) and exits 130 / 143.
//!
//! A second signal exits at once; the kernel state it leaves is repaired by
//! the next command (`shortpath mode …`, `shortpath lab down`).

use std::future::Future;

use tokio::{
    signal::unix::{signal, SignalKind},
    sync::watch,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// The shell's exit code for a process ended by this signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }
}

/// A command that stopped because of a signal, after putting things back.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}: {done}", signal.name())]
pub struct Interrupted {
    pub signal: Signal,
    /// What was put back.
    pub done: String,
}

/// Signals received by this process.
#[derive(Clone)]
pub struct Interrupt {
    rx: watch::Receiver<Option<Signal>>,
}

impl Interrupt {
    /// Installs the handlers. Must be called within the runtime.
    pub fn install() -> std::io::Result<Self> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            loop {
                let sig = tokio::select! {
                    _ = int.recv() => Signal::Int,
                    _ = term.recv() => Signal::Term,
                };
                if tx.borrow().is_some() {
                    eprintln!(
                        "{}: stopping without cleaning up; the next `shortpath mode` or `shortpath lab down` repairs what is left",
                        sig.name()
                    );
                    std::process::exit(sig.exit_code());
                }
                eprintln!(
                    "{}: stopping and putting things back (again to stop at once)",
                    sig.name()
                );
                let _ = tx.send(Some(sig));
            }
        });
        Ok(Self { rx })
    }

    async fn wait(&self) -> Signal {
        let mut rx = self.rx.clone();
        loop {
            if let Some(s) = *rx.borrow_and_update() {
                return s;
            }
            if rx.changed().await.is_err() {
                // The handler task is gone: no signal will ever come.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `f` until it completes or a signal comes (then `f` is dropped).
    pub async fn race<F: Future>(&self, f: F) -> Result<F::Output, Signal> {
        tokio::select! {
            biased;
            s = self.wait() => Err(s),
            out = f => Ok(out),
        }
    }
}
