//! shortpath's eBPF programs, written in the style of Cilium's `bpf/`:
//! small helpers by concern and one file per attach point.
//!
//! - [`from_nic`]: TC ingress of the node NIC (traffic arriving for pods).
//! - [`from_pod`]: TC ingress of a pod's host-side veth (traffic pods send).
//! - [`trace`]: tracepoint programs of the packet-path tracer.
//! - [`reference`]: the hand-written programs `prog-bench` compares with.
//!
//! The binaries under `src/bin/` only declare the entry points; everything
//! they run lives here so it can be read (and reviewed) by concern.
#![no_std]
#![cfg_attr(
    any(unaligned_packet_access, ordered_loads),
    feature(asm_experimental_arch)
)]

pub mod addr;
pub mod config;
pub mod counters;
pub mod endpoint_cache;
pub mod fib;
pub mod from_nic;
pub mod from_pod;
pub mod ipv6;
pub mod key;
pub mod load;
pub mod maps;
pub mod parse;
pub mod redirect;
pub mod reference;
pub mod rewrite;
pub mod source;
pub mod stack_flow;
pub mod trace;
pub mod words;
