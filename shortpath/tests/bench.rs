//! Smoke runs of `shortpath bench` and `shortpath report` over all modes
//! with short durations: every field present and sane. No assertion on
//! speed: speed lives in the report, not in tests.

mod common;

use std::{
    sync::RwLock,
    time::{Duration, Instant},
};

use common::{
    namespaces_of, ok, root_or_skip, shortpath, spawn_shortpath, stderr, stdout, unique_name,
    TestLab,
};
use serde_json::Value;
use shortpath::dataplane::synthetic;

/// Every bench sets the machine-wide `kernel.bpf_stats_enabled` for its
/// run: the test that checks the sysctl runs alone (write), the others
/// together (read).
static SYSCTL: RwLock<()> = RwLock::new(());

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

fn bpf_stats() -> String {
    std::fs::read_to_string(BPF_STATS)
        .unwrap()
        .trim()
        .to_owned()
}

/// `kernel.bpf_stats_enabled` set for a test, put back when dropped.
struct BpfStatsAt(String);

impl BpfStatsAt {
    fn set(v: &str) -> Self {
        let old = bpf_stats();
        std::fs::write(BPF_STATS, v).unwrap();
        Self(old)
    }
}

impl Drop for BpfStatsAt {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.0);
    }
}

const MODES: [&str; 4] = ["bridge", "redirect", "peer", "host"];
const TESTS: [&str; 5] = ["udp_rr", "tcp_rr", "tcp_crr", "tcp_stream", "udp_pps"];

fn check_summary(v: &Value, tests: &[&str]) {
    for mode in MODES {
        for test in tests {
            let s = &v["summary"][mode][test];
            for k in ["value", "min", "max", "unit", "vs_bridge", "vs_host"] {
                assert!(!s[k].is_null(), "summary.{mode}.{test}.{k} missing: {s}");
            }
            let value = s["value"].as_f64().unwrap();
            assert!(value > 0.0, "{mode} {test}: {value}");
            assert!(s["min"].as_f64().unwrap() <= value && value <= s["max"].as_f64().unwrap());
            let unit = s["unit"].as_str().unwrap();
            match *test {
                "tcp_stream" => assert_eq!(unit, "gbit_s"),
                "udp_pps" => {
                    assert_eq!(unit, "kpps");
                    let loss = s["loss_pct"].as_f64().expect("udp_pps reports loss");
                    assert!((0.0..=100.0).contains(&loss));
                }
                _ => {
                    assert_eq!(unit, "tps");
                    let (p50, p90, p99, p999) = (
                        s["p50_us"].as_f64().unwrap(),
                        s["p90_us"].as_f64().unwrap(),
                        s["p99_us"].as_f64().unwrap(),
                        s["p999_us"].as_f64().unwrap(),
                    );
                    assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99 && p99 <= p999, "{s}");
                }
            }
            if mode == "host" {
                assert_eq!(s["vs_host"].as_f64(), Some(1.0));
            }
            if mode == "bridge" {
                assert_eq!(s["vs_bridge"].as_f64(), Some(1.0));
            }
        }
    }
}

#[test]
fn bench_smoke_over_all_modes_builds_and_removes_its_lab() {
    root_or_skip!();
    let _together = SYSCTL.read().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("bs");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let plots = dir.path().join("plots");
    let o = ok(shortpath(&[
        "bench",
        "--name",
        &name,
        "--duration",
        "0.3",
        "--warmup",
        "0.05",
        "--rounds",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plots.to_str().unwrap(),
    ]));
    let table = stdout(&o);
    for h in ["BRIDGE", "REDIRECT", "PEER", "HOST", "×bridge", "×host"] {
        assert!(table.contains(h), "table lacks {h}:\n{table}");
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    check_summary(&v, &TESTS);
    assert_eq!(v["rounds"].as_array().unwrap().len(), 2 * 4 * 5);
    assert!(v["machine"]["kernel"].as_str().unwrap().len() > 1);
    assert_eq!(v["params"]["rounds"], 2);
    // Rounds interleave the modes.
    let order: Vec<&str> = v["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["test"] == "udp_rr")
        .map(|r| r["mode"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["bridge", "redirect", "peer", "host", "bridge", "redirect", "peer", "host"]
    );
    for f in ["udp_rr_latency_cdf.svg", "tcp_stream.svg", "udp_pps.svg"] {
        let svg = std::fs::read_to_string(plots.join(f)).unwrap();
        assert!(svg.starts_with("<svg"), "{f}");
    }
    assert!(namespaces_of(&name).is_empty(), "bench left its lab behind");
}

#[test]
fn bench_on_an_existing_lab_keeps_it_and_its_mode() {
    root_or_skip!();
    let _together = SYSCTL.read().unwrap_or_else(|e| e.into_inner());
    let lab = TestLab::up_with(
        "bl",
        Some("[[node]]\nname = \"node-a\"\npods = 2\n[[node]]\nname = \"node-b\"\npods = 1\n"),
        &["--mode", "redirect"],
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    ok(shortpath(&[
        "bench",
        "--name",
        &lab.name,
        "--path",
        "local",
        "--tests",
        "udp_rr,tcp_stream",
        "--duration",
        "0.2",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--cpu",
        "0,1",
        "--json",
        json.to_str().unwrap(),
    ]));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["params"]["path"], "local");
    check_summary(&v, &["udp_rr", "tcp_stream"]);
    let st = ok(shortpath(&["mode", "--name", &lab.name]));
    assert!(
        stdout(&st).starts_with("redirect"),
        "mode not restored: {}",
        stdout(&st)
    );
}

#[test]
fn report_writes_markdown_plots_and_json_and_cleans_up() {
    root_or_skip!();
    let _together = SYSCTL.read().unwrap_or_else(|e| e.into_inner());
    let name = unique_name("rp");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let o = ok(shortpath(&[
        "report",
        "--name",
        &name,
        "--out",
        out.to_str().unwrap(),
        "--duration",
        "0.2",
        "--rounds",
        "1",
        "--scale-endpoints",
        "1,1000",
        "--scale-duration",
        "0.3",
    ]));
    assert!(stdout(&o).contains("PEER"));
    assert!(stdout(&o).contains("@1,000 VS @1"), "{}", stdout(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for s in [
        "What each mode skips",
        "×bridge",
        "p50 latency",
        "tcp_stream.svg",
        "P99.9",
        "Program cost (bpf_stats)",
        "FROM_NIC NS/PKT",
        "## Cost against the number of endpoints",
        "| FIGURE | SOURCE | UNIT | @1 | @1,000 | @1,000 VS @1 |",
        "](scale.svg)",
        "scale.json",
    ] {
        assert!(md.contains(s), "report.md lacks {s:?}");
    }
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();
    check_summary(&v, &TESTS);
    assert!(md.contains("of the hand-written reference"), "{md}");
    assert!(
        md.contains("(the noop row), in ns/packet: udp_rr from_nic: redirect "),
        "{md}"
    );
    for mode in ["redirect", "peer", "reference", "noop"] {
        let ns = &v["summary"][mode]["udp_rr"]["programs"]["from_nic"]["ns_per_packet"];
        assert!(ns.as_f64().is_some_and(|n| n > 0.0), "{mode}: {ns}");
    }
    let cdf = std::fs::read_to_string(out.join("udp_rr_latency_cdf.svg")).unwrap();
    for mode in MODES {
        for mark in ["p50", "p99"] {
            let m = format!("class=\"{mark}\" data-series=\"{mode}\"");
            assert!(cdf.contains(&m), "CDF lacks {m}");
        }
    }
    assert!(cdf.contains("cut at the largest p99.9"));
    check_scale(&out);
    assert!(
        namespaces_of(&name).is_empty(),
        "report left its lab behind"
    );
}

/// The report's scale section at 1 and 1000 endpoints: a bench per size
/// with the maps at that size, prog-bench at both, the plotted lines.
#[track_caller]
fn check_scale(out: &std::path::Path) {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scale.json")).unwrap()).unwrap();
    assert_eq!(v["params"]["endpoints"], serde_json::json!([1, 1000]));
    let elapsed = v["elapsed_s"].as_f64().unwrap();
    assert!(elapsed > 0.0 && elapsed < 90.0, "{elapsed}");
    for (i, asked) in [1, 1000].into_iter().enumerate() {
        let b = &v["bench"][i];
        let e = &b["params"]["endpoints"];
        assert_eq!(e["asked"], asked, "{e}");
        for n in e["nodes"].as_array().unwrap() {
            let real = n["real"].as_u64().unwrap();
            assert_eq!(n["entries"].as_u64().unwrap(), real.max(asked), "{e}");
        }
        assert_eq!(e["nodes"].as_array().unwrap().len(), 2, "{e}");
        for test in ["udp_rr", "udp_pps"] {
            let s = &b["summary"]["peer"][test];
            assert!(s["value"].as_f64().unwrap() > 0.0, "{s}");
            for hook in ["from_nic", "from_pod"] {
                let ns = &s["programs"][hook]["ns_per_packet"];
                assert!(ns.as_f64().is_some_and(|n| n > 0.0), "{test} {hook}: {s}");
            }
        }
    }
    let sizes: Vec<u64> = v["prog_bench"]["cases"][0]["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["endpoints"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [1, 1000]);
    let series = v["series"].as_array().unwrap();
    for (program, source, packet) in [
        ("from_nic", "bpf_stats", Value::Null),
        ("from_pod", "bpf_stats", Value::Null),
        ("from_nic", "prog_bench", "v4 to a local pod".into()),
        ("from_pod", "prog_bench", "v4 to a remote pod".into()),
    ] {
        let s = series
            .iter()
            .find(|s| s["program"] == program && s["source"] == source && s["packet"] == packet)
            .unwrap_or_else(|| panic!("no series {program} {source} {packet}: {series:?}"));
        let points = s["points"].as_array().unwrap();
        assert_eq!(points.len(), 2, "{s}");
        assert!(
            points
                .iter()
                .all(|p| p["ns_per_packet"].as_f64().is_some_and(|n| n > 0.0)),
            "{s}"
        );
    }
    let svg = std::fs::read_to_string(out.join("scale.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), series.len());
    assert!(svg.contains(">1,000</text>") && svg.contains("from_nic, bpf_stats (live)"));
}

/// The bench of `args` on `lab`, peer mode, short: its JSON and output.
fn peer_bench(lab: &TestLab, extra: &[&str]) -> (Value, String, String) {
    short_bench(lab, "peer", extra)
}

/// A short bench of `modes` (udp_rr and udp_pps) on `lab`: its JSON and
/// output.
fn short_bench(lab: &TestLab, modes: &str, extra: &[&str]) -> (Value, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    let mut args = vec![
        "bench",
        "--name",
        &lab.name,
        "--modes",
        modes,
        "--tests",
        "udp_rr,udp_pps",
        "--duration",
        "0.5",
        "--warmup",
        "0.1",
        "--rounds",
        "2",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = ok(shortpath(&args));
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (v, stdout(&o), stderr(&o))
}

/// Every test has both hooks' cost, counted over the measurements.
#[track_caller]
fn check_program_cost(v: &Value) {
    for test in ["udp_rr", "udp_pps"] {
        let s = &v["summary"]["peer"][test];
        for hook in ["from_nic", "from_pod"] {
            let p = &s["programs"][hook];
            let ns = p["ns_per_packet"].as_f64();
            assert!(
                ns.is_some_and(|n| n > 1.0 && n < 100_000.0),
                "{test} {hook}: {p}"
            );
            // At least one program run per packet received over the
            // measured seconds (udp_rr: two per transaction per hook).
            let runs = p["run_count"].as_f64().unwrap();
            let least = s["min"].as_f64().unwrap() * if test == "udp_pps" { 1000.0 } else { 1.0 };
            assert!(
                runs >= least * 0.5 * 2.0 * 0.8,
                "{test} {hook}: {runs} runs, {s}"
            );
        }
        for r in v["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["test"] == test)
        {
            let ns = &r["programs"]["from_nic"]["ns_per_packet"];
            assert!(ns.as_f64().is_some_and(|n| n > 0.0), "round: {r}");
        }
    }
}

/// Runs the kernel counted so far, over the lab's attached programs.
fn counted_runs(lab: &TestLab) -> u64 {
    let o = ok(shortpath(&["lab", "status", "--name", &lab.name, "--json"]));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["dataplane"]["programs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["run"]["run_count"].as_u64())
        .sum()
}

/// Whether process `pid` holds a `BPF_ENABLE_STATS` descriptor.
fn holds_stats_fd(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten().any(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().contains("bpf-stats"))
            })
        })
        .unwrap_or(false)
}

#[test]
fn bench_counts_program_cost_with_bpf_stats_and_leaves_nothing_on() {
    root_or_skip!();
    let _alone = SYSCTL.write().unwrap_or_else(|e| e.into_inner());
    let lab = TestLab::up_with("bp", None, &["--mode", "peer"]);

    // Off before: counted through a BPF_ENABLE_STATS descriptor for the
    // run; the sysctl never changes.
    let _at = BpfStatsAt::set("0");
    let (v, out, err) = peer_bench(&lab, &[]);
    check_program_cost(&v);
    assert_eq!(bpf_stats(), "0", "sysctl changed");
    assert_eq!(
        v["bpf_stats"]["sysctl"], "descriptor_for_run",
        "{}",
        v["bpf_stats"]
    );
    assert!(
        err.contains("through a BPF_ENABLE_STATS descriptor")
            && err.contains("counting off (descriptor closed)"),
        "{err}"
    );
    assert!(
        out.contains("FROM_NIC NS/PKT") && out.contains("Program cost from bpf_stats"),
        "{out}"
    );
    // ... and nothing counts any more.
    let before = counted_runs(&lab);
    ok(shortpath(&["lab", "check", "--name", &lab.name]));
    assert_eq!(counted_runs(&lab), before, "still counting after the bench");

    // On before: left on.
    std::fs::write(BPF_STATS, "1").unwrap();
    let (v, _, err) = peer_bench(&lab, &[]);
    check_program_cost(&v);
    assert_eq!(bpf_stats(), "1");
    assert_eq!(v["bpf_stats"]["sysctl"], "already_on");
    assert!(err.contains("is 1 already"), "{err}");

    // --no-bpf-stats with it off: untouched, no figures, and the output
    // says why.
    std::fs::write(BPF_STATS, "0").unwrap();
    let (v, out, _) = peer_bench(&lab, &["--no-bpf-stats"]);
    assert_eq!(bpf_stats(), "0");
    assert_eq!(v["bpf_stats"]["sysctl"], "left_off");
    assert!(
        v["summary"]["peer"]["udp_rr"].get("programs").is_none(),
        "{v}"
    );
    assert!(out.contains("No program cost: --no-bpf-stats"), "{out}");

    // SIGKILL in the middle of the run: the kernel closes the descriptor
    // and counting ends with the process; nothing to put back.
    let mut child = spawn_shortpath(
        &[
            "bench",
            "--name",
            &lab.name,
            "--modes",
            "peer",
            "--tests",
            "udp_rr",
            "--duration",
            "2",
            "--rounds",
            "5",
        ],
        &[],
    );
    let start = Instant::now();
    while !holds_stats_fd(child.id()) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        holds_stats_fd(child.id()),
        "bench never took the descriptor"
    );
    std::thread::sleep(Duration::from_millis(700));
    let counting = counted_runs(&lab);
    std::thread::sleep(Duration::from_millis(300));
    assert!(counted_runs(&lab) > counting, "not counting during the run");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(bpf_stats(), "0");
    let before = counted_runs(&lab);
    ok(shortpath(&["lab", "check", "--name", &lab.name]));
    assert_eq!(
        counted_runs(&lab),
        before,
        "still counting after the bench was killed"
    );
}

/// Names of the BPF programs loaded in the kernel that start with `prefix`.
fn loaded_programs(prefix: &str) -> Vec<String> {
    let o = std::process::Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn bench_reference_and_noop_modes_time_their_programs_and_detach_them() {
    root_or_skip!();
    let _sysctl = SYSCTL.read().unwrap_or_else(|e| e.into_inner());
    let lab = TestLab::up_with("br", None, &["--mode", "peer"]);
    // Packets the dataplane's programs delivered into a pod, on every node.
    let delivered = || -> u64 {
        lab.status()["dataplane"]["programs"]
            .as_array()
            .expect("programs[]")
            .iter()
            .filter_map(|p| p["counters"]["redirect_peer"].as_u64())
            .sum()
    };
    let before = delivered();
    let (v, out, _) = short_bench(&lab, "peer,reference,noop", &[]);
    let after = delivered();
    assert!(out.contains("REFERENCE"), "{out}");
    // The no-op programs only measure: no throughput column of their own.
    assert!(!out.contains("NOOP"), "{out}");
    assert!(
        out.contains("Above what counting charges a program that does nothing"),
        "{out}"
    );
    let ns = |mode: &str, test: &str, hook: &str| {
        v["summary"][mode][test]["programs"][hook]["ns_per_packet"]
            .as_f64()
            .unwrap_or_else(|| panic!("{mode} {test} {hook}: {}", v["summary"][mode][test]))
    };
    for mode in ["peer", "reference", "noop"] {
        for test in ["udp_rr", "udp_pps"] {
            let s = &v["summary"][mode][test];
            for hook in ["from_nic", "from_pod"] {
                let p = &s["programs"][hook];
                assert!(ns(mode, test, hook) > 1.0, "{mode} {test} {hook}: {p}");
                // The pair's packets went through the programs of the row:
                // the reference's took them away from the dataplane's, the
                // no-op's saw each of them first.
                let runs = p["run_count"].as_f64().unwrap();
                let least =
                    s["min"].as_f64().unwrap() * if test == "udp_pps" { 1000.0 } else { 1.0 };
                assert!(runs >= least * 0.5 * 2.0 * 0.8, "{mode} {test} {hook}: {p}");
            }
        }
    }
    // Doing nothing costs well below the dataplane's work, measured the
    // same way in the same run (about half of it here; a row that read the
    // dataplane's counters would be level with them).
    for test in ["udp_rr", "udp_pps"] {
        for hook in ["from_nic", "from_pod"] {
            assert!(
                ns("noop", test, hook) < 0.8 * ns("peer", test, hook),
                "{test} {hook}: noop {} peer {}",
                ns("noop", test, hook),
                ns("peer", test, hook)
            );
        }
    }
    // The no-op programs hand every packet on (TC_ACT_UNSPEC): the
    // dataplane's from_nic delivered the pair's packets of the noop rows as
    // it did those of the peer rows (not the reference's, which it never
    // saw). Had the no-op ended the chain, only the peer rows would count.
    let runs = |mode: &str| -> f64 {
        ["udp_rr", "udp_pps"]
            .iter()
            .map(|t| {
                v["summary"][mode][t]["programs"]["from_nic"]["run_count"]
                    .as_f64()
                    .unwrap()
            })
            .sum()
    };
    let (peer, noop) = (runs("peer"), runs("noop"));
    assert!(
        (after - before) as f64 >= 0.9 * (peer + noop),
        "redirect_peer +{} for {peer} peer and {noop} noop runs of from_nic",
        after - before
    );
    // Nothing of the reference object is left, and the lab is as it was.
    assert_eq!(loaded_programs("ref_"), Vec::<String>::new());
    let status = stdout(&ok(shortpath(&["lab", "status", "--name", &lab.name])));
    assert!(status.contains("mode peer"), "{status}");
}

/// (node, real, synthetic) of every node's pinned endpoint map.
/// Ctrl-C to a running bench: it must stop with 130 (interrupted).
fn interrupt(child: std::process::Child) -> std::process::Output {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    o
}

fn endpoint_maps(lab: &TestLab) -> Vec<(String, usize, usize)> {
    let plan = lab.plan();
    let root = shortpath::lab::pin_root(&plan.name);
    plan.nodes
        .iter()
        .map(|n| {
            let map = synthetic::open_pinned(&root, &n.name)
                .expect("open the pinned endpoint map")
                .expect("a lab in peer mode has a pinned endpoint map");
            let c = synthetic::census(&map).expect("read the endpoint map");
            (n.name.to_string(), c.real, c.synthetic.len())
        })
        .collect()
}

/// Polls the maps until `child` exits; returns the most entries (real +
/// synthetic) each node's map held meanwhile, and the child's output.
fn watch_maps(lab: &TestLab, child: std::process::Child) -> (Vec<usize>, std::process::Output) {
    let mut most = vec![0; lab.plan().nodes.len()];
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        for (m, (_, real, synth)) in most.iter_mut().zip(endpoint_maps(lab)) {
            *m = (*m).max(real + synth);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (most, child.wait_with_output().unwrap())
}

/// `bench --endpoints 2000`: every node's map holds 2000 entries while the
/// bench measures (seen from outside and in the JSON) and only its real
/// ones afterwards — also after a Ctrl-C; a size above the map's is
/// refused before anything changes.
#[test]
fn bench_fills_the_endpoint_maps_for_the_run_and_empties_them_after() {
    root_or_skip!();
    let _together = SYSCTL.read().unwrap_or_else(|e| e.into_inner());
    let lab = TestLab::up_with("be", None, &["--mode", "peer"]);
    let before = endpoint_maps(&lab);
    assert!(
        before
            .iter()
            .all(|(_, real, synth)| *real >= 2 && *synth == 0),
        "{before:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    let bench = |secs: &str, rounds: &str, json: Option<&std::path::Path>| {
        let mut args = vec![
            "bench",
            "--name",
            &lab.name,
            "--modes",
            "peer",
            "--tests",
            "udp_rr",
            "--duration",
            secs,
            "--warmup",
            "0.1",
            "--rounds",
            rounds,
            "--endpoints",
            "2000",
        ];
        let path = json.map(|p| p.to_str().unwrap().to_owned());
        if let Some(p) = &path {
            args.extend(["--json", p]);
        }
        spawn_shortpath(&args, &[])
    };

    let (most, o) = watch_maps(&lab, bench("0.5", "2", Some(&json)));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        most,
        vec![2000; before.len()],
        "what the maps held during the run"
    );
    assert_eq!(
        endpoint_maps(&lab),
        before,
        "synthetic entries left after the run"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let e = &v["params"]["endpoints"];
    assert_eq!(e["asked"], 2000, "{e}");
    let nodes = e["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), before.len(), "{e}");
    for ((node, real, _), n) in before.iter().zip(nodes) {
        assert_eq!(n["node"], node.as_str(), "{e}");
        assert_eq!(n["entries"], 2000, "{e}");
        assert_eq!(n["real"], *real, "{e}");
        assert_eq!(n["synthetic"], 2000 - real, "{e}");
    }
    let synthetic: usize = before.iter().map(|(_, real, _)| 2000 - real).sum();
    assert_eq!(e["removed"], synthetic, "{e}");
    assert!(
        stdout(&o).contains("Endpoint maps: 2000 entries asked"),
        "{}",
        stdout(&o)
    );
    assert!(v["summary"]["peer"]["udp_rr"]["value"].as_f64().unwrap() > 0.0);

    // Ctrl-C while the maps are full: emptied too.
    let child = bench("2", "5", None);
    let start = Instant::now();
    while endpoint_maps(&lab).iter().any(|(_, r, s)| r + s != 2000) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the bench never filled the maps: {:?}",
            endpoint_maps(&lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let o = interrupt(child);
    assert_eq!(
        endpoint_maps(&lab),
        before,
        "an interrupted bench left synthetic entries: {}",
        stderr(&o)
    );

    // Something else changes a map during the run: the bench fails,
    // saying so, and the maps are emptied all the same.
    let child = bench("1", "3", None);
    let start = Instant::now();
    while endpoint_maps(&lab).iter().any(|(_, r, s)| r + s != 2000) {
        assert!(start.elapsed() < Duration::from_secs(20), "never filled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let plan = lab.plan();
    let root = shortpath::lab::pin_root(&plan.name);
    let mut map = synthetic::open_pinned(&root, &plan.nodes[0].name)
        .unwrap()
        .unwrap();
    let one = *synthetic::census(&map).unwrap().synthetic.last().unwrap();
    map.remove(&synthetic::key(one)).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("held 1999 entries after peer udp_rr, not the 2000"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        endpoint_maps(&lab),
        before,
        "a failed bench left synthetic entries: {}",
        stderr(&o)
    );

    // More than the map takes: refused, nothing changed.
    let o = shortpath(&["bench", "--name", &lab.name, "--endpoints", "16385"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--endpoints 16385"), "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 16384"), "{}", stderr(&o));
    assert_eq!(endpoint_maps(&lab), before);
}
