//! Loads the tracer object, attaches its BTF tracepoint programs and
//! collects events from the ring buffer on a dedicated thread, until
//! stopped. Everything (object, links, ring buffer) lives and dies on that
//! thread: dropping it detaches the programs.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::{
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::BtfTracePoint,
    Btf as KernelBtf, Ebpf, EbpfLoader,
};
use shortpath_common::trace::{Offsets, TraceEvent};

use super::{btf::Btf, TraceError};

use shortpath_dataplane::object::TRACE_OBJECT;

/// A tracepoint the tracer attaches to (the program has its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracepoint {
    pub name: &'static str,
    /// Paths cannot be assembled without it.
    pub required: bool,
    /// What is not reported when it is missing.
    pub measures: &'static str,
}

const fn tp(name: &'static str, required: bool, measures: &'static str) -> Tracepoint {
    Tracepoint {
        name,
        required,
        measures,
    }
}

pub const TRACEPOINTS: &[Tracepoint] = &[
    tp("softirq_entry", false, "NET_RX softirqs per packet"),
    tp("softirq_exit", false, "NET_RX softirqs per packet"),
    tp("netif_receive_skb", true, "RX paths"),
    tp("netif_rx", false, "backlog enqueues"),
    tp("net_dev_queue", true, "TX paths"),
    tp("net_dev_start_xmit", true, "TX paths"),
    tp("fib_table_lookup", false, "route lookups"),
    tp("sk_data_ready", true, "RX paths"),
    tp("kfree_skb", false, "drops"),
];

/// Tracepoints skipped on purpose (comma-separated names), to see what a
/// kernel without them reports.
pub const SKIP_ENV: &str = "SHORTPATH_TRACE_SKIP";

/// An optional tracepoint this kernel could not attach, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unavailable {
    pub tracepoint: &'static str,
    pub measures: &'static str,
    pub error: String,
}

/// Which packets to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Only the tracer's own probe packets (tagged payload).
    Probes,
    /// Every IPv4 packet in the lab's namespaces, 1 in `n` (by header).
    Sample(u32),
}

/// Resolves the kernel offsets the programs need from BTF.
pub fn offsets(btf: &Btf, filter: Filter) -> Result<Offsets, TraceError> {
    let nd_net = btf.offset("possible_net_t", &["net"])?;
    let (tagged_only, sample) = match filter {
        Filter::Probes => (1, 1),
        Filter::Sample(n) => (0, n.max(1)),
    };
    Ok(Offsets {
        valid: 1,
        tagged_only,
        sample,
        skb_dev: btf.offset("sk_buff", &["dev"])?,
        skb_head: btf.offset("sk_buff", &["head"])?,
        skb_data: btf.offset("sk_buff", &["data"])?,
        skb_network_header: btf.offset("sk_buff", &["network_header"])?,
        skb_iif: btf.offset("sk_buff", &["skb_iif"])?,
        dev_ifindex: btf.offset("net_device", &["ifindex"])?,
        dev_nd_net: btf.offset("net_device", &["nd_net"])? + nd_net,
        net_inum: btf.offset("net", &["ns", "inum"])?,
        sock_net: btf.offset("sock", &["__sk_common", "skc_net"])? + nd_net,
        sock_receive_queue: btf.offset("sock", &["sk_receive_queue"])?,
        queue_tail: btf.offset("sk_buff_head", &["prev"])?,
        queue_qlen: btf.offset("sk_buff_head", &["qlen"])?,
        nhc_dev: btf.offset("fib_nh_common", &["nhc_dev"])?,
        flowi4_daddr: btf.offset("flowi4", &["daddr"])?,
    })
}

/// Events kept in memory at most (72 bytes each, about 600 MB); beyond
/// that events are counted as lost: follow busy traffic with `--sample`.
const MAX_EVENTS: usize = 8 << 20;

/// What a tracer run collected.
#[derive(Debug, Default)]
pub struct Collected {
    pub events: Vec<TraceEvent>,
    /// Events the ring buffer had no room for, or beyond [`MAX_EVENTS`].
    pub lost: u64,
}

/// A running tracer; [`Tracer::stop`] detaches it and returns the events.
pub struct Tracer {
    /// Optional tracepoints that could not be attached.
    pub unavailable: Vec<Unavailable>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Collected, TraceError>>,
}

impl Tracer {
    /// Loads and attaches the programs, filtering on the namespaces with
    /// the given inode numbers. Returns once every program is attached.
    pub fn start(netns: &[u32], offsets: Offsets) -> Result<Self, TraceError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let netns = netns.to_vec();
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("shortpath-trace".into())
            .spawn(move || {
                let mut ebpf = match attach(&netns, offsets) {
                    Ok((e, unavailable)) => {
                        let _ = ready_tx.send(Ok(unavailable));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(Collected::default());
                    }
                };
                collect(&mut ebpf, &s)
            })
            .map_err(|e| TraceError::Io {
                what: "spawn tracer thread",
                source: e,
            })?;
        match ready_rx.recv() {
            Ok(Ok(unavailable)) => Ok(Self {
                unavailable,
                stop,
                thread,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(TraceError::Panicked),
        }
    }

    /// Stops collecting, detaches the programs and returns the events.
    pub fn stop(self) -> Result<Collected, TraceError> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().map_err(|_| TraceError::Panicked)?
    }
}

fn attach(netns: &[u32], offsets: Offsets) -> Result<(Ebpf, Vec<Unavailable>), TraceError> {
    let mut ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &offsets, true)
        .load(TRACE_OBJECT)
        .map_err(|e| TraceError::Load(Box::new(e)))?;
    {
        let map = ebpf.map_mut("NETNS").ok_or(TraceError::NoMap("NETNS"))?;
        let mut filter: HashMap<_, u32, u32> =
            HashMap::try_from(map).map_err(|e| TraceError::map("NETNS", e))?;
        for (i, inum) in netns.iter().enumerate() {
            filter
                .insert(inum, i as u32, 0)
                .map_err(|e| TraceError::map("NETNS", e))?;
        }
    }
    let btf = KernelBtf::from_sys_fs().map_err(|e| TraceError::Btf {
        what: format!("{e} (tp_btf programs need /sys/kernel/btf/vmlinux)"),
    })?;
    let skip = std::env::var(SKIP_ENV).unwrap_or_default();
    let mut unavailable = Vec::new();
    for tp in TRACEPOINTS {
        let attached = if skip.split(',').any(|s| s.trim() == tp.name) {
            Err(format!("skipped ({SKIP_ENV})"))
        } else {
            attach_one(&mut ebpf, &btf, tp.name)
        };
        match attached {
            Ok(()) => {}
            Err(error) if !tp.required => unavailable.push(Unavailable {
                tracepoint: tp.name,
                measures: tp.measures,
                error,
            }),
            Err(error) => {
                return Err(TraceError::Attach {
                    tracepoint: tp.name,
                    error,
                })
            }
        }
    }
    Ok((ebpf, unavailable))
}

/// Loads and attaches the program of tracepoint `name`.
fn attach_one(ebpf: &mut Ebpf, btf: &KernelBtf, name: &'static str) -> Result<(), String> {
    // The dataplane's message: the verifier log's tail, or all of it with
    // SHORTPATH_VERIFIER_LOG=full.
    let error = |e| crate::dataplane::DataplaneError::program(name, e).to_string();
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or("the object has no such program")?
        .try_into()
        .map_err(error)?;
    prog.load(name, btf).map_err(error)?;
    prog.attach().map(|_| ()).map_err(|e| e.to_string())
}

fn collect(ebpf: &mut Ebpf, stop: &AtomicBool) -> Result<Collected, TraceError> {
    let mut out = Collected::default();
    {
        let map = ebpf.map_mut("EVENTS").ok_or(TraceError::NoMap("EVENTS"))?;
        let mut ring = RingBuf::try_from(map).map_err(|e| TraceError::map("EVENTS", e))?;
        let mut last_round = false;
        loop {
            while let Some(item) = ring.next() {
                if out.events.len() >= MAX_EVENTS {
                    out.lost += 1;
                } else if item.len() >= size_of::<TraceEvent>() {
                    // SAFETY: the programs write whole `TraceEvent`s; the
                    // read is unaligned-safe.
                    out.events.push(unsafe {
                        std::ptr::read_unaligned(item.as_ptr().cast::<TraceEvent>())
                    });
                }
            }
            if last_round {
                break;
            }
            if stop.load(Ordering::Acquire) {
                // One more pass picks up what was written meanwhile.
                last_round = true;
                continue;
            }
            // The programs write without waking us (see `points::submit`):
            // poll on a timer. 16 MiB hold ~230k events, seconds of probes.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let map = ebpf.map("LOST").ok_or(TraceError::NoMap("LOST"))?;
    let lost: PerCpuArray<_, u64> =
        PerCpuArray::try_from(map).map_err(|e| TraceError::map("LOST", e))?;
    out.lost += lost
        .get(&0, 0)
        .map(|v| v.iter().sum::<u64>())
        .map_err(|e| TraceError::map("LOST", e))?;
    Ok(out)
}
