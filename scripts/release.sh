#!/usr/bin/env bash
# release.sh - build everything sfs ships into target/dist/, and test it where it would run.
#
#   scripts/release.sh [build]  setup + static Linux binaries (x86_64, aarch64, armv7 and armv6
#                               hard-float) with .sha256 files, .deb packages (amd64, arm64,
#                               armhf - the armhf one holds the armv6 binary) and the
#                               Windows zip (scripts/windows-e2e.sh build), all in target/dist/
#   scripts/release.sh setup    make the build root (once; reused when present)
#   scripts/release.sh bins     only the static binaries;  scripts/release.sh debs  only the .debs
#   scripts/release.sh check    run each static binary (the ARM ones under qemu-user) on one end
#                               of sfs's own virtual cable against the native sfs, both roles
#                               (see "The checks" below), then check-deb; builds what is missing
#   scripts/release.sh check-deb  `apt install ./sfs_VERSION_amd64.deb` in a fresh Debian 12
#                               root: sfs runs, man sfs, completions, the unit's user, the unit
#   scripts/release.sh clean    unmount and delete the build root (with its build cache) and
#                               the apt check's root
#
# The toolchain: the rustup toolchain here has no musl or ARM standard library and cannot
# download one, so - as scripts/windows-e2e.sh does for Windows - a Debian trixie root
# (debootstrap) holds Debian's rustc/cargo 1.85, rust-src 1.85 and qemu-user 10.0 (for check),
# and std is built for each
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
#   SFS_DEB_MAINTAINER    the packages' Maintainer (default "sfs developers <sfs@example.org>")
#   SFS_RELEASE_ARCHES    which of "x86_64 aarch64 armv7 armv6" to build/check (default all)
#   BAUD (921600), SIZE (1048576) bytes each way per transfer, CONNS (8) for check;
#   KEEP=1 keeps check's work directory; SFS_RELEASE_DEB_CHECK=0 leaves check-deb out of check.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RELROOT=${SFS_RELROOT:-/var/cache/sfs-release}
APTROOT=$RELROOT-apt    # check-deb's Debian 12 root
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
DIST=$ROOT/target/dist
ARCHES=${SFS_RELEASE_ARCHES:-x86_64 aarch64 armv7 armv6}
MAINTAINER=${SFS_DEB_MAINTAINER:-sfs developers <sfs@example.org>}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
# What the root holds; the ready marker records it, so a changed list re-runs the install.
PKGS="rustc cargo rust-src ca-certificates python3 python3-venv qemu-user"
PYPKGS="ziglang==0.14.1 cargo-zigbuild==0.20.1"

die() { echo "release: $*" >&2; exit 1; }
say() { echo "release: $*" >&2; }
# shellcheck source=scripts/chroot.sh
. "$ROOT/scripts/chroot.sh"

# arch -> Rust target, Debian package architecture, qemu-user command ("" = native).
# armv6 (Raspberry Pi 1, Zero): ARMv6 + VFPv2 hard-float; it runs on ARMv7 too, so the armhf
# package holds it and installs on every Raspberry Pi OS 32-bit. The armv7 binary has no
# package of its own. Each ARM binary is checked on the oldest CPU it is for (-cpu).
rust_target() {
  case $1 in
    x86_64) echo x86_64-unknown-linux-musl ;;
    aarch64) echo aarch64-unknown-linux-musl ;;
    armv7) echo armv7-unknown-linux-musleabihf ;;
    armv6) echo arm-unknown-linux-musleabihf ;;
    *) die "unknown architecture $1" ;;
  esac
}
deb_arch() { case $1 in x86_64) echo amd64 ;; aarch64) echo arm64 ;; armv6) echo armhf ;; *) echo "" ;; esac; }
qemu_for() {
  case $1 in
    x86_64) echo "" ;;
    aarch64) echo "$RELROOT/usr/bin/qemu-aarch64 -cpu cortex-a53" ;;   # Raspberry Pi 3
    armv7) echo "$RELROOT/usr/bin/qemu-arm -cpu cortex-a7" ;;          # Raspberry Pi 2
    armv6) echo "$RELROOT/usr/bin/qemu-arm -cpu arm1176" ;;            # Raspberry Pi 1, Zero
  esac
}
bin_name() { echo "sfs-$VERSION-$1-linux"; }

# Runs a shell command inside the build root with a clean environment (scripts/chroot.sh).
in_root() {
  root_run "$RELROOT" PATH="/opt/zig/bin:$ROOT_PATH" RUSTC_BOOTSTRAP=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt CARGO_ZIGBUILD_CACHE_DIR=/root/.cache/cargo-zigbuild "$1"
}

setup() {
  root_ready "$RELROOT" .sfs-release-ready "$PKGS $PYPKGS" && return 0
  [ "$(id -u)" = 0 ] || die "setup needs root (debootstrap, chroot, mount)"
  local t0=$SECONDS
  root_bootstrap "$RELROOT" "$SUITE"
  root_install "$RELROOT" "$PKGS"
  say "installing $PYPKGS (PyPI) into /opt/zig in the root ..."
  in_root "set -e; python3 -m venv /opt/zig; /opt/zig/bin/pip install -q --disable-pip-version-check $PYPKGS"
  in_root "rustc --version; cargo --version; /opt/zig/bin/python3 -m ziglang version; cargo-zigbuild --version" >&2
  root_mark_ready "$RELROOT" .sfs-release-ready "$PKGS $PYPKGS"
  say "toolchain ready in $RELROOT ($((SECONDS - t0)) s)"
}

sync_crate() { root_sync_crate "$RELROOT" "$ROOT"; }

sha_file() { (cd "$(dirname "$1")" && sha256sum "$(basename "$1")" >"$(basename "$1").sha256"); }

# The static binaries: target/dist/sfs-VERSION-ARCH-linux (+ .sha256).
build_bins() {
  setup
  sync_crate
  mkdir -p "$DIST"
  local a t out
  for a in $ARCHES; do
    t=$(rust_target "$a")
    say "building $t (std from rust-src, fat LTO) ..."
    # link-self-contained=no: rustc's own musl crt objects are not in a source-built sysroot;
    # zig supplies crt1/rcrt1, libc and libunwind instead.
    in_root "cd /build/sfs && RUSTFLAGS='-C link-self-contained=no' nice -n 15 cargo zigbuild --locked \
      --profile dist --bin sfs -Zbuild-std=std,panic_abort --target $t" >&2
    out=$DIST/$(bin_name "$a")
    cp "$RELROOT/build/sfs/target/$t/dist/sfs" "$out"
    chmod 755 "$out"
    # A static binary has no interpreter and no NEEDED libraries.
    file -b "$out" | grep -q 'statically linked' || die "$out is not statically linked: $(file -b "$out")"
    sha_file "$out"
    say "$(basename "$out"): $(stat -c %s "$out") bytes; $(file -b "$out" | cut -d, -f1-2,4-6)"
  done
}

# The .deb packages, made with dpkg-deb from a tree (no debhelper needed): the static binary,
# the man page, completions for bash, zsh and fish (generated by the native x86_64 binary,
# the same for every architecture), the systemd template unit, README and copyright.
build_debs() {
  local native=$DIST/$(bin_name x86_64)
  [ -x "$native" ] || die "the completions come from the x86_64 binary: build it first ($native)"
  command -v dpkg-deb >/dev/null || die "dpkg-deb is needed"
  local work; work=$(mktemp -d /tmp/sfs-deb.XXXXXX)
  local a arch pkg tree doc
  for a in $ARCHES; do
    arch=$(deb_arch "$a")
    [ -n "$arch" ] || continue
    pkg=sfs_${VERSION}_$arch
    tree=$work/$pkg
    doc=$tree/usr/share/doc/sfs
    install -d "$tree/DEBIAN" "$tree/usr/bin" "$tree/usr/share/man/man1" "$doc" \
      "$tree/usr/share/bash-completion/completions" "$tree/usr/share/zsh/vendor-completions" \
      "$tree/usr/share/fish/vendor_completions.d" "$tree/lib/systemd/system"
    install -m 755 "$DIST/$(bin_name "$a")" "$tree/usr/bin/sfs"
    # bootstrap= uploads the far side's sfs from /usr/lib/sfs/sfs-ARCH-linux (the man page's
    # BOOTSTRAP); /usr/bin/sfs itself serves a far side of its own architecture.
    local p peers=()
    for p in $ARCHES; do
      [ "$p" != "$a" ] && [ -x "$DIST/$(bin_name "$p")" ] || continue
      install -D -m 755 "$DIST/$(bin_name "$p")" "$tree/usr/lib/sfs/sfs-$p-linux"
      peers+=("sfs-$p-linux")
    done
    gzip -9n <"$ROOT/man/sfs.1" >"$tree/usr/share/man/man1/sfs.1.gz"
    "$native" --completions bash >"$tree/usr/share/bash-completion/completions/sfs"
    "$native" --completions zsh >"$tree/usr/share/zsh/vendor-completions/_sfs"
    "$native" --completions fish >"$tree/usr/share/fish/vendor_completions.d/sfs.fish"
    # The unit names /usr/local/bin/sfs (the README's manual install); the package's is /usr/bin.
    sed 's|/usr/local/bin/sfs|/usr/bin/sfs|g' "$ROOT/contrib/sfs@.service" >"$tree/lib/systemd/system/sfs@.service"
    install -m 644 "$ROOT/README.md" "$doc/README.md"
    copyright >"$doc/copyright"
    changelog | gzip -9n >"$doc/changelog.gz"
    postinst >"$tree/DEBIAN/postinst"
    # lintian flags every static binary; this one is static on purpose (one file for every
    # Debian, Ubuntu and Raspberry Pi OS release, and for copying by hand).
    install -d "$tree/usr/share/lintian/overrides"
    echo "sfs: statically-linked-binary [usr/bin/sfs]" >"$tree/usr/share/lintian/overrides/sfs"
    for p in "${peers[@]}"; do
      printf 'sfs: %s [usr/lib/sfs/%s]\n' statically-linked-binary "$p" binary-from-other-architecture "$p"
    done >>"$tree/usr/share/lintian/overrides/sfs"
    chmod 755 "$tree/DEBIAN/postinst"
    find "$tree" -type d -exec chmod 755 {} +
    find "$tree/usr/share" "$tree/lib" -type f -exec chmod 644 {} +
    control "$arch" "$(du -sk --exclude=DEBIAN "$tree" | cut -f1)" >"$tree/DEBIAN/control"
    (cd "$tree" && find usr lib -type f -exec md5sum {} + | sort -k2) >"$tree/DEBIAN/md5sums"
    chmod 644 "$tree/DEBIAN/control" "$tree/DEBIAN/md5sums"
    # The last commit's time on every file: the same tree gives the same package.
    find "$tree" -exec touch -h -d "@$(release_time)" {} +
    SOURCE_DATE_EPOCH=$(release_time) dpkg-deb --root-owner-group -Zxz --build "$tree" "$DIST/$pkg.deb" >/dev/null
    sha_file "$DIST/$pkg.deb"
    say "$pkg.deb: $(stat -c %s "$DIST/$pkg.deb") bytes"
  done
  rm -rf "$work"
}

control() {  # ARCH INSTALLED-SIZE-KB
  cat <<EOF
Package: sfs
Version: $VERSION
Architecture: $1
Maintainer: $MAINTAINER
Installed-Size: $2
Depends: adduser
Section: net
Priority: optional
Description: socket forward serial: many TCP connections over one serial line
 sfs carries many TCP connections between two computers that share nothing
 but a serial cable, reliably and fast, with a socat-style command line:
 a reliable link (COBS framing, CRC-32C, selective retransmission) under a
 multiplexer of independent channels with per-channel flow control.
 .
 Also SOCKS5 and UDP over the cable, plain serial and PTY bridges, a virtual
 serial cable for experiments, and an optional pre-shared key (Noise NNpsk0,
 ChaCha20-Poly1305). The binary is statically linked.
EOF
}

copyright() {
  cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sfs
Source: the sfs source tree (Cargo.toml, version $VERSION)

Files: *
Copyright: $(date -u -d "@$(release_time)" +%Y) the sfs developers
License: MIT or Apache-2.0
 sfs is licensed under either of the MIT license or the Apache License,
 Version 2.0, at your option.
 .
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in /usr/share/common-licenses/Apache-2.0.
 .
 The MIT license: Permission is hereby granted, free of charge, to any person
 obtaining a copy of this software and associated documentation files (the
 "Software"), to deal in the Software without restriction, including without
 limitation the rights to use, copy, modify, merge, publish, distribute,
 sublicense, and/or sell copies of the Software, and to permit persons to whom
 the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
 .
 The statically linked binary also contains the Rust standard library and the
 crates listed in Cargo.lock of the source (MIT and/or Apache-2.0 for the most
 part), and musl libc (MIT).
EOF
}

# The time of the last commit (reproducible dates in the packages), else now.
release_time() { git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s; }

changelog() {
  cat <<EOF
sfs ($VERSION) unstable; urgency=medium

  * Release $VERSION, built by scripts/release.sh.

 -- $MAINTAINER  $(date -R -u -d "@$(release_time)")
EOF
}

# The unit runs sfs as the system user "sfs" in group dialout; make it (once).
postinst() {
  cat <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd sfs >/dev/null; then
        adduser --system --group --home /nonexistent --no-create-home --quiet sfs
    fi
    adduser --quiet sfs dialout >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null 2>&1 || true
    fi
fi
exit 0
EOF
}

# The Windows zip from scripts/windows-e2e.sh build (its own root), unless SFS_RELEASE_WINDOWS=0.
build_windows() {
  if [ "${SFS_RELEASE_WINDOWS:-1}" = 0 ]; then
    say "SFS_RELEASE_WINDOWS=0: no Windows zip"
    return 0
  fi
  "$ROOT/scripts/windows-e2e.sh" build
  local zip=$ROOT/target/windows/sfs-$VERSION-x86_64-pc-windows-gnu.zip
  [ -f "$zip" ] || die "scripts/windows-e2e.sh build left no $zip"
  cp "$zip" "$DIST/"
  sha_file "$DIST/$(basename "$zip")"
}

build_all() {
  local t0=$SECONDS
  build_bins
  build_debs
  build_windows
  say "done in $((SECONDS - t0)) s:"
  (cd "$DIST" && ls -l | sed 1d) >&2
}

# ---------------------------------------------------------------------------------------
# The checks: each static binary on one end of sfs's own virtual cable (run by the native
# sfs), the native sfs on the other end, in both roles, at $BAUD baud:
#   ARCH/listen  ARCH: TCP-LISTEN:P,fork SERIAL-MUX:ttyA  <->  native: SERIAL-MUX:ttyB TCP:127.0.0.1:ECHO
#   ARCH/dial    native: TCP-LISTEN:P,fork SERIAL-MUX:ttyB  <->  ARCH: SERIAL-MUX:ttyA TCP:localhost:ECHO
#                (localhost: the static binary's own name resolution, musl reading /etc/hosts)
# each with SIZE bytes up and SIZE down through one connection (echo), then CONNS at once;
# sha256 compared; one summary line each: bytes, seconds, goodput = bytes/s / (baud/10).
# The ARM binaries run under the build root's qemu-user (Debian trixie's 10.0; static, so it
# runs outside the root too). Debian 12's qemu-user 7.2 will not do: it lacks the termios2
# ioctls (TCGETS2/TCSETS2) that sfs's serial library sets any baud rate with, and opening the
# line fails with "Function not implemented". The native sfs is target/release/sfs.

WORK=""
PIDS=()
ECHO_PID=""
SFS=$ROOT/target/release/sfs
BAUD=${BAUD:-921600}
SIZE=${SIZE:-1048576}
CONNS=${CONNS:-8}
FAILED=0
SUMMARY=()

check_cleanup() {
  stop_all
  [ -n "$ECHO_PID" ] && kill "$ECHO_PID" 2>/dev/null || true
  if [ -n "$WORK" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}

stop_all() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a program in the background; its stderr goes to $WORK/LOG.
bg() { local log=$1; shift; "$@" </dev/null >/dev/null 2>"$WORK/$log" & PIDS+=($!); }

start_cable() {
  rm -f "$WORK/ttyA" "$WORK/ttyB"
  bg cable.log "$SFS" "PTY,link=$WORK/ttyA,b$BAUD" "PTY,link=$WORK/ttyB,b$BAUD"
  for _ in $(seq 100); do [ -e "$WORK/ttyA" ] && [ -e "$WORK/ttyB" ] && return 0; sleep 0.05; done
  die "the virtual cable did not start: $(cat "$WORK/cable.log")"
}

# One summary line from an e2e-peer.py result.
report() {
  local name=$1 json=$2 line
  line=$(python3 - "$name" "$json" "$BAUD" <<'PY'
import json, sys
name, r, baud = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
ratio = r["bytes"] / r["secs"] / (baud / 10) if r["secs"] > 0 else 0.0
extra = f" ({r['got']} B back: {r['err']})" if not r["intact"] else ""
print(f"check {name:<20} {r['bytes']:>8} B each way in {r['secs']:6.2f} s  goodput {ratio:.3f} of line rate  intact {'yes' if r['intact'] else 'NO'}{extra}")
sys.exit(0 if r["intact"] else 1)
PY
  ) || { FAILED=1; [ -n "$line" ] || line="check $name FAILED: ${json:-no result}"; }
  echo "$line"; SUMMARY+=("$line")
}

verdict() {  # NAME OK(0/1) TEXT
  local line
  if [ "$2" = 0 ]; then line="check $(printf '%-20s' "$1") ok: $3"; else line="check $(printf '%-20s' "$1") FAILED: $3"; FAILED=1; fi
  echo "$line"; SUMMARY+=("$line")
}

show_logs() { local f; for f in "$WORK"/*.log; do echo "--- $(basename "$f")"; tail -n 8 "$f"; done >&2; }

# Two transfers through whatever listens on $2: one connection, then $CONNS at once.
transfers() {
  local name=$1 port=$2 r
  if [ "$(python3 "$WORK/peer.py" ping "$port" 60)" != up ]; then
    verdict "$name" 1 "no echo through the link within 60 s"; show_logs; return
  fi
  r=$(python3 "$WORK/peer.py" echo "$port" "$SIZE" 7) || true
  report "$name/1 conn" "$r"
  r=$(python3 "$WORK/peer.py" conc "$port" "$CONNS" "$SIZE") || true
  report "$name/$CONNS conns" "$r"
}

check() {
  local a bin q
  for a in $ARCHES; do
    [ -x "$DIST/$(bin_name "$a")" ] || { say "no $(bin_name "$a") in target/dist: building first"; build_bins; break; }
  done
  for a in $ARCHES; do
    [ -z "$(deb_arch "$a")" ] || [ -f "$DIST/sfs_${VERSION}_$(deb_arch "$a").deb" ] || { say "no .deb for $a in target/dist: making them"; build_debs; break; }
  done
  setup
  say "building the native sfs (target/release/sfs) ..."
  (cd "$ROOT" && nice -n 15 cargo build --release --bin sfs >&2)
  local t0=$SECONDS
  WORK=$(mktemp -d /tmp/sfs-release-check.XXXXXX)
  trap check_cleanup EXIT
  cp "$ROOT/scripts/e2e-peer.py" "$WORK/peer.py"
  local echo_port; echo_port=$(free_port)
  python3 "$WORK/peer.py" echo-server "$echo_port" &
  ECHO_PID=$!
  say "work directory $WORK; echo target 127.0.0.1:$echo_port; $BAUD baud, $SIZE B each way"
  for a in $ARCHES; do
    bin=$DIST/$(bin_name "$a")
    q=$(qemu_for "$a")
    local run=()
    read -r -a run <<<"$q"
    local desc ver rc=0
    desc=$(file -b "$bin" | cut -d, -f1-2)
    ver=$("${run[@]}" "$bin" --version 2>&1) || rc=$?
    if [ "$rc" = 0 ] && file -b "$bin" | grep -q 'statically linked'; then
      verdict "$a/runs" 0 "${q:-natively}: \"$ver\"; $desc, statically linked, $(stat -c %s "$bin") bytes"
    else
      verdict "$a/runs" 1 "exit $rc: $ver; $(file -b "$bin")"
      continue
    fi

    # ARCH listens; the native sfs dials the echo target.
    start_cable
    local p1; p1=$(free_port)
    bg "$a-listen.log" "${run[@]}" "$bin" -v "TCP-LISTEN:$p1,fork,bind=127.0.0.1" "SERIAL-MUX:$WORK/ttyA,b$BAUD"
    bg native-dial.log "$SFS" "SERIAL-MUX:$WORK/ttyB,b$BAUD" "TCP:127.0.0.1:$echo_port"
    transfers "$a/listen" "$p1"
    stop_all

    # The native sfs listens; ARCH dials the echo target by name.
    start_cable
    local p2; p2=$(free_port)
    bg native-listen.log "$SFS" "TCP-LISTEN:$p2,fork,bind=127.0.0.1" "SERIAL-MUX:$WORK/ttyB,b$BAUD"
    bg "$a-dial.log" "${run[@]}" "$bin" -v "SERIAL-MUX:$WORK/ttyA,b$BAUD" "TCP:localhost:$echo_port"
    transfers "$a/dial" "$p2"
    stop_all
  done
  if [ "${SFS_RELEASE_DEB_CHECK:-1}" != 0 ]; then check_deb; fi
  echo "summary ($BAUD baud, $SIZE B each way; checks took $((SECONDS - t0)) s):"
  printf '  %s\n' "${SUMMARY[@]}"
  [ "$FAILED" = 0 ] || die "some checks failed"
  echo "release: all checks passed"
}

# The amd64 package as a user gets it: `apt install ./sfs_VERSION_amd64.deb` in a fresh
# Debian 12 (bookworm) root with man-db, bash-completion and systemd, then sfs, man sfs,
# the completions, the user the unit runs as, and systemd-analyze verify of the unit.

in_aptroot() { root_run "$APTROOT" TERM=dumb MANWIDTH=80 "$1"; }

check_deb() {
  local deb=$DIST/sfs_${VERSION}_amd64.deb out rc
  [ -f "$deb" ] || { verdict deb/apt-install 1 "no $deb (scripts/release.sh build makes it)"; return; }
  root_bootstrap "$APTROOT" bookworm
  in_aptroot "dpkg -s man-db bash-completion systemd >/dev/null 2>&1 || { apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends man-db bash-completion systemd >/dev/null; }"
  in_aptroot "dpkg -r sfs >/dev/null 2>&1 || true"
  cp "$deb" "$APTROOT/tmp/"
  rc=0
  out=$(in_aptroot "DEBIAN_FRONTEND=noninteractive apt install -y /tmp/$(basename "$deb") 2>&1") || rc=$?
  if [ "$rc" = 0 ]; then
    verdict deb/apt-install 0 "apt install ./$(basename "$deb") in a fresh bookworm root: $(printf '%s\n' "$out" | grep -m1 -E '^Setting up sfs')"
  else
    verdict deb/apt-install 1 "exit $rc: $(printf '%s\n' "$out" | tail -n 3)"; return
  fi
  out=$(in_aptroot "command -v sfs && sfs --version && sfs --help-addresses | head -n 1" 2>&1) || true
  verdict deb/sfs "$([ "$(printf '%s\n' "$out" | sed -n 2p)" = "sfs $VERSION" ] && echo 0 || echo 1)" "$(printf '%s' "$out" | tr '\n' ';' | sed 's/;/; /g')"
  out=$(in_aptroot "man sfs 2>&1 | col -b | sed -n '/^NAME/{n;p;q}'") || true
  verdict deb/man "$(printf '%s' "$out" | grep -q 'sfs' && echo 0 || echo 1)" "man sfs: NAME \"$(printf '%s' "$out" | sed 's/^ *//')\""
  out=$(in_aptroot "ls /usr/share/bash-completion/completions/sfs /usr/share/zsh/vendor-completions/_sfs \
    /usr/share/fish/vendor_completions.d/sfs.fish >/dev/null && source /usr/share/bash-completion/bash_completion \
    && { _completion_loader sfs; complete -p sfs; }" 2>&1) || true
  verdict deb/completions "$(printf '%s' "$out" | grep -q -- '-F _sfs sfs$' && echo 0 || echo 1)" \
    "bash, zsh and fish files in place; bash loads: \"$out\""
  out=$(in_aptroot "id sfs") || true
  verdict deb/user "$(printf '%s' "$out" | grep -q dialout && echo 0 || echo 1)" "the unit's user: $out"
  # As the test suite does: an instance of the installed template, verified offline.
  out=$(in_aptroot "cp /lib/systemd/system/sfs@.service /tmp/sfs@test.service && grep -q '^ExecStart=/usr/bin/sfs ' /tmp/sfs@test.service \
    && systemd-analyze verify --man=no /tmp/sfs@test.service 2>&1 && echo verified") || true
  verdict deb/unit "$([ "$out" = verified ] && echo 0 || echo 1)" "ExecStart=/usr/bin/sfs; systemd-analyze verify: $( [ "$out" = verified ] && echo clean || printf '%s' "$out" | tr '\n' ' ')"
}

clean() {
  root_remove "$RELROOT"
  root_remove "$APTROOT"
}

case ${1:-build} in
  setup) setup ;;
  build) build_all ;;
  bins) build_bins ;;
  debs) build_debs ;;
  check-deb) check_deb; [ "$FAILED" = 0 ] ;;
  check) check ;;
  clean) clean ;;
  *) sed -n '2,/^set -euo pipefail/{/^set /d;p}' "$0"; exit 2 ;;
esac
