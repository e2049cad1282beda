#!/usr/bin/env bash
# release.sh - build everything sfs ships into target/dist/, and test it where it would run.
#
#   scripts/release.sh [build]  setup + static Linux binaries (x86_64, aarch64, armv7 hard-float)
#                               with .sha256 files, .deb packages (amd64, arm64, armhf) and the
#                               Windows zip (scripts/windows-e2e.sh build), all in target/dist/
#   scripts/release.sh setup    make the build root (once; reused when present)
#   scripts/release.sh check    run each static binary (the ARM ones under qemu-user) on one end
#                               of sfs's own virtual cable against the native sfs; builds first
#                               when target/dist has no binaries
#   scripts/release.sh clean    unmount and delete the build root (and its build cache)
#
# The toolchain: the rustup toolchain here has no musl or ARM standard library and cannot
# download one, so - as scripts/windows-e2e.sh does for Windows - a Debian trixie root
# (debootstrap) holds Debian's rustc/cargo 1.85 and rust-src 1.85, and std is built for each
# target from source (-Zbuild-std, allowed on the stable compiler with RUSTC_BOOTSTRAP=1).
# zig (PyPI's ziglang, with cargo-zigbuild) is the C compiler and linker: it carries musl's
# libc and crt objects and LLVM's libunwind for all three architectures, so every binary is
# linked fully statically against musl. Name resolution works without glibc's NSS: musl reads
# /etc/hosts and /etc/resolv.conf itself (the check tests TCP:localhost:PORT).
# Only the Debian archive, crates.io and PyPI are used. Needs root (debootstrap, chroot, bind
# mounts). The binaries use the `dist` cargo profile (Cargo.toml): release + fat LTO, one
# codegen unit, stripped, no debug info; panic stays unwind (a panicking connection task is
# reported and the others carry on, as in the tested release build).
#
# Environment:
#   SFS_RELROOT           the build root (default /var/cache/sfs-release)
#   SFS_RELEASE_WINDOWS=0 skip the Windows zip (scripts/windows-e2e.sh build: its own root,
#                         ~20 min the first time)
#   SFS_RELEASE_ARCHES    which of "x86_64 aarch64 armv7" to build/check (default all three)
#   BAUD (921600), SIZE (1048576) bytes each way per transfer, CONNS (8) for check;
#   KEEP=1 keeps check's work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RELROOT=${SFS_RELROOT:-/var/cache/sfs-release}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
DIST=$ROOT/target/dist
ARCHES=${SFS_RELEASE_ARCHES:-x86_64 aarch64 armv7}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
# What the root holds; the ready marker records it, so a changed list re-runs the install.
PKGS="rustc cargo rust-src ca-certificates python3 python3-venv"
PYPKGS="ziglang==0.14.1 cargo-zigbuild==0.20.1"

die() { echo "release: $*" >&2; exit 1; }
say() { echo "release: $*" >&2; }

# arch -> Rust target, Debian architecture, qemu-user program ("" = native).
rust_target() {
  case $1 in
    x86_64) echo x86_64-unknown-linux-musl ;;
    aarch64) echo aarch64-unknown-linux-musl ;;
    armv7) echo armv7-unknown-linux-musleabihf ;;
    *) die "unknown architecture $1" ;;
  esac
}
deb_arch() { case $1 in x86_64) echo amd64 ;; aarch64) echo arm64 ;; armv7) echo armhf ;; esac; }
qemu_for() { case $1 in x86_64) echo "" ;; aarch64) echo qemu-aarch64-static ;; armv7) echo qemu-arm-static ;; esac; }
bin_name() { echo "sfs-$VERSION-$1-linux"; }

mounts() {
  local d
  for d in proc dev dev/pts; do
    mkdir -p "$RELROOT/$d"
    mountpoint -q "$RELROOT/$d" || mount --bind "/$d" "$RELROOT/$d"
  done
  cp /etc/resolv.conf "$RELROOT/etc/resolv.conf" 2>/dev/null || true
}

# Runs a shell command inside the root with a clean environment.
in_root() {
  mounts
  chroot "$RELROOT" env -i HOME=/root PATH=/opt/zig/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUSTC_BOOTSTRAP=1 LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    CARGO_ZIGBUILD_CACHE_DIR=/root/.cache/cargo-zigbuild bash -c "$1"
}

setup() {
  if [ "$(cat "$RELROOT/.sfs-release-ready" 2>/dev/null)" = "$PKGS $PYPKGS" ]; then
    mounts
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "setup needs root (debootstrap, chroot, mount)"
  local t0=$SECONDS
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  if [ ! -x "$RELROOT/usr/bin/apt-get" ]; then
    say "debootstrap $SUITE into $RELROOT ..."
    mkdir -p "$RELROOT"
    debootstrap --variant=minbase "$SUITE" "$RELROOT" "$MIRROR" >"$RELROOT.debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $RELROOT.debootstrap.log"
  fi
  # A TLS-inspecting proxy's CA certificate, if this machine has one, is needed inside too.
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$RELROOT/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$RELROOT/usr/local/share/ca-certificates/"
  fi
  say "installing $PKGS into the root ..."
  in_root "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $PKGS >/dev/null && update-ca-certificates >/dev/null 2>&1"
  say "installing $PYPKGS (PyPI) into /opt/zig in the root ..."
  in_root "set -e; python3 -m venv /opt/zig; /opt/zig/bin/pip install -q --disable-pip-version-check $PYPKGS"
  in_root "rustc --version; cargo --version; /opt/zig/bin/python3 -m ziglang version; cargo-zigbuild --version" >&2
  echo "$PKGS $PYPKGS" >"$RELROOT/.sfs-release-ready"
  say "toolchain ready in $RELROOT ($((SECONDS - t0)) s)"
}

# The root has the machine's /proc, /dev and /dev/pts bound into it: unmount them first,
# and refuse to delete anything while one is still mounted.
clean() {
  [ -d "$RELROOT" ] || return 0
  local d
  for d in dev/pts dev proc; do
    if mountpoint -q "$RELROOT/$d"; then umount "$RELROOT/$d" || umount -l "$RELROOT/$d"; fi
  done
  for d in dev/pts dev proc; do
    mountpoint -q "$RELROOT/$d" && die "$RELROOT/$d is still mounted; not deleting"
  done
  if grep -q " $RELROOT/" /proc/mounts; then die "something is still mounted under $RELROOT; not deleting"; fi
  rm -rf --one-file-system "$RELROOT" "$RELROOT.debootstrap.log"
  say "removed $RELROOT"
}

case ${1:-build} in
  setup) setup ;;
  clean) clean ;;
  *) sed -n '2,/^set -euo pipefail/{/^set /d;p}' "$0"; exit 2 ;;
esac
