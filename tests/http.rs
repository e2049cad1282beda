//! curl through sfs over the virtual cable to a small HTTP server, on a clean
//! and on a noisy line.
#![cfg(unix)] // the test bed (sfs::testbed) runs the virtual cable, ptys

mod util;

use sfs::testbed::{CableSpec, Testbed, TestbedOptions};
use std::process::Command;
use tokio::io::AsyncReadExt;
use util::*;

/// A minimal HTTP/1.1 server answering every request with `body`.
async fn http_server(body: Vec<u8>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                http_reply(&mut s, &body).await;
            });
        }
    });
    port
}

async fn curl_suite(cable: CableSpec) {
    if Command::new("curl").arg("--version").output().is_err() {
        missing_tool("curl", "apt-get install curl");
        return;
    }
    let body = pattern(120_000, 5);
    let port = http_server(body.clone()).await;
    let bed = Testbed::start(TestbedOptions {
        target: Some(([127, 0, 0, 1], port).into()),
        ..TestbedOptions::new(bin(), cable)
    })
    .await
    .unwrap();
    let url = format!("http://{}/file.bin", bed.entry);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let url = url.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["-sS", "--max-time", "60", &url])
                .output()
                .unwrap()
        }));
    }
    for t in tasks {
        let out = t.await.unwrap();
        assert!(
            out.status.success(),
            "curl: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            bed.logs()
        );
        assert!(
            out.stdout == body,
            "curl body differs ({} bytes)",
            out.stdout.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_a_clean_line() {
    curl_suite(CableSpec::clean(460_800)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_a_noisy_line() {
    curl_suite(CableSpec::clean(460_800).both("ber=1e-4,drop=1e-5,insert=1e-5")).await;
}
