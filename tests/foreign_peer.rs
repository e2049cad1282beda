//! A SERIAL-MUX whose far end is not sfs, with the real binary over the virtual
//! cable: a looped-back line (`cat` on the far end), a terminal in cooked mode
//! echoing what it receives, a modem answering in text. Each is named in one
//! log line, costs next to no CPU and no memory growth, and the link comes up
//! by itself once a real sfs takes the far end.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock
#![cfg(unix)]

mod util;

use sfs::testbed::cpu_seconds;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;
use util::*;

/// Opens the far end of the cable without making it our controlling terminal.
fn open_tty(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(p)
        .unwrap()
}

/// Runs sfs on end A while the far end plays something else; once sfs has
/// logged `reported` (it has told what the far end is), measures it for `secs`.
/// Returns sfs, its listening port, its log, and the CPU seconds and RSS
/// growth (KiB) of sfs over the measured stretch.
async fn watch(cable: &Cable, reported: &str, secs: u64) -> (Sfs, u16, String, f64, i64) {
    let a = Sfs::start(&[
        "TCP-LISTEN:0,fork".to_string(),
        format!("SERIAL-MUX:{},b115200", cable.a.display()),
    ]);
    let port = a.listen_port().await;
    let pid = a.child.id().unwrap();
    a.wait_log(reported, Duration::from_secs(15)).await;
    let (cpu0, rss0) = (cpu_seconds(pid).unwrap(), rss_kib(pid).unwrap());
    // Part of the scenario, not synchronisation: the steady state after the
    // report is what is measured, over a stretch of `secs`.
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (cpu1, rss1) = (cpu_seconds(pid).unwrap(), rss_kib(pid).unwrap());
    let log = a.log_text();
    eprintln!(
        "sfs over {secs} s: {:.2} s CPU, RSS {rss0} -> {rss1} KiB",
        cpu1 - cpu0
    );
    (a, port, log, cpu1 - cpu0, rss1 as i64 - rss0 as i64)
}

fn assert_quiet(what: &str, cpu: f64, rss_growth: i64, secs: u64, log: &str) {
    // A busy loop would burn a whole core; probing costs a frame a second.
    // CPU over a fixed window is a fair measure here: the bound (10 % of a
    // core) is ten times below what a busy loop would show, so a loaded
    // machine does not make it fail, and the window is the scenario (a
    // foreign peer left on the line for a while).
    assert!(
        cpu < 0.1 * secs as f64,
        "{what}: {cpu:.2} s CPU in {secs} s\n{log}"
    );
    assert!(
        rss_growth < 2048,
        "{what}: RSS grew by {rss_growth} KiB\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looped_line_is_reported_then_a_real_peer_brings_the_link_up() {
    let cable = Cable::start("looped", 115_200).await;
    // A plain `cat` on the far end (raw tty): every frame comes back as sent.
    let mut cat = std::process::Command::new("sh")
        .args(["-c", "exec cat <\"$0\" >\"$0\"", cable.b.to_str().unwrap()])
        .spawn()
        .unwrap();
    let secs = 4;
    let (a, port, log, cpu, rss) = watch(&cable, "the line is looped back", secs).await;
    let _ = cat.kill();
    let _ = cat.wait();
    assert_eq!(
        log.matches("the line is looped back: we receive our own frames")
            .count(),
        1,
        "log:\n{log}"
    );
    assert!(!log.contains("link up"), "log:\n{log}");
    assert_quiet("looped", cpu, rss, secs, &log);

    // A real sfs replaces the loop: the link comes up without a restart.
    let echo = echo_server().await;
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200", cable.b.display()),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let data = pattern(20_000, 7);
    let s = connect_retry(port, Duration::from_secs(5)).await;
    let got = tokio::time::timeout(Duration::from_secs(30), roundtrip_all(s, &data))
        .await
        .expect("echo through the link in time");
    assert!(got == data, "echo intact\n{}", a.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_in_cooked_mode_is_reported() {
    use nix::sys::termios::{tcgetattr, tcsetattr, InputFlags, LocalFlags, OutputFlags, SetArg};
    let cable = Cable::start("cooked", 115_200).await;
    // The far end is a tty as a shell leaves it: canonical, echoing (control
    // characters as ^X), CR → NL on input, NL → CR NL on output.
    let tty = open_tty(&cable.b);
    let mut t = tcgetattr(&tty).unwrap();
    t.local_flags |= LocalFlags::ICANON
        | LocalFlags::ECHO
        | LocalFlags::ECHOE
        | LocalFlags::ECHOK
        | LocalFlags::ECHOCTL
        | LocalFlags::IEXTEN;
    t.input_flags |= InputFlags::ICRNL;
    t.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
    tcsetattr(&tty, SetArg::TCSANOW, &t).unwrap();
    let secs = 3;
    let (_a, _, log, cpu, rss) = watch(&cable, "is not sfs", secs).await;
    assert_eq!(log.matches("is not sfs").count(), 1, "log:\n{log}");
    assert!(
        log.contains("it echoes our frames as text, as a terminal in cooked mode does"),
        "log:\n{log}"
    );
    assert_quiet("cooked tty", cpu, rss, secs, &log);
    drop(tty);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_is_reported_by_what_it_says() {
    let cable = Cable::start("modem", 115_200).await;
    // A modem in command mode: "OK" to whatever arrives, "RING" now and then.
    let mut tty = open_tty(&cable.b);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let modem = std::thread::spawn(move || {
        let mut reader = tty.try_clone().unwrap();
        let mut buf = [0u8; 256];
        let _ = tty.write_all(b"\r\nRING\r\n");
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            // The cable end is raw with blocking reads; sfs probes every second.
            if reader.read(&mut buf).unwrap_or(0) > 0 {
                let _ = tty.write_all(b"\r\nOK\r\n");
            }
        }
    });
    let secs = 3;
    let (_a, _, log, cpu, rss) = watch(&cable, "is not sfs", secs).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(log.matches("is not sfs").count(), 1, "log:\n{log}");
    assert!(
        log.contains("the far end is not sfs: it sends text like 'OK'")
            || log.contains("the far end is not sfs: it sends text like 'RING'"),
        "log:\n{log}"
    );
    assert_quiet("modem", cpu, rss, secs, &log);
    drop(cable); // unblocks the reader
    let _ = tokio::task::spawn_blocking(move || modem.join()).await;
}
