#!/usr/bin/env python3
# e2e-peer.py - the TCP side of the end-to-end checks of scripts/windows-e2e.sh and
# scripts/release.sh: an echo server, and clients that push seeded random bytes through sfs,
# read everything back and compare SHA-256. Each client command prints one JSON result.
#
#   e2e-peer.py echo-server PORT          serve echo on 127.0.0.1:PORT (until killed)
#   e2e-peer.py ping PORT LIMIT           wait until a small echo gets through (link up)
#   e2e-peer.py echo PORT SIZE SEED [noeof]   one connection: SIZE bytes there and back
#   e2e-peer.py send PORT SIZE SEED WAIT  send only, keep the connection WAIT s
#   e2e-peer.py conc PORT N TOTAL         N concurrent echoes sharing TOTAL bytes
import hashlib, json, random, socket, sys, threading, time

def echo_server(port):
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port)); srv.listen(64)
    def serve(c):
        try:
            while True:
                b = c.recv(65536)
                if not b: break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            c.close()
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()

def connect(port, limit):
    t0 = time.time()
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=120)
        except OSError:
            if time.time() - t0 > limit: raise
            time.sleep(0.2)

def echo(port, size, seed, eof=True, limit=60):
    """Sends size bytes, reads size bytes back (then EOF when eof); returns a result."""
    data = random.Random(seed).randbytes(size)
    s = connect(port, limit)
    t0 = time.time()
    def send():
        try:
            s.sendall(data)
            if eof: s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    th = threading.Thread(target=send, daemon=True); th.start()
    got = bytearray(); err = ""
    try:
        while len(got) < size or eof:
            b = s.recv(65536)
            if not b: break
            got += b
    except OSError as e:
        err = str(e)
    secs = time.time() - t0
    s.close()
    ok = hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    return {"bytes": size, "got": len(got), "secs": secs, "intact": ok, "err": err}

def main():
    cmd = sys.argv[1]
    if cmd == "echo-server":
        echo_server(int(sys.argv[2]))
    elif cmd == "ping":          # wait until a small echo gets through (link up)
        port, limit = int(sys.argv[2]), float(sys.argv[3])
        t0 = time.time()
        while time.time() - t0 < limit:
            try:
                if echo(port, 64, 1, eof=False, limit=limit)["intact"]:
                    print("up"); return
            except OSError:
                pass
            time.sleep(0.5)
        print("down"); sys.exit(1)
    elif cmd == "echo":          # PORT SIZE SEED [noeof]
        r = echo(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), eof=len(sys.argv) < 6)
        print(json.dumps(r))
    elif cmd == "send":          # PORT SIZE SEED WAIT: send only, keep the connection WAIT s
        port, size, seed, wait = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
        data = random.Random(seed).randbytes(size)
        s = connect(port, 30); t0 = time.time(); err = ""
        try:
            s.sendall(data)
            s.settimeout(wait)
            if s.recv(1) == b"": err = "closed by sfs"
        except socket.timeout:
            pass
        except OSError as e:
            err = str(e)
        print(json.dumps({"sha": hashlib.sha256(data).hexdigest(), "secs": time.time() - t0, "err": err}))
    elif cmd == "conc":          # PORT N TOTAL: N concurrent echoes sharing TOTAL bytes
        port, n, total = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        res = [None] * n
        def run(i):
            try:
                res[i] = echo(port, total // n, 100 + i)
            except OSError as e:
                res[i] = {"bytes": total // n, "got": 0, "secs": 0, "intact": False, "err": str(e)}
        t0 = time.time()
        ths = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in ths: t.start()
        for t in ths: t.join()
        secs = time.time() - t0
        print(json.dumps({"bytes": sum(r["bytes"] for r in res), "got": sum(r["got"] for r in res),
                          "secs": secs, "intact": all(r["intact"] for r in res),
                          "err": "; ".join(r["err"] for r in res if r["err"])}))
main()
