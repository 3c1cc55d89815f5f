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

fn esc(s: &str) -> String {
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
fn nice_max(v: f64) -> f64 {
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

fn legend(out: &mut String, names: &[&str]) {
    for (i, n) in names.iter().enumerate() {
        let y = T + 10.0 + i as f64 * 20.0;
        let x = W - R + 15.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            y - 4.0,
            color(n),
            x + 20.0,
            y + 2.0,
            esc(n)
        );
    }
}

/// Latency CDF: one line per series of (µs, cumulative fraction) points.
pub fn cdf(title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> String {
    let mut out = header(title);
    axes(&mut out, "latency (µs)", "fraction of transactions");
    let xmax = nice_max(
        series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
            .fold(0.0, f64::max),
    );
    let sx = |x: f64| L + (x / xmax) * (W - R - L);
    let sy = |q: f64| (H - B) - q * (H - B - T);
    for i in 0..=5 {
        let x = xmax * i as f64 / 5.0;
        let q = i as f64 / 5.0;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{q:.1}</text>\
             <line x1=\"{L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            sx(x),
            H - B + 16.0,
            super::human(x),
            L - 6.0,
            sy(q) + 4.0,
            sy(q),
            W - R,
            sy(q)
        );
    }
    for (name, pts) in series {
        let path: Vec<String> = pts
            .iter()
            .map(|(x, q)| format!("{:.1},{:.1}", sx(*x), sy(*q)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            color(name),
            path.join(" ")
        );
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
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

    #[test]
    fn svgs_are_well_formed_and_carry_their_series() {
        let c = cdf(
            "udp_rr",
            &[
                ("bridge", vec![(10.0, 0.0), (20.0, 0.5), (40.0, 0.99)]),
                ("peer", vec![(5.0, 0.0), (9.0, 0.99)]),
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
