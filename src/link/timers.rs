//! Every deadline of a link in one table, so that [`Link::poll_timeout`] is the
//! earliest entry and [`Link::handle_timeout`] one pass over the expired ones.
//! (The keyed handshake keeps its own retry timer: it is a separate machine.)
//!
//! [`Link::poll_timeout`]: super::Link::poll_timeout
//! [`Link::handle_timeout`]: super::Link::handle_timeout

use std::time::Instant;

/// One deadline of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// The oldest frame in flight is taken as lost (RFC 6298 RTO).
    Retransmit,
    /// A standalone ack goes out if no data frame has carried one by then.
    Ack,
    /// The next HELLO while no session is agreed (backing off).
    Hello,
    /// CAPS again while the peer has not confirmed ours.
    Caps,
    /// A keepalive, after `keepalive` without transmitting (session up only).
    Keepalive,
    /// The peer counts as lost after `dead_after` without a valid frame
    /// (session up only).
    PeerDead,
    /// Half duplex: a frame waits for the turn (the turnaround, or silence
    /// before a claim).
    Turn,
}

const TIMERS: usize = 7;

impl Timer {
    fn slot(self) -> usize {
        match self {
            Timer::Retransmit => 0,
            Timer::Ack => 1,
            Timer::Hello => 2,
            Timer::Caps => 3,
            Timer::Keepalive => 4,
            Timer::PeerDead => 5,
            Timer::Turn => 6,
        }
    }
}

/// The deadlines that are set.
#[derive(Debug, Default)]
pub(super) struct Timers([Option<Instant>; TIMERS]);

impl Timers {
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.0[timer.slot()] = Some(at);
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.0[timer.slot()] = None;
    }

    pub(super) fn is_set(&self, timer: Timer) -> bool {
        self.0[timer.slot()].is_some()
    }

    /// Whether `timer` was set and has expired at `now`; it is stopped if so,
    /// so an expiry is handled once.
    pub(super) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.0[timer.slot()];
        if slot.is_some_and(|t| now >= t) {
            *slot = None;
            true
        } else {
            false
        }
    }

    /// The earliest deadline set.
    pub(super) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test picks its own time origin
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_deadline_is_next_and_an_expiry_is_taken_once() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Keepalive, t0 + Duration::from_secs(1));
        t.set(Timer::Ack, t0 + Duration::from_millis(4));
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(4)));
        assert!(!t.expire(Timer::Ack, t0));
        assert!(t.expire(Timer::Ack, t0 + Duration::from_millis(4)));
        assert!(!t.expire(Timer::Ack, t0 + Duration::from_millis(5)));
        assert!(!t.is_set(Timer::Ack));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        t.stop(Timer::Keepalive);
        assert_eq!(t.next(), None);
    }
}
