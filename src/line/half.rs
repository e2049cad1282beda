//! A shared (half-duplex) medium: the two directions of a [`Line`] pair on one
//! wire, as on a 2-wire RS-485 pair or a radio channel. Bytes of the two
//! directions whose serialisation overlaps in time are garbled on both sides
//! (each replaced by a random byte, seeded); bytes that take turns — one
//! direction's last byte ends before the other's first begins — pass untouched.
//!
//! Sans-IO like [`Line`]: the owner writes into either line as usual and calls
//! [`HalfDuplex::settle`] after every write (the simulator after each step, the
//! virtual cable after each write), before time moves on. A byte written at
//! `now` is serialised from `now` on and arrives no earlier than its
//! serialisation ends, so every byte a new write can collide with is still on
//! its way and can be garbled in place.

use std::time::Instant;

use super::rng::Rng;
use super::Line;

/// Joins two [`Line`]s (created at the same instant) into one shared medium.
#[derive(Debug)]
pub struct HalfDuplex {
    rng: Rng,
}

impl HalfDuplex {
    /// Makes `a` and `b` the two directions of one shared wire; the garbage
    /// that replaces collided bytes comes from `seed`.
    pub fn join(a: &mut Line, b: &mut Line, seed: u64) -> HalfDuplex {
        a.set_shared();
        b.set_shared();
        HalfDuplex {
            rng: Rng::new(seed ^ 0x4841_4C46_0000_0001),
        }
    }

    /// Applies the collisions of everything written into `a` or `b` since the
    /// last call; `now` is the time of the latest write. Returns the number of
    /// bytes newly garbled (both directions).
    pub fn settle(&mut self, now: Instant, a: &mut Line, b: &mut Line) -> u64 {
        let horizon = a.ns_at(now);
        self.collide(a, b, horizon) + self.collide(b, a, horizon)
    }

    /// Collisions of `x`'s new writes with whatever `y` has on the wire.
    fn collide(&mut self, x: &mut Line, y: &mut Line, horizon: u64) -> u64 {
        let mut garbled = 0;
        for (start, end) in x.take_new_spans() {
            if y.busy_during(start, end, horizon) {
                // Both sides of the overlap: theirs under our span, ours under
                // their runs (garbling is idempotent per byte).
                garbled += y.garble_during(start, end, &mut self.rng);
                for (ys, ye) in y.busy_runs_within(start, end) {
                    garbled += x.garble_during(ys, ye, &mut self.rng);
                }
            }
        }
        garbled
    }
}

impl Line {
    /// The parts of this line's busy intervals inside `[start, end)`.
    fn busy_runs_within(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        self.busy
            .iter()
            .filter(|&&(s, e)| s < end && start < e)
            .map(|&(s, e)| (s.max(start), e.min(end)))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick a starting instant
mod tests {
    use super::*;
    use crate::line::LineConfig;
    use std::time::Duration;

    /// 1000 bytes/s: byte k (from 0) of a write at t occupies [t + k ms, t + k+1 ms).
    fn medium(t0: Instant) -> (Line, Line, HalfDuplex) {
        let mut a = Line::new(LineConfig::clean(1000), t0);
        let mut b = Line::new(LineConfig::clean(1000), t0);
        let h = HalfDuplex::join(&mut a, &mut b, 7);
        (a, b, h)
    }

    fn read_all(l: &mut Line, at: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        l.read(at, &mut out);
        out
    }

    #[test]
    fn overlapping_bytes_are_garbled_on_both_sides() {
        let t0 = Instant::now();
        let (mut a, mut b, mut h) = medium(t0);
        let ms = Duration::from_millis;
        a.write(t0, &[0x55; 10]);
        h.settle(t0, &mut a, &mut b);
        // B starts while A's byte 4 is on the wire and sends 3 bytes: A's
        // bytes 4, 5, 6 (and the part of 7 under B's last) collide with them.
        let t = t0 + ms(4) + Duration::from_micros(500);
        b.write(t, &[0xAA; 3]);
        let n = h.settle(t, &mut a, &mut b);
        let ab = read_all(&mut a, t0 + ms(100));
        let ba = read_all(&mut b, t0 + ms(100));
        assert_eq!(ab.len(), 10);
        assert_eq!(&ab[..4], &[0x55; 4], "before the overlap: intact");
        assert_eq!(&ab[8..], &[0x55; 2], "after the overlap: intact");
        // Random replacements: a byte may by chance equal the original, so
        // count on the stats and on most of them differing.
        assert_eq!(a.stats().collided_bytes, 4, "A's bytes 4..8 overlap");
        assert_eq!(b.stats().collided_bytes, 3, "all of B's bytes overlap");
        assert_eq!(n, 7);
        assert!(ab[4..8].iter().filter(|&&x| x != 0x55).count() >= 3);
        assert!(ba.iter().filter(|&&x| x != 0xAA).count() >= 2);
        assert_eq!(ba.len(), 3);
    }

    #[test]
    fn back_to_back_turns_pass_untouched() {
        let t0 = Instant::now();
        let (mut a, mut b, mut h) = medium(t0);
        let ms = Duration::from_millis;
        a.write(t0, &[1; 10]);
        h.settle(t0, &mut a, &mut b);
        // B answers exactly when A's last byte ends, A again when B's ends.
        b.write(t0 + ms(10), &[2; 5]);
        h.settle(t0 + ms(10), &mut a, &mut b);
        a.write(t0 + ms(15), &[3; 5]);
        h.settle(t0 + ms(15), &mut a, &mut b);
        let mut ab = read_all(&mut a, t0 + ms(100));
        assert_eq!(read_all(&mut b, t0 + ms(100)), vec![2; 5]);
        assert_eq!(ab.split_off(10), vec![3; 5]);
        assert_eq!(ab, vec![1; 10]);
        assert_eq!(a.stats().collided_bytes + b.stats().collided_bytes, 0);
    }

    #[test]
    fn simultaneous_starts_collide_and_a_later_write_after_silence_does_not() {
        let t0 = Instant::now();
        let (mut a, mut b, mut h) = medium(t0);
        let ms = Duration::from_millis;
        // Both probe at the same moment (the failure of issue 21): all lost.
        a.write(t0, &[9; 4]);
        b.write(t0, &[8; 6]);
        h.settle(t0, &mut a, &mut b);
        assert_eq!(a.stats().collided_bytes, 4);
        assert_eq!(b.stats().collided_bytes, 4, "B's last 2 bytes are alone");
        let ba = read_all(&mut b, t0 + ms(50));
        assert_eq!(&ba[4..], &[8, 8]);
        // Later, one at a time: nothing collides; old intervals are forgotten.
        a.write(t0 + ms(60), &[7; 3]);
        h.settle(t0 + ms(60), &mut a, &mut b);
        assert_eq!(read_all(&mut a, t0 + ms(100))[4..], [7, 7, 7]);
        assert_eq!(a.stats().collided_bytes, 4);
        assert!(b.busy.is_empty() || b.busy.iter().all(|r| r.1 > 60_000_000));
    }

    #[test]
    fn deterministic_per_seed() {
        let run = |seed| {
            let t0 = Instant::now();
            let mut a = Line::new(LineConfig::clean(1000), t0);
            let mut b = Line::new(LineConfig::clean(1000), t0);
            let mut h = HalfDuplex::join(&mut a, &mut b, seed);
            a.write(t0, &[0; 20]);
            b.write(t0, &[0; 20]);
            h.settle(t0, &mut a, &mut b);
            (
                read_all(&mut a, t0 + Duration::from_secs(1)),
                read_all(&mut b, t0 + Duration::from_secs(1)),
            )
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
