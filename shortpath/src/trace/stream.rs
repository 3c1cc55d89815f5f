//! The tracer's probe traffic: UDP datagrams whose payload starts with a
//! tag (magic + sequence number), sent at a steady rate from one namespace
//! to an address in another, and received there by a socket, so each probe
//! runs the full RX path up to `sk_data_ready`.

use std::{
    net::{SocketAddr, SocketAddrV4, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc,
    },
    time::{Duration, Instant},
};

use shortpath_common::trace::write_tag;

use super::TraceError;
use crate::netns::{self, Netns};

/// Payload bytes of a probe.
pub const PROBE_LEN: usize = 64;
/// Port the probes go to when nothing listens at the destination.
const DISCARD_PORT: u16 = 9;

#[derive(Clone, Debug)]
pub struct ProbeStream {
    pub from: Netns,
    /// Namespace of the receiver, when the destination is a pod.
    pub receiver: Option<Netns>,
    pub to: std::net::Ipv4Addr,
    pub packets: u32,
    pub rate_pps: u32,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ProbeCounts {
    pub sent: u64,
    pub received: u64,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> TraceError {
    move |source| TraceError::Io { what, source }
}

impl ProbeStream {
    /// Sends the stream (blocking) and returns what was sent and received.
    pub fn run(&self) -> Result<ProbeCounts, TraceError> {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (port_tx, port_rx) = mpsc::channel();
        let receiver = match &self.receiver {
            Some(ns) => {
                let (stop, received, to) = (stop.clone(), received.clone(), self.to);
                Some(netns::spawn_in(ns, move || {
                    receive(to, &port_tx, &stop, &received)
                })?)
            }
            None => None,
        };
        let port = match receiver {
            Some(_) => {
                port_rx
                    .recv_timeout(Duration::from_secs(2))
                    .map_err(|_| TraceError::Io {
                        what: "probe receiver did not start",
                        source: std::io::ErrorKind::TimedOut.into(),
                    })?
            }
            None => DISCARD_PORT,
        };
        let dst = SocketAddrV4::new(self.to, port);
        let (packets, rate) = (self.packets, self.rate_pps.max(1));
        let sent = netns::run_in_blocking(&self.from, move || send(dst, packets, rate))?;
        // Let the last probes land before the receiver stops.
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Release);
        if let Some(r) = receiver {
            r.join().map_err(|_| TraceError::Panicked)???;
        }
        Ok(ProbeCounts {
            sent: sent?,
            received: received.load(Ordering::Acquire),
        })
    }
}

fn receive(
    addr: std::net::Ipv4Addr,
    port: &mpsc::Sender<u16>,
    stop: &AtomicBool,
    received: &AtomicU64,
) -> Result<(), TraceError> {
    let sock = UdpSocket::bind(SocketAddrV4::new(addr, 0)).map_err(io("bind probe receiver"))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(io("probe receiver"))?;
    let _ = port.send(sock.local_addr().map_err(io("probe receiver"))?.port());
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Acquire) {
        if sock.recv(&mut buf).is_ok() {
            received.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn send(dst: SocketAddrV4, packets: u32, rate: u32) -> Result<u64, TraceError> {
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(io("bind probe sender"))?;
    sock.connect(SocketAddr::V4(dst))
        .map_err(io("connect probe sender"))?;
    let mut payload = [0u8; PROBE_LEN];
    let start = Instant::now();
    let gap = Duration::from_secs(1).as_nanos() as f64 / rate as f64;
    let mut sent = 0;
    for seq in 0..packets {
        let due = start + Duration::from_nanos((seq as f64 * gap) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        write_tag(&mut payload, seq);
        // An ICMP error from an earlier probe surfaces here: keep going.
        if sock.send(&payload).is_ok() {
            sent += 1;
        }
    }
    Ok(sent)
}
