//! `shortpath report`: the article reproduced on this machine — a Markdown
//! report with tables, ratios and SVG plots from one bench run and one
//! trace run, and a scale section ([`scale`]).

pub mod scale;

use std::{
    fmt::Write as _,
    io,
    path::{Path, PathBuf},
};

use crate::{
    bench::{self, plot, BenchMode, BenchResult, Test},
    trace::{Direction, TraceResult},
};

/// What each mode skips, in the article's terms.
const MODES: &str = "\
| Mode | Path of a packet to a pod | Skips |
| --- | --- | --- |
| bridge | eth1 → routing → netfilter → br0 → lxc → backlog → ve0 | nothing: the baseline |
| redirect | eth1 → `bpf_redirect` → lxc → backlog → ve0 | bridge, netfilter, the node's routing |
| peer | eth1 → `bpf_redirect_peer` → ve0 | also the backlog queue and its second softirq pass |
| reference | as peer, through hand-written programs compiled for the benchmark's pod pair | also the maps, checks and counters: the floor of a program on this path |
| noop | as peer, with a program that does nothing in front at each hook (its program cost only: not in the throughput and latency tables) | nothing: its programs' ns/packet is what counting itself charges every program |
| host | eth1 → node socket | the floor: no pod, no bridge, no program |
";

/// Writes the plots of `r` into `dir`; returns their file names.
pub fn write_plots(r: &BenchResult, dir: &Path) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for &test in &r.params.tests {
        if test.has_latency() {
            let series: Vec<plot::CdfSeries> = bench::paths(r)
                .filter_map(|m| {
                    r.latency
                        .get(&(m, test))
                        .filter(|h| !h.is_empty())
                        .map(|h| bench::stats::cdf_series(m.name(), h))
                })
                .collect();
            if !series.is_empty() {
                let name = format!("{}_latency_cdf.svg", test.name());
                let title = format!("{} latency CDF ({} path)", test.name(), path_name(r));
                std::fs::write(dir.join(&name), plot::cdf(&title, &series))?;
                files.push(name);
            }
        }
        let bars: Vec<(&str, f64, f64, f64)> = bench::paths(r)
            .filter(|m| *m != BenchMode::Host)
            .filter_map(|m| r.get(m, test).map(|s| (m.name(), s.value, s.min, s.max)))
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

/// The tracer's plots: path time per mode (median bar, whisker to p99),
/// one per direction.
pub fn write_trace_plots(t: &TraceResult, dir: &Path) -> io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for &dir_ in &t.params.directions {
        let bars: Vec<(&str, f64, f64, f64)> = t
            .params
            .modes
            .iter()
            .filter_map(|m| {
                let s = t.get(*m, dir_)?;
                Some((m.as_str(), s.path_us_p50?, s.path_us_p50?, s.path_us_p99?))
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        let (what, name) = match dir_ {
            Direction::Rx => ("RX path: NIC → pod socket", "trace_rx_path.svg"),
            Direction::Tx => ("TX path: pod → NIC", "trace_tx_path.svg"),
        };
        let title = format!("{what} (p50, whisker to p99)");
        std::fs::write(dir.join(name), plot::bars(&title, "µs", &bars, None))?;
        files.push(name.to_owned());
    }
    Ok(files)
}

/// The tracer's section of the report.
fn trace_section(t: &TraceResult) -> String {
    let mut md = String::from("## Kernel path per packet (`shortpath trace`)\n\n");
    let _ = writeln!(
        md,
        "{} tagged UDP probes per mode at {} packets/s, {} → {}, followed through the kernel's tracepoints \
         (`netif_receive_skb`, `netif_rx`, `net_dev_queue`, `net_dev_start_xmit`, `fib_table_lookup`, `sk_data_ready`, `kfree_skb`, NET_RX softirq entry/exit). \
         RX: first `netif_receive_skb` on the receiving node's NIC → `sk_data_ready` on the pod's socket. \
         TX: first `net_dev_queue` on the pod's interface → `net_dev_start_xmit` on the sending node's NIC. \
         `vs bridge` is the change of the median path time.\n",
        t.params.packets, t.params.rate_pps, t.params.from, t.params.to
    );
    md += &t.table().markdown();
    md.push('\n');
    let _ = writeln!(
        md,
        "Route lookups count every `fib_table_lookup` on the path; in brackets those in the node's namespace \
         (the stack forwarding, or the dataplane's own `bpf_fib_lookup` on TX). The lab's wire is a veth pair, \
         so every mode also has one backlog enqueue before the receiving NIC; it is not counted above.\n"
    );
    for (mode, run) in t.runs_in_order() {
        if let Some(p) = run.paths.get(&Direction::Rx) {
            let _ = writeln!(
                md,
                "<details><summary>{mode}: one RX packet, {:.1} µs</summary>\n\n{}\n</details>\n",
                p.path_ns.unwrap_or_default() as f64 / 1000.0,
                crate::trace::summary::listing(p).markdown()
            );
        }
    }
    md
}

/// Writes `dir/report.md` and the plots; returns the report's path.
pub fn write(
    r: &BenchResult,
    scale: Option<&scale::ScaleResult>,
    trace: Option<&TraceResult>,
    command: &str,
    dir: &Path,
) -> io::Result<PathBuf> {
    let mut plots = write_plots(r, dir)?;
    if let Some(s) = scale {
        plots.push(scale::write(s, dir)?);
    }
    if let Some(t) = trace {
        plots.extend(write_trace_plots(t, dir)?);
    }
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
    md += &program_cost(r);
    md += &findings(r);
    if let Some(s) = scale {
        md += &scale::section(s);
    }
    if let Some(t) = trace {
        md += &trace_section(t);
    }
    if !plots.is_empty() {
        let _ = writeln!(md, "## Plots\n");
        for p in &plots {
            let _ = writeln!(md, "![{p}]({p})\n");
        }
    }
    let _ = writeln!(
        md,
        "## Raw figures\n\nEvery round of every mode and test is in the JSON written next to this report (`bench.json`; the trace in `trace.json`{}).",
        if scale.is_some() {
            format!("; the scale section in `{}`", scale::JSON)
        } else {
            String::new()
        }
    );
    let path = dir.join("report.md");
    std::fs::write(&path, md)?;
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string_pretty(r).map_err(io::Error::other)?,
    )?;
    if let Some(t) = trace {
        std::fs::write(
            dir.join("trace.json"),
            serde_json::to_string_pretty(t).map_err(io::Error::other)?,
        )?;
    }
    Ok(path)
}

/// The programs' cost per packet per hook, with how it was counted.
fn program_cost(r: &BenchResult) -> String {
    if r.bpf_stats.sysctl == bench::BpfStatsSetting::NotNeeded {
        return String::new();
    }
    let mut md = String::from("### Program cost (bpf_stats)\n\n");
    let _ = writeln!(
        md,
        "Time the kernel counts in each hook's programs per packet (`run_time_ns / run_count`, all nodes, \
         total over all rounds), measured around each measurement.\n\n{}\n",
        bench::bpf_stats_note(r)
    );
    let t = bench::program_table(r);
    if !t.is_empty() {
        md += &t.markdown();
        md.push('\n');
    }
    if let Some(note) = bench::above_noop_note(r) {
        let _ = writeln!(md, "{note}\n");
    }
    md
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
        if let Some(reference) = r.get(BenchMode::Reference, test) {
            if let Some(x) = bench::stats::ratio(peer.value, reference.value) {
                let _ = write!(line, ", {:.0} % of the hand-written reference", x * 100.0);
            }
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

/// The modes a report measures: every dataplane mode, the hand-written
/// reference and the no-op programs right after peer when they can run
/// on the lab (`reference`: why they cannot), and the host floor.
pub fn modes(reference: &Result<(), String>) -> Vec<BenchMode> {
    let mut m = BenchMode::ALL.to_vec();
    if reference.is_ok() {
        let at = m
            .iter()
            .position(|m| *m == BenchMode::Peer)
            .map_or(m.len(), |i| i + 1);
        m.insert(at, BenchMode::Reference);
        m.insert(at + 1, BenchMode::Noop);
    }
    m
}

/// The default test list of a report.
pub fn default_tests() -> Vec<Test> {
    Test::ALL.to_vec()
}
