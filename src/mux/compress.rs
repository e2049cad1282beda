//! Per-channel streaming compression of DATA (the DATA_LZ4 record).
//!
//! Each record is compressed on its own, flushed, as an LZ4 block whose
//! dictionary is the last [`HISTORY`] bytes of the channel's data in that
//! direction: a "stream" without a streaming codec state. That choice is
//! what makes the rest simple and safe:
//! - the sender decides per record between plain DATA and DATA_LZ4 (random
//!   or encrypted data goes out raw at no cost), because plain DATA bytes
//!   enter the history on both sides exactly like decompressed ones;
//! - nothing waits for a compression block: a record is complete when sent,
//!   so a keystroke is never held back;
//! - the link delivers payloads exactly once and in order, so both histories
//!   hold the same bytes at every record; a session restart resets every
//!   channel and drops both histories with them.
//!
//! The history of a channel direction starts with its first DATA_LZ4 record
//! (both sides begin recording there), so channels that never compress
//! (ssh, TLS) cost no memory for it.
//!
//! Why LZ4 (lz4_flex, pure Rust) and not zstd: see docs/mux-protocol.md §8;
//! in short, zstd compresses logs and HTML ~1.5× better, but LZ4 already
//! clears the 3× target on them, needs no C toolchain for the Windows
//! (MinGW) cross build, and its block format with an external dictionary
//! gives the per-record raw/compressed choice for free, where zstd's
//! streaming state would have to see the raw records too.

/// Bytes of channel data (per direction) that serve as the dictionary of
/// the next compressed record. Part of the wire protocol: both sides must
/// use the same value.
pub const HISTORY: usize = 16 * 1024;

/// Allocation of a [`History`]: the dictionary plus room to append before
/// shifting (a quarter: each byte is moved at most four times).
pub const HISTORY_CAP: usize = HISTORY + HISTORY / 4;

/// A compression algorithm both ends can agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// LZ4 blocks with the channel's history as dictionary (DATA_LZ4).
    Lz4,
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::Lz4 => f.write_str("lz4"),
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

    /// The dictionary for the next record.
    pub fn dict(&self) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(HISTORY)..]
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

/// Compress `input` with `dict` into `out` (cleared first); returns the
/// compressed length (`None` only if the encoder failed, which its sizing
/// rule excludes).
pub fn compress(input: &[u8], dict: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    out.resize(lz4_flex::block::get_maximum_output_size(input.len()), 0);
    let n = lz4_flex::block::compress_into_with_dict(input, out, dict).ok()?;
    out.truncate(n);
    Some(n)
}

/// Decompress one record: `input` must expand to exactly `out.len()` bytes
/// (the length the record announced, already checked against the window,
/// so a hostile record cannot expand beyond it).
pub fn decompress(input: &[u8], dict: &[u8], out: &mut [u8]) -> Result<(), &'static str> {
    match lz4_flex::block::decompress_into_with_dict(input, out, dict) {
        Ok(n) if n == out.len() => Ok(()),
        Ok(_) => Err("compressed data shorter than announced"),
        Err(_) => Err("undecodable compressed data"),
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
            assert_eq!(h.dict(), want);
            assert!(h.heap_bytes() <= HISTORY_CAP);
        }
        h.push(&data[..HISTORY + 5]);
        assert_eq!(h.dict(), &data[5..HISTORY + 5]);
        // A history that starts with a record longer than the dictionary
        // (possible with windows above 16 KiB) stays within its allocation.
        let mut h = History::default();
        h.push(&data[..HISTORY + 5]);
        for chunk in data[..HISTORY].chunks(1000) {
            h.push(chunk);
            assert!(h.heap_bytes() <= HISTORY_CAP, "{}", h.heap_bytes());
        }
        assert_eq!(h.dict(), &data[..HISTORY]);
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
        assert_eq!(h.dict().len(), HISTORY);
    }

    #[test]
    fn round_trip_with_dictionary_and_limit() {
        let text = b"2026-12-01T02:00:00Z INFO request GET /index.html 200 1432 bytes\n".repeat(40);
        let mut out = Vec::new();
        let dict = &text[..1000];
        let n = compress(&text[1000..2000], dict, &mut out).unwrap();
        assert!(n < 100, "{n}");
        let mut back = vec![0; 1000];
        decompress(&out, dict, &mut back).unwrap();
        assert_eq!(&back[..], &text[1000..2000]);
        // Announced length too long or too short.
        let n = compress(&text[1000..2000], dict, &mut out).unwrap();
        let mut long = vec![0; 1001];
        assert!(decompress(&out[..n], dict, &mut long).is_err());
        let mut short = vec![0; 999];
        assert!(decompress(&out[..n], dict, &mut short).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 12345u64;
        let mut out = vec![0; 3000];
        for len in 0..400 {
            let g: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decompress(&g, b"some dictionary bytes", &mut out);
        }
    }
}
