//! Forward error correction of link frames (feature `FEC`, docs/link-protocol.md
//! §11): the coded frame format, pure and sans-IO, and the receiver's estimate
//! of the line that picks how much parity it asks the peer for.
//!
//! # Why not COBS around the code
//! COBS amplifies errors: a damaged code byte moves every later zero, and a
//! byte that noise turns into 0x00 cuts the frame in two. A coded frame
//! therefore carries no stuffing at all. It is a row of *masked blocks*, each an
//! RS codeword XORed with a byte `v` that occurs nowhere in it — one always
//! exists, as a codeword has at most 255 bytes one of which is the mask slot
//! (0 before masking) — so no masked byte is 0x00 and the 0x00 delimiter still
//! ends frames. Every byte of a block is then an ordinary RS symbol: one byte
//! error is one symbol error, wherever it falls.
//!
//! ```text
//! frame   header-block data-block… 0x00
//! block   (slot=0 ‖ data ‖ parity) ⊕ v ‖ v         v: the mask, sent twice: in
//!                                                  the slot (masked 0) and last
//! header  data = 0xA0|level, want, raw_len:u16 BE; parity 4 (corrects 2)
//! data    raw frame (with its CRC or AEAD tag) cut into B = ⌈len/(254−nsym)⌉
//!         blocks of near-equal size; parity nsym = 2, 4, 8, 16, 32 (level 1–5)
//! ```
//!
//! What lands where: a byte error anywhere costs one symbol of its block (the
//! mask has two copies, at the two ends of the block so that one burst does
//! not take both; either one damaged is one symbol error). A noise-made
//! 0x00 cuts the frame; the header tells the frame's length, so the receiver
//! joins the piece with what follows ([`Rejoin`]) and the cut byte becomes one
//! more symbol error. A burst of `n` bytes is corrected when no block gets more
//! than `t = nsym/2` of it. Anything worse is detected (RS, then the link's CRC
//! or AEAD, which always judge the corrected frame) and repaired by
//! retransmission.

use std::sync::OnceLock;

use super::rs::Code;

/// Strongest level: 32 parity bytes per block (t = 16).
pub const MAX_LEVEL: u8 = 5;
/// Wire bytes of the header block: slot, 4 data, 4 parity, mask.
pub const HEADER_WIRE: usize = 10;
/// First byte of the header's data: high nibble 0xA marks a coded frame (v1 of
/// the format), the low nibble is the level.
const MAGIC: u8 = 0xA0;
/// Longest raw frame a coded frame carries (the u16 length field).
pub const MAX_RAW: usize = u16::MAX as usize;
/// Header data bytes (after the slot).
const HEADER_DATA: usize = 4;

/// Parity bytes per block at `level` (0 at level 0: no code).
pub const fn nsym(level: u8) -> usize {
    match level {
        0 => 0,
        1 => 2,
        2 => 4,
        3 => 8,
        4 => 16,
        _ => 32,
    }
}

/// The codes by level; index 0 is the header's (4 parity bytes, corrects 2).
fn codes() -> &'static [Code; 6] {
    static CODES: OnceLock<[Code; 6]> = OnceLock::new();
    CODES.get_or_init(|| std::array::from_fn(|l| Code::new(if l == 0 { 4 } else { nsym(l as u8) })))
}

/// Data bytes per block at most at `level` ≥ 1.
const fn block_data(level: u8) -> usize {
    255 - 1 - nsym(level)
}

fn blocks(level: u8, raw_len: usize) -> usize {
    raw_len.div_ceil(block_data(level)).max(1)
}

/// Wire bytes of a coded frame of `raw_len` raw bytes at `level` ≥ 1, without
/// the delimiter.
pub fn wire_len(level: u8, raw_len: usize) -> usize {
    let level = level.clamp(1, MAX_LEVEL);
    HEADER_WIRE + raw_len + blocks(level, raw_len) * (2 + nsym(level))
}

/// Largest wire length of a coded frame of up to `raw_len` bytes.
pub fn max_wire_len(raw_len: usize) -> usize {
    wire_len(MAX_LEVEL, raw_len)
}

/// Appends one masked block: the codeword of `data` under `code`.
fn encode_block(code: &Code, data: &[u8], out: &mut Vec<u8>) {
    let mut cw = [0u8; 255];
    let n = 1 + data.len() + code.nsym();
    cw[1..1 + data.len()].copy_from_slice(data);
    let (msg, parity) = cw[..n].split_at_mut(1 + data.len());
    code.encode(msg, parity);
    let mut seen = [false; 256];
    for &b in &cw[..n] {
        seen[b as usize] = true;
    }
    // n ≤ 255 with the slot's 0 among them: some non-zero value is missing.
    let mask = (1..=255u8).find(|&v| !seen[v as usize]).unwrap_or(0xFF);
    out.extend(cw[..n].iter().map(|&b| b ^ mask));
    out.push(mask);
}

/// Appends the coded frame of `raw` at `level` (1..=MAX_LEVEL), telling the
/// peer we `want` its frames at that level, then the 0x00 delimiter. `raw`
/// must be at most [`MAX_RAW`] bytes.
pub fn encode(level: u8, want: u8, raw: &[u8], out: &mut Vec<u8>) {
    let level = level.clamp(1, MAX_LEVEL);
    let len = raw.len().min(MAX_RAW);
    let raw = &raw[..len];
    let header = [
        MAGIC | level,
        want.min(MAX_LEVEL),
        (len >> 8) as u8,
        len as u8,
    ];
    let codes = codes();
    encode_block(&codes[0], &header, out);
    let b = blocks(level, len);
    let (base, extra) = (len / b, len % b);
    let mut at = 0;
    for i in 0..b {
        let k = base + usize::from(i < extra);
        encode_block(&codes[level as usize], &raw[at..at + k], out);
        at += k;
    }
    out.push(0);
}

/// Decodes one masked block (`wire` = masked codeword ‖ mask), appending its
/// data to `out`; the number of bytes corrected, or `None` when beyond repair.
fn decode_block(code: &Code, wire: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let (&copy, masked) = wire.split_last()?;
    let n = masked.len();
    if n < 1 + code.nsym() || n > 255 {
        return None;
    }
    let slot = masked[0];
    let mut cw = [0u8; 255];
    for (i, v) in [copy, slot].into_iter().enumerate() {
        if v == 0 || (i == 1 && v == copy) {
            continue;
        }
        for (c, &m) in cw.iter_mut().zip(masked) {
            *c = m ^ v;
        }
        if let Ok(fixed) = code.decode(&mut cw[..n]) {
            if cw[0] == 0 {
                out.extend_from_slice(&cw[1..n - code.nsym()]);
                return Some(fixed + usize::from(v != copy));
            }
        }
    }
    None
}

/// What a delimited chunk turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// No coded frame starts here (a plain COBS frame, or a header beyond repair).
    NotCoded,
    /// A coded frame whose header says it is `expected` wire bytes long, cut
    /// short (by a noise-made 0x00, or lost bytes).
    Short {
        /// Wire bytes the whole frame has.
        expected: usize,
    },
    /// A coded frame with at least one block beyond repair.
    Failed {
        /// Byte errors at least (corrected ones, plus t+1 per failed block).
        errors: usize,
        /// Its wire length.
        wire: usize,
    },
    /// The raw frame is in the output buffer (not yet checked by CRC/AEAD).
    Frame {
        /// The level it was sent at.
        level: u8,
        /// The level its sender wants our frames at.
        want: u8,
        /// Bytes corrected.
        corrected: usize,
        /// Wire bytes it took (the chunk may go on: a damaged delimiter).
        wire: usize,
    },
}

/// Decodes the coded frame at the start of `wire` (one delimited chunk, no
/// 0x00) into `out` (cleared first).
pub fn decode(wire: &[u8], out: &mut Vec<u8>) -> Decoded {
    out.clear();
    if wire.len() < HEADER_WIRE {
        return Decoded::NotCoded;
    }
    let codes = codes();
    let mut h = Vec::with_capacity(HEADER_DATA);
    let Some(mut corrected) = decode_block(&codes[0], &wire[..HEADER_WIRE], &mut h) else {
        return Decoded::NotCoded;
    };
    let level = h[0] & 0x0F;
    let want = h[1];
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if h[0] & 0xF0 != MAGIC || !(1..=MAX_LEVEL).contains(&level) || want > MAX_LEVEL || len == 0 {
        return Decoded::NotCoded;
    }
    let expected = wire_len(level, len);
    if wire.len() < expected {
        return Decoded::Short { expected };
    }
    let code = &codes[level as usize];
    let b = blocks(level, len);
    let (base, extra) = (len / b, len % b);
    let mut at = HEADER_WIRE;
    let mut failed = 0;
    for i in 0..b {
        let w = 2 + base + usize::from(i < extra) + code.nsym();
        match decode_block(code, &wire[at..at + w], out) {
            Some(c) => corrected += c,
            None => failed += 1,
        }
        at += w;
    }
    if failed > 0 {
        out.clear();
        return Decoded::Failed {
            errors: corrected + failed * (code.t() + 1),
            wire: expected,
        };
    }
    Decoded::Frame {
        level,
        want,
        corrected,
        wire: expected,
    }
}

/// A coded frame cut by noise-made 0x00 bytes, kept until the pieces that
/// follow make up its length. The cut byte is unknown: a placeholder takes its
/// place and the code corrects it like any other byte error.
#[derive(Debug, Default)]
pub struct Rejoin {
    piece: Vec<u8>,
    expected: usize,
}

impl Rejoin {
    /// A piece of `expected` wire bytes was cut short: keep it.
    pub fn start(&mut self, piece: &[u8], expected: usize) {
        self.piece.clear();
        self.piece.extend_from_slice(piece);
        self.expected = expected;
    }

    /// Forget any kept piece (a frame arrived whole in between).
    pub fn clear(&mut self) {
        self.piece.clear();
        self.expected = 0;
    }

    /// A piece that does not start a frame of its own arrived: the kept piece,
    /// a placeholder and it, once they make up the expected length (`None`:
    /// nothing kept, or still short and kept).
    pub fn join(&mut self, next: &[u8]) -> Option<Vec<u8>> {
        if self.expected == 0 {
            return None;
        }
        self.piece.push(0x55);
        self.piece.extend_from_slice(next);
        if self.piece.len() < self.expected {
            return None;
        }
        self.expected = 0;
        Some(std::mem::take(&mut self.piece))
    }
}

/// Per-block failure chance the receiver aims at when it picks a level.
const TARGET_BLOCK_FAILURE: f64 = 1e-3;
/// Wire bytes over which old observations lose half their weight.
const HALF_LIFE_BYTES: f64 = 32.0 * 1024.0;
/// Clean bytes assumed before anything is seen (they age like the rest): a
/// fresh link reacts within a few KB, yet one stray error asks for the weakest
/// code only, and only until some 60 KB of clean bytes dilute it.
const PRIOR_BYTES: f64 = 16.0 * 1024.0;
/// Expected byte errors per 255 wire bytes below which no code is asked for,
/// and above which one is (hysteresis): a plain 2 KB frame is then lost less
/// often than the weakest code's 2.3 % would cost.
const LAMBDA_OFF: f64 = 2e-3;
const LAMBDA_ON: f64 = 5e-3;

/// The receiver's estimate of the byte error rate of what arrives, and the
/// level it asks the peer for (carried in `want` of every coded frame it sends).
#[derive(Debug, Clone)]
pub struct ErrorEstimate {
    errors: f64,
    bytes: f64,
    want: u8,
}

impl Default for ErrorEstimate {
    fn default() -> Self {
        ErrorEstimate {
            errors: 0.0,
            bytes: PRIOR_BYTES,
            want: 0,
        }
    }
}

/// P(X > t) for X ~ Poisson(λ).
fn poisson_tail(lambda: f64, t: usize) -> f64 {
    let mut term = (-lambda).exp();
    let mut cdf = term;
    for k in 1..=t {
        term *= lambda / k as f64;
        cdf += term;
    }
    (1.0 - cdf).max(0.0)
}

impl ErrorEstimate {
    /// `bytes` wire bytes arrived with (at least) `errors` byte errors.
    pub fn record(&mut self, bytes: usize, errors: usize) {
        let decay = 0.5f64.powf(bytes as f64 / HALF_LIFE_BYTES);
        self.errors = self.errors * decay + errors as f64;
        self.bytes = self.bytes * decay + bytes as f64;
        self.want = self.pick();
    }

    /// Estimated byte error probability.
    pub fn byte_error_rate(&self) -> f64 {
        self.errors / self.bytes.max(1.0)
    }

    /// The level to ask the peer for.
    pub fn want(&self) -> u8 {
        self.want
    }

    fn pick(&self) -> u8 {
        let lambda = self.byte_error_rate() * 255.0;
        if lambda < LAMBDA_OFF || (self.want == 0 && lambda < LAMBDA_ON) {
            return 0;
        }
        (1..=MAX_LEVEL)
            .find(|&l| poisson_tail(lambda, nsym(l) / 2) <= TARGET_BLOCK_FAILURE)
            .unwrap_or(MAX_LEVEL)
    }
}

#[cfg(test)]
#[path = "fec_tests.rs"]
mod tests;
