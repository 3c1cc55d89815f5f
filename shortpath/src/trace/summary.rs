//! Per mode and direction figures from assembled paths, the comparison
//! table and the JSON document of `shortpath trace`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::path::{Direction, PacketPath};
use crate::table::Table;

/// `summary.<mode>.<rx|tx>` of the JSON output.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DirectionSummary {
    /// Paths traced from start to end.
    pub packets: usize,
    /// Paths that started but neither ended nor were dropped (lost events,
    /// packets still in flight when tracing stopped).
    pub incomplete: usize,
    pub path_us_p50: Option<f64>,
    pub path_us_p99: Option<f64>,
    /// Distinct NET_RX softirq runs per packet.
    pub softirqs_per_packet: Option<f64>,
    /// `netif_rx` backlog enqueues per packet on the node's path.
    pub backlog_per_packet: Option<f64>,
    /// `fib_table_lookup` calls per packet (stack and `bpf_fib_lookup`).
    pub route_lookups_per_packet: Option<f64>,
    /// Of those, in the node's namespace (the rest are the pods' own).
    pub node_route_lookups_per_packet: Option<f64>,
    /// Backlog enqueues of the lab's veth wire before the receiving NIC
    /// (RX only; not part of the node's own path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire_backlog_per_packet: Option<f64>,
    /// Devices crossed, in order (the most common sequence).
    pub devices: Vec<String>,
    /// Share of complete paths that crossed exactly `devices`.
    pub devices_share: Option<f64>,
    /// Distinct `sk_buff` addresses per packet (1: the buffer survived
    /// every hop; packets are matched by header and probe tag anyway).
    pub skbs_per_packet: Option<f64>,
    /// Dropped packets by kernel drop reason.
    pub drops: BTreeMap<String, u64>,
    /// Dropped packets by "namespace/device" where they were freed.
    pub drops_at: BTreeMap<String, u64>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = v.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| sum / n as f64)
}

/// Summarizes the paths of one direction; `reason` names drop reasons;
/// figures that need a tracepoint in `missing` are left out (null).
pub fn summarize(
    paths: &[PacketPath],
    direction: Direction,
    reason: &dyn Fn(u32) -> String,
    missing: &[&str],
) -> DirectionSummary {
    let has = |tp: &str| !missing.contains(&tp);
    let mine: Vec<&PacketPath> = paths.iter().filter(|p| p.direction == direction).collect();
    let done: Vec<&PacketPath> = mine.iter().copied().filter(|p| p.complete()).collect();
    let mut times: Vec<f64> = done
        .iter()
        .filter_map(|p| p.path_ns)
        .map(|ns| ns as f64 / 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let mut sequences: HashMap<Vec<String>, usize> = HashMap::new();
    for p in &done {
        *sequences.entry(p.devices()).or_default() += 1;
    }
    let (devices, count) = sequences
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .unwrap_or_default();
    let mut drops = BTreeMap::new();
    let mut drops_at = BTreeMap::new();
    for p in &mine {
        if let Some(r) = p.drop_reason {
            *drops.entry(reason(r)).or_default() += 1;
        }
        if let Some(site) = p.drop_site() {
            *drops_at.entry(site).or_default() += 1;
        }
    }
    DirectionSummary {
        packets: done.len(),
        incomplete: mine
            .iter()
            .filter(|p| !p.complete() && p.drop_reason.is_none())
            .count(),
        path_us_p50: percentile(&times, 0.50),
        path_us_p99: percentile(&times, 0.99),
        softirqs_per_packet: (has("softirq_entry") && has("softirq_exit"))
            .then(|| mean(done.iter().map(|p| p.softirqs() as f64)))
            .flatten(),
        backlog_per_packet: has("netif_rx")
            .then(|| mean(done.iter().map(|p| p.backlog() as f64)))
            .flatten(),
        route_lookups_per_packet: has("fib_table_lookup")
            .then(|| mean(done.iter().map(|p| p.route_lookups() as f64)))
            .flatten(),
        node_route_lookups_per_packet: has("fib_table_lookup")
            .then(|| mean(done.iter().map(|p| p.node_route_lookups() as f64)))
            .flatten(),
        wire_backlog_per_packet: match direction {
            Direction::Rx if has("netif_rx") => mean(done.iter().map(|p| p.wire_backlog as f64)),
            _ => None,
        },
        devices_share: (!done.is_empty()).then(|| count as f64 / done.len() as f64),
        devices,
        skbs_per_packet: mean(done.iter().map(|p| p.skb_addresses() as f64)),
        drops,
        drops_at,
    }
}

/// The path closest to the median time (the `--path` listing).
pub fn representative(paths: &[PacketPath], direction: Direction) -> Option<&PacketPath> {
    let mut done: Vec<&PacketPath> = paths
        .iter()
        .filter(|p| p.direction == direction && p.complete())
        .collect();
    done.sort_by_key(|p| p.path_ns);
    done.get(done.len() / 2).copied()
}

/// Relative change of `v` against `base`, as "−45 %".
pub fn cut(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => {
            let pct = (v / b - 1.0) * 100.0;
            if pct.abs() < 0.5 {
                "±0 %".to_owned()
            } else if pct < 0.0 {
                format!("−{:.0} %", -pct)
            } else {
                format!("+{pct:.0} %")
            }
        }
        _ => "-".to_owned(),
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

/// One row per mode (in `order`) and direction, with the path time cut
/// against bridge.
pub fn table(
    summary: &BTreeMap<String, BTreeMap<Direction, DirectionSummary>>,
    order: &[String],
) -> Table {
    let mut t = Table::new([
        "mode",
        "dir",
        "packets",
        "path p50 µs",
        "p99 µs",
        "vs bridge",
        "softirqs/pkt",
        "backlog/pkt",
        "route lookups/pkt (node)",
        "devices",
        "drops",
    ]);
    for mode in order {
        let Some(dirs) = summary.get(mode) else {
            continue;
        };
        for (dir, s) in dirs {
            let base = summary
                .get("bridge")
                .and_then(|b| b.get(dir))
                .and_then(|b| b.path_us_p50);
            let drops: u64 = s.drops.values().sum();
            t.row([
                mode.clone(),
                dir.name().to_owned(),
                s.packets.to_string(),
                num(s.path_us_p50, 1),
                num(s.path_us_p99, 1),
                if mode == "bridge" {
                    "-".to_owned()
                } else {
                    cut(s.path_us_p50, base)
                },
                num(s.softirqs_per_packet, 2),
                num(s.backlog_per_packet, 2),
                format!(
                    "{} ({})",
                    num(s.route_lookups_per_packet, 2),
                    num(s.node_route_lookups_per_packet, 2)
                ),
                s.devices.join(" → "),
                drops.to_string(),
            ]);
        }
    }
    t
}

/// The hops of one path, as the article's listing.
pub fn listing(p: &PacketPath) -> Table {
    let mut t = Table::new(["t µs", "cpu", "softirq", "netns", "device", "tracepoint"]);
    let mut runs: Vec<u64> = Vec::new();
    for h in &p.hops {
        let run = if h.softirq == 0 {
            "-".to_owned()
        } else {
            let i = runs
                .iter()
                .position(|&r| r == h.softirq)
                .unwrap_or_else(|| {
                    runs.push(h.softirq);
                    runs.len() - 1
                });
            format!("#{}", i + 1)
        };
        t.row([
            format!("{:.2}", h.t_ns as f64 / 1000.0),
            h.cpu.to_string(),
            run,
            h.netns.clone(),
            h.device.clone().unwrap_or_default(),
            h.tracepoint.to_owned(),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn figures_of_missing_tracepoints_are_null_not_zero() {
        use crate::trace::path::{Hop, PacketPath};
        use shortpath_common::trace::EventKind;
        let hop = |kind: EventKind, softirq| Hop {
            t_ns: 0,
            tracepoint: kind.name(),
            kind,
            netns: "n".into(),
            device: Some("eth1".into()),
            cpu: 0,
            softirq,
            arg: 0,
            in_node: true,
            skb: 1,
        };
        let p = PacketPath {
            direction: Direction::Rx,
            tag: Some(1),
            hops: vec![hop(EventKind::Receive, 1), hop(EventKind::Backlog, 2)],
            path_ns: Some(2_000),
            drop_reason: None,
            wire_backlog: 1,
        };
        let name = |r: u32| r.to_string();
        let all = summarize(std::slice::from_ref(&p), Direction::Rx, &name, &[]);
        assert_eq!(all.backlog_per_packet, Some(1.0));
        assert_eq!(all.softirqs_per_packet, Some(2.0));
        assert_eq!(all.route_lookups_per_packet, Some(0.0));
        assert_eq!(all.path_us_p50, Some(2.0));
        let some = summarize(
            &[p],
            Direction::Rx,
            &name,
            &["netif_rx", "fib_table_lookup"],
        );
        assert_eq!(some.backlog_per_packet, None);
        assert_eq!(some.wire_backlog_per_packet, None);
        assert_eq!(some.route_lookups_per_packet, None);
        assert_eq!(some.softirqs_per_packet, Some(2.0));
        assert_eq!(some.packets, 1);
    }

    #[test]
    fn cuts_read_like_the_article() {
        assert_eq!(cut(Some(55.0), Some(100.0)), "−45 %");
        assert_eq!(cut(Some(120.0), Some(100.0)), "+20 %");
        assert_eq!(cut(Some(100.2), Some(100.0)), "±0 %");
        assert_eq!(cut(None, Some(1.0)), "-");
    }
}
