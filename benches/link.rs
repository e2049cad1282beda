//! Link efficiency benchmark: runs the deterministic simulation (one-way bulk A→B,
//! both lines impaired alike) for 30 simulated seconds per case and prints
//! delivered payload ÷ (byte rate × duration) next to the selective-repeat bound
//! `(L/(L+h))·(1−q)^(L+h)` for the frame size the link settled on (the bound of
//! retransmission alone: with forward error correction, the noisy cases go past
//! it), and the FEC parity per block A's frames carry at the end.
//!
//! Run with `cargo bench --bench link`.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock

use std::time::{Duration, Instant};

use sfs::link::session::efficiency_bound;
use sfs::link::LinkConfig;
use sfs::sim::{ImpairmentKind, LinkPair, StreamTester};

struct Case {
    name: &'static str,
    kind: ImpairmentKind,
    /// Per-byte error probability of the case (for the bound).
    q: f64,
    target: f64,
}

fn main() {
    let secs = 30u64;
    let cases = [
        Case {
            name: "clean",
            kind: ImpairmentKind::Clean,
            q: 0.0,
            target: 0.97,
        },
        Case {
            name: "BER 1e-5",
            kind: ImpairmentKind::Ber(1e-5),
            q: 1.0 - (1.0f64 - 1e-5).powi(8),
            target: 0.92,
        },
        Case {
            name: "BER 1e-4",
            kind: ImpairmentKind::Ber(1e-4),
            q: 1.0 - (1.0f64 - 1e-4).powi(8),
            target: 0.70,
        },
        // Beyond the bound of retransmission alone: forward error correction.
        Case {
            name: "BER 3e-4",
            kind: ImpairmentKind::Ber(3e-4),
            q: 1.0 - (1.0f64 - 3e-4).powi(8),
            target: 0.85,
        },
        Case {
            name: "BER 1e-3",
            kind: ImpairmentKind::Ber(1e-3),
            q: 1.0 - (1.0f64 - 1e-3).powi(8),
            target: 0.80,
        },
        Case {
            name: "drop+insert 1e-5",
            kind: ImpairmentKind::DropInsert(1e-5),
            q: 2e-5,
            target: 0.92,
        },
    ];
    println!(
        "{:<8} {:<18} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}",
        "baud", "case", "efficiency", "bound", "payload", "frames", "retx", "srtt_ms", "target"
    );
    let mut failed = 0;
    for baud in [115_200u32, 921_600] {
        let rate = baud / 10;
        for c in &cases {
            let t0 = Instant::now();
            let cfg = LinkConfig::for_byte_rate(rate);
            let mut a = StreamTester::new(0, 1, u64::MAX);
            a.full_frames = true;
            let b = StreamTester::new(1, 2, 0);
            let mut p = LinkPair::new(
                cfg,
                c.kind.line(rate, 11),
                c.kind.line(rate, 12),
                a,
                b,
                (0x1111, 0x2222),
                t0,
            );
            let wall = Instant::now();
            p.run_for(Duration::from_secs(secs));
            let wall = wall.elapsed();
            let delivered = p.b.upper.bytes_received as f64;
            let eff = delivered / (rate as f64 * secs as f64);
            let st = p.a.link.stats();
            let l = st.max_payload as f64;
            // h: type 1 + seq 2 + CRC 4 + COBS codes + delimiter 1 (measured per frame).
            let h = st.framing_overhead_bytes as f64 / st.frames_sent.max(1) as f64;
            let h = h.min(l);
            let bound = efficiency_bound(l, h, c.q);
            let ok = eff >= c.target;
            if !ok {
                failed += 1;
            }
            assert!(
                p.b.upper.violations.is_empty(),
                "{:?}",
                p.b.upper.violations
            );
            println!(
                "{:<8} {:<18} {:>10.4} {:>8.4} {:>8} {:>8} {:>8} {:>7.1} {:>5.2}{} ({:.1}s wall) fec parity {}",
                baud,
                c.name,
                eff,
                bound,
                st.max_payload,
                st.frames_sent,
                st.frames_retransmitted,
                st.srtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                c.target,
                if ok { " ok" } else { " MISSED" },
                wall.as_secs_f64(),
                sfs::link::fec::nsym(st.fec_level)
            );
        }
    }
    if failed > 0 {
        println!("{failed} case(s) below target");
    }
}
