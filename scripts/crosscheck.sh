#!/usr/bin/env bash
# crosscheck.sh - run the same sfs SERIAL-MUX pair over sfs's own virtual cable and
# over the independent reference emulator linesim.py, and compare goodput.
#
# Usage: scripts/crosscheck.sh [PATH/TO/linesim.py]
#        (default: ../shared/tools/linesim.py relative to the repository root)
#
# A manual tool: never run by CI or tests. Needs bash, python3 and a release build
# of sfs (SFS=path overrides target/release/sfs;
# the script does not build anything).
#
# For each case (clean 115200, BER 1e-4 115200, clean 921600, BER 1e-5 115200) and
# each emulator it starts
#     emulator:  sfs PTY,link=D/ttyA,bBAUD[,ber=..,seed=11] PTY,link=D/ttyB,bBAUD[,..,seed=22]
#            or  python3 linesim.py --a D/ttyA --b D/ttyB --baud BAUD [--ber ..] --seed N
#     side A:    sfs TCP-LISTEN:P,fork,bind=127.0.0.1 SERIAL-MUX:D/ttyA,bBAUD
#     side B:    sfs SERIAL-MUX:D/ttyB,bBAUD TCP:127.0.0.1:TARGET
# where TARGET is a small Python server (sink: reads to EOF and answers with the
# byte count and SHA-256 of what it read; echo). It waits for an end-to-end echo,
# then uploads SECS seconds of line time (baud/10 * SECS pseudo-random bytes)
# through one connection and checks length and SHA-256. Goodput = bytes / wall time
# (connect -> sink's verdict) / (baud/10), as in `cargo bench --bench e2e`.
# The emulator's own statistics are printed after each run.
#
# Then, with no sfs involved, it measures each emulator alone: RAW throughput (a
# writer pushes RAW_SECS of line time into ttyA as fast as the cable accepts, a
# reader times the bytes at ttyB: rate = bytes/s between the first and last byte,
# and bit errors per bit for a BER case), and the one-way 1-byte latency.
# Finally a 1-byte echo round trip (p50/p99, ECHO_N samples, 20 ms apart) through
# the sfs pair at 115200 on an idle line, over both emulators.
#
# Environment: SECS (default 10), RAW_SECS (5), ECHO_N (200), REPEAT (1: runs per
#   case and emulator; run r uses cable seeds 11+r/22+r and upload seed 42+r),
#   CASES (default "clean-115200 ber1e-4-115200 clean-921600 ber1e-5-115200"),
#   SKIP_RAW=1 / SKIP_ECHO=1 to skip those parts, KEEP=1 to keep the work dir.
# All processes and links are removed on exit (trap).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LINESIM=${1:-$ROOT/../shared/tools/linesim.py}
[[ -f $LINESIM ]] || { echo "crosscheck: $LINESIM not found" >&2; exit 2; }
LINESIM=$(cd "$(dirname "$LINESIM")" && pwd)/$(basename "$LINESIM")
if [[ -z ${SFS:-} ]]; then
  for c in "${CARGO_TARGET_DIR:-$ROOT/target}/release/sfs" "$ROOT/target/release/sfs"; do
    [[ -x $c ]] && { SFS=$c; break; }
  done
fi
[[ -x ${SFS:-} ]] || { echo "crosscheck: no sfs binary (cargo build --release, or SFS=...)" >&2; exit 2; }
SECS=${SECS:-10}
RAW_SECS=${RAW_SECS:-5}
ECHO_N=${ECHO_N:-200}
REPEAT=${REPEAT:-1}
EMU_KIND=
CASES=${CASES:-"clean-115200 ber1e-4-115200 clean-921600 ber1e-5-115200"}

WORK=$(mktemp -d /tmp/sfs-crosscheck.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "$WORK"/tty?
  [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- python helper
HELPER=$WORK/xc.py
cat > "$HELPER" <<'PY'
import hashlib, os, random, select, socket, socketserver, statistics, sys, termios, threading, time, tty

def serve(port):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            s = self.request
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            k = s.recv(1)
            if k == b"E":
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    s.sendall(d)
            elif k == b"S":
                h, n = hashlib.sha256(), 0
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    h.update(d); n += len(d)
                s.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))
            s.close()
    class S(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
    S(("127.0.0.1", port), H).serve_forever()

def wait_ready(port, limit=30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=6)
            s.settimeout(6)
            s.sendall(b"Ex")
            if s.recv(1) == b"x":
                s.close(); return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("crosscheck: the sfs pair never echoed")

def upload(port, n, seed):
    data = random.Random(seed).randbytes(n)
    want = hashlib.sha256(data).hexdigest()
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"S" + data)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(600)
    r = b""
    while not r.endswith(b"\n"):
        d = s.recv(256)
        if not d:
            break
        r += d
    wall = time.monotonic() - t0
    got = r.split()
    ok = len(got) == 2 and int(got[0]) == n and got[1].decode() == want
    print("%d %.4f %s" % (n, wall, "intact" if ok else "CORRUPT(%r)" % r))

def echo(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(5)
    s.sendall(b"E")
    v = []
    for i in range(n + 1):
        t0 = time.perf_counter()
        s.sendall(b"x")
        try:
            b = s.recv(1)
        except socket.timeout:
            continue
        if b == b"x" and i > 0:
            v.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)
    v.sort()
    q = lambda p: v[round((len(v) - 1) * p)]
    print("%.2f %.2f %d" % (q(0.5), q(0.99), len(v)))

def opentty(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd

def raw(a, b, n):
    """Write n bytes into a (blocking), time their arrival at b."""
    fa, fb = opentty(a), opentty(b)
    data = random.Random(7).randbytes(n)
    def writer():
        v = memoryview(data)
        while v:
            k = os.write(fa, v[:4096]); v = v[k:]
    got, t_first, t_last = bytearray(), None, None
    th = threading.Thread(target=writer, daemon=True)
    t_start = time.monotonic()
    th.start()
    while len(got) < n:
        r, _, _ = select.select([fb], [], [], 3.0)
        if not r:
            break                       # lost bytes: stop after 3 s of silence
        d = os.read(fb, 65536)
        now = time.monotonic()
        if t_first is None:
            t_first = now
        t_last = now
        got += d
    m = min(len(got), n)
    bits = sum(bin(x ^ y).count("1") for x, y in zip(got[:m], data[:m])) if m else 0
    rate = (len(got) - 1) / (t_last - t_first) if t_last and t_last > t_first else 0
    print("%d %d %.1f %d %.3f" % (n, len(got), rate, bits, t_last - t_start if t_last else 0))

def rawlat(a, b, n):
    """One-way latency of one byte written into a, read at b (idle line)."""
    fa, fb = opentty(a), opentty(b)
    v = []
    for i in range(n):
        t0 = time.perf_counter()
        os.write(fa, b"x")
        r, _, _ = select.select([fb], [], [], 2.0)
        if r:
            os.read(fb, 16)
            v.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    v.sort()
    q = lambda p: v[round((len(v) - 1) * p)]
    print("%.3f %.3f %d" % (q(0.5), q(0.99), len(v)))

cmd, args = sys.argv[1], sys.argv[2:]
{"serve": lambda: serve(int(args[0])),
 "wait": lambda: wait_ready(int(args[0])),
 "upload": lambda: upload(int(args[0]), int(args[1]), int(args[2])),
 "echo": lambda: echo(int(args[0]), int(args[1])),
 "raw": lambda: raw(args[0], args[1], int(args[2])),
 "rawlat": lambda: rawlat(args[0], args[1], int(args[2]))}[cmd]()
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

TARGET=$(free_port)
python3 "$HELPER" serve "$TARGET" & PIDS+=($!)

# case name -> "baud sfs-opts linesim-args"
case_spec() {
  case $1 in
    clean-115200)   echo "115200 - -" ;;
    clean-921600)   echo "921600 - -" ;;
    ber1e-4-115200) echo "115200 ber=1e-4 --ber=1e-4" ;;
    ber1e-5-115200) echo "115200 ber=1e-5 --ber=1e-5" ;;
    *) echo "crosscheck: unknown case $1" >&2; exit 2 ;;
  esac
}

EMU_PID=
# start_emu KIND BAUD SFSOPTS LSARGS: starts the cable, waits for both links.
start_emu() {
  local kind=$1 baud=$2 sopts=$3 lsargs=$4 seed=${5:-0} a b
  EMU_KIND=$kind
  rm -f "$WORK"/ttyA "$WORK"/ttyB
  if [[ $kind == sfs ]]; then
    a="PTY,link=$WORK/ttyA,b$baud"; b="PTY,link=$WORK/ttyB,b$baud"
    [[ $sopts == - ]] || { a+=",$sopts,seed=$((11 + seed))"; b+=",$sopts,seed=$((22 + seed))"; }
    "$SFS" "$a" "$b" >"$WORK/emu.out" 2>"$WORK/emu.err" & EMU_PID=$!
  else
    local extra=(); [[ $lsargs == - ]] || extra=("$lsargs")
    python3 "$LINESIM" --a "$WORK/ttyA" --b "$WORK/ttyB" --baud "$baud" --seed $((11 + seed)) \
      "${extra[@]}" >"$WORK/emu.out" 2>"$WORK/emu.err" & EMU_PID=$!
  fi
  PIDS+=("$EMU_PID")
  local i
  for i in $(seq 100); do [[ -e $WORK/ttyA && -e $WORK/ttyB ]] && return 0; sleep 0.1; done
  echo "crosscheck: $kind emulator did not create its links" >&2; cat "$WORK/emu.err" >&2; exit 1
}
stop_emu() {
  # The sfs cable reports on SIGUSR1 (its exit report can be lost on SIGTERM).
  [[ $EMU_KIND == sfs ]] && { kill -USR1 "$EMU_PID" 2>/dev/null || true; sleep 0.2; }
  kill "$EMU_PID" 2>/dev/null || true; wait "$EMU_PID" 2>/dev/null || true
  rm -f "$WORK"/ttyA "$WORK"/ttyB
}
emu_stats() {   # one line of the emulator's own report
  if [[ $1 == sfs ]]; then { grep -E 'sfs cable: [AB]->[AB]:' "$WORK/emu.err" || echo '(no report)'; } | tail -2 | sed 's/^sfs cable: /    /'
  else python3 - "$WORK/emu.out" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for d in ("a2b", "b2a"):
    x = s[d]
    print("    %s: %d in, %d out, %d bits flipped, queue max %d, flow stops %d, overrun %d" % (
        d, x["bytes_in"], x["bytes_out"], x["bits_flipped"], x["queue_max"], x["flow_stops"], x["overrun_lost"]))
print("    tty_a=%s max_late_ms=%s late>5ms=%s" % (s.get("tty_a"), s["max_late_ms"], s["late_wakeups_over_5ms"]))
PY
  fi
}

SIDE_A= SIDE_B= ENTRY=
start_pair() {
  local baud=$1
  ENTRY=$(free_port)
  "$SFS" -q "TCP-LISTEN:$ENTRY,fork,bind=127.0.0.1" "SERIAL-MUX:$WORK/ttyA,b$baud" 2>"$WORK/a.log" & SIDE_A=$!
  "$SFS" -q "SERIAL-MUX:$WORK/ttyB,b$baud" "TCP:127.0.0.1:$TARGET" 2>"$WORK/b.log" & SIDE_B=$!
  PIDS+=("$SIDE_A" "$SIDE_B")
  python3 "$HELPER" wait "$ENTRY"
}
stop_pair() {
  kill "$SIDE_A" "$SIDE_B" 2>/dev/null || true
  wait "$SIDE_A" 2>/dev/null || true; wait "$SIDE_B" 2>/dev/null || true
}

declare -A GP
echo "crosscheck: sfs=$SFS linesim=$LINESIM SECS=$SECS ($(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "== goodput: sfs pair over each emulator, one upload of $SECS s of line time =="
for c in $CASES; do
  read -r baud sopts lsargs < <(case_spec "$c")
  n=$(( baud / 10 * SECS ))
  for r in $(seq 0 $((REPEAT - 1))); do
    for emu in sfs linesim; do
      start_emu "$emu" "$baud" "$sopts" "$lsargs" "$r"
      start_pair "$baud"
      read -r bytes wall verdict < <(python3 "$HELPER" upload "$ENTRY" "$n" $((42 + r)))
      stop_pair; stop_emu
      g=$(python3 -c "print('%.3f' % ($bytes / $wall / ($baud / 10)))")
      GP[$c.$emu]="${GP[$c.$emu]:-} $g"
      printf '%-16s %-8s run %d %8d B %7.2f s  goodput %s  %s\n' "$c" "$emu" "$r" "$bytes" "$wall" "$g" "$verdict"
      emu_stats "$emu"
    done
  done
done

if [[ -z ${SKIP_RAW:-} ]]; then
  echo "== each emulator alone (no sfs): raw throughput and one-way 1-byte latency =="
  for c in clean-115200 clean-921600 ber1e-4-115200; do
    read -r baud sopts lsargs < <(case_spec "$c")
    n=$(( baud / 10 * RAW_SECS ))
    for emu in sfs linesim; do
      start_emu "$emu" "$baud" "$sopts" "$lsargs"
      read -r sent got rate bits tot < <(python3 "$HELPER" raw "$WORK/ttyA" "$WORK/ttyB" "$n")
      lat=""
      if [[ $c == clean-115200 ]]; then
        read -r l50 l99 _ < <(python3 "$HELPER" rawlat "$WORK/ttyA" "$WORK/ttyB" 200)
        lat="  one-way 1 B: p50 $l50 ms p99 $l99 ms (1 byte time = $(python3 -c "print('%.3f' % (10000/$baud))") ms)"
      fi
      stop_emu
      python3 - "$c" "$emu" "$baud" "$sent" "$got" "$rate" "$bits" "$tot" "$lat" <<'PY'
import sys
c, emu, baud, sent, got, rate, bits, tot, lat = sys.argv[1:]
baud, sent, got, rate, bits, tot = int(baud), int(sent), int(got), float(rate), int(bits), float(tot)
print("%-16s %-8s raw %7.1f B/s = %.4f of baud/10, %d/%d bytes in %.2f s, bit errors %d (%.2e/bit)%s" % (
    c, emu, rate, rate / (baud / 10), got, sent, tot, bits, bits / max(1, 8 * min(got, sent)), lat))
PY
    done
  done
fi

if [[ -z ${SKIP_ECHO:-} ]]; then
  echo "== 1-byte echo round trip through the sfs pair, idle line, 115200, $ECHO_N samples =="
  for emu in sfs linesim; do
    start_emu "$emu" 115200 - - 0
    start_pair 115200
    read -r p50 p99 k < <(python3 "$HELPER" echo "$ENTRY" "$ECHO_N")
    stop_pair; stop_emu
    GP[echo.$emu]="$p50 $p99"
    printf '%-16s %-8s p50 %6s ms  p99 %6s ms  (%s samples)\n' echo-idle-115200 "$emu" "$p50" "$p99" "$k"
  done
fi

echo "== summary: goodput (payload B/s / (baud/10)) =="
printf '%-16s %10s %10s %7s   (mean of REPEAT=%d runs; per run: sfs | linesim)\n' case sfs-cable linesim ratio "$REPEAT"
for c in $CASES; do
  python3 - "$c" "${GP[$c.sfs]}" "${GP[$c.linesim]}" <<'PY'
import statistics as st, sys
c, s, l = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ms, ml = st.mean(s), st.mean(l)
print("%-16s %10.3f %10.3f %7.3f   %s | %s" % (c, ms, ml, ms / ml, " ".join("%.3f" % x for x in s), " ".join("%.3f" % x for x in l)))
PY
done
