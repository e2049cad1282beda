//! The CAPS exchange: each end announces the features it offers once per
//! session, resends until the peer confirms (a v1 peer never will, and drops
//! CAPS as malformed), and the features both offer are applied and reported
//! once both the session and the peer's CAPS are there.

use std::time::Instant;

use super::frame::{Caps, Repr};
use super::timers::Timer;
use super::{Features, Link, LinkEvent};

/// CAPS resent after the session is up while the peer has not confirmed ours
/// (a v1 peer never will): at most this many times per session.
const CAPS_RETRIES: u8 = 6;

/// Whether the peer has our CAPS for this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ours {
    /// Not confirmed; resent on the CAPS timer this many times so far.
    Unconfirmed { tries: u8 },
    /// The peer said it has them.
    Confirmed,
}

/// Where the CAPS exchange of this session stands.
#[derive(Debug)]
pub(super) struct CapsExchange {
    /// The peer's latest CAPS (valid while its epoch is the peer's epoch).
    peer: Option<Caps>,
    ours: Ours,
    /// A CAPS frame should go out at the next opportunity.
    due: bool,
    /// The features in use were applied and reported for this session.
    reported: bool,
}

impl CapsExchange {
    pub(super) fn new() -> Self {
        CapsExchange {
            peer: None,
            ours: Ours::Unconfirmed { tries: 0 },
            due: false,
            reported: false,
        }
    }

    /// The session ended: features are negotiated again in the next one.
    pub(super) fn session_reset(&mut self) {
        self.reported = false;
    }

    /// The peer has a new session (or we do): it must hear our CAPS again.
    pub(super) fn unconfirm(&mut self) {
        self.ours = Ours::Unconfirmed { tries: 0 };
    }

    /// A CAPS frame should go out at the next opportunity.
    pub(super) fn is_due(&self) -> bool {
        self.due
    }

    fn confirmed(&self) -> bool {
        self.ours == Ours::Confirmed
    }
}

impl Link {
    /// The features the peer announced for its current session ([`Features::NONE`]
    /// until its CAPS arrives, and for a v1 peer).
    pub fn peer_features(&self) -> Features {
        match (self.caps.peer, self.peer_epoch) {
            (Some(c), Some(p)) if c.epoch == p => c.features,
            _ => Features::NONE,
        }
    }

    /// Features both ends offer: what this session uses.
    pub fn features(&self) -> Features {
        self.cfg.features.intersect(self.peer_features())
    }

    /// The payload cap of this session before the error-rate rule.
    pub(super) fn session_payload_cap(&self) -> usize {
        if self.features().contains(Features::LARGE_FRAMES) {
            let peer = self.caps.peer.map_or(0, |c| c.max_payload as usize);
            self.cfg
                .large_max_payload
                .min(peer)
                .max(self.cfg.max_payload)
        } else {
            self.cfg.max_payload
        }
    }

    pub(super) fn on_caps(&mut self, c: Caps) {
        if self.cfg.features.is_empty() {
            // Plain v1 does not know this kind.
            self.stats.malformed += 1;
            return;
        }
        self.caps.peer = Some(c);
        if c.have_yours && c.seen == self.epoch {
            self.caps.ours = Ours::Confirmed;
            self.timers.stop(Timer::Caps);
        } else {
            self.caps.due = true;
        }
        self.report_features();
    }

    /// The session was agreed: CAPS go out on their timer until confirmed.
    pub(super) fn caps_on_establish(&mut self, now: Instant) {
        if !self.cfg.features.is_empty() && !self.caps.confirmed() {
            self.caps.ours = Ours::Unconfirmed { tries: 0 };
            self.timers.set(Timer::Caps, now + super::HELLO_INITIAL);
        }
        self.report_features();
    }

    /// A HELLO went out: features travel with every HELLO until the peer has them.
    pub(super) fn caps_with_hello(&mut self) {
        if !self.cfg.features.is_empty() && !self.caps.confirmed() {
            self.caps.due = true;
        }
    }

    /// The CAPS timer expired: resend, backing off, a bounded number of times.
    pub(super) fn caps_timeout(&mut self, now: Instant) {
        if !self.is_up() {
            return;
        }
        if let Ours::Unconfirmed { tries } = self.caps.ours {
            if tries < CAPS_RETRIES {
                let tries = tries + 1;
                self.caps.ours = Ours::Unconfirmed { tries };
                self.caps.due = true;
                self.timers.set(
                    Timer::Caps,
                    now + super::HELLO_INITIAL * (1 << tries.min(4)),
                );
            }
        }
    }

    /// Our CAPS, if one is due (it then no longer is).
    pub(super) fn take_due_caps(&mut self) -> Option<Repr<'static>> {
        if !std::mem::take(&mut self.caps.due) {
            return None;
        }
        let have_yours = self
            .caps
            .peer
            .is_some_and(|c| Some(c.epoch) == self.peer_epoch && c.seen == self.epoch);
        Some(Repr::Caps(Caps {
            epoch: self.epoch,
            seen: self.peer_epoch.unwrap_or(0),
            features: self.cfg.features,
            max_payload: self.cfg.payload_ceiling() as u16,
            have_yours,
        }))
    }

    /// Once per session, when both the session and the peer's CAPS are there:
    /// apply and report the features in use.
    fn report_features(&mut self) {
        if self.caps.reported || !self.is_up() {
            return;
        }
        if self
            .caps
            .peer
            .is_none_or(|c| Some(c.epoch) != self.peer_epoch)
        {
            return;
        }
        self.caps.reported = true;
        // Large frames take longer on the wire, and so may their acks.
        let cap = self.session_payload_cap();
        self.rtt.set_min_rto(self.cfg.rto_floor_for(cap));
        self.update_payload_size();
        self.events
            .push_back(LinkEvent::PeerFeatures(self.features()));
    }
}
