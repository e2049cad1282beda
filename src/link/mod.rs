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
//!   (kind 5); LARGE_FRAMES raises the payload cap to 1984 B (CRC-32K); FEC lets
//!   frames travel Reed-Solomon coded instead of COBS, at the level the
//!   receiver asks for ([`fec`], [`coding`]).
//!
//! # Layout
//! - This file: the [`Link`] itself — its session state, timers and the calls
//!   the layer above makes; `config`: what it is told; `event`: what it
//!   reports (events, typed mismatch reasons, counters).
//! - `rx`: the receive path (decoding, RESUME pieces, frames, acks);
//!   `tx`: the transmit path (which frame next, pieces, preemption);
//!   `caps`: the CAPS exchange; `foreign`: recognising a far end that is
//!   not sfs; `timers`: the one table of deadlines.
//! - [`cobs`]: framing; [`fec`] and [`rs`]: coded frames and their
//!   Reed-Solomon code; [`frame`]: header `Repr` parse/emit; [`crc`]: CRC-32C;
//!   [`seq`]: sequence numbers; [`arq`]: send/receive windows; [`rtt`]: RTO
//!   estimator; [`pacer`]: write pacing for drivers; [`session`]: handshake rules and
//!   the frame-size rule; [`crypto`] and [`handshake`]: keyed links.

pub mod arq;
mod caps;
pub mod cobs;
mod coding;
mod config;
pub mod crc;
pub mod crypto;
mod event;
pub mod features;
pub mod fec;
#[cfg(test)]
mod fec_sim_tests;
mod foreign;
pub mod frame;
pub mod handshake;
#[cfg(test)]
mod keyed_tests;
pub mod pacer;
pub mod rs;
pub mod rtt;
mod rx;
pub mod seq;
pub mod session;
#[cfg(test)]
mod tests;
mod timers;
pub mod turn;
#[cfg(test)]
mod turn_tests;
mod tx;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use arq::{RecvWindow, SendWindow, MAX_WINDOW};
use caps::CapsExchange;
use foreign::ForeignPeer;
use frame::{LARGE_MAX_PAYLOAD, MAX_PAYLOAD, MAX_RAW_FRAME};
use rtt::RttEstimator;
use session::ErrorRate;
use timers::{Timer, Timers};
use tx::{Suspended, Tx};

pub use config::{LinkConfig, DEFAULT_DEAD_AFTER, DEFAULT_KEEPALIVE};
pub use event::{LinkEvent, LinkStats, Mismatch};
pub use features::Features;
pub use handshake::KeyedReport;
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

/// Where the link is with its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    /// No session agreed (at the start, after a restart, after the peer was
    /// lost): HELLOs go out until the peer answers, each `interval` apart,
    /// doubling up to the keepalive.
    Probing {
        interval: Duration,
        /// Our own HELLOs heard back meanwhile (a looped line, or a bus that
        /// echoes).
        own_hellos: u32,
    },
    /// Agreed with the peer, and the peer is heard from within `dead_after`.
    Up,
}

/// The first HELLO interval of a new session's probing, and of CAPS resends.
const HELLO_INITIAL: Duration = Duration::from_millis(100);
/// Own HELLOs received back, with no session, before the loop is reported:
/// a bus that echoes what we send (2-wire RS-485) but has a real peer on it
/// gets its session from the first HELLO exchange, well before the third echo.
const LOOP_HELLOS: u32 = 3;

/// The link state machine (see the module docs).
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    epoch: u32,
    peer_epoch: Option<u32>,
    /// The epoch before the last change: its HELLOs may still come back
    /// through a loop.
    prev_epoch: u32,
    session: Session,
    peer_window: u16,
    snd: SendWindow,
    rcv: RecvWindow,
    rtt: RttEstimator,
    timers: Timers,
    /// A HELLO should go out at the next opportunity.
    hello_due: bool,
    /// A standalone ack should go out at the next opportunity.
    ack_due: bool,
    /// Data frames that still carry an ack after a received one (a lost ack
    /// is then repaired without waiting for the peer's RTO).
    ack_repeat: u8,
    /// A keepalive should go out at the next opportunity.
    keepalive_due: bool,
    last_tx: Instant,
    /// When the line will have sent everything handed out so far.
    last_tx_end: Instant,
    /// A valid frame arrived since the last RTO expiry: the line is noisy,
    /// not dead.
    rx_since_rto: bool,
    foreign: ForeignPeer,
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
    caps: CapsExchange,
    /// Forward error correction: the level in use and the line's estimate.
    coding: coding::Coding,
    /// Half duplex: who may transmit ([`turn`]); None on a full-duplex line.
    turns: Option<turn::Turns>,
    /// Half duplex: the next frame is the PASS that ends our turn.
    pass_due: bool,
}

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
        if let Some(t) = &cfg.turns {
            // A frame should fit a turn twice over, or a keystroke
            // waits behind one frame longer than the turn itself.
            let fit = (u128::from(cfg.byte_rate) * t.max_turn.as_nanos() / 2_000_000_000) as usize;
            cfg.max_payload = cfg.max_payload.min(fit.max(MIN_PAYLOAD));
            cfg.large_max_payload = cfg.large_max_payload.min(fit.max(MIN_PAYLOAD));
        }
        let floor = cfg.rto_floor();
        cfg.max_rto = cfg.max_rto.max(cfg.rto_floor_for(cfg.payload_ceiling()));
        let initial = floor.max(Duration::from_millis(300)).min(cfg.max_rto);
        let epoch = epoch.max(1);
        Link {
            rtt: RttEstimator::new(floor, cfg.max_rto, initial),
            snd: SendWindow::new(cfg.window),
            rcv: RecvWindow::new(cfg.window),
            epoch,
            peer_epoch: None,
            prev_epoch: epoch,
            session: Session::Probing {
                interval: HELLO_INITIAL,
                own_hellos: 0,
            },
            peer_window: cfg.window,
            timers: Timers::default(),
            hello_due: true,
            ack_due: false,
            ack_repeat: 0,
            keepalive_due: false,
            last_tx: now,
            last_tx_end: now,
            rx_since_rto: false,
            foreign: ForeignPeer::new(),
            decoder: cobs::Decoder::new(
                cobs::max_encoded_len(MAX_RAW_FRAME + crypto::SEAL_OVERHEAD)
                    .max(fec::max_wire_len(MAX_RAW_FRAME + crypto::SEAL_OVERHEAD)),
            ),
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
                .map(|k| Box::new(handshake::Keyed::new(k, epoch, now))),
            plain: Vec::new(),
            tx: None,
            suspended: None,
            rx_kept: None,
            caps: CapsExchange::new(),
            coding: coding::Coding::default(),
            turns: cfg.turns.map(|t| turn::Turns::new(t, epoch, now)),
            pass_due: false,
            cfg,
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
        self.session == Session::Up
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
        self.reset_session(HELLO_INITIAL);
        self.new_epoch();
        self.hello_due = true;
        self.caps.unconfirm();
    }

    fn new_epoch(&mut self) {
        self.prev_epoch = self.epoch;
        self.epoch = next_epoch(self.epoch);
    }

    /// Reports `m`, once until a session is agreed: the far end is not an sfs
    /// peer (or not one we can talk to).
    fn report_mismatch(&mut self, m: Mismatch) {
        if let Some(m) = self.foreign.report(m) {
            self.events.push_back(LinkEvent::ProtocolMismatch(m));
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
        self.fec_stats(&mut s);
        s.turns = self.turns.as_ref().map(|t| t.stats());
        s
    }

    /// A frame that only a peer in this session could have sent (a DATA or ACK
    /// under both epochs, or a sealed frame) arrived.
    fn on_session_frame(&mut self, now: Instant) {
        if !self.is_up() {
            self.establish(now);
        }
    }

    /// The session is agreed: the peer is up.
    fn establish(&mut self, now: Instant) {
        self.session = Session::Up;
        self.foreign.session_agreed();
        self.timers.stop(Timer::Hello);
        self.timers
            .set(Timer::Keepalive, self.last_tx + self.cfg.keepalive);
        self.timers.set(Timer::PeerDead, now + self.cfg.dead_after);
        self.stats.sessions += 1;
        self.snd.set_window(self.cfg.window.min(self.peer_window));
        if let Some(p) = self.peer_epoch {
            self.events.push_back(LinkEvent::Up { peer_epoch: p });
        }
        self.caps_on_establish(now);
    }

    /// Drops the session and everything in flight either way; probing starts
    /// again with HELLOs `probe_every` apart.
    fn reset_session(&mut self, probe_every: Duration) {
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
        self.caps.session_reset();
        self.coding.session_reset();
        self.rtt.set_min_rto(self.cfg.rto_floor());
        self.cur_max_payload = self.cur_max_payload.min(self.cfg.max_payload);
        self.snd = SendWindow::new(self.cfg.window);
        self.rcv = RecvWindow::new(self.cfg.window);
        self.session = Session::Probing {
            interval: probe_every,
            own_hellos: 0,
        };
        for t in [
            Timer::Retransmit,
            Timer::Ack,
            Timer::Caps,
            Timer::Keepalive,
            Timer::PeerDead,
        ] {
            self.timers.stop(t);
        }
        self.ack_due = false;
        self.ack_repeat = 0;
        self.keepalive_due = false;
        self.rtt.on_progress();
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
        if self.timers.expire(Timer::Retransmit, now) {
            self.on_retransmit_timeout(now);
        }
        if self.timers.expire(Timer::Ack, now) {
            self.ack_due = true;
        }
        if self.timers.expire(Timer::Keepalive, now) {
            self.keepalive_due = true;
        }
        if let Some(k) = self.keyed.as_mut() {
            k.handle_timeout(now);
        }
        if self.timers.expire(Timer::Hello, now) && !self.is_up() {
            self.hello_due = true;
        }
        if self.timers.expire(Timer::PeerDead, now) {
            self.on_peer_lost();
        }
        if self.timers.expire(Timer::Caps, now) {
            self.caps_timeout(now);
        }
        // The turn allows a frame again: the driver's next poll_transmit sends it.
        self.timers.expire(Timer::Turn, now);
    }

    fn on_retransmit_timeout(&mut self, now: Instant) {
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
        self.arm_retransmit(now);
    }

    /// The RTO runs while frames are in flight.
    fn arm_retransmit(&mut self, now: Instant) {
        if self.snd.outstanding() {
            self.timers.set(Timer::Retransmit, now + self.rtt.rto());
        } else {
            self.timers.stop(Timer::Retransmit);
        }
    }

    /// No valid frame for `dead_after`. The session ends here: whatever is in
    /// flight either way is dropped, and a new epoch makes sure none of it can
    /// be delivered later into a fresh session (the peer sees a restart when it
    /// hears from us again).
    fn on_peer_lost(&mut self) {
        self.events.push_back(LinkEvent::PeerLost);
        if let Some(k) = self.keyed.as_mut() {
            k.on_session_lost();
        }
        self.reset_session(self.cfg.keepalive);
        self.new_epoch();
        self.hello_due = true;
        self.caps.unconfirm();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keyed = self.keyed.as_ref().and_then(|k| k.poll_timeout());
        match (self.timers.next(), keyed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
