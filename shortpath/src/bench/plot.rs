//! Small, dependency-free SVG plots for the report: latency CDFs and bar
//! charts with the host floor drawn as a line.

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 360.0;
const L: f64 = 70.0; // left margin
const R: f64 = 150.0; // right margin (legend)
const T: f64 = 40.0;
const B: f64 = 50.0;

pub fn color(series: &str) -> &'static str {
    match series {
        "bridge" => "#7f7f7f",
        "redirect" => "#e69f00",
        "peer" => "#0072b2",
        "host" => "#009e73",
        _ => "#cc79a7",
    }
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        esc(title)
    )
}

/// A "nice" axis maximum ≥ `v`.
pub(super) fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * e)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * e)
}

fn axes(out: &mut String, xlabel: &str, ylabel: &str) {
    let (x0, y0, x1, y1) = (L, H - B, W - R, T);
    let _ = writeln!(
        out,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"black\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"black\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>",
        (x0 + x1) / 2.0,
        H - 12.0,
        esc(xlabel),
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(ylabel)
    );
}

/// One latency distribution of a CDF plot: (µs, cumulative fraction)
/// points and the percentiles that bound and mark it.
#[derive(Debug, Clone)]
pub struct CdfSeries<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
    /// Percentiles in µs: the axis starts at the smallest p1 and ends at
    /// the largest p99.9; p50 and p99 are marked.
    pub p1: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

/// The x axis of a CDF plot: logarithmic, from a round value at or below
/// the smallest p1 to one at or above the largest p99.9.
#[derive(Debug, Clone, PartialEq)]
pub struct LogAxis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
}

/// Round values for the ends of a log axis: 1, 1.5, 2, 3, 4, 5, 6, 8 × 10^k.
const LOG_STEPS: [f64; 8] = [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0];

fn round_values(lo: f64, hi: f64, steps: &[f64]) -> Vec<f64> {
    let (k0, k1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
    (k0..=k1)
        .flat_map(|k| steps.iter().map(move |m| m * 10f64.powi(k)))
        .collect()
}

impl LogAxis {
    /// The axis for latencies `lo..=hi` (µs, positive).
    pub fn new(lo: f64, hi: f64) -> Self {
        let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1.0 };
        let hi = if hi.is_finite() && hi > lo {
            hi
        } else {
            lo * 1.01
        };
        let eps = 1e-9;
        let ends = round_values(lo, hi, &LOG_STEPS);
        let a = ends
            .iter()
            .copied()
            .filter(|v| *v <= lo * (1.0 + eps))
            .fold(f64::NAN, f64::max);
        let b = ends
            .iter()
            .copied()
            .find(|v| *v >= hi * (1.0 - eps))
            .unwrap_or(hi);
        let a = if a.is_nan() { lo } else { a };
        // Labelled ticks: 1-2-5 per decade, more when the range is short,
        // fewer when it is long.
        let sets: [&[f64]; 4] = [
            &[1.0, 2.0, 5.0],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0],
            &[1.0, 3.0],
            &[1.0],
        ];
        let candidates: Vec<Vec<f64>> = sets
            .iter()
            .map(|steps| {
                round_values(a, b, steps)
                    .into_iter()
                    .filter(|v| *v >= a * (1.0 - eps) && *v <= b * (1.0 + eps))
                    .collect()
            })
            .collect();
        let ticks = candidates
            .iter()
            .find(|t| (4..=8).contains(&t.len()))
            .or_else(|| {
                candidates
                    .iter()
                    .filter(|t| t.len() <= 8)
                    .max_by_key(|t| t.len())
            })
            .filter(|t| t.len() >= 2)
            .cloned()
            .unwrap_or_else(|| vec![a, b]);
        let mut axis = Self {
            lo: a,
            hi: b,
            ticks,
        };
        // The ends are labelled too, where they do not crowd a tick.
        for end in [a, b] {
            if axis
                .ticks
                .iter()
                .all(|t| (axis.frac(*t) - axis.frac(end)).abs() > 0.08)
            {
                axis.ticks.push(end);
            }
        }
        axis.ticks.sort_by(f64::total_cmp);
        axis
    }

    /// Where `x` falls, 0 at `lo` to 1 at `hi`.
    pub fn frac(&self, x: f64) -> f64 {
        (x.max(f64::MIN_POSITIVE).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
    }
}

/// A tick label: whole numbers plain, others with what decimals they need.
fn tick_label(v: f64) -> String {
    if v >= 1e4 {
        super::human(v)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').to_owned()
    }
}

/// The part of a polyline with increasing x that lies within `x0..=x1`,
/// cut where it crosses the bounds.
fn clip_x(pts: &[(f64, f64)], x0: f64, x1: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let at =
        |a: (f64, f64), b: (f64, f64), x: f64| (x, a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0));
    for (i, &p) in pts.iter().enumerate() {
        if (x0..=x1).contains(&p.0) {
            out.push(p);
        }
        if let Some(&q) = pts.get(i + 1) {
            for xb in [x0, x1] {
                if (p.0 - xb) * (q.0 - xb) < 0.0 {
                    out.push(at(p, q, xb));
                }
            }
        }
    }
    out
}

/// Latency CDF: one line per series on a log latency axis that ends at
/// the largest p99.9 (the slowest transactions would otherwise squeeze
/// every mode into the left of the plot), p50 and p99 marked and labelled
/// on each line and in the legend.
pub fn cdf(title: &str, series: &[CdfSeries]) -> String {
    let mut out = header(title);
    let lo = series.iter().map(|s| s.p1).fold(f64::INFINITY, f64::min);
    let cut = series.iter().map(|s| s.p999).fold(0.0, f64::max);
    let axis = LogAxis::new(lo, cut);
    let xlabel = format!(
        "latency, µs (log scale from p1, cut at the largest p99.9: {} µs) · ● p50 ○ p99",
        tick_label((cut * 10.0).round() / 10.0)
    );
    axes(&mut out, &xlabel, "fraction of transactions");
    let sx = |x: f64| L + axis.frac(x) * (W - R - L);
    let sy = |q: f64| (H - B) - q * (H - B - T);
    for i in 0..=5 {
        let q = i as f64 / 5.0;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{q:.1}</text>\
             <line x1=\"{L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            L - 6.0,
            sy(q) + 4.0,
            sy(q),
            W - R,
            sy(q)
        );
    }
    for &x in &axis.ticks {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
             <line x1=\"{:.1}\" y1=\"{T}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#eee\"/>",
            sx(x),
            H - B + 16.0,
            tick_label(x),
            sx(x),
            sx(x),
            H - B
        );
    }
    for (i, s) in series.iter().enumerate() {
        let screen: Vec<(f64, f64)> = s.points.iter().map(|(x, q)| (sx(*x), sy(*q))).collect();
        let path: Vec<String> = clip_x(&screen, L, W - R)
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let c = color(s.name);
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        // Labels below and right of their marker, stepped down per series
        // so that close percentiles of different modes stay readable.
        let dy = 13.0 + 11.0 * i as f64;
        for (class, q, v, fill) in [("p50", 0.5, s.p50, c), ("p99", 0.99, s.p99, "white")] {
            let (x, y) = (sx(v), sy(q));
            let _ = writeln!(
                out,
                "<circle class=\"{class}\" data-series=\"{}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{fill}\" stroke=\"{c}\" stroke-width=\"2\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{c}\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">{class} {:.1}</text>",
                esc(s.name),
                x + 5.0,
                y + dy,
                v
            );
        }
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}

/// The legend of a CDF: each series with its p50 and p99.
fn legend(out: &mut String, series: &[CdfSeries]) {
    for (i, s) in series.iter().enumerate() {
        let y = T + 10.0 + i as f64 * 30.0;
        let x = W - R + 15.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#555\">p50 {:.1} · p99 {:.1} µs</text>",
            y - 4.0,
            color(s.name),
            x + 20.0,
            y + 2.0,
            esc(s.name),
            x + 20.0,
            y + 14.0,
            s.p50,
            s.p99
        );
    }
}

/// One bar per series (median, with a min–max whisker); `floor` draws the
/// host figure as a dashed line across.
pub fn bars(title: &str, unit: &str, bars: &[(&str, f64, f64, f64)], floor: Option<f64>) -> String {
    let mut out = header(title);
    axes(&mut out, "mode", unit);
    let top = bars.iter().map(|b| b.3).chain(floor).fold(0.0, f64::max);
    let ymax = nice_max(top);
    let sy = |v: f64| (H - B) - (v / ymax) * (H - B - T);
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><line x1=\"{L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            L - 6.0,
            sy(v) + 4.0,
            super::human(v),
            sy(v),
            W - R,
            sy(v)
        );
    }
    let n = bars.len().max(1) as f64;
    let slot = (W - R - L) / n;
    for (i, (name, v, lo, hi)) in bars.iter().enumerate() {
        let x = L + slot * i as f64 + slot * 0.2;
        let w = slot * 0.6;
        let cx = x + w / 2.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"/>\
             <line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\
             <text x=\"{cx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
            sy(*v),
            (H - B) - sy(*v),
            color(name),
            sy(*hi),
            sy(*lo),
            H - B + 16.0,
            esc(name),
            sy(*hi) - 5.0,
            super::human(*v)
        );
    }
    if let Some(f) = floor {
        let _ = writeln!(
            out,
            "<line x1=\"{L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"{}\" stroke-dasharray=\"6 4\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{:.1}\" fill=\"{}\">host floor</text>",
            sy(f),
            W - R,
            sy(f),
            color("host"),
            W - R + 15.0,
            sy(f) + 4.0,
            color("host")
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series with points at min, p1, p50, p99, p99.9 (µs).
    fn series(name: &str, [min, p1, p50, p99, p999]: [f64; 5]) -> CdfSeries<'_> {
        CdfSeries {
            name,
            points: vec![
                (min, 0.0),
                (p1, 0.01),
                (p50, 0.5),
                (p99, 0.99),
                (p999, 0.999),
            ],
            p1,
            p50,
            p99,
            p999,
        }
    }

    /// The x of every point of every polyline.
    fn polyline_xs(svg: &str) -> Vec<f64> {
        svg.split("points=\"")
            .skip(1)
            .flat_map(|s| s.split('"').next().unwrap().split(' '))
            .filter(|p| !p.is_empty())
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn cdf_axis_ends_near_the_largest_p999_despite_a_1ms_outlier() {
        // The article's udp_rr: bodies at 4-8 µs, tails to 30-40 µs, and
        // one bridge transaction of 1 ms beyond its p99.9.
        let mut bridge = series("bridge", [6.0, 6.8, 7.3, 15.3, 41.6]);
        bridge.points.push((1000.0, 1.0));
        let all = [
            bridge,
            series("redirect", [4.2, 4.5, 4.9, 11.3, 34.3]),
            series("peer", [3.9, 4.1, 4.5, 11.0, 33.1]),
            series("host", [4.0, 4.2, 4.6, 9.9, 31.4]),
        ];
        let axis = LogAxis::new(4.1, 41.6);
        assert_eq!((axis.lo, axis.hi), (4.0, 50.0));
        assert!(
            axis.ticks.len() >= 4 && axis.ticks.contains(&10.0),
            "{axis:?}"
        );
        assert!(axis.ticks.iter().all(|t| (axis.lo..=axis.hi).contains(t)));
        let svg = cdf("udp_rr", &all);
        assert!(svg.contains("cut at the largest p99.9: 41.6 µs"), "{svg}");
        assert!(
            svg.contains(">50</text>") && !svg.contains(">1000<"),
            "{svg}"
        );
        // Nothing is drawn beyond the axis: the outlier's segment is cut
        // at the right edge, the minimum's at the left.
        let xs = polyline_xs(&svg);
        assert!(
            xs.iter().all(|x| (L - 0.05..=W - R + 0.05).contains(x)),
            "{xs:?}"
        );
        assert!(xs.iter().any(|x| (x - (W - R)).abs() < 0.05));
        // p50 of peer and bridge (4.5 vs 7.3 µs) are far apart on the plot.
        let gap = (axis.frac(7.3) - axis.frac(4.5)) * (W - R - L);
        assert!(gap > 60.0, "{gap} px");
        // Every curve has its p50 and p99 marked and labelled.
        for s in &all {
            for class in ["p50", "p99"] {
                let marker = format!("class=\"{class}\" data-series=\"{}\"", s.name);
                assert_eq!(svg.matches(&marker).count(), 1, "{marker}");
            }
            assert!(svg.contains(&format!("p50 {:.1}", s.p50)));
            assert!(svg.contains(&format!("p99 {:.1} µs", s.p99)));
        }
    }

    #[test]
    fn log_axes_end_at_round_values_just_outside_the_data() {
        for (lo, hi) in [
            (4.1, 41.6),
            (20.3, 333.8),
            (1.0, 10.0),
            (0.37, 2.2),
            (10.1, 10.2),
            (4.1, 2087.9),
        ] {
            let a = LogAxis::new(lo, hi);
            assert!(a.lo <= lo && a.hi >= hi, "{lo}..{hi}: {a:?}");
            // Never more than the next round value (steps ≤ 1.5×) out.
            assert!(a.hi <= hi * 1.5 && a.lo >= lo / 1.5, "{lo}..{hi}: {a:?}");
            // Enough labels to read a value off, not so many they touch.
            let least = if a.hi / a.lo >= 3.0 { 4 } else { 2 };
            assert!((least..=10).contains(&a.ticks.len()), "{a:?}");
            assert!(a.ticks.contains(&a.hi), "the cut is labelled: {a:?}");
        }
        assert_eq!(LogAxis::new(20.3, 333.8).hi, 400.0);
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(50.0), "50");
        let a = LogAxis::new(0.0, f64::NAN);
        assert!(a.lo > 0.0 && a.hi > a.lo);
    }

    #[test]
    fn svgs_are_well_formed_and_carry_their_series() {
        let c = cdf(
            "udp_rr",
            &[
                series("bridge", [10.0, 11.0, 20.0, 38.0, 40.0]),
                series("peer", [5.0, 5.5, 7.0, 8.5, 9.0]),
            ],
        );
        assert!(c.starts_with("<svg") && c.trim_end().ends_with("</svg>"));
        assert_eq!(c.matches("<polyline").count(), 2);
        assert!(c.contains(color("peer")));
        let b = bars(
            "tcp_stream",
            "Gbit/s",
            &[("bridge", 10.0, 9.0, 11.0), ("peer", 20.0, 19.0, 21.0)],
            Some(25.0),
        );
        assert_eq!(b.matches("<rect x=").count(), 2);
        assert!(b.contains("host floor") && b.contains("stroke-dasharray"));
        assert!(!bars("x", "y", &[], None).contains("host floor"));
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(2.1), 2.5);
    }
}
