//! Opens: ours waiting for the link or for a free channel (here or at the
//! peer), and the peer's waiting for their turn under the open rate (a token
//! bucket), first come, first served.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::*;

/// Why an open is waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WaitReason {
    LinkDown,
    ChannelsBusy,
}

#[derive(Debug)]
pub(super) struct WaitingOpen {
    pub(super) open: OpenId,
    pub(super) service: String,
    pub(super) target: Option<Target>,
    pub(super) reason: WaitReason,
    pub(super) since: Instant,
    pub(super) deadline: Instant,
    /// Not before then: the peer had no free channel a moment ago.
    pub(super) not_before: Option<Instant>,
}

/// A token bucket for the peer's opens: `open_burst` tokens, refilled at
/// `open_rate` per second, one per open handed to the application.
#[derive(Debug)]
pub(super) struct OpenBudget {
    pub(super) tokens: f64,
    pub(super) at: Option<Instant>,
    /// Opens deferred in the current flood (logged when it starts and ends).
    pub(super) deferred: u64,
}

impl OpenBudget {
    pub(super) fn refill(&mut self, now: Instant, rate: u32, burst: u32) {
        let elapsed = self
            .at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.at = Some(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * f64::from(rate)).min(f64::from(burst));
    }

    pub(super) fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the bucket next holds a whole token (after a failed `take` at `now`).
    pub(super) fn next_token(&self, now: Instant, rate: u32) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        // Rounded up to the next microsecond, so that the token is really
        // there at the instant named (a timer that fires early would spin).
        let micros = (missing * 1e6 / f64::from(rate.max(1))).ceil() as u64 + 1;
        now + Duration::from_micros(micros)
    }
}

/// How soon an open the peer refused for want of a free channel asks again:
/// one OPEN record per try, a few per second.
pub(super) const PEER_FULL_RETRY: Duration = Duration::from_millis(100);

impl Station {
    pub(super) fn wait_limit(&self, reason: WaitReason) -> Duration {
        match reason {
            WaitReason::LinkDown => self.cfg.link_wait,
            WaitReason::ChannelsBusy => self.cfg.channel_wait,
        }
    }

    pub(super) fn fail_open(&mut self, open: OpenId, error: OpenError) {
        self.stats.opens_failed += 1;
        self.events
            .push_back(StationEvent::OpenFailed { open, error });
    }

    /// Turns waiting opens into channels, first come first served, while the
    /// link is up and the mux has room.
    pub(super) fn start_waiting(&mut self, now: Instant) {
        if !self.link.is_up() {
            return;
        }
        if self.waiting.is_empty() {
            self.burst_reported = false;
        }
        while let Some(w) = self.waiting.front() {
            if w.not_before.is_some_and(|t| t > now) {
                return;
            }
            match self.mux.open_to(&w.service, w.target.as_ref()) {
                Ok(ch) => {
                    let w = self.waiting.pop_front().expect("front exists");
                    let mut c = Chan::new(ChanRole::Opening(w.open));
                    c.asked = Some(w);
                    self.chans.insert(ch, c);
                }
                Err(MuxError::TooManyChannels) => {
                    let channel_wait = self.cfg.channel_wait;
                    for w in self.waiting.iter_mut() {
                        if w.reason == WaitReason::LinkDown {
                            // Up now, but full: the wait for a channel starts.
                            w.reason = WaitReason::ChannelsBusy;
                            w.deadline = now + channel_wait;
                        }
                    }
                    if !self.burst_reported {
                        self.burst_reported = true;
                        info!(
                            "SERIAL-MUX:{}: all {} channels in use; new connections wait for one (up to {} s)",
                            self.cfg.label,
                            self.cfg.mux.max_channels,
                            channel_wait.as_secs()
                        );
                    }
                    return;
                }
                Err(e) => {
                    let w = self.waiting.pop_front().expect("front exists");
                    self.fail_open(w.open, OpenError::Invalid(e.to_string()));
                }
            }
        }
    }

    pub(super) fn expire_waiting(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].deadline <= now {
                let w = self.waiting.remove(i).expect("index in range");
                let waited = now - w.since;
                let error = match w.reason {
                    WaitReason::LinkDown => OpenError::LinkDown(waited),
                    WaitReason::ChannelsBusy => OpenError::ChannelsBusy(waited),
                };
                warn!(
                    "SERIAL-MUX:{}: a connection gave up waiting: {error}",
                    self.cfg.label
                );
                self.fail_open(w.open, error);
            } else {
                i += 1;
            }
        }
    }

    /// Hands the peer's deferred opens to the application as the open rate
    /// allows, oldest first.
    pub(super) fn release_deferred(&mut self, now: Instant) {
        if self.deferred_wake.is_some() {
            return;
        }
        while let Some((ch, _, _)) = self.deferred.front() {
            if !self
                .chans
                .get(ch)
                .is_some_and(|c| c.role == ChanRole::Deferred)
            {
                // Reset by the peer or the session while it waited.
                self.deferred.pop_front();
                continue;
            }
            let (rate, burst) = (self.cfg.open_rate, self.cfg.open_burst);
            if !self.opens_allowed.take(now, rate, burst) {
                self.deferred_wake = Some(self.opens_allowed.next_token(now, rate));
                return;
            }
            let (ch, service, target) = self.deferred.pop_front().expect("front exists");
            if let Some(c) = self.chans.get_mut(&ch) {
                c.role = ChanRole::Offered;
            }
            self.events.push_back(StationEvent::Incoming {
                ch,
                service,
                target,
            });
        }
        let deferred = std::mem::take(&mut self.opens_allowed.deferred);
        if deferred > 0 {
            info!(
                "SERIAL-MUX:{}: the peer's opens are within the rate again ({deferred} waited for their turn)",
                self.cfg.label
            );
        }
    }

    /// The peer refused `w`'s channel because all of its channels are in use:
    /// `w` goes back to the head of the queue and tries again shortly,
    /// within the same `channel_wait` as when ours are full.
    pub(super) fn wait_for_peer_channel(&mut self, now: Instant, mut w: WaitingOpen) {
        if w.reason != WaitReason::ChannelsBusy {
            w.reason = WaitReason::ChannelsBusy;
            w.deadline = now + self.cfg.channel_wait;
        }
        w.not_before = Some(now + PEER_FULL_RETRY);
        if !self.burst_reported {
            self.burst_reported = true;
            info!(
                "SERIAL-MUX:{}: all of the peer's channels are in use; new connections wait for one (up to {} s)",
                self.cfg.label,
                self.cfg.channel_wait.as_secs()
            );
        }
        self.waiting.push_front(w);
    }
}
