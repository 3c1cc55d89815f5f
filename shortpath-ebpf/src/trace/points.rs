//! One handler per tracepoint. Packet events are emitted only for wanted
//! packets (checked first: it is the cheaper test for other traffic) on
//! devices or sockets in the lab's namespaces. Route lookups carry no
//! packet and are attributed to the last packet this CPU emitted an event
//! for — userspace checks the lookup's destination.

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns};
use shortpath_common::trace::{
    softirq_run, CpuState, EventKind, TraceEvent, FLAG_IPV4, FLAG_TAGGED, NET_RX_SOFTIRQ,
};

use super::{
    kernel::{self, L3},
    maps::{self, offset, EVENTS},
};

/// `BPF_RB_NO_WAKEUP`: the consumer polls on a timer. A wake-up per event
/// would schedule the reader on the CPU that is sending the packet, in the
/// middle of the path being measured.
const NO_WAKEUP: u64 = 1;

#[inline(always)]
fn stamp(ev: &mut TraceEvent, kind: EventKind) {
    // SAFETY: helpers without arguments.
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.cpu = unsafe { bpf_get_smp_processor_id() } as u8;
    ev.kind = kind as u8;
}

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
    if !maps::enabled() {
        return;
    }
    let Some(st) = maps::cpu_state() else { return };
    let mut ev = TraceEvent {
        skb,
        arg,
        ..TraceEvent::default()
    };
    kernel::packet(skb, at, &mut ev);
    if !kernel::wanted(&ev) {
        // This CPU moved on to a packet we do not follow: its route
        // lookups are not ours.
        st.skb = 0;
        return;
    }
    let (mut netns, ifindex) = kernel::device(kernel::skb_dev(skb));
    if netns == 0 && kind == EventKind::Drop && st.skb == skb {
        // Freed after `skb->dev` was cleared: the namespace it was in.
        netns = st.netns;
    }
    if !maps::is_lab_netns(netns) {
        return;
    }
    ev.netns = netns;
    ev.ifindex = ifindex;
    ev.iif = kernel::skb_iif(skb);
    ev.softirq = st.softirq;
    stamp(&mut ev, kind);
    remember(st, &ev);
    submit(&ev);
}

/// `fib:fib_table_lookup(tb_id, flp, nhc, err)`.
#[inline(always)]
pub fn route_lookup(tb_id: u32, flp: u64, nhc: u64, err: i32) {
    if !maps::enabled() {
        return;
    }
    let Some(st) = maps::cpu_state() else { return };
    if st.skb == 0 {
        return;
    }
    let dev: u64 = if nhc == 0 {
        0
    } else {
        kernel::field(nhc, offset!(nhc_dev))
    };
    let (mut netns, ifindex) = kernel::device(dev);
    if netns == 0 {
        netns = st.netns;
    }
    if !maps::is_lab_netns(netns) {
        return;
    }
    let mut ev = TraceEvent {
        skb: st.skb,
        netns,
        ifindex,
        arg: tb_id,
        err,
        tag: st.tag,
        flags: st.flags & (FLAG_TAGGED | FLAG_IPV4),
        proto: st.proto,
        ip_id: st.ip_id,
        saddr: st.saddr,
        daddr: st.daddr,
        sport: st.sport,
        dport: st.dport,
        flow_daddr: kernel::field(flp, offset!(flowi4_daddr)),
        softirq: st.softirq,
        ..TraceEvent::default()
    };
    stamp(&mut ev, EventKind::RouteLookup);
    submit(&ev);
}

/// `sock:sk_data_ready(sk)`: the packet is the tail of the receive queue.
#[inline(always)]
pub fn socket_ready(sk: u64) {
    if !maps::enabled() {
        return;
    }
    let Some(st) = maps::cpu_state() else { return };
    let queue = sk + offset!(sock_receive_queue);
    let qlen: u32 = kernel::field(queue, offset!(queue_qlen));
    if qlen == 0 {
        return;
    }
    let skb: u64 = kernel::field(queue, offset!(queue_tail));
    if skb == 0 {
        return;
    }
    let mut ev = TraceEvent {
        skb,
        ..TraceEvent::default()
    };
    kernel::packet(skb, L3::NetworkHeader, &mut ev);
    if !kernel::wanted(&ev) {
        return;
    }
    let netns = kernel::netns_inum(sk + offset!(sock_net));
    if !maps::is_lab_netns(netns) {
        return;
    }
    ev.netns = netns;
    // Not `skb->dev`: once queued to a UDP socket that word holds
    // `dev_scratch`, not a pointer. `skb_iif` names the receiving device.
    ev.iif = kernel::skb_iif(skb);
    ev.softirq = st.softirq;
    stamp(&mut ev, EventKind::SocketReady);
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
