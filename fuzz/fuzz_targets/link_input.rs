//! Feeds arbitrary bytes to `Link::handle_input` (split at arbitrary points, with time
//! advancing) and drains events and transmissions: must never panic, and must keep
//! its buffers bounded.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfs::link::{Link, LinkConfig};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::for_byte_rate(11_520), 0x5F5, t0);
    let mut out = Vec::new();
    let mut now = t0;
    // First byte of each chunk: length (1..=256) and time step in ms.
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = (ctl as usize % 256 + 1).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        now += Duration::from_millis((ctl >> 4) as u64 * 50);
        link.handle_input(now, chunk);
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        out.clear();
        while link.poll_transmit(now, &mut out) > 0 {
            assert!(out.len() < 64 * 1024);
        }
        while link.poll_event().is_some() {}
        rest = tail;
    }
});
