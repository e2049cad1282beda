//! UDP through sfs over the virtual cable: 1,000 datagrams of varied sizes
//! echoed by a UDP server on the far side, boundaries and contents checked,
//! loss counted, on a clean and on a noisy line.
#![allow(clippy::disallowed_methods)] // measurements read the clock
#![cfg(unix)] // over the virtual cable (ptys)

mod util;

use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use util::*;

/// A UDP echo server on a free port.
async fn udp_echo() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, from) = s.recv_from(&mut buf).await.unwrap();
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    port
}

/// Datagram `i`: its number, then pattern bytes; sizes spread over 4..=1472.
fn datagram(i: u32) -> Vec<u8> {
    let len = 4 + (i as usize * 7919) % 1469;
    let mut d = i.to_be_bytes().to_vec();
    d.extend_from_slice(&pattern(len - 4, u64::from(i)));
    d
}

async fn echo_suite(tag: &str, impair: &str) -> (usize, usize) {
    const COUNT: u32 = 1000;
    const BATCH: u32 = 20;
    let cable = Cable::start_with(tag, 921_600, impair).await;
    let echo = udp_echo().await;
    let near_port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let far = Sfs::start(&[
        format!("SERIAL-MUX:{},b921600", cable.b.display()),
        format!("UDP:127.0.0.1:{echo}"),
    ]);
    let near = Sfs::start(&[
        format!("UDP-LISTEN:{near_port},bind=127.0.0.1"),
        format!("SERIAL-MUX:{},b921600", cable.a.display()),
    ]);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(("127.0.0.1", near_port)).await.unwrap();
    // Wait until the path works (link handshake, the channel open).
    let t0 = Instant::now();
    let mut buf = vec![0u8; 65_536];
    loop {
        client.send(b"hello").await.unwrap();
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), client.recv(&mut buf)).await
        {
            assert_eq!(&buf[..n], b"hello");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no echo through the cable\nnear:\n{}\nfar:\n{}",
            near.log_text(),
            far.log_text()
        );
    }
    // Late copies of the probe may still arrive: they are not counted.
    let t0 = Instant::now();
    let mut sent_at: HashMap<u32, Instant> = HashMap::new();
    let mut rtts = Vec::new();
    let (mut intact, mut bytes) = (0usize, 0usize);
    for batch in 0..COUNT / BATCH {
        for i in batch * BATCH..(batch + 1) * BATCH {
            client.send(&datagram(i)).await.unwrap();
            sent_at.insert(i, Instant::now());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut got = 0;
        while got < BATCH {
            let Ok(r) = tokio::time::timeout_at(deadline, client.recv(&mut buf)).await else {
                break;
            };
            let n = r.unwrap();
            if &buf[..n] == b"hello" {
                continue;
            }
            assert!(n >= 4, "a {n}-byte datagram came back: truncated or merged");
            let i = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            assert!(
                buf[..n] == datagram(i)[..],
                "datagram {i} came back altered ({n} bytes, sent {})",
                datagram(i).len()
            );
            if let Some(t) = sent_at.remove(&i) {
                rtts.push(t.elapsed());
                intact += 1;
                bytes += n;
            }
            if i >= batch * BATCH {
                got += 1;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    rtts.sort();
    let pct = |p: usize| rtts.get(rtts.len().saturating_sub(1) * p / 100).copied();
    let lost = COUNT as usize - intact;
    eprintln!(
        "udp echo over 921600 baud{impair}: {intact}/{COUNT} datagrams intact, {lost} lost, {:.0} datagrams/s, {:.0} B/s each way; round trip median {:?}, p99 {:?}, max {:?}",
        intact as f64 / secs,
        bytes as f64 / secs,
        pct(50),
        pct(99),
        pct(100)
    );
    (intact, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_over_a_clean_line() {
    let (_, lost) = echo_suite("udp-clean", "").await;
    assert_eq!(lost, 0, "a clean, uncongested line loses nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_over_a_noisy_line() {
    let (intact, _) = echo_suite("udp-noisy", ",ber=1e-5").await;
    // The link retransmits what the noise destroys: loss comes only from
    // congestion, and every datagram that arrives is whole.
    assert!(intact >= 950, "only {intact} of 1000 datagrams came back");
}
