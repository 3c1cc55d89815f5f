//! The eBPF dataplane: loading the TC programs, their maps, attaching them
//! to a lab's nodes and switching modes.

pub mod object;
