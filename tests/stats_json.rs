//! `--stats-json`: the structured statistics (docs/stats-schema.md), parsed as a
//! script would, from real sfs processes over the virtual cable.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock

mod util;

use serde_json::Value;
use std::time::Duration;
use util::*;

/// The complete reports in the file so far (a line still being written is
/// left for the next look).
#[cfg(unix)] // over the virtual cable (ptys)
fn reports(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_json_reports_the_link_and_each_channel() {
    let cable = Cable::start("json", 115_200).await;
    let echo = echo_server().await;
    let file = cable.dir.join("stats.jsonl");
    let mut a = Sfs::start(&[
        "--stats-interval".to_string(),
        "0.3".to_string(),
        "--stats-json".to_string(),
        file.display().to_string(),
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!("SERIAL-MUX:{},b115200,service=echo", cable.a.display()),
    ]);
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200,service=echo", cable.b.display()),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let port = a.listen_port().await;
    // One connection, kept open while reports are written (every 0.3 s):
    // wait for the reports, until one shows the channel over a second old.
    let s = echo_kept_open(port, 3_000, 7).await;
    let t0 = std::time::Instant::now();
    let all = loop {
        let all = reports(&file);
        let aged = all.last().is_some_and(|r| {
            r["links"][0]["channels"][0]["age_s"]
                .as_f64()
                .is_some_and(|age| age > 1.0)
        });
        if all.len() >= 2 && aged {
            break all;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no report with the channel over a second old:\n{all:?}\n{}",
            a.log_text()
        );
        // Polling period of the file, not synchronisation.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        all.len() >= 2,
        "expected periodic reports:\n{}",
        a.log_text()
    );
    for r in &all {
        assert_eq!(r["schema"], "sfs-stats");
        assert_eq!(r["version"], 1);
        assert_eq!(r["reason"], "interval");
    }
    let last = all.last().unwrap();
    let link = &last["links"][0];
    assert_eq!(link["device"], cable.a.display().to_string());
    assert_eq!(link["state"], "up", "{link}");
    assert_eq!(link["baud"], 115_200);
    assert!(link["peer_epoch"].is_string(), "{link}");
    assert!(link["frames_sent"].as_u64().unwrap() > 0, "{link}");
    assert!(link["srtt_ms"].as_f64().unwrap() > 0.0, "{link}");
    for field in [
        "crc_failures",
        "retransmissions",
        "frame_payload",
        "queue_bytes",
        "goodput_tx_bytes_per_s",
        "goodput_rx_bytes_per_s",
        "link_uptime_s",
    ] {
        assert!(link[field].is_number(), "{field} missing: {link}");
    }
    let chans = link["channels"].as_array().unwrap();
    assert_eq!(chans.len(), 1, "{link}");
    let c = &chans[0];
    assert_eq!(c["service"], "echo");
    assert_eq!(c["direction"], "outbound");
    assert_eq!(c["state"], "open");
    assert_eq!(c["bytes_out"], 3_000);
    assert_eq!(c["bytes_in"], 3_000);
    assert!(
        c["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("tcp 127.0.0.1:"),
        "{c}"
    );
    assert!(c["age_s"].as_f64().unwrap() > 1.0, "{c}");

    // The text line of --stats-interval without --stats-json is unchanged
    // (tests/stats_interval.rs); here, none was printed.
    assert!(
        !a.log_text().contains("sfs: SERIAL-MUX:"),
        "{}",
        a.log_text()
    );

    // SIGTERM: a last report, marked as such.
    drop(s);
    let pid = nix::unistd::Pid::from_raw(a.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), a.child.wait())
        .await
        .expect("sfs exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", a.log_text());
    // -v logged the connection's end with both endpoints and its bytes.
    let log = a.log_text();
    assert!(
        log.lines().any(|l| l.contains("closed tcp 127.0.0.1:")
            && l.contains("channel L")
            && l.contains("3000 bytes ->, 3000 bytes <-")),
        "{log}"
    );
    let all = reports(&file);
    let exit = all.last().unwrap();
    assert_eq!(exit["reason"], "exit", "{exit}");
    assert_eq!(exit["links"][0]["channels_opened"], 1, "{exit}");
}

#[tokio::test]
async fn stats_json_to_stdout_is_refused_beside_stdio() {
    let out = tokio::process::Command::new(bin())
        .args(["--stats-json", "-", "STDIO", "TCP:127.0.0.1:9"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stats-json"));
}

/// `duplex=half` over a half-duplex virtual cable (overlapping bytes of the two
/// directions garbled): 20 KB each way through an echo service arrive intact,
/// and the reports show the turns that carried them.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_duplex_link_carries_data_and_reports_its_turns() {
    let cable = Cable::start_with("jsonhalf", 115_200, ",duplex=half").await;
    let echo = echo_server().await;
    let file = cable.dir.join("stats.jsonl");
    let a = Sfs::start(&[
        "--stats-interval".to_string(),
        "0.3".to_string(),
        "--stats-json".to_string(),
        file.display().to_string(),
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!("SERIAL-MUX:{},b115200,duplex=half", cable.a.display()),
    ]);
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200,duplex=half", cable.b.display()),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let port = a.listen_port().await;
    // echo_kept_open checks every byte that comes back.
    let s = echo_kept_open(port, 20_000, 21).await;
    let t0 = std::time::Instant::now();
    let turns = loop {
        let all = reports(&file);
        let t = all.last().map(|r| r["links"][0]["turns"].clone());
        if let Some(t) = t.filter(|t| t["taken"].as_u64().is_some_and(|n| n >= 3)) {
            break t;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no report with turns:\n{all:?}\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for field in ["taken", "passed", "claimed", "unanswered"] {
        assert!(turns[field].is_u64(), "{field}: {turns}");
    }
    assert!(turns["passed"].as_u64().unwrap() >= 3, "{turns}");
    drop(s);
}
