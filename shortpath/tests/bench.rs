//! Smoke runs of `shortpath bench` and `shortpath report` over all modes
//! with short durations: every field present and sane. No assertion on
//! speed: speed lives in the report, not in tests.

mod common;

use common::{namespaces_of, ok, root_or_skip, shortpath, stdout, unique_name, TestLab};
use serde_json::Value;

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
    ] {
        assert!(md.contains(s), "report.md lacks {s:?}");
    }
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();
    check_summary(&v, &TESTS);
    assert!(out.join("udp_rr_latency_cdf.svg").exists());
    assert!(
        namespaces_of(&name).is_empty(),
        "report left its lab behind"
    );
}
