//! What a caller records of a node's dataplane setting (the lab keeps it
//! in its runtime directory). A cache: the kernel's view ([`super::kernel`])
//! is what counts, and `status` reports a drift when the two disagree.

use serde::{Deserialize, Serialize};

use super::{AttachKind, Mode};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct DataplaneState {
    pub mode: Mode,
    /// How programs are attached; `None` in bridge mode.
    pub attach: Option<AttachKind>,
}
