//! The tracer's probe traffic: UDP datagrams whose payload starts with a
//! tag (magic + sequence number), sent at a steady rate from one namespace
//! to an address in another, and received there by a socket, so each probe
//! runs the full RX path up to `sk_data_ready`.

use std::{
    net::{SocketAddr, SocketAddrV4, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use shortpath_common::trace::write_tag;

use super::TraceError;
use crate::{
    netns::{self, Netns, PortSender, PortServer, StartError, ThreadError},
    probe::paced::{send_paced, OnError, Until},
};

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

fn thread_error(e: ThreadError) -> TraceError {
    match e {
        ThreadError::Netns(e) => e.into(),
        ThreadError::Panicked => TraceError::Panicked,
    }
}

impl ProbeStream {
    /// Sends the stream (blocking) and returns what was sent and received.
    pub fn run(&self) -> Result<ProbeCounts, TraceError> {
        let received = Arc::new(AtomicU64::new(0));
        let receiver = match &self.receiver {
            Some(ns) => {
                let (received, to) = (received.clone(), self.to);
                let start = PortServer::start(ns, Duration::from_secs(2), move |port, stop| {
                    receive(to, port, &stop, &received)
                });
                Some(start.map_err(|e| match e {
                    StartError::Ended(Err(e)) => e,
                    StartError::Thread(e) => thread_error(e),
                    StartError::Ended(Ok(())) | StartError::Timeout(_) => TraceError::Io {
                        what: "probe receiver did not start",
                        source: std::io::ErrorKind::TimedOut.into(),
                    },
                })?)
            }
            None => None,
        };
        let port = receiver.as_ref().map_or(DISCARD_PORT, PortServer::port);
        let dst = SocketAddrV4::new(self.to, port);
        let (packets, rate) = (self.packets, self.rate_pps.max(1));
        let sent = netns::run_in_blocking(&self.from, move || send(dst, packets, rate))?;
        // Let the last probes land before the receiver stops.
        std::thread::sleep(Duration::from_millis(100));
        if let Some(r) = receiver {
            r.finish().map_err(thread_error)??;
        }
        Ok(ProbeCounts {
            sent: sent?,
            received: received.load(Ordering::Acquire),
        })
    }
}

fn receive(
    addr: std::net::Ipv4Addr,
    port: PortSender,
    stop: &AtomicBool,
    received: &AtomicU64,
) -> Result<(), TraceError> {
    let sock = UdpSocket::bind(SocketAddrV4::new(addr, 0)).map_err(io("bind probe receiver"))?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(io("probe receiver"))?;
    port.send(sock.local_addr().map_err(io("probe receiver"))?.port());
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
    // An ICMP error from an earlier probe surfaces on a later send: keep
    // going (that probe is not counted).
    let until = Until::Count(u64::from(packets));
    send_paced(
        &sock,
        rate,
        PROBE_LEN,
        until,
        OnError::Skip,
        |seq, payload| write_tag(payload, seq as u32),
    )
    .map_err(io("send probes"))
}
