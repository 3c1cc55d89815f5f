use std::{
    sync::atomic::{AtomicUsize, Ordering},
    thread::JoinHandle,
    time::Duration,
};

use super::{Netns, NetnsError, NetnsGuard};

/// [`run_in`] threads still running, including those whose caller stopped
/// waiting (a cancelled future cannot stop a thread half-way through
/// attaching a program).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

struct InFlight;

impl InFlight {
    fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until every [`run_in`] thread has finished: after a command was
/// interrupted, its cleanup must not race the changes still being made.
pub async fn wait_idle() {
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `f` on a new thread inside `ns` and returns its result. Async
/// callers are not blocked: the result comes back over a channel. If the
/// caller stops waiting, `f` still runs to the end ([`wait_idle`]).
pub async fn run_in<T, F>(ns: &Netns, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let flight = InFlight::new();
    let handle = spawn_in(ns, move || {
        let _flight = flight;
        let _ = tx.send(f());
    })?;
    let name = ns.name().to_owned();
    match rx.await {
        Ok(v) => {
            let _ = handle.join();
            Ok(v)
        }
        Err(_) => match handle.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(NetnsError::ThreadPanicked { name }),
        },
    }
}

/// Same as [`run_in`] for callers without a runtime.
pub fn run_in_blocking<T, F>(ns: &Netns, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let name = ns.name().to_owned();
    match spawn_in(ns, f)?.join() {
        Ok(r) => r,
        Err(_) => Err(NetnsError::ThreadPanicked { name }),
    }
}

/// A thread living in a network namespace (for servers and load clients).
pub type NetnsThread<T> = JoinHandle<Result<T, NetnsError>>;

/// Spawns a named thread that enters `ns`, runs `f` and leaves.
pub fn spawn_in<T, F>(ns: &Netns, f: F) -> Result<NetnsThread<T>, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let ns = ns.clone();
    let name = ns.name().to_owned();
    std::thread::Builder::new()
        .name(format!("netns:{name}"))
        .spawn(move || {
            let guard = NetnsGuard::enter(&ns)?;
            let out = f();
            drop(guard);
            Ok(out)
        })
        .map_err(|e| NetnsError::io(&name, "spawn thread", e))
}

/// [`spawn_in`] for the caller's own namespace: a named thread that runs
/// `f` where it is, with no namespace switch (and no root needed).
pub(super) fn spawn_here<T, F>(f: F) -> Result<NetnsThread<T>, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    std::thread::Builder::new()
        .name("netns:(own)".into())
        .spawn(move || Ok(f()))
        .map_err(|e| NetnsError::io("(own)", "spawn thread", e))
}
