//! A test bed of real sfs processes over a virtual serial cable: what
//! `sfs --demo` runs, and the base the integration tests and the end-to-end
//! benchmark build on. Only what the demo needs is here, since it ships in
//! the binary; the tests' own helpers (a private sshd, realistic text,
//! downloads, /proc readings) live in `tests/util/` and never reach it
//! (`tests/cli.rs` checks the binary for them).
//!
//! Layout (all on this machine, nothing left behind on drop):
//! ```text
//! client(s) ──TCP──▶ sfs A: TCP-LISTEN:pa,fork SERIAL-MUX:tty_a ──┐
//!                                                          virtual cable
//! target ◀──TCP── sfs B: SERIAL-MUX:tty_b TCP:127.0.0.1:pt ◀──────┘
//! ```
//! The target is an in-process server speaking a tiny protocol chosen by the
//! client's first byte: `E` echo, `S` sink (reads to EOF, answers with the byte
//! count and a CRC-64 of what it read), `G` generate (8-byte length, 8-byte seed →
//! that many pseudo-random bytes, then EOF).
#![allow(clippy::disallowed_methods)] // a driver: it reads the clock and hands time to the sans-IO core

use crate::line::rng::splitmix64;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// CRC-64 (ECMA-182, as in xz) used to check streams end to end.
pub const STREAM_CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// The cable's settings, as PTY address options (`b115200,ber=1e-5`), per end.
#[derive(Debug, Clone)]
pub struct CableSpec {
    /// Options for end A (bytes A→B).
    pub a: String,
    /// Options for end B (bytes B→A).
    pub b: String,
    /// Baud rate both sfs ends configure.
    pub baud: u32,
}

impl CableSpec {
    /// A clean cable at `baud`, 8N1.
    pub fn clean(baud: u32) -> Self {
        CableSpec {
            a: format!("b{baud}"),
            b: format!("b{baud}"),
            baud,
        }
    }

    /// Adds the same extra options (impairments) to both ends, with different seeds.
    pub fn both(mut self, opts: &str) -> Self {
        self.a = format!("{},{opts},seed=11", self.a);
        self.b = format!("{},{opts},seed=22", self.b);
        self
    }

    /// The line's byte rate (8N1).
    pub fn byte_rate(&self) -> f64 {
        f64::from(self.baud) / 10.0
    }
}

/// Running processes and the target server.
pub struct Testbed {
    dir: PathBuf,
    /// The cable, side A's sfs and side B's sfs.
    procs: Vec<Child>,
    /// Where clients connect (side A's TCP-LISTEN).
    pub entry: SocketAddr,
    /// The in-process target behind side B.
    pub target: SocketAddr,
    /// The cable's settings.
    pub cable: CableSpec,
    target_task: tokio::task::JoinHandle<()>,
    /// Bytes the built-in target's sinks (`S`) have received so far.
    sunk: Arc<AtomicU64>,
    bin: PathBuf,
}

/// Options for [`Testbed::start`].
#[derive(Debug, Clone)]
pub struct TestbedOptions {
    /// The sfs binary to run.
    pub bin: PathBuf,
    /// Cable settings.
    pub cable: CableSpec,
    /// Extra SERIAL-MUX options for both ends (e.g. `window=8k`).
    pub mux_opts: String,
    /// Log level flag for the sfs processes (`-q`, `-v`, ...), or empty.
    pub log: String,
    /// Side B's target; `None` starts the built-in test target.
    pub target: Option<SocketAddr>,
    /// The sfs binary that runs the virtual cable, if not `bin` (so that two
    /// builds compared in a benchmark meet the same cable).
    pub cable_bin: Option<PathBuf>,
}

impl TestbedOptions {
    /// A clean or impaired cable with the built-in target and default options.
    pub fn new(bin: PathBuf, cable: CableSpec) -> Self {
        TestbedOptions {
            bin,
            cable,
            mux_opts: String::new(),
            log: String::new(),
            target: None,
            cable_bin: None,
        }
    }
}

/// The ports of the listeners an sfs log (`-v`) reports as bound, in the
/// order it bound them (command-line order): its "… listening on ADDR:PORT"
/// lines.
pub fn listening_ports(log: &str) -> Vec<u16> {
    log.lines()
        .filter_map(|l| l.split_once(": listening on ").map(|(_, at)| at))
        .filter_map(|at| at.split_whitespace().next())
        .filter_map(|at| at.rsplit_once(':'))
        .filter_map(|(_, port)| port.parse().ok())
        .collect()
}

/// Waits until the log file at `path` reports a bound listener; its port.
async fn listened_port(path: &Path, limit: Duration) -> io::Result<u16> {
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(&port) = listening_ports(&log).first() {
            return Ok(port);
        }
        if t0.elapsed() > limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("sfs never said where it listens:\n{log}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn(bin: &Path, args: &[String], log: &str, dir: &Path, name: &str) -> io::Result<Child> {
    let logfile = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut cmd = Command::new(bin);
    if !log.is_empty() {
        cmd.arg(log);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(logfile))
        .kill_on_drop(true);
    cmd.spawn()
}

/// Starts the virtual cable and waits for both of its links.
async fn spawn_cable(bin: &Path, dir: &Path, c: &CableSpec, name: &str) -> io::Result<Child> {
    let (ta, tb) = (dir.join("ttyA"), dir.join("ttyB"));
    let child = spawn(
        bin,
        &[
            format!("PTY,link={},{}", ta.display(), c.a),
            format!("PTY,link={},{}", tb.display(), c.b),
        ],
        "",
        dir,
        name,
    )?;
    wait_for(&ta, Duration::from_secs(10)).await?;
    wait_for(&tb, Duration::from_secs(10)).await?;
    Ok(child)
}

async fn wait_for(path: &Path, limit: Duration) -> io::Result<()> {
    let t0 = Instant::now();
    while !path.exists() {
        if t0.elapsed() > limit {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} did not appear", path.display()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

impl Testbed {
    /// Starts the target, the cable and both sfs ends, and waits until a
    /// connection works end to end.
    pub async fn start(opts: TestbedOptions) -> io::Result<Testbed> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sfs-testbed-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let sunk = Arc::new(AtomicU64::new(0));
        let (target, target_task) = match opts.target {
            Some(t) => (t, tokio::spawn(async {})),
            None => {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let listener_addr = listener.local_addr()?;
                let served = serve_target(listener, sunk.clone());
                (listener_addr, tokio::spawn(served))
            }
        };
        let (ta, tb) = (dir.join("ttyA"), dir.join("ttyB"));
        let c = &opts.cable;
        let mut procs = Vec::new();
        let cable_bin = opts.cable_bin.as_ref().unwrap_or(&opts.bin);
        procs.push(spawn_cable(cable_bin, &dir, c, "cable").await?);
        let mux = |t: &Path| {
            let mut s = format!("SERIAL-MUX:{},b{}", t.display(), c.baud);
            if !opts.mux_opts.is_empty() {
                s = format!("{s},{}", opts.mux_opts);
            }
            s
        };
        // Side A binds any free port and says which (at -v): no port picked
        // here can be taken by someone else before sfs binds it.
        let log_a = if opts.log.contains('v') {
            opts.log.as_str()
        } else {
            "-v"
        };
        procs.push(spawn(
            &opts.bin,
            &["TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(), mux(&ta)],
            log_a,
            &dir,
            "sideA",
        )?);
        let port = listened_port(&dir.join("sideA.log"), Duration::from_secs(10)).await?;
        procs.push(spawn(
            &opts.bin,
            &[mux(&tb), format!("TCP:127.0.0.1:{}", target.port())],
            &opts.log,
            &dir,
            "sideB",
        )?);
        let entry: SocketAddr = ([127, 0, 0, 1], port).into();
        let bed = Testbed {
            dir,
            procs,
            entry,
            target,
            cable: opts.cable.clone(),
            target_task,
            sunk,
            bin: opts.bin.clone(),
        };
        if opts.target.is_none() {
            bed.wait_ready(Duration::from_secs(20)).await?;
        } else {
            // A foreign target cannot echo; wait until side A listens (the first
            // real connection then waits for the link handshake by itself).
            let t0 = Instant::now();
            while TcpStream::connect(bed.entry).await.is_err() {
                if t0.elapsed() > Duration::from_secs(10) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "side A never listened",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(bed)
    }

    /// Waits until an echo through the whole chain works.
    pub async fn wait_ready(&self, limit: Duration) -> io::Result<()> {
        let t0 = Instant::now();
        loop {
            let attempt = async {
                let mut e = Echo::connect(self.entry).await?;
                e.round_trip().await
            };
            match tokio::time::timeout(Duration::from_secs(6), attempt).await {
                Ok(Ok(_)) => return Ok(()),
                _ if t0.elapsed() > limit => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("testbed not ready; logs:\n{}", self.logs()),
                    ))
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The directory holding the cable's links and the processes' logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the cable end `which` ('A' or 'B').
    pub fn tty(&self, which: char) -> PathBuf {
        self.dir.join(format!("tty{which}"))
    }

    /// The sfs binary in use.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// All process logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["cable", "cable2", "sideA", "sideB", "sideB2"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(format!("{name}.log"))) {
                s.push_str(&format!("--- {name}\n{}", tail(&t, 40)));
            }
        }
        s
    }

    /// CPU seconds (user+system) used so far by process `i` (0 cable, 1 A, 2 B).
    pub fn cpu_seconds(&self, i: usize) -> Option<f64> {
        let pid = self.procs.get(i)?.id()?;
        cpu_seconds(pid)
    }

    /// Bytes the built-in target's sinks have received so far: a caller
    /// measures a transfer's goodput over part of it by the difference (the
    /// client's own writes say little: kernel buffers take megabytes at once).
    pub fn sink_bytes(&self) -> u64 {
        self.sunk.load(Ordering::Relaxed)
    }

    /// The process id of process `i` (0 cable, 1 A, 2 B), while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs.get(i)?.id()
    }

    /// Asks both sfs ends for their link statistics (SIGUSR1) and returns the
    /// latest line of each: `[side A, side B]`.
    pub async fn link_stats(&self) -> Vec<String> {
        for i in [1, 2] {
            if let Some(pid) = self.procs.get(i).and_then(|p| p.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGUSR1,
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        ["sideA", "sideB"]
            .iter()
            .filter_map(|name| {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log"))).ok()?;
                log.lines()
                    .rev()
                    .find(|l| l.starts_with("sfs: SERIAL-MUX"))
                    .map(|l| l.trim_start_matches("sfs: ").to_string())
            })
            .collect()
    }

    /// Sends SIGTERM to process `i` (0 cable, 1 side A, 2 side B).
    pub fn terminate(&self, i: usize) {
        if let Some(pid) = self.procs.get(i).and_then(|p| p.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    /// Unplugs the cable (kills it, so both sfs ends lose their device), waits
    /// `down`, and plugs a new one in at the same paths.
    pub async fn replug_cable(&mut self, down: Duration) -> io::Result<()> {
        let mut old = self.procs.remove(0);
        old.kill().await?;
        let _ = std::fs::remove_file(self.tty('A'));
        let _ = std::fs::remove_file(self.tty('B'));
        tokio::time::sleep(down).await;
        let p = spawn_cable(&self.bin, &self.dir, &self.cable, "cable2").await?;
        self.procs.insert(0, p);
        Ok(())
    }

    /// Kills side B's sfs (SIGKILL) and starts a new one on the same cable end.
    pub async fn restart_b(&mut self) -> io::Result<()> {
        let mut old = self.procs.remove(2);
        old.kill().await?;
        let args = [
            format!(
                "SERIAL-MUX:{},b{}",
                self.tty('B').display(),
                self.cable.baud
            ),
            format!("TCP:127.0.0.1:{}", self.target.port()),
        ];
        let p = spawn(&self.bin, &args, "-v", &self.dir, "sideB2")?;
        self.procs.insert(2, p);
        Ok(())
    }

    /// Sends SIGTERM to every process and waits for them; returns the cable's
    /// report (its stderr).
    pub async fn stop(mut self) -> String {
        for p in &self.procs {
            if let Some(pid) = p.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for p in &mut self.procs {
            let _ = tokio::time::timeout(Duration::from_secs(3), p.wait()).await;
        }
        std::fs::read_to_string(self.dir.join("cable.log")).unwrap_or_default()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.start_kill();
        }
        self.target_task.abort();
        if std::env::var_os("SFS_KEEP_TESTBED").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    let start = v.len().saturating_sub(lines);
    v[start..].join("\n") + "\n"
}

/// CPU seconds (user + system) of a process, from /proc.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn serve_target(listener: TcpListener, sunk: Arc<AtomicU64>) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            continue;
        };
        let sunk = sunk.clone();
        tokio::spawn(async move {
            let _ = target_conn(s, &sunk).await;
        });
    }
}

async fn target_conn(mut s: TcpStream, sunk: &AtomicU64) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut kind = [0u8];
    s.read_exact(&mut kind).await?;
    match kind[0] {
        b'E' => {
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await?;
            w.shutdown().await
        }
        b'S' => {
            let mut digest = STREAM_CRC.digest();
            let mut n = 0u64;
            let mut buf = vec![0u8; 16384];
            loop {
                let k = s.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                digest.update(&buf[..k]);
                n += k as u64;
                sunk.fetch_add(k as u64, Ordering::Relaxed);
            }
            let mut out = n.to_be_bytes().to_vec();
            out.extend_from_slice(&digest.finalize().to_be_bytes());
            s.write_all(&out).await?;
            s.shutdown().await
        }
        b'G' => {
            let len = s.read_u64().await?;
            let seed = s.read_u64().await?;
            let mut g = PatternGen::new(seed);
            let mut left = len;
            let mut buf = vec![0u8; 8192];
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                g.fill(&mut buf[..k]);
                s.write_all(&buf[..k]).await?;
                left -= k as u64;
            }
            s.shutdown().await
        }
        _ => Ok(()),
    }
}

/// Deterministic pseudo-random bytes (SplitMix64) for streams that must be
/// checked; the stream does not depend on how it is cut into buffers.
pub struct PatternGen {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl PatternGen {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        PatternGen {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    /// Fills `buf` with the next bytes of the pattern.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            if self.used == 8 {
                self.word = splitmix64(&mut self.state).to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

/// An echo connection through the test bed.
pub struct Echo(TcpStream);

impl Echo {
    /// Connects and selects echo mode.
    pub async fn connect(entry: SocketAddr) -> io::Result<Echo> {
        let mut s = TcpStream::connect(entry).await?;
        s.set_nodelay(true)?;
        s.write_all(b"E").await?;
        Ok(Echo(s))
    }

    /// Sends one byte and waits for it to come back; returns the round-trip time.
    pub async fn round_trip(&mut self) -> io::Result<Duration> {
        let t0 = Instant::now();
        self.0.write_all(b"x").await?;
        let mut b = [0u8];
        self.0.read_exact(&mut b).await?;
        if b[0] != b'x' {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "echo returned a different byte",
            ));
        }
        Ok(t0.elapsed())
    }
}

/// Result of one checked upload.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    /// Payload bytes sent.
    pub bytes: u64,
    /// Wall time from connect to the target's verdict.
    pub elapsed: Duration,
    /// Whether the target saw exactly the bytes sent.
    pub intact: bool,
}

/// Sends `len` pattern bytes through the bed to the sink and checks the verdict.
pub async fn upload(entry: SocketAddr, len: u64, seed: u64) -> io::Result<Transfer> {
    let mut g = PatternGen::new(seed);
    upload_from(entry, len, move |b| g.fill(b)).await
}

/// Sends `len` bytes made by `fill` through the bed to the sink and checks
/// the verdict.
pub async fn upload_from(
    entry: SocketAddr,
    len: u64,
    mut fill: impl FnMut(&mut [u8]),
) -> io::Result<Transfer> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(entry).await?;
    s.set_nodelay(true)?;
    s.write_all(b"S").await?;
    let mut digest = STREAM_CRC.digest();
    let mut buf = vec![0u8; 8192];
    let mut left = len;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        fill(&mut buf[..k]);
        digest.update(&buf[..k]);
        s.write_all(&buf[..k]).await?;
        left -= k as u64;
    }
    s.shutdown().await?;
    let n = s.read_u64().await?;
    let crc = s.read_u64().await?;
    Ok(Transfer {
        bytes: len,
        elapsed: t0.elapsed(),
        intact: n == len && crc == digest.finalize(),
    })
}
