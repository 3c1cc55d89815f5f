//! Timing one case: a single checked run, then `runs` calls of `repeat`
//! runs each; afterwards the counters must show every run on the
//! expected path, or there is no figure.

use std::collections::BTreeMap;

use aya::programs::{TestRun, TestRunOptions, TestRunResult};

use super::{
    cases::{Case, TC_ACT_OK, TC_ACT_REDIRECT},
    objects::Subject,
    ProgBenchError,
};
use crate::dataplane::counters::ReasonCounts;

/// `struct __sk_buff` as BPF_PROG_TEST_RUN takes it: only the device the
/// frame arrives on set, as `ifindex` (byte 40) and as `ingress_ifindex`
/// (byte 36; the stack sets `skb_iif` before TC ingress runs, and the
/// programs count by it).
fn skb_ctx(ifindex: u32) -> [u8; 192] {
    let mut b = [0u8; 192];
    b[36..40].copy_from_slice(&ifindex.to_ne_bytes());
    b[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    b
}

fn call(
    s: &mut Subject,
    case: &Case,
    repeat: u32,
    out: Option<&mut [u8]>,
) -> Result<TestRunResult, ProgBenchError> {
    let program = s.program.name();
    let prog = s.classifier()?;
    let ctx = skb_ctx(case.ifindex);
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(&case.frame);
    opts.data_out = out;
    opts.ctx_in = Some(&ctx);
    opts.repeat = repeat;
    prog.test_run(opts).map_err(|e| ProgBenchError::TestRun {
        program,
        packet: case.packet.clone(),
        ifindex: case.ifindex,
        source: Box::new(e),
    })
}

/// `after − before`, without the reasons that did not move.
fn delta(before: &ReasonCounts, after: &ReasonCounts) -> ReasonCounts {
    after
        .iter()
        .map(|(r, n)| (*r, n - before.get(r).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn verdict_name(v: u32) -> String {
    match v {
        TC_ACT_OK => "TC_ACT_OK".into(),
        TC_ACT_REDIRECT => "TC_ACT_REDIRECT".into(),
        2 => "TC_ACT_SHOT".into(),
        u32::MAX => "TC_ACT_UNSPEC".into(),
        v => format!("verdict {v}"),
    }
}

fn describe(counts: &ReasonCounts) -> String {
    if counts.is_empty() {
        return "nothing counted".into();
    }
    let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
    format!("counted {}", parts.join(", "))
}

fn wrong(s: &Subject, case: &Case, got: String, want: String) -> ProgBenchError {
    ProgBenchError::WrongPath {
        program: s.program.name(),
        packet: case.packet.clone(),
        got,
        want,
    }
}

/// One run: the verdict, the one counted reason and the frame that comes
/// out must be the case's.
pub fn check(s: &mut Subject, case: &Case) -> Result<(), ProgBenchError> {
    let e = &case.expect;
    let before = s.counts(case.ifindex)?;
    let mut out = vec![0u8; case.frame.len() + 256];
    let r = call(s, case, 1, Some(&mut out))?;
    out.truncate(r.data_size_out as usize);
    let got = delta(&before, &s.counts(case.ifindex)?);
    let want = if s.counts_packets() {
        BTreeMap::from([(e.reason, 1)])
    } else {
        BTreeMap::new()
    };
    if r.return_value != e.verdict || got != want {
        return Err(wrong(
            s,
            case,
            format!("{}, {}", verdict_name(r.return_value), describe(&got)),
            format!("{}, {}", verdict_name(e.verdict), describe(&want)),
        ));
    }
    let f = &case.frame;
    let at = case.ttl_at;
    let (frame_ok, what) = if e.decrements {
        (
            out.len() == f.len() && out[at] == f[at] - 1,
            "the frame with its TTL / hop limit − 1",
        )
    } else {
        (out == *f, "the frame unchanged")
    };
    if !frame_ok {
        return Err(wrong(s, case, "another frame".into(), what.into()));
    }
    Ok(())
}

/// `runs` calls of `repeat` runs: the kernel's average ns per run of each
/// call. Every call must end with the case's verdict and every run must
/// have counted the case's reason.
pub fn time(
    s: &mut Subject,
    case: &Case,
    runs: usize,
    repeat: u32,
) -> Result<Vec<f64>, ProgBenchError> {
    let e = &case.expect;
    let before = s.counts(case.ifindex)?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let r = call(s, case, repeat, None)?;
        if r.return_value != e.verdict {
            return Err(wrong(
                s,
                case,
                format!(
                    "{} after {repeat} repetitions",
                    verdict_name(r.return_value)
                ),
                verdict_name(e.verdict),
            ));
        }
        samples.push(r.duration.as_nanos() as f64);
    }
    let got = delta(&before, &s.counts(case.ifindex)?);
    let want = if s.counts_packets() {
        BTreeMap::from([(e.reason, runs as u64 * u64::from(repeat))])
    } else {
        BTreeMap::new()
    };
    if got != want {
        return Err(wrong(
            s,
            case,
            format!("over {runs} × {repeat} runs, {}", describe(&got)),
            describe(&want),
        ));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_keeps_only_what_moved() {
        let before = BTreeMap::from([("redirect", 5), ("pass_ttl_expired", 2)]);
        let after = BTreeMap::from([("redirect", 9), ("pass_ttl_expired", 2), ("pass_mtu", 1)]);
        assert_eq!(
            delta(&before, &after),
            BTreeMap::from([("redirect", 4), ("pass_mtu", 1)])
        );
        assert_eq!(describe(&BTreeMap::new()), "nothing counted");
        assert_eq!(
            describe(&BTreeMap::from([("redirect", 250)])),
            "counted redirect ×250"
        );
    }

    #[test]
    fn ctx_sets_only_the_receiving_device() {
        let c = skb_ctx(0x0102_0304);
        for at in [36, 40] {
            assert_eq!(
                u32::from_ne_bytes(c[at..at + 4].try_into().unwrap()),
                0x0102_0304
            );
        }
        assert_eq!(c.iter().filter(|b| **b != 0).count(), 8);
    }
}
