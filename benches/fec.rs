//! FEC micro-benchmark: MB/s (of raw frame bytes) of coding a frame, of
//! decoding a clean one, and of decoding one with errors to correct, at each
//! level, for a 1984-byte frame (a large frame) — to set against the line
//! rates the code is meant for (≤ 0.4 MB/s at 3 Mbaud).
//!
//! Run: `cargo bench --bench fec` (`-- --quick` for a short run).
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::hint::black_box;
use std::time::{Duration, Instant};

use sfs::link::fec::{self, nsym, MAX_LEVEL};

/// MB/s of `f` run on `len` bytes each time, for about `for_`.
fn rate(len: usize, for_: Duration, mut f: impl FnMut()) -> f64 {
    let mut bytes = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < for_ {
        for _ in 0..16 {
            f();
            bytes += len as u64;
        }
    }
    bytes as f64 / t0.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let t = Duration::from_millis(if quick { 100 } else { 500 });
    let len = 1984;
    let raw: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    println!(
        "{:<10} {:>7} {:>12} {:>14} {:>22}",
        "level", "parity", "encode MB/s", "decode clean", "decode t/2 errors/blk"
    );
    for level in 1..=MAX_LEVEL {
        let mut wire = Vec::new();
        fec::encode(level, 0, &raw, &mut wire);
        wire.pop();
        let mut out = Vec::with_capacity(len);
        let enc = rate(len, t, || {
            let mut w = Vec::with_capacity(wire.len() + 1);
            fec::encode(level, 0, black_box(&raw), &mut w);
            black_box(&w);
        });
        let dec = rate(len, t, || {
            black_box(fec::decode(black_box(&wire), &mut out));
        });
        // Half the code's reach in every block (one error at t = 1).
        let t_half = (nsym(level) / 4).max(1);
        let mut bad = wire.clone();
        // At most t_half hits in any 256 wire bytes, so in any block.
        let step = 256 / t_half;
        for i in (fec::HEADER_WIRE..bad.len()).step_by(step) {
            bad[i] = bad[i].wrapping_add(1).max(1);
        }
        let decoded = matches!(fec::decode(&bad, &mut out), fec::Decoded::Frame { .. });
        assert!(
            decoded && out == raw,
            "level {level}: the benchmark's errors are within reach"
        );
        let fix = rate(len, t, || {
            black_box(fec::decode(black_box(&bad), &mut out));
        });
        println!(
            "{:<10} {:>7} {:>12.1} {:>14.1} {:>22.1}",
            level,
            nsym(level),
            enc,
            dec,
            fix
        );
    }
}
