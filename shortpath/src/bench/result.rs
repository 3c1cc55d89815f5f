//! What a bench run produces; serialized as the `--json` file (schema in
//! docs/BENCH.md).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{stats, BenchMode, PathKind, Test};

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub kernel: String,
    pub cores: usize,
    pub cpu: String,
}

impl Machine {
    pub fn current() -> Self {
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_default();
        Self {
            kernel,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub lab: String,
    pub path: PathKind,
    pub family: &'static str,
    pub modes: Vec<BenchMode>,
    pub tests: Vec<Test>,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub rounds: usize,
    pub streams: usize,
    pub cpus: Option<(usize, usize)>,
}

/// One raw figure.
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    pub round: usize,
    pub mode: BenchMode,
    pub test: Test,
    pub value: f64,
    pub unit: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub latency: Option<stats::Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
}

/// Median over rounds with range and ratios.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub value: f64,
    pub min: f64,
    pub max: f64,
    pub unit: &'static str,
    pub vs_bridge: Option<f64>,
    pub vs_host: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub latency: Option<stats::Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub machine: Machine,
    pub params: Params,
    /// mode → test → summary.
    pub summary: BTreeMap<BenchMode, BTreeMap<Test, Summary>>,
    pub rounds: Vec<RoundResult>,
    /// Latency of every transaction per (mode, test), merged over rounds.
    #[serde(skip)]
    pub latency: BTreeMap<(BenchMode, Test), Histogram<u64>>,
}

impl BenchResult {
    /// Builds the summary from the raw rounds and merged histograms.
    pub fn summarize(
        machine: Machine,
        params: Params,
        rounds: Vec<RoundResult>,
        latency: BTreeMap<(BenchMode, Test), Histogram<u64>>,
    ) -> Self {
        let mut medians: BTreeMap<(BenchMode, Test), f64> = BTreeMap::new();
        let mut summary: BTreeMap<BenchMode, BTreeMap<Test, Summary>> = BTreeMap::new();
        for &mode in &params.modes {
            for &test in &params.tests {
                let of = |f: &dyn Fn(&RoundResult) -> Option<f64>| -> Vec<f64> {
                    rounds
                        .iter()
                        .filter(|r| r.mode == mode && r.test == test)
                        .filter_map(f)
                        .collect()
                };
                let values = of(&|r| Some(r.value));
                let Some(value) = stats::median(&values) else {
                    continue;
                };
                medians.insert((mode, test), value);
                let losses = of(&|r| r.loss_pct);
                summary.entry(mode).or_default().insert(
                    test,
                    Summary {
                        value,
                        min: stats::min(&values).unwrap_or(value),
                        max: stats::max(&values).unwrap_or(value),
                        unit: test.unit(),
                        vs_bridge: None,
                        vs_host: None,
                        latency: latency.get(&(mode, test)).and_then(stats::percentiles),
                        loss_pct: stats::median(&losses),
                    },
                );
            }
        }
        for (mode, tests) in &mut summary {
            for (test, s) in tests.iter_mut() {
                let base = |m| medians.get(&(m, *test)).copied();
                s.vs_bridge = base(BenchMode::Bridge).and_then(|b| stats::ratio(s.value, b));
                s.vs_host = base(BenchMode::Host).and_then(|h| stats::ratio(s.value, h));
                let _ = mode;
            }
        }
        Self {
            machine,
            params,
            summary,
            rounds,
            latency,
        }
    }

    pub fn get(&self, mode: BenchMode, test: Test) -> Option<&Summary> {
        self.summary.get(&mode)?.get(&test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(round: usize, mode: BenchMode, value: f64) -> RoundResult {
        RoundResult {
            round,
            mode,
            test: Test::TcpStream,
            value,
            unit: "gbit_s",
            latency: None,
            loss_pct: None,
        }
    }

    #[test]
    fn summary_has_medians_ranges_and_ratios_and_the_documented_schema() {
        let params = Params {
            lab: "t".into(),
            path: PathKind::Remote,
            family: "ipv4",
            modes: vec![BenchMode::Bridge, BenchMode::Peer, BenchMode::Host],
            tests: vec![Test::TcpStream, Test::UdpRr],
            duration_s: 1.0,
            warmup_s: 0.1,
            rounds: 3,
            streams: 1,
            cpus: None,
        };
        let mut rounds = Vec::new();
        for (i, (b, p, h)) in [(10.0, 20.0, 40.0), (12.0, 18.0, 44.0), (11.0, 30.0, 42.0)]
            .into_iter()
            .enumerate()
        {
            rounds.push(round(i, BenchMode::Bridge, b));
            rounds.push(round(i, BenchMode::Peer, p));
            rounds.push(round(i, BenchMode::Host, h));
        }
        let mut h = stats::latency_histogram();
        h.record(30_000).unwrap();
        let mut hists = BTreeMap::new();
        hists.insert((BenchMode::Peer, Test::UdpRr), h);
        rounds.push(RoundResult {
            round: 0,
            mode: BenchMode::Peer,
            test: Test::UdpRr,
            value: 33000.0,
            unit: "tps",
            latency: None,
            loss_pct: None,
        });
        let r = BenchResult::summarize(Machine::current(), params, rounds, hists);
        let peer = r.get(BenchMode::Peer, Test::TcpStream).unwrap();
        assert_eq!((peer.value, peer.min, peer.max), (20.0, 18.0, 30.0));
        assert_eq!(peer.vs_bridge, Some(20.0 / 11.0));
        assert_eq!(peer.vs_host, Some(20.0 / 42.0));
        let host = r.get(BenchMode::Host, Test::TcpStream).unwrap();
        assert_eq!(host.vs_host, Some(1.0));
        assert!(
            r.get(BenchMode::Bridge, Test::UdpRr).is_none(),
            "no rounds, no summary"
        );

        let v = serde_json::to_value(&r).unwrap();
        let s = &v["summary"]["peer"]["tcp_stream"];
        for k in ["value", "min", "max", "unit", "vs_bridge", "vs_host"] {
            assert!(!s[k].is_null(), "summary field {k} missing: {s}");
        }
        assert_eq!(s["unit"], "gbit_s");
        let rr = &v["summary"]["peer"]["udp_rr"];
        for k in ["p50_us", "p90_us", "p99_us", "p999_us"] {
            assert!(rr[k].as_f64().is_some(), "{k} missing: {rr}");
        }
        assert_eq!(rr["vs_bridge"], serde_json::Value::Null);
        assert_eq!(v["rounds"].as_array().unwrap().len(), 10);
        assert_eq!(v["rounds"][0]["mode"], "bridge");
        assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
        assert_eq!(v["params"]["rounds"], 3);
    }
}
