//! The packet-path tracer: programs on BTF tracepoints of the networking
//! stack that follow packets of the lab's namespaces and report every hop
//! to userspace through a ring buffer.
//!
//! - [`maps`]: the ring buffer, the namespace filter, per-CPU state and the
//!   kernel offsets (resolved by userspace from BTF, frozen in `.rodata`).
//! - [`kernel`]: reads of kernel structures (`sk_buff`, `net_device`, the
//!   packet's IPv4 header and probe tag).
//! - [`points`]: one handler per tracepoint.
//!
//! BTF tracepoints (`tp_btf`): neither fentry nor kprobes, which this
//! kernel lacks. Their arguments are BTF-typed kernel pointers, so fields
//! are plain loads the verifier checks against the kernel's BTF; the
//! offsets come from userspace (resolved from the same BTF) through frozen
//! `.rodata`, which keeps the object free of CO-RE relocations.

pub mod kernel;
pub mod maps;
pub mod points;
