//! SOCKS5 through sfs over the virtual cable: curl fetches pages in parallel
//! from an HTTP server on the far side (names resolved there), and a raw
//! SOCKS5 client checks the exact reply codes of refused destinations.
#![allow(clippy::disallowed_methods)] // measurements read the clock
#![cfg(unix)] // over the virtual cable (ptys)

mod util;

use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;

/// A body that depends on the page number.
fn page(n: usize) -> Vec<u8> {
    pattern(8_000 + 997 * n, n as u64 + 1)
}

/// A minimal HTTP/1.1 server answering `GET /page/N` with [`page`]`(N)`.
async fn http_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req);
                let n: usize = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.strip_prefix("/page/"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let body = page(n);
                http_reply(&mut s, &body).await;
            });
        }
    });
    port
}

/// Sends a SOCKS5 CONNECT for a name (or, with `ip`, an IPv4 address) and
/// returns the reply code and how long it took.
async fn raw_connect(socks: u16, host: &str, port: u16) -> (u8, Duration) {
    let t0 = Instant::now();
    let mut s = connect_retry(socks, Duration::from_secs(5)).await;
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await.unwrap();
    assert_eq!(m, [5, 0], "method selection");
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut reply))
        .await
        .expect("a SOCKS reply within 20 s")
        .unwrap();
    assert_eq!(reply[0], 5);
    (reply[1], t0.elapsed())
}

struct Setup {
    _cable: Cable,
    near: Sfs,
    far: Sfs,
    socks: u16,
    http: u16,
    closed: u16,
    /// Holds `closed` so that nothing else takes it.
    _closed_guard: tokio::net::TcpSocket,
}

async fn setup(tag: &str) -> Setup {
    let cable = Cable::start(tag, 921_600).await;
    let http = http_server().await;
    let (closed_guard, closed) = closed_port();
    let far = Sfs::start(&[
        format!("SERIAL-MUX:{},b921600", cable.b.display()),
        format!("SOCKS5-DIAL,allow=localhost:{http};127.0.0.1:{closed}"),
    ]);
    let near = Sfs::start(&[
        "SOCKS5-LISTEN:0,bind=127.0.0.1".to_string(),
        format!("SERIAL-MUX:{},b921600", cable.a.display()),
    ]);
    let socks = near.listen_port().await;
    Setup {
        _cable: cable,
        near,
        far,
        socks,
        http,
        closed,
        _closed_guard: closed_guard,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_pages_through_socks5_over_the_cable() {
    if Command::new("curl").arg("--version").output().is_err() {
        missing_tool("curl", "apt-get install curl");
        return;
    }
    let s = setup("socks-curl").await;
    // The first request also waits for the link handshake.
    let _ = connect_retry(s.socks, Duration::from_secs(5)).await;
    const PAGES: usize = 24;
    const PARALLEL: usize = 6;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..PARALLEL {
        let (socks, http) = (s.socks, s.http);
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for n in (k..PAGES).step_by(PARALLEL) {
                let t = Instant::now();
                let o = Command::new("curl")
                    .args([
                        "-sS",
                        "--max-time",
                        "60",
                        "--socks5-hostname",
                        &format!("127.0.0.1:{socks}"),
                        &format!("http://localhost:{http}/page/{n}"),
                    ])
                    .output()
                    .unwrap();
                out.push((n, o, t.elapsed()));
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    let mut bytes = 0;
    for t in tasks {
        for (n, o, took) in t.await.unwrap() {
            assert!(
                o.status.success(),
                "curl page {n}: {}\nnear:\n{}\nfar:\n{}",
                String::from_utf8_lossy(&o.stderr),
                s.near.log_text(),
                s.far.log_text()
            );
            assert!(
                o.stdout == page(n),
                "page {n} differs ({} bytes)",
                o.stdout.len()
            );
            bytes += o.stdout.len();
            latencies.push(took);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    latencies.sort();
    eprintln!(
        "socks5 over 921600 baud: {PAGES} pages ({bytes} B) intact, {PARALLEL} in parallel, {:.1} pages/s, {:.0} B/s; per page median {:?}, max {:?}",
        PAGES as f64 / secs,
        bytes as f64 / secs,
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_destinations_get_the_right_socks_reply() {
    let s = setup("socks-refuse").await;
    // Warm up: an allowed destination succeeds (and the link is up).
    let (code, took) = raw_connect(s.socks, "localhost", s.http).await;
    assert_eq!(
        code,
        0,
        "allowed destination; far log:\n{}",
        s.far.log_text()
    );
    eprintln!("socks5 CONNECT allowed: reply 0x00 in {took:?} (includes link start)");
    // Outside the allow-list: a name, an address, an allowed host on another port.
    for (host, port) in [
        ("forbidden.example", 80),
        ("10.1.2.3", 22),
        ("localhost", s.http + 1),
        ("127.0.0.1", s.http),
    ] {
        let (code, took) = raw_connect(s.socks, host, port).await;
        assert_eq!(code, 0x02, "{host}:{port} must be 'not allowed by ruleset'");
        assert!(
            took < Duration::from_secs(2),
            "{host}:{port}: reply took {took:?}"
        );
        eprintln!("socks5 CONNECT {host}:{port}: reply 0x02 in {took:?}");
    }
    // Allowed, but nothing listens there: connection refused.
    let (code, took) = raw_connect(s.socks, "127.0.0.1", s.closed).await;
    assert_eq!(code, 0x05, "closed port; far log:\n{}", s.far.log_text());
    eprintln!("socks5 CONNECT to a closed port: reply 0x05 in {took:?}");
    // A BIND request is answered 0x07, then closed.
    let mut c = connect_retry(s.socks, Duration::from_secs(5)).await;
    c.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    c.read_exact(&mut m).await.unwrap();
    c.write_all(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80])
        .await
        .unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply.get(1), Some(&0x07));
    // A client offering only username/password is told no method fits.
    let mut c = connect_retry(s.socks, Duration::from_secs(5)).await;
    c.write_all(&[5, 1, 2]).await.unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, [5, 0xff]);
}
