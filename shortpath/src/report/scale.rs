//! The report's scale section, "Cost against the number of endpoints": a
//! short peer-mode bench and a prog-bench at each endpoint-map size, as a
//! table, a plot (`scale.svg`) and `scale.json`.

use std::{fmt::Write as _, io, path::Path, time::Duration};

use serde::Serialize;

use crate::{
    bench::{
        self,
        prog::ProgBenchResult,
        scale_plot::{self, ScaleSeries, Stroke},
        stats, BenchMode, BenchResult, Test,
    },
    table::Table,
};

/// The tests of the section, in peer mode.
pub const TESTS: [Test; 2] = [Test::UdpRr, Test::UdpPps];
pub const MODE: BenchMode = BenchMode::Peer;
const HOOKS: [&str; 2] = ["from_nic", "from_pod"];
/// The prog-bench cases the plot draws (the table has them all): the
/// forwarded packet of each program, both families.
const PLOTTED: [(&str, &str, Stroke); 4] = [
    ("from_nic", "v4 to a local pod", Stroke::Dashed),
    ("from_nic", "v6 to a local pod", Stroke::Dotted),
    ("from_pod", "v4 to a remote pod", Stroke::Dashed),
    ("from_pod", "v6 to a remote pod", Stroke::Dotted),
];
pub const PLOT: &str = "scale.svg";
pub const JSON: &str = "scale.json";

fn color(program: &str) -> &'static str {
    match program {
        "from_nic" => "#0072b2",
        "from_pod" => "#d55e00",
        _ => "#cc79a7",
    }
}

/// How the section was measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleParams {
    /// Endpoint-map sizes, in the order they ran.
    pub endpoints: Vec<usize>,
    pub mode: BenchMode,
    pub tests: Vec<Test>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub rounds: usize,
    pub cpus: Option<(usize, usize)>,
    pub prog_bench_runs: usize,
    pub prog_bench_repeat: u32,
}

/// One point of a plotted line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub endpoints: usize,
    /// `null` where there is no figure (the programs did not run).
    pub ns_per_packet: Option<f64>,
}

/// One plotted line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub program: &'static str,
    /// `bpf_stats` (live traffic of both tests, total time over total
    /// runs) or `prog_bench` (median).
    pub source: &'static str,
    /// The prog-bench packet; `null` for bpf_stats.
    pub packet: Option<String>,
    pub points: Vec<Point>,
}

/// `scale.json`: everything the section measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    pub params: ScaleParams,
    /// Seconds the section took, lab switches included.
    pub elapsed_s: f64,
    /// What `scale.svg` draws.
    pub series: Vec<Series>,
    /// One bench per size, in `params.endpoints` order (each with its
    /// `params.endpoints`: what every node's map held).
    pub bench: Vec<BenchResult>,
    pub prog_bench: ProgBenchResult,
}

impl ScaleResult {
    pub fn new(
        params: ScaleParams,
        bench: Vec<BenchResult>,
        prog_bench: ProgBenchResult,
        elapsed: Duration,
    ) -> Self {
        let series = series(&params.endpoints, &bench, &prog_bench);
        Self {
            params,
            elapsed_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            series,
            bench,
            prog_bench,
        }
    }
}

/// Cost per hook of one size's bench over `tests`: total run time over
/// total runs.
fn hook_cost(r: &BenchResult, tests: &[Test], hook: &str) -> Option<f64> {
    let costs = stats::sum_costs(
        tests
            .iter()
            .filter_map(|t| r.get(MODE, *t).map(|s| &s.programs)),
    );
    costs.get(hook).and_then(|c| c.ns_per_packet)
}

/// The plotted lines: one per hook from bpf_stats, one per plotted
/// prog-bench case that the run has.
pub fn series(sizes: &[usize], bench: &[BenchResult], prog: &ProgBenchResult) -> Vec<Series> {
    let mut out: Vec<Series> = HOOKS
        .iter()
        .map(|hook| Series {
            program: hook,
            source: "bpf_stats",
            packet: None,
            points: sizes
                .iter()
                .zip(bench)
                .map(|(&n, r)| Point {
                    endpoints: n,
                    ns_per_packet: hook_cost(r, &TESTS, hook),
                })
                .collect(),
        })
        .collect();
    for (program, packet, _) in PLOTTED {
        let Some(c) = prog
            .cases
            .iter()
            .find(|c| c.program == program && c.packet == packet)
        else {
            continue;
        };
        out.push(Series {
            program: c.program,
            source: "prog_bench",
            packet: Some(c.packet.clone()),
            points: c
                .sizes
                .iter()
                .map(|s| Point {
                    endpoints: s.endpoints,
                    ns_per_packet: Some(s.spread.median_ns),
                })
                .collect(),
        });
    }
    out
}

/// The SVG of the plotted lines.
pub fn plot(s: &ScaleResult) -> String {
    let lines: Vec<ScaleSeries> = s
        .series
        .iter()
        .map(|l| {
            let (name, source, stroke) = match &l.packet {
                None => (
                    format!("{}, bpf_stats (live)", l.program),
                    tests_name(),
                    Stroke::Solid,
                ),
                Some(p) => {
                    let stroke = PLOTTED
                        .iter()
                        .find(|(prog, pkt, _)| *prog == l.program && pkt == p)
                        .map_or(Stroke::Dashed, |c| c.2);
                    (
                        format!("{} {}", l.program, p),
                        "prog-bench median".to_owned(),
                        stroke,
                    )
                }
            };
            ScaleSeries {
                name,
                source,
                color: color(l.program),
                stroke,
                points: l
                    .points
                    .iter()
                    .filter_map(|p| Some((p.endpoints as f64, p.ns_per_packet?)))
                    .collect(),
            }
        })
        .collect();
    scale_plot::scale("Program cost against endpoints in the map (peer)", &lines)
}

fn tests_name() -> String {
    TESTS.map(Test::name).join(" + ")
}

/// `+1.2 %` from the first to the last figure of a row.
fn change(first: Option<f64>, last: Option<f64>) -> String {
    match (first, last) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:+.1} %", (b / a - 1.0) * 100.0),
        _ => "-".to_owned(),
    }
}

fn ns(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// One row: the figure at each size and the change from first to last.
fn figure_row(t: &mut Table, head: [String; 3], v: &[Option<f64>], fmt: fn(Option<f64>) -> String) {
    let mut r = head.to_vec();
    r.extend(v.iter().map(|x| fmt(*x)));
    r.push(change(
        v.first().copied().flatten(),
        v.last().copied().flatten(),
    ));
    t.row(r);
}

fn human(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), bench::human)
}

/// What each node's map held at each size: "2 / 2", "100 / 100", ….
fn held_row(s: &ScaleResult) -> Vec<String> {
    let nodes = s
        .bench
        .iter()
        .find_map(|r| r.params.endpoints.as_ref())
        .map(|e| {
            e.nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_default();
    let mut r = vec![
        "map entries".to_owned(),
        format!("held ({nodes})"),
        "entries".into(),
    ];
    r.extend(s.bench.iter().map(|b| {
        match &b.params.endpoints {
            Some(e) if !e.nodes.is_empty() => e
                .nodes
                .iter()
                .map(|n| n.held.entries.to_string())
                .collect::<Vec<_>>()
                .join(" / "),
            _ => "-".to_owned(),
        }
    }));
    r.push(String::new());
    r
}

/// FIGURE | SOURCE | UNIT | @size… | @last VS @first: the map entries
/// held, the bench figures, bpf_stats per hook (per test, then both tests
/// as plotted), every prog-bench case.
pub fn table(s: &ScaleResult) -> Table {
    let sizes = &s.params.endpoints;
    let at = |n: &usize| format!("@{}", scale_plot::thousands(*n as f64));
    let mut headers = vec!["FIGURE".to_owned(), "SOURCE".into(), "UNIT".into()];
    headers.extend(sizes.iter().map(at));
    if let (Some(a), Some(b)) = (sizes.first(), sizes.last()) {
        headers.push(format!("{} VS {}", at(b), at(a)));
    }
    let mut t = Table::new(headers);
    t.row(held_row(s));
    for test in TESTS {
        let v: Vec<_> = s
            .bench
            .iter()
            .map(|r| r.get(MODE, test).map(|x| x.value))
            .collect();
        let head = [
            test.name().to_owned(),
            format!("bench, {MODE}"),
            test.unit().to_owned(),
        ];
        figure_row(&mut t, head, &v, human);
    }
    let per_test = TESTS
        .iter()
        .map(|t| (std::slice::from_ref(t), t.name().to_owned()));
    let both = std::iter::once((&TESTS[..], format!("{} (plotted)", tests_name())));
    for (tests, label) in per_test.chain(both) {
        for hook in HOOKS {
            let v: Vec<_> = s.bench.iter().map(|r| hook_cost(r, tests, hook)).collect();
            let head = [
                hook.to_owned(),
                format!("bpf_stats, {label}"),
                "ns/pkt".to_owned(),
            ];
            figure_row(&mut t, head, &v, ns);
        }
    }
    for c in &s.prog_bench.cases {
        let v: Vec<_> = c.sizes.iter().map(|z| Some(z.spread.median_ns)).collect();
        let head = [
            format!("{} {}", c.program, c.packet),
            "prog-bench".to_owned(),
            "ns/pkt".to_owned(),
        ];
        figure_row(&mut t, head, &v, ns);
    }
    t
}

/// The section of report.md.
pub fn section(s: &ScaleResult) -> String {
    let p = &s.params;
    let mut md = String::from("## Cost against the number of endpoints\n\n");
    let cpus = match p.cpus {
        Some((c, s)) if c == s => format!("client and server on CPU {c}"),
        Some((c, s)) => format!("client on CPU {c}, server on CPU {s}"),
        None => "no CPU pinning".to_owned(),
    };
    let sizes: Vec<String> = p
        .endpoints
        .iter()
        .map(|n| scale_plot::thousands(*n as f64))
        .collect();
    let _ = writeln!(
        md,
        "Every node's endpoint maps filled with synthetic entries (stack-only, from the benchmarking ranges; \
         what `shortpath bench --endpoints N` does) to {} entries in total, one size after the other; at each: \
         {} mode, {} for {} s each after a {} s warm-up, {} round, {cpus}, the programs' cost from bpf_stats \
         (as above); then `prog-bench` at the same sizes ({} calls of {} runs per case and size, median). \
         The endpoint maps are hash maps, with a per-CPU cache in front that the measured flows hit: \
         no figure should grow with the number of entries — read across a row. \
         The section took {:.0} s.\n",
        sizes.join(", "),
        p.mode,
        tests_name(),
        p.duration_s,
        p.warmup_s,
        p.rounds,
        p.prog_bench_runs,
        p.prog_bench_repeat,
        s.elapsed_s
    );
    md += &table(s).markdown();
    md.push('\n');
    let more: Vec<String> = s
        .bench
        .iter()
        .filter_map(|r| {
            let e = r.params.endpoints.as_ref()?;
            let over: Vec<String> = e
                .nodes
                .iter()
                .filter(|n| n.held.entries > e.asked)
                .map(|n| format!("{} {} (its real ones)", n.node, n.held.entries))
                .collect();
            (!over.is_empty()).then(|| format!("@{}: {}", e.asked, over.join(", ")))
        })
        .collect();
    if !more.is_empty() {
        let _ = writeln!(
            md,
            "Maps that held more than asked: {}. prog-bench's maps: its `entries` in `{JSON}`.\n",
            more.join("; ")
        );
    }
    let _ = writeln!(
        md,
        "`{PLOT}`: solid lines, bpf_stats of both tests together (total time over total runs); dashed (IPv4) \
         and dotted (IPv6), prog-bench medians of the forwarded packet of each program. Every figure: `{JSON}`.\n"
    );
    md
}

/// Writes `scale.svg` and `scale.json` into `dir`; returns the plot's name.
pub fn write(s: &ScaleResult, dir: &Path) -> io::Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(PLOT), plot(s))?;
    std::fs::write(
        dir.join(JSON),
        serde_json::to_string_pretty(s).map_err(io::Error::other)?,
    )?;
    Ok(PLOT.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bench::{
        prog::{self, CaseResult, SizeResult, Spread},
        scale::{EndpointsRun, Held, NodeHeld},
        stats::{ProgramCost, ProgramCosts},
        BpfStatsRun, BpfStatsSetting, Machine, Params, PathKind, RoundResult,
    };

    fn machine() -> Machine {
        Machine {
            kernel: "6.18".into(),
            cores: 2,
            cpu: "x".into(),
        }
    }

    /// A peer bench at `asked` endpoints: udp_rr at `tps`, udp_pps at
    /// `kpps`; from_nic `nic` ns over 1000 runs in udp_rr and 3000 in
    /// udp_pps at `nic_pps` ns; from_pod 200 ns throughout.
    fn bench_at(asked: usize, tps: f64, kpps: f64, nic: u64, nic_pps: u64) -> BenchResult {
        let costs = |nic_ns: u64, runs: u64| -> ProgramCosts {
            BTreeMap::from([
                ("from_nic", ProgramCost::new(nic_ns * runs, runs)),
                ("from_pod", ProgramCost::new(200 * runs, runs)),
            ])
        };
        let round = |test: Test, value, programs| RoundResult {
            round: 0,
            mode: MODE,
            test,
            value,
            unit: test.unit(),
            latency: None,
            loss_pct: None,
            programs,
        };
        let real = 2;
        let held = Held {
            entries: asked.max(real),
            real,
            synthetic: asked.saturating_sub(real),
        };
        let params = Params {
            lab: "t".into(),
            path: PathKind::Remote,
            family: "ipv4",
            modes: vec![MODE],
            tests: TESTS.to_vec(),
            duration_s: 2.0,
            warmup_s: 0.5,
            rounds: 1,
            streams: 1,
            cpus: Some((0, 0)),
            endpoints: Some(EndpointsRun {
                asked,
                nodes: ["node-a", "node-b"]
                    .map(|n| NodeHeld {
                        node: n.into(),
                        held,
                    })
                    .to_vec(),
                removed: 2 * held.synthetic,
            }),
        };
        BenchResult::summarize(
            machine(),
            params,
            BpfStatsRun::new(BpfStatsSetting::SetForRun, Some("0".into())),
            vec![
                round(Test::UdpRr, tps, costs(nic, 1000)),
                round(Test::UdpPps, kpps, costs(nic_pps, 3000)),
            ],
            BTreeMap::new(),
        )
    }

    fn prog_result(sizes: &[usize]) -> ProgBenchResult {
        let case = |program, packet: &str, ns: f64| CaseResult {
            program,
            packet: packet.into(),
            path: "redirect_peer",
            verdict: 7,
            frame_bytes: 74,
            sizes: sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| SizeResult {
                    endpoints: n,
                    entries: n.max(3),
                    spread: Spread {
                        median_ns: ns + i as f64,
                        p10_ns: ns,
                        p90_ns: ns + 5.0,
                    },
                    runs: 100,
                    repeat: 250,
                })
                .collect(),
        };
        ProgBenchResult {
            machine: machine(),
            params: prog::Params {
                lab: "t".into(),
                node: "node-a".into(),
                remote_node: "node-b".into(),
                mode: "peer",
                endpoints: sizes.to_vec(),
                runs: 100,
                repeat: 250,
                hops: 255,
                bpf_stats_enabled: false,
            },
            method: prog::METHOD,
            cases: vec![
                case("from_nic", "v4 to a local pod", 30.0),
                case("from_nic", "v4 to the node (stack)", 20.0),
                case("from_pod", "v4 to a remote pod", 80.0),
            ],
        }
    }

    fn result() -> ScaleResult {
        let sizes = vec![1, 100, 10_000];
        let bench = vec![
            bench_at(1, 200_000.0, 400.0, 100, 60),
            bench_at(100, 199_000.0, 404.0, 100, 60),
            bench_at(10_000, 198_000.0, 410.0, 104, 64),
        ];
        let params = ScaleParams {
            endpoints: sizes.clone(),
            mode: MODE,
            tests: TESTS.to_vec(),
            duration_s: 2.0,
            warmup_s: 0.5,
            rounds: 1,
            cpus: Some((0, 0)),
            prog_bench_runs: 100,
            prog_bench_repeat: 250,
        };
        ScaleResult::new(
            params,
            bench,
            prog_result(&sizes),
            Duration::from_millis(23_440),
        )
    }

    #[test]
    fn series_are_bpf_stats_per_hook_and_the_plotted_prog_bench_cases() {
        let s = result();
        let names: Vec<(&str, &str, Option<&str>)> = s
            .series
            .iter()
            .map(|l| (l.program, l.source, l.packet.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("from_nic", "bpf_stats", None),
                ("from_pod", "bpf_stats", None),
                ("from_nic", "prog_bench", Some("v4 to a local pod")),
                ("from_pod", "prog_bench", Some("v4 to a remote pod")),
            ],
            "the stack case is not plotted, missing v6 cases are skipped"
        );
        // Both tests together, every packet weighing the same:
        // (100·1000 + 60·3000) / 4000 = 70 at @1.
        let nic = &s.series[0].points;
        assert_eq!(
            nic[0],
            Point {
                endpoints: 1,
                ns_per_packet: Some(70.0)
            }
        );
        assert_eq!(
            nic[2].ns_per_packet,
            Some((104.0 * 1000.0 + 64.0 * 3000.0) / 4000.0)
        );
        assert_eq!(s.series[1].points[1].ns_per_packet, Some(200.0));
        let pod = &s.series[3].points;
        assert_eq!(
            pod.iter()
                .map(|p| (p.endpoints, p.ns_per_packet))
                .collect::<Vec<_>>(),
            [(1, Some(80.0)), (100, Some(81.0)), (10_000, Some(82.0))]
        );
        assert_eq!(s.elapsed_s, 23.4);
    }

    #[test]
    fn the_table_reads_across_sizes_with_the_change() {
        let s = result();
        let md = table(&s).markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| FIGURE | SOURCE | UNIT | @1 | @100 | @10,000 | @10,000 VS @1 |"
        );
        let row = |start: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start:?} in\n{md}"))
        };
        assert_eq!(
            row("| map entries"),
            "| map entries | held (node-a / node-b) | entries | 2 / 2 | 100 / 100 | 10000 / 10000 |  |"
        );
        assert_eq!(
            row("| udp_rr"),
            "| udp_rr | bench, peer | tps | 200.0k | 199.0k | 198.0k | -1.0 % |"
        );
        assert!(row("| udp_pps").ends_with("| 400 | 404 | 410 | +2.5 % |"));
        assert!(
            row("| from_nic | bpf_stats, udp_rr |").ends_with("| 100.0 | 100.0 | 104.0 | +4.0 % |"),
            "{md}"
        );
        assert!(row("| from_nic | bpf_stats, udp_pps |").contains("| 60.0 | 60.0 | 64.0 |"));
        assert!(row("| from_nic | bpf_stats, udp_rr + udp_pps (plotted) |").contains("| 70.0 |"));
        assert!(row("| from_pod | bpf_stats, udp_rr + udp_pps").ends_with("| +0.0 % |"));
        // Every prog-bench case, plotted or not.
        assert!(row("| from_nic v4 to the node (stack) | prog-bench")
            .contains("| 20.0 | 21.0 | 22.0 |"));
        assert_eq!(lines.len(), 2 + 1 + 2 + 6 + 3, "{md}");
    }

    #[test]
    fn the_section_says_how_and_notes_fuller_maps() {
        let md = section(&result());
        for s in [
            "## Cost against the number of endpoints",
            "to 1, 100, 10,000 entries in total",
            "peer mode, udp_rr + udp_pps for 2 s each",
            "client and server on CPU 0",
            "100 calls of 250 runs",
            "The section took 23 s.",
            "Maps that held more than asked: @1: node-a 2 (its real ones), node-b 2 (its real ones).",
            "`scale.svg`",
        ] {
            assert!(md.contains(s), "no {s:?} in\n{md}");
        }
        assert!(!md.contains("@100:"), "{md}");
    }

    #[test]
    fn the_plot_has_a_line_per_series_on_the_sizes_axis() {
        let svg = plot(&result());
        assert_eq!(svg.matches("<polyline").count(), 4);
        for label in [
            "from_nic, bpf_stats (live)",
            "from_pod, bpf_stats (live)",
            "from_nic v4 to a local pod",
            "from_pod v4 to a remote pod",
            "udp_rr + udp_pps · 70 → ",
            "prog-bench median · 30 → 32 ns",
            ">10,000</text>",
        ] {
            assert!(svg.contains(label), "no {label:?}");
        }
        let v = serde_json::to_value(result()).unwrap();
        assert_eq!(v["series"][0]["points"][0]["ns_per_packet"], 70.0);
        assert_eq!(v["bench"][2]["params"]["endpoints"]["asked"], 10_000);
        assert_eq!(v["prog_bench"]["params"]["runs"], 100);
        assert_eq!(v["params"]["endpoints"][2], 10_000);
    }
}
