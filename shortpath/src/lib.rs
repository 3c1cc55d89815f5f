//! shortpath: an eBPF dataplane that makes container networking as fast as
//! the host, with the lab, benchmark and tracer that prove it.
//!
//! Layers (each with its own error type; none reaches into another's
//! internals):
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
pub mod lab;
pub mod netns;
pub mod nl;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod sysctl;
pub mod table;
pub mod trace;
