//! The figures of one case at one map size: median, p10 and p90 of the
//! per-call averages the kernel reports.

use serde::Serialize;

/// Median and spread of per-call ns per packet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median_ns: f64,
    pub p10_ns: f64,
    pub p90_ns: f64,
}

impl Spread {
    /// Every figure to 0.1 ns (the kernel reports whole ns per call).
    pub fn rounded(self) -> Self {
        let r = |v: f64| (v * 10.0).round() / 10.0;
        Self {
            median_ns: r(self.median_ns),
            p10_ns: r(self.p10_ns),
            p90_ns: r(self.p90_ns),
        }
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted finite values, linear between
/// the two closest ranks (numpy's default); `None` if empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Median, p10 and p90 of `samples`, ignoring non-finite values; `None`
/// when nothing is left.
pub fn spread(samples: &[f64]) -> Option<Spread> {
    let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    Some(Spread {
        median_ns: quantile(&s, 0.5)?,
        p10_ns: quantile(&s, 0.1)?,
        p90_ns: quantile(&s, 0.9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_non_finite_give_nothing() {
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[f64::NAN, f64::INFINITY]), None);
    }

    #[test]
    fn one_sample_is_every_quantile() {
        let s = spread(&[42.0]).unwrap();
        assert_eq!((s.median_ns, s.p10_ns, s.p90_ns), (42.0, 42.0, 42.0));
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        // 11 values 0..=100 step 10: ranks fall exactly on values.
        let v: Vec<f64> = (0..=10).rev().map(|i| f64::from(i) * 10.0).collect();
        let s = spread(&v).unwrap();
        assert_eq!((s.median_ns, s.p10_ns, s.p90_ns), (50.0, 10.0, 90.0));
        // Even count: the median is the mean of the middle two.
        let s = spread(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median_ns, 2.5);
        assert!((s.p10_ns - 1.3).abs() < 1e-9, "{}", s.p10_ns);
        assert!((s.p90_ns - 3.7).abs() < 1e-9, "{}", s.p90_ns);
    }

    #[test]
    fn outliers_move_the_tails_not_the_median() {
        let mut v = vec![60.0; 95];
        v.extend([5000.0; 5]);
        let s = spread(&v).unwrap();
        assert_eq!((s.median_ns, s.p10_ns, s.p90_ns), (60.0, 60.0, 60.0));
        v.extend([f64::NAN; 3]);
        assert_eq!(spread(&v).unwrap().median_ns, 60.0);
    }

    #[test]
    fn rounded_keeps_a_tenth() {
        let s = Spread {
            median_ns: 129.0,
            p10_ns: 128.04,
            p90_ns: 134.10000000000002,
        }
        .rounded();
        assert_eq!((s.median_ns, s.p10_ns, s.p90_ns), (129.0, 128.0, 134.1));
    }

    #[test]
    fn quantile_clamps_q() {
        let v = [1.0, 2.0, 3.0];
        assert_eq!(quantile(&v, -1.0), Some(1.0));
        assert_eq!(quantile(&v, 2.0), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
