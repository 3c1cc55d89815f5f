//! ICMP / ICMPv6 echo over raw sockets (root), no external `ping`.

use std::{
    mem::MaybeUninit,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};

use super::{io_err, pattern, ProbeError};
use crate::netns::{self, Netns};

static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// One echo request with `payload` bytes from namespace `from` to `dst`;
/// returns the round-trip time.
pub fn ping(
    from: &Netns,
    dst: IpAddr,
    payload: usize,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let what = format!("icmp {from} -> {dst}");
    let id = (std::process::id() as u16)
        .wrapping_mul(31)
        .wrapping_add(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let w = what.clone();
    let th = netns::spawn_in(from, move || echo(dst, id, payload, timeout, &w))?;
    super::join(th, &what)
}

fn echo(
    dst: IpAddr,
    id: u16,
    payload: usize,
    timeout: Duration,
    what: &str,
) -> Result<Duration, ProbeError> {
    let v6 = dst.is_ipv6();
    let sock = if v6 {
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
    } else {
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
    }
    .map_err(io_err(what))?;
    let seq = 1u16;
    let mut pkt = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    let body = pattern(payload, u64::from(id));
    pkt.extend_from_slice(&body);
    if !v6 {
        // The kernel fills ICMPv6 checksums; ICMPv4 is ours.
        let c = shortpath_common::csum::checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let start = Instant::now();
    sock.send_to(&pkt, &SocketAddr::new(dst, 0).into())
        .map_err(io_err(what))?;
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 65536];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(ProbeError::Timeout {
                what: what.to_owned(),
                timeout,
            });
        }
        sock.set_read_timeout(Some(left)).map_err(io_err(what))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(io_err(what)(e)),
        };
        // SAFETY: recv_from initialized the first n bytes.
        let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
        // IPv4 raw sockets deliver the IP header too.
        let icmp = if v6 {
            data
        } else {
            let ihl = usize::from(data.first().copied().unwrap_or(0) & 0x0f) * 4;
            data.get(ihl..).unwrap_or(&[])
        };
        let reply = if v6 { 129 } else { 0 };
        if icmp.len() < 8
            || icmp[0] != reply
            || icmp[4..6] != id.to_be_bytes()
            || icmp[6..8] != seq.to_be_bytes()
        {
            continue;
        }
        if from.as_socket().map(|a| a.ip()) != Some(dst) {
            continue;
        }
        if icmp[8..] != body[..] {
            return Err(ProbeError::Mismatch {
                what: what.to_owned(),
                detail: "echo payload corrupted".into(),
            });
        }
        return Ok(start.elapsed());
    }
}
