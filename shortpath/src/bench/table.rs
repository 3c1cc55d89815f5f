//! The summary table printed by `bench` and `report`.

use super::{BenchMode, BenchResult, BpfStatsSetting};
use crate::{dataplane::BPF_STATS_SYSCTL, table::Table};

/// Human figure: 3 significant digits with k/M suffixes for large values.
pub fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.3}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The measured modes whose throughput and latency stand for a path (not
/// `noop`: see [`BenchMode::Noop`]).
pub fn paths(r: &BenchResult) -> impl Iterator<Item = BenchMode> + '_ {
    r.params.modes.iter().copied().filter(|m| m.is_a_path())
}

/// The hooks whose programs' cost the tables show.
const HOOKS: [&str; 2] = ["from_nic", "from_pod"];

/// One row per test, one column per mode: median, and the ratios to bridge
/// and host.
pub fn summary_table(r: &BenchResult) -> Table {
    let mut headers = vec!["TEST".to_owned(), "UNIT".to_owned()];
    headers.extend(paths(r).map(|m| m.name().to_uppercase()));
    let mut t = Table::new(headers);
    for &test in &r.params.tests {
        let mut row = vec![test.name().to_owned(), test.unit().to_owned()];
        for mode in paths(r) {
            let cell = match r.get(mode, test) {
                None => "-".to_owned(),
                Some(s) => {
                    let mut c = human(s.value);
                    if mode != BenchMode::Bridge {
                        if let Some(b) = s.vs_bridge {
                            c += &format!(" {b:.2}×bridge");
                        }
                    }
                    if mode != BenchMode::Host {
                        if let Some(h) = s.vs_host {
                            c += &format!(" {h:.2}×host");
                        }
                    }
                    if let Some(l) = s.loss_pct {
                        c += &format!(" loss {l:.1}%");
                    }
                    c
                }
            };
            row.push(cell);
        }
        t.row(row);
    }
    t
}

/// Latency percentiles of the request/response tests.
pub fn latency_table(r: &BenchResult) -> Table {
    let mut t = Table::new(["TEST", "MODE", "P50 µs", "P90 µs", "P99 µs", "P99.9 µs"]);
    for &test in r.params.tests.iter().filter(|t| t.has_latency()) {
        for mode in paths(r) {
            if let Some(l) = r.get(mode, test).and_then(|s| s.latency) {
                t.row([
                    test.name().to_owned(),
                    mode.name().to_owned(),
                    format!("{:.1}", l.p50_us),
                    format!("{:.1}", l.p90_us),
                    format!("{:.1}", l.p99_us),
                    format!("{:.1}", l.p999_us),
                ]);
            }
        }
    }
    t
}

/// What the lab's programs cost per packet, per hook, in the modes that
/// have programs (from bpf_stats; empty when it was not counted).
pub fn program_table(r: &BenchResult) -> Table {
    let mut t = Table::new(["TEST", "MODE", "FROM_NIC NS/PKT", "FROM_POD NS/PKT"]);
    for &test in &r.params.tests {
        for &mode in &r.params.modes {
            let Some(s) = r.get(mode, test).filter(|s| !s.programs.is_empty()) else {
                continue;
            };
            let mut row = vec![test.name().to_owned(), mode.name().to_owned()];
            row.extend(HOOKS.iter().map(|h| {
                s.programs
                    .get(h)
                    .and_then(|c| c.ns_per_packet)
                    .map_or_else(|| "-".to_owned(), |n| format!("{n:.0}"))
            }));
            t.row(row);
        }
    }
    t
}

/// What the programs cost above what counting charges a program that does
/// nothing (the `noop` rows of the same run), per test and hook; `None`
/// without `noop` rows.
pub fn above_noop_note(r: &BenchResult) -> Option<String> {
    let ns = |mode: BenchMode, test, hook: &str| {
        r.get(mode, test)
            .and_then(|s| s.programs.get(hook))
            .and_then(|c| c.ns_per_packet)
    };
    let mut parts = Vec::new();
    for &test in &r.params.tests {
        for hook in HOOKS {
            let Some(noop) = ns(BenchMode::Noop, test, hook) else {
                continue;
            };
            let above: Vec<String> = paths(r)
                .filter_map(|m| ns(m, test, hook).map(|n| format!("{m} {:.0}", n - noop)))
                .collect();
            if !above.is_empty() {
                parts.push(format!(
                    "{} {hook}: {} (noop {noop:.0})",
                    test.name(),
                    above.join(", ")
                ));
            }
        }
    }
    (!parts.is_empty()).then(|| {
        format!(
            "Above what counting charges a program that does nothing (the noop row), in ns/packet: {}.",
            parts.join("; ")
        )
    })
}

/// One paragraph on how the programs' cost was counted, or why it was not.
pub fn bpf_stats_note(r: &BenchResult) -> String {
    let b = &r.bpf_stats;
    let cost = "the kernel then reads the clock before and after every program run and adds up the time; \
                the ns/packet figures include that, and redirect and peer carry it in every test of this run";
    let prev = b.previous.as_deref().unwrap_or("?");
    match b.sysctl {
        BpfStatsSetting::DescriptorForRun => format!(
            "Program cost from bpf_stats: counting on for the run through a BPF_ENABLE_STATS descriptor \
             ({BPF_STATS_SYSCTL} stayed {prev}; the kernel stops counting when the descriptor closes, \
             however the bench ends); {cost}."
        ),
        BpfStatsSetting::SetForRun => {
            let back = match b.restored {
                Some(false) => format!(
                    "putting it back failed: run `sysctl -w {BPF_STATS_SYSCTL}={prev}`"
                ),
                _ => format!("put back to {prev} after"),
            };
            format!(
                "Program cost from bpf_stats: {BPF_STATS_SYSCTL} was {prev}, set to 1 for the measurements ({back}); {cost}."
            )
        }
        BpfStatsSetting::AlreadyOn => format!(
            "Program cost from bpf_stats: {BPF_STATS_SYSCTL} was already {prev} (left as it is); {cost}."
        ),
        BpfStatsSetting::LeftOff => format!(
            "No program cost: --no-bpf-stats left {BPF_STATS_SYSCTL} at {prev}, so the kernel did not count program run time."
        ),
        BpfStatsSetting::Unavailable => format!(
            "No program cost: {BPF_STATS_SYSCTL} could not be read or set (see the warning above)."
        ),
        BpfStatsSetting::NotNeeded => format!(
            "No program cost: no mode of this run has programs ({BPF_STATS_SYSCTL} left alone)."
        ),
    }
}

/// What `--endpoints` put in the maps, or `None` without it.
pub fn endpoints_note(r: &BenchResult) -> Option<String> {
    let e = r.params.endpoints.as_ref()?;
    if e.nodes.is_empty() {
        return Some(format!(
            "Endpoint maps: {} entries asked, but no node had a pinned endpoint map (no mode with programs ran): nothing was filled.",
            e.asked
        ));
    }
    let nodes: Vec<String> = e
        .nodes
        .iter()
        .map(|n| {
            format!(
                "{} held {} ({} real, {} synthetic)",
                n.node, n.held.entries, n.held.real, n.held.synthetic
            )
        })
        .collect();
    Some(format!(
        "Endpoint maps: {} entries asked; during the measurements {}. The {} synthetic entries were removed after the run.",
        e.asked,
        nodes.join(", "),
        e.removed
    ))
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_figures() {
        assert_eq!(human(31234.0), "31.2k");
        assert_eq!(human(2_500_000.0), "2.500M");
        assert_eq!(human(512.4), "512");
        assert_eq!(human(9.876), "9.88");
    }
}
