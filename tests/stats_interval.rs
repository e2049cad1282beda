//! `--stats-interval`: the statistics SIGUSR1 prints, on a timer instead (the way
//! to get them on Windows). Real sfs processes over the virtual cable.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock

mod util;

use std::time::Duration;
use util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_interval_prints_each_links_line_periodically() {
    let cable = Cable::start("stats", 115_200).await;
    let echo = echo_server().await;
    let port = free_port();
    let a = Sfs::start(&[
        "--stats-interval".to_string(),
        "0.5".to_string(),
        format!("TCP-LISTEN:{port},fork,bind=127.0.0.1"),
        format!("SERIAL-MUX:{},b115200", cable.a.display()),
    ]);
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200", cable.b.display()),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let data = pattern(5_000, 3);
    let s = connect_retry(port, Duration::from_secs(5)).await;
    let got = tokio::time::timeout(Duration::from_secs(20), roundtrip_all(s, &data))
        .await
        .expect("echo in time");
    assert_eq!(got, data);
    // A channel was opened and served: the next reports say so.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = a.log_text();
    let device = cable.a.display().to_string();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with(&format!("sfs: SERIAL-MUX:{device}: link up")))
        .collect();
    assert!(lines.len() >= 2, "expected periodic stats lines:\n{log}");
    let last = lines.last().unwrap();
    assert!(last.contains("1 opened"), "{last}");
    assert!(last.contains("CRC failures"), "{last}");
}

#[tokio::test]
async fn stats_interval_rejects_a_bad_value() {
    for bad in ["0", "-1", "soon", "NaN"] {
        let out = tokio::process::Command::new(bin())
            .arg(format!("--stats-interval={bad}"))
            .args(["TCP-LISTEN:0", "TCP:127.0.0.1:9"])
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--stats-interval"), "{bad}: {err}");
    }
}
