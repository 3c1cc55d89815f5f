//! A server thread in a network namespace that binds, reports the port it
//! got and then serves until it is told to stop (probe servers, benchmark
//! servers, the tracer's probe receiver).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    time::Duration,
};

use super::{
    thread::{spawn_here, spawn_in},
    Netns, NetnsError, NetnsThread,
};

/// Why a namespace thread gave no result.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    /// It could not be spawned or could not enter its namespace.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("the thread panicked")]
    Panicked,
}

/// Waits for `thread` to end and returns what it returned.
pub fn join_thread<T>(thread: NetnsThread<T>) -> Result<T, ThreadError> {
    match thread.join() {
        Ok(r) => r.map_err(ThreadError::Netns),
        Err(_) => Err(ThreadError::Panicked),
    }
}

/// Why a [`PortServer`] reported no port.
#[derive(Debug)]
pub enum StartError<T> {
    /// The thread did not start, could not enter its namespace or
    /// panicked.
    Thread(ThreadError),
    /// The thread ended without reporting a port and returned this
    /// (usually its own error: why it could not bind).
    Ended(T),
    /// No port within this time; the thread, still running, was told to
    /// stop and left to end on its own.
    Timeout(Duration),
}

impl<T> std::fmt::Display for StartError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Thread(e) => write!(f, "the server thread failed: {e}"),
            StartError::Ended(_) => f.write_str("the server thread ended without a port"),
            StartError::Timeout(t) => write!(f, "the server reported no port within {t:?}"),
        }
    }
}

/// Where a server thread reports the port it bound (once).
pub struct PortSender(mpsc::Sender<u16>);

impl PortSender {
    pub fn send(self, port: u16) {
        // The starter may have given up waiting: nothing to tell then.
        let _ = self.0.send(port);
    }
}

/// A server thread that reported its port; it runs until it sees its stop
/// flag ([`PortServer::finish`]) or ends on its own ([`PortServer::join`]).
pub struct PortServer<T> {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: NetnsThread<T>,
}

impl<T: Send + 'static> PortServer<T> {
    /// Runs `f` on a thread in `ns` and waits up to `timeout` for the port
    /// it sends. `f` gets the stop flag to watch while it serves.
    pub fn start<F>(ns: &Netns, timeout: Duration, f: F) -> Result<Self, StartError<T>>
    where
        F: FnOnce(PortSender, Arc<AtomicBool>) -> T + Send + 'static,
    {
        Self::launch(|g| spawn_in(ns, g), timeout, f)
    }

    /// [`PortServer::start`] in the caller's own namespace (no root needed).
    pub fn start_here<F>(timeout: Duration, f: F) -> Result<Self, StartError<T>>
    where
        F: FnOnce(PortSender, Arc<AtomicBool>) -> T + Send + 'static,
    {
        Self::launch(spawn_here, timeout, f)
    }

    fn launch<F, S>(spawn: S, timeout: Duration, f: F) -> Result<Self, StartError<T>>
    where
        F: FnOnce(PortSender, Arc<AtomicBool>) -> T + Send + 'static,
        S: FnOnce(Box<dyn FnOnce() -> T + Send>) -> Result<NetnsThread<T>, NetnsError>,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = spawn(Box::new(move || f(PortSender(tx), flag)))
            .map_err(|e| StartError::Thread(e.into()))?;
        match rx.recv_timeout(timeout) {
            Ok(port) => Ok(Self { port, stop, thread }),
            // The sender is gone: the thread has ended (or is ending).
            Err(mpsc::RecvTimeoutError::Disconnected) => match join_thread(thread) {
                Ok(r) => Err(StartError::Ended(r)),
                Err(e) => Err(StartError::Thread(e)),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop.store(true, Ordering::Release);
                Err(StartError::Timeout(timeout))
            }
        }
    }
}

impl<T> PortServer<T> {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The flag the thread watches (to share it with the thread's peers).
    pub fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// Tells the thread to stop, without waiting for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Tells the thread to stop and waits for its result.
    pub fn finish(self) -> Result<T, ThreadError> {
        self.stop();
        self.join()
    }

    /// Waits for the thread to end on its own.
    pub fn join(self) -> Result<T, ThreadError> {
        join_thread(self.thread)
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn udp_echo_until_stopped(port: PortSender, stop: Arc<AtomicBool>) -> std::io::Result<u32> {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.set_read_timeout(Some(Duration::from_millis(20)))?;
        port.send(s.local_addr()?.port());
        let mut served = 0;
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Acquire) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                s.send_to(&buf[..n], from)?;
                served += 1;
            }
        }
        Ok(served)
    }

    #[test]
    fn reports_the_port_serves_and_finishes() {
        let server = PortServer::start_here(T, udp_echo_until_stopped).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c.connect(("127.0.0.1", server.port())).unwrap();
        let mut buf = [0u8; 8];
        for i in 0..3u8 {
            c.send(&[i]).unwrap();
            assert_eq!(c.recv(&mut buf).unwrap(), 1);
            assert_eq!(buf[0], i);
        }
        assert_eq!(server.finish().unwrap().unwrap(), 3);
    }

    #[test]
    fn join_waits_without_stopping() {
        let server = PortServer::start_here(T, |port, stop| {
            port.send(7);
            std::thread::sleep(Duration::from_millis(50));
            stop.load(Ordering::Acquire)
        })
        .unwrap();
        assert_eq!(server.port(), 7);
        assert!(!server.join().unwrap(), "join must not set the flag");
    }

    #[test]
    fn a_thread_that_ends_without_a_port_gives_its_own_result() {
        let r =
            PortServer::start_here(T, |_port, _stop| -> Result<(), &str> { Err("cannot bind") });
        assert!(matches!(r, Err(StartError::Ended(Err("cannot bind")))));
    }

    #[test]
    fn a_panicking_thread_is_reported() {
        let r = PortServer::<()>::start_here(T, |_port, _stop| panic!("on purpose"));
        assert!(matches!(r, Err(StartError::Thread(ThreadError::Panicked))));
    }

    #[test]
    fn no_port_in_time_stops_the_thread() {
        let (seen_tx, seen_rx) = mpsc::channel();
        let r = PortServer::start_here(Duration::from_millis(50), move |port, stop| {
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = seen_tx.send(());
            drop(port);
        });
        assert!(matches!(r, Err(StartError::Timeout(_))));
        seen_rx
            .recv_timeout(T)
            .expect("the thread saw its stop flag");
    }

    #[test]
    fn a_missing_namespace_is_a_thread_error() {
        let ns = Netns::new("shortpath-unit-no-such-namespace");
        let r = PortServer::start(&ns, T, |port, _stop| port.send(1));
        assert!(matches!(
            r,
            Err(StartError::Thread(ThreadError::Netns(
                NetnsError::Missing { .. }
            )))
        ));
    }
}
