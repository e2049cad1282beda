//! The plain bridge with the real binary: TCP, half-close, failing dials,
//! raw SERIAL over the virtual cable, and command-line errors.

mod util;

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::*;

#[tokio::test]
async fn forking_listener_serves_concurrent_clients_byte_exact() {
    let echo = echo_server().await;
    let sfs = Sfs::start(&[
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let port = sfs.listen_port().await;
    let mut tasks = Vec::new();
    for i in 0..6u64 {
        tasks.push(tokio::spawn(async move {
            let s = connect_retry(port, Duration::from_secs(5)).await;
            let data = pattern(200_000 + i as usize * 777, i);
            let got = roundtrip_all(s, &data).await;
            assert_eq!(got.len(), data.len(), "client {i} length");
            assert!(got == data, "client {i} bytes differ");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn half_close_keeps_the_other_direction_open() {
    // A server that reads everything, then answers with the count after EOF.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        // Part of the scenario, not synchronisation: the answer comes a
        // while after the client's half-close, so the open direction must
        // stay open across a quiet stretch.
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(format!("got {}", buf.len()).as_bytes())
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    });
    let mut sfs = Sfs::start(&[
        "TCP-LISTEN:0,bind=127.0.0.1".to_string(),
        format!("TCP:127.0.0.1:{target}"),
    ]);
    let port = sfs.listen_port().await;
    let s = connect_retry(port, Duration::from_secs(5)).await;
    let got = roundtrip_all(s, &[7u8; 12345]).await;
    assert_eq!(String::from_utf8_lossy(&got), "got 12345");
    // Without fork, sfs exits after its one connection, successfully.
    let status = tokio::time::timeout(Duration::from_secs(5), sfs.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        sfs.log_text()
    );
}

#[tokio::test]
async fn failed_dial_closes_only_that_connection() {
    let (_dead, dead) = closed_port(); // nothing listens here
    let mut sfs = Sfs::start(&[
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!("TCP:127.0.0.1:{dead}"),
    ]);
    let port = sfs.listen_port().await;
    for _ in 0..3 {
        let mut s = connect_retry(port, Duration::from_secs(5)).await;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("closed promptly");
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "connection should be closed, got {n:?}"
        );
    }
    assert!(
        sfs.child.try_wait().unwrap().is_none(),
        "listener must keep running"
    );
    assert!(
        sfs.log_text().contains("cannot connect to TCP:127.0.0.1"),
        "log:\n{}",
        sfs.log_text()
    );
}

#[cfg(unix)] // over the virtual cable (ptys)
#[tokio::test]
async fn one_megabyte_over_raw_serial_through_the_virtual_cable() {
    let cable = Cable::start("raw", 3000000).await;
    let (a, b) = (cable.a.clone(), cable.b.clone());
    // Upload only: the far side counts and checks what arrives.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap().port();
    let data = pattern(1 << 20, 42);
    let expect = data.clone();
    let (far_ready, far_ready_rx) = tokio::sync::oneshot::channel();
    let check = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        // The far sfs (a one-shot pair) opens its device, then dials us.
        let _ = far_ready.send(());
        let mut got = Vec::new();
        while got.len() < expect.len() {
            let mut buf = vec![0u8; 65536];
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "early EOF after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == expect, "bytes differ");
    });
    let far = Sfs::start(&[
        format!("SERIAL:{},b3000000", b.display()),
        format!("TCP:127.0.0.1:{target}"),
    ]);
    let near = Sfs::start(&[
        "TCP-LISTEN:0,bind=127.0.0.1".to_string(),
        format!("SERIAL:{},b3000000", a.display()),
    ]);
    let port = near.listen_port().await;
    // Raw SERIAL has no handshake: bytes written before the far sfs has its
    // end open would be lost, so wait until it has dialed the checker, which
    // it does once the device is open.
    tokio::time::timeout(Duration::from_secs(10), far_ready_rx)
        .await
        .unwrap_or_else(|_| panic!("the far sfs never dialed; log:\n{}", far.log_text()))
        .unwrap();
    let mut s = connect_retry(port, Duration::from_secs(5)).await;
    s.write_all(&data).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), check)
        .await
        .expect("transfer finished")
        .unwrap();
}

async fn run_fail(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(bin())
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_address_is_a_usage_error_with_a_caret() {
    let (code, err) = run_fail(&["TCP-LISTEN:2222,forkk", "TCP:localhost:22"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown option 'forkk'"), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[tokio::test]
async fn missing_device_is_a_runtime_error_on_one_line() {
    let (code, err) = run_fail(&["SERIAL:/dev/ttyUSB9", "TCP:localhost:22"]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim(),
        "sfs: cannot open /dev/ttyUSB9: no such device (sfs --list-ports shows the serial ports here)"
    );
}

#[tokio::test]
async fn port_in_use_is_a_runtime_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let a = format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr=0");
    let (code, err) = run_fail(&[&a, "TCP:127.0.0.1:9"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("sfs: cannot listen on 127.0.0.1:"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn odd_number_of_addresses_is_a_usage_error() {
    let (code, err) = run_fail(&["TCP:localhost:22"]).await;
    assert_eq!(code, 2, "{err}");
}
