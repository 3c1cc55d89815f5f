#!/usr/bin/env bash
# Make a bare Debian 12 machine ready to build and test shortpath. Idempotent:
# every step checks first and skips what is already there.
set -euo pipefail

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (apt packages, bpffs and network namespaces need it)" >&2
  exit 1
fi

# 1. Debian packages. llvm-22-dev matches the LLVM inside the eBPF toolchain's
#    rustc (bpf-linker links against it).
APT_PACKAGES=(
  llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev  # bpf-linker build
  iproute2 nftables iputils-ping                      # lab, tests
  iperf3 sockperf                                     # generator validation (docs/PERFORMANCE.md)
  bpftool                                             # debugging aid
  containerd runc busybox-static containernetworking-plugins  # CNI tests: real runtime, IPAM, rootfs
  protobuf-compiler                                   # the CRI test client (k8s-cri builds its protos)
  build-essential pkg-config ca-certificates curl
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "apt packages present"
fi

# 2. Rust toolchains: stable for userspace; for the eBPF crate the dated nightly
#    (with its components) that shortpath-ebpf/rust-toolchain.toml names, the
#    one place it is written down (shortpath-dataplane/build.rs reads it too).
export PATH="$HOME/.cargo/bin:$PATH"
command -v rustup >/dev/null || { echo "setup: rustup not found; install Rust via https://rustup.rs first" >&2; exit 1; }
toolchain_file="$(dirname "$0")/../shortpath-ebpf/rust-toolchain.toml"
ebpf_toolchain=$(sed -n 's/^channel *= *"\(.*\)".*/\1/p' "$toolchain_file")
ebpf_components=$(sed -n 's/^components *= *\[\(.*\)\].*/\1/p' "$toolchain_file" | grep -o '[A-Za-z0-9_-]\+' | tr '\n' ' ')
[ -n "$ebpf_toolchain" ] || { echo "setup: no channel in $toolchain_file" >&2; exit 1; }
if rustup toolchain list | grep -q "^$ebpf_toolchain"; then
  log "$ebpf_toolchain present"
else
  log "installing $ebpf_toolchain (the eBPF crate's toolchain)"
  rustup toolchain install "$ebpf_toolchain" --profile minimal
fi
installed=$(rustup component list --toolchain "$ebpf_toolchain" --installed)
for c in $ebpf_components; do
  if grep -q "^$c" <<<"$installed"; then
    log "$ebpf_toolchain $c present"
  else
    log "adding $c to $ebpf_toolchain"
    rustup component add "$c" --toolchain "$ebpf_toolchain"
  fi
done

# 3. bpf-linker 0.13.0 built against LLVM 22 (must match the LLVM major of the
#    eBPF toolchain's rustc: `rustc +<channel> -vV`).
want="bpf-linker v0.13.0"
if cargo install --list | grep -q "^$want"; then
  log "$want present"
else
  log "building $want against llvm-22 (takes a few minutes)"
  PATH=/usr/lib/llvm-22/bin:$PATH cargo install bpf-linker --version 0.13.0 \
    --no-default-features --features llvm-22 --locked
fi

# 4. bpffs, where the dataplane pins programs and maps.
if ! mountpoint -q /sys/fs/bpf; then
  log "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi

# 5. The CNI directories `ctr run --cni` reads (fixed in ctr). Tests bind
#    their own over these in a private mount namespace; the real ones stay
#    empty unless the operator installs shortpath's plugin (README).
mkdir -p /etc/cni/net.d /opt/cni/bin

log "ready"
