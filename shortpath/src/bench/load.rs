//! The load generator: request/response, connect/request/response, bulk
//! stream and packet-rate tests between two namespaces. Servers and clients
//! are plain threads that enter their namespace (never tokio workers).

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{stats, BenchError};
use crate::netns::{self, Netns, PortSender, PortServer, StartError, ThreadError};

/// A benchmark test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// UDP request/response, one in flight: transactions/s and latency.
    UdpRr,
    /// TCP request/response on a persistent connection.
    TcpRr,
    /// TCP connect, request, response, close.
    TcpCrr,
    /// Bulk TCP: Gbit/s over `--streams` connections.
    TcpStream,
    /// 64-byte UDP datagrams as fast as one sender can: received kpps, loss.
    UdpPps,
}

impl Test {
    pub const ALL: [Test; 5] = [
        Test::UdpRr,
        Test::TcpRr,
        Test::TcpCrr,
        Test::TcpStream,
        Test::UdpPps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Test::UdpRr => "udp_rr",
            Test::TcpRr => "tcp_rr",
            Test::TcpCrr => "tcp_crr",
            Test::TcpStream => "tcp_stream",
            Test::UdpPps => "udp_pps",
        }
    }

    /// Unit of the test's figure (higher is better for all).
    pub fn unit(self) -> &'static str {
        match self {
            Test::UdpRr | Test::TcpRr | Test::TcpCrr => "tps",
            Test::TcpStream => "gbit_s",
            Test::UdpPps => "kpps",
        }
    }

    /// Request/response tests also report latency percentiles.
    pub fn has_latency(self) -> bool {
        matches!(self, Test::UdpRr | Test::TcpRr | Test::TcpCrr)
    }
}

impl FromStr for Test {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Test::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                format!("unknown test {s:?}: use udp_rr, tcp_rr, tcp_crr, tcp_stream or udp_pps")
            })
    }
}

/// Where the load goes: client namespace → server address in its namespace.
#[derive(Clone, Debug)]
pub struct Target {
    pub client: Netns,
    pub server: Netns,
    pub addr: IpAddr,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub duration: Duration,
    pub streams: usize,
    /// CPUs for (client, server) threads.
    pub cpus: Option<(usize, usize)>,
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Sample {
    /// In the test's unit.
    pub value: f64,
    /// Latency per transaction (ns), for request/response tests.
    pub latency: Option<Histogram<u64>>,
    /// Lost datagrams, percent (udp_pps).
    pub loss_pct: Option<f64>,
}

const TIMEOUT: Duration = Duration::from_secs(2);
const REQ: [u8; 1] = [0x5a];

fn io(what: &'static str) -> impl Fn(std::io::Error) -> BenchError {
    move |source| BenchError::Io { what, source }
}

fn pin(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = nix::sched::CpuSet::new();
        if set.set(cpu).is_ok() {
            // Best effort: an offline CPU leaves the thread unpinned.
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
        }
    }
}

/// Runs `test` once against `target`.
pub fn run(test: Test, target: &Target, opts: &LoadOptions) -> Result<Sample, BenchError> {
    match test {
        Test::UdpRr => udp_rr(target, opts),
        Test::TcpRr => tcp_rr(target, opts),
        Test::TcpCrr => tcp_crr(target, opts),
        Test::TcpStream => tcp_stream(target, opts),
        Test::UdpPps => udp_pps(target, opts),
    }
}

/// A server thread in the target namespace, pinned to `cpu`: `f` binds,
/// reports its port and serves until its stop flag is set.
type Server<T> = PortServer<Result<T, BenchError>>;

fn start_server<T, F>(target: &Target, cpu: Option<usize>, f: F) -> Result<Server<T>, BenchError>
where
    T: Send + 'static,
    F: FnOnce(PortSender, Arc<AtomicBool>) -> Result<T, BenchError> + Send + 'static,
{
    let pinned = move |port, stop| {
        pin(cpu);
        f(port, stop)
    };
    PortServer::start(&target.server, TIMEOUT, pinned).map_err(|e| match e {
        StartError::Ended(Err(e)) => e,
        StartError::Thread(e) => thread_error(e),
        StartError::Ended(Ok(_)) | StartError::Timeout(_) => BenchError::ServerStart,
    })
}

fn thread_error(e: ThreadError) -> BenchError {
    match e {
        ThreadError::Netns(e) => e.into(),
        ThreadError::Panicked => BenchError::Panicked,
    }
}

/// Stops `server` and returns its result.
fn finish<T>(server: Server<T>) -> Result<T, BenchError> {
    server.finish().map_err(thread_error)?
}

fn client<T, F>(target: &Target, cpu: Option<usize>, f: F) -> Result<T, BenchError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, BenchError> + Send + 'static,
{
    netns::spawn_in(&target.client, move || {
        pin(cpu);
        f()
    })?
    .join()
    .map_err(|_| BenchError::Panicked)??
}

fn cpus(opts: &LoadOptions) -> (Option<usize>, Option<usize>) {
    opts.cpus.map_or((None, None), |(c, s)| (Some(c), Some(s)))
}

fn udp_rr(target: &Target, opts: &LoadOptions) -> Result<Sample, BenchError> {
    let (ccpu, scpu) = cpus(opts);
    let addr = target.addr;
    let server = start_server(target, scpu, move |port, stop| {
        let s = UdpSocket::bind(SocketAddr::new(addr, 0)).map_err(io("udp bind"))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(io("udp"))?;
        port.send(s.local_addr().map_err(io("udp"))?.port());
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Acquire) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
        Ok(())
    })?;
    let dst = SocketAddr::new(addr, server.port());
    let duration = opts.duration;
    let r = client(target, ccpu, move || {
        let any: IpAddr = if addr.is_ipv6() {
            "::".parse().expect("literal")
        } else {
            "0.0.0.0".parse().expect("literal")
        };
        let s = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(io("udp bind"))?;
        s.connect(dst).map_err(io("udp connect"))?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(io("udp"))?;
        rr_loop(duration, |buf| {
            s.send(&REQ).map_err(io("udp send"))?;
            // A lost datagram times out and is retried: counted as slow.
            loop {
                match s.recv(buf) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        s.send(&REQ).map_err(io("udp send"))?;
                    }
                    Err(e) => return Err(io("udp recv")(e)),
                }
            }
        })
    });
    finish(server)?;
    r
}

/// Times transactions for `duration`; `tx` performs one.
fn rr_loop(
    duration: Duration,
    mut tx: impl FnMut(&mut [u8]) -> Result<(), BenchError>,
) -> Result<Sample, BenchError> {
    let mut h = stats::latency_histogram();
    let mut buf = [0u8; 64];
    let start = Instant::now();
    let end = start + duration;
    let mut n = 0u64;
    loop {
        let t = Instant::now();
        if t >= end {
            break;
        }
        tx(&mut buf)?;
        let ns = t.elapsed().as_nanos() as u64;
        h.saturating_record(ns.max(1));
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Sample {
        value: n as f64 / secs,
        latency: Some(h),
        loss_pct: None,
    })
}

/// A TCP server accepting until `stop`; each connection is handled by
/// `conn` on its own thread (threads inherit the namespace). `accept`
/// blocks (a polling loop would steal CPU from the measurement);
/// [`TcpServer::finish`] wakes it with one last connection. `inline`
/// handles each connection on the accepting thread, as a netperf server
/// does for connect/request/response.
fn tcp_server<F>(
    target: &Target,
    cpu: Option<usize>,
    inline: bool,
    conn: F,
) -> Result<TcpServer, BenchError>
where
    F: Fn(TcpStream) + Send + Sync + Clone + 'static,
{
    let addr = target.addr;
    let server = start_server(target, cpu, move |port, stop| {
        let l = TcpListener::bind(SocketAddr::new(addr, 0)).map_err(io("tcp bind"))?;
        port.send(l.local_addr().map_err(io("tcp"))?.port());
        let mut workers = Vec::new();
        loop {
            let (c, _) = l.accept().map_err(io("tcp accept"))?;
            if stop.load(Ordering::Acquire) {
                break;
            }
            let _ = c.set_nodelay(true);
            if inline {
                // Short connections (tcp_crr): no thread per connection.
                conn(c);
                continue;
            }
            let conn = conn.clone();
            workers.push(std::thread::spawn(move || {
                pin(cpu);
                conn(c)
            }));
            workers.retain(|w| !w.is_finished());
        }
        for w in workers {
            let _ = w.join();
        }
        Ok(())
    })?;
    Ok(TcpServer {
        server,
        ns: target.server.clone(),
        addr,
    })
}

struct TcpServer {
    server: Server<()>,
    ns: Netns,
    addr: IpAddr,
}

impl TcpServer {
    fn port(&self) -> u16 {
        self.server.port()
    }

    fn finish(self) -> Result<(), BenchError> {
        self.server.stop();
        let dst = SocketAddr::new(self.addr, self.server.port());
        netns::run_in_blocking(&self.ns, move || TcpStream::connect_timeout(&dst, TIMEOUT))?
            .map_err(io("tcp wake server"))?;
        finish(self.server)
    }
}

/// Answers each 1-byte request with 1 byte until the peer closes.
fn echo_requests(mut c: TcpStream) {
    let _ = c.set_read_timeout(Some(TIMEOUT));
    let mut b = [0u8; 1];
    while matches!(c.read(&mut b), Ok(1)) {
        if c.write_all(&b).is_err() {
            break;
        }
    }
}

fn tcp_rr(target: &Target, opts: &LoadOptions) -> Result<Sample, BenchError> {
    let (ccpu, scpu) = cpus(opts);
    let server = tcp_server(target, scpu, false, echo_requests)?;
    let dst = SocketAddr::new(target.addr, server.port());
    let duration = opts.duration;
    let r = client(target, ccpu, move || {
        let mut c = TcpStream::connect_timeout(&dst, TIMEOUT).map_err(io("tcp connect"))?;
        c.set_nodelay(true).map_err(io("tcp"))?;
        c.set_read_timeout(Some(TIMEOUT)).map_err(io("tcp"))?;
        rr_loop(duration, |buf| {
            c.write_all(&REQ).map_err(io("tcp write"))?;
            c.read_exact(&mut buf[..1]).map_err(io("tcp read"))
        })
    });
    server.finish()?;
    r
}

fn tcp_crr(target: &Target, opts: &LoadOptions) -> Result<Sample, BenchError> {
    let (ccpu, scpu) = cpus(opts);
    let server = tcp_server(target, scpu, true, echo_requests)?;
    let dst = SocketAddr::new(target.addr, server.port());
    let duration = opts.duration;
    let r = client(target, ccpu, move || {
        rr_loop(duration, |buf| {
            let mut c = TcpStream::connect_timeout(&dst, TIMEOUT).map_err(io("tcp connect"))?;
            c.set_nodelay(true).map_err(io("tcp"))?;
            c.set_read_timeout(Some(TIMEOUT)).map_err(io("tcp"))?;
            c.write_all(&REQ).map_err(io("tcp write"))?;
            c.read_exact(&mut buf[..1]).map_err(io("tcp read"))?;
            // Close with RST: no TIME_WAIT, so the ephemeral ports of a
            // long run never run out.
            let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
            Ok(())
        })
    });
    server.finish()?;
    r
}

fn tcp_stream(target: &Target, opts: &LoadOptions) -> Result<Sample, BenchError> {
    let (ccpu, scpu) = cpus(opts);
    let received = Arc::new(AtomicU64::new(0));
    let rx = received.clone();
    let server = tcp_server(target, scpu, false, move |mut c| {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 {
                break;
            }
            rx.fetch_add(n as u64, Ordering::Relaxed);
        }
    })?;
    let dst = SocketAddr::new(target.addr, server.port());
    let (duration, streams) = (opts.duration, opts.streams.max(1));
    let counter = received.clone();
    let r = client(target, ccpu, move || {
        let go = Arc::new(AtomicBool::new(true));
        let mut writers = Vec::new();
        for _ in 0..streams {
            let mut c = TcpStream::connect_timeout(&dst, TIMEOUT).map_err(io("tcp connect"))?;
            let go = go.clone();
            writers.push(std::thread::spawn(move || {
                pin(ccpu);
                let buf = vec![0x42u8; 128 * 1024];
                while go.load(Ordering::Relaxed) {
                    if c.write_all(&buf).is_err() {
                        break;
                    }
                }
            }));
        }
        // Skip slow start, then measure what the receiver got.
        let warm = (duration / 10).min(Duration::from_millis(500));
        std::thread::sleep(warm);
        let (b0, t0) = (counter.load(Ordering::Relaxed), Instant::now());
        std::thread::sleep(duration.saturating_sub(warm));
        let (b1, secs) = (counter.load(Ordering::Relaxed), t0.elapsed().as_secs_f64());
        go.store(false, Ordering::Relaxed);
        for w in writers {
            let _ = w.join();
        }
        Ok(Sample {
            value: (b1 - b0) as f64 * 8.0 / secs / 1e9,
            latency: None,
            loss_pct: None,
        })
    });
    server.finish()?;
    r
}

/// Payload of the packet-rate test.
const PPS_PAYLOAD: usize = 64;

fn udp_pps(target: &Target, opts: &LoadOptions) -> Result<Sample, BenchError> {
    let (ccpu, scpu) = cpus(opts);
    let addr = target.addr;
    let received = Arc::new(AtomicU64::new(0));
    let rx = received.clone();
    let server = start_server(target, scpu, move |port, stop| {
        let s = UdpSocket::bind(SocketAddr::new(addr, 0)).map_err(io("udp bind"))?;
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(4 << 20);
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(io("udp"))?;
        port.send(s.local_addr().map_err(io("udp"))?.port());
        let mut buf = [0u8; 2048];
        loop {
            match s.recv(&mut buf) {
                Ok(_) => {
                    rx.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) if stop.load(Ordering::Acquire) => break,
                Err(_) => {}
            }
        }
        Ok(())
    })?;
    let dst = SocketAddr::new(addr, server.port());
    let duration = opts.duration;
    let sent = client(target, ccpu, move || {
        let any: IpAddr = if addr.is_ipv6() {
            "::".parse().expect("literal")
        } else {
            "0.0.0.0".parse().expect("literal")
        };
        let s = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(io("udp bind"))?;
        s.connect(dst).map_err(io("udp connect"))?;
        let payload = [0x17u8; PPS_PAYLOAD];
        let end = Instant::now() + duration;
        let mut sent = 0u64;
        let mut i = 0u32;
        loop {
            // Check the clock every 64 datagrams: cheap enough.
            i = i.wrapping_add(1);
            if i.is_multiple_of(64) && Instant::now() >= end {
                break;
            }
            if s.send(&payload).is_ok() {
                sent += 1;
            }
        }
        Ok(sent)
    })?;
    // Let the receiver drain what is queued before it stops.
    std::thread::sleep(Duration::from_millis(100));
    finish(server)?;
    let got = received.load(Ordering::Relaxed).min(sent);
    let loss = if sent == 0 {
        0.0
    } else {
        100.0 * (sent - got) as f64 / sent as f64
    };
    Ok(Sample {
        value: got as f64 / duration.as_secs_f64() / 1000.0,
        latency: None,
        loss_pct: Some(loss),
    })
}
