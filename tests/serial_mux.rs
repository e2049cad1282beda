//! SERIAL-MUX end to end: real sfs processes on both ends of the project's
//! virtual serial cable (see `sfs::testbed`).
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock
#![cfg(unix)] // over the virtual cable (ptys) and the test bed

mod util;

use sfs::testbed::{upload, CableSpec, Echo, Testbed, TestbedOptions};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;

async fn bed(cable: CableSpec) -> Testbed {
    Testbed::start(TestbedOptions {
        log: "-v".into(),
        ..TestbedOptions::new(bin(), cable)
    })
    .await
    .expect("testbed starts")
}

/// Asks the bed's target for `len` bytes (its download request, as
/// [`sfs::testbed::download`] sends it) and returns once the first `first`
/// of them have arrived intact: the transfer is under way.
async fn download_under_way(
    entry: std::net::SocketAddr,
    len: u64,
    seed: u64,
    first: usize,
) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(entry).await.unwrap();
    let mut req = vec![b'G'];
    req.extend_from_slice(&len.to_be_bytes());
    req.extend_from_slice(&seed.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut got = vec![0u8; first];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut got))
        .await
        .expect("the download gets under way")
        .unwrap();
    assert!(got == pattern(first, seed), "first bytes differ");
    s
}

/// Reads the rest of a download: how many more bytes, if it ends cleanly.
async fn read_rest(mut s: tokio::net::TcpStream) -> std::io::Result<usize> {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    Ok(rest.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_connections_each_intact() {
    let bed = bed(CableSpec::clean(921_600)).await;
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let e = bed.entry;
        if i % 2 == 0 {
            tasks.push(tokio::spawn(async move {
                upload(e, 40_000 + i * 1000, i).await
            }));
        } else {
            tasks.push(tokio::spawn(async move {
                download(e, 40_000 + i * 1000, i).await
            }));
        }
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let tr = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("in time")
            .unwrap()
            .unwrap();
        assert!(tr.intact, "stream {i} corrupted: {tr:?}\n{}", bed.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystrokes_get_through_while_a_bulk_transfer_runs() {
    let bed = bed(CableSpec::clean(115_200)).await;
    let entry = bed.entry;
    let bulk = tokio::spawn(async move { upload(entry, 60_000, 5).await });
    let mut echo = Echo::connect(entry).await.unwrap();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let rtt = tokio::time::timeout(Duration::from_secs(5), echo.round_trip())
            .await
            .expect("echo in time")
            .unwrap();
        worst = worst.max(rtt);
        // Part of the scenario, not synchronisation: a person types with
        // pauses between keys.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        !bulk.is_finished(),
        "bulk should still be running while keystrokes were measured"
    );
    // Generous bound (shared machine); the benchmark reports the real figures.
    assert!(
        worst < Duration::from_secs(1),
        "a keystroke waited {worst:?} behind bulk"
    );
    let tr = bulk.await.unwrap().unwrap();
    assert!(tr.intact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_dial_closes_the_client_promptly() {
    let cable = Cable::start("refuse", 115200).await;
    let (ta, tb) = (cable.a.clone(), cable.b.clone());
    let (_dead, dead) = closed_port();
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200", tb.display()),
        format!("TCP:127.0.0.1:{dead}"),
    ]);
    let a = Sfs::start(&[
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!("SERIAL-MUX:{},b115200", ta.display()),
    ]);
    let port = a.listen_port().await;
    // First connection may wait for the link handshake; later ones must be quick.
    for round in 0..3 {
        let mut s = connect_retry(port, Duration::from_secs(5)).await;
        let t0 = Instant::now();
        let mut buf = [0u8; 8];
        let limit = if round == 0 {
            Duration::from_secs(8)
        } else {
            Duration::from_secs(1)
        };
        let r = tokio::time::timeout(limit, s.read(&mut buf)).await;
        assert!(
            r.is_ok(),
            "round {round}: client not closed within {limit:?}; log:\n{}",
            a.log_text()
        );
        assert!(matches!(r.unwrap(), Ok(0) | Err(_)));
        if round > 0 {
            assert!(t0.elapsed() < Duration::from_secs(1));
        }
    }
    assert!(a.log_text().contains("refused by peer"), "{}", a.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_restart_aborts_the_transfer_and_the_next_connection_works() {
    let mut bed = bed(CableSpec::clean(230_400)).await;
    // 400,000 bytes take some 17 s at 230400 baud: the restart comes once
    // the first 20,000 have arrived, well inside the transfer.
    let s = download_under_way(bed.entry, 400_000, 9, 20_000).await;
    bed.restart_b().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), read_rest(s))
        .await
        .expect("transfer ended");
    // The cut stream ends with a TCP reset, never a clean EOF.
    match r {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("a cut stream must not look complete ({n} more bytes, then EOF)"),
    }
    bed.wait_ready(Duration::from_secs(20))
        .await
        .expect("link comes back");
    let tr = upload(bed.entry, 20_000, 3).await.unwrap();
    assert!(tr.intact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_over_one_line() {
    let cable = Cable::start("two", 460800).await;
    let (ta, tb) = (cable.a.clone(), cable.b.clone());
    let echo = echo_server().await;
    // A second target that says hello and closes.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hello = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let _ = s.write_all(b"hello from web\n").await;
        }
    });
    let mux_b = format!("SERIAL-MUX:{},b460800", tb.display());
    let _b = Sfs::start(&[
        format!("{mux_b},service=ssh"),
        format!("TCP:127.0.0.1:{echo}"),
        format!("{mux_b},service=web"),
        format!("TCP:127.0.0.1:{hello}"),
    ]);
    let mux_a = format!("SERIAL-MUX:{},b460800", ta.display());
    let listen = "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string();
    let a = Sfs::start(&[
        listen.clone(),
        format!("{mux_a},service=ssh"),
        listen.clone(),
        format!("{mux_a},service=web"),
        listen,
        format!("{mux_a},service=nope"),
    ]);
    let (p1, p2, p3) = match a.listen_ports(3).await[..] {
        [p1, p2, p3] => (p1, p2, p3),
        _ => unreachable!(),
    };
    let s = connect_retry(p1, Duration::from_secs(5)).await;
    let got = tokio::time::timeout(
        Duration::from_secs(15),
        roundtrip_all(s, b"ping over ssh service"),
    )
    .await
    .unwrap();
    assert_eq!(got, b"ping over ssh service");
    let mut s = connect_retry(p2, Duration::from_secs(5)).await;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"hello from web\n");
    // A service B does not offer is refused: B never dials anything else.
    let mut s = connect_retry(p3, Duration::from_secs(5)).await;
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed promptly");
    assert!(matches!(r, Ok(0) | Err(_)));
    assert!(a.log_text().contains("not allowed"), "{}", a.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_to_exec_is_a_remote_shell_with_eof_and_exit_code() {
    let cable = Cable::start("shell", 230400).await;
    let (ta, tb) = (cable.a.clone(), cable.b.clone());
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b230400", tb.display()),
        "EXEC:\"sh\"".to_string(),
    ]);
    let mut child = tokio::process::Command::new(bin())
        .args([
            "STDIO".to_string(),
            format!("SERIAL-MUX:{},b230400", ta.display()),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"echo remote-$((6*7))\nexit\n")
        .await
        .unwrap();
    drop(stdin); // EOF must travel to the shell
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("shell finished")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "remote-42\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugged_device_comes_back_and_connections_survive() {
    let mut bed = bed(CableSpec::clean(230_400)).await;
    let mut echo = Echo::connect(bed.entry).await.unwrap();
    echo.round_trip().await.unwrap();
    // Both ends lose their device for a second, as when a USB adapter is pulled.
    bed.replug_cable(Duration::from_secs(1)).await.unwrap();
    let rtt = tokio::time::timeout(Duration::from_secs(15), echo.round_trip())
        .await
        .unwrap_or_else(|_| panic!("echo after replug timed out\n{}", bed.logs()))
        .expect("the same connection still works");
    assert!(rtt < Duration::from_secs(15));
    let tr = upload(bed.entry, 30_000, 8).await.unwrap();
    assert!(tr.intact);
    assert!(bed.logs().contains("device is back"), "{}", bed.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_speaks_something_else_is_reported() {
    let cable = Cable::start("mismatch", 115200).await;
    let (ta, tb) = (cable.a.clone(), cable.b.clone());
    let a = Sfs::start(&[
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!("SERIAL-MUX:{},b115200", ta.display()),
    ]);
    let port = a.listen_port().await;
    // Something that is not sfs chatters on the other end: a modem, a console.
    let tty = tb.clone();
    let chatter = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(tty).unwrap();
        for i in 0..50 {
            let _ = writeln!(
                f,
                "login: AT+CMGF=1 OK {i} The quick brown fox jumps over the lazy dog"
            );
            // Part of the scenario, not synchronisation: the chatter
            // goes on for a while, a line every 100 ms.
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    chatter.await.unwrap();
    let log = a.log_text();
    assert!(
        log.contains("the far end is not sfs: it sends text like 'login: AT+CMGF=1 OK"),
        "log:\n{log}"
    );
    assert_eq!(log.matches("is not sfs").count(), 1, "one line: {log}");
    // Survived: still running, still listening.
    let _s = connect_retry(port, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sfs_on_the_same_device_gets_a_clear_error() {
    let cable = Cable::start("busy", 115_200).await;
    let first = Sfs::start(&[
        format!("SERIAL-MUX:{}", cable.a.display()),
        "TCP:127.0.0.1:9".to_string(),
    ]);
    // The first sfs has claimed the device once it says it is open.
    first.wait_log(" open at ", Duration::from_secs(10)).await;
    let out = tokio::process::Command::new(bin())
        .args([
            format!("SERIAL-MUX:{}", cable.a.display()),
            "TCP:127.0.0.1:9".to_string(),
        ])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("device is busy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_sfs_mid_transfer_resets_the_connection() {
    let bed = bed(CableSpec::clean(230_400)).await;
    // Some 17 s of transfer; SIGTERM once the first 20,000 bytes are in.
    let s = download_under_way(bed.entry, 400_000, 4, 20_000).await;
    bed.terminate(1); // SIGTERM to side A while bytes are flowing
    let r = tokio::time::timeout(Duration::from_secs(10), read_rest(s))
        .await
        .expect("transfer ended");
    match r {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => {
            panic!("a stream cut by stopping sfs must not look complete ({n} more bytes, then EOF)")
        }
    }
}
