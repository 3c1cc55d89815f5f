//! The report's scale plot: ns per packet against the number of endpoints
//! in the map, on a logarithmic x axis (1, 100, 10,000), one line per
//! series, in the style of [`super::plot`].

use std::fmt::Write as _;

use super::plot::{esc, nice_max};

const W: f64 = 780.0;
const H: f64 = 380.0;
const L: f64 = 70.0; // left margin
const R: f64 = 290.0; // right margin (legend)
const T: f64 = 40.0;
const B: f64 = 50.0;

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    Solid,
    Dashed,
    Dotted,
}

impl Stroke {
    fn dasharray(self) -> &'static str {
        match self {
            Stroke::Solid => "",
            Stroke::Dashed => " stroke-dasharray=\"7 4\"",
            Stroke::Dotted => " stroke-dasharray=\"2 3\"",
        }
    }
}

/// One line: (endpoints, ns per packet) points, in any order.
#[derive(Debug, Clone)]
pub struct ScaleSeries {
    /// Legend label, first line.
    pub name: String,
    /// Legend label, second line (where the figures come from).
    pub source: String,
    pub color: &'static str,
    pub stroke: Stroke,
    pub points: Vec<(f64, f64)>,
}

/// A logarithmic axis from the power of ten at or below the smallest value
/// to the one at or above the largest, a labelled tick per decade.
#[derive(Debug, Clone, PartialEq)]
pub struct DecadeAxis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
}

impl DecadeAxis {
    pub fn new(min: f64, max: f64) -> Self {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        let min = if ok(min) { min } else { 1.0 };
        let max = if ok(max) && max >= min { max } else { min };
        let (k0, mut k1) = (
            min.log10().floor() as i32,
            (max.log10() - 1e-9).ceil() as i32,
        );
        if k1 <= k0 {
            k1 = k0 + 1;
        }
        Self {
            lo: 10f64.powi(k0),
            hi: 10f64.powi(k1),
            ticks: (k0..=k1).map(|k| 10f64.powi(k)).collect(),
        }
    }

    /// Where `x` falls, 0 at `lo` to 1 at `hi`.
    pub fn frac(&self, x: f64) -> f64 {
        (x.max(f64::MIN_POSITIVE).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
    }
}

/// A whole number with thousands separators: 10000 → "10,000".
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// ns per packet against endpoints in the map: a line and a marker per
/// point for every series; the legend gives each series' first and last
/// figure.
pub fn scale(title: &str, series: &[ScaleSeries]) -> String {
    let pts = || {
        series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|(x, y)| x.is_finite() && *x > 0.0 && y.is_finite())
    };
    let xmin = pts().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = pts().map(|p| p.0).fold(0.0, f64::max);
    let axis = DecadeAxis::new(xmin, xmax);
    let ymax = nice_max(pts().map(|p| p.1).fold(0.0, f64::max));
    let sx = |x: f64| L + axis.frac(x) * (W - R - L);
    let sy = |v: f64| (H - B) - (v.max(0.0) / ymax) * (H - B - T);

    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        (L + W - R) / 2.0,
        esc(title)
    );
    let (x0, y0, x1, y1) = (L, H - B, W - R, T);
    let _ = writeln!(
        out,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"black\"/>\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"black\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">endpoints in the map (log scale)</text>\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">ns per packet</text>",
        (x0 + x1) / 2.0,
        H - 12.0,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
    );
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let label = if ymax >= 5.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\
             <line x1=\"{L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            L - 6.0,
            sy(v) + 4.0,
            sy(v),
            W - R,
            sy(v)
        );
    }
    for &x in &axis.ticks {
        let _ = writeln!(
            out,
            "<text class=\"xtick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
             <line x1=\"{:.1}\" y1=\"{T}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#eee\"/>",
            sx(x),
            H - B + 16.0,
            thousands(x),
            sx(x),
            sx(x),
            H - B
        );
    }
    for s in series {
        let mut p: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && *x > 0.0 && y.is_finite())
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = p
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        let name = esc(&s.name);
        let _ = writeln!(
            out,
            "<polyline class=\"series\" data-series=\"{name}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>",
            s.color,
            s.stroke.dasharray(),
            path.join(" ")
        );
        let fill = if s.stroke == Stroke::Solid {
            s.color
        } else {
            "white"
        };
        for (x, y) in &p {
            let _ = writeln!(
                out,
                "<circle class=\"point\" data-series=\"{name}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{fill}\" stroke=\"{}\" stroke-width=\"2\"><title>{name}: {y:.1} ns at {} endpoints</title></circle>",
                sx(*x),
                sy(*y),
                s.color,
                thousands(*x)
            );
        }
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}

/// Each series: a sample of its line, its name, and where its figures come
/// from with the first and last of them.
fn legend(out: &mut String, series: &[ScaleSeries]) {
    for (i, s) in series.iter().enumerate() {
        let y = T + 8.0 + i as f64 * 32.0;
        let x = W - R + 12.0;
        let mut p: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let range = match (p.first(), p.last()) {
            (Some(a), Some(b)) if p.len() > 1 => format!(" · {:.0} → {:.0} ns", a.1, b.1),
            (Some(a), _) => format!(" · {:.0} ns", a.1),
            _ => " · no figure".to_owned(),
        };
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"{}/>\
             <text class=\"legend\" x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#555\">{}{}</text>",
            x + 22.0,
            s.color,
            s.stroke.dasharray(),
            x + 28.0,
            y + 4.0,
            esc(&s.name),
            x + 28.0,
            y + 17.0,
            esc(&s.source),
            range
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, stroke: Stroke, points: &[(f64, f64)]) -> ScaleSeries {
        ScaleSeries {
            name: name.to_owned(),
            source: "bpf_stats".to_owned(),
            color: "#0072b2",
            stroke,
            points: points.to_vec(),
        }
    }

    /// (x, y) of every point of every polyline, in pixels.
    fn polyline_points(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split("<polyline")
            .skip(1)
            .map(|s| {
                let pts = s
                    .split("points=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                pts.split(' ')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn decade_axes_cover_the_sizes() {
        let a = DecadeAxis::new(1.0, 10_000.0);
        assert_eq!((a.lo, a.hi), (1.0, 10_000.0));
        assert_eq!(a.ticks, [1.0, 10.0, 100.0, 1000.0, 10_000.0]);
        assert_eq!(a.frac(100.0), 0.5);
        let a = DecadeAxis::new(2000.0, 2000.0);
        assert_eq!((a.lo, a.hi), (1000.0, 10_000.0));
        let a = DecadeAxis::new(3.0, 16_384.0);
        assert_eq!((a.lo, a.hi), (1.0, 100_000.0));
        let a = DecadeAxis::new(f64::NAN, 0.0);
        assert!(a.lo > 0.0 && a.hi > a.lo, "{a:?}");
        assert_eq!(thousands(10_000.0), "10,000");
        assert_eq!(thousands(100.0), "100");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn every_point_is_inside_the_axes_with_one_polyline_per_series() {
        let all = [
            series(
                "from_nic",
                Stroke::Solid,
                &[(1.0, 95.0), (100.0, 97.0), (10_000.0, 99.0)],
            ),
            series(
                "from_pod",
                Stroke::Solid,
                &[(10_000.0, 251.0), (1.0, 240.0), (100.0, 245.0)],
            ),
            series(
                "from_nic v4 to a local pod",
                Stroke::Dashed,
                &[(1.0, 31.0), (100.0, 30.0), (10_000.0, 33.0)],
            ),
            series(
                "from_pod v4 to a remote pod",
                Stroke::Dotted,
                &[(1.0, 80.0), (100.0, f64::NAN), (10_000.0, 82.0)],
            ),
        ];
        let svg = scale("Cost against endpoints", &all);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let lines = polyline_points(&svg);
        assert_eq!(lines.len(), all.len(), "one polyline per series");
        assert_eq!(svg.matches("<polyline class=\"series\"").count(), all.len());
        for (line, s) in lines.iter().zip(&all) {
            let finite = s.points.iter().filter(|p| p.1.is_finite()).count();
            assert_eq!(line.len(), finite, "{}", s.name);
            for &(x, y) in line {
                assert!((L - 0.05..=W - R + 0.05).contains(&x), "{}: x {x}", s.name);
                assert!((T - 0.05..=H - B + 0.05).contains(&y), "{}: y {y}", s.name);
            }
            // Drawn from left to right whatever the order given.
            assert!(line.windows(2).all(|w| w[0].0 < w[1].0), "{}", s.name);
            let marker = format!("class=\"point\" data-series=\"{}\"", s.name);
            assert_eq!(svg.matches(&marker).count(), finite, "{marker}");
        }
        // 1 and 10,000 are the ends of the x axis, 251 ns is under the top.
        let xs: Vec<f64> = lines.iter().flatten().map(|p| p.0).collect();
        assert!(xs.iter().any(|x| (x - L).abs() < 0.05));
        assert!(xs.iter().any(|x| (x - (W - R)).abs() < 0.05));
        let top = lines
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min);
        assert!(top >= T, "{top}");
        assert!(
            svg.contains(">300</text>"),
            "y axis to a round 300 ns: {svg}"
        );
        // Labels: axes, decades, every series with its first and last figure.
        for label in [
            "endpoints in the map (log scale)",
            "ns per packet",
            ">1</text>",
            ">100</text>",
            ">10,000</text>",
            "bpf_stats · 95 → 99 ns",
            "240 → 251 ns",
            "stroke-dasharray=\"7 4\"",
            "stroke-dasharray=\"2 3\"",
        ] {
            assert!(svg.contains(label), "no {label:?} in {svg}");
        }
        for s in &all {
            assert!(
                svg.contains(&format!("class=\"legend\" x=\"{}\"", W - R + 40.0))
                    && svg.contains(&format!(">{}</text>", s.name)),
                "legend lacks {}",
                s.name
            );
        }
    }

    #[test]
    fn series_without_figures_still_get_a_legend_entry() {
        let svg = scale(
            "x",
            &[
                series("from_nic", Stroke::Solid, &[]),
                series("from_pod", Stroke::Solid, &[(100.0, 5.0)]),
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            svg.contains("no figure") && svg.contains(" · 5 ns"),
            "{svg}"
        );
    }
}
