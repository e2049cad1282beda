//! The virtual serial cable: `sfs PTY,link=/tmp/ttyA,... PTY,link=/tmp/ttyB,...`.
//!
//! Two pseudo-terminals joined like a null-modem cable: bytes a program writes to
//! one come out of the other at the configured baud and character format (8N1 =
//! 10 bits per byte), through a bounded device queue (default 4 KiB) that stops
//! reading the writer's pty when full, so the writer blocks as on a real UART.
//! Each end's options describe its transmitter: `b921600,ber=1e-5` on end A paces
//! and impairs the bytes travelling A→B. Impairments (bit errors, drops, garbage
//! insertion, noise bursts, outages, latency) come from [`crate::line`], seeded.
//!
//! `duplex=half` on either end makes the cable one shared medium (an RS-485
//! pair, a radio channel): bytes of the two directions whose serialisation
//! overlaps in time are garbled on both sides ([`crate::line::half`]).
//!
//! Whatever the programs set with termios on their ends is accepted. Statistics go
//! to stderr at exit and on SIGUSR1.
#![allow(clippy::disallowed_methods)] // a driver: it reads the clock and hands time to the sans-IO core

use crate::address::Pty;
use crate::endpoint::pty::PtyDevice;
use crate::error::Result;
use crate::line::half::HalfDuplex;
use crate::line::{Line, LineConfig};
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// Bytes still to serialise below which the cable times deliveries finely.
const FINE_QUEUE: usize = 64;
/// Line time whose worth of arrived bytes the cable collects before it hands
/// them to the receiving pty while more are on the way (the end of a burst
/// goes at once). A receiving USB adapter hands bytes to the host at most
/// once per 1 ms USB frame (a UART, at its FIFO trigger level); writing each
/// turn's few new bytes woke the receiving sfs for every byte or two — at
/// 115200 baud 5000 times a second, at a few Mbaud the loop spun — a load no
/// real device puts on it. A frame's last byte still goes at once, so an
/// isolated frame (a keystroke on a quiet line) is not held at all.
const DELIVER_EVERY: Duration = Duration::from_millis(1);
/// Bytes waiting to be written into a receiving pty before we call it an overrun.
const RX_LIMIT: usize = 64 * 1024;

/// The line model settings for bytes leaving the end described by `p`.
pub fn line_config(p: &Pty) -> LineConfig {
    let mut c = LineConfig::clean(p.line.byte_rate());
    c.latency = p.impair.latency;
    if let Some(f) = p.impair.fifo {
        c.fifo = f;
    }
    c.ber = p.impair.ber;
    c.drop = p.impair.drop;
    c.insert = p.impair.insert;
    c.burst = p.impair.burst;
    c.outages = p.impair.outage.into_iter().collect();
    c.seed = p.impair.seed;
    c
}

/// One direction: the line and the bytes that arrived but are not yet written
/// into the receiving pty.
struct Direction {
    name: &'static str,
    line: Line,
    rx: Vec<u8>,
    overrun: u64,
}

impl Direction {
    fn report(&self) -> String {
        let s = self.line.stats();
        format!(
            "{}: {} bytes in, {} delivered, {} bits flipped, {} dropped, {} inserted, {} in bursts, {} lost in outages, {} garbled in collisions, {} overrun, queue high-water {} B",
            self.name,
            s.bytes_written,
            s.bytes_delivered,
            s.bits_flipped,
            s.bytes_dropped,
            s.bytes_inserted,
            s.burst_bytes,
            s.outage_bytes,
            s.collided_bytes,
            self.overrun,
            s.queue_high_water
        )
    }
}

/// Both directions; prints the statistics when the cable stops, however it stops
/// (the task is dropped on SIGINT/SIGTERM).
struct Cable {
    ab: Direction,
    ba: Direction,
    /// `duplex=half`: the two directions share one medium.
    shared: Option<HalfDuplex>,
}

impl Cable {
    fn report(&self) {
        eprintln!("sfs cable: {}", self.ab.report());
        eprintln!("sfs cable: {}", self.ba.report());
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.report();
    }
}

/// Whether the bytes that arrived in `d` go to the receiving pty now: a
/// block's worth of them (see [`DELIVER_EVERY`]), or the end of a burst.
fn deliverable(d: &Direction, now: Instant) -> bool {
    let block = (u128::from(d.line.config().byte_rate) * DELIVER_EVERY.as_nanos() / 1_000_000_000)
        .max(1) as usize;
    !d.rx.is_empty()
        && (d.rx.len() >= block || d.line.next_wakeup().is_none_or(|w| w > now + DELIVER_EVERY))
}

/// Runs the cable until the process is stopped.
pub async fn run(p1: Pty, p2: Pty) -> Result<()> {
    let a = PtyDevice::create(&p1)?;
    let b = PtyDevice::create(&p2)?;
    let now = Instant::now();
    let mut cable = Cable {
        ab: Direction {
            name: "A->B",
            line: Line::new(line_config(&p1), now),
            rx: Vec::new(),
            overrun: 0,
        },
        ba: Direction {
            name: "B->A",
            line: Line::new(line_config(&p2), now),
            rx: Vec::new(),
            overrun: 0,
        },
        shared: None,
    };
    if p1.impair.half_duplex || p2.impair.half_duplex {
        let seed = p1.impair.seed ^ p2.impair.seed.rotate_left(32);
        cable.shared = Some(HalfDuplex::join(
            &mut cable.ab.line,
            &mut cable.ba.line,
            seed,
        ));
    }
    let show = |p: &Pty, d: &PtyDevice| match &p.link {
        Some(l) => format!("{} ({})", l.display(), d.slave_path().display()),
        None => d.slave_path().display().to_string(),
    };
    eprintln!(
        "sfs cable: A={} <-> B={}, A->B {} baud/{} bits, B->A {} baud/{} bits{}",
        show(&p1, &a),
        show(&p2, &b),
        p1.line.baud,
        p1.line.bits_per_char(),
        p2.line.baud,
        p2.line.bits_per_char(),
        if cable.shared.is_some() {
            ", half duplex (one shared medium)"
        } else {
            ""
        }
    );
    let mut usr1 = signal(SignalKind::user_defined1()).ok();
    let mut buf_a = vec![0u8; 4096];
    let mut buf_b = vec![0u8; 4096];
    loop {
        let Cable { ab, ba, shared } = &mut cable;
        let now = Instant::now();
        for d in [&mut *ab, &mut *ba] {
            let before = d.rx.len();
            d.line.read(now, &mut d.rx);
            if d.rx.len() > RX_LIMIT {
                // The receiving program is not reading: a real UART overruns.
                d.overrun += (d.rx.len() - RX_LIMIT.max(before)) as u64;
                d.rx.truncate(RX_LIMIT.max(before));
            }
        }
        let deliver_ab = deliverable(ab, now);
        let deliver_ba = deliverable(ba, now);
        let space_ab = ab.line.space(now).min(buf_a.len());
        let space_ba = ba.line.space(now).min(buf_b.len());
        let wake = [ab.line.next_wakeup(), ba.line.next_wakeup()]
            .into_iter()
            .flatten()
            .min();
        // tokio's timer ticks in whole milliseconds. When the next byte is due
        // sooner and it ends a short burst (a keystroke's frame, an ack), sleep
        // the exact remainder on this thread (the cable has no other work), so
        // small frames are not delayed by up to a tick on each side. Bulk traffic
        // keeps the coarse timer: its throughput does not depend on it.
        let fine = wake.is_some_and(|w| {
            w > now
                && w - now < Duration::from_millis(1)
                && ab.line.queued(now) + ba.line.queued(now) <= FINE_QUEUE
        });
        let until = tokio::time::Instant::from_std(wake.unwrap_or(now + Duration::from_secs(3600)));
        let sleep = async move {
            if fine {
                // Let the other branches (pending reads and writes) go first.
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep_until(until).await;
            }
        };
        let report = async {
            match usr1.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = a.read(&mut buf_a[..space_ab]), if space_ab > 0 => {
                let n = r.map_err(|e| crate::error::Error::io("cable: reading pty A", e))?;
                let now = Instant::now();
                ab.line.write(now, &buf_a[..n]);
                if let Some(h) = shared {
                    h.settle(now, &mut ab.line, &mut ba.line);
                }
            }
            r = b.read(&mut buf_b[..space_ba]), if space_ba > 0 => {
                let n = r.map_err(|e| crate::error::Error::io("cable: reading pty B", e))?;
                let now = Instant::now();
                ba.line.write(now, &buf_b[..n]);
                if let Some(h) = shared {
                    h.settle(now, &mut ab.line, &mut ba.line);
                }
            }
            r = b.write(&ab.rx), if deliver_ab => {
                let n = r.map_err(|e| crate::error::Error::io("cable: writing pty B", e))?;
                ab.rx.drain(..n);
            }
            r = a.write(&ba.rx), if deliver_ba => {
                let n = r.map_err(|e| crate::error::Error::io("cable: writing pty A", e))?;
                ba.rx.drain(..n);
            }
            _ = sleep => {
                if let Some(w) = wake.filter(|_| fine) {
                    std::thread::sleep(w.saturating_duration_since(Instant::now()));
                }
            }
            _ = report => cable.report(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direction(byte_rate: u32, now: Instant) -> Direction {
        Direction {
            name: "test",
            line: Line::new(LineConfig::clean(byte_rate), now),
            rx: Vec::new(),
            overrun: 0,
        }
    }

    #[test]
    fn bytes_go_in_blocks_while_more_are_coming_and_at_once_at_a_bursts_end() {
        for (byte_rate, block) in [(300_000, 300), (11_520, 11)] {
            let t0 = Instant::now();
            let per_byte = Duration::from_nanos(1_000_000_000 / byte_rate as u64);
            let mut d = direction(byte_rate, t0);
            let len = 4 * block;
            assert_eq!(d.line.write(t0, &vec![7; len]), len);
            let t = t0 + per_byte * (block as u32 / 3);
            d.line.read(t, &mut d.rx);
            assert!(!d.rx.is_empty() && d.rx.len() < block, "{}", d.rx.len());
            assert!(!deliverable(&d, t), "a few bytes wait for the rest");
            let t = t0 + per_byte * (block as u32 + 2);
            d.line.read(t, &mut d.rx);
            assert!(deliverable(&d, t), "a block goes");
            // The burst's last bytes go as they are, however few.
            d.rx.clear();
            let end = t0 + per_byte * (len as u32 + 1);
            d.line.read(end - per_byte * 3, &mut d.rx);
            d.rx.clear();
            d.line.read(end, &mut d.rx);
            assert!(!d.rx.is_empty() && d.rx.len() < block, "{}", d.rx.len());
            assert!(d.line.next_wakeup().is_none());
            assert!(deliverable(&d, end));
            // Nothing to deliver is never deliverable.
            d.rx.clear();
            assert!(!deliverable(&d, end));
        }
    }

    #[test]
    fn a_lone_short_frame_goes_at_once() {
        let t0 = Instant::now();
        let mut d = direction(11_520, t0);
        d.line.write(t0, &[7; 5]);
        let end = t0 + Duration::from_millis(1);
        d.line.read(end, &mut d.rx);
        assert_eq!(d.rx.len(), 5);
        assert!(d.line.next_wakeup().is_none());
        assert!(deliverable(&d, end));
    }
}
