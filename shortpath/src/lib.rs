//! shortpath: an eBPF dataplane that makes container networking as fast as
//! the host, with the lab, benchmark and tracer that prove it.
//!
//! Layers (each with its own error type; none reaches into another's
//! internals):
//! - [`netns`], [`nl`], [`sysctl`]: namespaces and netlink plumbing.
//! - [`lab`]: the article's topology in network namespaces.
//! - [`dataplane`]: the eBPF programs, their maps, attach and mode switch.

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
