//! Shared by the dataplane's integration tests (and, by path, the lab's
//! `from_pod` tests): crafted packets and BPF_PROG_TEST_RUN.
#![allow(dead_code)]

pub mod packet;
pub mod prog;

#[path = "root.rs"]
mod root;
#[allow(unused_imports)] // not every test binary has root-only tests
pub(crate) use root::root_or_skip;

/// For helpers that load programs: a test that reaches one as another user
/// forgot to start with `root_or_skip!()`.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test loads eBPF programs: start it with root_or_skip!()"
    );
}
