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
#   (and the SOCKS5 and UDP commands windows-e2e.sh uses: see main() below)
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

def udp_echo_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        d, a = s.recvfrom(65536)
        s.sendto(d, a)

def socks_connect(port, host, dport, limit=60):
    """SOCKS5 CONNECT through 127.0.0.1:port; returns (socket, reply code)."""
    s = connect(port, limit)
    s.sendall(b"\x05\x01\x00")
    if s.recv(2) != b"\x05\x00": raise OSError("no SOCKS5 method accepted")
    try:
        dst = b"\x01" + socket.inet_aton(host)
    except OSError:
        dst = b"\x03" + bytes([len(host)]) + host.encode()
    s.sendall(b"\x05\x01\x00" + dst + dport.to_bytes(2, "big"))
    rep = b""
    while len(rep) < 10:
        b = s.recv(10 - len(rep))
        if not b: break
        rep += b
    if len(rep) < 2: raise OSError("no SOCKS5 reply")
    return s, rep[1]

def socks_echo(port, host, dport, size, seed, denied_port):
    data = random.Random(seed).randbytes(size)
    t_up = time.time()
    while True:   # the link comes up first: a general failure (0x01) until then
        s, code = socks_connect(port, host, dport)
        if code == 0 or time.time() - t_up > 60: break
        s.close(); time.sleep(0.5)
    if code != 0:
        return {"bytes": size, "got": 0, "secs": 0, "intact": False, "err": f"reply 0x{code:02x}"}
    t0 = time.time()
    def send():
        try:
            s.sendall(data); s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    th = threading.Thread(target=send, daemon=True); th.start()
    got = bytearray(); err = ""
    try:
        while True:
            b = s.recv(65536)
            if not b: break
            got += b
    except OSError as e:
        err = str(e)
    secs = time.time() - t0
    s.close()
    d, denied = socks_connect(port, "127.0.0.1", denied_port)
    d.close()
    ok = hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest() and denied == 2
    if denied != 2: err += f" outside allow= got reply 0x{denied:02x}, not 0x02"
    return {"bytes": size, "got": len(got), "secs": secs, "intact": ok, "err": err.strip(),
            "note": f"SOCKS5 CONNECT {host}:{dport} reply 0x00; outside allow= reply 0x{denied:02x}"}

def udp_echo(port, clients, count, seed, limit=60):
    """Each client sends count datagrams of 1..1472 bytes (8 in flight) and must get
    every one back exactly (no split, merge or change); returns a result."""
    rng = random.Random(seed)
    socks, sent, want = [], 0, []
    for c in range(clients):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
        u.connect(("127.0.0.1", port)); u.settimeout(0.5); socks.append(u)
        dg = [bytes([c, i % 256]) + rng.randbytes(rng.choice([0, 1470, rng.randrange(0, 1471)]))
              for i in range(count)]
        want.append(dg)
    # Wait for the link: the first datagram of client 0, resent until it comes back.
    t_up = time.time()
    while True:
        socks[0].send(b"ping")
        try:
            if socks[0].recv(65536) == b"ping": break
        except OSError:
            pass
        if time.time() - t_up > limit:
            return {"bytes": 0, "got": 0, "secs": 0, "intact": False, "err": "no echo within 60 s"}
    t0 = time.time(); got = [[] for _ in range(clients)]; nxt = [0] * clients; err = ""
    deadline = time.time() + 120
    while any(len(got[c]) < count for c in range(clients)) and time.time() < deadline:
        for c in range(clients):
            while nxt[c] < count and nxt[c] - len(got[c]) < 8:
                socks[c].send(want[c][nxt[c]]); nxt[c] += 1
        for c in range(clients):
            try:
                while len(got[c]) < nxt[c]:
                    socks[c].settimeout(0.05)
                    d = socks[c].recv(65536)
                    if d != b"ping":   # a late echo of the link-up probe
                        got[c].append(d)
            except OSError:
                pass
    secs = time.time() - t0
    total = sum(len(d) for w in want for d in w)
    back = sum(len(d) for g in got for d in g)
    ok = got == want
    if not ok:
        err = f"{sum(len(g) for g in got)} of {clients * count} datagrams back, " \
              f"{sum(1 for c in range(clients) for a, b in zip(got[c], want[c]) if a != b)} differ"
    return {"bytes": total, "got": back, "secs": secs, "intact": ok, "err": err,
            "note": f"{clients} clients x {count} datagrams of 2-1472 B, each back whole"}

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
    elif cmd == "udp-echo-server":
        udp_echo_server(int(sys.argv[2]))
    elif cmd == "socks":         # PORT HOST DPORT SIZE SEED DENIED_PORT
        print(json.dumps(socks_echo(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                                    int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))))
    elif cmd == "udp":           # PORT CLIENTS COUNT SEED
        print(json.dumps(udp_echo(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
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
