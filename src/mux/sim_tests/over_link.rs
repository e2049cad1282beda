//! The [`World`] workload over the real link layer: two [`Mux`]es are the
//! [`Upper`] layers of a [`LinkPair`], two [`Link`](crate::link::Link)s over
//! two impaired simulated lines, on simulated time.
//!
//! A layer test: the mux's own workload checker over the real link, wired
//! minimally (`poll_payload(max)` → `Link::send`, `Delivered(p)` →
//! [`Mux::handle_payload`], `PeerRestarted` and `PeerLost` →
//! [`Mux::handle_session_reset`]). The endpoint that joins link and mux for
//! real — with services, waiting opens, decode-error restarts and close — is
//! [`crate::station::Station`], simulated whole in `station::tests`. A restart of one end ([`LinkPair::restart`])
//! replaces its link *and* its mux (a new process). The application model
//! ([`World::step`], times in milliseconds of simulated time) runs between
//! link steps, at least every [`APP_TICK`]; link steps are at least
//! [`LINE_QUANTUM`] apart.
//!
//! Per impairment (clean, BER 1e-5 and 1e-4, drops + inserts, noise bursts, a
//! 35 s outage) every connection must finish exactly as planned — bytes
//! intact and in order, EOF where sent, resets only where planned, the stalled
//! reader holding exactly its window while all others finish — with one link
//! session, nothing lost and nothing reset. With a restart of one end mid-run,
//! the channels of the old session end on both sides (a `Reset`, or the end
//! dies with its process), nothing of them is delivered afterwards, and the
//! channels opened once both sides noticed work normally.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::link::{LinkConfig, LinkEvent};
use crate::sim::{ImpairmentKind, LinkPair, Upper, Which};

/// Longest simulated time between two application steps.
const APP_TICK: Duration = Duration::from_millis(5);

/// Shortest simulated time between two link steps: the drivers read the
/// line in chunks of at most this much line time, like a real driver.
const LINE_QUANTUM: Duration = Duration::from_millis(1);

/// Seeds per case (each test is one case).
const SEEDS: u64 = 50;

/// A mux as the layer above a link.
struct MuxUpper {
    mux: Mux,
    cfg: MuxConfig,
    /// Payload bytes handed to the current link.
    handed: u64,
    ups: u32,
    peer_restarts: u32,
    peer_lost: u32,
    /// Session losses the link reported (each reset the mux).
    losses: u32,
    /// The peer's config offers compression (what its link announces).
    peer_compress: bool,
}

impl MuxUpper {
    fn new(cfg: MuxConfig, peer_compress: bool) -> Self {
        MuxUpper {
            peer_compress,
            mux: Mux::new(cfg.clone()),
            cfg,
            handed: 0,
            ups: 0,
            peer_restarts: 0,
            peer_lost: 0,
            losses: 0,
        }
    }
}

impl MuxUpper {
    fn negotiate(&mut self) {
        self.mux
            .set_peer_compression(self.peer_compress.then_some(Codec::Deflate));
    }
}

impl Upper for MuxUpper {
    fn poll_payload(&mut self, _now: Instant, max: usize) -> Option<Bytes> {
        let p = self.mux.poll_payload(max)?;
        assert!(
            !p.is_empty() && p.len() <= max,
            "payload {} > {max}",
            p.len()
        );
        self.handed += p.len() as u64;
        Some(p)
    }

    fn on_event(&mut self, _now: Instant, ev: LinkEvent) {
        match ev {
            LinkEvent::Up { .. } => {
                self.ups += 1;
                // What the link's feature exchange tells each session.
                self.negotiate();
            }
            LinkEvent::Delivered(p) => {
                if let Err(e) = self.mux.handle_payload(&p) {
                    panic!("a correct peer over a reliable link sent garbage: {e}");
                }
            }
            LinkEvent::PeerRestarted => {
                self.peer_restarts += 1;
                self.losses += 1;
                self.mux.handle_session_reset(SessionEnd::PeerRestarted);
                // The new session's feature exchange.
                self.negotiate();
            }
            LinkEvent::PeerLost => {
                self.peer_lost += 1;
                self.losses += 1;
                self.mux.handle_session_reset(SessionEnd::PeerLost);
            }
            LinkEvent::ProtocolMismatch(why) => panic!("protocol mismatch: {why}"),
            LinkEvent::PeerFeatures(_) => {}
        }
    }

    fn on_restart(&mut self, _now: Instant) {
        // A new process: a new mux with nothing of the old one.
        self.mux = Mux::new(self.cfg.clone());
        self.handed = 0;
    }
}

/// What happens to the lines (both directions alike) or the ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Clean,
    Ber5,
    Ber4,
    DropInsert,
    Bursts,
    /// 35 s of silence both ways, starting early in the run.
    Outage,
    /// One end restarts mid-run (lines with BER 1e-5).
    Restart,
    /// 70 s of silence both ways: both links report `PeerLost` (and the muxes
    /// are reset, as the serial-mux driver does), then the same link session
    /// resumes. Channels opened after the outage must work.
    LongOutage,
}

/// Figures of one run.
#[derive(Debug, Default, Clone, PartialEq)]
struct Outcome {
    /// DATA bytes that arrived compressed (the rest of the current
    /// session's mux; every one was checked by the world).
    compressed: u64,
    /// Simulated milliseconds until the workload finished.
    finished_ms: u64,
    /// Link steps.
    steps: u64,
    /// DATA frames retransmitted (both sides).
    retransmitted: u64,
    /// Retransmission timer expiries (both sides).
    rto: u64,
    /// Channel bytes delivered (both muxes).
    bytes: u64,
    /// Connections cut by a session loss.
    cut: usize,
    /// Line bytes lost to impairments (both lines; outage, drops, bursts,
    /// flipped bits).
    damage: u64,
}

fn side(w: Which) -> Side {
    match w {
        Which::A => Side::A,
        Which::B => Side::B,
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Workload size: connections (besides the second batch of a restart) and the
/// longest direction. Debug builds run smaller workloads to keep `cargo test`
/// fast; CI's `--release` runs the full size.
fn workload() -> (usize, usize) {
    if cfg!(debug_assertions) {
        (10, 6_000)
    } else {
        (20, 20_000)
    }
}

fn run(seed: u64, case: Case) -> Outcome {
    let mut rng = Rng::new(seed ^ 0x11_4c_1e);
    let byte_rate = if rng.chance(50) { 11_520 } else { 92_160 };
    let (n, max_len) = workload();
    let mut specs = random_specs(&mut rng, n, 0, 1000, max_len);
    let mut restart = None;
    let mut second_batch = n..n;
    if case == Case::LongOutage {
        // Channels opened once the line is back.
        specs.extend(random_specs(&mut rng, n / 2, 75_000, 2000, max_len));
        second_batch = n..specs.len();
    } else if case == Case::Restart {
        let which = if rng.chance(50) { Which::A } else { Which::B };
        let at = rng.range(100, 800) as u64;
        restart = Some((which, at));
        // Channels opened well after both ends noticed the restart.
        specs.extend(random_specs(&mut rng, n / 2, at + 3000, 1000, max_len));
        second_batch = n..specs.len();
    } else {
        let opener = if rng.chance(50) { Side::A } else { Side::B };
        specs[0] = stalled_spec(opener, 12_000);
    }
    let outage = match case {
        Case::LongOutage => Some((
            Duration::from_millis(rng.range(100, 400) as u64),
            Duration::from_secs(70),
        )),
        Case::Outage => Some((
            Duration::from_millis(rng.range(100, 400) as u64),
            Duration::from_secs(35),
        )),
        _ => None,
    };
    let kind = match case {
        Case::Clean => ImpairmentKind::Clean,
        Case::Ber5 | Case::Restart => ImpairmentKind::Ber(1e-5),
        Case::Ber4 => ImpairmentKind::Ber(1e-4),
        Case::DropInsert => ImpairmentKind::DropInsert(1e-5),
        Case::Bursts => ImpairmentKind::Bursts(1.0, 200),
        Case::Outage | Case::LongOutage => {
            let (start, len) = outage.expect("outage case");
            ImpairmentKind::Outage(start, len)
        }
    };
    let mcfg = [random_config(&mut rng, seed), random_config(&mut rng, seed)];
    let t0 = Instant::now();
    let mut p = LinkPair::new(
        LinkConfig::for_byte_rate(byte_rate),
        kind.line(byte_rate, seed.wrapping_mul(2) + 1),
        kind.line(byte_rate, seed.wrapping_mul(2) + 2),
        MuxUpper::new(mcfg[0].clone(), mcfg[1].compress),
        MuxUpper::new(mcfg[1].clone(), mcfg[0].compress),
        (0x1000 + seed as u32, 0x2000 + seed as u32),
        t0,
    );
    let mut w = World::new(seed, specs);
    let limit_ms = 200_000;
    let mut finished_ms = None;
    loop {
        let now = ms(p.elapsed());
        if let Some((which, at)) = restart {
            if now >= at && p.a.restarts + p.b.restarts == 0 {
                p.restart(which, 0x3000 + seed as u32);
                w.restart(side(which), now);
            }
        }
        w.step(Side::A, &mut p.a.upper.mux, now);
        w.step(Side::B, &mut p.b.upper.mux, now);
        p.a.upper.mux.check_invariants();
        p.b.upper.mux.check_invariants();
        w.check_stall([&p.a.upper.mux, &p.b.upper.mux]);
        if finished_ms.is_none()
            && !w.stall_active
            && w.all_done()
            && (restart.is_none() || p.a.restarts + p.b.restarts == 1)
            && !p.a.upper.mux.has_pending()
            && !p.b.upper.mux.has_pending()
        {
            finished_ms = Some(now);
        }
        // Let the last records and acks settle, then check everything is quiet.
        if finished_ms.is_some_and(|f| now >= f + 3000) {
            break;
        }
        assert!(
            now < limit_ms,
            "seed {seed} {case:?}: stuck; unfinished: {:?}",
            (0..w.specs.len())
                .filter(|&i| !w.done(i))
                .collect::<Vec<_>>()
        );
        let next = p.now + APP_TICK;
        p.step_quantum(LINE_QUANTUM, next);
        let now = ms(p.elapsed());
        for (s, losses) in [
            (Side::A, p.a.upper.losses + p.a.restarts),
            (Side::B, p.b.upper.losses + p.b.restarts),
        ] {
            assert!(losses <= w.session_losses[s.idx()] + 1);
            if losses > w.session_losses[s.idx()] {
                w.session_reset(s, now);
            }
        }
    }
    let finished_ms = finished_ms.expect("finished");
    w.finish([&p.a.upper.mux, &p.b.upper.mux]);

    let (la, lb) = (p.a.link.stats(), p.b.link.stats());
    let (ua, ub) = (&p.a.upper, &p.b.upper);
    assert!(p.a.link.is_up() && p.b.link.is_up(), "seed {seed} {case:?}");
    if case == Case::LongOutage {
        assert_eq!((ua.peer_lost, ub.peer_lost), (1, 1), "seed {seed}");
        for i in second_batch.clone() {
            assert!(
                !w.cut.contains(&i),
                "seed {seed}: c{i} after the outage cut"
            );
        }
    } else {
        assert_eq!(ua.peer_lost + ub.peer_lost, 0, "seed {seed} {case:?}");
    }
    if let Some((which, _)) = restart {
        let (restarted, peer) = match which {
            Which::A => (ua, ub),
            Which::B => (ub, ua),
        };
        assert_eq!(restarted.peer_restarts, 0, "seed {seed}");
        assert_eq!(peer.peer_restarts, 1, "seed {seed}: peer noticed");
        assert_eq!(restarted.ups, 2, "seed {seed}: old link and new link up");
        assert_eq!(peer.ups, 2, "seed {seed}: old and new session");
        let loss = w.last_loss.expect("a session loss");
        for i in second_batch {
            assert!(
                w.specs[i].start > loss,
                "seed {seed}: peer noticed the restart only at {loss} ms"
            );
            assert!(
                !w.cut.contains(&i),
                "seed {seed}: c{i} of the new session cut"
            );
        }
    } else if case != Case::LongOutage {
        // Nothing lost, nothing reset, one session; every payload handed to a
        // link was delivered exactly once and acknowledged.
        assert!(w.cut.is_empty(), "seed {seed} {case:?}: {:?}", w.cut);
        assert_eq!(w.session_losses, [0, 0], "seed {seed} {case:?}");
        assert_eq!((ua.ups, ub.ups), (1, 1), "seed {seed} {case:?}");
        assert_eq!((la.sessions, lb.sessions), (1, 1), "seed {seed} {case:?}");
        assert_eq!(
            ua.handed, lb.payload_bytes_delivered,
            "seed {seed} {case:?}"
        );
        assert_eq!(
            ub.handed, la.payload_bytes_delivered,
            "seed {seed} {case:?}"
        );
        assert_eq!(ua.handed, la.payload_bytes_acked, "seed {seed} {case:?}");
        assert_eq!(ub.handed, lb.payload_bytes_acked, "seed {seed} {case:?}");
    }
    if let Some((start, len)) = outage {
        assert!(
            Duration::from_millis(finished_ms) > start + len,
            "seed {seed}: the workload did not span the outage"
        );
    }
    let damage = [p.ab.stats(), p.ba.stats()]
        .iter()
        .map(|s| {
            s.outage_bytes + s.bytes_dropped + s.bytes_inserted + s.burst_bytes + s.bits_flipped
        })
        .sum();
    Outcome {
        finished_ms,
        steps: p.steps,
        retransmitted: la.frames_retransmitted + lb.frames_retransmitted,
        rto: la.rto_expiries + lb.rto_expiries,
        bytes: p.a.upper.mux.stats().bytes_received + p.b.upper.mux.stats().bytes_received,
        compressed: p.a.upper.mux.stats().compressed_bytes_received
            + p.b.upper.mux.stats().compressed_bytes_received,
        damage,
        cut: w.cut.len(),
    }
}

/// Runs [`SEEDS`] seeds of `case`; returns the sum of their outcomes.
fn run_case(case: Case) -> Outcome {
    let mut sum = Outcome::default();
    for seed in 0..SEEDS {
        let o = run(seed, case);
        sum.finished_ms += o.finished_ms;
        sum.steps += o.steps;
        sum.retransmitted += o.retransmitted;
        sum.bytes += o.bytes;
        sum.compressed += o.compressed;
        sum.damage += o.damage;
        sum.cut += o.cut;
        sum.rto += o.rto;
    }
    assert!(sum.bytes > 0);
    // Compressed records crossed the damaged line (and the restart) too.
    assert!(sum.compressed > sum.bytes / 10, "{case:?}: {sum:?}");
    // The impairment was real and the link had to repair it. (A clean line
    // may still see the odd spurious RTO when both directions are busy, so its
    // retransmissions are not asserted to be zero.)
    if case == Case::Clean {
        assert_eq!(sum.damage, 0, "{sum:?}");
    } else {
        assert!(sum.damage > 0 && sum.retransmitted > 0, "{case:?}: {sum:?}");
    }
    // The restart (or the loss) hit live channels.
    assert_eq!(
        sum.cut > 0,
        matches!(case, Case::Restart | Case::LongOutage),
        "{case:?}: {sum:?}"
    );
    sum
}

#[test]
fn link_sim_clean() {
    run_case(Case::Clean);
}

#[test]
fn link_sim_ber_1e5() {
    run_case(Case::Ber5);
}

#[test]
fn link_sim_ber_1e4() {
    run_case(Case::Ber4);
}

#[test]
fn link_sim_drop_insert_1e5() {
    run_case(Case::DropInsert);
}

#[test]
fn link_sim_bursts() {
    run_case(Case::Bursts);
}

#[test]
fn link_sim_outage_35s_loses_nothing() {
    run_case(Case::Outage);
}

#[test]
fn link_sim_restart_one_end() {
    run_case(Case::Restart);
}

#[test]
fn link_sim_is_deterministic() {
    assert_eq!(run(3, Case::Ber4), run(3, Case::Ber4));
}

/// 70 s of silence both ways: both links report `PeerLost` and end their
/// session (new epochs), the muxes are reset as the serial-mux driver does, and
/// nothing of the old session reaches the fresh muxes: channels opened after the
/// outage work. (This was a real bug: the link used to keep its session across
/// `PeerLost` and retransmit stale records into the reset mux.)
#[test]
fn link_sim_peer_lost_70s_outage() {
    run_case(Case::LongOutage);
}
