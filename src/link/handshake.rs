//! The keyed link's session layer: a Noise `NNpsk0` handshake per session and
//! the rules deciding which keys the link uses. Sans-IO like the rest of the
//! link: time is an argument, randomness comes from a seeded [`SeededRng`].
//!
//! Handshake frame (kind 6), before COBS:
//!
//! ```text
//! byte 0      0x60 | m      m = 1 (initiator → responder) or 2 (reply)
//! message     Noise NNpsk0 message m:
//!               m = 1: ephemeral key (32) ‖ sealed stamp (8 + tag 16)
//!               m = 2: ephemeral key (32) ‖ empty payload's tag (16)
//! crc32c      u32 LE over the above (unkeyed: tells line noise from a wrong key)
//! ```
//!
//! `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, prologue `sfs link v1`:
//! `→ psk, e` then `← e, ee`. Message 1 already proves knowledge of the secret
//! (its payload is sealed under it) but can be replayed; message 2 proves the
//! responder holds the secret *and* is live (it answers a fresh ephemeral key).
//! Message 1's payload is a *stamp* (u64 BE, µs since the UNIX epoch, as the
//! initiator's wall clock reads it — the driver passes that clock in,
//! [`KeyConfig::clock`] — and strictly increasing per link), as WireGuard's
//! TAI64N: the responder keeps the newest stamp it saw and refuses older ones,
//! so a recording is worthless once the peer has handshaked after it. No shared
//! clock is needed, only one that does not go back between the peer's runs. So:
//!
//! - The initiator switches to the new keys on a valid message 2.
//! - The responder keeps its current session and parks the new keys as
//!   *pending* (up to [`MAX_PENDING`], by initiator key) until a sealed frame
//!   opens under them — only the live initiator can make one. A replayed
//!   message 1 thus costs a reply and nothing else; a restarted peer's real one
//!   replaces the old session as soon as the peer speaks.
//! - A message 1 whose stamp is older than the newest seen (or equal to it,
//!   once that one's handshake is over: a session agreed or lost since) is
//!   stale: refused without a reply, and never touches our own initiation.
//! - A side without a session initiates, resending the same message 1 with
//!   back-off (100 ms doubling to 1 s); a lost reply is resent verbatim when the
//!   same message 1 comes again. When both initiate at once, the larger
//!   ephemeral key stays initiator and the other answers — and keeps its own
//!   initiation: a message 1 is unconfirmed (only a sealed frame under its keys
//!   confirms it), so it may delay our next resend once, never cancel it.
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
/// Length of message 2 (ephemeral key + tag of the empty payload).
pub const MSG_LEN: usize = 32 + TAG_LEN;
/// Length of message 1's payload: the stamp.
pub const STAMP_LEN: usize = 8;
/// Length of message 1 (ephemeral key + sealed stamp).
pub const MSG1_LEN: usize = 32 + STAMP_LEN + TAG_LEN;
/// Raw frame length of message 2 (and of message 1 before stamps: the keyed
/// handshake of sfs 2026-11, which this one refuses with a report).
pub const HANDSHAKE_FRAME: usize = 1 + MSG_LEN + 4;
/// Raw frame length of message 1.
pub const HANDSHAKE1_FRAME: usize = 1 + MSG1_LEN + 4;
/// Responder sessions waiting for the initiator's first sealed frame.
pub const MAX_PENDING: usize = 4;
/// A keyed handshake that failed or was refused, for the log (at most one of
/// each kind per [`REPORT_EVERY`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyedReport {
    /// A handshake message failed authentication.
    AuthFailed {
        /// Which message.
        what: &'static str,
        /// Failures so far.
        failures: u64,
    },
    /// The peer's message 1 has no timestamp: an sfs from before them.
    OldHandshake,
    /// The peer speaks the unkeyed protocol.
    PeerUnkeyed,
    /// An authentic handshake older than one already seen.
    Stale {
        /// How many so far.
        count: u64,
    },
}

impl std::fmt::Display for KeyedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyedReport::AuthFailed { what, failures } => write!(
                f,
                "keyed link: {what} failed authentication: the peer does not know our secret \
                 (secret-file differs), or replays an old handshake ({failures} failed so far)"
            ),
            KeyedReport::OldHandshake => f.write_str(
                "keyed link: the peer runs an older sfs whose keyed handshake \
                 has no timestamp; update both ends",
            ),
            KeyedReport::PeerUnkeyed => f.write_str(
                "keyed link: the peer speaks the unkeyed protocol (no secret-file \
                 there?); ignoring it",
            ),
            KeyedReport::Stale { count } => write!(
                f,
                "keyed link: ignored a handshake older than one already seen from \
                 the peer: a replayed recording, or the peer's clock went back \
                 ({count} so far)"
            ),
        }
    }
}

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

/// The peer's newest authentic message 1, by stamp.
#[derive(Debug, Clone, Copy)]
struct Newest {
    stamp: u64,
    ephemeral: [u8; 32],
    /// Its handshake may still be going on: no session was agreed or lost
    /// since it came, so the peer may resend it (a repeat is not a replay).
    open: bool,
}

/// How a message 1's stamp compares with the newest seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// Newer than anything seen: a new handshake.
    Fresh,
    /// The newest one again while its handshake may be going on.
    Repeat,
    /// The newest one again after its handshake ended: the peer's late
    /// resend (or a replay of it); dropped without a word.
    Done,
    /// Older than the newest: a recording (or the peer's clock went back).
    Stale,
}

struct Pending {
    ephemeral: [u8; 32],
    reply: Vec<u8>,
    transport: Transport,
}

/// Handshake and key state of a keyed link.
pub struct Keyed {
    /// Wiped when dropped, as every copy of the key (see `crypto::Secret`).
    psk: crate::link::crypto::Secret,
    rng: SeededRng,
    params: NoiseParams,
    current: Option<Transport>,
    initiator: Option<Initiator>,
    pending: VecDeque<Pending>,
    replies: VecDeque<Vec<u8>>,
    init_due: bool,
    init_deadline: Option<Instant>,
    init_interval: Duration,
    /// Our initiation was already put off once, since the last session was
    /// agreed or lost, for a peer's message 1 we answered: another one
    /// (maybe a replay) does not put it off again.
    deferred: bool,
    /// The wall clock (since the UNIX epoch) at `created`, from the driver.
    clock: Duration,
    created: Instant,
    /// Our last stamp: the next one is greater.
    last_stamp: u64,
    newest: Option<Newest>,
    reports: VecDeque<KeyedReport>,
    last_mismatch: Option<Instant>,
    last_unkeyed: Option<Instant>,
    last_stale: Option<Instant>,
    last_old_version: Option<Instant>,
    failures: u64,
    scratch: Vec<u8>,
    /// Sessions keyed so far (handshakes completed on either side).
    pub sessions: u64,
    /// Handshake messages that failed authentication.
    pub auth_failures: u64,
    /// Authentic sealed frames dropped as replays.
    pub replays: u64,
    /// Authentic message 1s refused as stale (replays, or a peer's clock
    /// that went back).
    pub stale_handshakes: u64,
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

/// A message 1's stamp against the newest seen.
fn freshness(newest: Option<&Newest>, stamp: u64, ephemeral: &[u8; 32]) -> Freshness {
    match newest {
        None => Freshness::Fresh,
        Some(n) if stamp > n.stamp => Freshness::Fresh,
        Some(n) if stamp == n.stamp && ephemeral == &n.ephemeral => {
            if n.open {
                Freshness::Repeat
            } else {
                Freshness::Done
            }
        }
        Some(_) => Freshness::Stale,
    }
}

fn ephemeral_of(msg: &[u8]) -> [u8; 32] {
    let mut e = [0u8; 32];
    e.copy_from_slice(&msg[..32]);
    e
}

impl Keyed {
    /// Keyed state for a link with `epoch` (mixed into the RNG seed), created
    /// at `now`, when the wall clock reads `cfg.clock`.
    pub fn new(cfg: &KeyConfig, epoch: u32, now: Instant) -> Self {
        Keyed {
            psk: cfg.secret.clone(),
            rng: SeededRng::new(&cfg.seed, &epoch.to_le_bytes()),
            params: NOISE_PARAMS.parse().expect("valid Noise parameters"),
            current: None,
            initiator: None,
            pending: VecDeque::new(),
            replies: VecDeque::new(),
            init_due: true,
            init_deadline: None,
            init_interval: INIT_FIRST,
            deferred: false,
            clock: cfg.clock,
            created: now,
            last_stamp: 0,
            newest: None,
            reports: VecDeque::new(),
            last_mismatch: None,
            last_unkeyed: None,
            last_stale: None,
            last_old_version: None,
            failures: 0,
            scratch: Vec::new(),
            sessions: 0,
            auth_failures: 0,
            replays: 0,
            stale_handshakes: 0,
        }
    }

    /// The stamp of a new message 1: the wall clock at `now` in µs, and always
    /// greater than our last one.
    fn next_stamp(&mut self, now: Instant) -> u64 {
        let wall = self.clock + now.saturating_duration_since(self.created);
        let us = u64::try_from(wall.as_micros()).unwrap_or(u64::MAX);
        self.last_stamp = us.max(self.last_stamp.saturating_add(1));
        self.last_stamp
    }

    /// A session was agreed or lost: the peer's newest message 1 has had its
    /// answer, and a copy of it is a replay from now on.
    fn close_newest(&mut self) {
        if let Some(n) = self.newest.as_mut() {
            n.open = false;
        }
        self.deferred = false;
    }

    fn builder(&mut self) -> Builder<'_> {
        let rng = self.rng.fork();
        Builder::with_resolver(self.params.clone(), Box::new(Resolver::new(rng)))
            .prologue(PROLOGUE)
            .and_then(|b| b.psk(0, &self.psk.0))
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
    pub fn poll_report(&mut self) -> Option<KeyedReport> {
        self.reports.pop_front()
    }

    /// The session is over (the peer went silent): drop its keys and handshake
    /// anew, so the next session has fresh keys.
    pub fn on_session_lost(&mut self) {
        self.current = None;
        self.initiator = None;
        self.pending.clear();
        self.close_newest();
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
            let stamp = self.next_stamp(now);
            let mut hs = self
                .builder()
                .build_initiator()
                .expect("NNpsk0 initiator builds");
            let mut msg = [0u8; MSG1_LEN];
            let n = hs
                .write_message(&stamp.to_be_bytes(), &mut msg)
                .expect("message 1 fits");
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

    fn report(
        last: &mut Option<Instant>,
        reports: &mut VecDeque<KeyedReport>,
        now: Instant,
        s: KeyedReport,
    ) {
        if last.is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY) {
            *last = Some(now);
            reports.push_back(s);
        }
    }

    fn mismatch(&mut self, now: Instant, what: &'static str) {
        self.auth_failures += 1;
        self.failures += 1;
        let n = self.failures;
        Self::report(
            &mut self.last_mismatch,
            &mut self.reports,
            now,
            KeyedReport::AuthFailed { what, failures: n },
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
                let m = first & 0xF;
                let len_ok = match m {
                    1 => raw.len() == HANDSHAKE1_FRAME || raw.len() == HANDSHAKE_FRAME,
                    2 => raw.len() == HANDSHAKE_FRAME,
                    _ => false,
                };
                if !len_ok {
                    return Received::Malformed;
                }
                let (body, crc) = raw.split_at(raw.len() - 4);
                if crc32c(&[], body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
                    return Received::Corrupt;
                }
                match m {
                    1 if raw.len() == HANDSHAKE_FRAME => {
                        // An intact message 1 without a stamp: a peer with the
                        // keyed handshake of before stamps. It cannot read ours
                        // either, so say so rather than fail in silence.
                        Self::report(
                            &mut self.last_old_version,
                            &mut self.reports,
                            now,
                            KeyedReport::OldHandshake,
                        );
                        Received::Refused
                    }
                    1 => self.on_message1(now, &body[1..]),
                    _ => self.on_message2(now, &body[1..]),
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
                        KeyedReport::PeerUnkeyed,
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
                    self.close_newest();
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
        let mut payload = [0u8; MSG1_LEN];
        let stamp = match hs.read_message(msg, &mut payload) {
            Ok(STAMP_LEN) => {
                u64::from_be_bytes(payload[..STAMP_LEN].try_into().expect("stamp length"))
            }
            _ => {
                self.mismatch(now, "handshake message 1 from the peer");
                return Received::Refused;
            }
        };
        let fresh = freshness(self.newest.as_ref(), stamp, &e);
        match fresh {
            Freshness::Fresh => {
                self.newest = Some(Newest {
                    stamp,
                    ephemeral: e,
                    open: true,
                })
            }
            Freshness::Repeat => {}
            Freshness::Done => return Received::Refused,
            Freshness::Stale => {
                // Authentic, so not noise and not a wrong key: a recording
                // replayed — or the peer restarted with its clock set back,
                // then it is heard once our own handshake reaches it.
                self.stale_handshakes += 1;
                let n = self.stale_handshakes;
                Self::report(
                    &mut self.last_stale,
                    &mut self.reports,
                    now,
                    KeyedReport::Stale { count: n },
                );
                return Received::Refused;
            }
        }
        if self.initiator.as_ref().is_some_and(|i| i.ephemeral > e) {
            // Both initiated: the larger ephemeral key stays initiator.
            return Received::Handshake;
        }
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
        // Our own initiation stays: this message 1 is unconfirmed until a
        // sealed frame opens under its keys, and may be a recording whose
        // sender is long gone (one that made us drop ours, and put it off
        // again each second, kept a lost session from ever coming back). It
        // waits once per round, for a fresh message 1, so that the peer's
        // session confirms first rather than crossing a second handshake.
        if self.current.is_none() && fresh == Freshness::Fresh && !self.deferred {
            self.deferred = true;
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
        self.close_newest();
        self.init_deadline = None;
        self.init_interval = INIT_FIRST;
        self.sessions += 1;
        Received::Handshake
    }
}
