//! Which channel's data goes into the next link payload.
//!
//! Control records are not scheduled here: the mux puts all pending control
//! records (OPEN, OPEN_OK, REFUSE, CREDIT, EOF, CLOSE, RESET) at the front of
//! every payload before any data, so they are never starved.
//!
//! Data is chosen in two tiers:
//! 1. **Interactive** channels go first, in FIFO order of their wake-up: a
//!    channel whose queued data is small (≤ `small` bytes, default 128) and that
//!    has not been bulk-sending recently. "Recently" is measured without a
//!    clock: each channel keeps a byte counter that halves every two payloads;
//!    the channel is interactive while that counter is ≤ `small`. A keystroke
//!    or a short request thus goes into the very next payload, even behind
//!    megabytes of bulk data, while a channel streaming small pieces quickly
//!    accumulates a large counter and falls back to the second tier.
//! 2. **Deficit round robin** between all channels with sendable data
//!    (queued bytes and credit). A channel at the head of the round gets a
//!    quantum (one payload's worth) of deficit, sends up to it, and goes to the
//!    back once it is used up; a channel that runs out of data or credit leaves
//!    the round and loses its deficit. A payload that fills up mid-turn leaves
//!    the channel at the head with the rest of its deficit, so the next payload
//!    continues where this one stopped.
//!
//! A DATA record may be cut to fit the remaining payload space, but not into a
//! piece smaller than [`MIN_CUT`] bytes (the 5-byte header would dominate):
//! then the payload is closed and the data goes into the next one.
//!
//! The scheduler only knows channel ids; the mux tells it how much each
//! channel has queued and may send (a closure), and takes exactly the bytes
//! a [`Pick`] names.

use std::collections::{HashMap, VecDeque};

use super::wire::{DATA_HEADER_LEN, MAX_DATA_LEN};
use super::ChannelId;

/// Smallest piece a DATA record is cut into to fill a payload.
pub const MIN_CUT: usize = 16;

/// Per-channel scheduling state.
#[derive(Debug, Default, Clone)]
struct Flow {
    deficit: usize,
    recent: u32,
    recent_round: u64,
    in_active: bool,
    in_urgent: bool,
}

impl Flow {
    fn recent_at(&self, round: u64) -> u32 {
        let shift = ((round - self.recent_round) / 2).min(31) as u32;
        self.recent >> shift
    }
}

/// The scheduler's decision: put `len` bytes of channel `ch` into the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Channel to take data from.
    pub ch: ChannelId,
    /// Bytes to take (≥ 1, ≤ what the channel may send).
    pub len: usize,
    /// Picked from the interactive fast lane.
    pub interactive: bool,
}

/// Deficit round robin with an interactive fast lane.
#[derive(Debug)]
pub struct Scheduler {
    flows: HashMap<ChannelId, Flow>,
    active: VecDeque<ChannelId>,
    urgent: VecDeque<ChannelId>,
    round: u64,
    small: usize,
}

impl Scheduler {
    /// A scheduler that treats channels with at most `small` bytes queued (and
    /// no recent bulk traffic) as interactive.
    pub fn new(small: usize) -> Self {
        Scheduler {
            flows: HashMap::new(),
            active: VecDeque::new(),
            urgent: VecDeque::new(),
            round: 0,
            small,
        }
    }

    /// Channel `ch` may have sendable data (`queued` bytes in its buffer). Call
    /// after every send, credit arrival or open completion; spurious calls are
    /// harmless.
    pub fn wake(&mut self, ch: ChannelId, queued: usize) {
        let round = self.round;
        let f = self.flows.entry(ch).or_insert_with(|| Flow {
            recent_round: round,
            ..Flow::default()
        });
        if !f.in_active {
            f.in_active = true;
            self.active.push_back(ch);
        }
        if !f.in_urgent && queued <= self.small && f.recent_at(round) as usize <= self.small {
            f.in_urgent = true;
            self.urgent.push_back(ch);
        }
    }

    /// Forget a channel (closed or reset). Queue entries are dropped lazily.
    pub fn forget(&mut self, ch: ChannelId) {
        self.flows.remove(&ch);
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.flows.clear();
        self.active.clear();
        self.urgent.clear();
    }

    /// A new payload starts (advances the decay clock of the recent-bytes counters).
    pub fn begin_payload(&mut self) {
        self.round += 1;
    }

    /// Is `ch` currently considered interactive?
    #[cfg(test)]
    pub fn is_interactive(&self, ch: ChannelId, queued: usize) -> bool {
        queued <= self.small
            && self
                .flows
                .get(&ch)
                .is_none_or(|f| f.recent_at(self.round) as usize <= self.small)
    }

    fn account(f: &mut Flow, round: u64, n: usize) {
        f.recent = f.recent_at(round).saturating_add(n as u32);
        f.recent_round = round;
    }

    /// Whether a channel is waiting in the interactive fast lane.
    pub fn has_interactive(&self) -> bool {
        !self.urgent.is_empty()
    }

    /// Choose the next data to put into a payload with `room` bytes left.
    /// `state(ch)` returns `(queued, sendable)` for a channel: bytes in its send
    /// buffer and bytes it may send now (queued, limited by credit and open
    /// state). `quantum` is a DRR turn, normally the payload size.
    pub fn pick(
        &mut self,
        room: usize,
        quantum: usize,
        mut state: impl FnMut(ChannelId) -> (usize, usize),
    ) -> Option<Pick> {
        if room <= DATA_HEADER_LEN {
            return None;
        }
        let cap = (room - DATA_HEADER_LEN).min(MAX_DATA_LEN);
        let round = self.round;

        // Tier 1: interactive.
        while let Some(&ch) = self.urgent.front() {
            let Some(f) = self.flows.get_mut(&ch) else {
                self.urgent.pop_front();
                continue;
            };
            let (queued, sendable) = state(ch);
            if sendable == 0 || queued > self.small || f.recent_at(round) as usize > self.small {
                f.in_urgent = false;
                self.urgent.pop_front();
                continue;
            }
            let n = sendable.min(cap);
            if n < sendable && n < MIN_CUT {
                return None;
            }
            if n == sendable {
                f.in_urgent = false;
                self.urgent.pop_front();
            }
            Self::account(f, round, n);
            return Some(Pick {
                ch,
                len: n,
                interactive: true,
            });
        }

        // Tier 2: deficit round robin.
        while let Some(&ch) = self.active.front() {
            let Some(f) = self.flows.get_mut(&ch) else {
                self.active.pop_front();
                continue;
            };
            let (_, sendable) = state(ch);
            if sendable == 0 {
                f.in_active = false;
                f.deficit = 0;
                self.active.pop_front();
                continue;
            }
            if f.deficit == 0 {
                f.deficit = quantum.max(1);
            }
            let want = sendable.min(f.deficit);
            let n = want.min(cap);
            if n < want && n < MIN_CUT {
                return None;
            }
            f.deficit -= n;
            Self::account(f, round, n);
            if f.deficit == 0 {
                self.active.pop_front();
                self.active.push_back(ch);
            }
            return Some(Pick {
                ch,
                len: n,
                interactive: false,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake set of channels: queued bytes per channel, unlimited credit.
    struct Fake {
        q: HashMap<ChannelId, usize>,
    }

    impl Fake {
        /// Fill one payload of `max` bytes; returns bytes taken per channel.
        fn payload(&mut self, s: &mut Scheduler, max: usize) -> Vec<(ChannelId, usize)> {
            s.begin_payload();
            let mut room = max;
            let mut out = Vec::new();
            while let Some(p) = s.pick(room, max, |ch| {
                let q = *self.q.get(&ch).unwrap_or(&0);
                (q, q)
            }) {
                *self.q.get_mut(&p.ch).unwrap() -= p.len;
                room -= p.len + DATA_HEADER_LEN;
                out.push((p.ch, p.len));
            }
            out
        }
        fn add(&mut self, s: &mut Scheduler, ch: ChannelId, n: usize) {
            let q = self.q.entry(ch).or_default();
            *q += n;
            s.wake(ch, *q);
        }
    }

    #[test]
    fn two_bulk_channels_share_evenly() {
        let mut s = Scheduler::new(128);
        let mut f = Fake { q: HashMap::new() };
        let (a, b) = (ChannelId(1), ChannelId(2));
        let mut got = HashMap::<ChannelId, usize>::new();
        for i in 0..200 {
            f.add(&mut s, a, 300);
            f.add(&mut s, b, 300);
            for (ch, n) in f.payload(&mut s, 64 + (i * 37) % 448) {
                *got.entry(ch).or_default() += n;
            }
        }
        let (x, y) = (got[&a] as f64, got[&b] as f64);
        assert!(x / y < 1.1 && y / x < 1.1, "{x} vs {y}");
    }

    #[test]
    fn keystroke_overtakes_bulk() {
        let mut s = Scheduler::new(128);
        let mut f = Fake { q: HashMap::new() };
        let (bulk, key) = (ChannelId(1), ChannelId(2));
        f.add(&mut s, bulk, 100_000);
        for _ in 0..10 {
            f.payload(&mut s, 200);
        }
        f.add(&mut s, key, 1);
        let p = f.payload(&mut s, 200);
        assert_eq!(p[0], (key, 1), "keystroke first: {p:?}");
    }

    #[test]
    fn small_writes_of_a_bulk_sender_are_not_interactive() {
        let mut s = Scheduler::new(128);
        let mut f = Fake { q: HashMap::new() };
        let (a, b) = (ChannelId(1), ChannelId(2));
        // a streams 100-byte pieces every payload; b is bulk.
        f.add(&mut s, b, 1_000_000);
        for _ in 0..20 {
            f.add(&mut s, a, 100);
            f.payload(&mut s, 500);
        }
        assert!(
            !s.is_interactive(a, 100),
            "a has been sending ~100 B per payload"
        );
        // After a quiet period it becomes interactive again.
        for _ in 0..20 {
            f.payload(&mut s, 500);
        }
        assert!(s.is_interactive(a, 100));
    }

    #[test]
    fn data_is_cut_to_fit_but_not_into_crumbs() {
        let mut s = Scheduler::new(128);
        let ch = ChannelId(1);
        s.wake(ch, 1000);
        s.begin_payload();
        let p = s.pick(100, 1000, |_| (1000, 1000)).unwrap();
        assert_eq!(p.len, 95);
        let crumb = DATA_HEADER_LEN + MIN_CUT - 1;
        assert_eq!(s.pick(crumb, 1000, |_| (905, 905)), None);
        assert_eq!(s.pick(DATA_HEADER_LEN, 1000, |_| (905, 905)), None);
        // The whole rest of a channel's data may be smaller than MIN_CUT.
        let p = s.pick(DATA_HEADER_LEN + 3, 1000, |_| (3, 3)).unwrap();
        assert_eq!(p.len, 3);
    }

    #[test]
    fn channel_without_credit_leaves_the_round() {
        let mut s = Scheduler::new(128);
        let (a, b) = (ChannelId(1), ChannelId(2));
        s.wake(a, 1000);
        s.wake(b, 1000);
        s.begin_payload();
        let p = s.pick(
            500,
            500,
            |ch| if ch == a { (1000, 0) } else { (1000, 1000) },
        );
        assert_eq!(p.unwrap().ch, b);
        s.forget(b);
        assert_eq!(
            s.pick(500, 500, |_| (1000, 1000)),
            None,
            "a left, b forgotten"
        );
    }
}
