//! Shared helpers for the integration tests: running the real sfs binary.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock
#![allow(dead_code)]
// Also the end-to-end benchmark's (benches/e2e.rs includes this file), so
// that nothing the tests need is compiled into the sfs binary.

#[cfg(unix)]
pub mod sshd;
#[cfg(unix)]
pub mod text;
#[cfg(unix)]
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// A test that needs `tool` found it missing: a failure under CI (`CI=true`,
/// where .ci/run installs it), a loud skip elsewhere.
pub fn missing_tool(tool: &str, install: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{tool} is required under CI=true ({install})");
    }
    eprintln!("SKIPPED: {tool} is not installed ({install})");
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sfs"))
}

/// A running sfs process, killed on drop.
pub struct Sfs {
    pub child: Child,
    pub log: PathBuf,
}

impl Sfs {
    pub fn start(args: &[String]) -> Sfs {
        let log = std::env::temp_dir().join(format!(
            "sfs-test-{}-{}.log",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .arg("-v")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(f))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sfs");
        Sfs { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log satisfies `ready` (sfs reports at -v what it has
    /// done: bound a port, opened a device, brought a link up); returns the
    /// log. Panics with `what` and the log after `limit`. The 20 ms between
    /// looks is a polling period, not a guess at how long sfs needs.
    pub async fn wait_log_until(
        &self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let t0 = Instant::now();
        loop {
            let log = self.log_text();
            if ready(&log) {
                return log;
            }
            if t0.elapsed() > limit {
                panic!("sfs did not report {what} within {limit:?}; log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the log contains `want`; returns the log.
    pub async fn wait_log(&self, want: &str, limit: Duration) -> String {
        self.wait_log_until(&format!("{want:?}"), limit, |l| l.contains(want))
            .await
    }

    /// The ports of its first `n` listeners (`TCP-LISTEN:0`, `SOCKS5-LISTEN:0`,
    /// …), read from the "listening on ADDR:PORT" lines sfs logs once each is
    /// bound, so already accepting. sfs binds the listeners one after another
    /// in command-line order, so the ports come in that order.
    pub async fn listen_ports(&self, n: usize) -> Vec<u16> {
        let ports = sfs::testbed::listening_ports;
        let log = self
            .wait_log_until(
                &format!("{n} listening ports"),
                Duration::from_secs(10),
                |l| ports(l).len() >= n,
            )
            .await;
        let mut got = ports(&log);
        got.truncate(n);
        got
    }

    /// The port of its (first) listener; see [`Sfs::listen_ports`].
    pub async fn listen_port(&self) -> u16 {
        self.listen_ports(1).await[0]
    }

    /// Kills the process and waits until it is gone, so that what it held
    /// (a device, a port) is free when this returns.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for Sfs {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A local port where nothing listens, for "connection refused" cases: a
/// socket bound to it but never listening, held by the returned guard, so no
/// other process can take the port while the test dials it.
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sfs-it-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Connects, retrying until `limit` (the process may still be binding).
pub async fn connect_retry(port: u16, limit: Duration) -> TcpStream {
    let t0 = Instant::now();
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => return s,
            Err(e) if t0.elapsed() > limit => panic!("cannot connect to {port}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// An echo server on a free port; returns its port.
pub async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    port
}

pub async fn wait_path(p: &Path, limit: Duration) {
    let t0 = Instant::now();
    while !p.exists() {
        assert!(t0.elapsed() < limit, "{} never appeared", p.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `data` and reads everything back until EOF (after our half-close).
pub async fn roundtrip_all(mut s: TcpStream, data: &[u8]) -> Vec<u8> {
    let (mut r, mut w) = s.split();
    let writer = async {
        w.write_all(data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let reader = async {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(writer, reader);
    got
}

/// Like [`roundtrip_all`], with errors returned.
pub async fn try_roundtrip_all(mut s: TcpStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let (mut r, mut w) = s.split();
    let writer = async {
        w.write_all(data).await?;
        w.shutdown().await
    };
    let reader = async {
        let mut got = Vec::new();
        r.read_to_end(&mut got).await?;
        Ok(got)
    };
    let ((), got) = tokio::try_join!(writer, reader)?;
    Ok(got)
}

/// Connects to `port`, has `len` pattern bytes echoed back intact, and keeps
/// the connection open (so its channel stays listed in statistics).
#[cfg(unix)]
pub async fn echo_kept_open(port: u16, len: usize, seed: u64) -> TcpStream {
    let mut s = connect_retry(port, Duration::from_secs(5)).await;
    let data = pattern(len, seed);
    s.write_all(&data).await.unwrap();
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut got))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(got, data);
    s
}

/// Answers an HTTP request with `body` and closes (test HTTP servers).
pub async fn http_reply(s: &mut TcpStream, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body).await;
    let _ = s.shutdown().await;
}

/// Deterministic test data (the test bed's generator, unix only).
#[cfg(unix)]
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    sfs::testbed::PatternGen::new(seed).fill(&mut v);
    v
}

/// A virtual serial cable (`sfs PTY PTY`) in a temporary directory; ends `a` and
/// `b`. Killed and cleaned up on drop.
pub struct Cable {
    proc: Sfs,
    pub dir: PathBuf,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl Cable {
    pub async fn start(tag: &str, baud: u32) -> Cable {
        Self::start_with(tag, baud, "").await
    }

    /// A cable whose both ends apply `impair` (PTY options such as
    /// `,ber=1e-5`; empty for a clean line).
    pub async fn start_with(tag: &str, baud: u32, impair: &str) -> Cable {
        Self::start_each(tag, baud, impair, impair).await
    }

    /// A cable whose bytes from `a` to `b` suffer `a_to_b`, and those from
    /// `b` to `a` suffer `b_to_a` (each end's options describe its
    /// transmitter).
    pub async fn start_each(tag: &str, baud: u32, a_to_b: &str, b_to_a: &str) -> Cable {
        let dir = temp_dir(tag);
        let (a, b) = (dir.join("a"), dir.join("b"));
        let proc = Sfs::start(&[
            format!("PTY,link={},b{baud}{a_to_b}", a.display()),
            format!("PTY,link={},b{baud}{b_to_a}", b.display()),
        ]);
        wait_path(&a, Duration::from_secs(5)).await;
        wait_path(&b, Duration::from_secs(5)).await;
        Cable { proc, dir, a, b }
    }

    /// The cable process (to freeze it, for example).
    pub fn pid(&self) -> u32 {
        self.proc.child.id().expect("cable running")
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// File descriptors a process holds open now, from /proc.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Asks the test bed's target for `len` pattern bytes (its `G` mode) and
/// checks them.
#[cfg(unix)]
pub async fn download(
    entry: std::net::SocketAddr,
    len: u64,
    seed: u64,
) -> std::io::Result<sfs::testbed::Transfer> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(entry).await?;
    s.set_nodelay(true)?;
    let mut req = vec![b'G'];
    req.extend_from_slice(&len.to_be_bytes());
    req.extend_from_slice(&seed.to_be_bytes());
    s.write_all(&req).await?;
    let mut g = sfs::testbed::PatternGen::new(seed);
    let mut expect = vec![0u8; 16384];
    let mut buf = vec![0u8; 16384];
    let mut got = 0u64;
    let mut intact = true;
    loop {
        let k = s.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        g.fill(&mut expect[..k]);
        intact &= buf[..k] == expect[..k];
        got += k as u64;
    }
    Ok(sfs::testbed::Transfer {
        bytes: got,
        elapsed: t0.elapsed(),
        intact: intact && got == len,
    })
}
