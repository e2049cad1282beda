//! Keyed link input: two `Link`s with the same secret exchange a stream over a
//! line the input script controls — frames are delivered, dropped, corrupted,
//! replayed, or replaced by raw input bytes, and time moves. Must never panic
//! or grow without bound, and the receiver may only deliver what the sender
//! sent, in order, at most once.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sfs::link::crypto::{KeyConfig, Secret};
use sfs::link::{Link, LinkConfig, LinkEvent};

fn cfg(seed: u8) -> LinkConfig {
    let mut c = LinkConfig::for_byte_rate(11_520);
    c.key = Some(KeyConfig {
        secret: Secret(*b"fuzzing secret, 32 bytes long!!!"),
        seed: [seed; 32],
        clock: std::time::Duration::from_secs(1_796_083_200),
    });
    c
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut a = Link::new(cfg(1), 0xA, t0);
    let mut b = Link::new(cfg(2), 0xB, t0);
    let mut sent = 0u32;
    let mut delivered = 0u32;
    let mut last: Option<u32> = None;
    let mut reset = false;
    let mut recorded: Vec<Vec<u8>> = Vec::new();
    let mut out = Vec::new();
    let mut it = data.iter().copied();
    while let Some(op) = it.next() {
        if a.can_send() && sent < 10_000 {
            let p = Bytes::from(sent.to_be_bytes().to_vec());
            if a.send(p).is_ok() {
                sent += 1;
            }
        }
        match op % 8 {
            // A → B: deliver, drop, corrupt one byte.
            0..=2 => {
                out.clear();
                while a.poll_transmit(now, &mut out) > 0 {}
                if !out.is_empty() {
                    recorded.push(out.clone());
                    match op / 8 % 4 {
                        0 | 1 => b.handle_input(now, &out),
                        2 => {}
                        _ => {
                            let at = it.next().unwrap_or(0) as usize % out.len();
                            out[at] ^= it.next().unwrap_or(1) | 1;
                            b.handle_input(now, &out);
                        }
                    }
                }
            }
            // B → A.
            3 | 4 => {
                out.clear();
                while b.poll_transmit(now, &mut out) > 0 {}
                if op / 8 % 4 != 2 {
                    a.handle_input(now, &out);
                }
            }
            // Replay a recorded chunk of A's output into B.
            5 => {
                if !recorded.is_empty() {
                    let i = it.next().unwrap_or(0) as usize % recorded.len();
                    b.handle_input(now, &recorded[i].clone());
                }
            }
            // Raw input bytes into B.
            6 => {
                let n = it.next().unwrap_or(0) as usize;
                let chunk: Vec<u8> = it.by_ref().take(n).collect();
                b.handle_input(now, &chunk);
            }
            // Time passes.
            _ => {
                now += Duration::from_millis(u64::from(op / 8) * 20);
                for l in [&mut a, &mut b] {
                    if l.poll_timeout().is_some_and(|t| t <= now) {
                        l.handle_timeout(now);
                    }
                }
            }
        }
        while let Some(ev) = a.poll_event() {
            if matches!(ev, LinkEvent::PeerLost | LinkEvent::PeerRestarted) {
                reset = true;
            }
        }
        while let Some(ev) = b.poll_event() {
            match ev {
                LinkEvent::Delivered(p) => {
                    let n = u32::from_be_bytes(p[..4].try_into().expect("4-byte payload"));
                    // Payload numbers run on across sessions: a replayed or
                    // duplicated frame would go backwards, an invented one ahead.
                    assert!(
                        last.is_none_or(|l| n > l),
                        "replayed or reordered: {n} after {last:?}"
                    );
                    assert!(n < sent, "invented: {n}");
                    if !reset {
                        assert_eq!(n, delivered, "gap without a reset");
                    }
                    last = Some(n);
                    delivered += 1;
                }
                LinkEvent::PeerRestarted | LinkEvent::PeerLost => reset = true,
                _ => {}
            }
        }
        assert!(delivered <= sent);
        assert!(recorded.len() < 100_000);
    }
});
