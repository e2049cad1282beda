//! `--stats-interval`: the statistics SIGUSR1 prints, on a timer instead (the way
//! to get them on Windows). Real sfs processes over the virtual cable.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock

mod util;

use std::time::Duration;
use util::*;

#[cfg(unix)] // over the virtual cable (ptys)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_interval_prints_each_links_line_periodically() {
    let cable = Cable::start("stats", 115_200).await;
    let echo = echo_server().await;
    let a = Sfs::start(&[
        "--stats-interval".to_string(),
        "0.5".to_string(),
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!("SERIAL-MUX:{},b115200", cable.a.display()),
    ]);
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200", cable.b.display()),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let port = a.listen_port().await;
    let data = pattern(5_000, 3);
    let s = connect_retry(port, Duration::from_secs(5)).await;
    let got = tokio::time::timeout(Duration::from_secs(20), roundtrip_all(s, &data))
        .await
        .expect("echo in time");
    assert_eq!(got, data);
    // A channel was opened and served: the next reports say so. Wait for
    // the reports themselves (every 0.5 s), not for a guessed time.
    let device = cable.a.display().to_string();
    let stats_lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.starts_with(&format!("sfs: SERIAL-MUX:{device}: link up")))
            .map(str::to_string)
            .collect()
    };
    let log = a
        .wait_log_until(
            "two periodic stats lines, the last counting the channel",
            Duration::from_secs(10),
            |log| {
                let lines = stats_lines(log);
                lines.len() >= 2 && lines.last().is_some_and(|l| l.contains("1 opened"))
            },
        )
        .await;
    let lines = stats_lines(&log);
    let last = lines.last().unwrap();
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
