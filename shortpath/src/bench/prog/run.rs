//! The benchmark itself, on a thread inside the lab's first node: one
//! pair of fresh objects per map size, every case checked once on each,
//! then the calls in short rounds that go through every size and case in
//! turn, so that drift of the machine hits them all alike.

use super::{
    cases::Program, measure, objects::Subject, spread, CaseResult, Params, Prepared,
    ProgBenchConfig, ProgBenchError, ProgBenchResult, SizeResult, Topology, HOPS, METHOD,
};
use crate::{
    bench::Machine,
    dataplane::{Hook, Mode},
    netns::Netns,
};

/// Calls per case and size in one round.
const ROUND: usize = 10;

/// Makes the first node resolve the second node's NIC, both families: the
/// FIB lookup of a routed case then returns SUCCESS (`redirect`), not
/// NO_NEIGH.
fn resolve_neighbours(t: &Topology) -> Result<(), ProgBenchError> {
    let ns = Netns::new(&t.netns);
    for remote in [t.remote_nic.ipv4, t.remote_nic.ipv6].into_iter().flatten() {
        crate::probe::ping(&ns, remote, 56, std::time::Duration::from_secs(3)).map_err(|e| {
            ProgBenchError::Neighbour {
                lab: t.lab.clone(),
                netns: t.netns.clone(),
                remote_node: t.remote_node.clone(),
                remote,
                source: Box::new(e),
            }
        })?;
    }
    Ok(())
}

/// Whether `kernel.bpf_stats_enabled` is on (unreadable: off).
fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() != "0")
}

/// Both programs with their maps padded to one size.
struct AtSize {
    endpoints: usize,
    subjects: Vec<(Subject, usize)>,
}

impl AtSize {
    fn load(t: &Topology, cfg: &ProgBenchConfig, endpoints: usize) -> Result<Self, ProgBenchError> {
        let mut subjects = Vec::new();
        for hook in [Hook::FromNic, Hook::FromPod] {
            let mut s = Subject::load(t, hook, cfg.mode)?;
            let entries = s.fill(endpoints)?;
            subjects.push((s, entries));
            subjects.push((Subject::reference(t, hook)?, 0));
        }
        Ok(Self {
            endpoints,
            subjects,
        })
    }

    fn subject(&mut self, program: Program) -> (&mut Subject, usize) {
        let (s, n) = self
            .subjects
            .iter_mut()
            .find(|(s, _)| s.program == program)
            .expect("a subject per program");
        (s, *n)
    }
}

pub(super) fn run_here(
    p: &Prepared,
    cfg: &ProgBenchConfig,
) -> Result<ProgBenchResult, ProgBenchError> {
    let t = &p.topology;
    resolve_neighbours(t)?;
    let mut sizes = cfg
        .endpoints
        .iter()
        .map(|&n| AtSize::load(t, cfg, n))
        .collect::<Result<Vec<_>, _>>()?;
    for at in &mut sizes {
        for case in &p.cases {
            measure::check(at.subject(case.program).0, case)?;
        }
    }
    // samples[size][case]
    let mut samples = vec![vec![Vec::with_capacity(cfg.runs); p.cases.len()]; sizes.len()];
    let mut left = cfg.runs;
    while left > 0 {
        let n = left.min(ROUND);
        for (at, per_case) in sizes.iter_mut().zip(&mut samples) {
            for (case, out) in p.cases.iter().zip(per_case.iter_mut()) {
                out.extend(measure::time(
                    at.subject(case.program).0,
                    case,
                    n,
                    cfg.repeat,
                )?);
            }
        }
        left -= n;
    }
    let cases = p
        .cases
        .iter()
        .enumerate()
        .map(|(ci, c)| CaseResult {
            program: c.program.name(),
            packet: c.packet.clone(),
            path: c.expect.reason,
            verdict: c.expect.verdict,
            frame_bytes: c.frame.len(),
            sizes: sizes
                .iter_mut()
                .zip(&samples)
                .map(|(at, per_case)| SizeResult {
                    endpoints: at.endpoints,
                    entries: at.subject(c.program).1,
                    spread: spread(&per_case[ci]).expect("at least one run").rounded(),
                    runs: cfg.runs,
                    repeat: cfg.repeat,
                })
                .collect(),
        })
        .collect();
    Ok(ProgBenchResult {
        machine: Machine::current(),
        params: Params {
            lab: t.lab.clone(),
            node: t.node.clone(),
            remote_node: t.remote_node.clone(),
            mode: Mode::from(cfg.mode).as_str(),
            endpoints: cfg.endpoints.clone(),
            runs: cfg.runs,
            repeat: cfg.repeat,
            hops: HOPS,
            bpf_stats_enabled: bpf_stats_enabled(),
        },
        method: METHOD,
        cases,
    })
}
