//! The packet-path tracer's ABI: the event the tracepoint programs write to
//! the ring buffer, the kernel structure offsets userspace resolves from
//! the running kernel's BTF, and the probe stream's payload tag.

/// Probe payloads start with this magic (as bytes "SPTR"), then a
/// big-endian `u32` sequence number.
pub const TAG_MAGIC: [u8; 4] = *b"SPTR";
/// Length of the tag at the start of a probe payload.
pub const TAG_LEN: usize = 8;

/// The NET_RX softirq number (`NET_RX_SOFTIRQ` in the kernel).
pub const NET_RX_SOFTIRQ: u32 = 3;

/// Which tracepoint produced an event. ABI: append, never renumber.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// `net:netif_receive_skb`: a device starts receiving the packet.
    Receive = 1,
    /// `net:netif_rx`: the packet is queued to a CPU's backlog.
    Backlog = 2,
    /// `net:net_dev_queue`: the stack hands the packet to a device.
    Queue = 3,
    /// `net:net_dev_start_xmit`: the device's driver transmits it.
    Xmit = 4,
    /// `fib:fib_table_lookup`, attributed to the packet this CPU handles.
    RouteLookup = 5,
    /// `sock:sk_data_ready`: a socket is woken with the packet queued.
    SocketReady = 6,
    /// `skb:kfree_skb`: the packet is dropped (`arg` = drop reason).
    Drop = 7,
}

impl EventKind {
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Receive,
            2 => Self::Backlog,
            3 => Self::Queue,
            4 => Self::Xmit,
            5 => Self::RouteLookup,
            6 => Self::SocketReady,
            7 => Self::Drop,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Receive => "netif_receive_skb",
            Self::Backlog => "netif_rx",
            Self::Queue => "net_dev_queue",
            Self::Xmit => "net_dev_start_xmit",
            Self::RouteLookup => "fib_table_lookup",
            Self::SocketReady => "sk_data_ready",
            Self::Drop => "kfree_skb",
        }
    }
}

/// The event carries a probe tag (`tag` is valid).
pub const FLAG_TAGGED: u8 = 1;
/// The event carries an IPv4 header (addresses, ports, id are valid).
pub const FLAG_IPV4: u8 = 2;

/// One tracepoint hit, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceEvent {
    /// `bpf_ktime_get_ns()`.
    pub ts_ns: u64,
    /// Address of the `sk_buff` (for route lookups: the one this CPU is
    /// handling; for socket wake-ups: the tail of the receive queue).
    pub skb: u64,
    /// NET_RX softirq run this event happened in (CPU in the top 16 bits,
    /// a per-CPU counter below); 0 outside NET_RX softirq.
    pub softirq: u64,
    /// Network namespace inode number (`net->ns.inum`).
    pub netns: u32,
    /// The device (`skb->dev->ifindex`); 0 when unknown.
    pub ifindex: u32,
    /// `skb->skb_iif`: the device the packet was last received on.
    pub iif: u32,
    /// Kind-specific: drop reason, route table id.
    pub arg: u32,
    /// Route lookups: the looked-up destination (the packet's own
    /// addresses and ids are those of the packet this CPU was handling).
    pub flow_daddr: [u8; 4],
    /// IPv4 source and destination, network byte order as in the header.
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// The probe sequence number (with [`FLAG_TAGGED`]).
    pub tag: u32,
    /// Route lookup result (0 = found), or 0.
    pub err: i32,
    pub ip_id: u16,
    pub sport: u16,
    pub dport: u16,
    /// An [`EventKind`] as `u8`.
    pub kind: u8,
    pub proto: u8,
    pub flags: u8,
    pub cpu: u8,
    pub _pad: [u8; 2],
}

/// Byte offsets of the kernel fields the tracer reads, resolved by
/// userspace from `/sys/kernel/btf/vmlinux` and frozen into `.rodata`.
/// A zero `valid` makes every program do nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub valid: u32,
    /// Only emit events of packets carrying a probe tag.
    pub tagged_only: u32,
    /// With `tagged_only == 0`: emit 1 packet in `sample` (by IP header).
    pub sample: u32,
    pub skb_dev: u32,
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_network_header: u32,
    pub skb_iif: u32,
    pub dev_ifindex: u32,
    pub dev_nd_net: u32,
    pub net_inum: u32,
    pub sock_net: u32,
    /// `sock.sk_receive_queue` (a `sk_buff_head`), and in it `prev`
    /// (the tail) and `qlen`.
    pub sock_receive_queue: u32,
    pub queue_tail: u32,
    pub queue_qlen: u32,
    pub nhc_dev: u32,
    pub flowi4_daddr: u32,
}

impl Offsets {
    /// All zero: the programs stay inert until userspace sets the offsets.
    pub const ZERO: Offsets = Offsets {
        valid: 0,
        tagged_only: 0,
        sample: 0,
        skb_dev: 0,
        skb_head: 0,
        skb_data: 0,
        skb_network_header: 0,
        skb_iif: 0,
        dev_ifindex: 0,
        dev_nd_net: 0,
        net_inum: 0,
        sock_net: 0,
        sock_receive_queue: 0,
        queue_tail: 0,
        queue_qlen: 0,
        nhc_dev: 0,
        flowi4_daddr: 0,
    };
}

/// Per-CPU state of the tracer programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// Current NET_RX softirq run id, 0 outside.
    pub softirq: u64,
    /// Runs started on this CPU.
    pub runs: u64,
    /// The last packet an event was emitted for on this CPU.
    pub skb: u64,
    pub netns: u32,
    pub tag: u32,
    pub ip_id: u16,
    pub flags: u8,
    pub proto: u8,
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport: u16,
    pub dport: u16,
}

/// Maximum lab namespaces the tracer filters on.
pub const MAX_TRACED_NETNS: u32 = 256;

/// Ring buffer size (bytes, a power of two multiple of the page size).
pub const RING_BYTES: u32 = 16 << 20;

/// Packs a softirq run id.
pub const fn softirq_run(cpu: u32, run: u64) -> u64 {
    ((cpu as u64) << 48) | (run & 0xffff_ffff_ffff)
}

/// The probe tag in `payload`, if it has one.
pub fn parse_tag(payload: &[u8]) -> Option<u32> {
    if payload.len() < TAG_LEN || payload[..4] != TAG_MAGIC {
        return None;
    }
    Some(u32::from_be_bytes([
        payload[4], payload[5], payload[6], payload[7],
    ]))
}

/// A probe payload of `len` bytes (at least [`TAG_LEN`]) with sequence `seq`.
pub fn write_tag(buf: &mut [u8], seq: u32) {
    buf[..4].copy_from_slice(&TAG_MAGIC);
    buf[4..8].copy_from_slice(&seq.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_round_trips_and_rejects_other_payloads() {
        let mut buf = [0u8; 16];
        write_tag(&mut buf, 0xdead_beef);
        assert_eq!(parse_tag(&buf), Some(0xdead_beef));
        assert_eq!(parse_tag(&buf[..7]), None);
        buf[0] = b'X';
        assert_eq!(parse_tag(&buf), None);
    }

    #[test]
    fn event_kinds_round_trip() {
        for v in 0..=255u8 {
            if let Some(k) = EventKind::from_u8(v) {
                assert_eq!(k as u8, v);
            }
        }
        assert_eq!(EventKind::from_u8(0), None);
    }

    #[test]
    fn event_layout_has_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<TraceEvent>(), 72);
        assert_eq!(core::mem::size_of::<CpuState>() % 8, 0);
        assert_eq!(softirq_run(1, 5) >> 48, 1);
    }
}
