//! Forward error correction in the link: the level each frame goes out at,
//! coding it on the way out, and coded chunks on the way in (format and
//! estimate in [`fec`]).
//!
//! The receiver chooses: it estimates the byte error rate of what arrives
//! (bytes the code corrected, frames beyond repair, plain frames that failed
//! their CRC) and asks for a level in the `want` field of every coded frame it
//! sends; a plain frame asks for none. Our frames go out at the peer's `want`,
//! and at level 1 at least while we want a code ourselves, so the request can
//! travel. Nothing is coded unless both ends announced [`Features::FEC`], and a
//! clean line asks for nothing, so its frames stay plain COBS.
//!
//! The code never has the last word: a decoded frame goes through the same
//! CRC (or AEAD) check as a plain one, and `want` is taken from a frame only
//! once that check passed — a forged header cannot raise our parity.

use std::time::Instant;

use super::fec::{self, Decoded, ErrorEstimate, Rejoin};
use super::{cobs, Features, Link};

/// The link's FEC state.
#[derive(Debug, Default)]
pub(super) struct Coding {
    /// What arrives, and the level we ask for.
    estimate: ErrorEstimate,
    /// The level the peer asks for (from its last accepted frame).
    peer_want: u8,
    /// A coded frame cut by a noise zero, waiting for its rest.
    rejoin: Rejoin,
    /// Decoded raw frame (reused).
    buf: Vec<u8>,
    /// Our last frame went out coded (a RESUME between coded frames does not
    /// count as plain).
    coding_on: bool,
}

impl Coding {
    /// The session ended: the new peer has asked for nothing yet (the line's
    /// estimate stays: it is the same line).
    pub(super) fn session_reset(&mut self) {
        self.peer_want = 0;
        self.rejoin.clear();
    }
}

impl Link {
    /// The level our next frame goes out at (0: plain COBS).
    pub(super) fn fec_level(&self) -> u8 {
        if !self.features().contains(Features::FEC) {
            return 0;
        }
        let mine = self.coding.estimate.want();
        self.coding.peer_want.max(u8::from(mine > 0))
    }

    /// Whether the next frame goes out coded, so that once started it cannot
    /// be cut for an urgent one (see [`Link::can_preempt`]).
    pub fn codes_frames(&self) -> bool {
        self.fec_level() > 0
    }

    /// Appends the wire form of `raw` to `buf`: coded at the current level, or
    /// COBS. Returns whether it was coded.
    pub(super) fn encode_frame(&mut self, raw: &[u8], buf: &mut Vec<u8>) -> bool {
        let level = self.fec_level();
        // A RESUME continues a frame the receiver holds as COBS pieces: it
        // stays COBS too (only plain frames are ever suspended).
        let resume = raw
            .first()
            .is_some_and(|b| b >> 4 == super::frame::KIND_RESUME);
        if level == 0 || resume || raw.len() > fec::MAX_RAW {
            cobs::encode(raw, buf);
            self.coding.coding_on &= resume;
            return false;
        }
        fec::encode(level, self.coding.estimate.want(), raw, buf);
        self.stats.fec_frames_sent += 1;
        if !std::mem::replace(&mut self.coding.coding_on, true) {
            self.on_coding_started();
        }
        true
    }

    /// A delimited chunk, before COBS: if it is (part of) a coded frame, it is
    /// handled here and true returned.
    pub(super) fn on_coded_chunk(&mut self, now: Instant, wire: &[u8]) -> bool {
        if !self.cfg.features.contains(Features::FEC) {
            return false;
        }
        let mut out = std::mem::take(&mut self.coding.buf);
        let taken = match fec::decode(wire, &mut out) {
            Decoded::NotCoded => match self.coding.rejoin.join(wire) {
                Some(joined) => match fec::decode(&joined, &mut out) {
                    Decoded::Frame {
                        want,
                        corrected,
                        wire: used,
                        ..
                    } if used == joined.len() => {
                        self.stats.fec_frames_rejoined += 1;
                        self.on_decoded(now, &out, want, corrected, used);
                        true
                    }
                    // Not the rest of it after all: perhaps a plain frame.
                    _ => false,
                },
                None => false,
            },
            Decoded::Short { expected } => {
                self.coding.rejoin.start(wire, expected);
                true
            }
            Decoded::Failed { errors, wire: used } => {
                self.coding.rejoin.clear();
                self.stats.fec_frames_failed += 1;
                // Longer than its header says: an inserted byte (or a merged
                // frame) shifted the blocks after it. That is one slip, which
                // no level repairs — not t+1 errors per failed block.
                let errors = if wire.len() > used { 1 } else { errors };
                self.coding.estimate.record(used, errors);
                self.rest_of_chunk(now, &wire[used.min(wire.len())..]);
                true
            }
            Decoded::Frame {
                want,
                corrected,
                wire: used,
                ..
            } => {
                self.coding.rejoin.clear();
                self.on_decoded(now, &out, want, corrected, used);
                self.rest_of_chunk(now, &wire[used..]);
                true
            }
        };
        self.coding.buf = out;
        taken
    }

    /// What followed a coded frame in the same chunk: its delimiter was damaged,
    /// so the next frame ran into it.
    fn rest_of_chunk(&mut self, now: Instant, rest: &[u8]) {
        if rest.is_empty() || self.on_coded_chunk(now, rest) {
            return;
        }
        let mut raw = Vec::new();
        if cobs::decode(rest, &mut raw).is_ok() {
            self.on_plain_raw(now, &raw);
        } else {
            self.stats.malformed += 1;
        }
    }

    /// A coded frame decoded into `raw`: checked like any frame; only then do
    /// its corrections and its `want` count.
    fn on_decoded(&mut self, now: Instant, raw: &[u8], want: u8, corrected: usize, wire: usize) {
        if self.on_raw_at(now, raw, None) {
            self.coding.peer_want = want;
            self.coding.estimate.record(wire, corrected);
            self.stats.fec_frames_received += 1;
            self.stats.fec_bytes_corrected += corrected as u64;
            self.stats.fec_frames_repaired += u64::from(corrected > 0);
        } else {
            // A miscorrection (more errors than the code's reach) or a frame
            // of another session: beyond repair either way.
            self.stats.fec_frames_failed += 1;
            self.coding.estimate.record(wire, corrected.max(1));
        }
    }

    /// A plain (COBS) frame's outcome feeds the estimate; an accepted one
    /// means its sender asks for no code.
    pub(super) fn on_plain_raw(&mut self, now: Instant, raw: &[u8]) {
        let crc_failures = self.stats.crc_failures;
        let accepted = self.on_raw_at(now, raw, None);
        if self.cfg.features.contains(Features::FEC) {
            let failed = usize::from(self.stats.crc_failures != crc_failures);
            self.coding.estimate.record(raw.len() + 2, failed);
            if accepted {
                self.coding.peer_want = 0;
            }
        }
    }

    /// Our frames are coded from now on. The losses that sized plain frames
    /// (the frame-size rule of `session.rs`) do not describe coded ones, which
    /// the level keeps nearly free of losses: the estimate forgets them and
    /// starts again from the current size, weighted as 8 frames, so frames
    /// grow back to the cap within a few dozen coded frames that arrive — and
    /// stay small on a line whose losses no code repairs (bytes dropped or
    /// inserted).
    fn on_coding_started(&mut self) {
        let now = self.cur_max_payload as f64;
        self.errors = super::session::ErrorRate::with_prior(
            now,
            super::FRAME_OVERHEAD,
            8.0,
            now,
            256.0 * 1024.0,
        );
        self.update_payload_size();
    }

    /// The FEC figures for [`stats`](Self::stats).
    pub(super) fn fec_stats(&self, s: &mut super::LinkStats) {
        s.fec_level = self.fec_level();
        s.fec_want = self.coding.estimate.want();
    }
}
