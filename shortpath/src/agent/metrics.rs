//! `/metrics` in the Prometheus/OpenMetrics text format, built at every
//! scrape from what the kernel reports: counters from the BPF maps, mode
//! from what is attached, run time from bpf_stats.

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::{core::Agent, server::ApiCounts, watch::Events};
use crate::dataplane::{kernel, Mode, Setting};

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Everything `/metrics` shows.
pub struct Sources {
    pub agent: Arc<Mutex<Agent>>,
    pub api: ApiCounts,
    pub events: Events,
}

/// The exposition text.
pub fn render(src: &Sources) -> String {
    let mut reg = Registry::with_prefix("shortpath");
    let packets = Family::<Labels, Counter>::default();
    let endpoints = Gauge::<i64>::default();
    let mode = Family::<Labels, Gauge<i64>>::default();
    let actions = Family::<Labels, Counter>::default();
    let run_ns = Family::<Labels, Counter>::default();
    let runs = Family::<Labels, Counter>::default();
    let api = Family::<Labels, Counter>::default();
    let events = Family::<Labels, Counter>::default();
    let up = Gauge::<i64>::default();
    let cached = Gauge::<i64>::default();
    let syncs = Counter::<u64>::default();
    {
        let agent = src.agent.lock().unwrap_or_else(|p| p.into_inner());
        up.set(i64::from(agent.ready));
        let nh = agent.next_hops.snapshot();
        cached.set(nh.cached as i64);
        syncs.inc_by(nh.syncs);
        endpoints.set(agent.records().count() as i64);
        // The kernel's view, not the agent's last intent.
        let programs = agent.programs();
        let current = programs
            .as_ref()
            .map_or(Setting::Mixed, |p| Setting::of_programs(p));
        for m in Mode::ALL {
            let on = matches!(current, Setting::Uniform { mode, .. } if mode == m);
            mode.get_or_create(&labels(&[("mode", m.as_str())]))
                .set(i64::from(on));
        }
        mode.get_or_create(&labels(&[("mode", "mixed")]))
            .set(i64::from(current == Setting::Mixed));
        for (what, n) in &agent.actions {
            actions
                .get_or_create(&labels(&[("action", what)]))
                .inc_by(*n);
        }
        if let Ok(programs) = programs {
            let mut seen = std::collections::BTreeSet::new();
            for p in &programs {
                for (reason, n) in &p.counters {
                    packets
                        .get_or_create(&labels(&[
                            ("program", p.hook),
                            ("device", &p.ifname),
                            ("reason", reason),
                        ]))
                        .inc_by(*n);
                }
                // One program runs on many devices: its run time once.
                if let Some(id) = p.program_id.filter(|id| seen.insert(*id)) {
                    if let Ok((ns, cnt)) = kernel::run_stats(id) {
                        let l = labels(&[("program", p.hook), ("id", &id.to_string())]);
                        run_ns.get_or_create(&l).inc_by(ns);
                        runs.get_or_create(&l).inc_by(cnt);
                    }
                }
            }
        }
    }
    for ((op, outcome), n) in src.api.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        api.get_or_create(&labels(&[("op", op), ("outcome", outcome)]))
            .inc_by(*n);
    }
    for (kind, n) in src.events.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        events.get_or_create(&labels(&[("kind", kind)])).inc_by(*n);
    }
    reg.register(
        "agent_ready",
        "1 once the agent has adopted or set up the dataplane",
        up,
    );
    reg.register(
        "packets",
        "Packets seen by the dataplane programs, by program, device and reason",
        packets,
    );
    reg.register("endpoints", "Endpoints the agent manages", endpoints);
    reg.register(
        "mode",
        "1 for the mode the kernel runs (mixed: ports disagree)",
        mode,
    );
    reg.register(
        "reconcile_actions",
        "Changes made to bring records and the kernel together",
        actions,
    );
    reg.register(
        "program_run_time_ns",
        "Time spent in each program (kernel.bpf_stats_enabled=1 only)",
        run_ns,
    );
    reg.register(
        "program_runs",
        "Runs of each program (kernel.bpf_stats_enabled=1 only)",
        runs,
    );
    reg.register(
        "next_hops_cached",
        "Routes to other nodes' pods from_pod forwards without a FIB lookup",
        cached,
    );
    reg.register(
        "next_hop_syncs",
        "Times the next-hop cache was brought in step with routes and neighbours",
        syncs,
    );
    reg.register("api_requests", "API requests by op and outcome", api);
    reg.register(
        "netlink_events",
        "Netlink events the agent acted on or counted",
        events,
    );
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String");
    out
}

/// Serves `GET /metrics` (HTTP/1.0-style: one response, then close).
pub async fn serve(listener: TcpListener, src: Arc<Sources>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let src = src.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&buf[..n]);
            let first = head.lines().next().unwrap_or_default();
            let (status, ctype, body) = if first.starts_with("GET /metrics ") {
                let body = tokio::task::spawn_blocking(move || render(&src))
                    .await
                    .unwrap_or_default();
                (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                )
            } else {
                (
                    "404 Not Found",
                    "text/plain",
                    "try GET /metrics\n".to_owned(),
                )
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes()).await;
        });
    }
}
