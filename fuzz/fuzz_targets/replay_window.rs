//! The keyed link's replay window (`ReplayWindow`: 128 frames, 64-bit
//! counters of which frames carry the low 32 bits) near the wraps of those
//! 32 bits, against an exact model: a set of accepted counters. Counters
//! arrive reordered, duplicated, far ahead and far behind. Must never
//! panic, and:
//! - `expand` recovers every counter within 2^31 of the next expected one;
//! - a counter is fresh exactly when it was never accepted and is at most
//!   127 below the highest accepted (or above it): no replay is ever
//!   accepted, and no frame inside the window is refused.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use sfs::link::crypto::ReplayWindow;

const HALF: u64 = 1 << 31;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // Start just below the k-th wrap of the low 32 bits (k = 0: fresh).
    let k = u64::from(data[0] % 4);
    let start = (k << 32).saturating_sub(u64::from(data[1]) * 3);
    let mut w = ReplayWindow::default();
    let mut seen = BTreeSet::new();
    let mut top = 0u64; // highest accepted + 1
    if start > 0 {
        w.accept(start);
        seen.insert(start);
        top = start + 1;
    }
    for c in data[2..].chunks(3) {
        let v = i64::from(i16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        let far = c.get(2).copied().unwrap_or(0);
        // Mostly near the top; sometimes near ±2^31 from it.
        let delta = match far % 8 {
            0 => v + HALF as i64 * if v < 0 { -1 } else { 1 },
            _ => v,
        };
        let Some(n) = top.checked_add_signed(delta) else {
            continue;
        };
        let low = n as u32;
        let got = w.expand(low);
        assert_eq!(got as u32, low);
        if n + HALF > top && n < top + HALF {
            assert_eq!(got, n, "expand({low:#x}) near {top:#x}");
        }
        let fresh = w.fresh(got);
        let want = !seen.contains(&got) && got + 128 >= top;
        assert_eq!(fresh, want, "fresh({got:#x}) with top {top:#x}");
        if fresh {
            w.accept(got);
            seen.insert(got);
            top = top.max(got + 1);
        }
    }
});
