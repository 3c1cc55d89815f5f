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
    ]));
    assert!(stdout(&o).contains("PEER"));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for s in [
        "What each mode skips",
        "×bridge",
        "p50 latency",
        "tcp_stream.svg",
        "P99.9",
        "Program cost (bpf_stats)",
        "FROM_NIC NS/PKT",
    ] {
        assert!(md.contains(s), "report.md lacks {s:?}");
    }
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();
    check_summary(&v, &TESTS);
    for mode in ["redirect", "peer"] {
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
    assert!(
        namespaces_of(&name).is_empty(),
        "report left its lab behind"
    );
}

/// The bench of `args` on `lab`, peer mode, short: its JSON and output.
fn peer_bench(lab: &TestLab, extra: &[&str]) -> (Value, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    let mut args = vec![
        "bench",
        "--name",
        &lab.name,
        "--modes",
        "peer",
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

#[test]
fn bench_counts_program_cost_with_bpf_stats_and_puts_the_sysctl_back() {
    root_or_skip!();
    let _alone = SYSCTL.write().unwrap_or_else(|e| e.into_inner());
    let lab = TestLab::up_with("bp", None, &["--mode", "peer"]);

    // Off before: on for the run, then back to 0.
    let _at = BpfStatsAt::set("0");
    let (v, out, err) = peer_bench(&lab, &[]);
    check_program_cost(&v);
    assert_eq!(bpf_stats(), "0", "sysctl not put back");
    assert_eq!(
        v["bpf_stats"]["sysctl"], "set_for_run",
        "{}",
        v["bpf_stats"]
    );
    assert_eq!(v["bpf_stats"]["restored"], true);
    assert!(
        err.contains("kernel.bpf_stats_enabled set to 1 for this run"),
        "{err}"
    );
    assert!(
        err.contains("kernel.bpf_stats_enabled put back to 0"),
        "{err}"
    );
    assert!(
        out.contains("FROM_NIC NS/PKT") && out.contains("Program cost from bpf_stats"),
        "{out}"
    );

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

    // Ctrl-C in the middle of the run: back to 0 too.
    let child = spawn_shortpath(
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
    while bpf_stats() != "1" && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(bpf_stats(), "1", "bench never set the sysctl");
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_eq!(
        bpf_stats(),
        "0",
        "interrupted bench left the sysctl on: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("put back to 0"), "{}", stderr(&o));
}
