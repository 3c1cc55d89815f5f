//! Fault points, for the tests that prove a failure, a crash or a signal
//! at any step leaves a state the next command repairs.
//!
//! `SHORTPATH_FAULT` holds a comma-separated list of:
//! - `<point>`: the step fails there with an error (the command cleans up);
//! - `abort:<point>`: the process aborts there (a crash: nothing cleans up);
//! - `stall:<point>[:<ms>]`: the step waits there (default 2000 ms), a
//!   window for signals and for concurrent commands.
//!
//! Points: `namespaces`, `pods` (lab build), `mode-between-nodes` (after the
//! first node of a mode switch).

use std::time::Duration;

pub const FAULT_ENV: &str = "SHORTPATH_FAULT";

#[derive(Debug, thiserror::Error)]
#[error("injected failure at {0} ({FAULT_ENV})")]
pub struct Fault(pub String);

enum Action {
    Fail,
    Abort,
    Stall(Duration),
}

fn action(point: &str) -> Option<Action> {
    let spec = std::env::var(FAULT_ENV).ok()?;
    spec.split(',').map(str::trim).find_map(|item| {
        if item == point {
            return Some(Action::Fail);
        }
        if item.strip_prefix("abort:") == Some(point) {
            return Some(Action::Abort);
        }
        let rest = item.strip_prefix("stall:")?;
        let (p, ms) = rest.split_once(':').unwrap_or((rest, "2000"));
        (p == point).then(|| Action::Stall(Duration::from_millis(ms.parse().unwrap_or(2000))))
    })
}

/// Reaches fault point `point`.
pub async fn point(point: &str) -> Result<(), Fault> {
    match action(point) {
        None => Ok(()),
        Some(Action::Fail) => Err(Fault(point.to_owned())),
        Some(Action::Abort) => std::process::abort(),
        Some(Action::Stall(d)) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
    }
}
