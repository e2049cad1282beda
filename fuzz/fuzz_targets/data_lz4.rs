//! The compressed-DATA receive path past its header checks, for both codecs
//! (DATA_LZ4 and DATA_DEFLATE, chosen by the first input byte, with the
//! deflate strength too): a sender built here compresses the fuzzer's data
//! the way the mux sends it (one block or stream per record, the channel's
//! history as dictionary, the history starting with the first compressed
//! record and fed by plain DATA afterwards, within credit), so
//! the receiving `Mux` decompresses real blocks against real histories;
//! mixed in: plain DATA, damaged blocks, wrong announced lengths, credit
//! overruns and session resets. Must never panic, and:
//! - while nothing was damaged, the receiver hands out exactly the bytes
//!   sent, in order;
//! - a damaged record either resets the channel or is taken (neither codec
//!   has a checksum), never more than announced;
//! - `Mux::check_invariants` holds (heap within `MuxConfig::heap_bound`,
//!   each history within `HISTORY_CAP`, the codec state within
//!   `ENGINE_BOUND`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfs::mux::compress::{Engine, History, Strength};
use sfs::mux::wire::{decode, Record, MAX_DATA_LEN};
use sfs::mux::{ChannelId, Codec, Mux, MuxConfig, MuxEvent, SessionEnd};

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

/// The sending side of one channel, as `Mux::try_compress` keeps it.
struct Sender {
    id: u16,
    ch: ChannelId,
    credit: u64,
    hist: Option<History>,
    sent: Vec<u8>,
    got: Vec<u8>,
    /// A damaged record went in: the bytes may differ from now on.
    damaged: bool,
}

const WINDOW: u32 = 48 * 1024;

fn payload(r: &Record<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    r.encode(&mut v);
    v
}

/// Opens channel `id` from the peer's side; returns its sender.
fn open(m: &mut Mux, id: u16) -> Option<Sender> {
    let p = payload(&Record::Open {
        id,
        window: 1 << 20,
        service: "s",
    });
    m.handle_payload(&p).ok()?;
    let mut ch = None;
    while let Some(ev) = m.poll_event() {
        if let MuxEvent::Incoming { ch: c, .. } = ev {
            ch = Some(c);
        }
    }
    let ch = ch?;
    m.accept(ch);
    let mut s = Sender {
        id,
        ch,
        credit: 0,
        hist: None,
        sent: Vec::new(),
        got: Vec::new(),
        damaged: false,
    };
    collect_credit(m, &mut s);
    Some(s)
}

/// Takes the receiver's payloads: OPEN_OK and CREDIT grant the sender credit.
fn collect_credit(m: &mut Mux, s: &mut Sender) {
    while let Some(p) = m.poll_payload(2000) {
        for r in decode(&p).expect("the mux's own payload decodes") {
            match r {
                Record::OpenOk { id, window } if id == s.id => s.credit += u64::from(window),
                Record::Credit {
                    initiator: false,
                    id,
                    delta,
                } if id == s.id => s.credit += u64::from(delta),
                _ => {}
            }
        }
    }
}

/// Delivers events; returns false once the channel is gone.
fn drain(m: &mut Mux, s: &mut Sender) -> bool {
    let mut live = true;
    while let Some(ev) = m.poll_event() {
        match ev {
            MuxEvent::Readable { ch } if ch == s.ch => {
                while let Some(b) = m.read(ch, 1 << 20) {
                    s.got.extend_from_slice(&b);
                    m.consumed(ch, b.len());
                }
            }
            MuxEvent::Reset { ch, .. } | MuxEvent::Closed { ch } if ch == s.ch => live = false,
            _ => {}
        }
    }
    if !s.damaged {
        assert_eq!(s.got, s.sent[..s.got.len()], "bytes handed out differ");
        if live {
            assert_eq!(s.got.len(), s.sent.len(), "bytes held back");
        }
    }
    assert!(s.got.len() <= s.sent.len() || s.damaged);
    live
}

/// Raw data for one record: fuzzer bytes, optionally repeated (so matches
/// reach far back into the dictionary and blocks expand a lot).
fn raw_data(inp: &mut Input<'_>, max: usize) -> Option<Vec<u8>> {
    let len = usize::from(inp.u16()?) % max + 1;
    let mode = inp.byte()?;
    let seed = inp.bytes(usize::from(mode % 64) + 1).to_vec();
    Some(if mode & 0x40 != 0 {
        seed.iter().copied().cycle().take(len).collect()
    } else {
        seed
    })
}

fuzz_target!(|data: &[u8]| {
    let cfg = MuxConfig {
        window: WINDOW,
        send_buffer: 1024,
        max_channels: 4,
        interactive_bytes: 128,
        sparse_bytes: 0,
        compress: true,
        compress_strength: Strength::for_byte_rate(11_520),
    };
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let codec = if first & 1 == 0 { Codec::Lz4 } else { Codec::Deflate };
    let strength = Strength {
        level: (first >> 1) % 9 + 1,
        dict: if first & 0x80 == 0 { 32 * 1024 } else { 8 * 1024 },
    };
    let mut engine = Engine::default();
    let mut m = Mux::new(cfg.clone());
    m.set_peer_compression(Some(codec));
    let mut next_id = 0u16;
    let Some(mut s) = open(&mut m, next_id) else {
        return;
    };
    let mut inp = Input(data);
    let mut zout = Vec::new();
    while let Some(op) = inp.byte() {
        let room = s.credit.min(MAX_DATA_LEN as u64) as usize;
        let mut rec: Option<Vec<u8>> = None;
        match op % 8 {
            // A record as the mux would send it.
            0..=3 if room > 0 => {
                let Some(raw) = raw_data(&mut inp, room) else {
                    break;
                };
                let raw = &raw[..raw.len().min(room)];
                if raw.is_empty() {
                    break;
                }
                let n = engine
                    .compress(codec, strength, raw, s.hist.as_ref(), &mut zout)
                    .expect("compresses");
                if n == 0 || n > MAX_DATA_LEN {
                    continue;
                }
                rec = Some(payload(&Record::DataZ {
                    codec,
                    initiator: true,
                    id: s.id,
                    raw: raw.len() as u16,
                    block: &zout[..n],
                }));
                s.hist.get_or_insert_with(History::default).push(raw);
                s.sent.extend_from_slice(raw);
                s.credit -= raw.len() as u64;
            }
            // Plain DATA (enters the history once it exists).
            4 if room > 0 => {
                let Some(raw) = raw_data(&mut inp, room) else {
                    break;
                };
                let raw = &raw[..raw.len().min(room)];
                if raw.is_empty() {
                    break;
                }
                rec = Some(payload(&Record::Data {
                    initiator: true,
                    id: s.id,
                    data: raw,
                }));
                if let Some(h) = &mut s.hist {
                    h.push(raw);
                }
                s.sent.extend_from_slice(raw);
                s.credit -= raw.len() as u64;
            }
            // A damaged record: a flipped byte in the block, a wrong raw
            // length, or more than the credit.
            5 => {
                let Some(raw) = raw_data(&mut inp, MAX_DATA_LEN) else {
                    break;
                };
                if raw.is_empty() {
                    break;
                }
                let n = engine
                    .compress(codec, strength, &raw, s.hist.as_ref(), &mut zout)
                    .expect("compresses");
                if n == 0 || n > MAX_DATA_LEN {
                    continue;
                }
                let at = usize::from(inp.byte().unwrap_or(0));
                let how = inp.byte().unwrap_or(0);
                let mut raw_len = raw.len() as u16;
                match how % 3 {
                    0 => zout[at % n] ^= how | 1,
                    1 => raw_len = raw_len.wrapping_add(u16::from(how) | 1).max(1),
                    _ => raw_len = (s.credit.min(65_535 - 1) as u16) + 1,
                }
                rec = Some(payload(&Record::DataZ {
                    codec,
                    initiator: true,
                    id: s.id,
                    raw: raw_len,
                    block: &zout[..n],
                }));
                s.damaged = true;
            }
            // The link restarted: every channel goes; open a new one.
            6 => {
                m.handle_session_reset(SessionEnd::PeerRestarted);
                m.set_peer_compression(Some(codec));
                let _ = drain(&mut m, &mut s);
                next_id = next_id.wrapping_add(1);
                match open(&mut m, next_id) {
                    Some(n) => s = n,
                    None => return,
                }
                continue;
            }
            // Let credit come back.
            _ => {}
        }
        if let Some(p) = rec {
            m.handle_payload(&p).expect("a well-formed record");
        }
        let live = drain(&mut m, &mut s);
        m.check_invariants();
        assert!(m.heap_bytes() <= cfg.heap_bound());
        collect_credit(&mut m, &mut s);
        if !live {
            // Reset (a violation): the peer's RESET answer releases the id.
            let p = payload(&Record::Reset {
                initiator: true,
                id: s.id,
                reason: "",
            });
            m.handle_payload(&p).expect("a well-formed record");
            while m.poll_event().is_some() {}
            while m.poll_payload(2000).is_some() {}
            next_id = next_id.wrapping_add(1);
            match open(&mut m, next_id) {
                Some(n) => s = n,
                None => return,
            }
        }
    }
});
