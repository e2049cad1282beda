//! Turn-taking on a half-duplex medium (`duplex=half`: an RS-485 pair, a radio
//! channel), where bytes of the two directions that overlap in time are lost.
//! A pure state machine the link consults before it starts a frame; time is
//! always an argument.
//!
//! The rules (docs/link-protocol.md, "Half duplex"):
//! - One side holds the turn ([`Turns::permit`] says [`Permit::Send`]); the
//!   other listens and never transmits while it hears bytes.
//! - The holder sends what it has — data with piggy-backed acks, acks — and
//!   passes the turn with its last frame (a PASS, an ACK with the T flag), or
//!   when it has held it for `max_turn`, so the far end's keystrokes wait at
//!   most about that long. Before a session and CAPS allow a PASS it yields by
//!   falling silent instead.
//! - A side that got the turn and has nothing to say keeps it silently: an idle
//!   line stays idle (no turn ping-pong).
//! - The listener may *claim* the turn once the medium has been silent for
//!   `idle_gap` (the holder is silent, or the PASS was lost): the side with the
//!   higher epoch at once, the other one `slot` later, and a side that just
//!   yielded one more `slot` later. A claim that is not answered by a valid
//!   frame (a collision, or nobody there) doubles a random back-off, so two
//!   ends that probe on the same schedule drift apart instead of colliding
//!   forever.
//! - After the far end's last byte this side waits `turnaround` (the far
//!   radio's switch from sending to receiving) before it transmits.

use std::time::{Duration, Instant};

use crate::line::rng::Rng;

/// Settings of turn-taking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TurnConfig {
    /// Wait after the far end's last byte before transmitting.
    pub turnaround: Duration,
    /// Longest turn before it is passed.
    pub max_turn: Duration,
    /// Silence after which the listener may claim the turn.
    pub idle_gap: Duration,
    /// Spacing of claims (priority by epoch, back-off unit).
    pub slot: Duration,
}

/// Default `turnaround=`: enough for RS-485 transceivers and most radio modules'
/// switch (HC-12 and LoRa modules may need more: see the man page).
pub const DEFAULT_TURNAROUND: Duration = Duration::from_millis(2);
/// Default `max-turn=`.
pub const DEFAULT_MAX_TURN: Duration = Duration::from_millis(150);
/// Most claim back-off doublings.
const MAX_BACKOFF_EXP: u32 = 6;

impl TurnConfig {
    /// Settings for a line of `byte_rate` bytes/s with the given turnaround
    /// and longest turn. The idle gap outlasts the pauses inside a turn (a
    /// driver woken late on a loaded machine, a USB adapter's latency timer:
    /// 16 ms by default on FTDI chips) so a listener does not claim a turn
    /// still in use (25 ms let a 2-core machine under load collide now and
    /// then); a slot outlasts the time a claim takes to be
    /// heard.
    pub fn new(byte_rate: u32, turnaround: Duration, max_turn: Duration) -> Self {
        let byte = Duration::from_nanos(1_000_000_000 / u64::from(byte_rate.max(1)));
        TurnConfig {
            turnaround,
            max_turn,
            idle_gap: (Duration::from_millis(40).max(turnaround * 4)).max(byte * 32),
            slot: (Duration::from_millis(8).max(turnaround * 2 + byte * 16)),
        }
    }

    /// How much longer than on a full-duplex line a frame may wait for its ack:
    /// both turns at their longest, and the gaps between them.
    pub fn extra_rtt(&self) -> Duration {
        2 * (self.max_turn + self.idle_gap + self.slot + self.turnaround)
    }
}

/// What the link may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permit {
    /// We hold the turn: send what there is.
    Send,
    /// We held the turn for `max_turn`: only the PASS (no new data).
    PassNow,
    /// The medium is ours to claim: transmit if there is anything to say.
    Claim,
    /// Not before this instant.
    Wait(Instant),
}

/// Who may transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holder {
    /// We do; `since`: our first transmission in this turn (the longest turn
    /// counts from there: a silent holder is not timed); `sent`: we
    /// transmitted in it.
    Us { since: Option<Instant>, sent: bool },
    /// The far end does (or nobody knows: the medium is claimed after silence).
    Them {
        /// We gave the turn away ourselves (claim one slot later).
        yielded: bool,
    },
}

/// Turn-taking counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Turns the far end passed to us.
    pub taken: u64,
    /// Turns we passed (a PASS frame, or falling silent before PASS is agreed).
    pub passed: u64,
    /// Turns we claimed after silence (a lost PASS, a silent holder, probing).
    pub claimed: u64,
    /// Claims not answered by a valid frame before the next claim (collisions).
    pub unanswered: u64,
}

/// Turn-taking state (see the module docs).
#[derive(Debug)]
pub struct Turns {
    cfg: TurnConfig,
    holder: Holder,
    /// Latest byte heard.
    last_rx: Option<Instant>,
    /// When our own last byte leaves the wire.
    tx_end: Instant,
    /// By epoch comparison, once the far end's epoch is known.
    primary: Option<bool>,
    /// Claims in a row not answered by a valid frame.
    failed_claims: u32,
    /// A claim of ours has not been answered yet.
    claim_open: bool,
    /// Random part of the next claim's delay, counted from when there was
    /// something to send (so two ends whose timers fire together, probing on
    /// the same schedule, still drift apart).
    backoff: Duration,
    /// The pending claim's earliest moment by the back-off.
    claim_after: Option<Instant>,
    rng: Rng,
    stats: TurnStats,
}

impl Turns {
    /// Turn-taking at `now`; `seed` (the epoch) makes the back-off differ between
    /// the ends. Nobody holds the turn at first: the first claim is randomised.
    pub fn new(cfg: TurnConfig, seed: u32, now: Instant) -> Self {
        let mut t = Turns {
            cfg,
            holder: Holder::Them { yielded: false },
            last_rx: None,
            tx_end: now,
            primary: None,
            failed_claims: 1,
            claim_open: false,
            backoff: Duration::ZERO,
            claim_after: None,
            rng: Rng::new(u64::from(seed) ^ 0x7475_726E_0000_0000),
            stats: TurnStats::default(),
        };
        t.draw_backoff();
        t
    }

    /// The settings in use.
    pub fn config(&self) -> &TurnConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> TurnStats {
        self.stats
    }

    /// Whether we hold the turn.
    pub fn holding(&self) -> bool {
        matches!(self.holder, Holder::Us { .. })
    }

    /// Whether we hold the turn and transmitted in it (so it is passed, not
    /// kept, when we have nothing more).
    pub fn owes_pass(&self) -> bool {
        matches!(self.holder, Holder::Us { sent: true, .. })
    }

    /// Both epochs are known: the higher one claims first.
    pub fn set_epochs(&mut self, ours: u32, theirs: u32) {
        self.primary = Some(ours > theirs);
    }

    fn draw_backoff(&mut self) {
        let exp = self.failed_claims.min(MAX_BACKOFF_EXP);
        let span = self.cfg.slot.as_nanos() as u64 * ((1u64 << exp) - 1);
        self.backoff = Duration::from_nanos(self.rng.below(span.max(1)));
        if self.primary.is_none() && exp == 0 {
            // Nobody ranks first yet: always some randomness.
            self.backoff = Duration::from_nanos(self.rng.below(self.cfg.slot.as_nanos() as u64));
        }
    }

    /// A claim was allowed but there was nothing to send after all: the next
    /// one counts its back-off afresh from when there is.
    pub fn no_claim(&mut self) {
        self.claim_after = None;
    }

    /// Bytes (any, even garbage) arrived at `now`.
    pub fn on_rx_bytes(&mut self, now: Instant) {
        self.last_rx = Some(self.last_rx.map_or(now, |t| t.max(now)));
    }

    /// A valid frame of the far end arrived at `now`; `pass` if it passes us the
    /// turn. A frame without it means the far end holds the turn (it claimed
    /// it, perhaps while we thought we held it: then it is theirs).
    pub fn on_frame(&mut self, now: Instant, pass: bool) {
        self.on_rx_bytes(now);
        self.claim_after = None;
        if std::mem::take(&mut self.claim_open) || self.failed_claims > 0 {
            self.failed_claims = 0;
            self.draw_backoff();
        }
        if pass {
            self.holder = Holder::Us {
                since: None,
                sent: false,
            };
            self.stats.taken += 1;
        } else if self.holding() {
            self.holder = Holder::Them { yielded: false };
        }
    }

    /// What the link may do at `now`; `wants`: it has a frame to send.
    pub fn permit(&mut self, now: Instant, wants: bool) -> Permit {
        let after_rx = self.last_rx.map(|t| t + self.cfg.turnaround);
        match self.holder {
            Holder::Us { since, .. } => match after_rx {
                Some(t) if t > now => Permit::Wait(t),
                _ if since.is_some_and(|s| now >= s + self.cfg.max_turn) => Permit::PassNow,
                _ => Permit::Send,
            },
            Holder::Them { yielded } => {
                let quiet = self.last_rx.map_or(self.tx_end, |t| t.max(self.tx_end));
                let slots = u32::from(self.primary != Some(true)) + u32::from(yielded);
                let mut at = quiet + self.cfg.idle_gap + self.cfg.slot * slots;
                if wants {
                    let backoff = self.backoff;
                    at = at.max(*self.claim_after.get_or_insert(now + backoff));
                }
                if now >= at {
                    Permit::Claim
                } else {
                    Permit::Wait(at)
                }
            }
        }
    }

    /// We start a frame at `now` that leaves the wire at `end`. From
    /// [`Permit::Claim`] this takes the turn.
    pub fn on_transmit(&mut self, now: Instant, end: Instant) {
        self.tx_end = self.tx_end.max(end);
        self.claim_after = None;
        match &mut self.holder {
            Holder::Us { since, sent } => {
                since.get_or_insert(now);
                *sent = true;
            }
            Holder::Them { .. } => {
                if std::mem::replace(&mut self.claim_open, true) {
                    self.stats.unanswered += 1;
                    self.failed_claims = (self.failed_claims + 1).min(MAX_BACKOFF_EXP);
                }
                self.stats.claimed += 1;
                self.holder = Holder::Us {
                    since: Some(now),
                    sent: true,
                };
            }
        }
    }

    /// We give the turn away: with a PASS frame that leaves the wire at `end`,
    /// or (`end` = now) by falling silent.
    pub fn on_pass(&mut self, end: Instant) {
        self.tx_end = self.tx_end.max(end);
        self.claim_after = None;
        self.holder = Holder::Them { yielded: true };
        self.stats.passed += 1;
        self.draw_backoff();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick a starting instant
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    impl Turns {
        /// `permit` with a frame waiting.
        fn permit_now(&mut self, now: Instant) -> Permit {
            self.permit(now, true)
        }
    }

    fn cfg() -> TurnConfig {
        TurnConfig {
            turnaround: 2 * MS,
            max_turn: 100 * MS,
            idle_gap: 20 * MS,
            slot: 10 * MS,
        }
    }

    #[test]
    fn a_passed_turn_is_used_after_the_turnaround_and_ends_by_max_turn() {
        let t0 = Instant::now();
        let mut t = Turns::new(cfg(), 1, t0);
        t.set_epochs(1, 2);
        assert!(
            matches!(t.permit_now(t0), Permit::Wait(_)),
            "nobody holds it yet"
        );
        t.on_frame(t0 + 5 * MS, true);
        assert_eq!(t.stats().taken, 1);
        assert_eq!(t.permit_now(t0 + 6 * MS), Permit::Wait(t0 + 7 * MS));
        assert_eq!(t.permit_now(t0 + 7 * MS), Permit::Send);
        assert!(
            !t.owes_pass(),
            "nothing sent: an idle holder keeps the turn"
        );
        t.on_transmit(t0 + 7 * MS, t0 + 50 * MS);
        assert!(t.owes_pass());
        assert_eq!(t.permit_now(t0 + 106 * MS), Permit::Send);
        assert_eq!(t.permit_now(t0 + 107 * MS), Permit::PassNow);
        t.on_pass(t0 + 106 * MS);
        assert!(!t.holding());
        assert_eq!(t.stats().passed, 1);
        // Passed: the far end answers; we may only claim after silence, a slot
        // later as the secondary, one more as the one who yielded.
        match t.permit_now(t0 + 106 * MS) {
            Permit::Wait(at) => assert!(at >= t0 + (106 + 20 + 20) * MS, "{:?}", at - t0),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn no_claim_while_the_far_end_talks() {
        let t0 = Instant::now();
        let mut t = Turns::new(cfg(), 1, t0);
        t.set_epochs(2, 1); // primary: claims without waiting a slot
        t.on_frame(t0, false);
        for i in 1..50 {
            // A byte every 5 ms: the medium is never quiet for the idle gap.
            t.on_rx_bytes(t0 + 5 * i * MS);
            assert!(matches!(
                t.permit_now(t0 + (5 * i + 4) * MS),
                Permit::Wait(_)
            ));
        }
        let last = t0 + 245 * MS;
        assert_eq!(t.permit_now(last + 19 * MS), Permit::Wait(last + 20 * MS));
        assert_eq!(t.permit_now(last + 20 * MS), Permit::Claim);
        t.on_transmit(last + 20 * MS, last + 21 * MS);
        assert!(t.holding());
        assert_eq!(t.stats().claimed, 1);
        // The far end answers with a frame of its own (no pass): it holds it.
        t.on_frame(last + 40 * MS, false);
        assert!(!t.holding());
        assert_eq!(t.stats().unanswered, 0);
    }

    #[test]
    fn the_primary_claims_a_slot_before_the_secondary() {
        let t0 = Instant::now();
        let mut p = Turns::new(cfg(), 1, t0);
        let mut s = Turns::new(cfg(), 2, t0);
        p.set_epochs(9, 3);
        s.set_epochs(3, 9);
        // Both heard the same last frame (a lost PASS).
        p.on_frame(t0, false);
        s.on_frame(t0, false);
        assert_eq!(p.permit_now(t0 + 20 * MS), Permit::Claim);
        assert_eq!(s.permit_now(t0 + 20 * MS), Permit::Wait(t0 + 30 * MS));
    }

    #[test]
    fn unanswered_claims_back_off_at_random_and_two_ends_drift_apart() {
        // Two ends with no ranking (probing) claim on the same schedule: the
        // random back-off grows with every unanswered claim, so their claim
        // times soon differ by more than a frame.
        let t0 = Instant::now();
        let mut a = Turns::new(cfg(), 11, t0);
        let mut b = Turns::new(cfg(), 22, t0);
        let mut apart = 0;
        let mut now = t0;
        for _ in 0..8 {
            let at = |t: &mut Turns| match t.permit_now(now) {
                Permit::Wait(x) => x,
                _ => now,
            };
            let (ta, tb) = (at(&mut a), at(&mut b));
            if ta.max(tb) - ta.min(tb) > 3 * MS {
                apart += 1;
            }
            // Each claims, sends a 2 ms frame nobody answers, and falls silent.
            for (t, at) in [(&mut a, ta), (&mut b, tb)] {
                t.on_transmit(at, at + 2 * MS);
                t.on_pass(at + 2 * MS);
            }
            now = ta.max(tb) + 2 * MS;
        }
        assert!(a.stats().unanswered >= 7 && b.stats().unanswered >= 7);
        assert!(apart >= 5, "claims apart {apart} of 8");
        // An answer resets the back-off.
        a.on_frame(now, false);
        assert_eq!(a.failed_claims, 0);
    }
}
