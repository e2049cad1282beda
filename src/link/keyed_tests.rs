//! Keyed-link tests on simulated time: matching keys carry streams intact (noise,
//! restarts), mismatched keys and hostile injections carry and reset nothing, a
//! recorded session replayed into the line is rejected, and retransmissions never
//! reuse a nonce.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock once

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::crypto::{KeyConfig, Secret, SEAL_HEADER};
use super::tests::{assert_streams_intact, describe, pair_of, run_to_completion};
use super::*;
use crate::line::rng::Rng;
use crate::sim::{ImpairmentKind, LinkPair, StreamTester, Which};

const RATE: u32 = 11_520;

type Pair = LinkPair<StreamTester>;

fn key(tag: u8) -> KeyConfig {
    let mut secret = [0u8; 32];
    for (i, b) in secret.iter_mut().enumerate() {
        *b = tag.wrapping_mul(31).wrapping_add(i as u8);
    }
    KeyConfig {
        secret: Secret(secret),
        seed: [tag ^ 0x55; 32],
        clock: crate::sim::SIM_CLOCK,
    }
}

fn keyed_cfg(tag: u8) -> LinkConfig {
    let mut c = LinkConfig::for_byte_rate(RATE);
    c.key = Some(key(tag));
    c
}

/// A pair whose sides use `ka` and `kb` (None: unkeyed).
fn pair_with(kind: &ImpairmentKind, seed: u64, msgs: u64, ka: Option<u8>, kb: Option<u8>) -> Pair {
    let cfg = |k: Option<u8>| {
        let mut c = LinkConfig::for_byte_rate(RATE);
        c.key = k.map(|k| {
            let mut kc = key(k);
            // Each side and seed draws its own ephemeral keys.
            kc.seed[0] = seed as u8;
            kc.seed[1] = (seed >> 8) as u8;
            kc
        });
        c
    };
    pair_of(kind, seed, msgs, cfg(ka), cfg(kb))
}

fn check(p: &Pair, what: &str, seed: u64) {
    let ctx = || {
        format!(
            "{} ka={:?} kb={:?}",
            describe(p, what, seed),
            p.a.link.keyed(),
            p.b.link.keyed()
        )
    };
    assert_streams_intact(p, &ctx);
    for l in [&p.a.link, &p.b.link] {
        let k = l.keyed().expect("keyed");
        assert!(k.ready() && k.sessions >= 1, "{}", ctx());
    }
}

fn sweep(kind: ImpairmentKind, seeds: u64, limit: Duration) {
    for seed in 0..seeds {
        let mut p = pair_with(&kind, seed, 20, Some(1), Some(1));
        run_to_completion(&mut p, limit);
        check(&p, &format!("keyed {kind:?}"), seed);
        assert_eq!(p.a.upper.peer_restarts + p.b.upper.peer_restarts, 0);
        assert_eq!(
            p.a.upper.mismatches + p.b.upper.mismatches,
            0,
            "seed {seed}"
        );
    }
}

#[test]
fn keyed_clean() {
    sweep(ImpairmentKind::Clean, 100, Duration::from_secs(20));
}

#[test]
fn keyed_ber_1e4() {
    sweep(ImpairmentKind::Ber(1e-4), 100, Duration::from_secs(30));
}

#[test]
fn keyed_drops_and_inserts() {
    sweep(
        ImpairmentKind::DropInsert(1e-3),
        60,
        Duration::from_secs(30),
    );
}

#[test]
fn keyed_restarts_either_end() {
    for seed in 0..100 {
        let kind = if seed % 3 == 0 {
            ImpairmentKind::Ber(1e-4)
        } else {
            ImpairmentKind::Clean
        };
        let mut p = pair_with(&kind, seed, 80, Some(2), Some(2));
        let mut r = Rng::new(seed ^ 0x5EED);
        let restarts = 1 + r.below(3);
        for _ in 0..restarts {
            let t = p.now + Duration::from_millis(r.below(800));
            p.run_until(t);
            let which = if r.below(2) == 0 { Which::A } else { Which::B };
            p.restart(which, r.next_u32() | 1);
        }
        run_to_completion(&mut p, Duration::from_secs(60));
        check(&p, &format!("keyed restarts {kind:?}"), seed);
    }
}

#[test]
fn keyed_restart_comes_back_and_resets_once() {
    let mut p = pair_with(&ImpairmentKind::Clean, 3, 1000, Some(4), Some(4));
    p.run_for(Duration::from_secs(2));
    assert!(p.b.upper.bytes_received > 0 && p.a.link.is_up());
    p.restart(Which::A, 0xABCD);
    p.run_for(Duration::from_secs(3));
    assert_eq!(p.b.upper.peer_restarts, 1, "{:?}", p.b.upper);
    assert!(p.a.link.is_up() && p.b.link.is_up());
    assert_eq!(p.b.link.peer_epoch(), Some(0xABCD));
    assert!(p.b.link.keyed().unwrap().sessions >= 2);
    assert!(p.a.upper.violations.is_empty() && p.b.upper.violations.is_empty());
}

/// Mismatched keys, or a keyed and an unkeyed end: nothing passes, each side
/// reports once in 30 s, and neither floods the line.
#[test]
fn mismatched_keys_carry_nothing_and_report_on_both_sides() {
    for (ka, kb, word) in [
        (Some(1), Some(2), "does not know our secret"),
        (Some(1), None, "unkeyed"),
        (None, Some(1), "requires a shared secret"),
    ] {
        for seed in 0..10 {
            let mut p = pair_with(&ImpairmentKind::Clean, seed, 20, ka, kb);
            p.run_for(Duration::from_secs(30));
            for (s, l) in [(&p.a, &p.a.link), (&p.b, &p.b.link)] {
                assert_eq!(s.upper.bytes_received, 0);
                assert_eq!(s.upper.ups, 0, "{ka:?}/{kb:?} seed {seed}");
                assert!(!l.is_up());
                // Handshakes / HELLOs at most every second after the first few
                // (an unkeyed side's HELLOs each bring a CAPS along).
                assert!(l.stats().hellos_sent < 45, "{:?}", l.stats());
                assert!(l.stats().frames_sent < 90, "{:?}", l.stats());
            }
            for s in [&p.a.upper, &p.b.upper] {
                assert_eq!(s.mismatches, 1, "{ka:?}/{kb:?} seed {seed}: {s:?}");
            }
            let _ = word;
        }
    }
    // The words in the reports.
    for (ka, kb, word) in [
        (Some(1), Some(2), "does not know our secret"),
        (Some(1), None, "unkeyed protocol"),
        (None, Some(1), "requires a shared secret"),
    ] {
        let t0 = Instant::now();
        let mk = |k: Option<u8>, e| {
            let mut c = LinkConfig::for_byte_rate(RATE);
            c.key = k.map(key);
            Link::new(c, e, t0)
        };
        let mut d = Duo::new(mk(ka, 5), mk(kb, 6), t0);
        d.run(Duration::from_secs(5));
        let all: Vec<_> = d.ev_a.iter().chain(&d.ev_b).collect();
        let texts: Vec<_> = all
            .iter()
            .filter_map(|e| match e {
                LinkEvent::ProtocolMismatch(s) => Some(s.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts.iter().any(|t| t.contains(word)), "{texts:?}");
    }
}

/// Frames an attacker without the key can make: HELLOs of the unkeyed
/// protocol with fresh epochs, handshake messages with valid CRCs but no key,
/// sealed frames with made-up counters, and garbage.
fn forgeries(r: &mut Rng) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let mut hello = Vec::new();
    frame::Repr::Hello(frame::Hello {
        epoch: r.next_u32() | 1,
        seen: 0,
        window: 64,
        reply: r.below(2) == 0,
    })
    .emit(&[0; 8], &mut hello);
    v.push(hello);
    for (m, len) in [(1u8, handshake::MSG1_LEN), (2, handshake::MSG_LEN)] {
        let mut hs = vec![handshake::KIND_HANDSHAKE << 4 | m];
        let mut body = vec![0u8; len];
        r.fill(&mut body);
        hs.extend_from_slice(&body);
        let crc = crc::crc32c(&[], &hs);
        hs.extend_from_slice(&crc.to_le_bytes());
        v.push(hs);
    }
    let mut sealed = vec![crypto::KIND_SEALED << 4];
    let mut body = vec![0u8; 4 + 40];
    r.fill(&mut body);
    sealed.extend_from_slice(&body);
    v.push(sealed);
    let mut junk = vec![0u8; 1 + r.below(80) as usize];
    r.fill(&mut junk);
    v.push(junk);
    v.into_iter()
        .map(|raw| {
            let mut enc = vec![0];
            cobs::encode(&raw, &mut enc);
            enc
        })
        .collect()
}

#[test]
fn injected_forgeries_reset_nothing() {
    for seed in 0..30 {
        let mut p = pair_with(&ImpairmentKind::Clean, seed, 300, Some(7), Some(7));
        p.run_for(Duration::from_millis(500));
        assert!(p.a.link.is_up() && p.b.link.is_up(), "seed {seed}");
        let mut r = Rng::new(seed ^ 0xBAD);
        let end = p.now + Duration::from_secs(20);
        while p.now < end {
            let t = p.now + Duration::from_millis(20 + r.below(200));
            p.run_until(t);
            let now = p.now;
            for f in forgeries(&mut r) {
                if r.below(2) == 0 {
                    p.b.link.handle_input(now, &f);
                } else {
                    p.a.link.handle_input(now, &f);
                }
            }
        }
        run_to_completion(&mut p, Duration::from_secs(90));
        check(&p, "forgeries", seed);
        for s in [&p.a.upper, &p.b.upper] {
            assert_eq!((s.peer_restarts, s.peer_lost, s.ups), (0, 0, 1), "{s:?}");
        }
        for l in [&p.a.link, &p.b.link] {
            assert_eq!(l.keyed().unwrap().sessions, 1, "no new session");
        }
    }
}

/// Two links joined directly (no line model), with every frame A sends
/// recorded and a chance of losing each frame: for recording and replay.
struct Duo {
    a: Link,
    b: Link,
    now: Instant,
    rng: Rng,
    loss: f64,
    /// Line A→B cut (a one-way outage).
    cut_ab: bool,
    /// Every frame A wrote, COBS-encoded, in order.
    a_sent: Vec<Vec<u8>>,
    ev_a: Vec<LinkEvent>,
    ev_b: Vec<LinkEvent>,
    next_payload: u32,
    payloads: u32,
}

impl Duo {
    fn new(a: Link, b: Link, now: Instant) -> Self {
        Duo {
            a,
            b,
            now,
            rng: Rng::new(1),
            loss: 0.0,
            cut_ab: false,
            a_sent: Vec::new(),
            ev_a: Vec::new(),
            ev_b: Vec::new(),
            next_payload: 0,
            payloads: 0,
        }
    }

    fn step(&mut self) {
        let now = self.now;
        for l in [&mut self.a, &mut self.b] {
            if l.poll_timeout().is_some_and(|t| t <= now) {
                l.handle_timeout(now);
            }
        }
        while self.next_payload < self.payloads && self.a.can_send() {
            let p = Bytes::from(format!("payload {:06}", self.next_payload));
            self.a.send(p).expect("can_send");
            self.next_payload += 1;
        }
        let mut out = Vec::new();
        loop {
            out.clear();
            if self.a.poll_transmit(now, &mut out) == 0 {
                break;
            }
            self.a_sent.push(out.clone());
            if !self.rng.chance(self.loss) && !self.cut_ab {
                self.b.handle_input(now, &out);
            }
        }
        loop {
            out.clear();
            if self.b.poll_transmit(now, &mut out) == 0 {
                break;
            }
            if !self.rng.chance(self.loss) {
                self.a.handle_input(now, &out);
            }
        }
        self.ev_a.extend(std::iter::from_fn(|| self.a.poll_event()));
        self.ev_b.extend(std::iter::from_fn(|| self.b.poll_event()));
        self.now += Duration::from_millis(1);
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    fn delivered_b(&self) -> Vec<Bytes> {
        self.ev_b
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Delivered(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }
}

fn keyed_link(tag: u8, epoch: u32, now: Instant) -> Link {
    Link::new(keyed_cfg(tag), epoch, now)
}

#[test]
fn recorded_session_replayed_is_rejected() {
    let t0 = Instant::now();
    let mut d = Duo::new(keyed_link(9, 11, t0), keyed_link(9, 22, t0), t0);
    d.payloads = 200;
    d.run(Duration::from_secs(3));
    assert_eq!(d.delivered_b().len(), 200);
    let recording = d.a_sent.clone();
    assert!(recording.len() > 200);

    // Into a fresh peer with the same key (as after a restart): the old
    // handshake gets an answer, but no old frame opens, nothing comes up.
    let mut fresh = keyed_link(9, 33, d.now);
    let mut now = d.now;
    let mut out = Vec::new();
    for f in &recording {
        fresh.handle_input(now, f);
        if fresh.poll_timeout().is_some_and(|t| t <= now) {
            fresh.handle_timeout(now);
        }
        out.clear();
        while fresh.poll_transmit(now, &mut out) > 0 {}
        now += Duration::from_millis(2);
    }
    let evs: Vec<_> = std::iter::from_fn(|| fresh.poll_event()).collect();
    assert!(
        evs.iter()
            .all(|e| !matches!(e, LinkEvent::Delivered(_) | LinkEvent::Up { .. })),
        "{evs:?}"
    );
    assert!(!fresh.is_up());
    assert!(fresh.stats().crc_failures >= 200, "{:?}", fresh.stats());

    // Into the very peer that saw it (same session keys): replays, all dropped.
    let before = d.delivered_b().len();
    for f in &recording {
        d.b.handle_input(d.now, f);
    }
    d.ev_b.extend(std::iter::from_fn(|| d.b.poll_event()));
    assert_eq!(d.delivered_b().len(), before);
    assert!(
        d.ev_b
            .iter()
            .all(|e| !matches!(e, LinkEvent::PeerRestarted)),
        "{:?}",
        d.ev_b
    );
    assert!(d.b.keyed().unwrap().replays >= 200);
    // And the session still works.
    d.payloads += 50;
    d.run(Duration::from_secs(2));
    assert_eq!(d.delivered_b().len(), 250);
}

#[test]
fn retransmissions_never_reuse_a_nonce() {
    for seed in 0..10 {
        let t0 = Instant::now();
        let mut d = Duo::new(keyed_link(5, 1, t0), keyed_link(5, 2, t0), t0);
        d.rng = Rng::new(seed);
        d.loss = 0.2;
        d.payloads = 300;
        d.run(Duration::from_secs(60));
        assert_eq!(d.delivered_b().len(), 300, "seed {seed}");
        assert!(d.a.stats().frames_retransmitted > 20);
        let mut seen: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut sealed = 0;
        for enc in &d.a_sent {
            let mut dec = cobs::Decoder::new(4096);
            let mut raws = Vec::new();
            dec.push(enc, |c| {
                if let cobs::Chunk::Frame(r) = c {
                    raws.push(r.to_vec());
                }
            });
            dec.push(&[0], |c| {
                if let cobs::Chunk::Frame(r) = c {
                    raws.push(r.to_vec());
                }
            });
            for raw in raws {
                if raw[0] >> 4 != crypto::KIND_SEALED {
                    continue;
                }
                sealed += 1;
                let ctr = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
                let ct = raw[SEAL_HEADER..].to_vec();
                if let Some(prev) = seen.insert(ctr, ct.clone()) {
                    assert_eq!(prev, ct, "seed {seed}: nonce {ctr} with two ciphertexts");
                }
            }
        }
        assert!(sealed > 300);
        // One session, so counters are unique per transmission.
        assert_eq!(seen.len(), sealed, "seed {seed}");
    }
}

/// Short junk frames, as anyone who can write to the line can inject them
/// (CRC-less garbage, sealed frames with made-up tags, handshakes with a bad
/// CRC), each COBS-encoded with a leading delimiter.
fn short_junk(r: &mut Rng) -> Vec<u8> {
    let mut raw = vec![0u8; 2 + r.below(6) as usize];
    r.fill(&mut raw);
    raw[0] = match r.below(3) {
        0 => crypto::KIND_SEALED << 4,
        1 => handshake::KIND_HANDSHAKE << 4 | 1,
        _ => raw[0],
    };
    let mut enc = vec![0];
    cobs::encode(&raw, &mut enc);
    enc.push(0);
    enc
}

/// Issue 19 item 5: injected short junk must not shrink a keyed link's frames
/// (a few tiny frames used to pin the payload at 64 B), while genuine line
/// errors still do.
#[test]
fn keyed_frame_size_ignores_injected_junk_but_follows_line_errors() {
    for seed in 0..4 {
        // One-way bulk A → B: A's frame size is what counts.
        let mut p = pair_with(&ImpairmentKind::Clean, seed, u64::MAX, Some(3), Some(3));
        p.a.upper.full_frames = true;
        p.b.upper.budget = 0;
        p.run_for(Duration::from_secs(2));
        let clean = p.a.link.max_payload();
        assert_eq!(clean, p.a.link.config().payload_ceiling(), "seed {seed}");
        let mut r = Rng::new(seed ^ 0x1A4C);
        let end = p.now + Duration::from_secs(10);
        let mut injected = 0;
        while p.now < end {
            let t = p.now + Duration::from_millis(100 + r.below(200));
            p.run_until(t);
            // Between the acks A receives, so that no genuine frame is cut
            // (that would be a real loss: jamming, not forgery).
            while p.ba.next_wakeup().is_some() {
                p.step();
            }
            let now = p.now;
            for _ in 0..3 {
                p.a.link.handle_input(now, &short_junk(&mut r));
                injected += 1;
            }
            assert!(
                p.a.link.max_payload() >= clean * 9 / 10,
                "seed {seed}: payload {} (clean {clean}) after {injected} junk frames: {:?}",
                p.a.link.max_payload(),
                p.a.link.stats()
            );
        }
        assert!(
            p.a.link.stats().crc_failures >= 20,
            "{:?}",
            p.a.link.stats()
        );
        assert!(p.b.upper.bytes_received > 100_000, "{:?}", p.b.upper);
        assert!(p.a.upper.violations.is_empty() && p.b.upper.violations.is_empty());
        assert_eq!((p.a.upper.peer_restarts, p.a.upper.peer_lost), (0, 0));
    }
    // Genuine bit errors: the payload shrinks as on an unkeyed link.
    // (Without FEC, which would repair the frames instead of shrinking them.)
    let mut noisy = pair_with(&ImpairmentKind::Ber(1e-4), 1, u64::MAX, Some(3), Some(3));
    for side in [&mut noisy.a, &mut noisy.b] {
        side.cfg.features = Features(side.cfg.features.0 & !Features::FEC.0);
        side.link = Link::new(side.cfg.clone(), side.link.epoch(), noisy.start);
    }
    noisy.a.upper.full_frames = true;
    noisy.run_for(Duration::from_secs(20));
    let l = noisy.a.link.max_payload();
    assert!((80..200).contains(&l), "{l} {:?}", noisy.a.link.stats());
    assert!(noisy.b.upper.violations.is_empty());
}

/// Message-1 frames of earlier keyed sessions, as an attacker records them off
/// the line: the first frame each of `n` earlier runs of a peer sent.
fn recorded_message1s(tag: u8, n: u32, now: Instant) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut l = Link::new(recorded_cfg(tag, i, n), 1000 + i, now);
            let mut out = Vec::new();
            l.poll_transmit(now, &mut out);
            assert_eq!(out[1], handshake::KIND_HANDSHAKE << 4 | 1, "a message 1");
            out
        })
        .collect()
}

/// The configuration of the `i`th of `n` earlier runs (recorded earlier).
fn recorded_cfg(tag: u8, i: u32, n: u32) -> LinkConfig {
    let mut c = keyed_cfg(tag);
    if let Some(k) = c.key.as_mut() {
        // Runs an hour apart, the last an hour before now.
        k.clock -= Duration::from_secs(3600 * u64::from(n - i));
    }
    c
}

fn short_dead_cfg(tag: u8) -> LinkConfig {
    let mut c = keyed_cfg(tag);
    c.dead_after = Duration::from_secs(3);
    c
}

/// Issue 19 item 4: valid message 1s recorded off the line and replayed about
/// once a second into a keyed side after a natural session loss must not keep
/// the link from re-forming. They used to make the side that lost its session
/// (B, the only one initiating: a one-way outage left A's session alive)
/// drop its own initiation and push its retry back by a second, again and
/// again, so it never initiated at all.
#[test]
fn replayed_message1s_do_not_keep_a_lost_session_down() {
    for seed in 0..8u64 {
        let t0 = Instant::now();
        let recordings = recorded_message1s(12, 4, t0);
        let mut d = Duo::new(
            Link::new(keyed_cfg(12), 11 + seed as u32, t0),
            Link::new(short_dead_cfg(12), 22 + seed as u32, t0),
            t0,
        );
        d.rng = Rng::new(seed);
        d.payloads = 50;
        d.run(Duration::from_secs(2));
        assert_eq!(d.delivered_b().len(), 50, "seed {seed}");
        // The message 1 that formed this session, recorded too.
        let mut recordings = recordings;
        recordings.push(d.a_sent[0].clone());

        // A natural session loss at B: line A→B goes dead past B's dead_after;
        // from then on the attacker replays its recordings into B, one about
        // every second, and the line comes back 2 s later.
        d.cut_ab = true;
        let mut r = Rng::new(seed ^ 0x4E91);
        while !d.ev_b.contains(&LinkEvent::PeerLost) {
            d.step();
        }
        let lost_at = d.now;
        let ups = |ev: &[LinkEvent]| {
            ev.iter()
                .filter(|e| matches!(e, LinkEvent::Up { .. }))
                .count()
        };
        let ups_before = ups(&d.ev_b);
        let back = lost_at + Duration::from_secs(2);
        let end = back + Duration::from_secs(20);
        let mut next = d.now + Duration::from_millis(r.below(300));
        let mut k = r.below(recordings.len() as u64) as usize;
        let mut up_at = None;
        let mut delivered_at_up = 0;
        while d.now < end {
            if d.now >= back {
                d.cut_ab = false;
            }
            if d.now >= next {
                d.b.handle_input(d.now, &recordings[k % recordings.len()]);
                k += 1;
                next = d.now + Duration::from_millis(700 + r.below(300));
            }
            d.step();
            if up_at.is_none() && d.a.is_up() && d.b.is_up() && ups(&d.ev_b) > ups_before {
                up_at = Some(d.now);
                // New data once the link is back.
                delivered_at_up = d.delivered_b().len();
                d.next_payload = d.payloads;
                d.payloads += 20;
            }
        }
        assert!(
            up_at.is_some(),
            "seed {seed}: the link never re-formed: a={:?} b={:?}",
            d.a.keyed(),
            d.b.keyed()
        );
        // The recordings are known for what they are.
        let k = d.b.keyed().unwrap();
        assert!(
            k.stale_handshakes >= 10,
            "seed {seed}: {}",
            k.stale_handshakes
        );
        let took = up_at.unwrap().saturating_duration_since(back);
        assert!(
            took < Duration::from_secs(5),
            "seed {seed}: re-formed only after {took:?}"
        );
        assert_eq!(
            d.delivered_b().len(),
            delivered_at_up + 20,
            "seed {seed}: data after re-forming"
        );
    }
}

/// An established keyed session is not disturbed by replayed message 1s.
#[test]
fn replayed_message1s_leave_an_established_session_alone() {
    let t0 = Instant::now();
    let recordings = recorded_message1s(13, 4, t0);
    let mut d = Duo::new(keyed_link(13, 5, t0), keyed_link(13, 6, t0), t0);
    d.payloads = 100;
    d.run(Duration::from_secs(1));
    let mut recordings = recordings;
    recordings.push(d.a_sent[0].clone());
    let mut r = Rng::new(77);
    for i in 0..20 {
        for _ in 0..3 {
            let f = &recordings[r.below(recordings.len() as u64) as usize];
            if i % 2 == 0 {
                d.b.handle_input(d.now, f);
            } else {
                d.a.handle_input(d.now, f);
            }
        }
        d.payloads += 20;
        d.run(Duration::from_millis(500));
    }
    d.run(Duration::from_secs(2));
    assert_eq!(d.delivered_b().len(), 500);
    for ev in [&d.ev_a, &d.ev_b] {
        assert!(
            ev.iter()
                .all(|e| !matches!(e, LinkEvent::PeerRestarted | LinkEvent::PeerLost)),
            "{ev:?}"
        );
    }
    for l in [&d.a, &d.b] {
        assert_eq!(l.keyed().unwrap().sessions, 1, "no new session");
        assert!(l.is_up());
    }
}
