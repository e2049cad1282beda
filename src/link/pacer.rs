//! Pacing of writes to the serial device.
//!
//! The driver takes frames (or pieces of frames) from `Station::poll_transmit`
//! whenever the pacer says the device queue below us holds less than `target` worth of
//! bytes, and writes them in batches, one write in flight (docs/link-protocol.md §7). Keeping that queue short (≈ 3 ms) lets the link decide what to send — acks,
//! retransmissions, interactive channels — as late as possible, instead of behind
//! kilobytes of bulk data in a USB adapter's buffer.

use std::time::{Duration, Instant};

/// Estimates the bytes still queued below the driver (written minus elapsed × rate).
#[derive(Clone, Debug)]
pub struct Pacer {
    byte_rate: u32,
    target_bytes: usize,
    /// Time at which everything written so far will have been serialised.
    drained_at: Option<Instant>,
}

impl Pacer {
    /// A pacer for a line of `byte_rate` bytes/s keeping about `target` of data queued.
    pub fn new(byte_rate: u32, target: Duration) -> Self {
        let byte_rate = byte_rate.max(1);
        let target_bytes = ((byte_rate as u128 * target.as_nanos()) / 1_000_000_000) as usize;
        Pacer {
            byte_rate,
            target_bytes: target_bytes.max(1),
            drained_at: None,
        }
    }

    fn byte_time(&self, n: usize) -> Duration {
        Duration::from_nanos(((n as u128 * 1_000_000_000).div_ceil(self.byte_rate as u128)) as u64)
    }

    /// Estimated bytes still queued at `now`.
    pub fn queued(&self, now: Instant) -> usize {
        match self.drained_at {
            Some(t) if t > now => {
                let left = t - now;
                ((left.as_nanos() * self.byte_rate as u128).div_ceil(1_000_000_000)) as usize
            }
            _ => 0,
        }
    }

    /// True when the queue is below the target and another frame may be written.
    pub fn writable(&self, now: Instant) -> bool {
        self.queued(now) < self.target_bytes
    }

    /// Records that `n` bytes were written at `now`.
    pub fn on_written(&mut self, now: Instant, n: usize) {
        let start = match self.drained_at {
            Some(t) if t > now => t,
            _ => now,
        };
        self.drained_at = Some(start + self.byte_time(n));
    }

    /// When the pacer becomes writable again; `None` if it already is at `now`.
    pub fn next_writable(&self, now: Instant) -> Option<Instant> {
        if self.writable(now) {
            return None;
        }
        let t = self.drained_at?;
        // queued = ⌈left · rate⌉ < target  ⇔  left ≤ (target − 1) / rate: step
        // back that long from the drain time, rounded *down* — rounded up, the
        // queue is still at the target at the returned instant, and a driver
        // (or simulation) that wakes exactly then finds nothing to do and
        // gets the same instant again.
        let back = ((self.target_bytes - 1) as u128 * 1_000_000_000) / self.byte_rate as u128;
        Some(
            t.checked_sub(Duration::from_nanos(back as u64))
                .unwrap_or(t)
                .max(now),
        )
    }

    /// The target queue in bytes.
    pub fn target_bytes(&self) -> usize {
        self.target_bytes
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick a starting instant
mod tests {
    use super::*;

    #[test]
    fn paces_to_target() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10_000, Duration::from_millis(3)); // 30 bytes
        assert_eq!(p.target_bytes(), 30);
        assert!(p.writable(t0));
        assert_eq!(p.next_writable(t0), None);
        p.on_written(t0, 100);
        assert_eq!(p.queued(t0), 100);
        assert!(!p.writable(t0));
        let w = p.next_writable(t0).unwrap();
        assert!(p.writable(w), "writable at its own next_writable");
        assert!(!p.writable(w - Duration::from_micros(150)));
        // 100 bytes at 10 kB/s drain in 10 ms; writable when < 30 remain, ~7.1 ms.
        assert!(w > t0 + Duration::from_millis(7) && w <= t0 + Duration::from_micros(7_200));
        assert_eq!(p.queued(t0 + Duration::from_millis(5)), 50);
        // Writes while busy append after the current backlog.
        p.on_written(t0 + Duration::from_millis(5), 50);
        assert_eq!(p.queued(t0 + Duration::from_millis(5)), 100);
        assert_eq!(p.queued(t0 + Duration::from_millis(15)), 0);
        // At a rate that does not divide a second evenly (115200 baud: 34
        // bytes), the pacer is writable at the instant it names.
        let mut q = Pacer::new(11_520, Duration::from_millis(3));
        for n in [39, 35, 100, 1999] {
            let w = q.next_writable(t0).unwrap_or(t0);
            q.on_written(w, n);
            let w2 = q
                .next_writable(w)
                .expect("busy after a write over the target");
            assert!(q.writable(w2), "{n} bytes: not writable at {w2:?}");
        }
        // After idle, a write starts fresh.
        p.on_written(t0 + Duration::from_secs(1), 10);
        assert_eq!(p.queued(t0 + Duration::from_secs(1)), 10);
        assert!(p.writable(t0 + Duration::from_secs(1)));
    }
}
