//! BPF_PROG_TEST_RUN for the TC programs: crafted frames in, verdict and
//! rewritten bytes out; the counters compared case by case. Shared by the
//! dataplane's `from_nic` tests and the lab's `from_pod` tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use aya::programs::{TestRun, TestRunOptions};
use shortpath_dataplane::{Hook, TcObject};

use super::packet::{self, ETH_HLEN};

pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

/// `struct __sk_buff` as BPF_PROG_TEST_RUN takes it (192 bytes).
#[derive(Default, Clone, Copy)]
pub struct SkbCtx {
    pub ifindex: u32,
    pub gso_segs: u32,
    pub gso_size: u32,
}

impl SkbCtx {
    /// `ifindex` 0 leaves the device to the runner, which takes `lo`. The
    /// receiving device is also `ingress_ifindex` (`skb_iif`), as the
    /// stack sets it before TC ingress runs (the programs count by it).
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 192];
        let iif = if self.ifindex == 0 { 1 } else { self.ifindex };
        b[36..40].copy_from_slice(&iif.to_ne_bytes());
        b[40..44].copy_from_slice(&self.ifindex.to_ne_bytes());
        b[164..168].copy_from_slice(&self.gso_segs.to_ne_bytes());
        b[176..180].copy_from_slice(&self.gso_size.to_ne_bytes());
        b
    }
}

pub struct Run {
    pub verdict: u32,
    pub out: Vec<u8>,
}

pub fn run(obj: &mut TcObject, hook: Hook, frame: &[u8], ctx: SkbCtx) -> Run {
    try_run(obj, hook, frame, ctx)
        .unwrap_or_else(|| panic!("BPF_PROG_TEST_RUN refused {} bytes", frame.len()))
}

/// Keeps the calling thread on the CPU it is on: the programs cache per
/// CPU (the endpoint cache), and BPF_PROG_TEST_RUN runs them on the
/// caller's CPU, so a test that checks what a cache may not hide must see
/// one CPU's cache throughout.
pub fn stay_on_this_cpu() {
    // SAFETY: plain libc calls on this thread's own affinity.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        let rc = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity");
    }
}

/// `None` when the kernel's test runner refuses the frame (EINVAL).
pub fn try_run(obj: &mut TcObject, hook: Hook, frame: &[u8], ctx: SkbCtx) -> Option<Run> {
    stay_on_this_cpu();
    let prog = obj.program(hook).expect("program loads and verifies");
    let mut out = vec![0u8; frame.len() + 512];
    let ctx = ctx.bytes();
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.ctx_in = Some(&ctx);
    let r = match prog.test_run(opts) {
        Ok(r) => r,
        Err(aya::programs::ProgramError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::EINVAL) =>
        {
            return None
        }
        Err(e) => panic!("BPF_PROG_TEST_RUN with {} bytes: {e}", frame.len()),
    };
    out.truncate(r.data_size_out as usize);
    Some(Run {
        verdict: r.return_value,
        out,
    })
}

/// BPF_PROG_TEST_RUN with `BPF_F_TEST_SKB_CHECKSUM_COMPLETE` (Linux 6.17+),
/// a flag aya's `TestRunOptions` cannot set, so the syscall is made here.
/// The kernel seeds `skb->csum` with the sum of the packet from the network
/// header on, marks the skb CHECKSUM_COMPLETE, runs the program, and fails
/// the run when `skb->csum` no longer matches the packet it returns.
/// `Err(errno)`: EINVAL when the kernel does not know the flag, EBADMSG (or
/// EINVAL on early versions of the patch) for a stale `skb->csum`.
pub fn run_checksum_complete(
    obj: &mut TcObject,
    hook: Hook,
    frame: &[u8],
    ctx: SkbCtx,
) -> Result<Run, i32> {
    use std::os::fd::{AsFd, AsRawFd};

    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    const BPF_F_TEST_SKB_CHECKSUM_COMPLETE: u32 = 1 << 2;
    /// The `test` member of `union bpf_attr`.
    #[repr(C)]
    #[derive(Default)]
    struct TestRunAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        pad: u32,
    }
    let prog = obj.program(hook).expect("program loads and verifies");
    let fd = prog.fd().expect("loaded").as_fd().as_raw_fd();
    let mut out = vec![0u8; frame.len() + 512];
    let ctx = ctx.bytes();
    let mut attr = TestRunAttr {
        prog_fd: fd as u32,
        data_size_in: frame.len() as u32,
        data_size_out: out.len() as u32,
        data_in: frame.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: ctx.len() as u32,
        ctx_in: ctx.as_ptr() as u64,
        flags: BPF_F_TEST_SKB_CHECKSUM_COMPLETE,
        ..Default::default()
    };
    // SAFETY: `attr` points at buffers that outlive the call, with their
    // sizes; the kernel writes only `out` and the attr's output fields.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    out.truncate(attr.data_size_out as usize);
    Ok(Run {
        verdict: attr.retval,
        out,
    })
}

pub fn counts(obj: &TcObject, ifindex: u32) -> BTreeMap<&'static str, u64> {
    obj.counts().unwrap().remove(&ifindex).unwrap_or_default()
}

/// One crafted frame, the verdict the program must return and the reason
/// it must count.
pub struct Case {
    pub what: String,
    pub frame: Vec<u8>,
    pub verdict: u32,
    pub reason: &'static str,
}

pub fn case(what: impl Into<String>, frame: Vec<u8>, verdict: u32, reason: &'static str) -> Case {
    Case {
        what: what.into(),
        frame,
        verdict,
        reason,
    }
}

/// Runs every case, then compares the whole counter map of `counted_on`
/// with the reasons of the cases: the object is fresh, so the totals are
/// exact. Frames that are not redirected must come out unchanged. Every
/// wrong verdict is listed before the test fails.
#[track_caller]
pub fn check_cases(obj: &mut TcObject, hook: Hook, ctx: SkbCtx, counted_on: u32, cases: &[Case]) {
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    let mut wrong = Vec::new();
    for c in cases {
        let r = run(obj, hook, &c.frame, ctx);
        if r.verdict != c.verdict {
            wrong.push(format!(
                "{}: verdict {} (want {})",
                c.what, r.verdict, c.verdict
            ));
        } else if c.verdict != TC_ACT_REDIRECT && r.out != c.frame {
            wrong.push(format!("{}: frame modified", c.what));
        }
        *expected.entry(c.reason).or_default() += 1;
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert_eq!(counts(obj, counted_on), expected, "counters");
}

/// The frame went to the stack exactly as it came.
#[track_caller]
pub fn assert_passed_unchanged(r: &Run, frame: &[u8]) {
    assert_eq!(r.verdict, TC_ACT_OK, "verdict");
    assert_eq!(r.out, frame, "a passed frame must not be modified");
}

#[track_caller]
pub fn assert_routed_rewrite(r: &Run, frame: &[u8], dst: [u8; 6], src: [u8; 6], ttl_at: usize) {
    assert_eq!(r.out.len(), frame.len());
    assert_eq!(r.out[0..6], dst, "destination MAC");
    assert_eq!(r.out[6..12], src, "source MAC");
    assert_eq!(r.out[ttl_at], frame[ttl_at] - 1, "TTL / hop limit − 1");
    if frame[12..14] == [0x08, 0x00] {
        assert!(packet::ipv4_header_valid(&r.out), "IPv4 header checksum");
        // Only TTL and checksum changed in the IP header.
        let ip = ETH_HLEN..ETH_HLEN + 20;
        let diff: Vec<usize> = ip
            .clone()
            .filter(|&i| r.out[i] != frame[i])
            .map(|i| i - ETH_HLEN)
            .collect();
        assert!(diff.iter().all(|i| [8, 10, 11].contains(i)), "{diff:?}");
    }
    // Addresses and payload: after the IPv4 checksum / IPv6 hop limit.
    let rest = if frame[12..14] == [0x08, 0x00] {
        ETH_HLEN + 12
    } else {
        ttl_at + 1
    };
    assert_eq!(
        r.out[rest..],
        frame[rest..],
        "addresses and payload untouched"
    );
}
