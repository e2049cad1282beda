//! Feeds a `Link` (no key) what a hostile or broken line can carry, with time
//! advancing: raw bytes split at arbitrary points, and — so that the fuzzer gets
//! past the CRC — frame bodies that the target seals with the right CRC (keyed
//! by the epochs the link currently uses, as a peer that knows them would) and
//! COBS-encodes, sometimes echoing the link's own output back (a looped cable).
//! Events and transmissions are drained. Must never panic, and must keep its
//! output and event queue bounded.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfs::link::{cobs, crc::crc32c, frame, Link, LinkConfig};

const HELLO_KIND: u8 = 3;

fn seal(link: &Link, body: &[u8], wire: &mut Vec<u8>) {
    let key = frame::session_key(link.peer_epoch().unwrap_or(0), link.epoch());
    let key: &[u8] = if body.first().is_some_and(|b| b >> 4 == HELLO_KIND) {
        &[]
    } else {
        &key
    };
    let mut raw = body.to_vec();
    raw.extend_from_slice(&crc32c(key, body).to_le_bytes());
    cobs::encode(&raw, wire);
    wire.push(0);
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::for_byte_rate(11_520), 0x5F5, t0);
    let mut out = Vec::new();
    let mut wire = Vec::new();
    let mut echo = false;
    let mut now = t0;
    // Each op: a control byte (low 2 bits: what; high bits: time step), then
    // a length byte and that many bytes.
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let Some((&len, tail)) = tail.split_first() else {
            break;
        };
        let n = usize::from(len).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        now += Duration::from_millis(u64::from(ctl >> 3) * 37);
        match ctl & 7 {
            0 | 1 => link.handle_input(now, chunk),
            2 | 3 => {
                wire.clear();
                seal(&link, chunk, &mut wire);
                link.handle_input(now, &wire);
            }
            4 => echo = !echo,
            5 => link.restart_session(),
            _ => {
                // Several sealed frames in one read, the body split at bytes
                // 0xFF (a burst from the peer).
                wire.clear();
                for body in chunk.split(|&b| b == 0xFF) {
                    seal(&link, body, &mut wire);
                }
                link.handle_input(now, &wire);
            }
        }
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        out.clear();
        while link.poll_transmit(now, &mut out) > 0 {
            assert!(out.len() < 64 * 1024, "poll_transmit never stops");
        }
        if echo && !out.is_empty() {
            link.handle_input(now, &out);
        }
        let mut events = 0;
        while link.poll_event().is_some() {
            events += 1;
        }
        // One input yields at most a window of deliveries and a few reports.
        assert!(events <= 2 * 256 + 8, "{events} events from one input");
    }
});
