//! The terminal table of a prog-bench run, with the lines that say what
//! its figures are.

use std::fmt::Write as _;

use super::{CaseResult, ProgBenchResult, METHOD};
use crate::dataplane::reference::REFERENCE_PREFIX;
use crate::table::Table;

/// ns with one decimal only where the median has one (an even count of
/// whole-ns samples can end in .5).
fn ns(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// PROGRAM | PACKET | PATH (reason) | NS/PKT @size…, then notes.
pub fn table(r: &ProgBenchResult) -> String {
    let sizes = &r.params.endpoints;
    let mut headers = vec![
        "PROGRAM".to_owned(),
        "PACKET".into(),
        "PATH (reason)".into(),
    ];
    for (i, n) in sizes.iter().enumerate() {
        headers.push(if i == 0 {
            format!("NS/PKT @{n}")
        } else {
            format!("@{n}")
        });
    }
    let mut t = Table::new(headers);
    for c in &r.cases {
        let mut row = vec![c.program.to_owned(), c.packet.clone(), c.path.to_owned()];
        row.extend(c.sizes.iter().map(|s| ns(s.spread.median_ns)));
        t.row(row);
    }
    let mut out = t.to_string();
    let p = &r.params;
    let _ = writeln!(
        out,
        "\n{METHOD}.\nns per packet: median over {} calls of the kernel's average over {} runs (p10, p90 in --json); {} mode, lab {}, in {}'s namespace.",
        p.runs, p.repeat, p.mode, p.lab, p.node
    );
    if p.bpf_stats_enabled {
        let _ = writeln!(
            out,
            "kernel.bpf_stats_enabled was 1: these figures include the kernel's run-time accounting of every run (set it to 0 for the program alone)."
        );
    }
    // Sizes smaller than what the cases need.
    let mut bigger: Vec<String> = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let mut held: Vec<(&str, usize)> = r
            .cases
            .iter()
            .filter_map(|c| c.sizes.get(i).map(|s| (c.program, s.entries)))
            // 0: the hand-written reference, which uses no endpoint map.
            .filter(|(_, e)| e != n && *e != 0)
            .collect();
        held.dedup();
        if !held.is_empty() {
            let list: Vec<String> = held.iter().map(|(p, e)| format!("{p} {e}")).collect();
            bigger.push(format!("@{n}: {}", list.join(", ")));
        }
    }
    let ratios = reference_ratios(r);
    if !ratios.is_empty() {
        let _ = writeln!(
            out,
            "Against the hand-written reference (same frame, same run; median, @{}): {}.",
            sizes.first().copied().unwrap_or_default(),
            ratios.join(", ")
        );
    }
    if !bigger.is_empty() {
        let _ = writeln!(
            out,
            "Entries in the map where the cases need more than asked: {}.",
            bigger.join("; ")
        );
    }
    out
}

/// "from_nic v4 to a local pod 47 / 25 ns = 1.88×" for every reference
/// case and the shortpath case of the same program and packet, at the
/// first size.
fn reference_ratios(r: &ProgBenchResult) -> Vec<String> {
    let median = |c: &CaseResult| c.sizes.first().map(|s| s.spread.median_ns);
    r.cases
        .iter()
        .filter_map(|reference| {
            let program = reference.program.strip_prefix(REFERENCE_PREFIX)?;
            let ours = r
                .cases
                .iter()
                .find(|c| c.program == program && c.packet == reference.packet)?;
            let (a, b) = (median(ours)?, median(reference)?);
            (b > 0.0).then(|| {
                format!(
                    "{program} {} {} / {} ns = {:.2}×",
                    ours.packet,
                    ns(a),
                    ns(b),
                    a / b
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{
        prog::{CaseResult, Params, SizeResult, Spread},
        Machine,
    };

    fn result() -> ProgBenchResult {
        let size = |endpoints, entries, median_ns| SizeResult {
            endpoints,
            entries,
            spread: Spread {
                median_ns,
                p10_ns: median_ns - 1.0,
                p90_ns: median_ns + 1.0,
            },
            runs: 10,
            repeat: 250,
        };
        let case = |program, packet: &str, path, entries| CaseResult {
            program,
            packet: packet.into(),
            path,
            verdict: 7,
            frame_bytes: 74,
            sizes: vec![size(1, entries, 61.0), size(100, 100, 62.5)],
        };
        ProgBenchResult {
            machine: Machine {
                kernel: "6.18".into(),
                cores: 2,
                cpu: "x".into(),
            },
            params: Params {
                lab: "sp".into(),
                node: "node-a".into(),
                remote_node: "node-b".into(),
                mode: "peer",
                endpoints: vec![1, 100],
                runs: 10,
                repeat: 250,
                hops: 255,
                bpf_stats_enabled: false,
            },
            method: METHOD,
            cases: vec![
                case("from_nic", "v4 to a local pod", "redirect_peer", 2),
                case("from_nic", "v6 to a local pod", "redirect_peer", 2),
                case("from_pod", "v4 to a remote pod", "redirect", 3),
                CaseResult {
                    sizes: vec![size(1, 0, 30.5), size(100, 0, 30.0)],
                    ..case("ref_from_nic", "v4 to a local pod", "(hand-written)", 0)
                },
            ],
        }
    }

    #[test]
    fn rows_columns_and_notes() {
        let s = table(&result());
        let mut lines = s.lines();
        let head = lines.next().unwrap();
        for h in ["PROGRAM", "PACKET", "PATH (reason)", "NS/PKT @1", "@100"] {
            assert!(head.contains(h), "{head}");
        }
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("from_nic") && row.contains("redirect_peer"),
            "{row}"
        );
        assert!(row.contains(" 61 ") && row.ends_with("62.5"), "{row}");
        assert!(s.contains("BPF_PROG_TEST_RUN figures"), "{s}");
        assert!(s.contains("no bpf_stats overhead"), "{s}");
        assert!(s.contains("@1: from_nic 2, from_pod 3."), "{s}");
        assert!(
            s.contains("hand-written reference (same frame, same run; median, @1): from_nic v4 to a local pod 61 / 30.5 ns = 2.00×."),
            "{s}"
        );
        assert!(!s.contains("@100:"), "{s}");
        assert!(!s.contains("bpf_stats_enabled"), "{s}");
        let mut r = result();
        r.params.bpf_stats_enabled = true;
        assert!(table(&r).contains("kernel.bpf_stats_enabled was 1"));
    }

    #[test]
    fn ns_shows_halves_only() {
        assert_eq!(ns(61.0), "61");
        assert_eq!(ns(62.5), "62.5");
        assert_eq!(ns(0.04), "0");
    }
}
