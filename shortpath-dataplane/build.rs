//! Builds the eBPF objects (`shortpath-ebpf`, always in release mode) into
//! OUT_DIR, where `src/object.rs` embeds them. The toolchain is the dated
//! nightly named in `shortpath-ebpf/rust-toolchain.toml`; `scripts/setup.sh`
//! installs it and bpf-linker.
//!
//! What `aya_build::build_ebpf` did, without forwarding every line of the
//! nested cargo as a `cargo:warning`: a good build prints nothing (only the
//! eBPF crate's own compiler warnings, if it has any); a failed one shows the
//! nested cargo's whole output and fails.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _};

/// The `[[bin]]`s of `shortpath-ebpf`: the names `src/object.rs` includes.
const OBJECTS: [&str; 3] = ["shortpath-tc", "shortpath-trace", "shortpath-reference"];

/// Architectures whose kernels have `CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`:
/// their verifier accepts unaligned packet loads and stores.
const UNALIGNED_PACKET_ACCESS: [&str; 3] = ["x86_64", "aarch64", "s390x"];

/// Architectures whose CPUs keep loads in program order (x86-TSO): the
/// programs' endpoint cache relies on it (shortpath-ebpf/src/endpoint_cache.rs).
const ORDERED_LOADS: [&str; 1] = ["x86_64"];

const SETUP: &str =
    "run scripts/setup.sh (the pinned nightly with rust-src, and bpf-linker for its LLVM)";

fn main() {
    // Not `main() -> Result`: that would add a backtrace under RUST_BACKTRACE.
    if let Err(e) = build() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn build() -> anyhow::Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR")?);
    let workspace = manifest.join("..");
    let ebpf = workspace.join("shortpath-ebpf");

    // The nested cargo decides what is stale; these decide when to ask it.
    // The eBPF crate (its sources, manifest and toolchain file), the types it
    // shares with userspace, and the workspace manifest (the eBPF release
    // profile) and lock file (aya-ebpf's version).
    for watched in [
        ebpf.clone(),
        workspace.join("shortpath-common"),
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    let toolchain = toolchain(&ebpf.join("rust-toolchain.toml"))?;
    let target = match env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() {
        Ok("little") => "bpfel-unknown-none",
        Ok("big") => "bpfeb-unknown-none",
        other => bail!("unsupported target endianness {other:?}"),
    };
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    // aya-ebpf picks its per-architecture definitions (pt_regs, ...) by this cfg.
    let mut rustflags = vec![
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
        // BPF ISA v3 (Linux 5.1+; the programs need 5.10 for
        // bpf_redirect_peer): 32-bit registers and jumps, so 32-bit values
        // need no shift pair to clear their upper half, and load.rs may
        // give its loads 32-bit (`wreg`) outputs.
        "-Ctarget-cpu=v3".to_owned(),
    ];
    // The programs then read packet words with one load each
    // (shortpath-ebpf/src/load.rs).
    if UNALIGNED_PACKET_ACCESS.contains(&arch.as_str()) {
        rustflags.push("--cfg=unaligned_packet_access".to_owned());
    }
    if ORDERED_LOADS.contains(&arch.as_str()) {
        rustflags.push("--cfg=ordered_loads".to_owned());
    }
    let rustflags = rustflags.join("\x1f");
    // Its own target directory: the outer cargo holds the lock on ours.
    let target_dir = out_dir.join("ebpf-target");

    let mut cargo = Command::new("rustup");
    cargo
        .args(["run", &toolchain, "cargo", "build", "--quiet"])
        .args(["--package", "shortpath-ebpf", "--bins", "--release"])
        .args(["--target", target, "-Z", "build-std=core", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&ebpf)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        // Set by the outer cargo for its own toolchain (and clippy-driver).
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let out = cargo
        .output()
        .with_context(|| format!("could not start {cargo:?}: {SETUP}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Cargo shows a failed build script's stderr under `--- stderr`.
        eprintln!("{}", stderr.trim_end());
        bail!(
            "building the eBPF programs with {toolchain} failed ({}), output above; \
             if it is about the toolchain, rust-src or bpf-linker: {SETUP}",
            out.status
        );
    }
    // With --quiet, a good build's stderr holds only diagnostics.
    for line in stderr.lines() {
        println!("cargo:warning={line}");
    }

    let built = target_dir.join(target).join("release");
    for name in OBJECTS {
        let (from, to) = (built.join(name), out_dir.join(name));
        fs::copy(&from, &to)
            .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// `channel` of a rust-toolchain.toml (one `key = "value"` line; no toml
/// parser needed).
fn toolchain(file: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "channel").then(|| value.trim().trim_matches('"').to_owned())
        })
        .with_context(|| format!("no `channel = \"...\"` in {}", file.display()))
}
