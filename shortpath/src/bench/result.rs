//! What a bench run produces; serialized as the `--json` file (schema in
//! docs/BENCH.md).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{
    scale::EndpointsRun,
    stats::{self, ProgramCosts},
    BenchMode, PathKind, Test,
};

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
    /// `--endpoints`: the size asked and what each node's endpoint map
    /// held; `null` when the maps were left as they were.
    pub endpoints: Option<EndpointsRun>,
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
    /// Cost of the lab's programs per hook during this measurement (modes
    /// with programs, while the kernel counts run time).
    #[serde(skip_serializing_if = "ProgramCosts::is_empty")]
    pub programs: ProgramCosts,
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
    /// Cost of the programs per hook over all rounds: total run time over
    /// total runs.
    #[serde(skip_serializing_if = "ProgramCosts::is_empty")]
    pub programs: ProgramCosts,
}

/// What bench did with `kernel.bpf_stats_enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BpfStatsSetting {
    /// It was 0: counting on for the run through a `BPF_ENABLE_STATS`
    /// descriptor, the sysctl untouched; the kernel ends the counting when
    /// the descriptor closes (the bench's end, however it ends).
    DescriptorForRun,
    /// It was 0 and the kernel has no `BPF_ENABLE_STATS`: set to 1 for the
    /// measurements, then put back.
    SetForRun,
    /// It was 1 already: left alone.
    AlreadyOn,
    /// `--no-bpf-stats` and it was 0: left alone, no program figures.
    LeftOff,
    /// It could not be read or set (bench said why): no program figures.
    Unavailable,
    /// No mode of the run has programs (bridge, host): left alone.
    NotNeeded,
}

/// The JSON's `bpf_stats`: how the programs' cost was counted.
#[derive(Debug, Clone, Serialize)]
pub struct BpfStatsRun {
    pub sysctl: BpfStatsSetting,
    /// The kernel counted program run time during the measurements, so
    /// `programs` figures are there (and include bpf_stats' own cost).
    pub counted: bool,
    /// The value found before the run; `null` if it could not be read.
    pub previous: Option<String>,
    /// `set_for_run` only: the value found is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored: Option<bool>,
}

impl BpfStatsRun {
    pub fn new(sysctl: BpfStatsSetting, previous: Option<String>) -> Self {
        Self {
            sysctl,
            counted: matches!(
                sysctl,
                BpfStatsSetting::DescriptorForRun
                    | BpfStatsSetting::SetForRun
                    | BpfStatsSetting::AlreadyOn
            ),
            previous,
            restored: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub machine: Machine,
    pub params: Params,
    pub bpf_stats: BpfStatsRun,
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
        bpf_stats: BpfStatsRun,
        rounds: Vec<RoundResult>,
        latency: BTreeMap<(BenchMode, Test), Histogram<u64>>,
    ) -> Self {
        let mut medians: BTreeMap<(BenchMode, Test), f64> = BTreeMap::new();
        let mut summary: BTreeMap<BenchMode, BTreeMap<Test, Summary>> = BTreeMap::new();
        for &mode in &params.modes {
            for &test in &params.tests {
                let these = || {
                    rounds
                        .iter()
                        .filter(move |r| r.mode == mode && r.test == test)
                };
                let of = |f: &dyn Fn(&RoundResult) -> Option<f64>| -> Vec<f64> {
                    these().filter_map(f).collect()
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
                        programs: stats::sum_costs(these().map(|r| &r.programs)),
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
            bpf_stats,
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
            programs: ProgramCosts::new(),
        }
    }

    /// A run of `modes` × `tests` on lab "t", remote path, IPv4.
    fn params(modes: Vec<BenchMode>, tests: Vec<Test>, rounds: usize) -> Params {
        Params {
            lab: "t".into(),
            path: PathKind::Remote,
            family: "ipv4",
            modes,
            tests,
            duration_s: 1.0,
            warmup_s: 0.1,
            rounds,
            streams: 1,
            cpus: None,
            endpoints: None,
        }
    }

    /// A round of peer with its programs' deltas: from_nic `nic` ns over
    /// `n` runs, from_pod `pod` ns over `n` runs.
    fn with_programs(mut r: RoundResult, nic: u64, pod: u64, n: u64) -> RoundResult {
        use crate::dataplane::ProgramRun;
        let at = |hook, id, t, c| ProgramRun {
            hook,
            program_id: id,
            run_time_ns: t,
            run_count: c,
        };
        let before = [at("from_nic", 7, 500, 5), at("from_pod", 8, 0, 0)];
        let after = [
            at("from_nic", 7, 500 + nic, 5 + n),
            at("from_pod", 8, pod, n),
        ];
        r.programs = stats::program_costs(&before, &after);
        r
    }

    #[test]
    fn summary_has_medians_ranges_and_ratios_and_the_documented_schema() {
        let params = params(
            vec![BenchMode::Bridge, BenchMode::Peer, BenchMode::Host],
            vec![Test::TcpStream, Test::UdpRr],
            3,
        );
        let mut rounds = Vec::new();
        for (i, (b, p, h)) in [(10.0, 20.0, 40.0), (12.0, 18.0, 44.0), (11.0, 30.0, 42.0)]
            .into_iter()
            .enumerate()
        {
            rounds.push(round(i, BenchMode::Bridge, b));
            // 40, 30, 20 ns per packet on from_nic over 1000, 2000, 5000
            // packets; from_pod 100 ns each.
            let n = [1000, 2000, 5000][i];
            let nic = [40, 30, 20][i] * n;
            rounds.push(with_programs(round(i, BenchMode::Peer, p), nic, 100 * n, n));
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
            programs: ProgramCosts::new(),
        });
        let bpf = BpfStatsRun::new(BpfStatsSetting::SetForRun, Some("0".into()));
        let r = BenchResult::summarize(Machine::current(), params, bpf, rounds, hists);
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
        assert!(
            v["params"].get("endpoints").is_some_and(|e| e.is_null()),
            "params.endpoints is always there, null without --endpoints: {}",
            v["params"]
        );

        // Program cost: total time over total packets of all rounds
        // (40·1000 + 30·2000 + 20·5000) / 8000, not the median 30.
        let progs = &s["programs"];
        assert_eq!(progs["from_nic"]["ns_per_packet"], 200_000.0 / 8000.0);
        assert_eq!(progs["from_nic"]["run_count"], 8000);
        assert_eq!(progs["from_pod"]["ns_per_packet"], 100.0);
        assert_eq!(progs["from_pod"]["run_time_ns"], 800_000);
        let peer_round = v["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["mode"] == "peer" && r["round"] == 1)
            .unwrap();
        assert_eq!(peer_round["programs"]["from_nic"]["ns_per_packet"], 30.0);
        // Modes without programs have no `programs`.
        assert!(v["summary"]["bridge"]["tcp_stream"]
            .get("programs")
            .is_none());
        assert!(v["rounds"][0].get("programs").is_none());
        assert_eq!(v["bpf_stats"]["sysctl"], "set_for_run");
        assert_eq!(v["bpf_stats"]["counted"], true);
        assert_eq!(v["bpf_stats"]["previous"], "0");
    }

    #[test]
    fn the_noop_row_is_subtracted_and_left_out_of_the_path_tables() {
        let params = params(
            vec![BenchMode::Peer, BenchMode::Reference, BenchMode::Noop],
            vec![Test::TcpStream],
            1,
        );
        let n = 1000;
        let rounds = vec![
            with_programs(round(0, BenchMode::Peer, 20.0), 75 * n, 80 * n, n),
            with_programs(round(0, BenchMode::Reference, 21.0), 40 * n, 41 * n, n),
            with_programs(round(0, BenchMode::Noop, 19.0), 33 * n, 34 * n, n),
        ];
        let bpf = BpfStatsRun::new(BpfStatsSetting::SetForRun, Some("0".into()));
        let r = BenchResult::summarize(Machine::current(), params, bpf, rounds, BTreeMap::new());
        assert_eq!(
            super::super::above_noop_note(&r).unwrap(),
            "Above what counting charges a program that does nothing (the noop row), in ns/packet: \
             tcp_stream from_nic: peer 42, reference 7 (noop 33); \
             tcp_stream from_pod: peer 46, reference 7 (noop 34)."
        );
        let paths = super::super::summary_table(&r).to_string();
        assert!(
            paths.contains("REFERENCE") && !paths.contains("NOOP"),
            "{paths}"
        );
        let costs = super::super::program_table(&r).to_string();
        assert!(costs.contains("noop"), "{costs}");

        // Without noop rows there is nothing to subtract.
        let mut r = r;
        r.summary.remove(&BenchMode::Noop);
        assert_eq!(super::super::above_noop_note(&r), None);
    }
}
