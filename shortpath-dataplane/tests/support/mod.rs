//! Shared by the dataplane's integration tests (and, by path, the lab's
//! `from_pod` tests): crafted packets and BPF_PROG_TEST_RUN.
#![allow(dead_code)]

pub mod packet;
pub mod prog;

/// These tests load programs and make namespaces: root only.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests load eBPF programs: run them as root"
    );
}
