//! End-to-end benchmark: real sfs processes on both ends of the virtual serial
//! cable, measured per case. Prints a table; `--json FILE` also writes JSON.
//!
//! Run: `cargo bench --bench e2e` (all cases, a few minutes), or
//! `cargo bench --bench e2e -- --case clean-115200` for one case, `--quick` for
//! shorter transfers.
//!
//! Goodput = intact payload bytes per second ÷ line byte rate (baud/10, 8N1).
//!
//! `SFS_BENCH_BIN=/path/to/sfs` runs another build under the same cases.
//! `SFS_BENCH_BEFORE=/path/to/old/sfs` runs every case twice in a row, first
//! with that build (rows marked "(before)"), then with this one: before/after
//! figures from one run, under the same machine load.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock

// The integration tests' helpers (the private sshd, realistic text,
// downloads, /proc readings): dev-only, so never in the sfs binary.
#[path = "../tests/util/mod.rs"]
mod util;

use sfs::testbed::{upload, CableSpec, Echo, PatternGen, Testbed, TestbedOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use util::sshd::PrivateSshd;
use util::text::upload_text;
use util::{download, fd_count, rss_kib};

#[derive(Default, Clone)]
struct Row {
    case: String,
    baud: u32,
    goodput: Option<f64>,
    intact: String,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    cpu_a_per_mb: Option<f64>,
    cpu_b_per_mb: Option<f64>,
    cpu_a_frac: Option<f64>,
    cpu_b_frac: Option<f64>,
    note: String,
}

/// The current pass runs the `SFS_BENCH_BEFORE` build.
static BEFORE_PASS: AtomicBool = AtomicBool::new(false);

/// The sfs binary under test: this build (or `SFS_BENCH_BIN`), or in a
/// "before" pass the `SFS_BENCH_BEFORE` build.
fn bin() -> PathBuf {
    let var = if BEFORE_PASS.load(Ordering::Relaxed) {
        "SFS_BENCH_BEFORE"
    } else {
        "SFS_BENCH_BIN"
    };
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sfs")))
}

/// This build: it runs the virtual cable in every pass, so that builds
/// compared before/after meet the same cable.
fn this_build() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sfs"))
}

/// The passes each case runs: `[true, false]` (before, then after) when
/// `SFS_BENCH_BEFORE` names an older build, else `[false]`.
fn passes() -> Vec<bool> {
    if std::env::var_os("SFS_BENCH_BEFORE").is_some() {
        vec![true, false]
    } else {
        vec![false]
    }
}

async fn start(cable: CableSpec) -> Testbed {
    start_with(cable, "").await
}

async fn start_with(cable: CableSpec, mux_opts: &str) -> Testbed {
    let mut o = TestbedOptions::new(bin(), cable);
    o.mux_opts = mux_opts.into();
    o.cable_bin = Some(this_build());
    Testbed::start(o).await.expect("testbed starts")
}

/// What a bulk case sends.
#[derive(Clone, Copy, PartialEq)]
enum Data {
    /// Pseudo-random bytes (incompressible, like ssh or TLS).
    Random,
    /// Realistic text: logs, HTML, JSON, CSV (`TextGen`).
    Text,
}

/// A fresh key file for the `keyed-*` cases (secret-file=).
fn key_file() -> PathBuf {
    let p = std::env::temp_dir().join(format!("sfs-bench-key-{}", std::process::id()));
    if !p.exists() {
        let ok = std::process::Command::new(bin())
            .arg("--gen-secret")
            .arg(&p)
            .status()
            .expect("run sfs --gen-secret")
            .success();
        assert!(ok, "sfs --gen-secret failed");
    }
    p
}

/// Uploads `conns` streams of about `secs` seconds of line time in total.
async fn bulk(case: &str, cable: CableSpec, conns: u64, secs: f64) -> Row {
    bulk_with(case, cable, conns, secs, Data::Random, "").await
}

/// [`bulk`] with a choice of data and extra SERIAL-MUX options; text cases
/// send 4× as many bytes (they should move at several times the line rate).
async fn bulk_with(
    case: &str,
    cable: CableSpec,
    conns: u64,
    secs: f64,
    data: Data,
    mux_opts: &str,
) -> Row {
    let bed = start_with(cable.clone(), mux_opts).await;
    let scale = if data == Data::Text { 4.0 } else { 1.0 };
    let total = (cable.byte_rate() * secs * scale) as u64;
    let per = total / conns;
    let (ca, cb) = (
        bed.cpu_seconds(1).unwrap_or(0.0),
        bed.cpu_seconds(2).unwrap_or(0.0),
    );
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..conns {
        tasks.push(match data {
            Data::Random => tokio::spawn(upload(bed.entry, per, 100 + i)),
            Data::Text => tokio::spawn(upload_text(bed.entry, per, 100 + i)),
        });
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(tr)) = t.await {
            ok += u64::from(tr.intact);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (ca2, cb2) = (
        bed.cpu_seconds(1).unwrap_or(0.0),
        bed.cpu_seconds(2).unwrap_or(0.0),
    );
    let mb = (per * conns) as f64 / 1e6;
    let row = Row {
        case: case.into(),
        baud: cable.baud,
        goodput: Some((per * conns) as f64 / wall / cable.byte_rate()),
        intact: format!("{ok}/{conns}"),
        cpu_a_per_mb: Some((ca2 - ca) / mb),
        cpu_b_per_mb: Some((cb2 - cb) / mb),
        cpu_a_frac: Some((ca2 - ca) / wall),
        cpu_b_frac: Some((cb2 - cb) / wall),
        note: match (data, mux_opts) {
            (Data::Text, "") => "text (logs/HTML/JSON/CSV), compression on".into(),
            (Data::Text, o) => format!("text (logs/HTML/JSON/CSV), {o}"),
            (Data::Random, "") => String::new(),
            (Data::Random, o) => o.into(),
        },
        ..Row::default()
    };
    bed.stop().await;
    row
}

/// Upload with a line outage of `outage` seconds starting `at` seconds in.
async fn outage(case: &str, baud: u32, at: f64, dur: f64, secs: f64) -> Row {
    let cable = CableSpec::clean(baud).both(&format!("outage={at}:{dur}"));
    let mut row = bulk(case, cable, 1, secs).await;
    row.note = format!("line dead {dur} s (goodput counts the outage)");
    row
}

async fn echo_latency(case: &str, cable: CableSpec, with_bulk: bool, samples: usize) -> Row {
    echo_latency_with(case, cable, with_bulk, samples, "").await
}

/// Line bytes both sfs ends have sent so far (their SIGUSR1 statistics lines).
async fn line_bytes(bed: &Testbed) -> u64 {
    bed.link_stats()
        .await
        .iter()
        .filter_map(|l| {
            let i = l.find(" line bytes")?;
            l[..i].rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// [`echo_latency`] with extra SERIAL-MUX options; on an idle line it also
/// measures how busy the line is with nothing to carry (keepalives, turns).
async fn echo_latency_with(
    case: &str,
    cable: CableSpec,
    with_bulk: bool,
    samples: usize,
    mux_opts: &str,
) -> Row {
    let bed = start_with(cable.clone(), mux_opts).await;
    let bulk = with_bulk.then(|| {
        let e = bed.entry;
        let len = (cable.byte_rate() * 60.0) as u64;
        tokio::spawn(async move { upload(e, len, 7).await })
    });
    if with_bulk {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let mut echo = Echo::connect(bed.entry).await.expect("echo");
    let _ = echo.round_trip().await;
    // The bulk's goodput over exactly the sampling window, as the sink behind
    // side B receives it.
    let (b0, t0) = (bed.sink_bytes(), Instant::now());
    let mut v = Vec::new();
    // Keystrokes at a fast typist's pace (10 a second on average), at random
    // moments: a fixed period would fall at the same phase of the bulk frames
    // every time and measure one point of the distribution.
    let mut gaps = PatternGen::new(0x7e57);
    for _ in 0..samples {
        if let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(5), echo.round_trip()).await {
            v.push(d.as_secs_f64() * 1000.0);
        }
        let mut r = [0u8; 1];
        gaps.fill(&mut r);
        let gap = 40 + u64::from(r[0]) * 120 / 256;
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }
    let bulk_goodput = with_bulk
        .then(|| (bed.sink_bytes() - b0) as f64 / t0.elapsed().as_secs_f64() / cable.byte_rate());
    if let Some(b) = bulk {
        b.abort();
    }
    // With nothing to carry, how much of the line do the two ends use?
    let idle_busy = if with_bulk {
        None
    } else {
        let window = Duration::from_secs(10);
        let b0 = line_bytes(&bed).await;
        let t0 = Instant::now();
        tokio::time::sleep(window).await;
        let b1 = line_bytes(&bed).await;
        Some(b1.saturating_sub(b0) as f64 / t0.elapsed().as_secs_f64() / cable.byte_rate())
    };
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| {
        v.get(((v.len() as f64 - 1.0) * p).round() as usize)
            .copied()
    };
    let row = Row {
        case: case.into(),
        baud: cable.baud,
        intact: format!("{}/{samples} echoes", v.len()),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        goodput: bulk_goodput,
        note: match (with_bulk, idle_busy) {
            (true, _) => {
                "bulk upload on another connection; goodput = the bulk's, during the echoes".into()
            }
            (false, Some(b)) => format!("idle line, {:.2} % busy when idle", b * 100.0),
            (false, None) => "idle line".into(),
        } + &if mux_opts.is_empty() {
            String::new()
        } else {
            format!(", {mux_opts}")
        },
        ..Row::default()
    };
    bed.stop().await;
    row
}

/// One short connection as a health check makes it: connect, 64 bytes to the
/// echo service and back, close. True when the bytes came back intact.
async fn echo64(entry: std::net::SocketAddr, n: u64) -> bool {
    use tokio::io::AsyncReadExt;
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(entry).await?;
        s.set_nodelay(true)?;
        let mut msg = [0u8; 65];
        msg[0] = b'E';
        PatternGen::new(n).fill(&mut msg[1..]);
        s.write_all(&msg).await?;
        let mut back = [0u8; 64];
        s.read_exact(&mut back).await?;
        Ok::<bool, std::io::Error>(back[..] == msg[1..])
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), attempt).await,
        Ok(Ok(true))
    )
}

/// Memory (KiB) and open descriptors of both sfs ends: `(rss A, rss B, fds A,
/// fds B)`.
type Footprint = (u64, u64, usize, usize);

/// The [`Footprint`] once closes settled.
async fn footprint(bed: &Testbed) -> Footprint {
    // Channels close a round trip after their sockets; give them a moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (
        bed.pid(1).and_then(rss_kib).unwrap_or(0),
        bed.pid(2).and_then(rss_kib).unwrap_or(0),
        bed.pid(1).and_then(fd_count).unwrap_or(0),
        bed.pid(2).and_then(fd_count).unwrap_or(0),
    )
}

/// Connection churn (issue 19): 3 rounds of 200 concurrent short connections,
/// then `sequential` short connections one after another, as a health-check
/// loop or a scraper makes them. Every one must succeed; memory must not grow
/// after the first round, nor descriptors leak.
async fn churn(case: &str, baud: u32, sequential: u64) -> Row {
    let cable = CableSpec::clean(baud);
    let bed = start(cable.clone()).await;
    let mut ok = 0u64;
    let mut tried = 0u64;
    let mut prints = Vec::new();
    for round in 0..3u64 {
        let tasks: Vec<_> = (0..200)
            .map(|i| tokio::spawn(echo64(bed.entry, round * 1000 + i)))
            .collect();
        for t in tasks {
            tried += 1;
            ok += u64::from(t.await.unwrap_or(false));
        }
        prints.push(footprint(&bed).await);
    }
    let mut secs = 0.0;
    for half in 0..2 {
        let t0 = Instant::now();
        for i in 0..sequential / 2 {
            tried += 1;
            ok += u64::from(echo64(bed.entry, 10_000 + half * sequential + i).await);
        }
        secs += t0.elapsed().as_secs_f64();
        prints.push(footprint(&bed).await);
    }
    let series =
        |f: &dyn Fn(&Footprint) -> String| prints.iter().map(f).collect::<Vec<_>>().join("/");
    let row = Row {
        case: case.into(),
        baud,
        intact: format!("{ok}/{tried} connections"),
        note: format!(
            "{:.0} sequential/s ({:.2} ms each); after rounds 1/2/3 and halves 1/2 of the sequential ones: RSS KiB A {} B {}; fds A {} B {}",
            sequential as f64 / secs,
            secs * 1000.0 / sequential as f64,
            series(&|p| p.0.to_string()),
            series(&|p| p.1.to_string()),
            series(&|p| p.2.to_string()),
            series(&|p| p.3.to_string()),
        ),
        ..Row::default()
    };
    bed.stop().await;
    row
}

/// One client stops reading its download; another downloads meanwhile.
async fn stalled(case: &str, baud: u32, secs: f64) -> Row {
    let cable = CableSpec::clean(baud);
    let bed = start(cable.clone()).await;
    // The staller asks for far more than it will ever read.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stall = sock.connect(bed.entry).await.unwrap();
    let mut req = vec![b'G'];
    req.extend_from_slice(&(1u64 << 32).to_be_bytes());
    req.extend_from_slice(&1u64.to_be_bytes());
    stall.write_all(&req).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // let it fill its window
    let len = (cable.byte_rate() * secs) as u64;
    let tr = download(bed.entry, len, 3).await.expect("download");
    let row = Row {
        case: case.into(),
        baud,
        goodput: Some(tr.bytes as f64 / tr.elapsed.as_secs_f64() / cable.byte_rate()),
        intact: if tr.intact {
            "1/1".into()
        } else {
            "0/1".into()
        },
        note: "goodput of the other download while one reader is stalled".into(),
        ..Row::default()
    };
    drop(stall);
    bed.stop().await;
    row
}

/// Runs a command to completion off the async threads; its wall time and
/// whether it succeeded.
async fn timed(mut cmd: std::process::Command) -> (f64, bool) {
    tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        let ok = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (t0.elapsed().as_secs_f64(), ok)
    })
    .await
    .unwrap()
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied()
}

/// OpenSSH through sfs to a private sshd: `ssh host true` alone, then while
/// three `scp` uploads run; scp's aggregate goodput without and with the
/// logins. Four rows (login times in the p50/p99 columns, in ms).
async fn ssh_login_during_scp(baud: u32, logins: usize, scp_bytes: usize) -> Vec<Row> {
    let Some(sshd_bin) = PrivateSshd::binary() else {
        println!("ssh-login-scp-{baud}: skipped: no sshd (apt-get install openssh-server)");
        return Vec::new();
    };
    let sshd = PrivateSshd::start(&sshd_bin).expect("sshd starts");
    let cable = CableSpec::clean(baud);
    let mut o = TestbedOptions::new(bin(), cable.clone());
    o.target = Some(([127, 0, 0, 1], sshd.port).into());
    o.cable_bin = Some(this_build());
    let bed = Testbed::start(o).await.expect("testbed starts");
    let port = bed.entry.port().to_string();
    let dest = format!("{}@127.0.0.1", PrivateSshd::user());
    let opts = sshd.client_opts();
    let login = || {
        let mut c = std::process::Command::new("ssh");
        c.args(&opts).args(["-p", &port, &dest, "true"]);
        c
    };
    let dir = bed.dir().join("scp");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("up.bin");
    let mut data = vec![0u8; scp_bytes];
    PatternGen::new(5).fill(&mut data);
    std::fs::write(&src, &data).unwrap();
    let scp = |i: usize| {
        let mut c = std::process::Command::new("scp");
        c.args(&opts).args(["-P", &port]).arg(&src).arg(format!(
            "{dest}:{}",
            dir.join(format!("remote{i}.bin")).display()
        ));
        c
    };
    // A first login warms up (sshd forks, key loading).
    let _ = timed(login()).await;
    let mut alone = Vec::new();
    for _ in 0..logins {
        let (t, ok) = timed(login()).await;
        if ok {
            alone.push(t * 1000.0);
        }
    }
    // Three uploads alone, then three uploads with logins during them.
    let mut rows = Vec::new();
    let mut during = Vec::new();
    let mut goodput = [None, None];
    for (round, with_logins) in [false, true].into_iter().enumerate() {
        let t0 = Instant::now();
        let ups: Vec<_> = (0..3).map(|i| tokio::spawn(timed(scp(i)))).collect();
        if with_logins {
            // Let the uploads get going (their own logins are done).
            tokio::time::sleep(Duration::from_secs(4)).await;
            for _ in 0..logins {
                if ups.iter().all(|u| u.is_finished()) {
                    break;
                }
                let (t, ok) = timed(login()).await;
                if ok {
                    during.push(t * 1000.0);
                }
            }
        }
        let mut ok = 0;
        for u in ups {
            ok += u32::from(u.await.unwrap().1);
        }
        let wall = t0.elapsed().as_secs_f64();
        goodput[round] = Some((3 * scp_bytes) as f64 / wall / cable.byte_rate());
        if ok != 3 {
            println!("ssh-login-scp-{baud}: only {ok}/3 scp uploads succeeded");
        }
    }
    let n_alone = alone.len();
    let n_during = during.len();
    let max = |v: &[f64]| {
        v.iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    rows.push(Row {
        case: format!("ssh-login-{baud}"),
        baud,
        intact: format!("{n_alone}/{logins} logins"),
        p50_ms: median(&mut alone),
        p99_ms: max(&alone),
        note: "ssh host true, idle line (p50 = median, p99 col = max)".into(),
        ..Row::default()
    });
    rows.push(Row {
        case: format!("ssh-login-scp-{baud}"),
        baud,
        intact: format!("{n_during}/{logins} logins"),
        p50_ms: median(&mut during),
        p99_ms: max(&during),
        note: "ssh host true during 3 scp uploads (p50 = median, p99 col = max)".into(),
        ..Row::default()
    });
    rows.push(Row {
        case: format!("scp3-{baud}"),
        baud,
        goodput: goodput[0],
        intact: "3 uploads".into(),
        note: format!(
            "3 concurrent scp of {} KB, aggregate (incl. their logins)",
            scp_bytes / 1000
        ),
        ..Row::default()
    });
    rows.push(Row {
        case: format!("scp3-login-{baud}"),
        baud,
        goodput: goodput[1],
        intact: "3 uploads".into(),
        note: "the same while ssh logins run".into(),
        ..Row::default()
    });
    bed.stop().await;
    drop(sshd);
    rows
}

fn fmt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<31} {:>8} {:>8} {:>10} {:>8} {:>8} {:>10} {:>10} {:>7} {:>7}  note",
        "case",
        "baud",
        "goodput",
        "intact",
        "p50 ms",
        "p99 ms",
        "cpuA s/MB",
        "cpuB s/MB",
        "cpuA %",
        "cpuB %"
    );
    for r in rows {
        println!(
            "{:<31} {:>8} {:>8} {:>10} {:>8} {:>8} {:>10} {:>10} {:>7} {:>7}  {}",
            r.case,
            r.baud,
            fmt(r.goodput, 3),
            r.intact,
            fmt(r.p50_ms, 1),
            fmt(r.p99_ms, 1),
            fmt(r.cpu_a_per_mb, 2),
            fmt(r.cpu_b_per_mb, 2),
            fmt(r.cpu_a_frac.map(|x| x * 100.0), 1),
            fmt(r.cpu_b_frac.map(|x| x * 100.0), 1),
            r.note
        );
    }
}

fn json(rows: &[Row]) -> String {
    let num = |v: Option<f64>| {
        v.map(|x| format!("{x:.4}"))
            .unwrap_or_else(|| "null".into())
    };
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"case\":\"{}\",\"baud\":{},\"goodput\":{},\"intact\":\"{}\",\"p50_ms\":{},\"p99_ms\":{},\"cpu_a_s_per_mb\":{},\"cpu_b_s_per_mb\":{},\"cpu_a_frac\":{},\"cpu_b_frac\":{},\"note\":\"{}\"}}",
                r.case, r.baud, num(r.goodput), r.intact, num(r.p50_ms), num(r.p99_ms),
                num(r.cpu_a_per_mb), num(r.cpu_b_per_mb), num(r.cpu_a_frac), num(r.cpu_b_frac), r.note
            )
        })
        .collect();
    format!("[\n  {}\n]\n", items.join(",\n  "))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json_path = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let only: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && args[i - 1] == "--case")
        .map(|(_, a)| a.clone())
        .collect();
    let want = |name: &str| only.is_empty() || only.iter().any(|o| name.starts_with(o.as_str()));
    let secs = if quick { 4.0 } else { 10.0 };
    let mut rows = Vec::new();
    macro_rules! case {
        ($name:expr, $e:expr) => {
            if want($name) {
                for before in passes() {
                    BEFORE_PASS.store(before, Ordering::Relaxed);
                    let mut r = $e;
                    if before {
                        r.case.push_str(" (before)");
                    }
                    print_table(std::slice::from_ref(&r));
                    rows.push(r);
                }
            }
        };
    }
    case!(
        "clean-115200",
        bulk("clean-115200", CableSpec::clean(115_200), 1, secs).await
    );
    case!(
        "clean-921600",
        bulk("clean-921600", CableSpec::clean(921_600), 1, secs).await
    );
    case!(
        "clean-3000000",
        bulk("clean-3000000", CableSpec::clean(3_000_000), 1, secs).await
    );
    // The cost of secret-file= (authenticated, encrypted link): compare with the
    // clean-* and ber1e-4-* rows.
    for (name, baud, impair) in [
        ("keyed-clean-115200", 115_200, ""),
        ("keyed-clean-3000000", 3_000_000, ""),
        ("keyed-ber1e-4-115200", 115_200, "ber=1e-4"),
    ] {
        if want(name) {
            let mut cable = CableSpec::clean(baud);
            if !impair.is_empty() {
                cable = cable.both(impair);
            }
            let opts = format!("secret-file={}", key_file().display());
            case!(
                name,
                bulk_with(name, cable.clone(), 1, secs, Data::Random, &opts).await
            );
        }
    }
    case!(
        "8conn-115200",
        bulk("8conn-115200", CableSpec::clean(115_200), 8, secs).await
    );
    case!(
        "ber1e-5-115200",
        bulk(
            "ber1e-5-115200",
            CableSpec::clean(115_200).both("ber=1e-5"),
            1,
            secs
        )
        .await
    );
    case!(
        "ber1e-4-115200",
        bulk(
            "ber1e-4-115200",
            CableSpec::clean(115_200).both("ber=1e-4"),
            1,
            secs
        )
        .await
    );
    // Noisy lines beyond what retransmission alone carries (issue 21: FEC).
    for (name, impair) in [
        ("ber3e-4-115200", "ber=3e-4"),
        ("ber1e-3-115200", "ber=1e-3"),
    ] {
        case!(
            name,
            bulk(name, CableSpec::clean(115_200).both(impair), 1, secs).await
        );
    }
    case!(
        "dropins1e-5-115200",
        bulk(
            "dropins1e-5-115200",
            CableSpec::clean(115_200).both("drop=1e-5,insert=1e-5"),
            1,
            secs
        )
        .await
    );
    case!(
        "bursts-115200",
        bulk(
            "bursts-115200",
            CableSpec::clean(115_200).both("burst=0.5:20"),
            1,
            secs
        )
        .await
    );
    case!(
        "outage3s-115200",
        outage("outage3s-115200", 115_200, 3.0, 3.0, secs + 3.0).await
    );
    case!(
        "latency20ms-921600",
        bulk(
            "latency20ms-921600",
            CableSpec::clean(921_600).both("latency=20"),
            1,
            secs
        )
        .await
    );
    for baud in [115_200, 3_000_000] {
        let name = format!("text-{baud}");
        case!(
            &name,
            bulk_with(&name, CableSpec::clean(baud), 1, secs, Data::Text, "").await
        );
        let name = format!("text-nocomp-{baud}");
        case!(
            &name,
            bulk_with(
                &name,
                CableSpec::clean(baud),
                1,
                secs,
                Data::Text,
                "compress=off"
            )
            .await
        );
    }
    // Incompressible data with compression on and off, back to back: what
    // trying to compress costs (target: at most 0.5 % of goodput).
    for (name, opts) in [
        ("random-115200", ""),
        ("random-nocomp-115200", "compress=off"),
        ("random-3000000", ""),
        ("random-nocomp-3000000", "compress=off"),
    ] {
        let baud = if name.ends_with("3000000") {
            3_000_000
        } else {
            115_200
        };
        case!(
            name,
            bulk_with(name, CableSpec::clean(baud), 1, secs, Data::Random, opts).await
        );
    }
    case!(
        "echo-idle-115200",
        echo_latency("echo-idle-115200", CableSpec::clean(115_200), false, 200).await
    );
    case!(
        "echo-bulk-115200",
        echo_latency("echo-bulk-115200", CableSpec::clean(115_200), true, 200).await
    );
    // A noisy line: frames go coded (FEC), and a coded frame cannot be cut
    // for a keystroke the way a COBS one can.
    case!(
        "ber1e-4-echo-bulk-115200",
        echo_latency(
            "ber1e-4-echo-bulk-115200",
            CableSpec::clean(115_200).both("ber=1e-4"),
            true,
            200
        )
        .await
    );
    // Half duplex (issue 21): one shared medium, both ends take turns.
    let half = || CableSpec::clean(115_200).both("duplex=half");
    case!(
        "half-115200",
        bulk_with("half-115200", half(), 1, secs, Data::Random, "duplex=half").await
    );
    case!(
        "half-ber1e-4-115200",
        bulk_with(
            "half-ber1e-4-115200",
            CableSpec::clean(115_200).both("duplex=half,ber=1e-4"),
            1,
            secs,
            Data::Random,
            "duplex=half"
        )
        .await
    );
    case!(
        "half-echo-bulk-115200",
        echo_latency_with("half-echo-bulk-115200", half(), true, 200, "duplex=half").await
    );
    case!(
        "half-echo-idle-115200",
        echo_latency_with("half-echo-idle-115200", half(), false, 200, "duplex=half").await
    );
    if want("ssh-login-scp-115200") {
        for before in passes() {
            BEFORE_PASS.store(before, Ordering::Relaxed);
            let mut r = ssh_login_during_scp(115_200, if quick { 3 } else { 5 }, 120_000).await;
            if before {
                r.iter_mut().for_each(|r| r.case.push_str(" (before)"));
            }
            print_table(&r);
            rows.extend(r);
        }
    }
    case!(
        "churn-921600",
        churn("churn-921600", 921_600, if quick { 2_000 } else { 10_000 }).await
    );
    case!(
        "stalled-921600",
        stalled("stalled-921600", 921_600, secs).await
    );
    let _ = std::fs::remove_file(
        std::env::temp_dir().join(format!("sfs-bench-key-{}", std::process::id())),
    );
    println!();
    println!("== sfs end-to-end benchmark ==");
    print_table(&rows);
    if let Some(p) = json_path {
        std::fs::write(&p, json(&rows)).expect("write json");
        println!("wrote {p}");
    }
}
