//! Deterministic simulation: two ends joined by two [`Line`]s, on simulated time.
//!
//! One harness, [`Pair`], holds side A and side B — any [`Endpoint`]: a driver
//! turn around a sans-IO machine — and the lines between them (A→B carries what
//! A writes, B→A the reverse). Simulated time starts at a base `Instant` and
//! jumps to the earliest of every end's wake-up and every line's next delivery,
//! so seconds of line time cost microseconds and a run is reproducible from its
//! seeds. Either side can be restarted mid-run ([`Pair::restart`]), like a
//! process restart, while the lines keep whatever they held.
//!
//! Two kinds of end:
//! - [`Side`] ([`LinkPair`]): a [`Link`] paced by a [`Pacer`] and driven by an
//!   [`Upper`] layer — [`StreamTester`], a tagged, self-checking stream that
//!   verifies what it receives is exactly once, in order, bit-exact, or a
//!   reported reset; or a bare multiplexer (`mux::sim_tests::over_link`). A turn
//!   reads the arrived bytes into [`Link::handle_input`], fires timers, hands
//!   events up, then, while the pacer allows, offers one payload when
//!   [`Link::can_send`] and writes one frame from [`Link::poll_transmit`].
//! - [`StationSide`] ([`StationPair`]): a whole SERIAL-MUX end, the
//!   [`Station`](crate::station::Station), with exactly the write batching,
//!   device loss and reopening its tokio driver does (and an adapter that can
//!   be unplugged).
//!
//! (Two harnesses stay outside on purpose: the mux's `IdealPipe`, which has no
//! line at all, to explore the multiplexer's logic with random payload limits
//! fast, and the keyed link's frame-level `Duo`, which records and replays
//! individual frames as an attacker would.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::line::half::HalfDuplex;
use crate::line::rng::Rng;
use crate::line::{Line, LineConfig};
use crate::link::{Link, LinkConfig, LinkEvent, Pacer};

/// The wall clock at a simulation's start, for keyed links
/// ([`KeyConfig::clock`](crate::link::crypto::KeyConfig::clock)): a fixed
/// date (2026-12-01), so runs replay exactly.
pub const SIM_CLOCK: Duration = Duration::from_secs(1_796_083_200);

/// `cfg` for a link created `since` after the simulation started: its
/// wall clock advanced by as much, as a restarted process reads it.
fn cfg_at(cfg: &LinkConfig, since: Duration) -> LinkConfig {
    let mut cfg = cfg.clone();
    if let Some(k) = cfg.key.as_mut() {
        k.clock += since;
    }
    cfg
}

/// The layer above a link in a simulation.
pub trait Upper {
    /// Next payload to send (at most `max` bytes), when the link can take one.
    fn poll_payload(&mut self, now: Instant, max: usize) -> Option<Bytes>;
    /// An event from the link.
    fn on_event(&mut self, now: Instant, ev: LinkEvent);
    /// The upper layer's own next deadline.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// Called when the deadline from [`poll_timeout`](Self::poll_timeout) is reached.
    fn handle_timeout(&mut self, _now: Instant) {}
    /// The link below was replaced by a new one (process restart).
    fn on_restart(&mut self, _now: Instant) {}
}

/// Which end of a [`LinkPair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Side A (writes to line A→B).
    A,
    /// Side B (writes to line B→A).
    B,
}

/// One end: link, pacer, upper layer and the driver's unwritten bytes.
#[derive(Debug)]
pub struct Side<U> {
    /// The link state machine.
    pub link: Link,
    /// Write pacing of this side's driver.
    pub pacer: Pacer,
    /// The layer above.
    pub upper: U,
    /// Link configuration (reused on restart).
    pub cfg: LinkConfig,
    /// Times this side was restarted.
    pub restarts: u32,
    backlog: VecDeque<u8>,
    blocked: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl<U: Upper> Side<U> {
    fn new(cfg: LinkConfig, epoch: u32, upper: U, now: Instant) -> Self {
        Side {
            link: Link::new(cfg.clone(), epoch, now),
            pacer: Pacer::new(cfg.byte_rate, cfg.pacing_target),
            upper,
            cfg,
            restarts: 0,
            backlog: VecDeque::new(),
            blocked: false,
            rx: Vec::new(),
            tx: Vec::new(),
        }
    }

    fn events(&mut self, now: Instant) {
        while let Some(ev) = self.link.poll_event() {
            self.upper.on_event(now, ev);
        }
    }
}

impl<U: Upper> Endpoint for Side<U> {
    fn service(&mut self, now: Instant, out_line: &mut Line, in_line: &mut Line) {
        self.rx.clear();
        in_line.read(now, &mut self.rx);
        if !self.rx.is_empty() {
            let rx = std::mem::take(&mut self.rx);
            self.link.handle_input(now, &rx);
            self.rx = rx;
        }
        if self.link.poll_timeout().is_some_and(|t| t <= now) {
            self.link.handle_timeout(now);
        }
        if self.upper.poll_timeout().is_some_and(|t| t <= now) {
            self.upper.handle_timeout(now);
        }
        self.events(now);
        if !self.backlog.is_empty() {
            let (a, _) = self.backlog.as_slices();
            let n = out_line.write(now, a);
            self.backlog.drain(..n);
        }
        self.blocked = false;
        loop {
            if self.link.can_send() {
                if let Some(p) = self.upper.poll_payload(now, self.link.max_payload()) {
                    if let Err(p) = self.link.send(p) {
                        panic!(
                            "upper layer offered {} bytes over max_payload {}",
                            p.len(),
                            self.link.max_payload()
                        );
                    }
                }
            }
            if !self.backlog.is_empty() || !self.pacer.writable(now) {
                self.blocked = true;
                break;
            }
            self.tx.clear();
            let n = self.link.poll_transmit(now, &mut self.tx);
            if n == 0 {
                break;
            }
            self.pacer.on_written(now, n);
            let w = out_line.write(now, &self.tx);
            self.backlog.extend(&self.tx[w..]);
        }
        self.events(now);
    }

    fn wakeup(&self, now: Instant) -> Option<Instant> {
        let mut t = min_opt(self.link.poll_timeout(), self.upper.poll_timeout());
        if self.blocked {
            t = min_opt(
                t,
                Some(
                    self.pacer
                        .next_writable(now)
                        .unwrap_or(now + Duration::from_micros(100)),
                ),
            );
        }
        t
    }

    fn restart(&mut self, epoch: u32, now: Instant, since: Duration) {
        self.link = Link::new(cfg_at(&self.cfg, since), epoch, now);
        self.pacer = Pacer::new(self.cfg.byte_rate, self.cfg.pacing_target);
        self.backlog.clear();
        self.restarts += 1;
        self.upper.on_restart(now);
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One end of a [`Pair`]: a sans-IO machine and what its driver holds around
/// it. One driver turn reads the arrived bytes, fires timers and writes what
/// the machine has, as the tokio driver does.
pub trait Endpoint {
    /// One driver turn at `now`: read from `in_line`, write to `out_line`.
    fn service(&mut self, now: Instant, out_line: &mut Line, in_line: &mut Line);
    /// When this end next needs a turn.
    fn wakeup(&self, now: Instant) -> Option<Instant>;
    /// A process restart at `now` with `epoch`, `since` after the simulation
    /// started (a keyed link's wall clock moved on as much); the driver's
    /// unwritten bytes are gone.
    fn restart(&mut self, epoch: u32, now: Instant, since: Duration);
}

/// Two ends joined by two lines, on simulated time: the one harness of the
/// simulations — links with a test stream above them ([`LinkPair`]) or whole
/// stations ([`StationPair`]).
#[derive(Debug)]
pub struct Pair<E> {
    /// Side A.
    pub a: E,
    /// Side B.
    pub b: E,
    /// Line carrying A's bytes to B.
    pub ab: Line,
    /// Line carrying B's bytes to A.
    pub ba: Line,
    /// The two lines are one shared medium ([`Pair::half_duplex`]).
    pub medium: Option<HalfDuplex>,
    /// Current simulated time.
    pub now: Instant,
    /// The time the simulation started.
    pub start: Instant,
    /// Steps taken.
    pub steps: u64,
}

/// Two links, each driven by an [`Upper`] layer.
pub type LinkPair<U> = Pair<Side<U>>;

/// Two [`Station`](crate::station::Station)s — whole SERIAL-MUX ends, exactly
/// the code the tokio driver runs. The application model lives in the test:
/// between steps it takes each station's events and gives it commands.
pub type StationPair = Pair<StationSide>;

impl<E: Endpoint> Pair<E> {
    /// Joins `a` and `b` by lines with these settings at `now`.
    pub fn join(a: E, b: E, ab: LineConfig, ba: LineConfig, now: Instant) -> Self {
        Pair {
            a,
            b,
            ab: Line::new(ab, now),
            ba: Line::new(ba, now),
            medium: None,
            now,
            start: now,
            steps: 0,
        }
    }

    /// Makes the two lines one shared (half-duplex) medium: bytes of both
    /// directions that overlap in time are garbled (seeded by `seed`).
    pub fn half_duplex(mut self, seed: u64) -> Self {
        self.medium = Some(HalfDuplex::join(&mut self.ab, &mut self.ba, seed));
        self
    }

    /// Simulated time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Services both sides at the current time, then advances time to the next
    /// wake-up, but not beyond `limit`. Returns false if nothing is scheduled before
    /// `limit` (time is then set to `limit`).
    pub fn step_until(&mut self, limit: Instant) -> bool {
        let now = self.now;
        self.a.service(now, &mut self.ab, &mut self.ba);
        self.b.service(now, &mut self.ba, &mut self.ab);
        if let Some(m) = &mut self.medium {
            // Both wrote at `now`: nothing of theirs can have arrived yet.
            m.settle(now, &mut self.ab, &mut self.ba);
        }
        self.steps += 1;
        let mut next = min_opt(self.a.wakeup(now), self.b.wakeup(now));
        next = min_opt(next, self.ab.next_wakeup());
        next = min_opt(next, self.ba.next_wakeup());
        match next {
            Some(t) if t <= limit => {
                self.now = t.max(now + Duration::from_nanos(1));
                true
            }
            _ => {
                self.now = limit.max(now);
                false
            }
        }
    }

    /// Like [`step_until`](Self::step_until), but time advances by at least
    /// `quantum` (never beyond `limit`): the sides then read the line in chunks,
    /// as a real driver polling a serial port does, instead of waking for every
    /// byte, so long runs cost far fewer steps.
    pub fn step_quantum(&mut self, quantum: Duration, limit: Instant) -> bool {
        let floor = (self.now + quantum).min(limit);
        let more = self.step_until(limit);
        self.now = self.now.max(floor);
        more
    }

    /// One step with no limit; false if nothing at all is scheduled.
    pub fn step(&mut self) -> bool {
        self.step_until(self.now + Duration::from_secs(3600))
    }

    /// Runs until simulated time reaches `deadline`.
    pub fn run_until(&mut self, deadline: Instant) {
        while self.now < deadline {
            self.step_until(deadline);
        }
        self.step_until(deadline);
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Restarts one side as a new process with `epoch` (see
    /// [`Endpoint::restart`]). The lines keep what they carry.
    pub fn restart(&mut self, which: Which, epoch: u32) {
        let (now, since) = (self.now, self.now - self.start);
        match which {
            Which::A => self.a.restart(epoch, now, since),
            Which::B => self.b.restart(epoch, now, since),
        }
    }
}

impl<U: Upper> LinkPair<U> {
    /// Builds a pair at `now`: `epochs` are A's and B's initial epochs.
    pub fn new(
        cfg: LinkConfig,
        ab: LineConfig,
        ba: LineConfig,
        a: U,
        b: U,
        epochs: (u32, u32),
        now: Instant,
    ) -> Self {
        let a = Side::new(cfg.clone(), epochs.0, a, now);
        let b = Side::new(cfg, epochs.1, b, now);
        Pair::join(a, b, ab, ba, now)
    }
}

/// Impairment presets for one line.
#[derive(Clone, Debug, PartialEq)]
pub enum ImpairmentKind {
    /// No impairment.
    Clean,
    /// Bit error rate.
    Ber(f64),
    /// Byte drop probability.
    Drops(f64),
    /// Garbage insertion probability.
    Inserts(f64),
    /// Drop and insertion, each with this probability.
    DropInsert(f64),
    /// Noise bursts: per second, length in byte times.
    Bursts(f64, u32),
    /// One outage `(start, duration)`.
    Outage(Duration, Duration),
    /// One-way latency.
    Latency(Duration),
}

impl ImpairmentKind {
    /// A line configuration at `byte_rate` with this impairment and `seed`.
    pub fn line(&self, byte_rate: u32, seed: u64) -> LineConfig {
        let mut c = LineConfig::clean(byte_rate).with_seed(seed);
        match *self {
            ImpairmentKind::Clean => {}
            ImpairmentKind::Ber(p) => c.ber = p,
            ImpairmentKind::Drops(p) => c.drop = p,
            ImpairmentKind::Inserts(p) => c.insert = p,
            ImpairmentKind::DropInsert(p) => {
                c.drop = p;
                c.insert = p;
            }
            ImpairmentKind::Bursts(r, l) => c.burst = Some((r, l)),
            ImpairmentKind::Outage(s, d) => c.outages = vec![(s, d)],
            ImpairmentKind::Latency(d) => c.latency = d,
        }
        c
    }
}

/// Header of every [`StreamTester`] payload: sender id, generation, sequence.
pub const TAG_LEN: usize = 9;

/// An [`Upper`] that sends a self-checking tagged stream and verifies the peer's.
///
/// Each payload is `sender:u8 gen:u32 seq:u32` followed by bytes derived from the tag.
/// The generation increases whenever the stream is reset (our link restarted, or
/// `PeerRestarted`). The receiver accepts the next seq of the current generation; after
/// a reset (own restart or `PeerRestarted`) it accepts only seq 0 of a strictly newer
/// generation, so nothing of the old session may slip into the new one. Anything else
/// is a violation.
#[derive(Debug)]
pub struct StreamTester {
    /// This side's id (tag byte).
    pub id: u8,
    rng: Rng,
    /// Messages left to send (across generations).
    pub budget: u64,
    /// Send payloads of exactly `max` bytes instead of random lengths.
    pub full_frames: bool,
    /// Current send generation.
    pub gen: u32,
    /// Next seq to send in the generation.
    pub next_send: u32,
    /// Payload bytes handed to the link.
    pub bytes_sent: u64,
    /// Peer generation being received.
    pub rx_gen: Option<u32>,
    /// Next seq expected from the peer.
    pub rx_next: u32,
    allow_new_gen: bool,
    /// Payload bytes received and verified.
    pub bytes_received: u64,
    /// Everything that went wrong.
    pub violations: Vec<String>,
    /// `Up` events seen.
    pub ups: u32,
    /// `PeerRestarted` events seen.
    pub peer_restarts: u32,
    /// `PeerLost` events seen.
    pub peer_lost: u32,
    /// `ProtocolMismatch` events seen.
    pub mismatches: u32,
}

fn body_byte(id: u8, gen: u32, seq: u32, i: usize) -> u8 {
    let x = (id as u64) << 56 ^ (gen as u64) << 32 ^ seq as u64;
    let h = x.wrapping_add(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 56) as u8 ^ (i as u8)
}

impl StreamTester {
    /// A tester with id `id` that will send `budget` messages.
    pub fn new(id: u8, seed: u64, budget: u64) -> Self {
        StreamTester {
            id,
            rng: Rng::new(seed),
            budget,
            full_frames: false,
            gen: 0,
            next_send: 0,
            bytes_sent: 0,
            rx_gen: None,
            rx_next: 0,
            allow_new_gen: true,
            bytes_received: 0,
            violations: Vec::new(),
            ups: 0,
            peer_restarts: 0,
            peer_lost: 0,
            mismatches: 0,
        }
    }

    fn reset_stream(&mut self) {
        if self.next_send > 0 {
            self.gen += 1;
            self.next_send = 0;
        }
        self.allow_new_gen = true;
    }

    fn check(&mut self, p: &[u8]) {
        if p.len() < TAG_LEN {
            self.violations.push(format!("short payload {}", p.len()));
            return;
        }
        let id = p[0];
        let gen = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
        let seq = u32::from_be_bytes([p[5], p[6], p[7], p[8]]);
        if id == self.id {
            self.violations.push("received our own payload".into());
            return;
        }
        if let Some(i) = (TAG_LEN..p.len()).find(|&i| p[i] != body_byte(id, gen, seq, i)) {
            self.violations
                .push(format!("corrupt payload gen {gen} seq {seq} at byte {i}"));
            return;
        }
        let ok = match self.rx_gen {
            _ if self.allow_new_gen => seq == 0 && self.rx_gen.is_none_or(|g| gen > g),
            Some(g) => g == gen && seq == self.rx_next,
            None => seq == 0,
        };
        if !ok {
            self.violations.push(format!(
                "unexpected gen {gen} seq {seq} (expected gen {:?} seq {}, reset allowed {})",
                self.rx_gen, self.rx_next, self.allow_new_gen
            ));
            return;
        }
        self.allow_new_gen = false;
        self.rx_gen = Some(gen);
        self.rx_next = seq + 1;
        self.bytes_received += p.len() as u64;
    }

    /// True when the peer's current generation was received completely.
    pub fn has_all_of(&self, peer: &StreamTester) -> bool {
        peer.next_send == 0 || (self.rx_gen == Some(peer.gen) && self.rx_next == peer.next_send)
    }
}

impl Upper for StreamTester {
    fn poll_payload(&mut self, _now: Instant, max: usize) -> Option<Bytes> {
        if self.budget == 0 || max < TAG_LEN {
            return None;
        }
        self.budget -= 1;
        let len = if self.full_frames {
            max
        } else {
            TAG_LEN + self.rng.below((max - TAG_LEN + 1) as u64) as usize
        };
        let mut v = Vec::with_capacity(len);
        v.push(self.id);
        v.extend_from_slice(&self.gen.to_be_bytes());
        v.extend_from_slice(&self.next_send.to_be_bytes());
        for i in TAG_LEN..len {
            v.push(body_byte(self.id, self.gen, self.next_send, i));
        }
        self.next_send += 1;
        self.bytes_sent += len as u64;
        Some(Bytes::from(v))
    }

    fn on_event(&mut self, _now: Instant, ev: LinkEvent) {
        match ev {
            LinkEvent::Up { .. } => self.ups += 1,
            LinkEvent::Delivered(p) => self.check(&p),
            LinkEvent::PeerRestarted => {
                self.peer_restarts += 1;
                self.reset_stream();
            }
            LinkEvent::PeerLost => {
                // The session is over: what was in flight is gone both ways.
                self.peer_lost += 1;
                self.reset_stream();
            }
            LinkEvent::ProtocolMismatch(_) => self.mismatches += 1,
            LinkEvent::PeerFeatures(_) => {}
        }
    }

    fn on_restart(&mut self, _now: Instant) {
        self.reset_stream();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick a starting instant
mod tests {
    use super::*;

    #[test]
    fn clean_pair_transfers_both_ways() {
        let t0 = Instant::now();
        let cfg = LinkConfig::for_byte_rate(11_520);
        let line = LineConfig::clean(11_520);
        let mut p = LinkPair::new(
            cfg,
            line.clone(),
            line,
            StreamTester::new(0, 1, 50),
            StreamTester::new(1, 2, 50),
            (11, 22),
            t0,
        );
        p.run_for(Duration::from_secs(5));
        assert!(p.a.link.is_up() && p.b.link.is_up());
        assert_eq!(p.a.upper.ups, 1);
        assert!(p.b.upper.has_all_of(&p.a.upper), "{:?}", p.b.upper);
        assert!(p.a.upper.has_all_of(&p.b.upper));
        assert_eq!(p.a.upper.next_send, 50);
        assert!(p.a.upper.violations.is_empty() && p.b.upper.violations.is_empty());
        assert_eq!(p.a.link.stats().frames_retransmitted, 0);
    }
}

/// One end of a [`StationPair`]: a [`Station`](crate::station::Station) and
/// what the tokio driver holds around it: the write in flight (the rest of a
/// [`Station::poll_write`](crate::station::Station::poll_write) batch the
/// device has not taken yet) and whether the device is plugged in.
#[derive(Debug)]
pub struct StationSide {
    /// The station under test.
    pub station: crate::station::Station,
    /// Its configuration (reused on restart).
    pub cfg: crate::station::StationConfig,
    /// Times this side was restarted.
    pub restarts: u32,
    /// Times this side's device was unplugged.
    pub unplugs: u32,
    backlog: VecDeque<u8>,
    /// The adapter is unplugged: nothing is read or written, reopening fails.
    unplugged: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl StationSide {
    fn new(cfg: crate::station::StationConfig, epoch: u32, now: Instant) -> Self {
        StationSide {
            station: crate::station::Station::new(cfg.clone(), epoch, now),
            cfg,
            restarts: 0,
            unplugs: 0,
            backlog: VecDeque::new(),
            unplugged: false,
            rx: Vec::new(),
            tx: Vec::new(),
        }
    }

    /// Pulls the adapter out: the write in flight is lost with it, and the
    /// driver sees the device fail.
    pub fn unplug(&mut self, now: Instant) {
        self.unplugged = true;
        self.unplugs += 1;
        self.backlog.clear();
        self.station.handle_device_lost(now);
    }

    /// Plugs the adapter back in: the next reopen the station asks for works.
    pub fn plug_in(&mut self) {
        self.unplugged = false;
    }
}

impl Endpoint for StationSide {
    /// What the tokio driver does on one turn: reopen a lost device when the
    /// station says, input, timers, then one write at a time, each a batch
    /// from the station, the next only when the device took the last.
    fn service(&mut self, now: Instant, out_line: &mut Line, in_line: &mut Line) {
        if self.station.poll_reopen(now) {
            if self.unplugged {
                self.station.handle_reopen_failed(now);
            } else {
                self.station.handle_device_reopened();
            }
        }
        self.rx.clear();
        in_line.read(now, &mut self.rx);
        if self.station.is_device_lost() {
            // Bytes arriving at an unplugged adapter are lost.
            return;
        }
        if !self.rx.is_empty() {
            self.station.handle_input(now, &self.rx);
        }
        if self.station.poll_timeout().is_some_and(|t| t <= now) {
            self.station.handle_timeout(now);
        }
        loop {
            if self.backlog.is_empty() {
                self.tx.clear();
                if self.station.poll_write(now, &mut self.tx) == 0 {
                    break;
                }
                self.backlog.extend(&self.tx);
            }
            let (a, _) = self.backlog.as_slices();
            let n = out_line.write(now, a);
            self.backlog.drain(..n);
            if !self.backlog.is_empty() {
                break;
            }
            self.station.handle_write_done();
        }
    }

    fn wakeup(&self, now: Instant) -> Option<Instant> {
        let blocked = (!self.backlog.is_empty()).then(|| now + Duration::from_micros(100));
        min_opt(self.station.poll_timeout(), blocked)
    }

    fn restart(&mut self, epoch: u32, now: Instant, since: Duration) {
        let mut cfg = self.cfg.clone();
        cfg.link = cfg_at(&cfg.link, since);
        self.station = crate::station::Station::new(cfg, epoch, now);
        self.backlog.clear();
        self.unplugged = false;
        self.restarts += 1;
    }
}

impl StationPair {
    /// Builds a pair at `now` with the given station settings and lines.
    pub fn new(
        cfg: crate::station::StationConfig,
        ab: LineConfig,
        ba: LineConfig,
        epochs: (u32, u32),
        now: Instant,
    ) -> Self {
        let a = StationSide::new(cfg.clone(), epochs.0, now);
        let b = StationSide::new(cfg, epochs.1, now);
        Pair::join(a, b, ab, ba, now)
    }
}
