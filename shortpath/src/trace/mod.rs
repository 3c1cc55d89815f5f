//! `shortpath trace`: the per-packet kernel path of each mode, from
//! tracepoints — the article's ftrace analysis as numbers.
//!
//! - [`btf`]: field offsets of the running kernel.
//! - [`tracer`]: loads and attaches the tracepoint programs, collects events.
//! - [`stream`]: the probe traffic (tagged UDP, pod to remote pod).
//! - [`path`]: events → per-packet RX and TX paths (pure).
//! - [`summary`]: figures per mode and direction, tables.
//! - [`run`]: a trace run over modes on a lab.

pub mod btf;
pub mod path;
mod run;
pub mod stream;
pub mod summary;
pub mod tracer;

use aya::{maps::MapError, EbpfError};

use crate::{control::ControlError, netns::NetnsError};

pub use path::Direction;
pub use run::{run, Access, ModeRun, TraceConfig, TraceParams, TraceResult};
pub use summary::DirectionSummary;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("kernel BTF: {what}")]
    Btf { what: String },
    #[error("loading the tracer object: {0} (is this a kernel with BPF and BTF? run as root)")]
    Load(#[source] Box<EbpfError>),
    #[error("the tracer object has no map {0}")]
    NoMap(&'static str),
    #[error("tracer map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error(
        "tracepoint {tracepoint}: {error} (the tracer needs it; this kernel lacks it or BTF tracepoint programs)"
    )]
    Attach {
        tracepoint: &'static str,
        error: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("lab {lab}: {what}")]
    Topology { lab: String, what: String },
    #[error("lab {lab}: its ports run different modes (an interrupted switch); run `shortpath mode <mode> --name {lab}` first")]
    MixedMode { lab: String },
    #[error("the tracer thread panicked")]
    Panicked,
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Control(Box<ControlError>),
}

impl TraceError {
    fn map(name: &'static str, e: MapError) -> Self {
        Self::Map {
            name,
            source: Box::new(e),
        }
    }
}

impl From<ControlError> for TraceError {
    fn from(e: ControlError) -> Self {
        TraceError::Control(Box::new(e))
    }
}
