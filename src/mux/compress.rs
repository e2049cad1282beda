//! Per-channel compression of DATA (the DATA_LZ4 and DATA_DEFLATE records).
//!
//! Each record is compressed on its own, complete when sent, with the
//! channel's history (the last [`HISTORY`] bytes of its data in that
//! direction) as a prefix dictionary: compression with memory across records
//! without a streaming codec state. That choice is what makes the rest simple
//! and safe:
//! - the sender decides per record between plain DATA and a compressed record
//!   (random or encrypted data goes out raw at no cost), because plain DATA
//!   bytes enter the history on both sides exactly like decompressed ones;
//! - nothing waits for a compression block: a record is complete when sent,
//!   so a keystroke is never held back;
//! - the link delivers payloads exactly once and in order, so both histories
//!   hold the same bytes at every record; a session restart resets every
//!   channel and drops both histories with them;
//! - the codec state is per multiplexer, not per channel (one compressor,
//!   one decompressor, reused): a channel costs only its two histories.
//!
//! Two codecs ([`Codec`]): DATA_DEFLATE (raw deflate, miniz_oxide, pure Rust)
//! where both ends offer it, else DATA_LZ4 (lz4_flex) towards a peer built
//! before it. Deflate encodes a record by feeding the history to a reset
//! compressor (output discarded, ended by a sync flush) and then the record
//! as the rest of a finished raw deflate stream; the decoder starts with the
//! history in its output buffer. Its strength ([`Strength`]) is the sender's
//! own choice (the wire format does not change): strong on slow lines, light
//! on fast ones. Why deflate: docs/mux-protocol.md §8 (measured with
//! tools/compress-compare).
//!
//! The history of a channel direction starts with its first compressed
//! record (both sides begin recording there), so channels that never
//! compress (ssh, TLS) cost no memory for it.

use miniz_oxide::deflate::core::{
    create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::core::{inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// Bytes of channel data (per direction) kept as the history: deflate's
/// window (its distances reach 32 KiB back). A receiver keeps this much; a
/// sender may use less of it as its dictionary ([`Strength::dict`]).
pub const HISTORY: usize = 32 * 1024;

/// The LZ4 dictionary: the last 16 KiB of the history. Part of the wire
/// protocol (DATA_LZ4's block may reference that far back, no further).
pub const LZ4_DICT: usize = 16 * 1024;

/// Allocation of a [`History`]: the dictionary plus room to append before
/// shifting (a quarter: each byte is moved at most four times).
pub const HISTORY_CAP: usize = HISTORY + HISTORY / 4;

/// A compression algorithm both ends can agree on. Ordered by preference:
/// an end that offers [`Codec::Deflate`] also takes [`Codec::Lz4`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// LZ4 blocks with the channel's last [`LZ4_DICT`] bytes as dictionary (DATA_LZ4).
    Lz4,
    /// Raw deflate streams with the channel's history as preset window
    /// (DATA_DEFLATE).
    Deflate,
}

impl Codec {
    /// The best codec a link session's features (what both ends offered)
    /// allow: deflate, else LZ4 (a peer built before deflate), else none.
    pub fn best_in(features: crate::link::Features) -> Option<Codec> {
        use crate::link::Features;
        if features.contains(Features::COMPRESS_DEFLATE) {
            Some(Codec::Deflate)
        } else if features.contains(Features::COMPRESS_LZ4) {
            Some(Codec::Lz4)
        } else {
            None
        }
    }

    /// Its record type (`wire::code`).
    pub fn record_code(self) -> u8 {
        match self {
            Codec::Lz4 => super::wire::code::DATA_LZ4,
            Codec::Deflate => super::wire::code::DATA_DEFLATE,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Lz4 => f.write_str("lz4"),
            Codec::Deflate => f.write_str("deflate"),
        }
    }
}

/// How hard the sender compresses with deflate: the sender's choice alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strength {
    /// miniz/zlib level, 1 (fast, greedy) ..= 9.
    pub level: u8,
    /// Bytes of history used as the dictionary (at most [`HISTORY`]): each
    /// record costs compressing this much again, so fast lines use less.
    pub dict: usize,
}

impl Strength {
    /// From the line rate (bytes/s): level 6 with the whole 32 KiB history up
    /// to 60 kB/s (576000 baud), where even 400 ns per byte is a few percent
    /// of a core at the several-fold line rate text moves at; level 1 with
    /// 8 KiB above (about 25 ns per byte, ratio within 1 % of 32 KiB).
    /// Figures: docs/mux-protocol.md §8.
    pub fn for_byte_rate(byte_rate: u32) -> Strength {
        if byte_rate <= 60_000 {
            Strength {
                level: 6,
                dict: HISTORY,
            }
        } else {
            Strength {
                level: 1,
                dict: 8 * 1024,
            }
        }
    }
}

/// The last [`HISTORY`] bytes of one direction of a channel.
#[derive(Debug, Default)]
pub struct History {
    /// At most [`HISTORY_CAP`] bytes; the dictionary is its tail. Shifting
    /// only when full keeps appends amortised O(1).
    buf: Vec<u8>,
}

impl History {
    /// Record bytes that went through the channel (raw or decompressed).
    pub fn push(&mut self, data: &[u8]) {
        // Allocated once at its full size: growing from an exact fit would
        // double the capacity past HISTORY_CAP.
        if self.buf.capacity() < HISTORY_CAP {
            self.buf.reserve_exact(HISTORY_CAP - self.buf.len());
        }
        if data.len() >= HISTORY {
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - HISTORY..]);
            return;
        }
        if self.buf.len() + data.len() > HISTORY_CAP {
            let keep = HISTORY - data.len();
            let from = self.buf.len() - keep;
            self.buf.drain(..from);
        }
        self.buf.extend_from_slice(data);
    }

    /// Record the concatenation of two slices (a ring buffer's halves).
    pub fn push2(&mut self, a: &[u8], b: &[u8]) {
        self.push(a);
        self.push(b);
    }

    /// The last `n` bytes (fewer while the history is shorter).
    pub fn tail(&self, n: usize) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(n.min(HISTORY))..]
    }

    /// The dictionary of the next `codec` record a receiver decodes (the
    /// longest the sender may have used).
    pub fn dict(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Lz4 => self.tail(LZ4_DICT),
            Codec::Deflate => self.tail(HISTORY),
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

/// Why a compressed record was refused (a channel violation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// It decoded to fewer bytes than announced.
    Short,
    /// It would decode to more bytes than announced (a decompression bomb
    /// stops here: the output buffer is exactly the announced size).
    Long,
    /// Not a valid block or stream, or it referenced beyond the history.
    Undecodable,
}

impl DecodeError {
    /// The words of the RESET reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::Short => "compressed data shorter than announced",
            DecodeError::Long => "compressed data longer than announced",
            DecodeError::Undecodable => "undecodable compressed data",
        }
    }
}

/// Heap of a miniz_oxide deflate compressor: the struct (with its 64 KiB
/// code buffer) plus its boxed window (32 KiB + 258), hash chains (2 × 2 ×
/// 32 KiB) and Huffman tables (under 8 KiB). miniz_oxide 0.9's layout.
const DEFLATER_HEAP: usize =
    std::mem::size_of::<CompressorOxide>() + 32 * 1024 + 258 + 4 * 32 * 1024 + 8 * 1024;

/// Largest decode buffer kept between records (history + a 40 KiB record).
const WINDOW_KEPT: usize = HISTORY + 40 * 1024;

/// Most heap an [`Engine`] holds between records, whatever the peer sends:
/// about 390 KiB, once per multiplexer (not per channel).
pub const ENGINE_BOUND: usize = DEFLATER_HEAP
    + std::mem::size_of::<DecompressorOxide>()
    + (HISTORY + HISTORY / 8 + 64)
    + WINDOW_KEPT;

/// The codec state of one multiplexer, shared by all its channels (a
/// record is compressed or decompressed whole before the next): a deflate
/// compressor (~300 KB, allocated at the first deflate record sent) and
/// decompressor (~11 KB plus an output buffer of history + record),
/// reused.
#[derive(Default)]
pub struct Engine {
    deflater: Option<(u8, Box<CompressorOxide>)>,
    /// Output of the history feed, discarded.
    scratch: Vec<u8>,
    inflater: Option<Box<DecompressorOxide>>,
    /// History then the record being decoded.
    window: Vec<u8>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("deflater", &self.deflater.as_ref().map(|d| d.0))
            .field("inflater", &self.inflater.is_some())
            .finish()
    }
}

impl Engine {
    /// Compress `input` as one `codec` record whose dictionary is `hist`'s
    /// tail (for deflate: [`Strength::dict`] bytes of it) into `out`
    /// (cleared first); returns the block's length, `None` if the encoder
    /// failed (its sizing rules exclude it; the caller then sends raw).
    pub fn compress(
        &mut self,
        codec: Codec,
        strength: Strength,
        input: &[u8],
        hist: Option<&History>,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        out.clear();
        match codec {
            Codec::Lz4 => {
                let dict = hist.map_or(&[][..], |h| h.tail(LZ4_DICT));
                out.resize(lz4_flex::block::get_maximum_output_size(input.len()), 0);
                let n = lz4_flex::block::compress_into_with_dict(input, out, dict).ok()?;
                out.truncate(n);
                Some(n)
            }
            Codec::Deflate => {
                let dict = hist.map_or(&[][..], |h| h.tail(strength.dict));
                let level = strength.level.clamp(1, 9);
                let d = match &mut self.deflater {
                    Some((l, d)) if *l == level => d,
                    slot => {
                        let flags = create_comp_flags_from_zip_params(level.into(), -15, 0);
                        &mut slot
                            .insert((level, Box::new(CompressorOxide::new(flags))))
                            .1
                    }
                };
                d.reset();
                if !dict.is_empty() {
                    // The history enters the compressor's window; its output
                    // (the receiver has those bytes) is thrown away, and the
                    // sync flush leaves the record's blocks byte-aligned.
                    let need = dict.len() + dict.len() / 8 + 64;
                    self.scratch
                        .reserve_exact(need.saturating_sub(self.scratch.len()));
                    self.scratch.resize(need, 0);
                    let (st, used, _) = miniz_oxide::deflate::core::compress(
                        d,
                        dict,
                        &mut self.scratch,
                        TDEFLFlush::Sync,
                    );
                    if st != TDEFLStatus::Okay || used != dict.len() {
                        return None;
                    }
                }
                // Stored blocks bound deflate's growth (5 bytes per 64 KiB).
                out.resize(input.len() + input.len() / 8 + 64, 0);
                let (st, used, n) =
                    miniz_oxide::deflate::core::compress(d, input, out, TDEFLFlush::Finish);
                if st != TDEFLStatus::Done || used != input.len() {
                    return None;
                }
                out.truncate(n);
                Some(n)
            }
        }
    }

    /// Decompress one `codec` record: `input` must expand to exactly
    /// `out.len()` bytes (the length the record announced, already checked
    /// against the window, so a hostile record cannot expand beyond it) with
    /// `hist` (or nothing) before it.
    pub fn decompress(
        &mut self,
        codec: Codec,
        input: &[u8],
        hist: Option<&History>,
        out: &mut [u8],
    ) -> Result<(), DecodeError> {
        let dict = hist.map_or(&[][..], |h| h.dict(codec));
        match codec {
            Codec::Lz4 => match lz4_flex::block::decompress_into_with_dict(input, out, dict) {
                Ok(n) if n == out.len() => Ok(()),
                Ok(_) => Err(DecodeError::Short),
                Err(_) => Err(DecodeError::Undecodable),
            },
            Codec::Deflate => {
                let d = self.inflater.get_or_insert_with(Box::default);
                d.init();
                self.window.clear();
                self.window.reserve_exact(dict.len() + out.len());
                self.window.extend_from_slice(dict);
                self.window.resize(dict.len() + out.len(), 0);
                let (st, used, made) = miniz_oxide::inflate::core::decompress(
                    d,
                    input,
                    &mut self.window,
                    dict.len(),
                    inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
                );
                let result = match st {
                    TINFLStatus::Done if made == out.len() && used == input.len() => {
                        out.copy_from_slice(&self.window[dict.len()..]);
                        Ok(())
                    }
                    // Trailing bytes after the final block are not ours to skip.
                    TINFLStatus::Done if made == out.len() => Err(DecodeError::Undecodable),
                    TINFLStatus::Done | TINFLStatus::NeedsMoreInput => Err(DecodeError::Short),
                    TINFLStatus::HasMoreOutput => Err(DecodeError::Long),
                    _ => Err(DecodeError::Undecodable),
                };
                // A large record's buffer is not kept between records.
                if self.window.capacity() > WINDOW_KEPT {
                    self.window = Vec::new();
                }
                result
            }
        }
    }

    /// Heap bytes held (independent of the number of channels; at most
    /// [`ENGINE_BOUND`] between records).
    pub fn heap_bytes(&self) -> usize {
        self.deflater.as_ref().map_or(0, |_| DEFLATER_HEAP)
            + self
                .inflater
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<DecompressorOxide>())
            + self.scratch.capacity()
            + self.window.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_bytes() {
        let mut h = History::default();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut fed = 0;
        for (i, chunk) in data.chunks(997).enumerate() {
            if i % 3 == 0 {
                let (a, b) = chunk.split_at(chunk.len() / 2);
                h.push2(a, b);
            } else {
                h.push(chunk);
            }
            fed += chunk.len();
            let want = &data[fed.saturating_sub(HISTORY)..fed];
            assert_eq!(h.dict(Codec::Deflate), want);
            assert_eq!(
                h.dict(Codec::Lz4),
                &want[want.len().saturating_sub(LZ4_DICT)..]
            );
            assert!(h.heap_bytes() <= HISTORY_CAP);
        }
        h.push(&data[..HISTORY + 5]);
        assert_eq!(h.dict(Codec::Deflate), &data[5..HISTORY + 5]);
        // A history that starts with a record longer than the dictionary
        // (possible with windows above 16 KiB) stays within its allocation.
        let mut h = History::default();
        h.push(&data[..HISTORY + 5]);
        for chunk in data[..HISTORY].chunks(1000) {
            h.push(chunk);
            assert!(h.heap_bytes() <= HISTORY_CAP, "{}", h.heap_bytes());
        }
        assert_eq!(h.dict(Codec::Deflate), &data[..HISTORY]);
    }

    /// A channel's first record may be larger than the history (a window
    /// above 16 KiB): the buffer still never holds more than [`HISTORY_CAP`]
    /// (the documented memory bound counts 2 × `HISTORY_CAP` per channel).
    #[test]
    fn history_stays_within_its_cap_after_a_large_first_record() {
        let mut h = History::default();
        h.push(&vec![7u8; HISTORY + 100]);
        for _ in 0..100 {
            h.push(&[1u8; 100]);
            assert!(h.heap_bytes() <= HISTORY_CAP, "{}", h.heap_bytes());
        }
        assert_eq!(h.dict(Codec::Deflate).len(), HISTORY);
    }

    fn log_text(lines: usize) -> Vec<u8> {
        (0..lines)
            .flat_map(|i| {
                format!(
                    "2026-12-01T02:{:02}:{:02}Z INFO request GET /item/{} 200 {} bytes\n",
                    i / 60 % 60,
                    i % 60,
                    i * 7 % 1000,
                    1000 + i * 13 % 5000
                )
                .into_bytes()
            })
            .collect()
    }

    const STRENGTHS: [Strength; 3] = [
        Strength {
            level: 6,
            dict: HISTORY,
        },
        Strength {
            level: 1,
            dict: 8 * 1024,
        },
        Strength {
            level: 9,
            dict: 100,
        },
    ];

    #[test]
    fn round_trip_with_history_and_exact_length() {
        let text = log_text(2000);
        let mut e = Engine::default();
        let mut d = Engine::default();
        for codec in [Codec::Lz4, Codec::Deflate] {
            for strength in STRENGTHS {
                let mut hist = History::default();
                hist.push(&text[..40_000]);
                let rec = &text[40_000..42_000];
                let mut out = Vec::new();
                let n = e
                    .compress(codec, strength, rec, Some(&hist), &mut out)
                    .unwrap();
                assert!(n < rec.len() / 3, "{codec} {strength:?}: {n}");
                let mut back = vec![0; rec.len()];
                d.decompress(codec, &out, Some(&hist), &mut back).unwrap();
                assert_eq!(&back[..], rec);
                // Announced length too long or too short.
                let mut long = vec![0; rec.len() + 1];
                assert_eq!(
                    d.decompress(codec, &out, Some(&hist), &mut long)
                        .unwrap_err(),
                    DecodeError::Short
                );
                let mut short = vec![0; rec.len() - 1];
                assert!(d.decompress(codec, &out, Some(&hist), &mut short).is_err());
                // Without the history it does not decode to the same bytes.
                let mut other = vec![0; rec.len()];
                let r = d.decompress(codec, &out, None, &mut other);
                assert!(r.is_err() || other != rec, "{codec}");
            }
        }
    }

    /// The deflate decoder cannot be made to produce more than announced (a
    /// decompression bomb): a few bytes that expand to 60 KiB of zeros are
    /// refused against a small announced length.
    #[test]
    fn deflate_bomb_is_refused() {
        let zeros = vec![0u8; 60_000];
        let mut e = Engine::default();
        let mut out = Vec::new();
        let n = e
            .compress(Codec::Deflate, STRENGTHS[0], &zeros, None, &mut out)
            .unwrap();
        assert!(n < 200, "{n}");
        let mut small = vec![0; 1000];
        assert_eq!(
            e.decompress(Codec::Deflate, &out, None, &mut small)
                .unwrap_err(),
            DecodeError::Long
        );
        let mut exact = vec![1; 60_000];
        e.decompress(Codec::Deflate, &out, None, &mut exact)
            .unwrap();
        assert_eq!(exact, zeros);
        assert!(e.heap_bytes() <= ENGINE_BOUND, "{}", e.heap_bytes());
    }

    /// Records alternate with plain data that only enters the history:
    /// deflate with memory keeps finding matches across records, and its
    /// ratio on log lines beats LZ4's (the reason it exists).
    #[test]
    fn deflate_with_history_beats_lz4_on_logs() {
        let text = log_text(6000);
        let mut e = Engine::default();
        let mut wire = [0usize; 2];
        for (k, codec) in [Codec::Lz4, Codec::Deflate].into_iter().enumerate() {
            let mut hist: Option<History> = None;
            let mut out = Vec::new();
            for (i, rec) in text.chunks(1900).enumerate() {
                if i % 5 == 4 {
                    // Sent raw: both histories take it all the same.
                    hist.get_or_insert_with(History::default).push(rec);
                    continue;
                }
                let n = e
                    .compress(codec, STRENGTHS[0], rec, hist.as_ref(), &mut out)
                    .unwrap();
                let mut back = vec![0; rec.len()];
                e.decompress(codec, &out, hist.as_ref(), &mut back).unwrap();
                assert_eq!(back, rec);
                wire[k] += n;
                hist.get_or_insert_with(History::default).push(rec);
            }
        }
        assert!(
            wire[1] * 5 < wire[0] * 4,
            "deflate {} lz4 {}",
            wire[1],
            wire[0]
        );
    }

    #[test]
    fn the_best_common_codec_wins() {
        use crate::link::Features;
        let (lz4, deflate) = (Features::COMPRESS_LZ4, Features::COMPRESS_DEFLATE);
        assert_eq!(Codec::best_in(lz4.union(deflate)), Some(Codec::Deflate));
        // A peer built before deflate.
        assert_eq!(
            Codec::best_in(lz4.union(Features::RESUME)),
            Some(Codec::Lz4)
        );
        assert_eq!(Codec::best_in(Features::RESUME), None);
    }

    #[test]
    fn strength_follows_the_line_rate() {
        assert_eq!(Strength::for_byte_rate(11_520).level, 6);
        assert_eq!(Strength::for_byte_rate(300_000).level, 1);
        assert!(Strength::for_byte_rate(300_000).dict < HISTORY);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 12345u64;
        let mut out = vec![0; 3000];
        let mut hist = History::default();
        hist.push(b"some dictionary bytes");
        let mut e = Engine::default();
        for len in 0..400 {
            let g: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for codec in [Codec::Lz4, Codec::Deflate] {
                let _ = e.decompress(codec, &g, Some(&hist), &mut out);
            }
        }
    }
}
