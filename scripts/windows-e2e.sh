#!/usr/bin/env bash
# windows-e2e.sh - build sfs.exe for Windows (x86_64-pc-windows-gnu) on a Debian/Ubuntu
# machine and check it end to end under Wine against the Linux sfs, over sfs's own
# virtual serial cable.
#
#   scripts/windows-e2e.sh setup   make the cross toolchain (once; reused when present)
#   scripts/windows-e2e.sh check   cargo check + clippy of the library and binary for Windows
#   scripts/windows-e2e.sh build   cargo build --release for Windows; copies the result to
#                                  target/windows/sfs.exe
#   scripts/windows-e2e.sh [e2e]   setup + build (Windows and Linux) + the end-to-end checks
#   scripts/windows-e2e.sh clean   unmount and delete the root (and its build cache)
#
# The toolchain: the rustup toolchain has no Windows standard library, so the script makes a
# Debian trixie root (debootstrap) holding Debian's rustc/cargo 1.85, rust-src 1.85, MinGW-w64
# and Wine 10, and builds std for the target from rust-src (-Zbuild-std, which the stable
# compiler allows with RUSTC_BOOTSTRAP=1). rsbegin.o/rsend.o are compiled from rust-src too.
# Only the Debian package registry and crates.io are used. Needs root, debootstrap (installed
# with apt-get when missing), chroot and bind mounts; about 6 minutes once, and ~5 GB with the
# build cache (the first build of std and the dependencies takes 8-15 minutes on 2 cores).
#
# The end-to-end checks (all over `sfs PTY,link=D/ttyA,b115200 PTY,link=D/ttyB,b115200`,
# Windows' COM3 being ttyA under Wine and the Linux sfs on ttyB):
#   win-listen   sfs.exe TCP-LISTEN:P,fork SERIAL-MUX:COM3,b115200  <->
#                sfs SERIAL-MUX:ttyB,b115200 TCP:127.0.0.1:ECHO: 200 KB up and 200 KB down
#                through one connection (echo), then 8 concurrent connections; sha256 checked
#   win-dial     sfs.exe SERIAL-MUX:COM3,b115200 TCP:127.0.0.1:ECHO  <->
#                sfs TCP-LISTEN:P,fork SERIAL-MUX:ttyB,b115200: the same transfer the other way
#   bad-port     sfs.exe SERIAL-MUX:COM42 (not mapped): one-line error, exit 1
#   no-pty       sfs.exe PTY,...: one-line error, exit 2
#   exec         sfs.exe TCP-LISTEN:P EXEC:"cmd /c echo hello from %OS%"
#   ctrl-c       SIGINT to sfs.exe (a console Ctrl-C event under Wine): clean close, exit 0
#   com12        SERIAL:COM12 and SERIAL:\\.\COM12 mapped to ttyA: 20 KB echoed back intact
#   serial-tx-idle-rx  SERIAL:COM3 sends 50 KB while nothing comes back; arrives intact
#   socks5-win-listen  sfs.exe SOCKS5-LISTEN:P SERIAL-MUX:COM3,b115200  <->
#                sfs SERIAL-MUX:ttyB,b115200 SOCKS5-DIAL,allow=127.0.0.1:ECHO: a SOCKS5
#                client asks for localhost:ECHO (the name resolved on the Linux side) and
#                echoes 200 KB through; a destination outside allow= must get reply 0x02
#   socks5-win-dial    sfs SOCKS5-LISTEN (Linux) <-> sfs.exe SOCKS5-DIAL: the same the other way,
#                asking for 127.0.0.1:ECHO by address
#   udp-win-listen     sfs.exe UDP-LISTEN:P SERIAL-MUX:COM3,b115200  <->
#                sfs SERIAL-MUX:ttyB,b115200 UDP:127.0.0.1:UDPECHO: 2 clients x 60 datagrams
#                of 2-1472 bytes (8 in flight each) come back whole, none split or merged
#   udp-win-dial       sfs UDP-LISTEN (Linux) <-> sfs.exe UDP:127.0.0.1:UDPECHO: the same
#   bootstrap-win      sfs.exe TCP-LISTEN:P,fork SERIAL-MUX:COM3,b115200,bootstrap=TCP:...ECHO
#                against a bash -i console on ttyB: the peer is uploaded and started there,
#                then the transfers as in win-listen
# Each prints one summary line: bytes, seconds, goodput ratio = bytes/s / (baud/10), intact.
#
# Environment: SFS_WINROOT (default /var/cache/sfs-wincross) the root's directory;
#   SIZE (default 204800) bytes per direction; CONNS (8); KEEP=1 keeps the work directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WINROOT=${SFS_WINROOT:-/var/cache/sfs-wincross}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TARGET=x86_64-pc-windows-gnu
SUITE=trixie
WIN_EXE=/build/sfs/target/$TARGET/release/sfs.exe
# What the root holds; the ready marker records it, so a changed list re-runs the install.
PKGS="rustc cargo rust-src rust-clippy gcc-mingw-w64-x86-64-posix g++-mingw-w64-x86-64-posix ca-certificates wine64 wine"

die() { echo "windows-e2e: $*" >&2; exit 1; }
say() { echo "windows-e2e: $*" >&2; }
# shellcheck source=scripts/chroot.sh
. "$ROOT/scripts/chroot.sh"

# What Wine needs in the root's environment.
WINE_ENV=(WINEDEBUG=-all WINEPREFIX=/root/.wine)

# Runs a shell command inside the root with a clean environment (scripts/chroot.sh).
in_root() { root_run "$WINROOT" RUSTC_BOOTSTRAP=1 "${WINE_ENV[@]}" "$1"; }

setup() {
  root_ready "$WINROOT" .sfs-wincross-ready "$PKGS" && return 0
  [ "$(id -u)" = 0 ] || die "setup needs root (debootstrap, chroot, mount)"
  local t0=$SECONDS
  root_bootstrap "$WINROOT" "$SUITE"
  root_install "$WINROOT" "$PKGS"
  # Debian's rust-src lacks the prebuilt start/end objects the -gnu target links with.
  in_root "set -e; D=/usr/lib/rustlib/$TARGET/lib; mkdir -p \$D; S=/usr/lib/rustlib/src/rust/library/rtstartup
    for f in rsbegin rsend; do rustc --target $TARGET --emit=obj -C panic=abort -O -o \$D/\$f.o \$S/\$f.rs; done
    mkdir -p /root/.cargo
    printf '[target.$TARGET]\nlinker = \"x86_64-w64-mingw32-gcc-posix\"\n' > /root/.cargo/config.toml
    wineboot -i >/dev/null 2>&1 || true"
  in_root "rustc --version; wine --version" >&2
  root_mark_ready "$WINROOT" .sfs-wincross-ready "$PKGS"
  say "toolchain ready in $WINROOT ($((SECONDS - t0)) s)"
}

sync_crate() { root_sync_crate "$WINROOT" "$ROOT"; }

CARGO_WIN="cargo --locked"
BUILD_STD="-Zbuild-std=std,panic_abort --target $TARGET"

# Lints that clippy 1.85 has and the current clippy (the project's authority on style, run
# on Linux) changed or dropped; Windows-only code gets every other lint.
OLD_CLIPPY_LINTS="-A clippy::precedence -A clippy::needless_lifetimes -A clippy::large_enum_variant"

check() {
  setup
  sync_crate
  in_root "cd /build/sfs && nice $CARGO_WIN check --lib --bins $BUILD_STD \
    && nice $CARGO_WIN clippy --lib --bins $BUILD_STD -- -D warnings $OLD_CLIPPY_LINTS"
}

build() {
  setup
  sync_crate
  in_root "cd /build/sfs && nice $CARGO_WIN build --release --bin sfs $BUILD_STD"
  mkdir -p "$ROOT/target/windows"
  # The release profile keeps debug info (for profiling); the copies handed out do not.
  in_root "x86_64-w64-mingw32-strip -o /build/sfs-stripped.exe $WIN_EXE"
  mv "$WINROOT/build/sfs-stripped.exe" "$ROOT/target/windows/sfs.exe"
  # Only Windows' own DLLs may be imported, or the .exe would not run on a bare machine.
  local dlls
  dlls=$(in_root "x86_64-w64-mingw32-objdump -p $WIN_EXE" | sed -n 's/^\s*DLL Name: //p' | sort -fu | tr '\n' ' ')
  say "sfs.exe imports: $dlls"
  if printf '%s' "$dlls" | grep -qiE 'libgcc|libwinpthread|libstdc'; then die "sfs.exe needs MinGW DLLs: $dlls"; fi
  # The release archive: sfs.exe, README.md and the man page as text.
  local ver name dir
  ver=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
  name=sfs-$ver-$TARGET
  dir=$ROOT/target/windows/$name
  rm -rf "$dir" "$dir.zip"; mkdir -p "$dir"
  cp "$ROOT/target/windows/sfs.exe" "$ROOT/README.md" "$dir/"
  if command -v groff >/dev/null; then
    groff -man -Tutf8 -P-cbou "$ROOT/man/sfs.1" 2>/dev/null | sed 's/$/\r/' >"$dir/sfs.1.txt"
  fi
  (cd "$ROOT/target/windows" && python3 -m zipfile -c "$name.zip" "$name")
  say "built target/windows/sfs.exe and target/windows/$name.zip"
}

# ---------------------------------------------------------------------------------------
# End-to-end checks.

WORK=""
PIDS=()     # the processes of the current check
ECHO_PID="" # the echo target, shared by all checks
SFS=$ROOT/target/release/sfs
BAUD=115200
SIZE=${SIZE:-204800}
CONNS=${CONNS:-8}
FAILED=0

cleanup() {
  local p
  stop_all
  [ -n "$ECHO_PID" ] && kill "$ECHO_PID" 2>/dev/null || true
  [ -f "$WINROOT/.sfs-wincross-ready" ] && in_root "wineserver -k" >/dev/null 2>&1 || true
  if [ -n "$WORK" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}

# Stops the processes of one check (the cable too), keeping the wineserver.
stop_all() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Maps COMn to a tty of this machine inside the Wine prefix (a symlink is followed).
map_com() {
  local port=${1,,} tty; tty=$(readlink -f "$2")
  rm -f "$WINROOT/root/.wine/dosdevices/$port"
  ln -s "$tty" "$WINROOT/root/.wine/dosdevices/$port"
}
unmap_com() { rm -f "$WINROOT/root/.wine/dosdevices/${1,,}"; }

# Starts sfs.exe under Wine in the background; its stderr goes to $WORK/LOG.
# The pid is that of the Windows process itself (chroot, env, bash and wine exec).
win_bg() {
  local log=$1; shift
  local args="" a; for a in "$@"; do args+=" $(printf '%q' "$a")"; done
  root_exec "$WINROOT" "${WINE_ENV[@]}" XDG_RUNTIME_DIR=/tmp/xdg \
    "exec wine $WIN_EXE -v$args" </dev/null >/dev/null 2>"$WORK/$log" &
  PIDS+=($!)
}

# Runs sfs.exe under Wine in the foreground; prints its stderr, returns its exit code.
win_fg() {
  local args="" a; for a in "$@"; do args+=" $(printf '%q' "$a")"; done
  root_run "$WINROOT" "${WINE_ENV[@]}" XDG_RUNTIME_DIR=/tmp/xdg \
    "exec timeout 60 wine $WIN_EXE$args" </dev/null
}

linux_bg() { local log=$1; shift; "$SFS" "$@" </dev/null >/dev/null 2>"$WORK/$log" & PIDS+=($!); }

start_cable() {
  rm -f "$WORK/ttyA" "$WORK/ttyB"
  linux_bg cable.log "PTY,link=$WORK/ttyA,b$BAUD" "PTY,link=$WORK/ttyB,b$BAUD"
  for _ in $(seq 100); do [ -e "$WORK/ttyA" ] && [ -e "$WORK/ttyB" ] && return 0; sleep 0.05; done
  die "the virtual cable did not start: $(cat "$WORK/cable.log")"
}

# The TCP side of the checks: an echo server, and clients that push seeded random bytes
# through, read everything back, and compare SHA-256.
write_peer() {
  cp "$ROOT/scripts/e2e-peer.py" "$WORK/peer.py"
}

# One summary line from a peer.py result: goodput ratio = bytes/s per direction / (baud/10).
report() {
  local name=$1 json=$2
  python3 - "$name" "$json" "$BAUD" <<'PY'
import json, sys
name, r, baud = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
ratio = r["bytes"] / r["secs"] / (baud / 10) if r["secs"] > 0 else 0.0
extra = f" ({r['got']} B back: {r['err']})" if not r["intact"] else ""
if r.get("note"): extra += f"; {r['note']}"
print(f"check {name:<26} {r['bytes']:>7} B each way in {r['secs']:6.2f} s  goodput {ratio:.3f} of line rate  intact {'yes' if r['intact'] else 'NO'}{extra}")
sys.exit(0 if r["intact"] else 1)
PY
}

verdict() {  # NAME OK(0/1) TEXT
  if [ "$2" = 0 ]; then echo "check $(printf '%-26s' "$1") ok: $3"; else echo "check $(printf '%-26s' "$1") FAILED: $3"; FAILED=1; fi
}

show_logs() { local f; for f in "$WORK"/*.log; do echo "--- $(basename "$f")"; tail -n 8 "$f"; done >&2; }

# Two transfers through whatever listens on $1: one connection, then $CONNS at once.
transfers() {
  local name=$1 port=$2 r
  if [ "$(python3 "$WORK/peer.py" ping "$port" 60)" != up ]; then
    verdict "$name" 1 "no echo through the link within 60 s"; show_logs; return
  fi
  r=$(python3 "$WORK/peer.py" echo "$port" "$SIZE" 7) && report "$name/1 conn" "$r" || { FAILED=1; show_logs; }
  r=$(python3 "$WORK/peer.py" conc "$port" "$CONNS" "$SIZE") && report "$name/$CONNS conns" "$r" || { FAILED=1; show_logs; }
}

e2e() {
  local t0=$SECONDS t_setup t_build t_run
  setup
  t_setup=$((SECONDS - t0)); t0=$SECONDS
  build
  say "building the Linux sfs ..."
  (cd "$ROOT" && nice cargo build --release --bin sfs >&2)
  t_build=$((SECONDS - t0)); t0=$SECONDS
  WORK=$(mktemp -d /tmp/sfs-win-e2e.XXXXXX)
  trap cleanup EXIT
  write_peer
  mkdir -p "$WINROOT/tmp/xdg"
  in_root "XDG_RUNTIME_DIR=/tmp/xdg wineserver -p60" >/dev/null 2>&1 || true
  local echo_port; echo_port=$(free_port)
  python3 "$WORK/peer.py" echo-server "$echo_port" &
  ECHO_PID=$!
  say "work directory $WORK; echo target 127.0.0.1:$echo_port"

  # 1. Windows listens, Linux dials the echo target.
  start_cable; map_com COM3 "$WORK/ttyA"
  local p1; p1=$(free_port)
  win_bg win-listen.log --stats-interval 5 "TCP-LISTEN:$p1,fork,bind=127.0.0.1" "SERIAL-MUX:COM3,b$BAUD"
  linux_bg linux-dial.log "SERIAL-MUX:$WORK/ttyB,b$BAUD" "TCP:127.0.0.1:$echo_port"
  transfers win-listen "$p1"
  if grep -qE "^sfs: SERIAL-MUX:COM3: link up, [0-9]+ sessions" "$WORK/win-listen.log"; then
    verdict win-stats-interval 0 "sfs.exe printed: $(grep -m1 -oE '^sfs: SERIAL-MUX:COM3: link up, [^;]*' "$WORK/win-listen.log")"
  else
    verdict win-stats-interval 1 "no statistics line from sfs.exe --stats-interval 5"
  fi
  stop_all

  # 2. Windows dials the echo target, Linux listens.
  start_cable; map_com COM3 "$WORK/ttyA"
  local p2; p2=$(free_port)
  linux_bg linux-listen.log "TCP-LISTEN:$p2,fork,bind=127.0.0.1" "SERIAL-MUX:$WORK/ttyB,b$BAUD"
  win_bg win-dial.log "SERIAL-MUX:COM3,b$BAUD" "TCP:127.0.0.1:$echo_port"
  transfers win-dial "$p2"
  stop_all

  # 3. A COM port that does not exist: one line on stderr, exit 1.
  unmap_com COM42
  local out rc=0
  out=$(win_fg "SERIAL-MUX:COM42,b$BAUD" "TCP:127.0.0.1:$echo_port" 2>&1) || rc=$?
  if [ "$rc" = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ]; then
    verdict bad-port 0 "exit 1, \"$out\""
  else
    verdict bad-port 1 "exit $rc, output: $out"
  fi

  # 4. Addresses that cannot exist on Windows: one line, exit 2.
  rc=0
  out=$(win_fg "PTY,link=/tmp/x" "TCP:127.0.0.1:$echo_port" 2>&1) || rc=$?
  if [ "$rc" = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ]; then
    verdict no-pty 0 "exit 2, \"$out\""
  else
    verdict no-pty 1 "exit $rc, output: $out"
  fi

  # 5. EXEC runs a Windows command line (cmd.exe expands %OS%).
  local p5; p5=$(free_port)
  win_bg exec.log "TCP-LISTEN:$p5,bind=127.0.0.1" 'EXEC:cmd /c echo hello from %OS%'
  out=$(python3 - "$p5" <<'PY'
import socket, sys, time
t0 = time.time()
while True:
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); break
    except OSError:
        if time.time() - t0 > 30: raise
        time.sleep(0.2)
s.shutdown(socket.SHUT_WR); d = b""
while True:
    b = s.recv(4096)
    if not b: break
    d += b
print(d.decode(errors="replace").strip())
PY
) || true
  if [ "$out" = "hello from Windows_NT" ]; then verdict exec 0 "EXEC:\"cmd /c echo hello from %OS%\" answered \"$out\""
  else verdict exec 1 "got \"$out\""; show_logs; fi
  stop_all

  # 6. Ctrl-C (Wine turns SIGINT into a console Ctrl-C event): a clean close, exit 0.
  local p6; p6=$(free_port)
  win_bg ctrlc.log "TCP-LISTEN:$p6,fork,bind=127.0.0.1" "TCP:127.0.0.1:$echo_port"
  local wpid=${PIDS[-1]}
  python3 "$WORK/peer.py" ping "$p6" 30 >/dev/null || true
  kill -INT "$wpid"; rc=0; wait "$wpid" || rc=$?
  if [ "$rc" = 0 ] && grep -q "signal received: finishing connections" "$WORK/ctrlc.log"; then
    verdict ctrl-c 0 "exit 0 after \"signal received: finishing connections\""
  else
    verdict ctrl-c 1 "exit $rc; log: $(tail -n 3 "$WORK/ctrlc.log")"
  fi
  PIDS=()

  # 7. COM12 and \\.\COM12 (ports above 9 need the \\.\ form in Windows' API).
  local dev
  for dev in 'COM12' '\\.\COM12'; do
    start_cable; map_com COM12 "$WORK/ttyA"
    local p4; p4=$(free_port)
    win_bg com12.log "TCP-LISTEN:$p4,bind=127.0.0.1" "SERIAL:$dev,b$BAUD"
    linux_bg linux-raw.log "SERIAL:$WORK/ttyB,b$BAUD" "TCP:127.0.0.1:$echo_port"
    local r; r=$(python3 "$WORK/peer.py" echo "$p4" 20000 5 noeof) && report "SERIAL:$dev raw echo" "$r" || { FAILED=1; show_logs; }
    stop_all; unmap_com COM12
  done

  # 8. SERIAL sending in bulk while nothing comes back: Wine ends the idle pending read
  #    with a timeout then; sfs must carry on (50 KB, received on ttyB by cat).
  start_cable; map_com COM3 "$WORK/ttyA"
  local p8; p8=$(free_port)
  win_bg serial-tx.log "TCP-LISTEN:$p8,bind=127.0.0.1" "SERIAL:COM3,b$BAUD"
  cat "$WORK/ttyB" >"$WORK/rx.bin" & PIDS+=($!)
  r=$(python3 "$WORK/peer.py" send "$p8" 50000 9 8) || true
  local want got
  want=$(printf '%s' "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha"])' 2>/dev/null || echo none)
  got=$(head -c 50000 "$WORK/rx.bin" | sha256sum | cut -d" " -f1)
  if [ "$want" = "$got" ] && ! grep -q aborted "$WORK/serial-tx.log"; then
    verdict serial-tx-idle-rx 0 "50000 B sent to SERIAL:COM3 with nothing coming back, intact yes, connection kept"
  else
    verdict serial-tx-idle-rx 1 "$(stat -c %s "$WORK/rx.bin") B arrived; $r; $(grep -m1 aborted "$WORK/serial-tx.log" || true)"
  fi
  stop_all

  # 9. SOCKS5 through sfs.exe: a SOCKS5 client asks sfs.exe's SOCKS5-LISTEN for
  #    localhost:ECHO; the Linux SOCKS5-DIAL resolves the name, checks allow= and dials.
  #    Then the other way round (Linux listens, sfs.exe dials).
  local p9 denied; p9=$(free_port); denied=$(free_port)
  start_cable; map_com COM3 "$WORK/ttyA"
  win_bg socks-win-listen.log "SOCKS5-LISTEN:$p9,bind=127.0.0.1" "SERIAL-MUX:COM3,b$BAUD"
  linux_bg socks-linux-dial.log "SERIAL-MUX:$WORK/ttyB,b$BAUD" "SOCKS5-DIAL,allow=127.0.0.1:$echo_port"
  r=$(python3 "$WORK/peer.py" socks "$p9" localhost "$echo_port" "$SIZE" 11 "$denied") \
    && report socks5-win-listen "$r" || { FAILED=1; echo "$r"; show_logs; }
  stop_all
  p9=$(free_port)
  start_cable; map_com COM3 "$WORK/ttyA"
  linux_bg socks-linux-listen.log "SOCKS5-LISTEN:$p9,bind=127.0.0.1" "SERIAL-MUX:$WORK/ttyB,b$BAUD"
  win_bg socks-win-dial.log "SERIAL-MUX:COM3,b$BAUD" "SOCKS5-DIAL,allow=127.0.0.1:$echo_port"
  # (By address: the root has no /etc/hosts, so Wine resolves localhost to ::1 only.)
  r=$(python3 "$WORK/peer.py" socks "$p9" 127.0.0.1 "$echo_port" "$SIZE" 12 "$denied") \
    && report socks5-win-dial "$r" || { FAILED=1; echo "$r"; show_logs; }
  stop_all

  # 10. UDP through sfs.exe: datagrams echoed by a UDP echo server behind the Linux sfs
  #     (sfs.exe listens), then behind sfs.exe (Linux listens).
  local uecho upid p10; uecho=$(free_port)
  python3 "$WORK/peer.py" udp-echo-server "$uecho" & upid=$!
  p10=$(free_port)
  start_cable; map_com COM3 "$WORK/ttyA"
  win_bg udp-win-listen.log "UDP-LISTEN:$p10,bind=127.0.0.1" "SERIAL-MUX:COM3,b$BAUD"
  linux_bg udp-linux-dial.log "SERIAL-MUX:$WORK/ttyB,b$BAUD" "UDP:127.0.0.1:$uecho"
  r=$(python3 "$WORK/peer.py" udp "$p10" 2 60 13) && report udp-win-listen "$r" || { FAILED=1; echo "$r"; show_logs; }
  stop_all
  p10=$(free_port)
  start_cable; map_com COM3 "$WORK/ttyA"
  linux_bg udp-linux-listen.log "UDP-LISTEN:$p10,bind=127.0.0.1" "SERIAL-MUX:$WORK/ttyB,b$BAUD"
  win_bg udp-win-dial.log "SERIAL-MUX:COM3,b$BAUD" "UDP:127.0.0.1:$uecho"
  r=$(python3 "$WORK/peer.py" udp "$p10" 2 60 14) && report udp-win-dial "$r" || { FAILED=1; echo "$r"; show_logs; }
  stop_all
  kill "$upid" 2>/dev/null || true

  # 11. bootstrap= from Windows: sfs.exe finds the shell on a far console (bash -i on ttyB,
  #     cooked as a getty leaves it), uploads a peer (a script that runs the Linux sfs: the far
  #     side is this machine), starts it there and carries the transfers.
  start_cable; map_com COM3 "$WORK/ttyA"
  mkdir -p "$WORK/home"
  printf '#!/bin/sh\nexec %q "$@"\n' "$SFS" >"$WINROOT/tmp/sfs-boot-peer"
  HOME=$WORK/home TERM=dumb python3 "$ROOT/tests/util/console.py" "$WORK/ttyB" "$WORK/stty-before" \
    bash --norc --noprofile -i >/dev/null 2>&1 & PIDS+=($!)
  disown $!   # its hangup when the cable stops is expected, not worth bash's notice
  local p11; p11=$(free_port)
  win_bg bootstrap-win.log "TCP-LISTEN:$p11,fork,bind=127.0.0.1" \
    "SERIAL-MUX:COM3,b$BAUD,bootstrap=TCP:127.0.0.1:$echo_port,peer-binary=Z:/tmp/sfs-boot-peer"
  transfers bootstrap-win "$p11"
  if grep -q "bootstrap: far sfs started" "$WORK/bootstrap-win.log" && [ -x "$(ls "$WORK"/home/.cache/sfs/sfs-* 2>/dev/null | head -n1)" ]; then
    verdict bootstrap-win-started 0 "sfs.exe uploaded the peer to the far console and started it"
  else
    verdict bootstrap-win-started 1 "no far sfs started: $(tail -n 3 "$WORK/bootstrap-win.log")"
  fi
  stop_all
  rm -f "$WINROOT/tmp/sfs-boot-peer"

  t_run=$((SECONDS - t0))
  echo "time: toolchain setup ${t_setup} s, builds (Windows + Linux) ${t_build} s, checks ${t_run} s"
  [ "$FAILED" = 0 ] || die "some checks failed"
  echo "windows-e2e: all checks passed"
}

# The root has the machine's /proc, /dev and /dev/pts bound into it: unmount them first,
# and refuse to delete anything while one is still mounted.
clean() {
  [ -f "$WINROOT/.sfs-wincross-ready" ] && in_root "wineserver -k" >/dev/null 2>&1 || true
  root_remove "$WINROOT"
}

case ${1:-e2e} in
  clean) clean ;;
  setup) setup ;;
  check) check ;;
  build) build ;;
  e2e) e2e ;;
  *) sed -n '2,/^set -euo pipefail/{/^set /d;p}' "$0"; exit 2 ;;
esac
