#!/usr/bin/env bash
# bootstrap-timing.sh - how long `bootstrap=` takes to bring a link up over the virtual cable,
# first run (upload) and second run (cached), against a `bash -i` console (tests/util/console.py).
#
#   scripts/bootstrap-timing.sh PEER_BINARY [BAUD...]     (default bauds: 115200 921600)
#
# PEER_BINARY is the static sfs to upload (a release build: scripts/release.sh bins); the local
# side is target/release/sfs. Prints one line per run: baud, run, seconds to "link up".
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

for baud in $BAUDS; do
  d=$W/$baud; mkdir -p "$d/home"
  "$SFS" "PTY,link=$d/a,b$baud" "PTY,link=$d/b,b$baud" 2>/dev/null & pids+=($!)
  while [ ! -e "$d/b" ]; do sleep 0.05; done
  HOME=$d/home TERM=dumb "$PY" "$ROOT/tests/util/console.py" "$d/b" "$d/stty" bash --norc --noprofile -i \
    >/dev/null 2>&1 & pids+=($!)
  sleep 0.5
  for run in first cached; do
    : >"$d/$run.log"
    t0=$(date +%s.%N)
    "$SFS" -v TCP-LISTEN:0,fork "SERIAL-MUX:$d/a,b$baud,dead-after=2,bootstrap=TCP:127.0.0.1:9,peer-binary=$PEER" \
      2>"$d/$run.log" & p=$!
    until grep -q "link up" "$d/$run.log"; do
      kill -0 $p 2>/dev/null || { cat "$d/$run.log" >&3; exit 1; }
      sleep 0.05
    done
    t1=$(date +%s.%N)
    printf 'baud %-7s %-6s run: link up after %5.1f s\n' "$baud" "$run" "$(echo "$t1 - $t0" | bc)"
    kill $p; wait $p 2>/dev/null || true
    # The far sfs leaves dead-after (2 s) later and the shell restores the console.
    sleep 4
  done
done
