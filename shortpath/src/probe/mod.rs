//! Traffic probes between lab namespaces: real packets through the real
//! path. ICMP echo (raw sockets), UDP and TCP echo, bulk TCP with an
//! integrity check, and sequence-numbered UDP streams that count loss and
//! duplicates. Every probe runs its ends on threads inside the namespaces.

mod icmp;
mod matrix;
pub mod paced;
mod stream;

use std::{
    io::{self, Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, Instant},
};

pub use icmp::ping;
pub use matrix::{probe_all, probe_all_sized, probe_pair, probe_pair_sized, Endpoint, Probe, Size};
pub use stream::{SeqReport, UdpSequence};

use crate::netns::{self, Netns, NetnsError, PortSender, PortServer, StartError, ThreadError};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: no answer within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("{what}: {detail}")]
    Mismatch { what: String, detail: String },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

pub(crate) fn io_err(what: &str) -> impl FnOnce(io::Error) -> ProbeError + '_ {
    move |source| {
        if matches!(
            source.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            ProbeError::Timeout {
                what: what.to_owned(),
                timeout: Duration::ZERO,
            }
        } else {
            ProbeError::Io {
                what: what.to_owned(),
                source,
            }
        }
    }
}

/// The transport of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Icmp,
    Udp,
    Tcp,
}

impl Proto {
    pub const ALL: [Proto; 3] = [Proto::Icmp, Proto::Udp, Proto::Tcp];

    pub fn name(self) -> &'static str {
        match self {
            Proto::Icmp => "icmp",
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// Largest payload that fits in one packet of `mtu` for `proto` to `dst`.
pub fn max_payload(proto: Proto, dst: IpAddr, mtu: u32) -> usize {
    let ip = if dst.is_ipv6() { 40 } else { 20 };
    let l4 = match proto {
        Proto::Icmp | Proto::Udp => 8,
        Proto::Tcp => 20,
    };
    mtu as usize - ip - l4
}

/// Deterministic payload bytes, so corruption shows.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A probe's server thread, started by [`serve`].
pub(crate) type Server<T> = PortServer<Result<T, ProbeError>>;

/// Runs a server on a thread in `ns`; `f` binds, sends the port it got and
/// serves (watching the stop flag if it serves until told).
pub(crate) fn serve<T, F>(ns: &Netns, f: F) -> Result<Server<T>, ProbeError>
where
    T: Send + 'static,
    F: FnOnce(PortSender, Arc<AtomicBool>) -> Result<T, ProbeError> + Send + 'static,
{
    PortServer::start(ns, Duration::from_secs(5), f).map_err(|e| match e {
        StartError::Ended(Err(e)) => e,
        StartError::Thread(ThreadError::Netns(e)) => e.into(),
        _ => ProbeError::Mismatch {
            what: format!("server in {ns}"),
            detail: "did not start".into(),
        },
    })
}

pub(crate) fn join<T>(
    th: netns::NetnsThread<Result<T, ProbeError>>,
    what: &str,
) -> Result<T, ProbeError> {
    ended(netns::join_thread(th), what)
}

/// What a probe thread returned once joined (a client's, or a server's
/// from [`PortServer::join`]).
pub(crate) fn ended<T>(
    r: Result<Result<T, ProbeError>, ThreadError>,
    what: &str,
) -> Result<T, ProbeError> {
    match r {
        Ok(r) => r,
        Err(ThreadError::Netns(e)) => Err(e.into()),
        Err(ThreadError::Panicked) => Err(ProbeError::Mismatch {
            what: what.to_owned(),
            detail: "thread panicked".into(),
        }),
    }
}

/// One UDP request/response of `payload` bytes from `from` to `dst` (an
/// address in `to`); returns the round-trip time.
pub fn udp_echo(
    from: &Netns,
    to: &Netns,
    dst: IpAddr,
    payload: usize,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let what = format!("udp {from} -> {dst}");
    let server = serve(to, move |port, _| {
        let s = UdpSocket::bind(SocketAddr::new(dst, 0)).map_err(io_err("udp bind"))?;
        s.set_read_timeout(Some(timeout)).map_err(io_err("udp"))?;
        port.send(s.local_addr().map_err(io_err("udp"))?.port());
        let mut buf = vec![0u8; 65536];
        let (n, peer) = s.recv_from(&mut buf).map_err(io_err("udp server recv"))?;
        s.send_to(&buf[..n], peer)
            .map_err(io_err("udp server send"))?;
        Ok(())
    })?;
    let port = server.port();
    let data = pattern(payload, payload as u64);
    let w = what.clone();
    let client = netns::spawn_in(from, move || -> Result<Duration, ProbeError> {
        let bind: SocketAddr = if dst.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
            .parse()
            .expect("valid");
        let s = UdpSocket::bind(bind).map_err(io_err(&w))?;
        s.set_read_timeout(Some(timeout)).map_err(io_err(&w))?;
        let t = Instant::now();
        s.send_to(&data, SocketAddr::new(dst, port))
            .map_err(io_err(&w))?;
        let mut buf = vec![0u8; 65536];
        let (n, _) = s.recv_from(&mut buf).map_err(|_| ProbeError::Timeout {
            what: w.clone(),
            timeout,
        })?;
        let rtt = t.elapsed();
        if buf[..n] != data[..] {
            return Err(ProbeError::Mismatch {
                what: w,
                detail: format!("{n} bytes came back, not the {} sent", data.len()),
            });
        }
        Ok(rtt)
    })?;
    let rtt = join(client, &what);
    let served = ended(server.join(), &what);
    let rtt = rtt?;
    served?;
    Ok(rtt)
}

/// TCP connect + one request/response of `payload` bytes; returns the time
/// from connect to the complete response.
pub fn tcp_echo(
    from: &Netns,
    to: &Netns,
    dst: IpAddr,
    payload: usize,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    let what = format!("tcp {from} -> {dst}");
    let server = serve(to, move |port, _| {
        let l = TcpListener::bind(SocketAddr::new(dst, 0)).map_err(io_err("tcp bind"))?;
        port.send(l.local_addr().map_err(io_err("tcp"))?.port());
        l.set_nonblocking(false).map_err(io_err("tcp"))?;
        let (mut c, _) = accept_within(&l, timeout)?;
        c.set_read_timeout(Some(timeout)).map_err(io_err("tcp"))?;
        let mut buf = vec![0u8; payload];
        c.read_exact(&mut buf).map_err(io_err("tcp server read"))?;
        c.write_all(&buf).map_err(io_err("tcp server write"))?;
        Ok(())
    })?;
    let port = server.port();
    let data = pattern(payload, 7 + payload as u64);
    let w = what.clone();
    let client = netns::spawn_in(from, move || -> Result<Duration, ProbeError> {
        let t = Instant::now();
        let mut c =
            TcpStream::connect_timeout(&SocketAddr::new(dst, port), timeout).map_err(io_err(&w))?;
        c.set_read_timeout(Some(timeout)).map_err(io_err(&w))?;
        c.write_all(&data).map_err(io_err(&w))?;
        let mut buf = vec![0u8; data.len()];
        c.read_exact(&mut buf).map_err(io_err(&w))?;
        let rtt = t.elapsed();
        if buf != data {
            return Err(ProbeError::Mismatch {
                what: w,
                detail: "payload corrupted".into(),
            });
        }
        Ok(rtt)
    })?;
    let rtt = join(client, &what);
    let served = ended(server.join(), &what);
    let rtt = rtt?;
    served?;
    Ok(rtt)
}

fn accept_within(
    l: &TcpListener,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), ProbeError> {
    l.set_nonblocking(true).map_err(io_err("tcp"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, a)) => {
                s.set_nonblocking(false).map_err(io_err("tcp"))?;
                return Ok((s, a));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(ProbeError::Timeout {
                    what: "tcp accept".into(),
                    timeout,
                });
            }
            Err(e) => return Err(io_err("tcp accept")(e)),
        }
    }
}

/// Outcome of a bulk TCP transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    pub bytes: u64,
    pub sent_crc: u32,
    pub received_bytes: u64,
    pub received_crc: u32,
    pub elapsed: Duration,
}

impl Transfer {
    pub fn intact(&self) -> bool {
        self.bytes == self.received_bytes && self.sent_crc == self.received_crc
    }
}

/// Sends `bytes` of pseudo-random data over one TCP connection; the
/// receiver reports back how much arrived and its CRC-32.
pub fn tcp_transfer(
    from: &Netns,
    to: &Netns,
    dst: IpAddr,
    bytes: u64,
    timeout: Duration,
) -> Result<Transfer, ProbeError> {
    let what = format!("tcp transfer {from} -> {dst}");
    let server = serve(to, move |port, _| {
        let l = TcpListener::bind(SocketAddr::new(dst, 0)).map_err(io_err("tcp bind"))?;
        port.send(l.local_addr().map_err(io_err("tcp"))?.port());
        let (mut c, _) = accept_within(&l, timeout)?;
        c.set_read_timeout(Some(timeout)).map_err(io_err("tcp"))?;
        let mut crc = crc32fast::Hasher::new();
        let mut n = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let r = c.read(&mut buf).map_err(io_err("tcp transfer read"))?;
            if r == 0 {
                break;
            }
            crc.update(&buf[..r]);
            n += r as u64;
        }
        let crc = crc.finalize();
        let mut ack = n.to_be_bytes().to_vec();
        ack.extend_from_slice(&crc.to_be_bytes());
        c.write_all(&ack).map_err(io_err("tcp transfer ack"))?;
        Ok(())
    })?;
    let port = server.port();
    let w = what.clone();
    let client = netns::spawn_in(from, move || -> Result<Transfer, ProbeError> {
        let block = pattern(1 << 20, 99);
        let t = Instant::now();
        let mut c =
            TcpStream::connect_timeout(&SocketAddr::new(dst, port), timeout).map_err(io_err(&w))?;
        c.set_read_timeout(Some(timeout)).map_err(io_err(&w))?;
        let mut crc = crc32fast::Hasher::new();
        let mut left = bytes;
        let mut round = 0u8;
        let mut chunk = block.clone();
        while left > 0 {
            // Vary every MiB so reordered or repeated blocks change the CRC.
            chunk[0] = round;
            round = round.wrapping_add(1);
            let n = left.min(chunk.len() as u64) as usize;
            c.write_all(&chunk[..n]).map_err(io_err(&w))?;
            crc.update(&chunk[..n]);
            left -= n as u64;
        }
        c.shutdown(std::net::Shutdown::Write).map_err(io_err(&w))?;
        let mut ack = [0u8; 12];
        c.read_exact(&mut ack).map_err(io_err(&w))?;
        Ok(Transfer {
            bytes,
            sent_crc: crc.finalize(),
            received_bytes: u64::from_be_bytes(ack[..8].try_into().expect("8 bytes")),
            received_crc: u32::from_be_bytes(ack[8..].try_into().expect("4 bytes")),
            elapsed: t.elapsed(),
        })
    })?;
    let r = join(client, &what);
    let s = ended(server.join(), &what);
    let r = r?;
    s?;
    Ok(r)
}
