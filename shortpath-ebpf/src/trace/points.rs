//! One handler per tracepoint. Packet events are emitted only for devices
//! (or sockets) in the lab's namespaces and only for wanted packets; route
//! lookups carry no packet and are attributed to the last packet this CPU
//! emitted an event for — userspace checks the lookup's addresses.

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns};
use shortpath_common::trace::{
    softirq_run, CpuState, EventKind, TraceEvent, FLAG_IPV4, FLAG_TAGGED, NET_RX_SOFTIRQ,
};

use super::{
    kernel::{self, L3},
    maps::{self, EVENTS},
};

#[inline(always)]
fn new_event(kind: EventKind, skb: u64) -> TraceEvent {
    TraceEvent {
        // SAFETY: helpers without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        skb,
        cpu: unsafe { bpf_get_smp_processor_id() } as u8,
        kind: kind as u8,
        ..TraceEvent::default()
    }
}

/// `BPF_RB_NO_WAKEUP`: the consumer polls on a timer. A wake-up per event
/// would schedule the reader on the CPU that is sending the packet, in the
/// middle of the path being measured.
const NO_WAKEUP: u64 = 1;

#[inline(always)]
fn submit(ev: &TraceEvent) {
    if EVENTS.output::<TraceEvent>(ev, NO_WAKEUP).is_err() {
        maps::count_lost();
    }
}

#[inline(always)]
fn remember(st: &mut CpuState, ev: &TraceEvent) {
    st.skb = ev.skb;
    st.netns = ev.netns;
    st.ifindex = ev.ifindex;
    st.tag = ev.tag;
    st.flags = ev.flags;
    st.proto = ev.proto;
    st.ip_id = ev.ip_id;
    st.saddr = ev.saddr;
    st.daddr = ev.daddr;
    st.sport = ev.sport;
    st.dport = ev.dport;
}

/// A tracepoint whose first argument is the packet's `sk_buff`.
#[inline(always)]
pub fn skb_event(kind: EventKind, skb: u64, at: L3, arg: u32) {
    let Some(o) = maps::offsets() else { return };
    let Some(st) = maps::cpu_state() else { return };
    let (mut netns, ifindex) = kernel::device(&o, kernel::skb_dev(&o, skb));
    if netns == 0 && kind == EventKind::Drop && st.skb == skb {
        // Freed after `skb->dev` was cleared: the namespace it was in.
        netns = st.netns;
    }
    if !maps::is_lab_netns(netns) {
        return;
    }
    let mut ev = new_event(kind, skb);
    ev.netns = netns;
    ev.ifindex = ifindex;
    ev.arg = arg;
    kernel::packet(&o, skb, at, &mut ev);
    if !kernel::wanted(&o, &ev) {
        return;
    }
    ev.iif = kernel::skb_iif(&o, skb);
    ev.softirq = st.softirq;
    remember(st, &ev);
    submit(&ev);
}

/// `fib:fib_table_lookup(tb_id, flp, nhc, err)`.
#[inline(always)]
pub fn route_lookup(tb_id: u32, flp: u64, nhc: u64, err: i32) {
    let Some(o) = maps::offsets() else { return };
    let Some(st) = maps::cpu_state() else { return };
    if st.skb == 0 {
        return;
    }
    let dev = if nhc == 0 {
        0
    } else {
        kernel::read::<u64>(nhc + o.nhc_dev as u64).unwrap_or(0)
    };
    let (mut netns, ifindex) = kernel::device(&o, dev);
    if netns == 0 {
        netns = st.netns;
    }
    if !maps::is_lab_netns(netns) {
        return;
    }
    let mut ev = new_event(EventKind::RouteLookup, st.skb);
    ev.netns = netns;
    ev.ifindex = ifindex;
    ev.arg = tb_id;
    ev.err = err;
    ev.tag = st.tag;
    ev.flags = st.flags & (FLAG_TAGGED | FLAG_IPV4);
    ev.proto = st.proto;
    ev.ip_id = st.ip_id;
    ev.saddr = st.saddr;
    ev.daddr = st.daddr;
    ev.sport = st.sport;
    ev.dport = st.dport;
    ev.flow_daddr = kernel::read::<[u8; 4]>(flp + o.flowi4_daddr as u64).unwrap_or_default();
    ev.softirq = st.softirq;
    submit(&ev);
}

/// `sock:sk_data_ready(sk)`: the packet is the tail of the receive queue.
#[inline(always)]
pub fn socket_ready(sk: u64) {
    let Some(o) = maps::offsets() else { return };
    let Some(st) = maps::cpu_state() else { return };
    let netns = kernel::netns_inum(&o, sk + o.sock_net as u64);
    if !maps::is_lab_netns(netns) {
        return;
    }
    let Some(skb) = kernel::read::<u64>(sk + o.sock_receive_queue_tail as u64) else {
        return;
    };
    // An empty queue's tail points at the queue head inside the socket.
    if skb == 0 || skb == sk + o.sock_receive_queue_tail as u64 - 8 {
        return;
    }
    let mut ev = new_event(EventKind::SocketReady, skb);
    ev.netns = netns;
    ev.ifindex = kernel::device(&o, kernel::skb_dev(&o, skb)).1;
    kernel::packet(&o, skb, L3::NetworkHeader, &mut ev);
    if !kernel::wanted(&o, &ev) {
        return;
    }
    ev.iif = kernel::skb_iif(&o, skb);
    ev.softirq = st.softirq;
    submit(&ev);
}

/// `irq:softirq_entry` / `softirq_exit`: numbers NET_RX runs per CPU.
#[inline(always)]
pub fn softirq(vec: u32, entry: bool) {
    if vec != NET_RX_SOFTIRQ {
        return;
    }
    let Some(st) = maps::cpu_state() else { return };
    if entry {
        st.runs += 1;
        // SAFETY: helper without arguments.
        let cpu = unsafe { bpf_get_smp_processor_id() };
        st.softirq = softirq_run(cpu + 1, st.runs);
    } else {
        st.softirq = 0;
    }
}
