//! `shortpath agent`: talk to a running shortpathd through its socket.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::{
    agent::{
        self,
        api::{self, EndpointRequest, Request},
    },
    dataplane::{AttachKind, Mode},
};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's API socket.
    #[arg(long, default_value = agent::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub call: AgentCall,
}

#[derive(Debug, Subcommand)]
pub enum AgentCall {
    /// Is it up, and since when; its pid and endpoint count.
    Health,
    /// The node's dataplane: mode, attach kind, every port with counters.
    Status,
    /// Show the mode the kernel runs, or switch it.
    Mode {
        mode: Option<Mode>,
        #[arg(long)]
        attach: Option<AttachKind>,
    },
    /// List endpoints, with whether the kernel's map holds each.
    Endpoints,
    /// Add an endpoint, or update the one with this id.
    Add {
        id: String,
        /// The pod's host-side veth.
        #[arg(long)]
        host_if: String,
        /// The pod's addresses (one IPv4, one IPv6 at most).
        #[arg(long = "addr", required = true)]
        addrs: Vec<String>,
        /// MAC of the pod's own interface.
        #[arg(long)]
        pod_mac: String,
        #[arg(long)]
        mtu: Option<u32>,
    },
    /// Remove an endpoint.
    Remove { id: String },
}

pub fn run(args: AgentArgs) -> anyhow::Result<i32> {
    let req = match args.call {
        AgentCall::Health => Request::Health,
        AgentCall::Status => Request::Status,
        AgentCall::Mode { mode: None, .. } => Request::ModeGet,
        AgentCall::Mode {
            mode: Some(mode),
            attach,
        } => Request::ModeSet { mode, attach },
        AgentCall::Endpoints => Request::EndpointList,
        AgentCall::Add {
            id,
            host_if,
            addrs,
            pod_mac,
            mtu,
        } => Request::EndpointAdd {
            endpoint: EndpointRequest {
                id,
                host_if,
                addrs,
                pod_mac,
                mtu,
            },
        },
        AgentCall::Remove { id } => Request::EndpointRemove { id },
    };
    let v: Value = api::call(&args.socket, &req)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}
