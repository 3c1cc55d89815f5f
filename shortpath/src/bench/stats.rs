//! Figures from raw samples: median and range over rounds, latency
//! percentiles from HDR histograms, ratios between modes.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::dataplane::ProgramRun;

/// Median of `v` (mean of the middle two for an even count); `None` if empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

pub fn min(v: &[f64]) -> Option<f64> {
    v.iter().copied().filter(|x| x.is_finite()).reduce(f64::min)
}

pub fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().filter(|x| x.is_finite()).reduce(f64::max)
}

/// `a / b`, or `None` when `b` is not a positive number.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// What the programs of one hook (`from_nic`, `from_pod`) cost over a
/// measurement, or summed over the rounds of a summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProgramCost {
    /// Kernel-counted run time of every run, ns.
    pub run_time_ns: u64,
    /// Program runs: one per packet through the hook.
    pub run_count: u64,
    /// `run_time_ns / run_count`; `None` when the programs did not run.
    pub ns_per_packet: Option<f64>,
}

impl ProgramCost {
    pub fn new(run_time_ns: u64, run_count: u64) -> Self {
        Self {
            run_time_ns,
            run_count,
            ns_per_packet: (run_count > 0).then(|| run_time_ns as f64 / run_count as f64),
        }
    }

    /// Both counts added: the cost per packet over all of them.
    pub fn plus(self, other: Self) -> Self {
        Self::new(
            self.run_time_ns.saturating_add(other.run_time_ns),
            self.run_count.saturating_add(other.run_count),
        )
    }
}

/// Hook name → cost.
pub type ProgramCosts = BTreeMap<&'static str, ProgramCost>;

/// The cost per hook between two snapshots of the lab's programs:
/// Σ Δrun_time / Σ Δrun_count over every program of the hook found in both
/// (by kernel id; a program loaded or unloaded between them counts not).
pub fn program_costs(before: &[ProgramRun], after: &[ProgramRun]) -> ProgramCosts {
    let mut out = ProgramCosts::new();
    for a in after {
        let Some(b) = before
            .iter()
            .find(|b| b.program_id == a.program_id && b.hook == a.hook)
        else {
            continue;
        };
        let d = ProgramCost::new(
            a.run_time_ns.saturating_sub(b.run_time_ns),
            a.run_count.saturating_sub(b.run_count),
        );
        let e = out.entry(a.hook).or_default();
        *e = e.plus(d);
    }
    out
}

/// Per-hook costs of several measurements added up: total run time over
/// total runs, so every packet weighs the same.
pub fn sum_costs<'a>(all: impl IntoIterator<Item = &'a ProgramCosts>) -> ProgramCosts {
    let mut out = ProgramCosts::new();
    for costs in all {
        for (hook, c) in costs {
            let e = out.entry(*hook).or_default();
            *e = e.plus(*c);
        }
    }
    out
}

/// A histogram of latencies in nanoseconds, 1 ns .. 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// Percentiles of a histogram recorded in nanoseconds; `None` if empty.
pub fn percentiles(h: &Histogram<u64>) -> Option<Percentiles> {
    if h.is_empty() {
        return None;
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Some(Percentiles {
        p50_us: us(0.50),
        p90_us: us(0.90),
        p99_us: us(0.99),
        p999_us: us(0.999),
    })
}

/// (latency µs, cumulative fraction) points for a CDF plot.
pub fn cdf(h: &Histogram<u64>, points: usize) -> Vec<(f64, f64)> {
    if h.is_empty() || points < 2 {
        return Vec::new();
    }
    (0..points)
        .map(|i| {
            // Denser towards the tail: q = 1 - 10^(-3 i / (n-1)) covers 0..99.9 %.
            let q = 1.0 - 10f64.powf(-3.0 * i as f64 / (points - 1) as f64);
            let q = q.max(0.0);
            (h.value_at_quantile(q) as f64 / 1000.0, q)
        })
        .collect()
}

/// The latency at quantile `q` of a histogram recorded in ns, in µs.
pub fn quantile_us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// A histogram as a CDF plot's series: its points up to p99.9 and the
/// percentiles the plot bounds its axis by and marks.
pub fn cdf_series<'a>(name: &'a str, h: &Histogram<u64>) -> super::plot::CdfSeries<'a> {
    super::plot::CdfSeries {
        name,
        points: cdf(h, 100),
        p1: quantile_us(h, 0.01),
        p50: quantile_us(h, 0.50),
        p99: quantile_us(h, 0.99),
        p999: quantile_us(h, 0.999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(min(&[3.0, 1.0, 2.0]), Some(1.0));
        assert_eq!(max(&[3.0, 1.0, 2.0]), Some(3.0));
    }

    #[test]
    fn ratio_guards_against_zero() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }

    fn prog(hook: &'static str, id: u32, t: u64, n: u64) -> ProgramRun {
        ProgramRun {
            hook,
            program_id: id,
            run_time_ns: t,
            run_count: n,
        }
    }

    #[test]
    fn program_costs_are_deltas_summed_per_hook() {
        // Two nodes: a from_nic each, a from_pod each; node-b's from_pod
        // is replaced (new id) between the snapshots.
        let before = [
            prog("from_nic", 1, 1_000, 10),
            prog("from_nic", 2, 5_000, 50),
            prog("from_pod", 3, 100, 1),
            prog("from_pod", 4, 700, 7),
        ];
        let after = [
            prog("from_nic", 1, 4_000, 110),
            prog("from_nic", 2, 9_000, 150),
            prog("from_pod", 3, 6_100, 101),
            prog("from_pod", 9, 999_999, 1),
        ];
        let c = program_costs(&before, &after);
        let nic = c["from_nic"];
        assert_eq!((nic.run_time_ns, nic.run_count), (7_000, 200));
        assert_eq!(nic.ns_per_packet, Some(35.0));
        let pod = c["from_pod"];
        assert_eq!((pod.run_time_ns, pod.run_count), (6_000, 100));
        assert_eq!(pod.ns_per_packet, Some(60.0));
        // Counting off: the counters do not move, no figure.
        let idle = program_costs(&before, &before);
        assert_eq!(idle["from_nic"].ns_per_packet, None);
        assert_eq!(idle["from_nic"].run_count, 0);
        assert!(program_costs(&[], &after).is_empty());

        // Over rounds: total time over total runs, not a mean of means.
        let r2 = program_costs(
            &[prog("from_nic", 5, 0, 0)],
            &[prog("from_nic", 5, 1_000, 100)],
        );
        let all = sum_costs([&c, &r2]);
        assert_eq!(all["from_nic"].ns_per_packet, Some(8_000.0 / 300.0));
        assert_eq!(all["from_pod"].ns_per_packet, Some(60.0));
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = latency_histogram();
        // 1..=1000 µs, one each.
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = percentiles(&h).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() / b < 0.01;
        assert!(close(p.p50_us, 500.0), "{p:?}");
        assert!(close(p.p90_us, 900.0), "{p:?}");
        assert!(close(p.p99_us, 990.0), "{p:?}");
        assert!(close(p.p999_us, 999.0), "{p:?}");
        assert!(p.p50_us <= p.p90_us && p.p90_us <= p.p99_us && p.p99_us <= p.p999_us);
        assert!(percentiles(&latency_histogram()).is_none());
    }

    #[test]
    fn cdf_is_monotonic_and_spans_the_tail() {
        let mut h = latency_histogram();
        for ns in [10_000u64, 20_000, 30_000, 40_000, 1_000_000] {
            h.record(ns).unwrap();
        }
        let c = cdf(&h, 20);
        assert_eq!(c.len(), 20);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!((c[0].1 - 0.0).abs() < 1e-9);
        assert!((c[19].1 - 0.999).abs() < 1e-9);
    }

    #[test]
    fn a_cdf_series_ends_at_p999_whatever_the_slowest_transaction() {
        let mut h = latency_histogram();
        for i in 0..10_000u64 {
            h.record(5_000 + i % 3_000).unwrap();
        }
        h.record(1_000_000).unwrap();
        let s = cdf_series("peer", &h);
        assert!(s.p1 < s.p50 && s.p50 < s.p99 && s.p99 <= s.p999, "{s:?}");
        assert!(s.p999 < 8.1, "p99.9 {} µs", s.p999);
        let last = s.points.last().unwrap().0;
        assert!(last <= s.p999 + 1e-9, "points run to {last} µs");
    }
}
