//! Types shared by the eBPF programs and userspace: map keys and values,
//! counter reasons, trace events, and the pure helpers both sides agree on.
//!
//! Everything here is `#[repr(C)]` and `no_std`; the `user` feature adds the
//! `aya::Pod` impls userspace needs to read and write the maps.
#![no_std]

pub mod counters;
pub mod csum;
pub mod endpoint;
pub mod mode;
pub mod next_hop;
pub mod pod_cidr;
pub mod stack_flow;
pub mod trace;

#[cfg(feature = "user")]
mod pod {
    use crate::{
        counters::{CounterKey, DeviceCounters},
        endpoint::{Endpoint, EndpointKey},
        next_hop::NextHop,
        pod_cidr::PodCidrKey,
        stack_flow::StackFlowKey,
        trace::{CpuState, Offsets, TraceEvent},
    };

    // SAFETY: all of them are `#[repr(C)]`, contain only integers and byte arrays,
    // and have explicit padding fields, so every bit pattern is valid.
    unsafe impl aya::Pod for EndpointKey {}
    unsafe impl aya::Pod for Endpoint {}
    unsafe impl aya::Pod for CounterKey {}
    unsafe impl aya::Pod for DeviceCounters {}
    unsafe impl aya::Pod for PodCidrKey {}
    unsafe impl aya::Pod for NextHop {}
    unsafe impl aya::Pod for StackFlowKey {}
    unsafe impl aya::Pod for TraceEvent {}
    unsafe impl aya::Pod for Offsets {}
    unsafe impl aya::Pod for CpuState {}
}
