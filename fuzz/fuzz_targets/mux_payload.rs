//! Drives a `Mux` with arbitrary payloads from a hostile peer mixed with
//! application calls (open, accept, refuse, read, consumed, send, close_write
//! with and without an exit status, reset, session reset) and `poll_payload`,
//! so state-dependent paths are reached: raw bytes, and well-formed records
//! (EXIT included) aimed at the few channel ids in use. Must never panic, and:
//! - every payload it produces fits `max` and decodes (a correct peer, mux `b`
//!   here, takes it without a payload-level error, whatever we were sent);
//! - the channel table, receive buffers and send buffers stay bounded.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sfs::mux::wire::Record;
use sfs::mux::{ChannelId, ExitStatus, Mux, MuxConfig, MuxEvent, RefuseReason};

const SERVICE: &str = "svc";

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn check_bounds(m: &Mux, known: &[ChannelId]) {
    let cfg = m.config();
    assert!(m.channel_count() <= cfg.max_channels as usize);
    for &ch in known {
        assert!(m.buffered(ch) <= cfg.window as usize);
        assert!(m.send_space(ch) <= cfg.send_buffer as usize);
    }
}

/// Builds one well-formed record (possibly violating the protocol) for a
/// channel id in 0..4.
fn record(inp: &mut Input<'_>, buf: &mut BytesMut) -> Option<()> {
    let kind = inp.byte()?;
    let id = u16::from(inp.byte()? % 4);
    let initiator = kind & 0x80 != 0;
    let n = inp.byte()?;
    let text = std::str::from_utf8(inp.bytes(usize::from(n % 8))).unwrap_or("x");
    let data = inp.bytes(usize::from(n) + 1);
    let window = u32::from(inp.u16()?) + 1;
    let r = match kind % 10 {
        0 => Record::Open {
            id,
            window,
            service: text,
        },
        9 => Record::OpenTo {
            id,
            window,
            service: text,
            port: window as u16,
            // Never empty: the encoder asserts what the decoder enforces.
            host: if text.is_empty() { "h" } else { text },
        },
        1 => Record::OpenOk { id, window },
        2 => Record::Refuse {
            id,
            reason: RefuseReason::NotAllowed,
            detail: text,
        },
        3 => Record::Data {
            initiator,
            id,
            data,
        },
        4 => Record::Credit {
            initiator,
            id,
            delta: window,
        },
        5 => Record::Eof { initiator, id },
        6 => Record::Close { initiator, id },
        7 => Record::Reset {
            initiator,
            id,
            reason: text,
        },
        _ => Record::Exit {
            initiator,
            id,
            status: if n % 2 == 0 {
                ExitStatus::Code(window)
            } else {
                ExitStatus::Signal(window)
            },
        },
    };
    r.encode(buf);
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let cfg = MuxConfig {
        window: 256,
        send_buffer: 300,
        max_channels: 4,
        interactive_bytes: 64,
        sparse_bytes: 512,
        // DATA_LZ4 from the fuzzer is a violation here; the data_lz4
        // target covers the decompressing path.
        compress: false,
        compress_strength: sfs::mux::compress::Strength::for_byte_rate(11_520),
    };
    let mut a = Mux::new(cfg.clone());
    let mut b = Mux::new(MuxConfig::default());
    let mut known: Vec<ChannelId> = Vec::new();
    let mut incoming: Vec<ChannelId> = Vec::new();
    let mut inp = Input(data);
    let mut buf = BytesMut::new();
    while let Some(op) = inp.byte() {
        let pick = |k: u8, v: &[ChannelId]| (!v.is_empty()).then(|| v[usize::from(k) % v.len()]);
        match op % 12 {
            0 => {
                // Raw bytes from a hostile peer.
                let n = usize::from(inp.byte().unwrap_or(0));
                let p = inp.bytes(n);
                let _ = a.handle_payload(p);
            }
            1 => {
                // A payload of 1..=4 well-formed records.
                buf.clear();
                let k = inp.byte().unwrap_or(0) % 4 + 1;
                for _ in 0..k {
                    if record(&mut inp, &mut buf).is_none() {
                        break;
                    }
                }
                if !buf.is_empty() {
                    let _ = a.handle_payload(&buf);
                }
            }
            2 => {
                if let Ok(ch) = a.open(SERVICE) {
                    known.push(ch);
                }
            }
            3 => {
                if let Some(ch) = pick(inp.byte().unwrap_or(0), &incoming) {
                    a.accept(ch);
                }
            }
            4 => {
                if let Some(ch) = pick(inp.byte().unwrap_or(0), &incoming) {
                    a.refuse(ch, RefuseReason::ConnectionRefused, "no");
                    // The handle is dead (if the refusal applied).
                    known.retain(|&c| c != ch || a.send_space(c) > 0);
                }
            }
            5 => {
                let k = inp.byte().unwrap_or(0);
                if let Some(ch) = pick(k, &known) {
                    let mut got = 0;
                    while let Some(b) = a.read(ch, usize::from(k) + 1) {
                        assert!(!b.is_empty());
                        got += b.len();
                        assert!(got <= cfg.window as usize);
                    }
                }
            }
            6 => {
                let k = inp.byte().unwrap_or(0);
                if let Some(ch) = pick(k, &known) {
                    a.consumed(ch, usize::from(k) * 4);
                }
            }
            7 => {
                let k = inp.byte().unwrap_or(0);
                if let Some(ch) = pick(k, &known) {
                    let space = a.send_space(ch);
                    let n = a.send(ch, &[k; 200][..usize::from(k) % 200 + 1]);
                    assert!(n <= space);
                }
            }
            8 => {
                let k = inp.byte().unwrap_or(0);
                if let Some(ch) = pick(k, &known) {
                    if k & 1 == 0 {
                        a.close_write(ch);
                    } else {
                        a.close_write_with_status(ch, ExitStatus::Code(u32::from(k)));
                    }
                }
            }
            9 => {
                if let Some(ch) = pick(inp.byte().unwrap_or(0), &known) {
                    a.reset(ch, "fuzz");
                    // No event follows the application's own reset.
                    known.retain(|&c| c != ch);
                    incoming.retain(|&c| c != ch);
                }
            }
            10 => a.handle_session_reset(sfs::mux::SessionEnd::PeerRestarted),
            _ => {
                // Output: 64..=600 bytes at a time; a correct peer decodes it,
                // and its answers come back to us.
                let max = 64 + usize::from(inp.byte().unwrap_or(0)) * 2;
                for _ in 0..8 {
                    let Some(p) = a.poll_payload(max) else { break };
                    assert!(!p.is_empty() && p.len() <= max);
                    if let Err(e) = b.handle_payload(&p) {
                        panic!("mux produced an undecodable payload: {e}: {p:?}");
                    }
                }
                while let Some(ev) = b.poll_event() {
                    if let MuxEvent::Incoming { ch, .. } = ev {
                        b.accept(ch);
                    }
                }
                while let Some(p) = b.poll_payload(max) {
                    let _ = a.handle_payload(&p);
                }
            }
        }
        while let Some(ev) = a.poll_event() {
            match ev {
                MuxEvent::Incoming { ch, .. } => {
                    incoming.push(ch);
                    known.push(ch);
                }
                MuxEvent::Reset { ch, .. }
                | MuxEvent::Refused { ch, .. }
                | MuxEvent::Closed { ch } => {
                    known.retain(|&c| c != ch);
                    incoming.retain(|&c| c != ch);
                }
                _ => {}
            }
        }
        check_bounds(&a, &known);
    }
});
