//! CRC micro-benchmark: MB/s of the link's frame checks at frame sizes, the
//! table-driven CRC-32C the link used before (the `crc` crate, one table) against
//! the `crc32c` crate (CPU CRC instruction where there is one) and the CRC-32K of
//! large frames (the `crc` crate, 16 tables).
//!
//! Run: `cargo bench --bench crc`.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::hint::black_box;
use std::time::{Duration, Instant};

use sfs::link::crc::{crc32c, crc32c_table, crc32k};

/// A keyed frame check: `f(key, frame)`.
type Check = fn(&[u8], &[u8]) -> u32;

/// MB/s of `f` over frames of `len` bytes, run for about `for_`.
fn rate(f: Check, len: usize, for_: Duration) -> f64 {
    let key = [7u8; 8];
    let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    let mut bytes = 0u64;
    let mut acc = 0u32;
    let t0 = Instant::now();
    while t0.elapsed() < for_ {
        for _ in 0..256 {
            acc ^= f(black_box(&key), black_box(&data));
            bytes += (len + key.len()) as u64;
        }
    }
    black_box(acc);
    bytes as f64 / t0.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let t = Duration::from_millis(if quick { 100 } else { 500 });
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "check (MB/s)", "64 B", "600 B", "1984 B", "64 KiB"
    );
    let cases: [(&str, Check); 3] = [
        ("crc32c table (before)", crc32c_table),
        ("crc32c crate (after)", crc32c),
        ("crc32k 16 tables (large)", crc32k),
    ];
    for (name, f) in cases {
        println!(
            "{:<28} {:>10.0} {:>10.0} {:>10.0} {:>10.0}",
            name,
            rate(f, 64, t),
            rate(f, 600, t),
            rate(f, 1984, t),
            rate(f, 65536, t)
        );
    }
}
