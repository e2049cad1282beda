#!/usr/bin/env bash
# bootstrap-timing.sh - how long `bootstrap=` takes to bring a link up over the virtual cable,
# first run (upload) and second run (cached), against a `bash -i` console (tests/util/console.py).
#
#   scripts/bootstrap-timing.sh PEER_BINARY [BAUD...]     (default bauds: 115200 921600)
#
# PEER_BINARY is the static sfs to upload (a release build: scripts/release.sh bins); the local
# side is target/release/sfs. Prints one line per run: baud, run, seconds to "link up", and
# checks that 3 connections at once echo 100 kB each through the link.
#
# SFS_BOOT_BUSYBOX=PATH: the console is that busybox's `sh -i` with only its applets on PATH,
# instead of bash. Given an aarch64 busybox (Debian's busybox-static:arm64) and an aarch64
# PEER_BINARY, with qemu-aarch64 registered in binfmt_misc (flag F), the console is an emulated
# 64-bit Raspberry Pi's: `uname -m` says aarch64 and the uploaded sfs runs under qemu-user.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEER=${1:?usage: $0 PEER_BINARY [BAUD...]}
shift
BAUDS=${*:-115200 921600}
SFS=$ROOT/target/release/sfs
PY=$(python3 -c 'import sys; print(sys.executable)')
W=$(mktemp -d /tmp/sfs-boot-timing.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
exec 3>&2 2>/dev/null   # the consoles' hangups at the end are expected; errors go to fd 3

# The far side's service: an echo server (sfs itself, EXEC:cat per connection).
ECHO_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SFS" "TCP-LISTEN:$ECHO_PORT,fork,bind=127.0.0.1" EXEC:cat 2>/dev/null & pids+=($!)

for baud in $BAUDS; do
  d=$W/$baud; mkdir -p "$d/home"
  "$SFS" "PTY,link=$d/a,b$baud" "PTY,link=$d/b,b$baud" 2>/dev/null & pids+=($!)
  while [ ! -e "$d/b" ]; do sleep 0.05; done
  if [ -n "${SFS_BOOT_BUSYBOX:-}" ]; then
    mkdir -p "$d/bin"
    for t in $("$SFS_BOOT_BUSYBOX" --list); do ln -sf "$SFS_BOOT_BUSYBOX" "$d/bin/$t"; done
    HOME=$d/home TERM=dumb PATH=$d/bin "$PY" "$ROOT/tests/util/console.py" "$d/b" "$d/stty" \
      "$SFS_BOOT_BUSYBOX" sh -i >/dev/null 2>&1 & pids+=($!)
  else
    HOME=$d/home TERM=dumb "$PY" "$ROOT/tests/util/console.py" "$d/b" "$d/stty" bash --norc --noprofile -i \
      >/dev/null 2>&1 & pids+=($!)
  fi
  sleep 0.5
  for run in first cached; do
    : >"$d/$run.log"
    t0=$(date +%s.%N)
    "$SFS" -v TCP-LISTEN:0,fork,bind=127.0.0.1 "SERIAL-MUX:$d/a,b$baud,dead-after=2,bootstrap=TCP:127.0.0.1:$ECHO_PORT,peer-binary=$PEER" \
      2>"$d/$run.log" & p=$!
    until grep -q "link up" "$d/$run.log"; do
      kill -0 $p 2>/dev/null || { cat "$d/$run.log" >&3; exit 1; }
      sleep 0.05
    done
    t1=$(date +%s.%N)
    printf 'baud %-7s %-6s run: link up after %5.1f s' "$baud" "$run" "$(echo "$t1 - $t0" | bc)"
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$d/$run.log" | head -n1)
    "$PY" - "$port" <<'PYEOF' || { cat "$d/$run.log" >&3; exit 1; }
import socket, sys, threading, os
port = int(sys.argv[1]); ok = []
def one(i):
    data = os.urandom(100_000)
    s = socket.create_connection(("127.0.0.1", port))
    def send():
        s.sendall(data); s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send); t.start()
    got = b""
    while True:
        b = s.recv(65536)
        if not b: break
        got += b
    t.join(); ok.append(got == data)
ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"; 3 connections at once: {sum(ok)}/3 echoed intact")
sys.exit(0 if all(ok) and len(ok) == 3 else 1)
PYEOF
    kill $p; wait $p 2>/dev/null || true
    # The far sfs leaves dead-after (2 s) later and the shell restores the console.
    sleep 4
  done
done
