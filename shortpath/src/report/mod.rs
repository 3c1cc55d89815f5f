//! `shortpath report`: the article reproduced on this machine — a Markdown
//! report with tables, ratios and SVG plots from one bench run (and the
//! trace, when given).

use std::{
    fmt::Write as _,
    io,
    path::{Path, PathBuf},
};

use crate::bench::{self, plot, BenchMode, BenchResult, Test};

/// What each mode skips, in the article's terms.
const MODES: &str = "\
| Mode | Path of a packet to a pod | Skips |
| --- | --- | --- |
| bridge | eth1 → routing → netfilter → br0 → lxc → backlog → ve0 | nothing: the baseline |
| redirect | eth1 → `bpf_redirect` → lxc → backlog → ve0 | bridge, netfilter, the node's routing |
| peer | eth1 → `bpf_redirect_peer` → ve0 | also the backlog queue and its second softirq pass |
| host | eth1 → node socket | the floor: no pod, no bridge, no program |
";

/// Writes the plots of `r` into `dir`; returns their file names.
pub fn write_plots(r: &BenchResult, dir: &Path) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for &test in &r.params.tests {
        if test.has_latency() {
            let series: Vec<(&str, Vec<(f64, f64)>)> = r
                .params
                .modes
                .iter()
                .filter_map(|m| {
                    r.latency
                        .get(&(*m, test))
                        .map(|h| (m.name(), bench::stats::cdf(h, 60)))
                })
                .collect();
            if !series.is_empty() {
                let name = format!("{}_latency_cdf.svg", test.name());
                let title = format!("{} latency CDF ({} path)", test.name(), path_name(r));
                std::fs::write(dir.join(&name), plot::cdf(&title, &series))?;
                files.push(name);
            }
        }
        let bars: Vec<(&str, f64, f64, f64)> = r
            .params
            .modes
            .iter()
            .filter(|m| **m != BenchMode::Host)
            .filter_map(|m| r.get(*m, test).map(|s| (m.name(), s.value, s.min, s.max)))
            .collect();
        if !bars.is_empty() {
            let floor = r.get(BenchMode::Host, test).map(|s| s.value);
            let name = format!("{}.svg", test.name());
            let title = format!("{} (median of {} rounds)", test.name(), r.params.rounds);
            std::fs::write(
                dir.join(&name),
                plot::bars(&title, test.unit(), &bars, floor),
            )?;
            files.push(name);
        }
    }
    Ok(files)
}

fn path_name(r: &BenchResult) -> &'static str {
    match r.params.path {
        bench::PathKind::Remote => "pod → remote pod",
        bench::PathKind::Local => "pod → same-node pod",
    }
}

/// Extra sections (e.g. the tracer's table) appended to the report.
pub struct Section {
    pub title: String,
    pub body: String,
}

/// Writes `dir/report.md` and the plots; returns the report's path.
pub fn write(r: &BenchResult, extra: &[Section], command: &str, dir: &Path) -> io::Result<PathBuf> {
    let plots = write_plots(r, dir)?;
    let mut md = String::new();
    let _ = writeln!(md, "# shortpath report\n");
    let _ = writeln!(
        md,
        "Machine: {} cores, {}, kernel {}. Path: {}, {}. {} rounds of {} s per test (warm-up {} s), modes interleaved.\n",
        r.machine.cores,
        if r.machine.cpu.is_empty() { "unknown CPU" } else { &r.machine.cpu },
        r.machine.kernel,
        path_name(r),
        r.params.family,
        r.params.rounds,
        r.params.duration_s,
        r.params.warmup_s
    );
    let _ = writeln!(md, "Command: `{command}`\n");
    let _ = writeln!(md, "## What each mode skips\n\n{MODES}");
    let _ = writeln!(
        md,
        "## Results\n\nMedian over rounds; `×bridge` and `×host` are ratios of medians measured in this run (higher is better for every test).\n"
    );
    md += &bench::summary_table(r).markdown();
    md.push('\n');
    let _ = writeln!(md, "### Latency (all transactions of all rounds)\n");
    md += &bench::latency_table(r).markdown();
    md.push('\n');
    md += &findings(r);
    for s in extra {
        let _ = writeln!(md, "## {}\n\n{}\n", s.title, s.body);
    }
    if !plots.is_empty() {
        let _ = writeln!(md, "## Plots\n");
        for p in &plots {
            let _ = writeln!(md, "![{p}]({p})\n");
        }
    }
    let _ = writeln!(
        md,
        "## Raw figures\n\nEvery round of every mode and test is in the JSON written next to this report (`bench.json`)."
    );
    let path = dir.join("report.md");
    std::fs::write(&path, md)?;
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string_pretty(r).map_err(io::Error::other)?,
    )?;
    Ok(path)
}

/// Sentences with the headline ratios.
fn findings(r: &BenchResult) -> String {
    let mut out = String::from("### In short\n\n");
    for &test in &r.params.tests {
        let Some(peer) = r.get(BenchMode::Peer, test) else {
            continue;
        };
        let mut line = format!(
            "- **{}**: peer {} {}",
            test.name(),
            bench::human(peer.value),
            test.unit()
        );
        if let Some(b) = peer.vs_bridge {
            let _ = write!(line, ", {:+.0} % vs bridge", (b - 1.0) * 100.0);
        }
        if let Some(h) = peer.vs_host {
            let _ = write!(line, ", {:.0} % of the host floor", h * 100.0);
        }
        if let Some(red) = r.get(BenchMode::Redirect, test).and_then(|s| s.vs_bridge) {
            let _ = write!(line, " (redirect: {:+.0} % vs bridge)", (red - 1.0) * 100.0);
        }
        if test.has_latency() {
            if let (Some(p), Some(b)) = (
                peer.latency,
                r.get(BenchMode::Bridge, test).and_then(|s| s.latency),
            ) {
                let _ = write!(
                    line,
                    "; p50 latency {:.1} → {:.1} µs ({:+.0} %)",
                    b.p50_us,
                    p.p50_us,
                    (p.p50_us / b.p50_us - 1.0) * 100.0
                );
            }
        }
        out += &line;
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The default test list of a report.
pub fn default_tests() -> Vec<Test> {
    Test::ALL.to_vec()
}
