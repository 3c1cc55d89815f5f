//! Builds the eBPF objects (`shortpath-ebpf`, nightly + rust-src, always in
//! release mode) into OUT_DIR; `src/dataplane/object.rs` embeds them.
use std::{env, path::PathBuf};

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let ebpf = manifest.join("../shortpath-ebpf");
    let common = manifest.join("../shortpath-common/src");
    // aya-build watches the eBPF crate; the shared types change it too.
    println!("cargo:rerun-if-changed={}", common.display());
    let root = ebpf.to_str().context("non-UTF-8 path to shortpath-ebpf")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "shortpath-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs failed: run scripts/setup.sh (nightly + rust-src, bpf-linker 0.13 for LLVM 22)",
    )
}
