//! Sans-IO model of one direction of a serial line.
//!
//! A [`Line`] accepts bytes into a bounded device queue (the UART/USB FIFO), serialises
//! them back to back at the configured byte rate, impairs each byte once it is on the
//! wire (bit errors, drops, insertions, noise bursts, outages) and hands it to the far
//! end `latency` after its serialisation ended. Time is always an argument; the model
//! never reads a clock, and everything random comes from a [`rng::Rng`] seeded by
//! [`LineConfig::seed`], so a run is reproducible.
//!
//! Used by the deterministic simulations (`sim`) and by the virtual serial
//! cable driver.

pub mod half;
pub mod rng;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rng::Rng;

/// Configuration of one direction of a serial line.
#[derive(Clone, Debug, PartialEq)]
pub struct LineConfig {
    /// Bytes per second on the wire (baud / bits per character, e.g. 115200/10).
    pub byte_rate: u32,
    /// One-way latency added after a byte's serialisation ends (USB adapter latency).
    pub latency: Duration,
    /// Device queue size in bytes (written but not yet serialised); default 4096.
    pub fifo: usize,
    /// Probability that each bit of a serialised byte is flipped.
    pub ber: f64,
    /// Probability that a serialised byte is lost.
    pub drop: f64,
    /// Probability that a random garbage byte is inserted after a serialised byte.
    pub insert: f64,
    /// Noise bursts: `(bursts per second, burst length in byte times)`; Poisson
    /// arrivals; bytes serialised inside a burst are replaced by random bytes.
    pub burst: Option<(f64, u32)>,
    /// Outages `(start, duration)`, start relative to the `now` given to [`Line::new`];
    /// bytes whose serialisation ends inside an outage are lost.
    pub outages: Vec<(Duration, Duration)>,
    /// Seed of every random decision of this line.
    pub seed: u64,
}

impl LineConfig {
    /// A clean line (no impairments, no latency) at `byte_rate` bytes/s, fifo 4096.
    pub fn clean(byte_rate: u32) -> Self {
        LineConfig {
            byte_rate,
            latency: Duration::ZERO,
            fifo: 4096,
            ber: 0.0,
            drop: 0.0,
            insert: 0.0,
            burst: None,
            outages: Vec::new(),
            seed: 0,
        }
    }

    /// A clean line at `baud` with 8N1 characters (10 bits per byte).
    pub fn baud(baud: u32) -> Self {
        Self::clean((baud / 10).max(1))
    }

    /// Builder: sets the one-way latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Builder: sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Builder: sets the bit error rate.
    pub fn with_ber(mut self, ber: f64) -> Self {
        self.ber = ber;
        self
    }
}

/// Counters of a [`Line`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Bytes accepted by [`Line::write`].
    pub bytes_written: u64,
    /// Bytes handed out by [`Line::read`] (including inserted garbage).
    pub bytes_delivered: u64,
    /// Bits flipped by the bit error rate.
    pub bits_flipped: u64,
    /// Bytes lost by the drop probability.
    pub bytes_dropped: u64,
    /// Garbage bytes inserted.
    pub bytes_inserted: u64,
    /// Bytes replaced by noise bursts.
    pub burst_bytes: u64,
    /// Bytes lost to outages.
    pub outage_bytes: u64,
    /// Highest device-queue occupancy seen right after a write.
    pub queue_high_water: usize,
    /// Bytes garbled because the other direction of a shared (half-duplex)
    /// medium was on the wire at the same time ([`half::HalfDuplex`]).
    pub collided_bytes: u64,
}

/// A byte on its way to the far end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    /// Start of its serialisation, ns since base.
    start: u64,
    /// Arrival at the far end, ns since base.
    arrive: u64,
    byte: u8,
    /// Already garbled by a collision (garbled once, however many overlaps).
    collided: bool,
}

const NS: u128 = 1_000_000_000;

/// One direction of a serial line (see the module docs).
#[derive(Debug)]
pub struct Line {
    cfg: LineConfig,
    base: Instant,
    rng: Rng,
    burst_rng: Rng,
    /// End of the serialisation of the last written byte, in ns × byte_rate since base.
    ser_end: u128,
    /// Latest time seen by `write`/`read`, ns since base.
    last_now: u64,
    /// Bytes on their way, in order of arrival.
    flight: VecDeque<InFlight>,
    /// Serialisation intervals `[start, end)` in ns of the bytes written (each
    /// run back to back), kept while a write of the other direction of a shared
    /// medium could still overlap them.
    busy: VecDeque<(u64, u64)>,
    /// Serialisation intervals written since [`take_new_spans`](Self::take_new_spans).
    new_spans: Vec<(u64, u64)>,
    /// One direction of a shared medium: `busy` and `new_spans` are kept.
    shared: bool,
    bits_to_flip: u64,
    drop_left: u64,
    insert_left: u64,
    burst_cur: (u64, u64),
    burst_next: u64,
    stats: LineStats,
}

impl Line {
    /// A line in its initial (empty) state at time `now`.
    pub fn new(mut cfg: LineConfig, now: Instant) -> Line {
        cfg.byte_rate = cfg.byte_rate.max(1);
        cfg.outages.sort();
        let mut rng = Rng::new(cfg.seed);
        let mut burst_rng = Rng::new(cfg.seed ^ 0xB0B5_7000_0000_0001);
        let bits_to_flip = rng.geometric(cfg.ber);
        let drop_left = rng.geometric(cfg.drop);
        let insert_left = rng.geometric(cfg.insert);
        let burst_next = match cfg.burst {
            Some((rate, _)) if rate > 0.0 => secs_to_ns(burst_rng.exp(1.0 / rate)),
            _ => u64::MAX,
        };
        Line {
            cfg,
            base: now,
            rng,
            burst_rng,
            ser_end: 0,
            last_now: 0,
            flight: VecDeque::new(),
            busy: VecDeque::new(),
            new_spans: Vec::new(),
            shared: false,
            bits_to_flip,
            drop_left,
            insert_left,
            burst_cur: (0, 0),
            burst_next,
            stats: LineStats::default(),
        }
    }

    /// The configuration this line was built with.
    pub fn config(&self) -> &LineConfig {
        &self.cfg
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    fn instant(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }

    fn occupancy_at(&self, now_ns: u64) -> usize {
        let now_s = now_ns as u128 * self.cfg.byte_rate as u128;
        if self.ser_end <= now_s {
            0
        } else {
            (self.ser_end - now_s).div_ceil(NS) as usize
        }
    }

    /// Free room in the device queue at `now`.
    pub fn space(&self, now: Instant) -> usize {
        self.cfg
            .fifo
            .saturating_sub(self.occupancy_at(self.ns(now)))
    }

    /// Bytes written but not yet serialised at `now`.
    pub fn queued(&self, now: Instant) -> usize {
        self.occupancy_at(self.ns(now))
    }

    /// Writes up to [`space`](Self::space)`(now)` bytes of `data`; returns how many
    /// were accepted.
    pub fn write(&mut self, now: Instant, data: &[u8]) -> usize {
        let now_ns = self.ns(now).max(self.last_now);
        self.last_now = now_ns;
        let n = data.len().min(self.space(self.instant(now_ns)));
        let rate = self.cfg.byte_rate as u128;
        let latency = self.cfg.latency.as_nanos() as u64;
        for &b in &data[..n] {
            let start = self.ser_end.max(now_ns as u128 * rate);
            self.ser_end = start + NS;
            let start_ns = (start / rate) as u64;
            let end_ns = self.ser_end.div_ceil(rate) as u64;
            self.note_busy(start_ns, end_ns);
            self.impair(start_ns, end_ns, end_ns + latency, b);
        }
        self.stats.bytes_written += n as u64;
        let occ = self.occupancy_at(now_ns);
        self.stats.queue_high_water = self.stats.queue_high_water.max(occ);
        n
    }

    fn in_outage(&self, t_ns: u64) -> bool {
        self.cfg.outages.iter().any(|&(s, d)| {
            let s = s.as_nanos() as u64;
            t_ns >= s && t_ns < s.saturating_add(d.as_nanos() as u64)
        })
    }

    fn in_burst(&mut self, t_ns: u64) -> bool {
        let Some((rate, len)) = self.cfg.burst else {
            return false;
        };
        while t_ns >= self.burst_next {
            let start = self.burst_next;
            let len_ns = (len as u128 * NS / self.cfg.byte_rate as u128) as u64;
            self.burst_cur = (start, start.saturating_add(len_ns));
            self.burst_next =
                start.saturating_add(secs_to_ns(self.burst_rng.exp(1.0 / rate)).max(1));
        }
        t_ns >= self.burst_cur.0 && t_ns < self.burst_cur.1
    }

    /// Records that the wire carries a byte of ours during `[start, end)`.
    fn note_busy(&mut self, start: u64, end: u64) {
        if !self.shared {
            return;
        }
        match self.busy.back_mut() {
            Some(last) if last.1 >= start => last.1 = last.1.max(end),
            _ => self.busy.push_back((start, end)),
        }
        match self.new_spans.last_mut() {
            Some(last) if last.1 >= start => last.1 = last.1.max(end),
            _ => self.new_spans.push((start, end)),
        }
    }

    /// Makes this line one direction of a shared medium: it keeps what
    /// [`half::HalfDuplex`] needs to find overlaps.
    pub(crate) fn set_shared(&mut self) {
        self.shared = true;
    }

    /// Serialisation intervals `[start, end)` (ns since this line's base)
    /// written since the last call, merged where back to back.
    pub(crate) fn take_new_spans(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.new_spans)
    }

    /// Whether a byte of ours is on the wire somewhere in `[start, end)`;
    /// forgets intervals that ended before `horizon` (nothing written from
    /// then on can overlap them).
    pub(crate) fn busy_during(&mut self, start: u64, end: u64, horizon: u64) -> bool {
        while self.busy.front().is_some_and(|r| r.1 <= horizon) {
            self.busy.pop_front();
        }
        self.busy.iter().any(|&(s, e)| s < end && start < e)
    }

    /// Garbles every byte still on its way whose serialisation overlaps
    /// `[start, end)` (another transmitter was on the shared wire); returns how
    /// many were newly garbled.
    pub(crate) fn garble_during(&mut self, start: u64, end: u64, rng: &mut Rng) -> u64 {
        let byte_ns = (NS / self.cfg.byte_rate as u128).max(1) as u64;
        let mut n = 0;
        for f in self.flight.iter_mut().rev() {
            if f.start + byte_ns <= start {
                break;
            }
            if f.start < end && !f.collided {
                f.collided = true;
                f.byte = rng.byte();
                n += 1;
            }
        }
        self.stats.collided_bytes += n;
        n
    }

    /// Nanoseconds since this line's base at `t`.
    pub(crate) fn ns_at(&self, t: Instant) -> u64 {
        self.ns(t)
    }

    fn impair(&mut self, start_ns: u64, end_ns: u64, arrive: u64, b: u8) {
        if self.in_outage(end_ns) {
            self.stats.outage_bytes += 1;
            return;
        }
        let mut b = b;
        if self.in_burst(end_ns) {
            self.stats.burst_bytes += 1;
            b = self.rng.byte();
        } else {
            if self.drop_left == 0 {
                self.drop_left = self.rng.geometric(self.cfg.drop);
                self.stats.bytes_dropped += 1;
                return;
            }
            self.drop_left = self.drop_left.saturating_sub(1);
            if self.bits_to_flip >= 8 {
                self.bits_to_flip = self.bits_to_flip.saturating_sub(8);
            } else {
                let mut pos = self.bits_to_flip;
                loop {
                    b ^= 1 << pos;
                    self.stats.bits_flipped += 1;
                    let next = pos
                        .saturating_add(1)
                        .saturating_add(self.rng.geometric(self.cfg.ber));
                    if next >= 8 {
                        self.bits_to_flip = next - 8;
                        break;
                    }
                    pos = next;
                }
            }
        }
        self.flight.push_back(InFlight {
            start: start_ns,
            arrive,
            byte: b,
            collided: false,
        });
        if self.insert_left == 0 {
            self.insert_left = self.rng.geometric(self.cfg.insert);
            self.stats.bytes_inserted += 1;
            let g = self.rng.byte();
            self.flight.push_back(InFlight {
                start: start_ns,
                arrive,
                byte: g,
                collided: false,
            });
        } else {
            self.insert_left = self.insert_left.saturating_sub(1);
        }
    }

    /// Appends to `out` every byte that has arrived at the far end by `now`.
    pub fn read(&mut self, now: Instant, out: &mut Vec<u8>) {
        let now_ns = self.ns(now).max(self.last_now);
        self.last_now = now_ns;
        while let Some(&InFlight {
            arrive: t, byte: b, ..
        }) = self.flight.front()
        {
            if t > now_ns {
                break;
            }
            out.push(b);
            self.flight.pop_front();
            self.stats.bytes_delivered += 1;
        }
    }

    /// Earliest time at which [`read`](Self::read) would yield bytes or
    /// [`space`](Self::space) grows, relative to the latest `now` given to
    /// `write`/`read`; `None` when nothing is queued or in flight. May be in the past
    /// when arrived bytes have not been read yet.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let arrival = self.flight.front().map(|f| f.arrive);
        let occ = self.occupancy_at(self.last_now);
        let drain = if occ > 0 {
            let first_end = self.ser_end - (occ as u128 - 1) * NS;
            Some(first_end.div_ceil(self.cfg.byte_rate as u128) as u64)
        } else {
            None
        };
        let t = match (arrival, drain) {
            (Some(a), Some(d)) => a.min(d),
            (a, d) => a.or(d)?,
        };
        Some(self.instant(t))
    }

    /// Counters so far.
    pub fn stats(&self) -> LineStats {
        self.stats
    }
}

fn secs_to_ns(s: f64) -> u64 {
    let ns = s * 1e9;
    if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns as u64
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick a starting instant
mod tests {
    use super::*;

    fn drain(line: &mut Line, t0: Instant, until: Duration) -> Vec<u8> {
        let mut out = Vec::new();
        line.read(t0 + until, &mut out);
        out
    }

    #[test]
    fn pacing_is_exact() {
        let t0 = Instant::now();
        let mut l = Line::new(LineConfig::clean(1000), t0);
        assert_eq!(l.write(t0, &[7u8; 100]), 100);
        assert_eq!(l.queued(t0), 100);
        // Byte k (1-based) ends at k ms.
        let mut out = Vec::new();
        l.read(t0 + Duration::from_micros(9_999), &mut out);
        assert_eq!(out.len(), 9);
        l.read(t0 + Duration::from_millis(10), &mut out);
        assert_eq!(out.len(), 10);
        assert_eq!(l.queued(t0 + Duration::from_millis(10)), 90);
        assert_eq!(l.next_wakeup(), Some(t0 + Duration::from_millis(11)));
        l.read(t0 + Duration::from_millis(100), &mut out);
        assert_eq!(out, vec![7u8; 100]);
        assert_eq!(l.next_wakeup(), None);
        // A write after idle starts at its write time.
        let t1 = t0 + Duration::from_millis(500);
        l.write(t1, &[1, 2]);
        assert_eq!(l.next_wakeup(), Some(t1 + Duration::from_millis(1)));
        let mut out = Vec::new();
        l.read(t1 + Duration::from_millis(2), &mut out);
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn pacing_non_integer_rate_and_latency() {
        let t0 = Instant::now();
        let cfg = LineConfig::baud(115200).with_latency(Duration::from_millis(5));
        let mut l = Line::new(cfg, t0);
        l.write(t0, &[0u8; 2000]);
        let total = Duration::from_nanos((2000u64 * 1_000_000_000).div_ceil(11520));
        let mut out = Vec::new();
        l.read(
            t0 + total + Duration::from_millis(5) - Duration::from_nanos(1),
            &mut out,
        );
        assert_eq!(out.len(), 1999);
        l.read(t0 + total + Duration::from_millis(5), &mut out);
        assert_eq!(out.len(), 2000);
    }

    #[test]
    fn fifo_bound() {
        let t0 = Instant::now();
        let mut cfg = LineConfig::clean(1000);
        cfg.fifo = 64;
        let mut l = Line::new(cfg, t0);
        assert_eq!(l.write(t0, &[0u8; 100]), 64);
        assert_eq!(l.space(t0), 0);
        assert_eq!(l.write(t0, &[0u8; 10]), 0);
        let t = t0 + Duration::from_millis(10);
        assert_eq!(l.space(t), 10);
        assert_eq!(l.write(t, &[0u8; 100]), 10);
        assert_eq!(l.stats().queue_high_water, 64);
        assert_eq!(l.stats().bytes_written, 74);
        // Bytes in latency flight do not count.
        let mut cfg = LineConfig::clean(1000).with_latency(Duration::from_secs(10));
        cfg.fifo = 8;
        let mut l = Line::new(cfg, t0);
        l.write(t0, &[0u8; 8]);
        assert_eq!(l.space(t0 + Duration::from_millis(8)), 8);
    }

    fn run(cfg: LineConfig, n: usize) -> (Vec<u8>, Vec<u8>, LineStats) {
        let t0 = Instant::now();
        let mut rng = Rng::new(cfg.seed ^ 99);
        let mut data = vec![0u8; n];
        rng.fill(&mut data);
        let rate = cfg.byte_rate as u64;
        let mut l = Line::new(cfg, t0);
        let mut out = Vec::new();
        let mut off = 0;
        let mut t = t0;
        while off < data.len() {
            off += l.write(t, &data[off..]);
            t += Duration::from_millis(100);
            l.read(t, &mut out);
        }
        out.extend(drain(&mut l, t0, Duration::from_secs(n as u64 / rate + 10)));
        (data, out, l.stats())
    }

    #[test]
    fn bit_error_rate_statistics() {
        let mut cfg = LineConfig::clean(1_000_000).with_seed(3);
        cfg.ber = 1e-3;
        let (data, out, st) = run(cfg, 200_000);
        assert_eq!(out.len(), data.len());
        let flipped: u32 = data
            .iter()
            .zip(&out)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped as u64, st.bits_flipped);
        // Expect 1600 ± 4 sigma (40).
        assert!((1440..1760).contains(&flipped), "{flipped}");
    }

    #[test]
    fn drop_insert_statistics() {
        let mut cfg = LineConfig::clean(1_000_000).with_seed(5);
        cfg.drop = 1e-2;
        let (data, out, st) = run(cfg.clone(), 100_000);
        assert!(
            (800..1200).contains(&st.bytes_dropped),
            "{}",
            st.bytes_dropped
        );
        assert_eq!(out.len() as u64, data.len() as u64 - st.bytes_dropped);
        cfg.drop = 0.0;
        cfg.insert = 1e-2;
        let (data, out, st) = run(cfg, 100_000);
        assert!(
            (800..1200).contains(&st.bytes_inserted),
            "{}",
            st.bytes_inserted
        );
        assert_eq!(out.len() as u64, data.len() as u64 + st.bytes_inserted);
        assert_eq!(st.bytes_delivered, out.len() as u64);
    }

    #[test]
    fn bursts_and_outages() {
        // 10 bursts/s of 100 byte times at 100 kB/s: ~1 % of bytes.
        let mut cfg = LineConfig::clean(100_000).with_seed(11);
        cfg.burst = Some((10.0, 100));
        let (_, out, st) = run(cfg, 1_000_000);
        assert_eq!(out.len(), 1_000_000);
        assert!(
            (7_000..13_000).contains(&st.burst_bytes),
            "{}",
            st.burst_bytes
        );
        let mut cfg = LineConfig::clean(1000);
        cfg.outages = vec![(Duration::from_millis(100), Duration::from_millis(50))];
        let (data, out, st) = run(cfg, 300);
        assert_eq!(st.outage_bytes, 50);
        assert_eq!(out.len(), 250);
        assert_eq!(&out[..99], &data[..99]);
        assert_eq!(&out[99..], &data[149..]);
    }

    #[test]
    fn deterministic_per_seed() {
        let mut cfg = LineConfig::clean(50_000).with_seed(42);
        cfg.ber = 1e-3;
        cfg.drop = 1e-3;
        cfg.insert = 1e-3;
        cfg.burst = Some((5.0, 20));
        let a = run(cfg.clone(), 50_000);
        let b = run(cfg.clone(), 50_000);
        assert_eq!(a, b);
        cfg.seed = 43;
        let c = run(cfg, 50_000);
        assert_ne!(a.1, c.1);
    }
}
