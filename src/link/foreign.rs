//! Recognising a far end that is not an sfs peer — a modem, a shell, a
//! terminal echoing our frames, another protocol, or nothing but noise — from
//! the line bytes heard while no session is agreed, so the user is told once
//! what is on the other end instead of watching probes go unanswered.

use std::time::{Duration, Instant};

use super::{cobs, crypto, handshake, Mismatch};

/// Line bytes kept to recognise a foreign peer's text.
const TAIL_LEN: usize = 80;
/// How long bytes heard before any delimiter wait to be judged as text: they
/// may be the middle of an sfs frame (we started mid-frame), whose delimiter
/// comes within a frame time.
const TAIL_SETTLE: Duration = Duration::from_secs(1);
/// Fewest bytes without a valid frame that count as a far end speaking
/// something else (rather than a little noise).
const NO_FRAMES_BYTES: u64 = 64;

/// Where the kept line bytes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TailStart {
    /// Nothing heard yet.
    Unheard,
    /// At the first byte ever heard, at this time, with no delimiter since.
    FirstByte(Instant),
    /// Right after a delimiter.
    Delimiter,
}

/// What the line has said lately, as evidence about the far end.
#[derive(Debug)]
pub(super) struct ForeignPeer {
    /// The first line bytes after the last delimiter (≤ [`TAIL_LEN`]): the
    /// start of an sfs frame holds its control bytes, while a modem's or a
    /// shell's line is text.
    tail: Vec<u8>,
    /// The latest line bytes (≤ [`TAIL_LEN`]), wherever frames start: a
    /// cooked terminal's echo has no delimiter at all.
    recent: Vec<u8>,
    /// Where `tail` starts: after a delimiter (at a frame's start, if sfs), or
    /// at the first byte we ever heard (when that was, since it may be the
    /// middle of a frame: judged only once a frame's time has surely passed).
    tail_start: TailStart,
    /// Start of the current stretch of bytes without a valid frame.
    garbage_since: Option<Instant>,
    garbage_bytes: u64,
    last_byte: Option<Instant>,
    /// When an intact sfs frame (of any kind, keyed or not) last arrived: text
    /// seen within `mismatch_after` of one is a frame in progress whose random
    /// bytes happen to look like a line (keyed frames have printable kind
    /// bytes), not a modem.
    heard_sfs_at: Option<Instant>,
    /// A mismatch was reported since the last session was agreed.
    reported: bool,
}

impl ForeignPeer {
    pub(super) fn new() -> Self {
        ForeignPeer {
            tail: Vec::with_capacity(TAIL_LEN),
            recent: Vec::with_capacity(TAIL_LEN),
            tail_start: TailStart::Unheard,
            garbage_since: None,
            garbage_bytes: 0,
            last_byte: None,
            heard_sfs_at: None,
            reported: false,
        }
    }

    /// Line bytes arrived (before they are decoded).
    pub(super) fn heard(&mut self, now: Instant, bytes: &[u8]) {
        let gap = self
            .last_byte
            .is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(1));
        if self.garbage_since.is_none() || gap {
            self.garbage_since = Some(now);
            self.garbage_bytes = 0;
        }
        self.last_byte = Some(now);
        self.garbage_bytes += bytes.len() as u64;
        self.keep_tail(now, bytes);
    }

    /// Keeps the first line bytes after the last delimiter, at most
    /// [`TAIL_LEN`]: the start of an sfs frame holds its control bytes, while its
    /// payload may well be text (a log file in transit, seen during a restart).
    fn keep_tail(&mut self, now: Instant, bytes: &[u8]) {
        let after = match bytes.iter().rposition(|&b| b == 0) {
            Some(i) => {
                self.tail.clear();
                self.tail_start = TailStart::Delimiter;
                &bytes[i + 1..]
            }
            None => bytes,
        };
        if self.tail_start == TailStart::Unheard {
            self.tail_start = TailStart::FirstByte(now);
        }
        let room = TAIL_LEN.saturating_sub(self.tail.len());
        self.tail.extend_from_slice(&after[..after.len().min(room)]);
        let latest = &bytes[bytes.len().saturating_sub(TAIL_LEN)..];
        let excess = (self.recent.len() + latest.len()).saturating_sub(TAIL_LEN);
        self.recent.drain(..excess);
        self.recent.extend_from_slice(latest);
    }

    /// An intact sfs frame arrived (a handshake counts): the far end speaks sfs.
    pub(super) fn heard_sfs(&mut self, now: Instant) {
        self.heard_sfs_at = Some(now);
        self.garbage_since = None;
        self.garbage_bytes = 0;
    }

    /// A frame was decoded: its bytes are not a foreign line.
    pub(super) fn frame_decoded(&mut self) {
        self.tail.clear();
    }

    /// A session was agreed: a later mismatch is news again.
    pub(super) fn session_agreed(&mut self) {
        self.reported = false;
    }

    /// `m`, unless a mismatch was already reported since the last session.
    pub(super) fn report(&mut self, m: Mismatch) -> Option<Mismatch> {
        (!std::mem::replace(&mut self.reported, true)).then_some(m)
    }

    /// After the bytes of [`heard`](Self::heard) were decoded, with no session
    /// agreed: what the far end is, if the evidence says it is not sfs (once).
    pub(super) fn judge(&mut self, now: Instant, mismatch_after: Duration) -> Option<Mismatch> {
        if self.reported {
            return None;
        }
        let heard_sfs_lately = self
            .heard_sfs_at
            .is_some_and(|t| now.saturating_duration_since(t) < mismatch_after);
        // A keyed frame's kind byte (after the COBS code) is printable, and a
        // short piece of one may look like a line: not a modem's, while it is
        // shorter than a whole handshake frame. Longer text is judged as usual.
        let keyed_frame_start = self.tail.len()
            <= cobs::max_encoded_len(handshake::HANDSHAKE1_FRAME)
            && self.tail.get(1).is_some_and(|&k| {
                k == handshake::KIND_HANDSHAKE << 4 | 1
                    || k == handshake::KIND_HANDSHAKE << 4 | 2
                    || k == crypto::KIND_SEALED << 4
            });
        let tail_judgeable = match self.tail_start {
            TailStart::Delimiter => true,
            TailStart::FirstByte(t) => now.saturating_duration_since(t) >= TAIL_SETTLE,
            TailStart::Unheard => false,
        };
        if !heard_sfs_lately && !keyed_frame_start && tail_judgeable {
            if let Some(m) = foreign_text(&self.tail).or_else(|| cooked_echo(&self.recent)) {
                return self.report(m);
            }
        }
        let since = self.garbage_since?;
        let over = now.saturating_duration_since(since);
        if over >= mismatch_after && self.garbage_bytes >= NO_FRAMES_BYTES {
            return self.report(Mismatch::NoFrames {
                bytes: self.garbage_bytes,
                over,
            });
        }
        None
    }
}

/// Recognises, in the line bytes received since the last frame delimiter
/// (`tail`), a far end that is not sfs, and says what it is: a terminal in
/// cooked mode echoing our frames (it shows NUL as `^@`; sfs frames are
/// delimited by NULs), or something that talks text — a modem's `OK`,
/// `RING`, `NO CARRIER`, a shell, a login prompt. `None` while the bytes
/// could still be anything else (binary, or no complete line yet).
pub(super) fn foreign_text(tail: &[u8]) -> Option<Mismatch> {
    if let Some(why) = cooked_echo(tail) {
        return Some(why);
    }
    let texty = |b: &u8| matches!(b, b' '..=b'~' | b'\r' | b'\n' | b'\t');
    if !tail.iter().all(texty) {
        return None;
    }
    let end = tail.iter().rposition(|&b| b == b'\r' || b == b'\n')?;
    let line = tail[..end]
        .split(|&b| b == b'\r' || b == b'\n')
        .map(|l| l.trim_ascii())
        .rfind(|l| l.len() >= 2)?;
    let line = String::from_utf8_lossy(&line[..line.len().min(40)]);
    Some(Mismatch::Text(line.into_owned()))
}

/// A terminal in cooked mode echoing our frames, in any stretch of line bytes:
/// it never sends a NUL (it shows ours as `^@`), so no delimiter ever marks
/// where a frame would start.
pub(super) fn cooked_echo(bytes: &[u8]) -> Option<Mismatch> {
    // Every sfs frame holds a raw control byte (its kind, HELLO's version);
    // a cooked terminal shows them all as ^X — except that our bytes which
    // are its line-editing keys (erase, word erase, kill, literal next) come
    // back as backspaces ("\b \b").
    let no_controls = bytes
        .iter()
        .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\r' | b'\n' | 0x07 | 0x08));
    (no_controls && bytes.windows(2).filter(|w| w == b"^@").count() >= 2)
        .then_some(Mismatch::CookedEcho)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_text_recognises_modems_shells_and_cooked_echo() {
        let t = |b: &[u8]| foreign_text(b).map(|m| m.to_string());
        assert!(t(b"OK\r\n").unwrap().contains("text like 'OK'"));
        assert!(t(b"\r\nNO CARRIER\r\n").unwrap().contains("'NO CARRIER'"));
        assert!(t(b"login: ").is_none(), "no complete line yet");
        assert!(t(b"\r\n").is_none(), "nothing to show");
        assert!(t(b"O\xffK\r\n").is_none(), "binary");
        let long = [b'x'; 70];
        let mut v = long.to_vec();
        v.extend_from_slice(b"\r\n");
        assert!(t(&v).unwrap().contains(&format!("'{}'", "x".repeat(40))));
        // A cooked tty shows our frames' delimiters as ^@.
        let echo = b"^@^L\xe1^C^A\xff^@";
        assert!(t(echo).unwrap().contains("echoes our frames as text"));
        // Our bytes that are its erase/kill keys come back as backspaces.
        assert!(t(b"^@^L\x08 \x08^C^@").unwrap().contains("cooked mode"));
        // Text about ^@ inside an sfs frame (raw kind byte 0x10) is not an echo.
        assert!(t(b"\x41\x10\x00\x01^@^@").is_none());
    }
}
