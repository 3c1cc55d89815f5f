//! shortpath: an eBPF dataplane that makes container networking as fast as
//! the host, with the lab, benchmark and tracer that prove it.
//!
//! Layers (each with its own error type; none reaches into another's
//! internals):
//! - [`dataplane`] (the `shortpath-dataplane` crate): the eBPF programs,
//!   their maps, attach and mode switch, and the plumbing shared with the
//!   agent and the CNI plugin ([`netns`], [`nl`], [`securefs`],
//!   [`privileges`], [`sysctl`]).
//! - [`names`], [`runtime`], [`fault`]: the lab's validated names, per-lab
//!   state and the one-writer lock, fault points for tests.
//! - [`lab`]: the article's topology in network namespaces.
//! - [`agent`]: `shortpathd`, the node agent that runs the dataplane on a
//!   node and serves its local API.
//! - [`control`]: keeps a lab and its dataplane in step.
//! - [`bench`], [`trace`], [`report`]: the proof: load generator, per-packet
//!   kernel path tracer, and the article reproduced as a report.
//! - [`demo`]: real containers (containerd in the lab's nodes) on the
//!   fast path, narrated.

pub use shortpath_dataplane as dataplane;
pub use shortpath_dataplane::{netns, nl, privileges, securefs, sysctl};

pub mod agent;
pub mod bench;
pub mod cli;
pub mod cni;
pub mod control;
pub mod demo;
pub mod fault;
pub mod lab;
pub mod names;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod table;
pub mod trace;
