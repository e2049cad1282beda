//! The reliable link layer: a pure state machine (no I/O, no clock), in the style of
//! quinn-proto. Raw line bytes go in through [`Link::handle_input`], encoded frames
//! come out one at a time from [`Link::poll_transmit`], time is always an argument and
//! [`Link::poll_timeout`] says when to call [`Link::handle_timeout`] next.
//!
//! # Wire format (v1) — full spec in `docs/link-protocol.md`
//!
//! Every frame is `COBS(frame ‖ crc32c) 0x00`. The raw frame:
//!
//! ```text
//! byte 0      kind << 4 | flags
//! DATA  (1)   seq:u16 [ack:u16 if A=0x1] [sack if S=0x2] payload (≤ 600 B)
//! ACK   (2)   ack:u16 [sack if S=0x2]                 (also the keepalive)
//! HELLO (3)   version:u8=1 epoch:u32 seen:u32 window:u16   (R=0x1: established)
//! sack        n:u8 (1..=32) bitmap[n], bit i ⇒ seq ack+1+i received
//! crc32c      u32 LE over key ‖ frame; key = sender epoch ‖ receiver epoch (u32 LE)
//!             for DATA/ACK, empty for HELLO
//! ```
//!
//! - Framing: COBS with a 0x00 delimiter (≤ 0.4 % overhead vs ~0.8 % for HDLC byte
//!   stuffing on random data); resynchronises at the next delimiter; the decoder is
//!   bounded by the maximum frame size.
//! - Integrity: CRC-32C, Hamming distance 6 while the covered length stays ≤ 655 B.
//! - Reliability: selective repeat, 16-bit wrapping [`Seq`], window (default 64
//!   frames, ≤ 256) negotiated in HELLO, cumulative + SACK acks piggy-backed on data or
//!   sent within `ack_delay` (4 ms), immediately on a gap; RFC 6298 RTO with a floor
//!   derived from the frame time; fast retransmit when a frame sent later is acked;
//!   back-off capped at 2 s while the line is dead.
//! - Frame size: payload `(h+√(h²+4h/q))/2 − h` for the observed per-byte error
//!   probability `q`, between 64 B and `max_payload` (512 B by default); a keyed
//!   link observes it only through the peer's authenticated acks.
//! - Sessions: random epochs, HELLO handshake, restarts detected, keepalives every
//!   second when idle, `PeerLost` after 60 s of silence, then probing until `Up`.
//! - Keyed links (`LinkConfig::key`, optional): a Noise NNpsk0 handshake (kind 6)
//!   per session, then every frame above travels sealed (kind 7, ChaCha20-Poly1305
//!   with an explicit counter and a replay window) instead of carrying a CRC; its
//!   message 1 carries a wall-clock stamp (passed in, never read) so replayed
//!   handshakes are recognised; see [`crypto`] and [`handshake`].
//! - Features ([`Features`], announced in CAPS, kind 4; a v1 peer drops CAPS as
//!   malformed and so sees plain v1): frames are handed out in pieces
//!   ([`Link::poll_transmit_max`]); a peer that announced RESUME lets a big frame be
//!   suspended for an urgent one ([`Link::preempt`]) and finished by a RESUME frame
//!   (kind 5); LARGE_FRAMES raises the payload cap to 1984 B (CRC-32K).
//!
//! # Layout
//! - [`cobs`]: framing; [`frame`]: header `Repr` parse/emit; [`crc`]: CRC-32C;
//!   [`seq`]: sequence numbers; [`arq`]: send/receive windows; [`rtt`]: RTO
//!   estimator; [`pacer`]: write pacing for drivers; [`session`]: handshake rules and
//!   the frame-size rule.

pub mod arq;
pub mod cobs;
pub mod crc;
pub mod crypto;
pub mod features;
pub mod frame;
pub mod handshake;
#[cfg(test)]
mod keyed_tests;
pub mod pacer;
pub mod rtt;
pub mod seq;
pub mod session;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::ConfigError;
use bytes::Bytes;

use arq::{AckOutcome, RecvOutcome, RecvWindow, SendWindow, MAX_WINDOW};
use frame::{
    Caps, Hello, ParseError, Repr, KIND_RESUME, LARGE_MAX_PAYLOAD, MAX_PAYLOAD, MAX_RAW_FRAME,
    VERSION,
};
use rtt::RttEstimator;
use session::ErrorRate;

pub use features::Features;
pub use pacer::Pacer;
pub use seq::Seq;

/// Smallest adaptive payload.
pub const MIN_PAYLOAD: usize = 64;
/// Payload size used before the error rate is known; the estimate starts from the
/// error rate for which this is optimal, weighted as 8 frames, so a clean line
/// reaches the cap after ~30 frames (under a second at 115200 baud) while a very
/// noisy one never sends big frames blind.
pub const INITIAL_PAYLOAD: usize = 256;
/// Per-frame overhead assumed by the frame-size rule: type 1 + seq 2 + CRC 4 + COBS
/// code ~1–3 + delimiter 1, plus a piggy-backed ack some of the time.
pub const FRAME_OVERHEAD: f64 = 11.0;

/// Link configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Line byte rate (bytes/s); sizes the RTO floor.
    pub byte_rate: u32,
    /// Largest payload per frame (cap of the adaptive size), ≤ 600.
    pub max_payload: usize,
    /// Receive window / maximum frames in flight (1..=256).
    pub window: u16,
    /// Send a keepalive after this long without transmitting.
    pub keepalive: Duration,
    /// Report `PeerLost` after this long without a valid frame.
    pub dead_after: Duration,
    /// Longest delay of a standalone ack.
    pub ack_delay: Duration,
    /// Queue target of the driver's [`Pacer`]; used in the RTO floor.
    pub pacing_target: Duration,
    /// Ceiling of the retransmission timeout (and its back-off).
    pub max_rto: Duration,
    /// Report `ProtocolMismatch` after bytes keep arriving this long without a frame.
    pub mismatch_after: Duration,
    /// Adapt the frame size to the observed error rate.
    pub adaptive: bool,
    /// Pre-shared secret: authenticate and encrypt the link (None: the plain v1
    /// protocol, unchanged on the wire).
    pub key: Option<crypto::KeyConfig>,
    /// Features offered to the peer in CAPS; [`Features::NONE`] runs plain wire v1
    /// (no CAPS sent, none understood).
    pub features: Features,
    /// Largest payload when both ends offer [`Features::LARGE_FRAMES`]
    /// (`max_payload..=1984`).
    pub large_max_payload: usize,
}

/// Idle time before a keepalive probe, unless `keepalive=` says otherwise.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(1);
/// Silence after which the peer counts as lost, unless `dead-after=` says
/// otherwise: long enough for a replugged adapter (docs/link-protocol.md).
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(60);

impl LinkConfig {
    /// Defaults for a line of `byte_rate` bytes/s.
    pub fn for_byte_rate(byte_rate: u32) -> Self {
        LinkConfig {
            byte_rate: byte_rate.max(1),
            max_payload: 600,
            window: 64,
            keepalive: DEFAULT_KEEPALIVE,
            dead_after: DEFAULT_DEAD_AFTER,
            ack_delay: Duration::from_millis(4),
            pacing_target: Duration::from_millis(3),
            max_rto: Duration::from_secs(2),
            mismatch_after: Duration::from_secs(3),
            adaptive: true,
            key: None,
            // Large frames on clean lines, and urgent frames that overtake a
            // frame in progress; a peer without them keeps plain v1.
            features: Features::DEFAULT,
            large_max_payload: LARGE_MAX_PAYLOAD,
        }
    }

    /// The largest payload this end may ever send, given what it offers.
    pub fn payload_ceiling(&self) -> usize {
        if self.features.contains(Features::LARGE_FRAMES) {
            self.large_max_payload.max(self.max_payload)
        } else {
            self.max_payload
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check("byte rate", self.byte_rate.into(), 1, u32::MAX.into())?;
        let payload = self.max_payload as u64;
        ConfigError::check(
            "max payload",
            payload,
            MIN_PAYLOAD as u64,
            MAX_PAYLOAD as u64,
        )?;
        ConfigError::check(
            "large max payload",
            self.large_max_payload as u64,
            payload,
            LARGE_MAX_PAYLOAD as u64,
        )?;
        ConfigError::check("link window", self.window as u64, 1, MAX_WINDOW as u64)?;
        if self.keepalive.is_zero() || self.dead_after <= self.keepalive {
            return Err(ConfigError::Inconsistent("0 < keepalive < dead-after"));
        }
        if self.max_rto < self.rto_floor() {
            return Err(ConfigError::Inconsistent(
                "the longest retransmission timeout at least its floor (frame time + latency)",
            ));
        }
        Ok(())
    }

    /// Time to serialise `n` bytes at the byte rate.
    pub fn byte_time(&self, n: usize) -> Duration {
        Duration::from_nanos(((n as u128 * 1_000_000_000) / self.byte_rate.max(1) as u128) as u64)
    }

    /// RTO floor of wire v1: two maximum frame times, the pacing queue, the ack
    /// delay and 5 ms.
    pub fn rto_floor(&self) -> Duration {
        self.rto_floor_for(self.max_payload)
    }

    /// RTO floor when frames carry up to `payload` bytes (large frames raise it).
    pub fn rto_floor_for(&self, payload: usize) -> Duration {
        self.byte_time(2 * cobs::max_encoded_len(payload + 16))
            + self.pacing_target
            + self.ack_delay
            + Duration::from_millis(5)
    }
}

/// Something the layer above must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// A session with the peer is up (first time, after a restart, or after `PeerLost`).
    Up {
        /// The peer's epoch.
        peer_epoch: u32,
    },
    /// One application frame, in order, exactly once.
    Delivered(Bytes),
    /// The peer restarted: everything in flight in both directions is gone; reset.
    PeerRestarted,
    /// No valid frame for `dead_after`: the session is over (everything in flight
    /// either way is dropped; a new session, under a new epoch, starts when the
    /// peer answers the probes, and is reported with `Up`). Reset everything above.
    PeerLost,
    /// The peer does not speak this protocol (reported once).
    ProtocolMismatch(String),
    /// The peer's CAPS arrived for this session: the features both ends use from
    /// now on (ours ∩ the peer's; once per session, after `Up`).
    PeerFeatures(Features),
}

/// Link counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    /// Frames transmitted (all kinds).
    pub frames_sent: u64,
    /// DATA frames transmitted again.
    pub frames_retransmitted: u64,
    /// Line bytes produced.
    pub bytes_sent: u64,
    /// Payload bytes in DATA frames transmitted (retransmissions included).
    pub payload_bytes_sent: u64,
    /// Payload bytes delivered to the layer above.
    pub payload_bytes_delivered: u64,
    /// Payload bytes of our frames acknowledged by the peer.
    pub payload_bytes_acked: u64,
    /// Frames received that passed the CRC.
    pub frames_received: u64,
    /// Frames failing the CRC.
    pub crc_failures: u64,
    /// Over-long, badly stuffed or otherwise malformed frames.
    pub malformed: u64,
    /// Duplicate DATA frames received.
    pub duplicates: u64,
    /// Line bytes sent that were not payload.
    pub framing_overhead_bytes: u64,
    /// Standalone ACK frames sent (including keepalives).
    pub acks_sent: u64,
    /// HELLO frames sent.
    pub hellos_sent: u64,
    /// Retransmission timer expiries.
    pub rto_expiries: u64,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// Current adaptive payload limit.
    pub max_payload: usize,
    /// Estimated per-byte error probability.
    pub error_rate: f64,
    /// Sessions established (counting re-establishment after a restart).
    pub sessions: u64,
    /// Our own frames received back (a looped line, or a bus that echoes what
    /// we send): ignored, and not counted as line errors.
    pub own_frames: u64,
    /// Frames we suspended for an urgent frame (finished later by RESUME).
    pub frames_suspended: u64,
    /// Frames received in more than one piece and put back together.
    pub frames_resumed: u64,
    /// RESUME frames that did not continue the piece we held (dropped; ARQ resends).
    pub resume_mismatches: u64,
    /// Suspended frames that a payload overtook in the delivery order (their
    /// RESUME gave them the next sequence number).
    pub frames_overtaken: u64,
}

/// The frame being handed out, possibly in pieces.
#[derive(Debug)]
struct Tx {
    /// Its encoding, with a leading delimiter if any, and the trailing one.
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    pos: usize,
    /// 1 if `buf` starts with a leading delimiter.
    lead: usize,
    /// A DATA frame (or its RESUME) that can be suspended.
    data: Option<TxData>,
}

#[derive(Debug)]
struct TxData {
    /// Its place in the order: the seq inside the frame, or the one a frame that
    /// overtook it left (then a RESUME carries it).
    seq: Seq,
    /// The seq written inside the frame.
    frame_seq: Seq,
    /// The whole raw DATA frame with its check.
    raw: Vec<u8>,
    /// Raw bytes of it the receiver has from earlier pieces.
    base: usize,
    /// Line bytes spent on this frame so far (all pieces).
    wire: usize,
    /// What is being handed out: the frame, or a RESUME of it.
    encoding: TxEncoding,
}

/// How a DATA frame in progress is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxEncoding {
    /// The frame itself.
    Frame,
    /// A RESUME from `base`, with a header of this many raw bytes.
    Resume { header: usize },
}

/// A DATA frame stopped for an urgent one, to be finished by a RESUME.
#[derive(Debug)]
struct Suspended {
    data: TxData,
    /// The one frame let past has been started.
    passed: bool,
}

/// The link state machine (see the module docs).
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    epoch: u32,
    peer_epoch: Option<u32>,
    established: bool,
    alive: bool,
    peer_window: u16,
    snd: SendWindow,
    rcv: RecvWindow,
    rtt: RttEstimator,
    rto_deadline: Option<Instant>,
    ack_deadline: Option<Instant>,
    ack_due: bool,
    ack_repeat: u8,
    hello_due: bool,
    hello_deadline: Option<Instant>,
    hello_interval: Duration,
    keepalive_due: bool,
    last_tx: Instant,
    last_tx_end: Instant,
    last_rx_valid: Instant,
    last_rx_byte: Option<Instant>,
    garbage_since: Option<Instant>,
    garbage_bytes: u64,
    rx_since_rto: bool,
    mismatch_reported: bool,
    /// When an intact sfs frame (of any kind, keyed or not) last arrived: text
    /// seen within `mismatch_after` of one is a frame in progress whose random
    /// bytes happen to look like a line (keyed frames have printable kind
    /// bytes), not a modem.
    heard_sfs_at: Option<Instant>,
    /// The epoch before the last change: its HELLOs may still come back
    /// through a loop.
    prev_epoch: u32,
    /// Own HELLOs received back since the last session.
    own_hellos: u32,
    /// The first line bytes after the last delimiter (≤ [`TAIL_LEN`]),
    /// kept to recognise what a peer that is not sfs sends (modem responses,
    /// a terminal's echo).
    tail: Vec<u8>,
    /// The latest line bytes (≤ [`TAIL_LEN`]), wherever frames start: a
    /// cooked terminal's echo has no delimiter at all.
    recent: Vec<u8>,
    /// Where `tail` starts: after a delimiter (at a frame's start, if sfs), or
    /// at the first byte we ever heard (when that was, since it may be the
    /// middle of a frame: judged only once a frame's time has surely passed).
    tail_start: TailStart,
    decoder: cobs::Decoder,
    raw: Vec<u8>,
    events: VecDeque<LinkEvent>,
    stats: LinkStats,
    errors: ErrorRate,
    cur_max_payload: usize,
    keyed: Option<Box<handshake::Keyed>>,
    plain: Vec<u8>,
    tx: Option<Tx>,
    suspended: Option<Suspended>,
    /// The last piece of a suspended frame received (raw bytes so far), if any.
    rx_kept: Option<Vec<u8>>,
    /// The peer's latest CAPS (valid while its epoch is the peer's epoch).
    peer_caps: Option<Caps>,
    /// The peer confirmed it has our CAPS for this session.
    caps_confirmed: bool,
    caps_due: bool,
    caps_deadline: Option<Instant>,
    caps_tries: u8,
    features_reported: bool,
}

/// CAPS resent after the session is up while the peer has not confirmed ours
/// (a v1 peer never will): at most this many times per session.
const CAPS_RETRIES: u8 = 6;

const HELLO_INITIAL: Duration = Duration::from_millis(100);
/// Line bytes kept to recognise a foreign peer's text.
const TAIL_LEN: usize = 80;
/// How long bytes heard before any delimiter wait to be judged as text: they
/// may be the middle of an sfs frame (we started mid-frame), whose delimiter
/// comes within a frame time.
const TAIL_SETTLE: Duration = Duration::from_secs(1);

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
/// Own HELLOs received back, with no session, before the loop is reported:
/// a bus that echoes what we send (2-wire RS-485) but has a real peer on it
/// gets its session from the first HELLO exchange, well before the third echo.
const LOOP_HELLOS: u32 = 3;

/// The epoch of the next session after a lost one: a bijective mix of the old
/// one (SplitMix64 finaliser), never 0, so consecutive sessions never share keys.
fn next_epoch(epoch: u32) -> u32 {
    let mut x = u64::from(epoch);
    (crate::line::rng::splitmix64(&mut x) as u32).max(1)
}

impl Link {
    /// A link with our `epoch` (random, non-zero; 0 is replaced by 1) at `now`.
    /// An invalid configuration is clamped to usable values.
    pub fn new(mut cfg: LinkConfig, epoch: u32, now: Instant) -> Self {
        cfg.byte_rate = cfg.byte_rate.max(1);
        cfg.max_payload = cfg.max_payload.clamp(MIN_PAYLOAD, MAX_PAYLOAD);
        cfg.large_max_payload = cfg
            .large_max_payload
            .clamp(cfg.max_payload, LARGE_MAX_PAYLOAD);
        cfg.window = cfg.window.clamp(1, MAX_WINDOW);
        let floor = cfg.rto_floor();
        cfg.max_rto = cfg.max_rto.max(cfg.rto_floor_for(cfg.payload_ceiling()));
        let initial = floor.max(Duration::from_millis(300)).min(cfg.max_rto);
        Link {
            rtt: RttEstimator::new(floor, cfg.max_rto, initial),
            snd: SendWindow::new(cfg.window),
            rcv: RecvWindow::new(cfg.window),
            epoch: epoch.max(1),
            peer_epoch: None,
            established: false,
            alive: false,
            peer_window: cfg.window,
            rto_deadline: None,
            ack_deadline: None,
            ack_due: false,
            ack_repeat: 0,
            hello_due: true,
            hello_deadline: None,
            hello_interval: HELLO_INITIAL,
            keepalive_due: false,
            last_tx: now,
            last_tx_end: now,
            last_rx_valid: now,
            last_rx_byte: None,
            garbage_since: None,
            garbage_bytes: 0,
            rx_since_rto: false,
            mismatch_reported: false,
            heard_sfs_at: None,
            prev_epoch: epoch.max(1),
            own_hellos: 0,
            tail: Vec::with_capacity(TAIL_LEN),
            recent: Vec::with_capacity(TAIL_LEN),
            tail_start: TailStart::Unheard,
            decoder: cobs::Decoder::new(cobs::max_encoded_len(
                MAX_RAW_FRAME + crypto::SEAL_OVERHEAD,
            )),
            raw: Vec::with_capacity(cobs::max_encoded_len(MAX_RAW_FRAME) + 2),
            events: VecDeque::new(),
            stats: LinkStats {
                max_payload: cfg.max_payload,
                ..LinkStats::default()
            },
            errors: ErrorRate::with_prior(
                INITIAL_PAYLOAD as f64,
                FRAME_OVERHEAD,
                8.0,
                cfg.max_payload as f64,
                256.0 * 1024.0,
            ),
            cur_max_payload: INITIAL_PAYLOAD.min(cfg.max_payload),
            keyed: cfg
                .key
                .as_ref()
                .map(|k| Box::new(handshake::Keyed::new(k, epoch.max(1), now))),
            plain: Vec::new(),
            tx: None,
            suspended: None,
            rx_kept: None,
            peer_caps: None,
            caps_confirmed: false,
            caps_due: false,
            caps_deadline: None,
            caps_tries: 0,
            features_reported: false,
            cfg,
        }
    }

    /// The features the peer announced for its current session ([`Features::NONE`]
    /// until its CAPS arrives, and for a v1 peer).
    pub fn peer_features(&self) -> Features {
        match (self.peer_caps, self.peer_epoch) {
            (Some(c), Some(p)) if c.epoch == p => c.features,
            _ => Features::NONE,
        }
    }

    /// Features both ends offer: what this session uses.
    pub fn features(&self) -> Features {
        self.cfg.features.intersect(self.peer_features())
    }

    /// The payload cap of this session before the error-rate rule.
    fn session_payload_cap(&self) -> usize {
        if self.features().contains(Features::LARGE_FRAMES) {
            let peer = self.peer_caps.map_or(0, |c| c.max_payload as usize);
            self.cfg
                .large_max_payload
                .min(peer)
                .max(self.cfg.max_payload)
        } else {
            self.cfg.max_payload
        }
    }

    /// Our epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The peer's epoch, once seen.
    pub fn peer_epoch(&self) -> Option<u32> {
        self.peer_epoch
    }

    /// The configuration in use.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Session agreed and peer alive.
    pub fn is_up(&self) -> bool {
        self.established && self.alive
    }

    /// The layer above may [`send`](Self::send) one frame now: the session is up, the
    /// window has room and no earlier frame is still waiting for its first
    /// transmission.
    pub fn can_send(&self) -> bool {
        self.is_up()
            && self.snd.has_room()
            && !self.snd.has_unsent()
            // Payloads are taken when they can start at once, not a frame ahead, so
            // the layer above chooses as late as possible; a suspended frame lets
            // exactly one frame past.
            && self.tx.is_none()
            && self.suspended.as_ref().is_none_or(|s| !s.passed)
    }

    /// Current adaptive payload size limit.
    pub fn max_payload(&self) -> usize {
        self.cur_max_payload
    }

    /// Queues one application frame (reliable, ordered). Fails, giving the payload
    /// back, when [`can_send`](Self::can_send) is false or it exceeds
    /// [`max_payload`](Self::max_payload).
    pub fn send(&mut self, payload: Bytes) -> Result<(), Bytes> {
        if !self.can_send() || payload.len() > self.cur_max_payload {
            return Err(payload);
        }
        self.snd.push(payload);
        Ok(())
    }

    /// Every frame handed to [`send`](Self::send) has been acknowledged by the
    /// peer (nothing waits for a first transmission or a retransmission).
    pub fn all_acked(&self) -> bool {
        self.snd.is_empty()
    }

    /// Ends the current session on our own initiative — the layer above found the
    /// peer's data unusable — exactly as a lost session ends: everything in flight
    /// either way is dropped and a new epoch is taken, so the peer sees a restart
    /// and resets its side too. No event is reported; the caller already knows.
    pub fn restart_session(&mut self) {
        self.reset_session();
        self.new_epoch();
        self.hello_due = true;
        self.caps_confirmed = false;
    }

    fn new_epoch(&mut self) {
        self.prev_epoch = self.epoch;
        self.epoch = next_epoch(self.epoch);
    }

    /// Reports, once until a session is agreed, that the far end is not an sfs
    /// peer, with `why`.
    fn report_mismatch(&mut self, why: String) {
        if !self.mismatch_reported {
            self.mismatch_reported = true;
            self.events.push_back(LinkEvent::ProtocolMismatch(why));
        }
    }

    /// The keyed link's handshake state (None without a secret).
    pub fn keyed(&self) -> Option<&handshake::Keyed> {
        self.keyed.as_deref()
    }

    /// Next event for the layer above.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        let mut s = self.stats.clone();
        s.srtt = self.rtt.srtt();
        s.max_payload = self.cur_max_payload;
        s.error_rate = self.errors.q();
        s
    }

    /// Feeds raw bytes received from the line.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let gap = self
            .last_rx_byte
            .is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(1));
        if self.garbage_since.is_none() || gap {
            self.garbage_since = Some(now);
            self.garbage_bytes = 0;
        }
        self.last_rx_byte = Some(now);
        self.garbage_bytes += bytes.len() as u64;
        self.keep_tail(now, bytes);
        let mut dec = std::mem::replace(&mut self.decoder, cobs::Decoder::new(0));
        dec.push(bytes, |chunk| self.on_chunk(now, chunk));
        self.decoder = dec;
        let heard_sfs_lately = self
            .heard_sfs_at
            .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.mismatch_after);
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
        if !self.established
            && !self.mismatch_reported
            && !heard_sfs_lately
            && !keyed_frame_start
            && tail_judgeable
        {
            if let Some(why) =
                session::foreign_text(&self.tail).or_else(|| session::cooked_echo(&self.recent))
            {
                self.report_mismatch(why);
            }
        }
        if let Some(since) = self.garbage_since {
            let span = now.saturating_duration_since(since);
            // Once a session was agreed the peer speaks sfs: silence is noise, not a
            // mismatch.
            if !self.established
                && !self.mismatch_reported
                && span >= self.cfg.mismatch_after
                && self.garbage_bytes >= 64
            {
                self.report_mismatch(format!(
                    "the far end does not speak sfs link v{VERSION} (no valid frame in {} bytes over {:.1} s)",
                    self.garbage_bytes,
                    span.as_secs_f64()
                ));
            }
        }
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

    fn on_chunk(&mut self, now: Instant, chunk: cobs::Chunk<'_>) {
        let resume = |raw: &[u8]| raw.first().is_some_and(|b| b >> 4 == KIND_RESUME);
        let raw = match chunk {
            cobs::Chunk::Frame(raw) if resume(raw) && !self.cfg.features.is_empty() => {
                self.on_resume(now, raw, true);
                return;
            }
            cobs::Chunk::Frame(raw) => raw,
            cobs::Chunk::Partial(raw) if self.cfg.features.is_empty() => {
                let _ = raw;
                self.stats.malformed += 1;
                return;
            }
            cobs::Chunk::Partial(raw) if resume(raw) => {
                self.on_resume(now, raw, false);
                return;
            }
            cobs::Chunk::Partial(raw) => {
                // Perhaps a suspended frame: keep its bytes (one slot, bounded) for
                // the RESUME that may follow. Damage looks the same and is
                // harmless here: only a RESUME at exactly this length continues it,
                // and the frame's own check covers the whole.
                let kept = self.rx_kept.get_or_insert_with(Vec::new);
                kept.clear();
                if raw.len() <= MAX_RAW_FRAME {
                    kept.extend_from_slice(raw);
                } else {
                    self.rx_kept = None;
                }
                return;
            }
            cobs::Chunk::TooLong => {
                self.stats.malformed += 1;
                return;
            }
        };
        self.on_raw(now, raw);
    }

    /// A RESUME (kind 5): `offset:u16` then the rest of the frame whose first
    /// `offset` raw bytes came in earlier pieces. `complete` is false for a RESUME
    /// that was itself suspended (its bytes extend the kept piece).
    fn on_resume(&mut self, now: Instant, raw: &[u8], complete: bool) {
        let key = frame::session_key(self.peer_epoch.unwrap_or(0), self.epoch);
        let (header, rest) = match frame::Resume::parse(raw, &key) {
            Ok(r) => r,
            // A RESUME that was itself suspended within its header adds no
            // bytes; the next one continues from the same offset.
            Err(ParseError::Truncated) if !complete => return,
            Err(_) => {
                self.stats.resume_mismatches += 1;
                self.rx_kept = None;
                return;
            }
        };
        let offset = header.offset as usize;
        let Some(mut kept) = self.rx_kept.take() else {
            self.stats.resume_mismatches += 1;
            return;
        };
        if kept.len() != offset || offset + rest.len() > MAX_RAW_FRAME {
            self.stats.resume_mismatches += 1;
            return;
        }
        kept.extend_from_slice(rest);
        if complete {
            self.stats.frames_resumed += 1;
            self.on_raw_at(now, &kept, header.renumber);
        } else {
            // Only the final RESUME's seq counts: a frame may be overtaken
            // again while it is being resumed.
            self.rx_kept = Some(kept);
        }
    }

    fn on_raw(&mut self, now: Instant, raw: &[u8]) {
        self.on_raw_at(now, raw, None);
    }

    /// A raw frame; `renumber` is the place in the order a RESUME gave it (a
    /// frame overtook it), instead of the seq inside it.
    fn on_raw_at(&mut self, now: Instant, raw: &[u8], renumber: Option<Seq>) {
        if self.keyed.is_some() {
            if renumber.is_some() {
                // Never sent on a keyed link (its seq would not be authenticated).
                self.stats.malformed += 1;
                return;
            }
            return self.on_keyed_chunk(now, raw);
        }
        let key = frame::session_key(self.peer_epoch.unwrap_or(0), self.epoch);
        match frame::parse(raw, &key) {
            Ok(repr) => {
                self.errors.record(1, 0, raw.len() as u64 + 2);
                let repr = match (repr, renumber) {
                    (repr, None) => repr,
                    (Repr::Data { ack, payload, .. }, Some(seq)) => {
                        Repr::Data { seq, ack, payload }
                    }
                    (_, Some(_)) => {
                        self.stats.malformed += 1;
                        return;
                    }
                };
                self.on_frame(now, repr)
            }
            Err(ParseError::BadCrc) if self.is_own_frame(raw) => {
                // Our own DATA/ACK came back (a loop, or a bus that echoes):
                // not a line error, and not the peer.
                self.stats.own_frames += 1;
            }
            Err(ParseError::BadCrc) => {
                self.stats.crc_failures += 1;
                // Lines are usually symmetric: what we lose says something about
                // what our frames meet.
                self.errors.record(1, 1, raw.len() as u64 + 2);
                self.update_payload_size();
            }
            Err(ParseError::Version(v)) => {
                self.stats.malformed += 1;
                self.report_mismatch(format!(
                    "peer does not speak sfs link v{VERSION} (it offers version {v})"
                ));
            }
            Err(ParseError::UnknownKind(handshake::KIND_HANDSHAKE)) => {
                // An intact keyed-link handshake: the peer has a secret, we do not.
                self.stats.malformed += 1;
                self.report_mismatch(
                    "the peer requires a shared secret (it sends keyed handshakes); \
                     give this side the same secret-file"
                        .into(),
                );
            }
            Err(_) => self.stats.malformed += 1,
        }
    }

    /// A frame that failed the CRC under the receive key passes under our
    /// send key: we sent it. (One more CRC per bad frame, only.)
    fn is_own_frame(&self, raw: &[u8]) -> bool {
        self.peer_epoch.is_some_and(|p| p != self.epoch)
            && frame::parse(
                raw,
                &frame::session_key(self.epoch, self.peer_epoch.unwrap_or(0)),
            )
            .is_ok()
    }

    /// A frame on a keyed link: handshake messages and sealed frames only.
    fn on_keyed_chunk(&mut self, now: Instant, raw: &[u8]) {
        let Some(keyed) = self.keyed.as_mut() else {
            return;
        };
        let mut plain = std::mem::take(&mut self.plain);
        let sessions = keyed.sessions;
        let got = keyed.receive(now, raw, &mut plain);
        while let Some(r) = keyed.poll_report() {
            self.events.push_back(LinkEvent::ProtocolMismatch(r));
        }
        if keyed.sessions != sessions && (self.established || self.peer_epoch.is_some()) {
            // New keys replaced a session we had: the peer restarted (or we
            // did and it answered). Its sequence numbers start afresh, so ours
            // must too — frames of the old session still waiting here would
            // otherwise be delivered in the new one's place.
            if self.established {
                self.events.push_back(LinkEvent::PeerRestarted);
            }
            self.reset_session();
            // Its epoch in the new session comes with its next HELLO, which
            // must not count as a second restart.
            self.peer_epoch = None;
            self.caps_confirmed = false;
            self.hello_due = true;
        }
        // Received frames do not feed the frame-size estimate on a keyed link:
        // a frame that fails its tag is as likely an injection as line noise,
        // and anyone on the line can inject them for free (a few tiny forged
        // frames, each counted as a lost frame of its own tiny size, used to
        // pin the payload at 64 B). Flooring junk at a frame's size would only
        // raise the price of that attack, and counting the frames that do
        // open without those that fail would bias the estimate low. What
        // sizes our frames is what the peer's sealed — authenticated — acks
        // prove about *our* frames (`on_ack`, and the RTO while we still hear
        // the peer): only a real loss on the line moves it.
        match got {
            handshake::Received::Frame => match frame::parse_body(&plain) {
                Ok(repr) => self.on_frame(now, repr),
                // Authentic yet unparsable: the peer's bug, not noise.
                Err(_) => self.stats.malformed += 1,
            },
            handshake::Received::Handshake | handshake::Received::Refused => {
                self.heard_sfs_at = Some(now);
                // Intact sfs frames: the peer speaks sfs (no "not sfs" report).
                self.garbage_since = None;
                self.garbage_bytes = 0;
                if got == handshake::Received::Handshake {
                    self.stats.frames_received += 1;
                }
            }
            handshake::Received::Corrupt => self.stats.crc_failures += 1,
            handshake::Received::Replay => self.stats.duplicates += 1,
            handshake::Received::Malformed => self.stats.malformed += 1,
        }
        self.plain = plain;
    }

    fn on_frame(&mut self, now: Instant, repr: Repr<'_>) {
        if let Repr::Hello(h) = &repr {
            if h.epoch == self.epoch || h.epoch == self.prev_epoch {
                self.on_own_hello();
                return;
            }
        }
        if let Repr::Caps(c) = &repr {
            // Our own CAPS came back through a loop: answering it would make a
            // CAPS ping-pong with ourselves at line rate.
            if c.epoch == self.epoch || c.epoch == self.prev_epoch {
                self.stats.own_frames += 1;
                return;
            }
        }
        self.stats.frames_received += 1;
        self.heard_sfs_at = Some(now);
        self.tail.clear();
        self.last_rx_valid = now;
        self.rx_since_rto = true;
        self.garbage_since = None;
        self.garbage_bytes = 0;
        match repr {
            Repr::Hello(h) => self.on_hello(now, &h),
            Repr::Data { seq, ack, payload } => {
                // A valid keyed frame proves the peer agreed on this session.
                self.on_session_frame(now);
                if let Some(a) = ack {
                    self.on_ack(now, &a);
                }
                match self.rcv.on_data(seq, payload) {
                    RecvOutcome::New => {
                        while let Some(p) = self.rcv.pop_ready() {
                            self.stats.payload_bytes_delivered += p.len() as u64;
                            self.events.push_back(LinkEvent::Delivered(p));
                        }
                        if self.rcv.has_gap() {
                            self.ack_due = true;
                        } else if self.ack_deadline.is_none() {
                            self.ack_deadline = Some(now + self.cfg.ack_delay);
                        }
                    }
                    RecvOutcome::Duplicate => {
                        self.stats.duplicates += 1;
                        self.ack_due = true;
                    }
                    RecvOutcome::OutOfWindow => self.ack_due = true,
                }
                self.ack_repeat = 2;
            }
            Repr::Ack(a) => {
                self.on_session_frame(now);
                self.on_ack(now, &a);
            }
            Repr::Caps(c) => self.on_caps(now, c),
        }
    }

    /// Our own HELLO came back. Taking it as the peer's would agree a session
    /// with ourselves (it carries our epoch, and our reply to it would carry
    /// it as `seen`); it is ignored, so a real peer that appears later is
    /// answered as usual. Epochs are random 32-bit values: a real peer with
    /// ours is a 2⁻³² coincidence, and a restart picks another.
    fn on_own_hello(&mut self) {
        self.stats.own_frames += 1;
        if self.established {
            return;
        }
        self.own_hellos = self.own_hellos.saturating_add(1);
        if self.own_hellos >= LOOP_HELLOS {
            self.report_mismatch(
                "the line is looped back: we receive our own frames (a loopback plug, \
                 a cable wired to itself, or a program such as `cat` echoing the line)"
                    .into(),
            );
        }
    }

    fn on_caps(&mut self, now: Instant, c: Caps) {
        if self.cfg.features.is_empty() {
            // Plain v1 does not know this kind.
            self.stats.malformed += 1;
            return;
        }
        self.peer_caps = Some(c);
        if c.have_yours && c.seen == self.epoch {
            self.caps_confirmed = true;
            self.caps_deadline = None;
        } else {
            self.caps_due = true;
        }
        self.report_features(now);
    }

    /// Once per session, when both the session and the peer's CAPS are there:
    /// apply and report the features in use.
    fn report_features(&mut self, _now: Instant) {
        if self.features_reported || !self.is_up() {
            return;
        }
        if self
            .peer_caps
            .is_none_or(|c| Some(c.epoch) != self.peer_epoch)
        {
            return;
        }
        self.features_reported = true;
        // Large frames take longer on the wire, and so may their acks.
        let cap = self.session_payload_cap();
        self.rtt.set_min_rto(self.cfg.rto_floor_for(cap));
        self.update_payload_size();
        self.events
            .push_back(LinkEvent::PeerFeatures(self.features()));
    }

    fn on_session_frame(&mut self, now: Instant) {
        if !self.established {
            self.establish(now);
        } else if !self.alive {
            self.revive();
        }
    }

    fn revive(&mut self) {
        self.alive = true;
        self.hello_deadline = None;
        if let Some(p) = self.peer_epoch {
            self.events.push_back(LinkEvent::Up { peer_epoch: p });
        }
    }

    fn establish(&mut self, now: Instant) {
        self.established = true;
        self.alive = true;
        self.mismatch_reported = false;
        self.own_hellos = 0;
        self.hello_deadline = None;
        self.stats.sessions += 1;
        self.snd.set_window(self.cfg.window.min(self.peer_window));
        if let Some(p) = self.peer_epoch {
            self.events.push_back(LinkEvent::Up { peer_epoch: p });
        }
        if !self.cfg.features.is_empty() && !self.caps_confirmed {
            self.caps_tries = 0;
            self.caps_deadline = Some(now + HELLO_INITIAL);
        }
        self.report_features(now);
    }

    fn reset_session(&mut self) {
        // A frame cut off mid-way is closed with a delimiter, so it cannot merge
        // with what follows; a suspended one is forgotten (the new session starts
        // from nothing).
        if let Some(tx) = &mut self.tx {
            if tx.pos > 0 && tx.pos < tx.buf.len() {
                tx.buf.truncate(tx.pos);
                tx.buf.push(0);
                tx.data = None;
            } else {
                self.tx = None;
            }
        }
        self.suspended = None;
        self.rx_kept = None;
        self.features_reported = false;
        self.caps_deadline = None;
        self.rtt.set_min_rto(self.cfg.rto_floor());
        self.cur_max_payload = self.cur_max_payload.min(self.cfg.max_payload);
        self.snd = SendWindow::new(self.cfg.window);
        self.rcv = RecvWindow::new(self.cfg.window);
        self.established = false;
        self.alive = false;
        self.rto_deadline = None;
        self.ack_deadline = None;
        self.ack_due = false;
        self.ack_repeat = 0;
        self.keepalive_due = false;
        self.hello_interval = HELLO_INITIAL;
        self.rtt.on_progress();
    }

    fn on_hello(&mut self, now: Instant, h: &Hello) {
        let act = session::on_hello(self.epoch, self.peer_epoch, h);
        if act.restart {
            if self.established {
                self.events.push_back(LinkEvent::PeerRestarted);
            }
            self.reset_session();
            self.caps_confirmed = false;
        }
        self.peer_epoch = Some(h.epoch);
        self.peer_window = h.window.clamp(1, MAX_WINDOW);
        if act.agreed {
            if !self.established {
                self.establish(now);
            } else if !self.alive {
                self.revive();
            }
        }
        if act.reply {
            self.hello_due = true;
        }
    }

    fn on_ack(&mut self, now: Instant, a: &frame::AckInfo) {
        let recovering = self.rtt.backoff() > 0;
        let out: AckOutcome = self.snd.on_ack(a, now, recovering);
        if let Some(s) = out.rtt_sample {
            self.rtt.sample(s);
        }
        self.stats.payload_bytes_acked += out.acked_payload_bytes;
        self.errors.record(
            out.acked_frames + out.lost_frames,
            out.lost_frames,
            out.acked_wire_bytes + out.lost_wire_bytes,
        );
        self.update_payload_size();
        if out.acked_frames > 0 {
            self.rtt.on_progress();
            self.rto_deadline = self.snd.outstanding().then(|| now + self.rtt.rto());
        }
    }

    fn update_payload_size(&mut self) {
        let cap = self.session_payload_cap();
        if self.cfg.adaptive {
            // A sealed frame carries a tag and a counter instead of a CRC.
            let sealed = if self.keyed.is_some() {
                crypto::SEAL_OVERHEAD as f64
            } else {
                0.0
            };
            self.cur_max_payload = session::optimal_payload(
                FRAME_OVERHEAD + sealed,
                self.errors.q(),
                MIN_PAYLOAD,
                cap,
            );
        } else {
            self.cur_max_payload = cap;
        }
    }

    /// Processes expired timers at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.rto_deadline.is_some_and(|t| now >= t) {
            self.stats.rto_expiries += 1;
            // A peer we still hear from means a noisy line, not a dead one: resend
            // everything stale and keep the timer short. Otherwise probe with one
            // frame and back off exponentially.
            let line_alive = std::mem::take(&mut self.rx_since_rto);
            let first = self.rtt.backoff() == 0 || line_alive;
            let marked = self.snd.on_rto(now, self.rtt.base_rto(), first);
            if line_alive && marked > 0 {
                let len = cobs::max_encoded_len(self.cur_max_payload + 4) as u64;
                self.errors.record(marked, marked, marked as u64 * len);
                self.update_payload_size();
            } else if first && marked > 0 {
                // One loss event per expiry: an outage is not a bit-error rate.
                self.errors.record(1, 1, self.cur_max_payload as u64);
                self.update_payload_size();
            }
            if line_alive {
                self.rtt.on_progress();
            }
            self.rtt.on_expiry();
            self.rto_deadline = self.snd.outstanding().then(|| now + self.rtt.rto());
        }
        if self.ack_deadline.is_some_and(|t| now >= t) {
            self.ack_deadline = None;
            self.ack_due = true;
        }
        if self.established && now >= self.last_tx + self.cfg.keepalive {
            self.keepalive_due = true;
        }
        if let Some(k) = self.keyed.as_mut() {
            k.handle_timeout(now);
        }
        if self.hello_deadline.is_some_and(|t| now >= t) {
            self.hello_deadline = None;
            if !self.is_up() {
                self.hello_due = true;
            }
        }
        if self.is_up() && now >= self.last_rx_valid + self.cfg.dead_after {
            // The session ends here: whatever is in flight either way is dropped,
            // and a new epoch makes sure none of it can be delivered later into a
            // fresh session (the peer sees a restart when it hears from us again).
            self.events.push_back(LinkEvent::PeerLost);
            if let Some(k) = self.keyed.as_mut() {
                k.on_session_lost();
            }
            self.reset_session();
            self.new_epoch();
            self.hello_due = true;
            self.caps_confirmed = false;
            self.hello_interval = self.cfg.keepalive;
        }
        if self.caps_deadline.is_some_and(|t| now >= t) {
            self.caps_deadline = None;
            if self.is_up() && !self.caps_confirmed && self.caps_tries < CAPS_RETRIES {
                self.caps_tries += 1;
                self.caps_due = true;
                self.caps_deadline = Some(now + HELLO_INITIAL * (1 << self.caps_tries.min(4)));
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        consider(self.rto_deadline);
        consider(self.ack_deadline);
        consider(self.caps_deadline);
        if self.established && !self.keepalive_due {
            consider(Some(self.last_tx + self.cfg.keepalive));
        }
        if !self.hello_due {
            consider(self.hello_deadline);
        }
        if self.is_up() {
            consider(Some(self.last_rx_valid + self.cfg.dead_after));
        }
        if let Some(k) = &self.keyed {
            consider(k.poll_timeout());
        }
        t
    }

    fn ack_for_data(&self) -> Option<frame::AckInfo> {
        let want = self.ack_due
            || self.ack_deadline.is_some()
            || self.ack_repeat > 0
            || self.rcv.has_gap();
        want.then(|| self.rcv.ack_info())
    }

    /// Appends at most one encoded frame to `out` and returns its length (0 if there
    /// is nothing to send now). Priority: handshake, retransmissions, new data,
    /// standalone ack, keepalive.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        self.poll_transmit_max(now, out, usize::MAX)
    }

    /// Appends at most `max` bytes (at least 1) of the frame being sent, starting a
    /// new one if none is, and returns how many (0: nothing to send now). A driver
    /// that paces its writes hands frames out in pieces this way, so that
    /// [`preempt`](Self::preempt) can stop a big frame for an urgent one.
    pub fn poll_transmit_max(&mut self, now: Instant, out: &mut Vec<u8>, max: usize) -> usize {
        if self.tx.is_none() && !self.start_frame(now) {
            return 0;
        }
        let Some(tx) = self.tx.as_mut() else {
            return 0;
        };
        let n = (tx.buf.len() - tx.pos).min(max.max(1));
        out.extend_from_slice(&tx.buf[tx.pos..tx.pos + n]);
        tx.pos += n;
        if let Some(d) = &mut tx.data {
            d.wire += n;
        }
        if tx.pos == tx.buf.len() {
            if let Some(tx) = self.tx.take() {
                if let Some(d) = tx.data {
                    self.snd.end_transmit(d.seq, d.wire);
                }
            }
        }
        n
    }

    /// A frame is being handed out and not finished.
    pub fn transmitting(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether [`preempt`](Self::preempt) would stop the current frame: the first
    /// transmission of a DATA frame (or the RESUME of one) with more than
    /// `min_left` bytes still to go, on an unkeyed link whose peer announced
    /// RESUME. (A retransmission is never stopped: the peer may hold it already,
    /// so nothing could take its place in the order.)
    pub fn can_preempt(&self, min_left: usize) -> bool {
        self.features().contains(Features::RESUME)
            && self.keyed.is_none()
            && self.suspended.is_none()
            && self.tx.as_ref().is_some_and(|t| {
                t.data
                    .as_ref()
                    .is_some_and(|d| self.snd.is_first_transmission(d.seq))
                    && t.buf.len() - t.pos > min_left
            })
    }

    /// A frame was stopped by [`preempt`](Self::preempt) and the one payload that
    /// may overtake it has not been given yet: what [`send`](Self::send) takes now
    /// is delivered to the peer *before* the stopped frame's payload (it takes
    /// that frame's place in the order), so it must not depend on it.
    pub fn awaiting_overtaker(&self) -> bool {
        self.suspended.as_ref().is_some_and(|s| !s.passed)
    }

    /// Stops the DATA frame being sent (see [`can_preempt`](Self::can_preempt)) so
    /// that one frame — the next payload [`send`](Self::send) takes, for an urgent
    /// channel — overtakes it: that payload is sent at once under the stopped
    /// frame's sequence number, and the stopped frame is finished right after it
    /// by a RESUME that gives it the next number. The cut falls inside a COBS
    /// group at or after what was handed out, so the receiver gets an
    /// undecodable piece it keeps, never a frame. Returns whether it stopped.
    pub fn preempt(&mut self, min_left: usize) -> bool {
        if !self.can_preempt(min_left) {
            return false;
        }
        let Some(tx) = self.tx.as_mut() else {
            return false;
        };
        let end = tx.buf.len() - 1; // the trailing delimiter
        let enc = &tx.buf[tx.lead..end];
        let Some(p) = cobs::cut_point(enc, tx.pos.saturating_sub(tx.lead)) else {
            return false;
        };
        if end - (tx.lead + p) <= min_left / 2 {
            return false;
        }
        let mut piece = Vec::new();
        cobs::decode_partial(&enc[..p], &mut piece);
        let Some(mut data) = tx.data.take() else {
            return false;
        };
        // Raw bytes of the frame the receiver will hold after this piece.
        data.base += match data.encoding {
            TxEncoding::Frame => piece.len(),
            TxEncoding::Resume { header } => piece.len().saturating_sub(header),
        };
        tx.buf.truncate(tx.lead + p);
        tx.buf.push(0);
        data.wire += 1;
        if data.encoding == TxEncoding::Frame {
            self.stats.frames_suspended += 1;
        }
        self.suspended = Some(Suspended {
            data,
            passed: false,
        });
        true
    }

    /// Builds the next frame into `self.tx`; false if there is none to send.
    fn start_frame(&mut self, now: Instant) -> bool {
        let key = frame::session_key(self.epoch, self.peer_epoch.unwrap_or(0));
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let mut payload_len = 0usize;
        let mut carried_ack = false;
        let mut data: Option<TxData> = None;
        let mut resume_of: Option<TxData> = None;
        let mut handshake = false;
        if let Some(k) = self.keyed.as_mut() {
            // Keyed: handshake messages first; nothing else until keys are agreed.
            if k.poll_handshake(now, &mut raw) {
                self.stats.hellos_sent += 1;
                handshake = true;
            } else if !k.ready() {
                self.raw = raw;
                return false;
            }
        }
        if handshake {
            // The handshake message is this frame.
        } else if self.hello_due {
            self.hello_due = false;
            Repr::Hello(Hello {
                epoch: self.epoch,
                seen: self.peer_epoch.unwrap_or(0),
                window: self.cfg.window,
                reply: self.established,
            })
            .emit(&key, &mut raw);
            self.stats.hellos_sent += 1;
            if !self.is_up() {
                self.hello_deadline = Some(now + self.hello_interval);
                self.hello_interval = (self.hello_interval * 2).min(self.cfg.keepalive);
            }
            // Features travel with every HELLO until the peer has them.
            if !self.cfg.features.is_empty() && !self.caps_confirmed {
                self.caps_due = true;
            }
        } else if self.caps_due {
            self.caps_due = false;
            let have_yours = self
                .peer_caps
                .is_some_and(|c| Some(c.epoch) == self.peer_epoch && c.seen == self.epoch);
            Repr::Caps(Caps {
                epoch: self.epoch,
                seen: self.peer_epoch.unwrap_or(0),
                features: self.cfg.features,
                max_payload: self.cfg.payload_ceiling() as u16,
                have_yours,
            })
            .emit(&key, &mut raw);
        } else if self.established {
            // A suspended frame lets one new frame past, then is resumed.
            let mut pick = None;
            if let Some(sus) = &mut self.suspended {
                if !self.snd.is_unacked(sus.data.seq) {
                    self.suspended = None;
                } else if !sus.passed && self.snd.has_unsent() {
                    sus.passed = true;
                    if let Some((q, p)) = self.snd.next_unsent() {
                        // The overtaking payload takes the stopped frame's
                        // place in the order, and the stopped frame the next.
                        let seq = if self.snd.overtake(sus.data.seq, q) {
                            std::mem::replace(&mut sus.data.seq, q)
                        } else {
                            q
                        };
                        pick = Some((seq, p, false));
                        self.stats.frames_overtaken += u64::from(seq != q);
                    }
                } else {
                    resume_of = self.suspended.take().map(|s| s.data);
                }
            }
            if resume_of.is_none() && pick.is_none() && self.suspended.is_none() {
                pick = self.snd.next_to_send();
            }
            if let Some(d) = &mut resume_of {
                let header = frame::Resume {
                    offset: d.base as u16,
                    renumber: (d.seq != d.frame_seq).then_some(d.seq),
                };
                header.emit(&key, &mut raw);
                raw.extend_from_slice(&d.raw[d.base..]);
                d.encoding = TxEncoding::Resume {
                    header: header.header_len(),
                };
            } else if let Some((seq, payload, retx)) = pick {
                let ack = self.ack_for_data();
                carried_ack = ack.is_some();
                Repr::Data {
                    seq,
                    ack,
                    payload: &payload,
                }
                .emit(&key, &mut raw);
                payload_len = payload.len();
                self.snd.begin_transmit(seq, now);
                if retx {
                    self.stats.frames_retransmitted += 1;
                }
                self.stats.payload_bytes_sent += payload_len as u64;
                if self.rto_deadline.is_none() {
                    self.rto_deadline = Some(now + self.rtt.rto());
                }
                data = Some(TxData {
                    seq,
                    frame_seq: seq,
                    raw: raw.clone(),
                    base: 0,
                    wire: 0,
                    encoding: TxEncoding::Frame,
                });
            } else if self.ack_due || self.keepalive_due {
                Repr::Ack(self.rcv.ack_info()).emit(&key, &mut raw);
                carried_ack = true;
                self.stats.acks_sent += 1;
            }
        }
        if raw.is_empty() {
            self.raw = raw;
            return false;
        }
        if carried_ack {
            self.ack_due = false;
            self.ack_deadline = None;
            self.ack_repeat = self.ack_repeat.saturating_sub(1);
        }
        if let Some(k) = self.keyed.as_mut() {
            if !handshake && resume_of.is_none() {
                // Sealed once per transmission, so a retransmission takes a new
                // nonce; a RESUME resends these very bytes, never resealed.
                k.seal(&mut raw);
                if let Some(d) = &mut data {
                    d.raw.clone_from(&raw);
                }
            }
        }
        let mut buf = Vec::with_capacity(cobs::max_encoded_len(raw.len()) + 2);
        // After an idle line, a leading delimiter flushes any garbage the receiver
        // may hold, so this frame is not merged with it.
        let lead = usize::from(now >= self.last_tx_end + Duration::from_millis(5));
        if lead == 1 {
            buf.push(0);
        }
        cobs::encode(&raw, &mut buf);
        let n = buf.len();
        self.raw = raw;
        self.keepalive_due = false;
        self.last_tx = now;
        self.last_tx_end = now.max(self.last_tx_end) + self.cfg.byte_time(n);
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        self.stats.framing_overhead_bytes += (n - payload_len) as u64;
        // A RESUME continues the same transmission of the same frame.
        let data = data.or(resume_of);
        self.tx = Some(Tx {
            buf,
            pos: 0,
            lead,
            data,
        });
        true
    }
}
