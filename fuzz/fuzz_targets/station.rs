//! A whole SERIAL-MUX end (`Station`: link + mux + waiting opens) against a
//! hostile peer that speaks the link correctly — a real `Link` with its own
//! epoch, so the fuzzer's bytes reach the mux as delivered payloads — plus raw
//! line garbage, peer restarts, time steps and the application's calls.
//! The station offers compression as sfs does; the peer offers it in every
//! other session (odd epochs), so DATA_LZ4 meets both a negotiated session and
//! one where it is a violation. Must never panic, and the mux's buffers
//! (compression histories included: `MuxConfig::heap_bound`), the station's
//! queues and the event stream stay bounded.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sfs::link::{Features, Link, LinkConfig};
use sfs::mux::ChannelId;
use sfs::station::{Station, StationConfig, StationEvent};

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// The peer offers compression in sessions with an odd epoch.
fn peer_config(epoch: u32) -> LinkConfig {
    let mut c = LinkConfig::for_byte_rate(11_520);
    if epoch % 2 == 1 {
        c.features = c.features.union(Features::COMPRESS_LZ4);
    }
    c
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut cfg = StationConfig::for_byte_rate(11_520, "fuzz");
    cfg.mux.max_channels = 8;
    cfg.mux.window = 512;
    cfg.mux.send_buffer = 512;
    cfg.max_waiting = 8;
    cfg.link.features = cfg.link.features.union(Features::COMPRESS_LZ4);
    // max_channels × (window + send_buffer + two 20 KiB histories).
    let mux_bound = cfg.mux_config().heap_bound();
    let mut st = Station::new(cfg, 0x5F5, t0);
    st.listen("svc");
    let mut peer_epoch = 0xBEEF;
    let mut peer = Link::new(peer_config(peer_epoch), peer_epoch, t0);
    let mut now = t0;
    let mut inp = Input(data);
    let mut buf = Vec::new();
    let mut chans: Vec<ChannelId> = Vec::new();
    while let Some(op) = inp.byte() {
        match op % 8 {
            0 | 1 | 2 => {
                // One mux payload from the peer, carried by the link.
                let n = usize::from(inp.byte().unwrap_or(0));
                let p = inp.bytes(n);
                if !p.is_empty() && p.len() <= peer.max_payload() {
                    let _ = peer.send(Bytes::copy_from_slice(p));
                }
            }
            3 => {
                // Line garbage.
                let n = usize::from(inp.byte().unwrap_or(0));
                st.handle_input(now, inp.bytes(n));
            }
            4 => now += Duration::from_millis(u64::from(inp.byte().unwrap_or(0)) * 20),
            5 => {
                let k = inp.byte().unwrap_or(0);
                match k % 4 {
                    0 => {
                        st.open(now, "svc");
                    }
                    1 => {
                        if let Some(&ch) = chans.get(usize::from(k / 4) % chans.len().max(1)) {
                            st.write(ch, Bytes::from(vec![k; usize::from(k)]));
                        }
                    }
                    2 => {
                        if let Some(&ch) = chans.get(usize::from(k / 4) % chans.len().max(1)) {
                            st.shutdown_write(ch, None);
                        }
                    }
                    _ => {
                        if let Some(&ch) = chans.get(usize::from(k / 4) % chans.len().max(1)) {
                            st.reset(ch, "fuzz");
                            // No event follows the application's own reset.
                            chans.retain(|&c| c != ch);
                        }
                    }
                }
            }
            6 => {
                peer_epoch = peer_epoch.wrapping_add(1).max(1);
                peer = Link::new(peer_config(peer_epoch), peer_epoch, now);
            }
            _ => st.close(now, Duration::from_millis(200)),
        }
        // Let both ends exchange what they have (a bounded number of rounds).
        for _ in 0..16 {
            let mut moved = false;
            if st.poll_timeout().is_some_and(|t| t <= now) {
                st.handle_timeout(now);
            }
            if peer.poll_timeout().is_some_and(|t| t <= now) {
                peer.handle_timeout(now);
            }
            buf.clear();
            while st.poll_transmit(now, &mut buf) > 0 {
                assert!(buf.len() < 256 * 1024);
            }
            if !buf.is_empty() {
                moved = true;
                peer.handle_input(now, &buf);
            }
            buf.clear();
            while peer.poll_transmit(now, &mut buf) > 0 {
                assert!(buf.len() < 256 * 1024);
            }
            if !buf.is_empty() {
                moved = true;
                st.handle_input(now, &buf);
            }
            while peer.poll_event().is_some() {}
            let mut events = 0;
            while let Some(ev) = st.poll_event() {
                events += 1;
                match ev {
                    StationEvent::Incoming { ch, .. } => {
                        st.accept(ch);
                        chans.push(ch);
                    }
                    StationEvent::Opened { ch, .. } => chans.push(ch),
                    StationEvent::Readable { ch } => {
                        while let Some(b) = st.read(ch, 4096) {
                            st.consumed(ch, b.len());
                        }
                    }
                    StationEvent::Closed { ch } | StationEvent::Reset { ch, .. } => {
                        chans.retain(|&c| c != ch);
                    }
                    _ => {}
                }
            }
            assert!(events < 4096, "{events} events in one round");
            assert!(chans.len() <= 8 + 8, "{} channels", chans.len());
            assert!(st.mux_heap_bytes() <= mux_bound);
            st.check_invariants();
            if !moved {
                break;
            }
            // The pacer holds frames back; let line time pass.
            now += Duration::from_millis(5);
        }
    }
});
