//! Which channel's data goes into the next link payload.
//!
//! Control records are not scheduled here: the mux puts all pending control
//! records (OPEN, OPEN_OK, REFUSE, CREDIT, EOF, CLOSE, RESET) at the front of
//! every payload before any data, so they are never starved.
//!
//! Data is chosen in three tiers:
//! 1. **Interactive** channels go first, in FIFO order of their wake-up: a
//!    channel whose queued data is small (≤ `small` bytes, default 128) and that
//!    has not been bulk-sending recently. "Recently" is measured without a
//!    clock: each channel keeps a byte counter that halves every two payloads;
//!    the channel is interactive while that counter is ≤ `small`. A keystroke
//!    or a short request thus goes into the very next payload, even behind
//!    megabytes of bulk data, while a channel streaming small pieces quickly
//!    accumulates a large counter and falls back to a later tier.
//! 2. **Sparse** channels (fq_codel's "new flow" idea): a channel that has
//!    sent less than `sparse` bytes (default 8 KiB) recently goes ahead of
//!    bulk, round robin with the other sparse channels, until it has used that
//!    budget. "Recently" is a second, slow counter that halves every
//!    [`SPARSE_HALF_LIFE`] bytes of data *the whole line* carried (a clock
//!    measured in traffic, not time), so a channel sharing the line with a
//!    few bulk transfers keeps a counter far above the budget and cannot pass
//!    for sparse, while a new connection (an ssh login: a few KB each way in
//!    a dozen round trips) has its handshake carried at nearly the full line
//!    rate instead of a fair share. To keep bulk alive while many new channels
//!    arrive, the sparse tier yields to DRR (over channels it does not serve)
//!    once it is [`SPARSE_RUN`] quanta ahead, each bulk byte paying back three:
//!    bulk keeps at least a quarter of the line.
//! 3. **Deficit round robin** between all channels with sendable data
//!    (queued bytes and credit). A channel at the head of the round gets a
//!    quantum (one payload's worth) of deficit, sends up to it, and goes to the
//!    back once it is used up; a channel that runs out of data or credit leaves
//!    the round and loses its deficit. A payload that fills up mid-turn leaves
//!    the channel at the head with the rest of its deficit, so the next payload
//!    continues where this one stopped.
//!
//! Both counters and the DRR deficit count *wire* bytes: the mux may put
//! fewer bytes on the wire than a [`Pick`] allowed (compressed data) and gives
//! the rest back with [`Scheduler::refund`].
//!
//! A DATA record may be cut to fit the remaining payload space, but not into a
//! piece smaller than [`MIN_CUT`] bytes (the 5-byte header would dominate):
//! then the payload is closed and the data goes into the next one.
//!
//! The scheduler only knows channel ids; the mux tells it how much each
//! channel has queued and may send (a closure), and takes at most the bytes
//! a [`Pick`] names.

use std::collections::{HashMap, VecDeque};

use super::wire::{DATA_HEADER_LEN, MAX_DATA_LEN};
use super::ChannelId;

/// Smallest piece a DATA record is cut into to fit a payload.
pub const MIN_CUT: usize = 16;

/// Bytes of data (all channels together) after which a channel's sparse
/// counter has halved. With 3 bulk channels each keeps a counter of about
/// `32 KiB / 3 / ln 2` ≈ 15 KiB, well above the default 8 KiB budget.
pub const SPARSE_HALF_LIFE: u64 = 32 * 1024;

/// Quanta the sparse tier may get ahead of bulk; also the sparse:bulk ratio
/// while both have data (bulk keeps `1 / (SPARSE_RUN + 1)` of the line).
pub const SPARSE_RUN: usize = 3;

/// Which tier a pick came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Little queued, nothing sent recently: a keystroke.
    Interactive,
    /// Within its recent-bytes budget: a new or light connection.
    Sparse,
    /// Deficit round robin.
    Bulk,
}

/// Per-channel scheduling state.
#[derive(Debug, Default, Clone)]
struct Flow {
    deficit: usize,
    /// The flow at the head of the DRR round has had its quantum.
    turn: bool,
    recent: u32,
    recent_round: u64,
    /// Slow counter for the sparse tier, as of `used_at` (traffic clock).
    used: u32,
    used_at: u64,
    in_active: bool,
    in_urgent: bool,
    in_sparse: bool,
}

impl Flow {
    fn recent_at(&self, round: u64) -> u32 {
        let shift = ((round - self.recent_round) / 2).min(31) as u32;
        self.recent >> shift
    }

    /// The sparse counter at traffic clock `now`: halves every
    /// [`SPARSE_HALF_LIFE`] bytes, linearly in between (monotone, no floats).
    fn used_at(&self, now: u64) -> u32 {
        let d = now - self.used_at;
        let halvings = d / SPARSE_HALF_LIFE;
        if halvings >= 32 {
            return 0;
        }
        let v = u64::from(self.used >> halvings);
        let frac = d % SPARSE_HALF_LIFE;
        (v - v * frac / (2 * SPARSE_HALF_LIFE)) as u32
    }
}

/// The scheduler's decision: put at most `len` bytes of channel `ch` on the
/// wire (a DATA record of `len` bytes, or compressed data of at most `len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// Channel to take data from.
    pub ch: ChannelId,
    /// Bytes to take (≥ 1, ≤ what the channel may send).
    pub len: usize,
    /// Tier the pick came from.
    pub tier: Tier,
}

impl Pick {
    /// Picked from the interactive fast lane.
    pub fn interactive(&self) -> bool {
        self.tier == Tier::Interactive
    }
}

/// Deficit round robin with an interactive fast lane and a sparse-flow tier.
#[derive(Debug)]
pub struct Scheduler {
    flows: HashMap<ChannelId, Flow>,
    active: VecDeque<ChannelId>,
    urgent: VecDeque<ChannelId>,
    sparse: VecDeque<ChannelId>,
    round: u64,
    /// Traffic clock: data bytes picked so far (all channels).
    clock: u64,
    /// Sparse-tier bytes not yet balanced by bulk bytes (see `pick`).
    sparse_run: usize,
    /// The sparse tier got [`SPARSE_RUN`] quanta ahead: bulk goes first until
    /// it has paid them back.
    bulk_owed: bool,
    small: usize,
    budget: usize,
}

impl Scheduler {
    /// A scheduler that treats channels with at most `small` bytes queued (and
    /// no recent bulk traffic) as interactive, and channels that sent fewer
    /// than `sparse` bytes recently as sparse (0 turns the sparse tier off).
    pub fn new(small: usize, sparse: usize) -> Self {
        Scheduler {
            flows: HashMap::new(),
            active: VecDeque::new(),
            urgent: VecDeque::new(),
            sparse: VecDeque::new(),
            round: 0,
            clock: 0,
            sparse_run: 0,
            bulk_owed: false,
            small,
            budget: sparse,
        }
    }

    /// Channel `ch` may have sendable data (`queued` bytes in its buffer). Call
    /// after every send, credit arrival or open completion; spurious calls are
    /// harmless.
    pub fn wake(&mut self, ch: ChannelId, queued: usize) {
        let (round, clock) = (self.round, self.clock);
        let f = self.flows.entry(ch).or_insert_with(|| Flow {
            recent_round: round,
            used_at: clock,
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
        if !f.in_sparse && (f.used_at(clock) as usize) < self.budget {
            f.in_sparse = true;
            self.sparse.push_back(ch);
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
        self.sparse.clear();
        self.sparse_run = 0;
        self.bulk_owed = false;
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

    /// Is `ch` within its sparse budget?
    #[cfg(test)]
    pub fn is_sparse(&self, ch: ChannelId) -> bool {
        self.flows
            .get(&ch)
            .is_none_or(|f| (f.used_at(self.clock) as usize) < self.budget)
    }

    fn account(f: &mut Flow, round: u64, clock: u64, n: usize) {
        f.recent = f.recent_at(round).saturating_add(n as u32);
        f.recent_round = round;
        f.used = f.used_at(clock).saturating_add(n as u32);
        f.used_at = clock;
    }

    /// Whether a channel is waiting in the interactive fast lane.
    pub fn has_interactive(&self) -> bool {
        !self.urgent.is_empty()
    }

    /// The mux put only `used` of the `p.len` bytes of pick `p` on the wire
    /// (compressed data): give the rest back to the channel's deficit and
    /// counters, so that all accounting is in wire bytes.
    pub fn refund(&mut self, p: &Pick, used: usize) {
        let back = p.len.saturating_sub(used);
        if back == 0 {
            return;
        }
        self.clock -= back as u64;
        match p.tier {
            Tier::Sparse => self.sparse_run = self.sparse_run.saturating_sub(back),
            Tier::Bulk | Tier::Interactive => {}
        }
        let Some(f) = self.flows.get_mut(&p.ch) else {
            return;
        };
        if p.tier == Tier::Bulk {
            f.deficit += back;
        }
        f.recent = f.recent.saturating_sub(back as u32);
        f.used = f.used.saturating_sub(back as u32);
        f.used_at = f.used_at.min(self.clock);
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
        let quantum = quantum.max(1);
        let all = |_| true;
        let p = self.pick_interactive(cap, &mut state, all).or_else(|| {
            if self.bulk_owed {
                // Bulk's turn; the sparse tier only if no bulk can send.
                self.pick_bulk(cap, quantum, &mut state)
                    .or_else(|| self.pick_sparse(cap, quantum, &mut state, all))
            } else {
                self.pick_sparse(cap, quantum, &mut state, all)
                    .or_else(|| self.pick_bulk(cap, quantum, &mut state))
            }
        })?;
        self.count_pick(&p, quantum);
        Some(p)
    }

    /// The tiers' balance after pick `p`.
    fn count_pick(&mut self, p: &Pick, quantum: usize) {
        // Sparse bytes count up, bulk bytes count down three times as fast,
        // so bulk keeps at least a quarter of the line (and a sparse run
        // without waiting bulk does not bank an unbounded claim).
        match p.tier {
            Tier::Sparse => {
                self.sparse_run = (self.sparse_run + p.len).min(2 * SPARSE_RUN * quantum);
                self.bulk_owed |= self.sparse_run >= SPARSE_RUN * quantum;
            }
            Tier::Bulk => {
                self.sparse_run = self.sparse_run.saturating_sub(SPARSE_RUN * p.len);
                self.bulk_owed &= self.sparse_run > 0;
            }
            Tier::Interactive => {}
        }
        self.clock += p.len as u64;
    }

    /// Channels waiting in the sparse tier (some may have used up their
    /// budget; [`pick_overtaking`](Self::pick_overtaking) finds out).
    pub fn sparse_lane(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.sparse.iter().copied()
    }

    /// The sparse tier may go ahead of bulk now (it has not run ahead of it).
    pub fn sparse_may_overtake(&self) -> bool {
        !self.bulk_owed
    }

    /// Channels waiting in the interactive fast lane, first come first (some
    /// may have stopped being interactive; [`pick_overtaking`](Self::pick_overtaking)
    /// finds out).
    pub fn urgent_lane(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.urgent.iter().copied()
    }

    /// Like [`pick`](Self::pick), but only from the interactive lane and, with
    /// `sparse`, the sparse tier (while it is not ahead of bulk), and only a
    /// channel `allowed` says may go (data that overtakes a payload already
    /// chosen must not belong to a channel in it).
    pub fn pick_overtaking(
        &mut self,
        room: usize,
        quantum: usize,
        sparse: bool,
        mut state: impl FnMut(ChannelId) -> (usize, usize),
        allowed: impl Fn(ChannelId) -> bool + Copy,
    ) -> Option<Pick> {
        if room <= DATA_HEADER_LEN {
            return None;
        }
        let cap = (room - DATA_HEADER_LEN).min(MAX_DATA_LEN);
        let quantum = quantum.max(1);
        let p = self
            .pick_interactive(cap, &mut state, allowed)
            .or_else(|| {
                if sparse && !self.bulk_owed {
                    self.pick_sparse(cap, quantum, &mut state, allowed)
                } else {
                    None
                }
            })?;
        self.count_pick(&p, quantum);
        Some(p)
    }

    fn pick_interactive(
        &mut self,
        cap: usize,
        state: &mut impl FnMut(ChannelId) -> (usize, usize),
        allowed: impl Fn(ChannelId) -> bool,
    ) -> Option<Pick> {
        let (round, clock) = (self.round, self.clock);
        let mut i = 0;
        while let Some(&ch) = self.urgent.get(i) {
            let Some(f) = self.flows.get_mut(&ch) else {
                self.urgent.remove(i);
                continue;
            };
            let (queued, sendable) = state(ch);
            if sendable == 0 || queued > self.small || f.recent_at(round) as usize > self.small {
                f.in_urgent = false;
                self.urgent.remove(i);
                continue;
            }
            if !allowed(ch) {
                i += 1;
                continue;
            }
            let n = sendable.min(cap);
            if n < sendable && n < MIN_CUT {
                return None;
            }
            if n == sendable {
                f.in_urgent = false;
                self.urgent.remove(i);
            }
            Self::account(f, round, clock, n);
            return Some(Pick {
                ch,
                len: n,
                tier: Tier::Interactive,
            });
        }
        None
    }

    fn pick_sparse(
        &mut self,
        cap: usize,
        quantum: usize,
        state: &mut impl FnMut(ChannelId) -> (usize, usize),
        allowed: impl Fn(ChannelId) -> bool,
    ) -> Option<Pick> {
        let (round, clock) = (self.round, self.clock);
        let mut i = 0;
        while let Some(&ch) = self.sparse.get(i) {
            let Some(f) = self.flows.get_mut(&ch) else {
                self.sparse.remove(i);
                continue;
            };
            let (_, sendable) = state(ch);
            let used = f.used_at(clock) as usize;
            if sendable == 0 || used >= self.budget {
                f.in_sparse = false;
                self.sparse.remove(i);
                continue;
            }
            if !allowed(ch) {
                i += 1;
                continue;
            }
            // The last piece may overshoot the budget a little rather than
            // leave a crumb.
            let left = (self.budget - used).max(MIN_CUT);
            let want = sendable.min(left).min(quantum);
            let n = want.min(cap);
            if n < want && n < MIN_CUT {
                return None;
            }
            Self::account(f, round, clock, n);
            self.sparse.remove(i);
            if n == sendable || n == left {
                // Drained (it comes back with its next wake) or out of budget.
                f.in_sparse = false;
            } else {
                // Round robin between sparse channels, a pick each.
                self.sparse.push_back(ch);
            }
            return Some(Pick {
                ch,
                len: n,
                tier: Tier::Sparse,
            });
        }
        None
    }

    fn pick_bulk(
        &mut self,
        cap: usize,
        quantum: usize,
        state: &mut impl FnMut(ChannelId) -> (usize, usize),
    ) -> Option<Pick> {
        let (round, clock) = (self.round, self.clock);
        let mut skipped = 0;
        while let Some(&ch) = self.active.front() {
            let Some(f) = self.flows.get_mut(&ch) else {
                self.active.pop_front();
                continue;
            };
            if f.in_sparse && f.deficit == 0 {
                // Served by the sparse tier: a DRR turn yielded by that tier
                // goes to the channels it does not serve.
                if skipped >= self.active.len() {
                    return None;
                }
                skipped += 1;
                self.active.pop_front();
                self.active.push_back(ch);
                continue;
            }
            let (_, sendable) = state(ch);
            if sendable == 0 {
                f.in_active = false;
                f.deficit = 0;
                f.turn = false;
                self.active.pop_front();
                continue;
            }
            if f.deficit == 0 {
                if f.turn {
                    // Its turn is over (rotation is lazy so that a refund
                    // can still reach the deficit of the turn it belongs to).
                    f.turn = false;
                    self.active.pop_front();
                    self.active.push_back(ch);
                    continue;
                }
                f.deficit = quantum;
                f.turn = true;
            }
            let want = sendable.min(f.deficit);
            let n = want.min(cap);
            if n < want && n < MIN_CUT {
                return None;
            }
            f.deficit -= n;
            Self::account(f, round, clock, n);
            return Some(Pick {
                ch,
                len: n,
                tier: Tier::Bulk,
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
        let mut s = Scheduler::new(128, 0);
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
        let mut s = Scheduler::new(128, 0);
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
        let mut s = Scheduler::new(128, 0);
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
        let mut s = Scheduler::new(128, 0);
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
        let mut s = Scheduler::new(128, 0);
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

    /// Runs `payloads` payloads of `max` bytes, refilling the bulk channels so
    /// they never run dry; returns bytes per channel.
    fn run(
        f: &mut Fake,
        s: &mut Scheduler,
        bulk: &[ChannelId],
        payloads: usize,
        max: usize,
    ) -> HashMap<ChannelId, usize> {
        let mut got = HashMap::new();
        for _ in 0..payloads {
            for &b in bulk {
                let q = f.q.get(&b).copied().unwrap_or(0);
                if q < 4 * max {
                    f.add(s, b, 4 * max);
                }
            }
            for (ch, n) in f.payload(s, max) {
                *got.entry(ch).or_default() += n;
            }
        }
        got
    }

    #[test]
    fn new_light_channel_goes_ahead_of_three_bulk_channels() {
        let mut s = Scheduler::new(128, 8192);
        let mut f = Fake { q: HashMap::new() };
        let bulk = [ChannelId(1), ChannelId(2), ChannelId(3)];
        let login = ChannelId(4);
        // Bulk runs long enough for its counters to settle.
        let before = run(&mut f, &mut s, &bulk, 2000, 500);
        for b in bulk {
            assert!(!s.is_sparse(b), "{b} has been bulk-sending");
            assert!(before[&b] > 300_000, "{before:?}");
        }
        // A login's first message: 2 KB.
        f.add(&mut s, login, 2000);
        let mut payloads = 0;
        let mut got_bulk = 0;
        while f.q[&login] > 0 {
            payloads += 1;
            for (ch, n) in f.payload(&mut s, 500) {
                if ch != login {
                    got_bulk += n;
                }
            }
        }
        // 2000 bytes in 500-byte payloads: 5 at full rate, 7 at the sparse
        // tier's 3/4 of the line (a fair quarter would take 16); bulk still
        // gets its turns in between.
        assert!(payloads <= 7, "{payloads} payloads for 2000 bytes");
        assert!(got_bulk > 0, "bulk was shut out");
        // Its later messages are served ahead too, until the budget is used.
        for _ in 0..3 {
            f.add(&mut s, login, 1500);
            let p = f.payload(&mut s, 500);
            assert!(p.iter().any(|&(ch, _)| ch == login), "{p:?}");
        }
    }

    #[test]
    fn sparse_budget_runs_out_and_bulk_keeps_the_line() {
        let mut s = Scheduler::new(128, 8192);
        let mut f = Fake { q: HashMap::new() };
        let bulk = [ChannelId(1), ChannelId(2), ChannelId(3)];
        let heavy = ChannelId(4);
        run(&mut f, &mut s, &bulk, 2000, 500);
        // A new channel that turns out to be bulk too: it is served ahead for
        // about its budget, then shares fairly.
        let mut got = HashMap::<ChannelId, usize>::new();
        for _ in 0..4000 {
            if f.q.get(&heavy).copied().unwrap_or(0) < 2000 {
                f.add(&mut s, heavy, 2000);
            }
            for &b in &bulk {
                if f.q[&b] < 2000 {
                    f.add(&mut s, b, 2000);
                }
            }
            for (ch, n) in f.payload(&mut s, 500) {
                *got.entry(ch).or_default() += n;
            }
        }
        let total: usize = got.values().sum();
        for ch in bulk.iter().chain([&heavy]) {
            let share = got[ch] as f64 / total as f64;
            assert!((0.2..0.3).contains(&share), "{ch}: share {share} {got:?}");
        }
        assert!(!s.is_sparse(heavy));
    }

    #[test]
    fn many_new_channels_do_not_starve_bulk() {
        let mut s = Scheduler::new(128, 8192);
        let mut f = Fake { q: HashMap::new() };
        let bulk = [ChannelId(1)];
        run(&mut f, &mut s, &bulk, 500, 500);
        // 50 new channels each with 4 KB queued (within their budget, so
        // all of it goes through the sparse tier).
        for i in 0..50 {
            f.add(&mut s, ChannelId(100 + i), 4096);
        }
        let got = run(&mut f, &mut s, &bulk, 400, 500);
        let total: usize = got.values().sum();
        let share = got[&bulk[0]] as f64 / total as f64;
        let sparse_left: usize = (0..50).map(|i| f.q[&ChannelId(100 + i)]).sum();
        assert!(sparse_left > 0, "the new channels still had data");
        // A quarter, less the crumbs the sparse tier fills at payload ends.
        assert!(share >= 0.23, "bulk share {share}");
    }

    #[test]
    fn a_bulk_channel_that_pauses_briefly_stays_bulk() {
        let mut s = Scheduler::new(128, 8192);
        let mut f = Fake { q: HashMap::new() };
        let bulk = [ChannelId(1), ChannelId(2), ChannelId(3)];
        run(&mut f, &mut s, &bulk, 2000, 500);
        // Channel 1 runs out of credit for a while (the others go on).
        let _ = run(&mut f, &mut s, &bulk[1..], 20, 500);
        assert!(!s.is_sparse(bulk[0]));
        // After a long pause (a lot of traffic on the line) it is light again.
        let _ = run(&mut f, &mut s, &bulk[1..], 1000, 500);
        assert!(s.is_sparse(bulk[0]));
    }

    #[test]
    fn refund_gives_back_the_deficit() {
        let mut s = Scheduler::new(128, 0);
        let (a, b) = (ChannelId(1), ChannelId(2));
        s.wake(a, 10_000);
        s.wake(b, 10_000);
        s.begin_payload();
        // a's quantum is 400; it puts only 100 on the wire (compressed).
        let p = s.pick(1000, 400, |_| (10_000, 10_000)).unwrap();
        assert_eq!((p.ch, p.len), (a, 400));
        s.refund(&p, 100);
        let p = s.pick(1000, 400, |_| (10_000, 10_000)).unwrap();
        assert_eq!((p.ch, p.len), (a, 300), "the rest of a's turn");
        let p = s.pick(1000, 400, |_| (10_000, 10_000)).unwrap();
        assert_eq!(p.ch, b);
    }
}
