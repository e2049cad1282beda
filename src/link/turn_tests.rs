//! Half-duplex simulations: two links taking turns on one shared medium
//! ([`crate::line::half`]), where bytes of both directions that overlap in time
//! are garbled. Many seeds per impairment, every byte checked by the
//! [`StreamTester`]s (exactly once, in order, bit-exact).
#![allow(clippy::disallowed_methods)] // test set-up picks a starting instant

use std::time::{Duration, Instant};

use super::tests::{assert_streams_intact, describe};
use super::*;
use crate::line::rng::Rng;
use crate::sim::{ImpairmentKind, LinkPair, StreamTester};

const RATE: u32 = 11_520; // 115200 baud, 8N1

type Pair = LinkPair<StreamTester>;

fn half_pair(kind: &ImpairmentKind, seed: u64, msgs: (u64, u64), half: bool) -> Pair {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::for_byte_rate(RATE);
    if half {
        cfg = cfg.half_duplex(None, None);
    }
    let mut r = Rng::new(seed);
    let (ea, eb) = (r.next_u32() | 1, r.next_u32() | 1);
    LinkPair::new(
        cfg,
        kind.line(RATE, seed.wrapping_mul(2)),
        kind.line(RATE, seed.wrapping_mul(2) + 1),
        StreamTester::new(0, seed ^ 0xA, msgs.0),
        StreamTester::new(1, seed ^ 0xB, msgs.1),
        (ea, eb),
        t0,
    )
    .half_duplex(seed ^ 0x5EED)
}

fn run(p: &mut Pair, limit: Duration) {
    let end = p.start + limit;
    while p.now < end && !super::tests::done(p) {
        let t = (p.now + Duration::from_millis(50)).min(end);
        p.run_until(t);
    }
}

fn check(p: &Pair, what: &str, seed: u64) {
    let ctx = || {
        format!(
            "{} ab={:?} ba={:?}",
            describe(p, what, seed),
            p.ab.stats(),
            p.ba.stats()
        )
    };
    assert_streams_intact(p, &ctx);
}

/// Runs `seeds` seeds of both streams over a half-duplex medium with `kind`;
/// returns the turns passed and the bytes lost to collisions, summed.
fn sweep(kind: ImpairmentKind, seeds: u64, msgs: u64, limit: Duration) -> (u64, u64) {
    let (mut passed, mut collided) = (0, 0);
    for seed in 0..seeds {
        let mut p = half_pair(&kind, seed, (msgs, msgs), true);
        run(&mut p, limit);
        check(&p, &format!("{kind:?}"), seed);
        for l in [&p.a.link, &p.b.link] {
            passed += l.stats().turns.map_or(0, |t| t.passed);
        }
        collided += p.ab.stats().collided_bytes + p.ba.stats().collided_bytes;
    }
    (passed, collided)
}

#[test]
fn without_turn_taking_the_link_never_comes_up() {
    // The failure of issue 21: both ends probe on the same schedule and every
    // HELLO meets the other's on the shared medium.
    let mut p = half_pair(&ImpairmentKind::Clean, 1, (5, 5), false);
    p.run_for(Duration::from_secs(20));
    assert!(!p.a.link.is_up() && !p.b.link.is_up());
    assert!(p.ab.stats().collided_bytes > 0);
    // With turns, the same line carries both streams.
    let mut p = half_pair(&ImpairmentKind::Clean, 1, (5, 5), true);
    run(&mut p, Duration::from_secs(20));
    check(&p, "clean", 1);
}

#[test]
fn half_duplex_clean() {
    let (passed, _) = sweep(ImpairmentKind::Clean, 60, 40, Duration::from_secs(30));
    assert!(passed > 60, "turns are passed with PASS frames: {passed}");
}

#[test]
fn half_duplex_ber_1e4() {
    sweep(ImpairmentKind::Ber(1e-4), 40, 40, Duration::from_secs(60));
}

#[test]
fn half_duplex_ber_1e3() {
    sweep(ImpairmentKind::Ber(1e-3), 25, 30, Duration::from_secs(120));
}

#[test]
fn half_duplex_drops() {
    sweep(ImpairmentKind::Drops(1e-3), 40, 40, Duration::from_secs(60));
}

#[test]
fn half_duplex_bursts() {
    sweep(
        ImpairmentKind::Bursts(5.0, 40),
        30,
        40,
        Duration::from_secs(60),
    );
}

#[test]
fn half_duplex_outage() {
    sweep(
        ImpairmentKind::Outage(Duration::from_millis(300), Duration::from_secs(3)),
        20,
        60,
        Duration::from_secs(60),
    );
}

#[test]
fn bulk_one_way_keeps_most_of_the_line_and_turns_are_passed() {
    // 300 full frames one way, nothing the other way but acks: the sender
    // holds the medium most of the time (simulated time, not a timing test).
    let mut p = half_pair(&ImpairmentKind::Clean, 3, (300, 0), true);
    p.a.upper.full_frames = true;
    run(&mut p, Duration::from_secs(120));
    check(&p, "bulk", 3);
    let st = p.a.link.stats();
    let turns = st.turns.expect("half duplex");
    let rate = p.b.upper.bytes_received as f64 / p.elapsed().as_secs_f64() / RATE as f64;
    assert!(rate > 0.8, "goodput {rate:.3} of the line: {st:?}");
    assert!(turns.passed > 5 && turns.taken > 5, "{turns:?}");
    // Few collisions once the session is up (claims only after silence).
    let collided = p.ab.stats().collided_bytes + p.ba.stats().collided_bytes;
    assert!(collided < 200, "{collided} bytes collided");
}

#[test]
fn half_duplex_keyed_links_shake_hands_and_carry_streams() {
    // The keyed handshake (kind 6) takes turns like HELLO; PASS travels sealed.
    for seed in 0..10 {
        let t0 = Instant::now();
        let key = |tag: u8| {
            let mut secret = [0u8; 32];
            for (i, b) in secret.iter_mut().enumerate() {
                *b = tag.wrapping_add(i as u8);
            }
            super::crypto::KeyConfig {
                secret: super::crypto::Secret(secret),
                seed: [tag ^ 0x55; 32],
                clock: crate::sim::SIM_CLOCK,
            }
        };
        let mut cfg = LinkConfig::for_byte_rate(RATE).half_duplex(None, None);
        cfg.key = Some(key(7));
        let mut r = Rng::new(seed);
        let mut p = LinkPair::new(
            cfg,
            ImpairmentKind::Ber(1e-5).line(RATE, seed * 2),
            ImpairmentKind::Ber(1e-5).line(RATE, seed * 2 + 1),
            StreamTester::new(0, seed ^ 0xA, 30),
            StreamTester::new(1, seed ^ 0xB, 30),
            (r.next_u32() | 1, r.next_u32() | 1),
            t0,
        )
        .half_duplex(seed);
        run(&mut p, Duration::from_secs(60));
        check(&p, "keyed", seed);
        let taken = p.a.link.stats().turns.map_or(0, |t| t.taken);
        assert!(taken > 0, "seed {seed}: PASS frames opened under the key");
    }
}
