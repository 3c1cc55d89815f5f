//! Figures from raw samples: median and range over rounds, latency
//! percentiles from HDR histograms, ratios between modes.

use hdrhistogram::Histogram;
use serde::Serialize;

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
}
