//! shortpath: an eBPF dataplane that makes container networking as fast as
//! the host, with the lab, benchmark and tracer that prove it.
//!
//! Layers (each with its own error type; none reaches into another's
//! internals):
//! - [`names`], [`securefs`], [`runtime`], [`privileges`], [`fault`]: the
//!   safety base: validated names, checked directories, per-lab state and
//!   the one-writer lock, privilege checks, fault points for tests.
//! - [`netns`], [`nl`], [`sysctl`]: namespaces and netlink plumbing.
//! - [`lab`]: the article's topology in network namespaces.
//! - [`dataplane`]: the eBPF programs, their maps, attach and mode switch.
//! - [`control`]: keeps a lab and its dataplane in step.
//! - [`bench`], [`trace`], [`report`]: the proof: load generator, per-packet
//!   kernel path tracer, and the article reproduced as a report.

pub mod bench;
pub mod cli;
pub mod control;
pub mod dataplane;
pub mod fault;
pub mod lab;
pub mod names;
pub mod netns;
pub mod nl;
pub mod privileges;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod securefs;
pub mod sysctl;
pub mod table;
pub mod trace;
