//! A sequence-numbered UDP stream: proves that something (a mode switch)
//! lost or duplicated no packet.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{
    ended, io_err, join,
    paced::{send_paced, OnError, Until},
    serve, ProbeError, Server,
};
use crate::netns::{self, Netns, NetnsThread};

const MAGIC: u64 = 0x5350_5345_5153_5452; // "SPSEQSTR"

/// What the receiver saw of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqReport {
    pub sent: u64,
    pub received: u64,
    /// Sequence numbers never received.
    pub lost: u64,
    /// Extra copies of sequence numbers already received.
    pub duplicated: u64,
    /// Packets that arrived after a higher sequence number.
    pub reordered: u64,
    /// The first and the last sequence number lost, if any: with the rate,
    /// when the loss began and ended.
    pub lost_span: Option<(u64, u64)>,
}

/// A running stream; [`UdpSequence::stop`] ends it and reports.
pub struct UdpSequence {
    /// Taken just before the sender starts: datagram `seq` leaves about
    /// `seq / pps` seconds later (a little after).
    pub started: Instant,
    pub pps: u32,
    client: NetnsThread<Result<u64, ProbeError>>,
    /// Its stop flag also stops the client.
    server: Server<Vec<u64>>,
    what: String,
}

impl UdpSequence {
    /// Starts sending `pps` datagrams per second from `from` to `dst` (an
    /// address in `to`).
    pub fn start(from: &Netns, to: &Netns, dst: IpAddr, pps: u32) -> Result<Self, ProbeError> {
        let what = format!("udp stream {from} -> {dst}");
        let server = serve(to, move |port, stop| {
            let s = UdpSocket::bind(SocketAddr::new(dst, 0)).map_err(io_err("udp bind"))?;
            let sock = socket2::SockRef::from(&s);
            let _ = sock.set_recv_buffer_size(8 << 20);
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .map_err(io_err("udp"))?;
            port.send(s.local_addr().map_err(io_err("udp"))?.port());
            let mut seen = Vec::new();
            let mut buf = [0u8; 64];
            let mut quiet_since: Option<Instant> = None;
            loop {
                match s.recv(&mut buf) {
                    Ok(n) if n >= 16 && buf[8..16] == MAGIC.to_be_bytes() => {
                        seen.push(u64::from_be_bytes(buf[..8].try_into().expect("8 bytes")));
                        quiet_since = None;
                    }
                    Ok(_) => {}
                    Err(_) if stop.load(Ordering::Acquire) => {
                        // Drain: stop after 300 ms without packets.
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_millis(300) {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
            Ok(seen)
        })?;
        let port = server.port();
        let stop = server.stop_flag().clone();
        let started = Instant::now();
        let client = netns::spawn_in(from, move || -> Result<u64, ProbeError> {
            let bind: SocketAddr = if dst.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
                .parse()
                .expect("valid");
            let s = UdpSocket::bind(bind).map_err(io_err("udp stream"))?;
            s.connect(SocketAddr::new(dst, port))
                .map_err(io_err("udp stream"))?;
            send_paced(
                &s,
                pps,
                16,
                Until::Stop(&stop),
                OnError::Fail,
                |seq, pkt| {
                    pkt[..8].copy_from_slice(&seq.to_be_bytes());
                    pkt[8..].copy_from_slice(&MAGIC.to_be_bytes());
                },
            )
            .map_err(io_err("udp stream send"))
        })?;
        Ok(Self {
            started,
            pps,
            client,
            server,
            what,
        })
    }

    pub fn stop(self) -> Result<SeqReport, ProbeError> {
        self.server.stop();
        let sent = join(self.client, &self.what);
        let seen = ended(self.server.join(), &self.what)?;
        Ok(report(sent?, &seen))
    }
}

/// Loss, duplicates and reordering of received sequence numbers `seen`
/// (in arrival order) out of `sent` (0..sent).
pub fn report(sent: u64, seen: &[u64]) -> SeqReport {
    let mut count = vec![0u32; sent as usize];
    let mut r = SeqReport {
        sent,
        received: seen.len() as u64,
        ..Default::default()
    };
    let mut highest: Option<u64> = None;
    for &s in seen {
        match count.get_mut(s as usize) {
            Some(c) => {
                *c += 1;
                if *c > 1 {
                    r.duplicated += 1;
                }
            }
            None => r.duplicated += 1,
        }
        if highest.is_some_and(|h| s < h) {
            r.reordered += 1;
        }
        highest = highest.max(Some(s));
    }
    r.lost = count.iter().filter(|&&c| c == 0).count() as u64;
    let first = count.iter().position(|&c| c == 0);
    let last = count.iter().rposition(|&c| c == 0);
    r.lost_span = first.zip(last).map(|(a, b)| (a as u64, b as u64));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let r = report(6, &[0, 1, 3, 2, 3, 5]);
        assert_eq!(
            r,
            SeqReport {
                sent: 6,
                received: 6,
                lost: 1,
                duplicated: 1,
                reordered: 1,
                lost_span: Some((4, 4)),
            }
        );
        assert_eq!(report(9, &[0, 3, 4, 6, 8]).lost_span, Some((1, 7)));
        assert_eq!(report(2, &[0, 1]).lost_span, None);
        assert_eq!(report(3, &[0, 1, 2]).lost, 0);
        assert_eq!(
            report(2, &[0, 7]).duplicated,
            1,
            "unknown numbers count as extra"
        );
    }
}
