//! Forward error correction in whole links on the simulator: thousands of
//! seeded runs under bit errors (which also make noise zeros), bursts, drops,
//! inserts and outages, every byte checked by [`StreamTester`]; a peer without
//! the feature; a clean line that never codes a frame.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock once

use std::time::Duration;

use super::tests::{assert_streams_intact, describe, pair_of, run_to_completion};
use super::*;
use crate::sim::{ImpairmentKind, LinkPair, StreamTester};

const RATE: u32 = 11_520; // 115200 baud, 8N1

type Pair = LinkPair<StreamTester>;

/// Default features without FEC: a peer built before it.
const NO_FEC: Features = Features(Features::DEFAULT.0 & !Features::FEC.0);

fn pair(kind: &ImpairmentKind, seed: u64, msgs: u64, fa: Features, fb: Features) -> Pair {
    let cfg = |f: Features| {
        let mut c = LinkConfig::for_byte_rate(RATE);
        c.features = f;
        c
    };
    pair_of(kind, seed, msgs, cfg(fa), cfg(fb))
}

fn check(p: &Pair, what: &str, seed: u64) {
    let ctx = || describe(p, what, seed);
    assert_streams_intact(p, &ctx);
    let restarts = p.a.upper.peer_restarts + p.b.upper.peer_restarts;
    assert_eq!(restarts, 0, "{}", ctx());
}

/// Sums of both ends' stats over a sweep.
#[derive(Debug, Default)]
struct Tally {
    coded_sent: u64,
    repaired: u64,
    corrected: u64,
    rejoined: u64,
    failed: u64,
    retransmitted: u64,
    max_level: u8,
}

fn sweep(kind: ImpairmentKind, seeds: std::ops::Range<u64>, msgs: u64) -> Tally {
    let mut t = Tally::default();
    for seed in seeds {
        let mut p = pair(&kind, seed, msgs, Features::DEFAULT, Features::DEFAULT);
        run_to_completion(&mut p, Duration::from_secs(120));
        check(&p, &format!("{kind:?}"), seed);
        for s in [p.a.link.stats(), p.b.link.stats()] {
            t.coded_sent += s.fec_frames_sent;
            t.repaired += s.fec_frames_repaired;
            t.corrected += s.fec_bytes_corrected;
            t.rejoined += s.fec_frames_rejoined;
            t.failed += s.fec_frames_failed;
            t.retransmitted += s.frames_retransmitted;
            t.max_level = t.max_level.max(s.fec_level);
        }
    }
    t
}

#[test]
fn sim_fec_bit_errors() {
    // Heavy: 1e-3 flips a byte in ~125; frames are repaired, noise zeros
    // (one byte in ~32 000) rejoined, and everything arrives.
    let t = sweep(ImpairmentKind::Ber(1e-3), 0..300, 30);
    assert!(t.repaired > 1000 && t.rejoined > 0, "{t:?}");
    assert!(t.max_level >= 2, "{t:?}");
    // Repair, not retransmission, carries the load.
    assert!(t.retransmitted * 3 < t.repaired, "{t:?}");
    let t = sweep(ImpairmentKind::Ber(3e-4), 300..600, 30);
    assert!(t.repaired > 300, "{t:?}");
    let t = sweep(ImpairmentKind::Ber(1e-4), 600..900, 30);
    assert!(t.coded_sent > 0 && t.repaired > 0, "{t:?}");
}

#[test]
fn sim_fec_bursts_drops_inserts() {
    let t = sweep(ImpairmentKind::Bursts(5.0, 40), 0..250, 30);
    assert!(
        t.failed > 0 || t.retransmitted > 0,
        "bursts beyond reach: {t:?}"
    );
    sweep(ImpairmentKind::DropInsert(1e-3), 250..500, 30);
    sweep(ImpairmentKind::Ber(2e-3), 500..650, 20);
}

/// An outage in the middle of coded traffic: the session survives and every
/// byte arrives.
#[test]
fn sim_fec_outage() {
    for seed in 0..100 {
        let kind = ImpairmentKind::Ber(5e-4);
        let mut p = pair(&kind, seed, 60, Features::DEFAULT, Features::DEFAULT);
        let mut lc = kind.line(RATE, seed * 2);
        lc.outages = vec![(
            Duration::from_millis(400 + seed * 7),
            Duration::from_secs(3),
        )];
        p.ab = crate::line::Line::new(lc, p.start);
        run_to_completion(&mut p, Duration::from_secs(120));
        check(&p, "outage under BER 5e-4", seed);
    }
}

/// A peer without FEC: nothing is ever coded, all is delivered (plain v1
/// retransmission).
#[test]
fn sim_fec_peer_without_the_feature() {
    for seed in 0..100 {
        let (fa, fb) = if seed % 2 == 0 {
            (Features::DEFAULT, NO_FEC)
        } else {
            (NO_FEC, Features::DEFAULT)
        };
        let mut p = pair(&ImpairmentKind::Ber(3e-4), seed, 30, fa, fb);
        run_to_completion(&mut p, Duration::from_secs(120));
        check(&p, "one side without FEC", seed);
        let (a, b) = (p.a.link.stats(), p.b.link.stats());
        assert_eq!(a.fec_frames_sent + b.fec_frames_sent, 0);
        assert!(!p.a.link.features().contains(Features::FEC));
    }
}

/// A clean line codes nothing: FEC costs no byte there.
#[test]
fn sim_fec_clean_line_stays_plain() {
    for seed in 0..50 {
        let mut p = pair(
            &ImpairmentKind::Clean,
            seed,
            60,
            Features::DEFAULT,
            Features::DEFAULT,
        );
        run_to_completion(&mut p, Duration::from_secs(60));
        check(&p, "clean", seed);
        assert!(p.a.link.features().contains(Features::FEC));
        let (a, b) = (p.a.link.stats(), p.b.link.stats());
        assert_eq!(a.fec_frames_sent + b.fec_frames_sent, 0, "{a:?} {b:?}");
    }
}

/// Bulk one way at BER 1e-3: the level climbs, frames stay larger, and the
/// goodput is far above what retransmission alone reaches (≈ 0.45).
#[test]
fn fec_keeps_big_frames_and_goodput_on_a_noisy_line() {
    let mut p = pair(
        &ImpairmentKind::Ber(1e-3),
        7,
        u64::MAX,
        Features::DEFAULT,
        Features::DEFAULT,
    );
    p.a.upper.full_frames = true;
    p.b.upper.budget = 0;
    p.run_for(Duration::from_secs(5));
    let before = p.b.upper.bytes_received;
    p.run_for(Duration::from_secs(20));
    let rate = (p.b.upper.bytes_received - before) as f64 / 20.0 / f64::from(RATE);
    let s = p.a.link.stats();
    assert!(rate > 0.75, "goodput {rate:.3} of line rate: {s:?}");
    // Without FEC the frame-size rule takes frames down to ~100 B here.
    assert!(s.fec_level >= 2 && p.a.link.max_payload() > 400, "{s:?}");
    assert!(p.b.upper.violations.is_empty());
}
