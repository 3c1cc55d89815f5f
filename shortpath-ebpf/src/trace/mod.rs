//! The packet-path tracer: programs on raw tracepoints of the networking
//! stack that follow packets of the lab's namespaces and report every hop
//! to userspace through a ring buffer.
//!
//! - [`maps`]: the ring buffer, the namespace filter, per-CPU state and the
//!   kernel offsets (resolved by userspace from BTF, frozen in `.rodata`).
//! - [`kernel`]: reads of kernel structures (`sk_buff`, `net_device`, the
//!   packet's IPv4 header and probe tag).
//! - [`points`]: one handler per tracepoint.
//!
//! Raw tracepoints (not `tp_btf`): their arguments are plain values, so the
//! programs read kernel memory with `bpf_probe_read_kernel` at offsets that
//! match the running kernel, and need neither fentry nor kprobes.

pub mod kernel;
pub mod maps;
pub mod points;
