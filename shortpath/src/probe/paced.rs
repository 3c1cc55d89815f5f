//! Paced, tagged UDP streams: datagrams at a steady rate, each stamped
//! with its sequence number, each sent at its due time (not as fast as
//! possible after a late wake-up, and without drift over a long stream).

use std::{
    io,
    net::UdpSocket,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

/// When a paced stream ends.
#[derive(Clone, Copy, Debug)]
pub enum Until<'a> {
    /// After this many datagrams (sent or not).
    Count(u64),
    /// Once the flag is set (checked before each datagram).
    Stop(&'a AtomicBool),
}

/// What a failed send does to a paced stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// End the stream with the error.
    Fail,
    /// Go on with the next datagram; the failed one is not counted.
    Skip,
}

/// Sends datagrams of `buf_len` bytes on the connected `sock`, `pps` per
/// second: datagram `seq` (0, 1, …) is due `seq / pps` seconds after the
/// start and is filled by `tag(seq, buf)` (the same buffer each time).
/// Returns how many were sent.
pub fn send_paced(
    sock: &UdpSocket,
    pps: u32,
    buf_len: usize,
    until: Until<'_>,
    on_error: OnError,
    mut tag: impl FnMut(u64, &mut [u8]),
) -> io::Result<u64> {
    let pps = f64::from(pps.max(1));
    let mut buf = vec![0u8; buf_len];
    let start = Instant::now();
    let mut sent = 0;
    for seq in 0u64.. {
        let more = match until {
            Until::Count(n) => seq < n,
            Until::Stop(flag) => !flag.load(Ordering::Acquire),
        };
        if !more {
            break;
        }
        let due = start + Duration::from_secs_f64(seq as f64 / pps);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        tag(seq, &mut buf);
        match sock.send(&buf) {
            Ok(_) => sent += 1,
            Err(e) if on_error == OnError::Fail => return Err(e),
            Err(_) => {}
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (tx, rx)
    }

    fn seq_of(buf: &[u8]) -> u64 {
        u64::from_be_bytes(buf[..8].try_into().unwrap())
    }

    #[test]
    fn paces_and_tags_a_fixed_count() {
        let (tx, rx) = pair();
        let t = Instant::now();
        let sent = send_paced(&tx, 200, 16, Until::Count(20), OnError::Fail, |seq, b| {
            b[..8].copy_from_slice(&seq.to_be_bytes())
        })
        .unwrap();
        let elapsed = t.elapsed();
        assert_eq!(sent, 20);
        // The last one is due 19/200 s after the first; a busy machine
        // may be late, never early.
        assert!(elapsed >= Duration::from_millis(95), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
        let mut buf = [0u8; 64];
        for want in 0..20 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 16);
            assert_eq!(seq_of(&buf), want);
        }
    }

    #[test]
    fn runs_until_the_flag_is_set() {
        let (tx, rx) = pair();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let setter = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::Release);
        });
        let sent = send_paced(&tx, 500, 8, Until::Stop(&stop), OnError::Fail, |seq, b| {
            b.copy_from_slice(&seq.to_be_bytes())
        })
        .unwrap();
        setter.join().unwrap();
        // About 50 at 500/s in 100 ms; scheduling may shift it a little.
        assert!((20..=150).contains(&sent), "{sent}");
        let mut buf = [0u8; 64];
        for want in 0..sent {
            rx.recv(&mut buf).unwrap();
            assert_eq!(seq_of(&buf), want);
        }
    }

    #[test]
    fn a_failed_send_ends_the_stream_or_is_skipped() {
        // Not connected: every send fails.
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut tagged = Vec::new();
        let r = send_paced(&s, 1000, 8, Until::Count(5), OnError::Fail, |seq, _| {
            tagged.push(seq)
        });
        assert!(r.is_err());
        assert_eq!(tagged, [0], "stops at the first failure");

        tagged.clear();
        let r = send_paced(&s, 1000, 8, Until::Count(5), OnError::Skip, |seq, _| {
            tagged.push(seq)
        });
        assert_eq!(r.unwrap(), 0, "failed sends are not counted");
        assert_eq!(tagged, [0, 1, 2, 3, 4], "every datagram is tried");
    }
}
