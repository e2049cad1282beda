//! Link tests driven by the deterministic simulation ([`crate::sim`]): hundreds of
//! seeds per impairment kind, each checking that everything submitted is delivered
//! exactly once, in order and bit-exact, or that a reset was reported, and that
//! nothing else is ever delivered.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::line::rng::Rng;
use crate::line::LineConfig;
use crate::sim::{ImpairmentKind, LinkPair, StreamTester, Which};

const RATE: u32 = 11_520; // 115200 baud, 8N1

type Pair = LinkPair<StreamTester>;

fn pair(kind: &ImpairmentKind, seed: u64, msgs: u64) -> Pair {
    let cfg = LinkConfig::for_byte_rate(RATE);
    pair_of(kind, seed, msgs, cfg.clone(), cfg)
}

/// Two links over lines with `kind`, A configured by `a` and B by `b`, each
/// carrying a `msgs`-message test stream; epochs and impairments from `seed`.
pub(super) fn pair_of(
    kind: &ImpairmentKind,
    seed: u64,
    msgs: u64,
    a: LinkConfig,
    b: LinkConfig,
) -> Pair {
    let t0 = Instant::now();
    let mut r = Rng::new(seed);
    let (ea, eb) = (r.next_u32() | 1, r.next_u32() | 1);
    let mut p = LinkPair::new(
        a,
        kind.line(RATE, seed.wrapping_mul(2)),
        kind.line(RATE, seed.wrapping_mul(2) + 1),
        StreamTester::new(0, seed ^ 0xA, msgs),
        StreamTester::new(1, seed ^ 0xB, msgs),
        (ea, eb),
        t0,
    );
    p.b.link = Link::new(b.clone(), eb, t0);
    p.b.cfg = b;
    p
}

pub(super) fn done(p: &Pair) -> bool {
    p.a.link.is_up()
        && p.b.link.is_up()
        && p.a.upper.budget == 0
        && p.b.upper.budget == 0
        && p.a.upper.has_all_of(&p.b.upper)
        && p.b.upper.has_all_of(&p.a.upper)
}

/// Runs until both streams are complete (checked every 50 ms) or `limit` elapses.
pub(super) fn run_to_completion(p: &mut Pair, limit: Duration) {
    run_between(p, Duration::ZERO, limit)
}

/// Runs at least `min`, then until both streams are complete or `limit` elapses.
fn run_between(p: &mut Pair, min: Duration, limit: Duration) {
    p.run_until(p.start + min);
    let end = p.start + limit;
    while p.now < end && !done(p) {
        let t = (p.now + Duration::from_millis(50)).min(end);
        p.run_until(t);
    }
}

/// What a failed stream check prints: when, both streams, both links' counters.
pub(super) fn describe(p: &Pair, what: &str, seed: u64) -> String {
    format!(
        "{what} seed {seed} at {:?}: a={:?} b={:?} la={:?} lb={:?}",
        p.elapsed(),
        p.a.upper,
        p.b.upper,
        p.a.link.stats(),
        p.b.link.stats()
    )
}

/// Panics, saying `ctx()`, unless both streams arrived whole, in order and
/// exactly once (the checks every simulation of two links shares).
pub(super) fn assert_streams_intact(p: &Pair, ctx: &dyn Fn() -> String) {
    assert!(
        p.a.upper.violations.is_empty() && p.b.upper.violations.is_empty(),
        "{}",
        ctx()
    );
    assert!(done(p), "incomplete: {}", ctx());
}

fn check(p: &Pair, what: &str, seed: u64) {
    let ctx = || describe(p, what, seed);
    assert_streams_intact(p, &ctx);
    assert!(p.a.link.is_up() && p.b.link.is_up(), "{}", ctx());
}

fn sweep(kind: ImpairmentKind, seeds: u64, msgs: u64, limit: Duration) -> (u64, u64) {
    let mut retx = 0;
    let mut mismatches = 0;
    for seed in 0..seeds {
        let mut p = pair(&kind, seed, msgs);
        run_to_completion(&mut p, limit);
        check(&p, &format!("{kind:?}"), seed);
        assert_eq!(p.a.upper.peer_restarts + p.b.upper.peer_restarts, 0);
        retx += p.a.link.stats().frames_retransmitted + p.b.link.stats().frames_retransmitted;
        mismatches += (p.a.upper.mismatches + p.b.upper.mismatches) as u64;
    }
    assert_eq!(mismatches, 0, "{kind:?}: spurious protocol mismatch");
    (retx, seeds)
}

#[test]
fn sim_clean() {
    let (retx, _) = sweep(ImpairmentKind::Clean, 200, 20, Duration::from_secs(20));
    assert_eq!(retx, 0, "no retransmission on a clean line");
}

#[test]
fn sim_ber_1e5() {
    sweep(ImpairmentKind::Ber(1e-5), 150, 20, Duration::from_secs(30));
}

#[test]
fn sim_ber_1e4() {
    let (retx, _) = sweep(ImpairmentKind::Ber(1e-4), 150, 20, Duration::from_secs(30));
    assert!(retx > 0);
}

#[test]
fn sim_ber_1e3() {
    sweep(ImpairmentKind::Ber(1e-3), 100, 20, Duration::from_secs(120));
}

#[test]
fn sim_drops() {
    sweep(
        ImpairmentKind::Drops(1e-3),
        150,
        20,
        Duration::from_secs(30),
    );
}

#[test]
fn sim_inserts() {
    sweep(
        ImpairmentKind::Inserts(1e-3),
        150,
        20,
        Duration::from_secs(30),
    );
}

#[test]
fn sim_bursts() {
    sweep(
        ImpairmentKind::Bursts(5.0, 40),
        150,
        20,
        Duration::from_secs(30),
    );
}

#[test]
fn sim_latency_20ms() {
    sweep(
        ImpairmentKind::Latency(Duration::from_millis(20)),
        150,
        20,
        Duration::from_secs(20),
    );
}

#[test]
fn sim_outage_35s_keeps_session() {
    for seed in 0..100 {
        let start = Duration::from_millis(100 + seed * 5);
        let kind = ImpairmentKind::Outage(start, Duration::from_secs(35));
        let mut p = pair(&kind, seed, 60);
        run_between(
            &mut p,
            start + Duration::from_secs(35),
            Duration::from_secs(80),
        );
        check(&p, "outage 35 s", seed);
        for s in [&p.a.upper, &p.b.upper] {
            assert_eq!(
                (s.peer_lost, s.peer_restarts, s.ups),
                (0, 0, 1),
                "seed {seed}: {s:?}"
            );
        }
        // Recovery is prompt: the back-off is capped at 2 s.
        assert!(
            p.elapsed() < start + Duration::from_secs(35 + 5),
            "seed {seed}: {:?}",
            p.elapsed()
        );
    }
}

#[test]
fn sim_outage_longer_than_dead_after_reports_lost_and_recovers() {
    for seed in 0..100 {
        let start = Duration::from_millis(100 + seed * 5);
        let kind = ImpairmentKind::Outage(start, Duration::from_secs(70));
        let mut p = pair(&kind, seed, 60);
        run_between(
            &mut p,
            start + Duration::from_secs(70),
            Duration::from_secs(120),
        );
        check(&p, "outage 70 s", seed);
        for s in [&p.a.upper, &p.b.upper] {
            assert_eq!(
                (s.peer_lost, s.peer_restarts, s.ups),
                (1, 0, 2),
                "seed {seed}: {s:?}"
            );
        }
        assert!(
            p.elapsed() < start + Duration::from_secs(70 + 5),
            "seed {seed}: {:?}",
            p.elapsed()
        );
    }
}

#[test]
fn sim_restarts_either_end() {
    for seed in 0..150 {
        let kind = if seed % 3 == 0 {
            ImpairmentKind::Ber(1e-4)
        } else {
            ImpairmentKind::Clean
        };
        let mut p = pair(&kind, seed, 80);
        let mut r = Rng::new(seed ^ 0x5EED);
        let restarts = 1 + r.below(3);
        for i in 0..restarts {
            let t = p.now + Duration::from_millis(r.below(800));
            p.run_until(t);
            let which = if r.below(2) == 0 { Which::A } else { Which::B };
            p.restart(which, r.next_u32() | 1);
            let _ = i;
        }
        run_to_completion(&mut p, Duration::from_secs(60));
        check(&p, &format!("restarts {kind:?}"), seed);
        let total = p.a.restarts + p.b.restarts;
        assert_eq!(total as u64, restarts);
    }
}

#[test]
fn restart_reports_peer_restarted_and_drops_old_session() {
    let mut p = pair(&ImpairmentKind::Latency(Duration::from_millis(20)), 7, 1000);
    p.run_for(Duration::from_secs(1));
    assert!(p.b.upper.bytes_received > 0);
    let before = p.b.upper.rx_gen;
    p.restart(Which::A, 0xABCD);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.b.upper.peer_restarts, 1);
    assert_eq!(p.a.upper.peer_restarts, 0);
    assert!(
        p.b.upper.rx_gen > before,
        "{:?} {:?}",
        p.b.upper.rx_gen,
        before
    );
    assert!(p.a.upper.violations.is_empty() && p.b.upper.violations.is_empty());
    assert_eq!(p.b.link.peer_epoch(), Some(0xABCD));
    assert!(p.b.link.stats().sessions >= 2);
}

#[test]
fn garbage_peer_reports_protocol_mismatch_once() {
    let t0 = Instant::now();
    let mut l = Link::new(LinkConfig::for_byte_rate(RATE), 5, t0);
    let text = b"login: root\r\nPassword: \r\nLast login: Mon\r\n$ ls -l\r\n".repeat(4);
    let mut out = Vec::new();
    let mut mismatches = Vec::new();
    let mut hellos = 0;
    for i in 0..100u64 {
        let now = t0 + Duration::from_millis(i * 100);
        l.handle_input(now, &text);
        if l.poll_timeout().is_some_and(|t| t <= now) {
            l.handle_timeout(now);
        }
        out.clear();
        if l.poll_transmit(now, &mut out) > 0 {
            hellos += 1;
        }
        while let Some(ev) = l.poll_event() {
            if let LinkEvent::ProtocolMismatch(s) = ev {
                mismatches.push(s.to_string());
            }
        }
    }
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    assert!(
        ["login: root", "Password:", "Last login: Mon", "$ ls -l"]
            .iter()
            .any(|line| mismatches[0].contains(&format!("is not sfs: it sends text like '{line}'"))),
        "{}",
        mismatches[0]
    );
    assert!(hellos >= 5, "keeps trying: {hellos}");
    assert!(!l.is_up());
}

#[test]
fn binary_garbage_reports_protocol_mismatch_once() {
    let t0 = Instant::now();
    let mut l = Link::new(LinkConfig::for_byte_rate(RATE), 5, t0);
    let mut r = Rng::new(7);
    let mut mismatches = Vec::new();
    let mut out = Vec::new();
    for i in 0..100u64 {
        let now = t0 + Duration::from_millis(i * 100);
        // Random bytes, no delimiter: line noise at the wrong speed.
        let junk: Vec<u8> = (0..100).map(|_| (r.next_u32() as u8).max(1)).collect();
        l.handle_input(now, &junk);
        if l.poll_timeout().is_some_and(|t| t <= now) {
            l.handle_timeout(now);
        }
        out.clear();
        l.poll_transmit(now, &mut out);
        while let Some(ev) = l.poll_event() {
            if let LinkEvent::ProtocolMismatch(s) = ev {
                mismatches.push(s.to_string());
            }
        }
    }
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    assert!(
        mismatches[0].contains("does not speak sfs link v1"),
        "{}",
        mismatches[0]
    );
}

/// Runs `l` for `secs` of virtual time in 10 ms steps; `line` gets what it
/// transmits and returns what it receives. Returns the frames it sent and the
/// events it reported.
fn drive(
    l: &mut Link,
    t: &mut Instant,
    secs: u64,
    mut line: impl FnMut(&[u8]) -> Vec<u8>,
) -> (u64, Vec<LinkEvent>) {
    let mut frames = 0;
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut back = Vec::new();
    for _ in 0..secs * 100 {
        *t += Duration::from_millis(10);
        l.handle_input(*t, &back);
        if l.poll_timeout().is_some_and(|x| x <= *t) {
            l.handle_timeout(*t);
        }
        out.clear();
        while l.poll_transmit(*t, &mut out) > 0 {
            frames += 1;
        }
        back = line(&out);
        events.extend(std::iter::from_fn(|| l.poll_event()));
    }
    (frames, events)
}

#[test]
fn looped_line_is_reported_once_then_a_real_peer_connects() {
    let mut t = Instant::now();
    let mut a = Link::new(LinkConfig::for_byte_rate(RATE), 0xA1, t);
    // The line is looped: everything A sends comes back 10 ms later.
    let (frames, events) = drive(&mut a, &mut t, 10, |out| out.to_vec());
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(
            &events[0],
            LinkEvent::ProtocolMismatch(Mismatch::LoopedBack)
        ),
        "{events:?}"
    );
    assert!(!a.is_up());
    // No storm: a HELLO (and its CAPS) per second once backed off, not an
    // answer per echo.
    assert!(a.stats().hellos_sent <= 16, "{:?}", a.stats());
    assert!(frames <= 32, "{frames} frames in 10 s");
    assert!(a.stats().own_frames >= 3);
    assert_eq!(a.stats().crc_failures, 0);

    // Someone plugs a real peer in: the link comes up without any help.
    let mut b = Link::new(LinkConfig::for_byte_rate(RATE), 0xB2, t);
    let mut tb = t;
    let (_, events) = drive(&mut a, &mut t, 3, |out| {
        drive_once(&mut b, &mut tb, out);
        let mut v = Vec::new();
        while b.poll_transmit(tb, &mut v) > 0 {}
        v
    });
    assert!(a.is_up() && b.is_up());
    assert_eq!(a.peer_epoch(), Some(0xB2));
    assert!(
        events
            .iter()
            .any(|e| *e == LinkEvent::Up { peer_epoch: 0xB2 }),
        "{events:?}"
    );
}

/// Advances `b` to the next 10 ms and feeds it `input`.
fn drive_once(b: &mut Link, t: &mut Instant, input: &[u8]) {
    *t += Duration::from_millis(10);
    b.handle_input(*t, input);
    if b.poll_timeout().is_some_and(|x| x <= *t) {
        b.handle_timeout(*t);
    }
    while b.poll_event().is_some() {}
}

#[test]
fn a_line_that_echoes_our_frames_still_works_with_a_real_peer() {
    // Two-wire RS-485 adapters hear their own transmissions: A receives
    // its own frames interleaved with B's.
    let mut t = Instant::now();
    let mut a = Link::new(LinkConfig::for_byte_rate(RATE), 0xA1, t);
    let mut b = Link::new(LinkConfig::for_byte_rate(RATE), 0xB2, t);
    let mut tb = t;
    let mut delivered = 0;
    let mut sent = 0u8;
    let (_, events) = drive(&mut a, &mut t, 5, |out| {
        drive_once(&mut b, &mut tb, out);
        if b.can_send() && sent < 50 {
            b.send(Bytes::from(vec![sent; 100])).unwrap();
            sent += 1;
        }
        let mut v = out.to_vec();
        while b.poll_transmit(tb, &mut v) > 0 {}
        v
    });
    for e in &events {
        match e {
            LinkEvent::Delivered(p) => {
                assert_eq!(p[..], [delivered; 100][..]);
                delivered += 1;
            }
            LinkEvent::Up { .. } | LinkEvent::PeerFeatures(_) => {}
            e => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(delivered, 50);
    assert!(a.is_up());
    assert!(a.stats().own_frames > 0);
    // Our own frames are not line errors: the frame size stays large.
    assert_eq!(a.stats().crc_failures, 0);
}

#[test]
fn modem_responses_are_reported_as_text() {
    for (text, shown) in [
        (&b"AT\r\r\nOK\r\n"[..], "'OK'"),
        (b"\r\nRING\r\n", "'RING'"),
        (b"\r\nNO CARRIER\r\n", "'NO CARRIER'"),
    ] {
        let t0 = Instant::now();
        let mut l = Link::new(LinkConfig::for_byte_rate(RATE), 5, t0);
        l.handle_input(t0, text);
        l.handle_input(t0 + Duration::from_secs(6), text);
        let evs: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
        assert_eq!(evs.len(), 1, "{evs:?}");
        assert!(
            matches!(&evs[0], LinkEvent::ProtocolMismatch(s)
                if s.to_string().contains(&format!("the far end is not sfs: it sends text like {shown}"))),
            "{evs:?}"
        );
    }
}

#[test]
fn other_version_reports_protocol_mismatch() {
    let t0 = Instant::now();
    let mut l = Link::new(LinkConfig::for_byte_rate(RATE), 5, t0);
    let mut raw = vec![0x30, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 64];
    raw.extend_from_slice(&crc::crc32c(&[], &raw).to_le_bytes());
    let mut enc = Vec::new();
    cobs::encode(&raw, &mut enc);
    l.handle_input(t0, &enc);
    l.handle_input(t0, &enc);
    let evs: Vec<_> = std::iter::from_fn(|| l.poll_event()).collect();
    assert_eq!(evs.len(), 1);
    assert!(
        matches!(&evs[0], LinkEvent::ProtocolMismatch(Mismatch::Version(2))),
        "{evs:?}"
    );
}

#[test]
fn frame_size_adapts_to_error_rate() {
    let mut clean = pair(&ImpairmentKind::Clean, 1, u64::MAX);
    clean.a.upper.full_frames = true;
    clean.run_for(Duration::from_secs(2));
    // Both ends offer large frames: a clean line gets the largest.
    assert_eq!(
        clean.a.link.max_payload(),
        clean.a.link.config().payload_ceiling()
    );
    // Without FEC (with it, frames stay large and are repaired instead:
    // `fec_sim_tests`), a noisy line gets smaller frames.
    let mut noisy = pair(&ImpairmentKind::Ber(1e-4), 1, u64::MAX);
    for side in [&mut noisy.a, &mut noisy.b] {
        side.cfg.features = Features(side.cfg.features.0 & !Features::FEC.0);
        side.link = Link::new(side.cfg.clone(), side.link.epoch(), noisy.start);
    }
    noisy.a.upper.full_frames = true;
    noisy.run_for(Duration::from_secs(20));
    let l = noisy.a.link.max_payload();
    assert!((90..200).contains(&l), "{l} {:?}", noisy.a.link.stats());
    assert!(noisy.b.upper.violations.is_empty());
}

#[test]
fn config_validation() {
    let c = LinkConfig::for_byte_rate(RATE);
    assert_eq!(c.validate(), Ok(()));
    assert!(LinkConfig {
        window: 0,
        ..c.clone()
    }
    .validate()
    .is_err());
    assert!(LinkConfig {
        window: 300,
        ..c.clone()
    }
    .validate()
    .is_err());
    assert!(LinkConfig {
        max_payload: 4096,
        ..c.clone()
    }
    .validate()
    .is_err());
    assert!(LinkConfig {
        dead_after: Duration::from_millis(500),
        ..c.clone()
    }
    .validate()
    .is_err());
    assert!(
        c.rto_floor() < Duration::from_millis(150),
        "{:?}",
        c.rto_floor()
    );
    let fast = LinkConfig::for_byte_rate(92_160);
    assert!(
        fast.rto_floor() < Duration::from_millis(30),
        "{:?}",
        fast.rto_floor()
    );
}

#[test]
fn can_send_rules() {
    let t0 = Instant::now();
    let mut p = pair(&ImpairmentKind::Clean, 3, 0);
    assert!(!p.a.link.can_send());
    assert!(
        p.a.link.send(Bytes::from_static(b"x")).is_err(),
        "not up yet"
    );
    p.run_for(Duration::from_millis(200));
    assert!(p.a.link.is_up());
    assert!(p.a.link.can_send());
    p.a.link.send(Bytes::from_static(b"x")).unwrap();
    assert!(!p.a.link.can_send(), "one frame waiting unsent");
    let big = Bytes::from(vec![0; p.a.link.max_payload() + 1]);
    let mut out = Vec::new();
    assert!(p.a.link.poll_transmit(p.now, &mut out) > 0);
    assert!(p.a.link.send(big).is_err(), "over max_payload");
    let _ = t0;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..8)) {
        let t0 = Instant::now();
        let mut l = Link::new(LinkConfig::for_byte_rate(RATE), 9, t0);
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64 * 700);
            l.handle_input(now, c);
            l.handle_timeout(now);
            while l.poll_transmit(now, &mut out) > 0 {}
            while l.poll_event().is_some() {}
        }
        prop_assert!(out.len() < 100_000);
    }

    #[test]
    fn mutated_valid_frames_never_panic(seed in any::<u64>(), flips in 1usize..20) {
        // A real session's bytes with random damage.
        let mut p = pair(&ImpairmentKind::Clean, seed, 5);
        p.run_for(Duration::from_millis(300));
        let mut cap = Vec::new();
        for _ in 0..10 {
            p.b.link.poll_transmit(p.now, &mut cap);
        }
        let mut r = Rng::new(seed);
        for _ in 0..flips {
            if !cap.is_empty() {
                let i = r.below(cap.len() as u64) as usize;
                cap[i] = r.byte();
            }
        }
        p.a.link.handle_input(p.now, &cap);
        while p.a.link.poll_event().is_some() {}
        let _ = LineConfig::clean(1);
    }
}
