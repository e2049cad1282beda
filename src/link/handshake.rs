//! The keyed link's session layer: a Noise `NNpsk0` handshake per session and
//! the rules deciding which keys the link uses. Sans-IO like the rest of the
//! link: time is an argument, randomness comes from a seeded [`SeededRng`].
//!
//! Handshake frame (kind 6), before COBS:
//!
//! ```text
//! byte 0      0x60 | m      m = 1 (initiator → responder) or 2 (reply)
//! message     Noise NNpsk0 message m: ephemeral key (32) ‖ empty payload's tag (16)
//! crc32c      u32 LE over the above (unkeyed: tells line noise from a wrong key)
//! ```
//!
//! `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, prologue `sfs link v1`:
//! `→ psk, e` then `← e, ee`. Message 1 already proves knowledge of the secret
//! (its tag is keyed by it) but can be replayed; message 2 proves the responder
//! holds the secret *and* is live (it answers a fresh ephemeral key). So:
//!
//! - The initiator switches to the new keys on a valid message 2.
//! - The responder keeps its current session and parks the new keys as
//!   *pending* (up to [`MAX_PENDING`], by initiator key) until a sealed frame
//!   opens under them — only the live initiator can make one. A replayed
//!   message 1 thus costs a reply and nothing else; a restarted peer's real one
//!   replaces the old session as soon as the peer speaks.
//! - A side without a session initiates, resending the same message 1 with
//!   back-off (100 ms doubling to 1 s); a lost reply is resent verbatim when the
//!   same message 1 comes again. When both initiate at once, the larger
//!   ephemeral key stays initiator and the other answers.
//! - Every session has fresh ephemeral keys, so frames of an old session (a
//!   restarted peer's, or a recording) never open in a new one; within a
//!   session the replay window rejects repeats.
//!
//! A message that fails authentication though its CRC is intact means the peer
//! does not hold our secret (or replays a stale handshake): reported at most
//! once per [`REPORT_EVERY`], as is a peer speaking the unkeyed protocol.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use snow::params::NoiseParams;
use snow::{Builder, HandshakeState};

use super::crc::crc32c;
use super::crypto::{KeyConfig, OpenError, Resolver, SeededRng, Transport, KIND_SEALED, TAG_LEN};

/// Frame kind of handshake messages.
pub const KIND_HANDSHAKE: u8 = 6;
/// Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE: &[u8] = b"sfs link v1";
/// Length of a handshake message (ephemeral key + tag of the empty payload).
pub const MSG_LEN: usize = 32 + TAG_LEN;
/// Raw handshake frame length.
pub const HANDSHAKE_FRAME: usize = 1 + MSG_LEN + 4;
/// Responder sessions waiting for the initiator's first sealed frame.
pub const MAX_PENDING: usize = 4;
/// Least time between two reports of the same failure.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);
const INIT_FIRST: Duration = Duration::from_millis(100);
const INIT_MAX: Duration = Duration::from_secs(1);

/// What a received raw frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A sealed frame opened: the inner frame (without CRC) is in the buffer.
    Frame,
    /// A valid handshake message (handled; maybe a reply is due).
    Handshake,
    /// An intact frame the keyed link does not accept (unkeyed protocol, a
    /// handshake that failed authentication, an unsolicited reply).
    Refused,
    /// Damaged or unauthentic: line noise, or a forgery.
    Corrupt,
    /// An authentic sealed frame already received.
    Replay,
    /// Not a frame of any kind we know.
    Malformed,
}

struct Initiator {
    hs: HandshakeState,
    frame: Vec<u8>,
    ephemeral: [u8; 32],
}

struct Pending {
    ephemeral: [u8; 32],
    reply: Vec<u8>,
    transport: Transport,
}

/// Handshake and key state of a keyed link.
pub struct Keyed {
    psk: [u8; 32],
    rng: SeededRng,
    params: NoiseParams,
    current: Option<Transport>,
    initiator: Option<Initiator>,
    pending: VecDeque<Pending>,
    replies: VecDeque<Vec<u8>>,
    init_due: bool,
    init_deadline: Option<Instant>,
    init_interval: Duration,
    reports: VecDeque<String>,
    last_mismatch: Option<Instant>,
    last_unkeyed: Option<Instant>,
    failures: u64,
    scratch: Vec<u8>,
    /// Sessions keyed so far (handshakes completed on either side).
    pub sessions: u64,
    /// Handshake messages that failed authentication.
    pub auth_failures: u64,
    /// Authentic sealed frames dropped as replays.
    pub replays: u64,
}

impl fmt::Debug for Keyed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("current", &self.current)
            .field("initiating", &self.initiator.is_some())
            .field("pending", &self.pending.len())
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

fn handshake_frame(m: u8, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(HANDSHAKE_FRAME);
    f.push(KIND_HANDSHAKE << 4 | m);
    f.extend_from_slice(msg);
    let crc = crc32c(&[], &f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

fn ephemeral_of(msg: &[u8]) -> [u8; 32] {
    let mut e = [0u8; 32];
    e.copy_from_slice(&msg[..32]);
    e
}

impl Keyed {
    /// Keyed state for a link with `epoch` (mixed into the RNG seed).
    pub fn new(cfg: &KeyConfig, epoch: u32) -> Self {
        Keyed {
            psk: cfg.secret.0,
            rng: SeededRng::new(&cfg.seed, &epoch.to_le_bytes()),
            params: NOISE_PARAMS.parse().expect("valid Noise parameters"),
            current: None,
            initiator: None,
            pending: VecDeque::new(),
            replies: VecDeque::new(),
            init_due: true,
            init_deadline: None,
            init_interval: INIT_FIRST,
            reports: VecDeque::new(),
            last_mismatch: None,
            last_unkeyed: None,
            failures: 0,
            scratch: Vec::new(),
            sessions: 0,
            auth_failures: 0,
            replays: 0,
        }
    }

    fn builder(&mut self) -> Builder<'_> {
        let rng = self.rng.fork();
        Builder::with_resolver(self.params.clone(), Box::new(Resolver::new(rng)))
            .prologue(PROLOGUE)
            .and_then(|b| b.psk(0, &self.psk))
            .expect("NNpsk0 takes a PSK at position 0")
    }

    /// Keys are agreed: sealed frames may be sent.
    pub fn ready(&self) -> bool {
        self.current.is_some()
    }

    /// Counter of the next sealed frame (for tests).
    pub fn next_counter(&self) -> Option<u64> {
        self.current.as_ref().map(Transport::next_counter)
    }

    /// Next failure report for the log.
    pub fn poll_report(&mut self) -> Option<String> {
        self.reports.pop_front()
    }

    /// The session is over (the peer went silent): drop its keys and handshake
    /// anew, so the next session has fresh keys.
    pub fn on_session_lost(&mut self) {
        self.current = None;
        self.initiator = None;
        self.pending.clear();
        self.init_due = true;
        self.init_deadline = None;
        self.init_interval = INIT_FIRST;
    }

    /// Seals inner frame `raw` (with CRC) in place. Call only when [`ready`](Self::ready).
    pub fn seal(&mut self, raw: &mut Vec<u8>) {
        if let Some(t) = self.current.as_mut() {
            t.seal(raw, &mut self.scratch);
        }
    }

    /// If a handshake message is due, puts its raw frame in `raw` and returns true.
    pub fn poll_handshake(&mut self, now: Instant, raw: &mut Vec<u8>) -> bool {
        if let Some(f) = self.replies.pop_front() {
            raw.clear();
            raw.extend_from_slice(&f);
            return true;
        }
        if self.current.is_some() || !self.init_due {
            return false;
        }
        self.init_due = false;
        if self.initiator.is_none() {
            let mut hs = self
                .builder()
                .build_initiator()
                .expect("NNpsk0 initiator builds");
            let mut msg = [0u8; MSG_LEN];
            let n = hs.write_message(&[], &mut msg).expect("message 1 fits");
            self.initiator = Some(Initiator {
                hs,
                frame: handshake_frame(1, &msg[..n]),
                ephemeral: ephemeral_of(&msg),
            });
        }
        let i = self.initiator.as_ref().expect("just made");
        raw.clear();
        raw.extend_from_slice(&i.frame);
        self.init_deadline = Some(now + self.init_interval);
        self.init_interval = (self.init_interval * 2).min(INIT_MAX);
        true
    }

    /// Processes expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.init_deadline.is_some_and(|t| now >= t) {
            self.init_deadline = None;
            if self.current.is_none() {
                self.init_due = true;
            }
        }
    }

    /// Next timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.current.is_some() {
            None
        } else {
            self.init_deadline
        }
    }

    fn report(last: &mut Option<Instant>, reports: &mut VecDeque<String>, now: Instant, s: String) {
        if last.is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY) {
            *last = Some(now);
            reports.push_back(s);
        }
    }

    fn mismatch(&mut self, now: Instant, what: &str) {
        self.auth_failures += 1;
        self.failures += 1;
        let n = self.failures;
        Self::report(
            &mut self.last_mismatch,
            &mut self.reports,
            now,
            format!(
                "keyed link: {what} failed authentication: the peer does not know our secret \
                 (secret-file differs), or replays an old handshake ({n} failed so far)"
            ),
        );
    }

    /// Handles one raw frame (COBS removed); an opened inner frame goes to `out`.
    pub fn receive(&mut self, now: Instant, raw: &[u8], out: &mut Vec<u8>) -> Received {
        let Some(&first) = raw.first() else {
            return Received::Malformed;
        };
        match first >> 4 {
            KIND_SEALED => self.receive_sealed(raw, out),
            KIND_HANDSHAKE => {
                if raw.len() != HANDSHAKE_FRAME {
                    return Received::Malformed;
                }
                let (body, crc) = raw.split_at(raw.len() - 4);
                if crc32c(&[], body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
                    return Received::Corrupt;
                }
                match first & 0xF {
                    1 => self.on_message1(now, &body[1..]),
                    2 => self.on_message2(now, &body[1..]),
                    _ => Received::Malformed,
                }
            }
            _ => {
                // An intact plain frame: the peer speaks the unkeyed protocol.
                // (Only HELLO is recognisable: DATA/ACK are keyed by epochs.)
                use super::frame::{parse, ParseError, Repr};
                if matches!(
                    parse(raw, &[0; 8]),
                    Ok(Repr::Hello(_)) | Err(ParseError::Version(_))
                ) {
                    Self::report(
                        &mut self.last_unkeyed,
                        &mut self.reports,
                        now,
                        "keyed link: the peer speaks the unkeyed protocol (no secret-file \
                         there?); ignoring it"
                            .into(),
                    );
                    Received::Refused
                } else {
                    Received::Corrupt
                }
            }
        }
    }

    fn receive_sealed(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Received {
        let mut r = match self.current.as_mut() {
            Some(t) => t.open(raw, out),
            None => Err(OpenError::Auth),
        };
        if r == Err(OpenError::Auth) {
            // Maybe the initiator of a pending session speaking for the first time:
            // that proves it live, and its session replaces ours.
            for i in 0..self.pending.len() {
                r = self.pending[i].transport.open(raw, out);
                if r.is_ok() {
                    let p = self.pending.remove(i).expect("index in range");
                    self.pending.clear();
                    self.current = Some(p.transport);
                    self.initiator = None;
                    self.init_deadline = None;
                    self.init_interval = INIT_FIRST;
                    self.sessions += 1;
                    break;
                }
            }
        }
        match r {
            Ok(_) => Received::Frame,
            Err(OpenError::Replay) => {
                self.replays += 1;
                Received::Replay
            }
            Err(OpenError::Auth) => Received::Corrupt,
            Err(OpenError::Malformed) => Received::Malformed,
        }
    }

    fn on_message1(&mut self, now: Instant, msg: &[u8]) -> Received {
        let e = ephemeral_of(msg);
        if let Some(p) = self.pending.iter().find(|p| p.ephemeral == e) {
            // Our reply was lost: the same answer again.
            if self.replies.len() < MAX_PENDING {
                self.replies.push_back(p.reply.clone());
            }
            return Received::Handshake;
        }
        if self.initiator.as_ref().is_some_and(|i| i.ephemeral == e) {
            // Our own message 1 echoed back (a looped line): not a peer.
            return Received::Refused;
        }
        let mut hs = self
            .builder()
            .build_responder()
            .expect("NNpsk0 responder builds");
        let mut payload = [0u8; MSG_LEN];
        if hs.read_message(msg, &mut payload).is_err() {
            self.mismatch(now, "handshake message 1 from the peer");
            return Received::Refused;
        }
        if self.initiator.as_ref().is_some_and(|i| i.ephemeral > e) {
            // Both initiated: the larger ephemeral key stays initiator.
            return Received::Handshake;
        }
        self.initiator = None;
        let mut reply = [0u8; MSG_LEN];
        let n = hs.write_message(&[], &mut reply).expect("message 2 fits");
        let st = hs
            .into_stateless_transport_mode()
            .expect("NN handshake done after message 2");
        let reply = handshake_frame(2, &reply[..n]);
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            ephemeral: e,
            reply: reply.clone(),
            transport: Transport::new(st),
        });
        if self.replies.len() < MAX_PENDING {
            self.replies.push_back(reply);
        }
        if self.current.is_none() {
            // Give the initiator time to confirm before initiating ourselves.
            self.init_due = false;
            self.init_deadline = Some(now + INIT_MAX);
        }
        Received::Handshake
    }

    fn on_message2(&mut self, now: Instant, msg: &[u8]) -> Received {
        let Some(mut i) = self.initiator.take() else {
            // Not waiting for one: a stale duplicate or a replay.
            return Received::Refused;
        };
        let mut payload = [0u8; MSG_LEN];
        if i.hs.read_message(msg, &mut payload).is_err() {
            // snow restores the state on failure: the real reply still works.
            self.initiator = Some(i);
            self.mismatch(now, "handshake reply from the peer");
            return Received::Refused;
        }
        let st =
            i.hs.into_stateless_transport_mode()
                .expect("NN handshake done after message 2");
        self.current = Some(Transport::new(st));
        self.pending.clear();
        self.init_deadline = None;
        self.init_interval = INIT_FIRST;
        self.sessions += 1;
        Received::Handshake
    }
}
