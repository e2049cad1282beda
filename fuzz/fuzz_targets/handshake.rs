//! The keyed link's handshake state machine (`link::handshake::Keyed`) between
//! two honest ends with the same secret, under a hostile line: the input
//! script drops, replays, corrupts and forges handshake and sealed frames (with
//! valid CRCs, so forgeries reach the Noise code), restarts either end and
//! moves time. Must never panic; whenever both ends hold keys of the same
//! session, a sealed frame from one opens at the other; an impostor without the
//! secret never gets a session.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfs::link::crc::crc32c;
use sfs::link::crypto::{KeyConfig, Secret};
use sfs::link::handshake::{Keyed, Received};

/// Keys with `secret` and `seed`, for an end created `since` after the start
/// (its wall clock advanced by as much, as a restarted process reads it).
fn cfg(secret: u8, seed: u8, since: Duration) -> KeyConfig {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = secret.wrapping_add(i as u8);
    }
    KeyConfig {
        secret: Secret(s),
        seed: [seed; 32],
        clock: Duration::from_secs(1_796_083_200) + since,
    }
}

fn with_crc(mut f: Vec<u8>) -> Vec<u8> {
    let c = crc32c(&[], &f);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let zero = Duration::ZERO;
    let mut ends = [
        Keyed::new(&cfg(1, 1, zero), 11, t0),
        Keyed::new(&cfg(1, 2, zero), 22, t0),
    ];
    let mut impostor = Keyed::new(&cfg(9, 3, zero), 33, t0);
    let mut epoch = 100u32;
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut out = Vec::new();
    let mut raw = Vec::new();
    let mut it = data.iter().copied();
    while let Some(op) = it.next() {
        let side = (op & 1) as usize;
        match op >> 1 {
            // Deliver whatever `side` wants to send to the other end.
            0..=39 => {
                while ends[side].poll_handshake(now, &mut raw) {
                    seen.push(raw.clone());
                    let _ = ends[1 - side].receive(now, &raw, &mut out);
                }
            }
            // Drop what `side` wants to send.
            40..=49 => while ends[side].poll_handshake(now, &mut raw) {},
            // Replay a frame seen earlier.
            50..=69 => {
                if !seen.is_empty() {
                    let i = it.next().unwrap_or(0) as usize % seen.len();
                    let f = seen[i].clone();
                    let _ = ends[side].receive(now, &f, &mut out);
                }
            }
            // A corrupted copy of a frame seen earlier, CRC fixed up.
            70..=79 => {
                if !seen.is_empty() {
                    let i = it.next().unwrap_or(0) as usize % seen.len();
                    let mut f = seen[i].clone();
                    let at = it.next().unwrap_or(0) as usize % f.len();
                    f[at] ^= it.next().unwrap_or(1) | 1;
                    if f[0] >> 4 == 6 && f.len() > 4 {
                        f.truncate(f.len() - 4);
                        f = with_crc(f);
                    }
                    let _ = ends[side].receive(now, &f, &mut out);
                }
            }
            // A forged frame from the input.
            80..=89 => {
                let n = it.next().unwrap_or(0) as usize % 80;
                let mut f: Vec<u8> = it.by_ref().take(n).collect();
                if f.first().is_some_and(|b| b >> 4 == 6) {
                    f = with_crc(f);
                }
                let _ = ends[side].receive(now, &f, &mut out);
            }
            // An impostor without the secret talks to `side`.
            90..=99 => {
                while impostor.poll_handshake(now, &mut raw) {
                    let _ = ends[side].receive(now, &raw, &mut out);
                }
                while ends[side].poll_handshake(now, &mut raw) {
                    let _ = impostor.receive(now, &raw, &mut out);
                }
            }
            // Time passes.
            100..=119 => {
                now += Duration::from_millis(u64::from(it.next().unwrap_or(0)) * 10);
                for e in ends.iter_mut().chain([&mut impostor]) {
                    if e.poll_timeout().is_some_and(|t| t <= now) {
                        e.handle_timeout(now);
                    }
                }
            }
            // Restart, or lose the session.
            120 => {
                epoch += 1;
                ends[side] = Keyed::new(&cfg(1, op, now - t0), epoch, now);
            }
            121 => ends[side].on_session_lost(),
            // A sealed frame from `side`: must open at the other end if both
            // hold keys; recorded for replays.
            _ => {
                if ends[side].ready() {
                    let mut f = vec![0x10, 0, 1, b'x', 0, 0, 0, 0];
                    ends[side].seal(&mut f);
                    seen.push(f.clone());
                    let r = ends[1 - side].receive(now, &f, &mut out);
                    if r == Received::Frame {
                        assert_eq!(out, [0x10, 0, 1, b'x']);
                    }
                }
            }
        }
        while ends[0].poll_report().is_some() || ends[1].poll_report().is_some() {}
        while impostor.poll_report().is_some() {}
        assert!(!impostor.ready(), "an impostor without the secret got keys");
        assert!(seen.len() < 100_000);
    }
});
