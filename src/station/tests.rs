//! Simulations of two whole SERIAL-MUX ends ([`StationPair`]): the one-shot
//! transfers sfs users run (`sfs STDIO SERIAL-MUX:… < file` against
//! `EXEC:…`), with half-close and exit status, over clean and impaired lines,
//! outages and restarts, over many seeds; bursts of opens beyond the channel
//! limit; a peer whose mux data does not decode.
//!
//! The property every run checks is the one a user relies on: **a clean close
//! (the exit-0 path) means every byte arrived intact**. Side A's application
//! sees `Closed` only if B's application consumed exactly A's upload, and A
//! holds exactly B's reply and exit status; a cut transfer is reported as a
//! reset, with the bytes the peer never confirmed.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock once for a base instant

use super::*;
use crate::line::rng::Rng;
use crate::sim::{ImpairmentKind, StationPair, Which, SIM_CLOCK};

const SERVICE: &str = "svc";
const QUANTUM: Duration = Duration::from_millis(1);

/// How a run of the application ended on one side.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// `Closed`: the exit-0 path.
    Confirmed,
    /// `Reset`: the exit-1 path.
    Cut { unconfirmed: u64 },
    /// The open never became a channel.
    OpenFailed(OpenError),
}

/// One direction of an application's stream: what it must send, with the
/// station's write room, and what it got.
#[derive(Debug, Default)]
struct Stream {
    out: Vec<u8>,
    sent: usize,
    ended: bool,
    got: Vec<u8>,
    expect: Vec<u8>,
    consumed: u64,
    peer_status: Option<ExitStatus>,
    read_closed: bool,
}

impl Stream {
    fn new(out: Vec<u8>, expect: Vec<u8>) -> Self {
        Stream {
            out,
            expect,
            ..Stream::default()
        }
    }

    /// Writes what the station's room allows in pieces of at most `piece`, then the end
    /// of stream (with `status`) once `may_end`.
    fn pump(
        &mut self,
        st: &mut Station,
        ch: ChannelId,
        piece: usize,
        may_end: bool,
        status: Option<ExitStatus>,
    ) {
        while self.sent < self.out.len() && st.write_room(ch) > 0 {
            let n = piece.min(self.out.len() - self.sent);
            self.sent += st.write(
                ch,
                Bytes::copy_from_slice(&self.out[self.sent..self.sent + n]),
            );
        }
        if self.sent == self.out.len() && may_end && !self.ended {
            self.ended = true;
            st.shutdown_write(ch, status);
        }
    }

    /// Reads everything available, checks it against what the peer sends, and
    /// consumes it (the program behind took it).
    fn drain(&mut self, st: &mut Station, ch: ChannelId) {
        while let Some(b) = st.read(ch, 1500) {
            let at = self.got.len();
            assert!(
                at + b.len() <= self.expect.len() && self.expect[at..at + b.len()] == b[..],
                "corrupted or extra bytes at offset {at}"
            );
            self.got.extend_from_slice(&b);
            self.consumed += b.len() as u64;
            st.consumed(ch, b.len());
        }
    }
}

/// The application on one side: A uploads (a one-shot STDIO), B serves (EXEC).
#[derive(Debug)]
struct App {
    open: Option<OpenId>,
    ch: Option<ChannelId>,
    stream: Stream,
    end: Option<End>,
    /// B only: ends its reply before reading the upload (a program that closes
    /// its output first), or after.
    reply_first: bool,
    status: Option<ExitStatus>,
    piece: usize,
}

impl App {
    fn uploader(upload: Vec<u8>, reply: Vec<u8>, piece: usize) -> Self {
        App {
            open: None,
            ch: None,
            stream: Stream::new(upload, reply),
            end: None,
            reply_first: false,
            status: None,
            piece,
        }
    }

    fn server(reply: Vec<u8>, upload: Vec<u8>, reply_first: bool, status: ExitStatus) -> Self {
        App {
            open: None,
            ch: None,
            stream: Stream::new(reply, upload),
            end: None,
            reply_first,
            status: Some(status),
            piece: 700,
        }
    }

    /// Handles the station's events and writes what it may.
    fn turn(&mut self, st: &mut Station) {
        while let Some(ev) = st.poll_event() {
            self.handle(st, ev);
        }
        self.pump(st);
    }

    fn handle(&mut self, st: &mut Station, ev: StationEvent) {
        {
            match ev {
                StationEvent::Opened { open, ch } => {
                    assert_eq!(Some(open), self.open);
                    self.ch = Some(ch);
                }
                StationEvent::OpenFailed { open, error } => {
                    assert_eq!(Some(open), self.open);
                    self.end = Some(End::OpenFailed(error));
                }
                StationEvent::Incoming { ch, service, .. } => {
                    assert_eq!(service, SERVICE);
                    if self.ch.is_none() && self.end.is_none() {
                        st.accept(ch);
                        self.ch = Some(ch);
                    } else {
                        st.refuse(ch, RefuseReason::Other, "one-shot");
                    }
                }
                StationEvent::Readable { ch } => {
                    assert_eq!(Some(ch), self.ch);
                    self.stream.drain(st, ch);
                }
                StationEvent::ReadClosed { ch, status } => {
                    assert_eq!(Some(ch), self.ch);
                    assert_eq!(
                        self.stream.got.len(),
                        self.stream.expect.len(),
                        "end of stream before all bytes"
                    );
                    self.stream.read_closed = true;
                    self.stream.peer_status = status;
                }
                // The station keeps the write budget (`write_room`).
                StationEvent::Sent { ch, .. } => assert_eq!(Some(ch), self.ch),
                StationEvent::Closed { ch } => {
                    assert_eq!(Some(ch), self.ch);
                    self.end = Some(End::Confirmed);
                }
                StationEvent::Reset {
                    ch, unconfirmed, ..
                } => {
                    assert_eq!(Some(ch), self.ch);
                    self.end = Some(End::Cut { unconfirmed });
                }
                StationEvent::LinkUp { .. }
                | StationEvent::LinkDown { .. }
                | StationEvent::PeerFeatures { .. } => {}
            }
        }
    }

    fn pump(&mut self, st: &mut Station) {
        if let (Some(ch), None) = (self.ch, &self.end) {
            let may_end = !self.is_server() || self.reply_first || self.stream.read_closed;
            self.stream.pump(st, ch, self.piece, may_end, self.status);
        }
    }

    fn is_server(&self) -> bool {
        self.status.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Clean,
    Ber4,
    DropInsert,
    Bursts,
    /// 35 s of silence both ways, shorter than dead-after: nothing is lost.
    Outage,
    /// 70 s of silence both ways: the session is lost; the transfer is cut.
    LongOutage,
    /// One end restarts mid-transfer.
    Restart(Which),
    /// One end's adapter is unplugged mid-transfer for 5-20 s, then plugged
    /// back in (the driver reopens it; the link and channels are kept).
    Replug(Which),
    /// `secret-file=` on both ends, BER 1e-4.
    KeyedBer4,
    /// `secret-file=` on both ends; one end restarts mid-transfer.
    KeyedRestart(Which),
    /// `secret-file=` on both ends, and someone without the key keeps injecting
    /// forged HELLOs, handshake messages and garbage into both ends.
    KeyedAttacked,
}

impl Case {
    fn keyed(self) -> bool {
        matches!(
            self,
            Case::KeyedBer4 | Case::KeyedRestart(_) | Case::KeyedAttacked
        )
    }
}

/// Frames someone without the key can put on the line: an unkeyed HELLO with
/// a new epoch (which resets an unkeyed link), handshake messages with valid
/// CRCs, and garbage; COBS-encoded.
fn forged_frames(rng: &mut Rng) -> Vec<u8> {
    use crate::link::{cobs, crc, frame, handshake};
    let mut raws = Vec::new();
    let mut hello = Vec::new();
    frame::Repr::Hello(frame::Hello {
        epoch: rng.next_u32() | 1,
        seen: rng.next_u32(),
        window: 64,
        reply: rng.chance(0.5),
    })
    .emit(&[0; 8], &mut hello);
    raws.push(hello);
    let m = 1 + rng.below(2) as u8;
    let mut hs = vec![handshake::KIND_HANDSHAKE << 4 | m];
    let len = if m == 1 {
        handshake::MSG1_LEN
    } else {
        handshake::MSG_LEN
    };
    let mut msg = vec![0u8; len];
    rng.fill(&mut msg);
    hs.extend_from_slice(&msg);
    let c = crc::crc32c(&[], &hs);
    hs.extend_from_slice(&c.to_le_bytes());
    raws.push(hs);
    let mut junk = vec![0u8; 1 + rng.below(60) as usize];
    rng.fill(&mut junk);
    raws.push(junk);
    let mut out = Vec::new();
    for r in raws {
        out.push(0);
        cobs::encode(&r, &mut out);
        out.push(0);
    }
    out
}

/// What one run produced, for the checks and for counting.
#[derive(Debug)]
struct Run {
    a: App,
    b: App,
    /// B's application state before it restarted, if it did.
    b_before_restart: Option<App>,
    a_before_restart: Option<App>,
    restarted_at: Option<Duration>,
    elapsed: Duration,
    /// DATA bytes sent compressed by both stations (the last session's).
    compressed: u64,
    /// A `Replug` case pulled the adapter before A's transfer ended.
    unplugged_mid_transfer: bool,
}

fn seeds() -> u64 {
    if cfg!(debug_assertions) {
        50
    } else {
        1000
    }
}

fn run(seed: u64, case: Case) -> Run {
    let mut rng = Rng::new(seed ^ 0x57a7_1011);
    let byte_rate = if rng.chance(0.5) { 11_520 } else { 92_160 };
    let mut upload = vec![0u8; 1000 + rng.below(20_000) as usize];
    rng.fill(&mut upload);
    let mut reply = vec![0u8; rng.below(6_000) as usize];
    rng.fill(&mut reply);
    // Half the seeds move text, which goes compressed (and a third of those
    // mix in random stretches): the compression state must come through
    // damage, retransmissions and restarts without one wrong byte.
    if seed % 2 == 1 {
        textify(&mut upload, seed % 3 == 0);
        textify(&mut reply, seed % 3 == 0);
    }
    let status = ExitStatus::Code(rng.below(256) as u32);
    let impairment = match case {
        Case::Clean
        | Case::Restart(_)
        | Case::Replug(_)
        | Case::KeyedRestart(_)
        | Case::KeyedAttacked => ImpairmentKind::Clean,
        Case::Ber4 | Case::KeyedBer4 => ImpairmentKind::Ber(1e-4),
        Case::DropInsert => ImpairmentKind::DropInsert(1e-5),
        Case::Bursts => ImpairmentKind::Bursts(0.5, 20),
        Case::Outage | Case::LongOutage => {
            let secs = if case == Case::Outage { 35 } else { 70 };
            ImpairmentKind::Outage(
                Duration::from_millis(200 + rng.below(800)),
                Duration::from_secs(secs),
            )
        }
    };
    let mut cfg = StationConfig::for_byte_rate(byte_rate, "sim");
    // Offered in CAPS as sfs does (`serial_mux::station_config`): the link's
    // feature exchange decides, and a receiver rejects DATA_LZ4 in a session
    // whose features exclude it.
    cfg.link.features = cfg.link.features.union(Features::COMPRESS_LZ4);
    if case.keyed() {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        let mut key_seed = [0u8; 32];
        rng.fill(&mut key_seed);
        cfg.link.key = Some(crate::link::crypto::KeyConfig {
            secret: crate::link::crypto::Secret(secret),
            seed: key_seed,
            clock: SIM_CLOCK,
        });
        // A keyed link compresses only when told to (compress=on); every
        // other text seed says so, to cover sealed compressed records too.
        if seed % 4 == 3 {
            cfg.compress = Compression::On;
        }
    }
    let base = Instant::now();
    let mut pair = StationPair::new(
        cfg,
        impairment.line(byte_rate, seed),
        impairment.line(byte_rate, seed ^ 0xffff),
        (rng.next_u32() | 1, rng.next_u32() | 1),
        base,
    );
    pair.b.station.listen(SERVICE);
    let piece = 1 + rng.below(3000) as usize;
    let mut a = App::uploader(upload.clone(), reply.clone(), piece);
    let mut b = App::server(reply, upload, rng.chance(0.5), status);
    a.open = Some(pair.a.station.open(base, SERVICE));
    let restart = match case {
        Case::Restart(w) | Case::KeyedRestart(w) => {
            Some((w, Duration::from_millis(100 + rng.below(1500))))
        }
        _ => None,
    };
    // The adapter comes out once A has written this much of its upload
    // (mid-transfer, whatever the line rate), and goes back in after `away`.
    let replug = match case {
        Case::Replug(w) => Some((
            w,
            rng.below(a.stream.out.len() as u64) as usize,
            Duration::from_secs(5 + rng.below(16)),
        )),
        _ => None,
    };
    let mut plug_in_at = None;
    let mut next_attack = base + Duration::from_millis(300);
    let mut out = Run {
        a: App::uploader(Vec::new(), Vec::new(), 1),
        b: App::server(Vec::new(), Vec::new(), false, status),
        b_before_restart: None,
        a_before_restart: None,
        restarted_at: None,
        elapsed: Duration::ZERO,
        compressed: 0,
        unplugged_mid_transfer: false,
    };
    let limit = base + Duration::from_secs(200);
    while pair.now < limit {
        pair.step_quantum(QUANTUM, limit);
        a.turn(&mut pair.a.station);
        b.turn(&mut pair.b.station);
        if case == Case::KeyedAttacked && pair.now >= next_attack {
            next_attack = pair.now + Duration::from_millis(20 + rng.below(200));
            let f = forged_frames(&mut rng);
            if rng.chance(0.5) {
                pair.a.station.handle_input(pair.now, &f);
            } else {
                pair.b.station.handle_input(pair.now, &f);
            }
        }
        if let Some((which, after, away)) = replug {
            let side = match which {
                Which::A => &mut pair.a,
                Which::B => &mut pair.b,
            };
            if side.unplugs == 0 && a.stream.sent >= after && a.end.is_none() {
                side.unplug(pair.now);
                plug_in_at = Some(pair.now + away);
                out.unplugged_mid_transfer = true;
            } else if plug_in_at.is_some_and(|t| pair.now >= t) {
                plug_in_at = None;
                side.plug_in();
            }
        }
        if let Some((which, at)) = restart {
            if out.restarted_at.is_none() && pair.elapsed() >= at {
                out.restarted_at = Some(pair.elapsed());
                let epoch = rng.next_u32() | 1;
                pair.restart(which, epoch);
                match which {
                    // A new process with no application: nothing more to check on A.
                    Which::A => {
                        out.a_before_restart = Some(std::mem::replace(
                            &mut a,
                            App::uploader(Vec::new(), Vec::new(), 1),
                        ));
                        a.end = Some(End::Cut { unconfirmed: 0 });
                    }
                    Which::B => {
                        let fresh = App::server(
                            b.stream.out.clone(),
                            b.stream.expect.clone(),
                            b.reply_first,
                            status,
                        );
                        out.b_before_restart = Some(std::mem::replace(&mut b, fresh));
                        pair.b.station.listen(SERVICE);
                    }
                }
            }
        }
        let b_done = b.end.is_some() || (out.b_before_restart.is_some() && b.ch.is_none());
        if a.end.is_some() && b_done && pair.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    out.elapsed = pair.elapsed();
    out.compressed = pair.a.station.mux_stats().compressed_bytes_sent
        + pair.b.station.mux_stats().compressed_bytes_sent;
    out.a = a;
    out.b = b;
    out
}

/// Turn random bytes into log-like text (words picked by the random bytes),
/// keeping every 8th stretch of 500 random when `mixed`.
fn textify(buf: &mut [u8], mixed: bool) {
    const WORDS: [&[u8]; 8] = [
        b"INFO ",
        b"request ",
        b"GET /api/v1/items ",
        b"status=200 ",
        b"bytes=",
        b"12",
        b"client=10.0.0.7 ",
        b"\n2026-12-01T02:00:00Z ",
    ];
    let mut text = Vec::with_capacity(buf.len() + 32);
    let mut i = 0;
    while text.len() < buf.len() {
        if mixed && (text.len() / 500) % 8 == 7 {
            text.push(buf[text.len()]);
            continue;
        }
        text.extend_from_slice(WORDS[buf[i % buf.len()] as usize % 8]);
        i += 1;
    }
    let n = buf.len();
    buf.copy_from_slice(&text[..n]);
}

/// The checks that hold in every case.
fn check(seed: u64, case: Case, r: &Run) {
    let ctx = format!("seed {seed} {case:?}");
    // The applications that held the channel: a restarted end's new
    // application may never have seen it.
    let a = if r.a.ch.is_some() {
        &r.a
    } else {
        r.a_before_restart.as_ref().unwrap_or(&r.a)
    };
    let b = if r.b.ch.is_some() {
        &r.b
    } else {
        r.b_before_restart.as_ref().unwrap_or(&r.b)
    };
    // A clean close on A means B's application took exactly A's upload, and A
    // holds B's whole reply and exit status.
    if a.end == Some(End::Confirmed) {
        assert_eq!(
            b.stream.consumed as usize,
            a.stream.out.len(),
            "{ctx}: A closed cleanly but B did not take every byte"
        );
        assert_eq!(b.stream.got, a.stream.out, "{ctx}");
        assert_eq!(
            a.stream.got, b.stream.out,
            "{ctx}: A closed cleanly without B's whole reply"
        );
        assert_eq!(a.stream.peer_status, b.status, "{ctx}: exit status");
    }
    // And symmetrically for B (its application is the one that was A's peer).
    if b.end == Some(End::Confirmed) {
        assert_eq!(
            a.stream.consumed as usize,
            b.stream.out.len(),
            "{ctx}: B closed cleanly but A did not take every byte"
        );
        assert_eq!(b.stream.got, a.stream.out, "{ctx}");
    }
    if let Some(End::Cut { unconfirmed }) = r.a.end {
        if r.a_before_restart.is_none() {
            // Every byte A wrote that B's application (before or after a
            // restart) never took is counted as unconfirmed.
            let taken =
                r.b_before_restart.as_ref().map_or(0, |p| p.stream.consumed) + r.b.stream.consumed;
            let not_taken = (r.a.stream.sent as u64).saturating_sub(taken);
            assert!(
                unconfirmed <= r.a.stream.sent as u64,
                "{ctx}: {unconfirmed} unconfirmed of {} written",
                r.a.stream.sent
            );
            assert!(
                unconfirmed >= not_taken,
                "{ctx}: cut with {unconfirmed} unconfirmed, but B never took {not_taken}"
            );
        }
    }
}

fn run_case(case: Case) -> (u64, u64, u64) {
    let (mut confirmed, mut cut, mut failed) = (0, 0, 0);
    let mut compressed = 0;
    for seed in 0..seeds() {
        let r = run(seed, case);
        check(seed, case, &r);
        if let Case::Replug(_) = case {
            assert!(
                r.unplugged_mid_transfer,
                "seed {seed} {case:?}: never unplugged"
            );
        }
        if case.keyed() && seed % 4 != 3 {
            assert_eq!(
                r.compressed, 0,
                "seed {seed} {case:?}: keyed, compress not on"
            );
        }
        compressed += r.compressed;
        match (&r.a.end, case) {
            (Some(End::Confirmed), _) => confirmed += 1,
            (Some(End::Cut { .. }), _) => cut += 1,
            (Some(End::OpenFailed(_)), _) => failed += 1,
            (None, _) => panic!("seed {seed} {case:?}: no outcome after {:?}", r.elapsed),
        }
    }
    // The text seeds went through the compressed path (every byte checked).
    assert!(
        compressed > 10_000,
        "{case:?}: {compressed} bytes compressed"
    );
    (confirmed, cut, failed)
}

/// Without a session loss, every one-shot transfer completes and confirms.
fn must_all_confirm(case: Case) {
    let (confirmed, cut, failed) = run_case(case);
    assert_eq!((cut, failed), (0, 0), "{case:?}: {confirmed} confirmed");
}

#[test]
fn one_shot_clean() {
    must_all_confirm(Case::Clean);
}

#[test]
fn one_shot_ber_1e4() {
    must_all_confirm(Case::Ber4);
}

#[test]
fn one_shot_drops_and_insertions() {
    must_all_confirm(Case::DropInsert);
}

#[test]
fn one_shot_noise_bursts() {
    must_all_confirm(Case::Bursts);
}

#[test]
fn one_shot_survives_a_35_s_outage() {
    must_all_confirm(Case::Outage);
}

#[test]
fn one_shot_cut_by_a_70_s_outage_is_reported_not_completed() {
    let (confirmed, cut, _) = run_case(Case::LongOutage);
    // Transfers still running when the line goes silent are cut, never closed.
    // (A fifth at least: the text seeds, compressed with deflate since issue
    // 22, often finish before the outage; 236 of 1000 were cut in release.)
    assert!(cut > seeds() / 5, "{confirmed} confirmed, {cut} cut");
}

/// An adapter pulled out mid-transfer and plugged back in 5-20 s later (as a
/// USB serial adapter is): the station reopens it, the session survives, and
/// every transfer confirms with every byte.
#[test]
fn one_shot_survives_an_unplugged_adapter_either_end() {
    must_all_confirm(Case::Replug(Which::A));
    must_all_confirm(Case::Replug(Which::B));
}

#[test]
fn one_shot_with_server_restart() {
    let (confirmed, cut, _) = run_case(Case::Restart(Which::B));
    assert!(cut > 0, "{confirmed} confirmed, {cut} cut");
}

#[test]
fn one_shot_with_client_restart() {
    // A restarted client (A) takes its application with it: the seeds whose
    // restart came before the transfer confirmed count as cut. Some must
    // (or no restart hit a transfer and the case tested nothing), and a
    // client restart never makes an open fail.
    let (confirmed, cut, failed) = run_case(Case::Restart(Which::A));
    assert!(
        cut > 0,
        "{confirmed} confirmed, {cut} cut: no restart mid-transfer"
    );
    assert_eq!(
        failed, 0,
        "{confirmed} confirmed, {cut} cut, {failed} failed"
    );
}

#[test]
fn keyed_one_shot_ber_1e4() {
    must_all_confirm(Case::KeyedBer4);
}

#[test]
fn keyed_one_shot_with_a_restart_either_end() {
    // A restarted server (with the key) is recognised: the old session's
    // transfers are cut, not left hanging.
    let (confirmed, cut, _) = run_case(Case::KeyedRestart(Which::B));
    assert!(cut > 0, "{confirmed} confirmed, {cut} cut");
    // A restarted client: as unkeyed (one_shot_with_client_restart), some
    // transfers are cut by it and no open fails.
    let (confirmed, cut, failed) = run_case(Case::KeyedRestart(Which::A));
    assert!(
        cut > 0,
        "{confirmed} confirmed, {cut} cut: no restart mid-transfer"
    );
    assert_eq!(
        failed, 0,
        "{confirmed} confirmed, {cut} cut, {failed} failed"
    );
}

/// Forged HELLOs (which would reset an unkeyed link), handshake messages and
/// garbage from someone without the key: every transfer still confirms.
#[test]
fn keyed_one_shot_under_injected_forgeries() {
    must_all_confirm(Case::KeyedAttacked);
}

/// A pair of stations on a clean line at `byte_rate`, both offering SERVICE.
fn clean_pair(byte_rate: u32, max_channels: u32) -> (StationPair, Instant) {
    let mut cfg = StationConfig::for_byte_rate(byte_rate, "sim");
    cfg.mux.max_channels = max_channels;
    pair_with(cfg)
}

/// Two stations with `cfg` on a clean line, both offering [`SERVICE`].
fn pair_with(cfg: StationConfig) -> (StationPair, Instant) {
    let base = Instant::now();
    let line = ImpairmentKind::Clean.line(cfg.link.byte_rate, 1);
    let mut pair = StationPair::new(cfg, line.clone(), line, (11, 22), base);
    pair.a.station.listen(SERVICE);
    pair.b.station.listen(SERVICE);
    (pair, base)
}

/// A burst of opens beyond the channel limit waits for free channels instead of
/// failing: 300 short request/response connections through 32 channels.
#[test]
fn a_burst_beyond_the_channel_limit_waits() {
    let (mut pair, base) = clean_pair(92_160, 32);
    short_connections(&mut pair, base, 300);
    assert!(pair.a.station.stats().opens_queued >= 300 - 32);
    assert_eq!(pair.a.station.stats().opens_failed, 0);
}

/// Opens faster than the peer's open rate wait their turn at the peer and all
/// succeed: the churn of a health-check loop is slowed to the rate, never
/// refused (the rate once refused the excess, and 3 of 4 short connections
/// one after another failed).
#[test]
fn opens_beyond_the_open_rate_wait_their_turn() {
    let mut cfg = StationConfig::for_byte_rate(92_160, "sim");
    cfg.mux.max_channels = 32;
    cfg.open_rate = 50;
    cfg.open_burst = 10;
    let (mut pair, base) = pair_with(cfg);
    let elapsed = short_connections(&mut pair, base, 300);
    assert_eq!(pair.a.station.stats().opens_failed, 0);
    let b = pair.b.station.stats();
    assert!(b.opens_deferred >= 200, "{b:?}");
    // Paced by B's bucket: 10 at once, then 50 a second.
    let paced = Duration::from_secs_f64((300.0 - 10.0) / 50.0);
    assert!(elapsed >= paced, "{elapsed:?} < {paced:?}");
    assert!(elapsed < paced + Duration::from_secs(3), "{elapsed:?}");
}

/// A peer with fewer channels than this end refuses opens beyond its limit
/// ("too many channels"); they wait and try again instead of failing, as
/// they do when this end's own channels are all in use.
#[test]
fn opens_wait_while_the_peer_has_no_free_channel() {
    let (mut pair, base) = clean_pair(92_160, 64);
    let mut cfg_b = pair.b.cfg.clone();
    cfg_b.mux.max_channels = 8;
    pair.b.station = Station::new(cfg_b.clone(), 22, base);
    pair.b.cfg = cfg_b;
    pair.b.station.listen(SERVICE);
    short_connections(&mut pair, base, 100);
    assert_eq!(pair.a.station.stats().opens_failed, 0);
    assert!(pair.b.station.mux_stats().incoming_total >= 100);
}

/// Runs `n` short request/response connections from A to B's service at
/// once (A's application opens them all, B's serves each), asserts that
/// every one confirmed its bytes, and returns how long that took.
fn short_connections(pair: &mut StationPair, base: Instant, n: usize) -> Duration {
    let mut clients: Vec<App> = (0..n)
        .map(|i| App::uploader(vec![i as u8; 200], vec![!(i as u8); 300], 200))
        .collect();
    for c in clients.iter_mut() {
        c.open = Some(pair.a.station.open(base, SERVICE));
    }
    let mut servers: HashMap<ChannelId, App> = HashMap::new();
    let limit = base + Duration::from_secs(60);
    while pair.now < limit && clients.iter().any(|c| c.end.is_none()) {
        pair.step_quantum(QUANTUM, limit);
        // A: route events to the client that owns the open or channel.
        while let Some(ev) = pair.a.station.poll_event() {
            let owner = clients.iter_mut().find(|c| match &ev {
                StationEvent::Opened { open, .. } | StationEvent::OpenFailed { open, .. } => {
                    c.open == Some(*open)
                }
                StationEvent::LinkUp { .. }
                | StationEvent::LinkDown { .. }
                | StationEvent::PeerFeatures { .. } => false,
                StationEvent::Incoming { .. } => false,
                other => c.ch == Some(channel_of(other)),
            });
            if let Some(c) = owner {
                c.handle(&mut pair.a.station, ev);
            }
        }
        for c in clients.iter_mut() {
            c.pump(&mut pair.a.station);
        }
        while let Some(ev) = pair.b.station.poll_event() {
            match ev {
                StationEvent::Incoming { ch, .. } => {
                    // Which client this is shows in its first byte; the
                    // server answers once it has read it all.
                    let mut s = App::server(Vec::new(), Vec::new(), false, ExitStatus::Code(0));
                    s.handle(
                        &mut pair.b.station,
                        StationEvent::Incoming {
                            ch,
                            service: SERVICE.into(),
                            target: None,
                        },
                    );
                    servers.insert(ch, s);
                }
                StationEvent::LinkUp { .. }
                | StationEvent::LinkDown { .. }
                | StationEvent::PeerFeatures { .. } => {}
                other => {
                    let ch = channel_of(&other);
                    if let Some(s) = servers.get_mut(&ch) {
                        if s.stream.expect.is_empty() {
                            // The first byte names the client: i's upload is
                            // 200 × i, its reply 300 × !i.
                            if let StationEvent::Readable { .. } = other {
                                if let Some(first) = pair.b.station.read(ch, 1) {
                                    pair.b.station.consumed(ch, 1);
                                    s.stream.expect = vec![first[0]; 200];
                                    s.stream.got.push(first[0]);
                                    s.stream.consumed = 1;
                                    s.stream.out = vec![!first[0]; 300];
                                }
                            }
                        }
                        s.handle(&mut pair.b.station, other);
                    }
                }
            }
        }
        for s in servers.values_mut() {
            s.pump(&mut pair.b.station);
        }
    }
    let confirmed = clients
        .iter()
        .filter(|c| c.end == Some(End::Confirmed))
        .count();
    assert_eq!(
        confirmed,
        n,
        "{:?}",
        clients
            .iter()
            .find(|c| c.end != Some(End::Confirmed))
            .map(|c| &c.end)
    );
    pair.now - base
}

fn channel_of(ev: &StationEvent) -> ChannelId {
    match ev {
        StationEvent::Readable { ch }
        | StationEvent::ReadClosed { ch, .. }
        | StationEvent::Sent { ch, .. }
        | StationEvent::Closed { ch }
        | StationEvent::Reset { ch, .. }
        | StationEvent::Opened { ch, .. }
        | StationEvent::Incoming { ch, .. } => *ch,
        StationEvent::OpenFailed { .. }
        | StationEvent::LinkUp { .. }
        | StationEvent::PeerFeatures { .. }
        | StationEvent::LinkDown { .. } => {
            unreachable!("not a channel event")
        }
    }
}

/// A peer whose mux data does not decode makes this end restart the session
/// (both ends reset their channels), and the line works again afterwards.
#[test]
fn undecodable_mux_data_restarts_the_session() {
    let (mut pair, base) = clean_pair(11_520, 64);
    let limit = base + Duration::from_secs(30);
    let mut first = App::uploader(vec![7; 50_000], Vec::new(), 1000);
    first.open = Some(pair.a.station.open(base, SERVICE));
    let mut server = App::server(Vec::new(), vec![7; 50_000], false, ExitStatus::Code(0));
    let mut injected = false;
    while pair.now < limit && first.end.is_none() {
        pair.step_quantum(QUANTUM, limit);
        first.turn(&mut pair.a.station);
        server.turn(&mut pair.b.station);
        if !injected && first.stream.sent > 10_000 && pair.a.station.link_mut().can_send() {
            // Unknown record type 0xf: not a mux payload.
            assert!(pair
                .a
                .station
                .link_mut()
                .send(Bytes::from_static(&[0x0f, 0, 1, 2]))
                .is_ok());
            injected = true;
        }
    }
    assert!(injected);
    assert!(
        matches!(first.end, Some(End::Cut { .. })),
        "{:?}",
        first.end
    );
    assert_eq!(pair.b.station.stats().decode_restarts, 1);
    // The next connection works.
    let mut again = App::uploader(vec![9; 3000], vec![8; 100], 500);
    again.open = Some(pair.a.station.open(pair.now, SERVICE));
    let mut server = App::server(vec![8; 100], vec![9; 3000], false, ExitStatus::Code(0));
    let limit = pair.now + Duration::from_secs(30);
    while pair.now < limit && again.end.is_none() {
        pair.step_quantum(QUANTUM, limit);
        again.turn(&mut pair.a.station);
        server.turn(&mut pair.b.station);
    }
    assert_eq!(again.end, Some(End::Confirmed));
}

/// An open while no peer answers fails after `link_wait`, with a clear reason.
#[test]
fn an_open_without_a_peer_gives_up_after_link_wait() {
    let cfg = StationConfig::for_byte_rate(11_520, "sim");
    let wait = cfg.link_wait;
    let base = Instant::now();
    let mut st = Station::new(cfg, 5, base);
    let open = st.open(base, SERVICE);
    let mut now = base;
    let mut out = Vec::new();
    let failed = loop {
        out.clear();
        while st.poll_transmit(now, &mut out) > 0 {}
        if let Some(StationEvent::OpenFailed { open: o, error }) = st.poll_event() {
            break (o, error, now - base);
        }
        now = st.poll_timeout().expect("a deadline while an open waits");
        st.handle_timeout(now);
    };
    assert_eq!(failed.0, open);
    assert!(matches!(failed.1, OpenError::LinkDown(_)), "{:?}", failed.1);
    assert!(failed.2 >= wait && failed.2 < wait + Duration::from_millis(10));
}

/// Closing drains: an idle station closes at once; one with a live channel
/// resets it at the end of the grace period and then closes.
#[test]
fn close_resets_what_did_not_finish_in_the_grace_period() {
    let (mut pair, base) = clean_pair(11_520, 64);
    // Incompressible: it must still be on its way when the grace ends.
    let mut a = App::uploader(pattern_bytes(100_000, 5), Vec::new(), 1000);
    a.open = Some(pair.a.station.open(base, SERVICE));
    let mut b = App::server(
        Vec::new(),
        pattern_bytes(100_000, 5),
        false,
        ExitStatus::Code(0),
    );
    let limit = base + Duration::from_secs(60);
    while pair.now < base + Duration::from_secs(2) {
        pair.step_quantum(QUANTUM, limit);
        a.turn(&mut pair.a.station);
        b.turn(&mut pair.b.station);
    }
    let grace = Duration::from_millis(500);
    let closing_at = pair.now;
    pair.a.station.close(closing_at, grace);
    while pair.now < limit && !pair.a.station.is_closed() {
        pair.step_quantum(QUANTUM, limit);
        a.turn(&mut pair.a.station);
        b.turn(&mut pair.b.station);
    }
    assert!(pair.a.station.is_closed());
    assert!(pair.now - closing_at >= grace);
    assert!(
        matches!(a.end, Some(End::Cut { unconfirmed }) if unconfirmed > 0),
        "{:?}",
        a.end
    );
    // The peer hears of it: its channel is reset too, never closed.
    while pair.now < limit && b.end.is_none() {
        pair.step_quantum(QUANTUM, limit);
        b.turn(&mut pair.b.station);
    }
    assert!(matches!(b.end, Some(End::Cut { .. })), "{:?}", b.end);
    // Opens on a closing station fail at once.
    let open = pair.a.station.open(pair.now, SERVICE);
    assert_eq!(
        pair.a.station.poll_event(),
        Some(StationEvent::OpenFailed {
            open,
            error: OpenError::Closing
        })
    );
}

/// A hostile peer floods OPENs for a service this end does not offer while a
/// download from this end runs: this end's memory stays bounded, its
/// refusals do not crowd out the download, which completes intact. (The
/// flooding side here is a station whose link we write to behind its mux's
/// back; its mux answers the stray refusals with resets, which would crowd out
/// its own uploads, so the real data flows towards it.)
#[test]
fn a_hostile_peer_cannot_grow_memory_or_stop_other_channels() {
    let (mut pair, base) = clean_pair(92_160, 64);
    let mut a = App::uploader(pattern_bytes(100, 1), pattern_bytes(60_000, 2), 100);
    a.open = Some(pair.a.station.open(base, SERVICE));
    let mut b = App::server(
        pattern_bytes(60_000, 2),
        pattern_bytes(100, 1),
        false,
        ExitStatus::Code(0),
    );
    let limit = base + Duration::from_secs(60);
    let mut flood_id: u16 = 20_000;
    let mut opens_sent = 0u64;
    let mut peak_heap = 0;
    let mut last_flood = 0;
    while pair.now < limit && (a.end.is_none() || b.end.is_none()) {
        pair.step_quantum(QUANTUM, limit);
        a.turn(&mut pair.a.station);
        b.turn(&mut pair.b.station);
        // Every 10 ms a payload full of OPENs for "nope": about half the line.
        let tick = (pair.elapsed().as_millis() / 10) as u64;
        let link = pair.a.station.link_mut();
        if tick > last_flood && link.can_send() {
            last_flood = tick;
            let mut p = Vec::new();
            while p.len() + 13 <= link.max_payload() {
                // OPEN: [I=1, type 1] id, window u32, service s8.
                p.push(0x81);
                p.extend_from_slice(&flood_id.to_be_bytes());
                p.extend_from_slice(&4096u32.to_be_bytes());
                p.push(4);
                p.extend_from_slice(b"nope");
                flood_id = if flood_id == u16::MAX {
                    20_000
                } else {
                    flood_id + 1
                };
                opens_sent += 1;
            }
            assert!(link.send(Bytes::from(p)).is_ok());
        }
        peak_heap = peak_heap.max(pair.b.station.mux.heap_bytes());
    }
    assert_eq!(
        a.end,
        Some(End::Confirmed),
        "the real transfer must complete: A sent {} got {}, B got {}; B {:?} {:?} {:?}; A {:?}",
        a.stream.sent,
        a.stream.got.len(),
        b.stream.got.len(),
        pair.b.station.stats(),
        pair.b.station.mux_stats(),
        pair.b.station.link_stats(),
        pair.a.station.mux_stats(),
    );
    assert_eq!(b.end, Some(End::Confirmed));
    let st = pair.b.station.stats();
    // The flood lasts as long as the download, which takes less since
    // refusals may fill only half of each payload while data waits.
    assert!(opens_sent > 5_000, "{opens_sent}");
    assert!(st.unknown_service > 1000, "{st:?}");
    let window = pair.b.station.config().mux_config().window as usize;
    assert!(peak_heap < 64 * 1024 + 4 * window, "peak heap {peak_heap}");
}

fn pattern_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// A scripted hostile peer (records written into A's link behind its mux)
/// throws everything item 3 of the hardening issue names at B while a real
/// download from B runs: floods of OPENs for the offered service (beyond the
/// open rate), floods of 1-byte DATA records, DATA beyond the credit B gave,
/// CREDIT for bytes B never sent, EOFs twice, records for ids never opened.
/// B cuts exactly the offending channels (its application, which accepts the
/// hostile channels and never reads them, sees them reset), hands the opens
/// beyond the rate to its application no faster than the rate, its memory stays within its configured bound, and
/// the download completes intact.
#[test]
fn hostile_records_cut_only_their_channels_and_the_download_completes() {
    use crate::mux::wire::Record;
    use bytes::BytesMut;
    let of_channel = |ev: &StationEvent| match ev {
        StationEvent::OpenFailed { .. }
        | StationEvent::LinkUp { .. }
        | StationEvent::PeerFeatures { .. }
        | StationEvent::LinkDown { .. } => None,
        ev => Some(channel_of(ev)),
    };
    let (mut pair, base) = clean_pair(92_160, 64);
    // The flood below is sized for wire-v1 frames (600 bytes; large frames
    // would finish the download before it got going).
    let mut cfg_a = pair.a.cfg.clone();
    cfg_a.link.features = Features::NONE;
    pair.a.station = Station::new(cfg_a.clone(), 11, base);
    pair.a.cfg = cfg_a;
    pair.a.station.listen(SERVICE);
    // B grants small windows, so a single payload can overrun one.
    let mut cfg_b = pair.b.cfg.clone();
    cfg_b.link.features = Features::NONE;
    cfg_b.mux.window = 256;
    pair.b.station = Station::new(cfg_b.clone(), 22, base);
    pair.b.cfg = cfg_b.clone();
    pair.b.station.listen(SERVICE);
    let mut a = App::uploader(pattern_bytes(100, 1), pattern_bytes(60_000, 2), 100);
    a.open = Some(pair.a.station.open(base, SERVICE));
    let mut b = App::server(
        pattern_bytes(60_000, 2),
        pattern_bytes(100, 1),
        false,
        ExitStatus::Code(0),
    );
    let limit = base + Duration::from_secs(60);
    let mut next_id: u16 = 30_000;
    let mut last_tick = 0;
    let mut peak_heap = 0;
    let mut hostile: HashSet<ChannelId> = HashSet::new();
    let mut hostile_accepted = 0u64;
    let mut hostile_reset = 0u64;
    let mut payloads = 0u64;
    while pair.now < limit && (a.end.is_none() || b.end.is_none()) {
        pair.step_quantum(QUANTUM, limit);
        a.turn(&mut pair.a.station);
        // B's application: the real channel goes to `b`; hostile channels
        // are accepted and never read.
        let st = &mut pair.b.station;
        while let Some(ev) = st.poll_event() {
            match ev {
                StationEvent::Incoming { ch, .. } if b.ch.is_some() => {
                    st.accept(ch);
                    hostile.insert(ch);
                    hostile_accepted += 1;
                }
                StationEvent::Reset { ch, .. } if hostile.remove(&ch) => hostile_reset += 1,
                ev if of_channel(&ev).is_some_and(|c| hostile.contains(&c)) => {}
                ev => b.handle(st, ev),
            }
        }
        b.pump(st);
        let tick = (pair.elapsed().as_millis() / 10) as u64;
        let link = pair.a.station.link_mut();
        if b.ch.is_none() || tick <= last_tick || !link.can_send() {
            continue;
        }
        last_tick = tick;
        let max = link.max_payload();
        let mut p = BytesMut::new();
        let recent = |k: u16| next_id.wrapping_sub(k).max(30_000);
        match tick % 3 {
            0 => {
                // As many OPENs for the offered service as fit.
                while p.len() + 12 <= max {
                    Record::Open {
                        id: next_id,
                        window: 4096,
                        service: SERVICE,
                    }
                    .encode(&mut p);
                    next_id = next_id.wrapping_add(1).max(30_000);
                }
            }
            1 => {
                // DATA beyond B's 256-byte window, then 1-byte records.
                Record::Data {
                    initiator: true,
                    id: recent(1),
                    data: &[7; 300],
                }
                .encode(&mut p);
                let mut k = 2;
                while p.len() + 6 <= max {
                    Record::Data {
                        initiator: true,
                        id: recent(k % 30 + 2),
                        data: &[1],
                    }
                    .encode(&mut p);
                    k += 1;
                }
            }
            _ => {
                for k in 1..20 {
                    Record::Credit {
                        initiator: true,
                        id: recent(k),
                        delta: 100_000,
                    }
                    .encode(&mut p);
                    Record::Eof {
                        initiator: true,
                        id: recent(k + 20),
                    }
                    .encode(&mut p);
                }
                Record::Close {
                    initiator: true,
                    id: 29_000,
                }
                .encode(&mut p);
            }
        }
        if p.len() > max {
            continue; // the link starts with small frames
        }
        payloads += 1;
        assert!(link.send(p.freeze()).is_ok());
        peak_heap = peak_heap.max(pair.b.station.mux_heap_bytes());
    }
    assert_eq!(
        b.end,
        Some(End::Confirmed),
        "the real download must complete: B {:?} {:?}",
        pair.b.station.stats(),
        pair.b.station.mux_stats(),
    );
    assert_eq!(a.end, Some(End::Confirmed));
    assert_eq!(a.stream.got, pattern_bytes(60_000, 2));
    let st = pair.b.station.stats();
    assert!(payloads > 100, "{payloads}");
    assert!(st.opens_deferred > 0, "{st:?}");
    // What the flood made B's application dial: no more than the bucket
    // allows over the run (the real channel counts too).
    let secs = (pair.now - base).as_secs_f64();
    let allowed = f64::from(cfg_b.open_burst) + f64::from(cfg_b.open_rate) * secs;
    assert!(
        (hostile_accepted + 1) as f64 <= allowed,
        "{hostile_accepted} dials in {secs:.1} s"
    );
    assert!(hostile_accepted > 50, "{hostile_accepted}");
    assert!(st.peer_violations > 50, "{st:?}");
    assert!(hostile_reset > 50, "{hostile_reset}");
    // The only buffers B holds: the hostile channels' receive windows (all
    // 64 channels at most) and the real channel's send buffer.
    // and the codec state shared by all channels.
    let bound = 64 * cfg_b.mux_config().window as usize
        + cfg_b.mux.send_buffer as usize
        + crate::mux::compress::ENGINE_BOUND;
    assert!(peak_heap <= bound, "peak heap {peak_heap} > {bound}");
}

// ----- preemption (suspend/resume) and feature negotiation ------------------

/// One direction of one channel in [`mixed_run`]: what is written, what the
/// peer must receive.
#[derive(Debug, Default)]
struct Flow {
    out: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    expect: Vec<u8>,
}

impl Flow {
    fn drain(&mut self, st: &mut Station, ch: ChannelId, what: &str) {
        while let Some(b) = st.read(ch, 4096) {
            let at = self.got.len();
            assert!(
                at + b.len() <= self.expect.len() && self.expect[at..at + b.len()] == b[..],
                "{what}: wrong, duplicate or extra bytes at offset {at}"
            );
            self.got.extend_from_slice(&b);
            st.consumed(ch, b.len());
        }
    }

    fn done(&self) -> bool {
        self.got.len() == self.expect.len()
    }
}

/// A's bulk upload and B's bulk reply on one channel, while A types a byte every
/// 25 ms on a second channel and B echoes it: the load the suspend/resume path
/// is for. `features` are what A and B offer. Returns both ends' link counters
/// once every byte arrived both ways (each byte is checked on arrival), and
/// each keystroke's round trip (typed at A → its echo back at A, simulated time).
fn mixed_run(
    seed: u64,
    impairment: ImpairmentKind,
    features: (Features, Features),
) -> (LinkStats, LinkStats, Vec<Duration>) {
    mixed_run_with(seed, impairment, features, |_| {})
}

/// [`mixed_run`] with both ends' settings changed by `tweak`.
fn mixed_run_with(
    seed: u64,
    impairment: ImpairmentKind,
    features: (Features, Features),
    tweak: fn(&mut StationConfig),
) -> (LinkStats, LinkStats, Vec<Duration>) {
    let impairment = &impairment;
    let mut rng = Rng::new(seed ^ 0x9e37_0013);
    let byte_rate = if rng.chance(0.5) { 11_520 } else { 92_160 };
    let base = Instant::now();
    let mut cfg_a = StationConfig::for_byte_rate(byte_rate, "sim-a");
    cfg_a.link.features = features.0;
    tweak(&mut cfg_a);
    let mut cfg_b = StationConfig::for_byte_rate(byte_rate, "sim-b");
    cfg_b.link.features = features.1;
    tweak(&mut cfg_b);
    let (ea, eb) = (rng.next_u32() | 1, rng.next_u32() | 1);
    let mut pair = StationPair::new(
        cfg_a,
        impairment.line(byte_rate, seed),
        impairment.line(byte_rate, seed ^ 0xffff),
        (ea, eb),
        base,
    );
    pair.b.cfg = cfg_b.clone();
    pair.b.station = Station::new(cfg_b, eb, base);
    pair.b.station.listen(SERVICE);
    let bulk_len = byte_rate as usize * (3 + rng.below(3) as usize);
    let keys = 40 + rng.below(80) as usize;
    let up = pattern_bytes(bulk_len, seed ^ 1);
    let down = pattern_bytes(bulk_len / 4, seed ^ 2);
    let typed = pattern_bytes(keys, seed ^ 3);
    // Flows: [A bulk, B bulk, A keys, B echo].
    let mk = |out: &Vec<u8>| Flow {
        out: out.clone(),
        expect: out.clone(),
        ..Flow::default()
    };
    let (mut a_bulk, mut b_bulk, mut a_keys, mut b_echo) =
        (mk(&up), mk(&down), mk(&typed), mk(&typed));
    let open_bulk = pair.a.station.open(base, SERVICE);
    let open_keys = pair.a.station.open(base, SERVICE);
    let (mut a_ch, mut b_ch): (Vec<(OpenId, ChannelId)>, Vec<ChannelId>) = (vec![], vec![]);
    let mut next_key = base + Duration::from_millis(500);
    let (mut typed_at, mut round_trips) = (Vec::new(), Vec::new());
    let limit = base + Duration::from_secs(300);
    while pair.now < limit {
        pair.step_quantum(QUANTUM, limit);
        let now = pair.now;
        while let Some(ev) = pair.a.station.poll_event() {
            match ev {
                StationEvent::Opened { open, ch } => a_ch.push((open, ch)),
                StationEvent::Readable { ch } => {
                    if a_ch.iter().any(|&(o, c)| o == open_bulk && c == ch) {
                        b_bulk.drain(&mut pair.a.station, ch, "B bulk");
                    } else {
                        let before = b_echo.got.len();
                        b_echo.drain(&mut pair.a.station, ch, "B echo");
                        for t in &typed_at[before..b_echo.got.len()] {
                            round_trips.push(now - *t);
                        }
                    }
                }
                StationEvent::Reset { reason, .. } => panic!("seed {seed}: A: {reason}"),
                StationEvent::LinkDown { reason } => panic!("seed {seed}: A: {reason}"),
                StationEvent::OpenFailed { error, .. } => panic!("seed {seed}: A: {error}"),
                _ => {}
            }
        }
        while let Some(ev) = pair.b.station.poll_event() {
            match ev {
                StationEvent::Incoming { ch, .. } => {
                    pair.b.station.accept(ch);
                    b_ch.push(ch);
                }
                StationEvent::Readable { ch } => {
                    if b_ch.first() == Some(&ch) {
                        a_bulk.drain(&mut pair.b.station, ch, "A bulk");
                    } else {
                        let before = a_keys.got.len();
                        a_keys.drain(&mut pair.b.station, ch, "A keys");
                        // The echo: B sends back what it got.
                        b_echo.out.truncate(a_keys.got.len());
                        let _ = before;
                    }
                }
                StationEvent::Reset { reason, .. } => panic!("seed {seed}: B: {reason}"),
                StationEvent::LinkDown { reason } => panic!("seed {seed}: B: {reason}"),
                _ => {}
            }
        }
        let find = |open| a_ch.iter().find(|&&(o, _)| o == open).map(|&(_, c)| c);
        if let Some(ch) = find(open_bulk) {
            let st = &mut pair.a.station;
            while a_bulk.sent < a_bulk.out.len() && st.write_room(ch) > 0 {
                let n = (a_bulk.out.len() - a_bulk.sent).min(3000);
                a_bulk.sent +=
                    st.write(ch, Bytes::copy_from_slice(&a_bulk.out[a_bulk.sent..][..n]));
            }
        }
        if let Some(ch) = find(open_keys) {
            if now >= next_key
                && a_keys.sent < a_keys.out.len()
                && pair.a.station.write_room(ch) > 0
            {
                let k = a_keys.sent;
                a_keys.sent += pair
                    .a
                    .station
                    .write(ch, Bytes::copy_from_slice(&a_keys.out[k..k + 1]));
                typed_at.push(now);
                next_key = now + Duration::from_millis(25);
            }
        }
        if let Some(&ch) = b_ch.first() {
            let st = &mut pair.b.station;
            while b_bulk.sent < b_bulk.out.len() && st.write_room(ch) > 0 {
                let n = (b_bulk.out.len() - b_bulk.sent).min(3000);
                b_bulk.sent +=
                    st.write(ch, Bytes::copy_from_slice(&b_bulk.out[b_bulk.sent..][..n]));
            }
        }
        if let Some(&ch) = b_ch.get(1) {
            let upto = a_keys.got.len();
            if b_echo.sent < upto {
                let n = upto - b_echo.sent;
                b_echo.sent += pair
                    .b
                    .station
                    .write(ch, Bytes::copy_from_slice(&typed[b_echo.sent..][..n]));
            }
        }
        if a_bulk.done() && b_bulk.done() && a_keys.done() && b_echo.done() {
            return (
                pair.a.station.link_stats(),
                pair.b.station.link_stats(),
                round_trips,
            );
        }
    }
    panic!(
        "seed {seed} {impairment:?}: not done in 300 s: A bulk {}/{}, B bulk {}/{}, keys {}/{}, echo {}/{}; A {:?}; B {:?}",
        a_bulk.got.len(),
        a_bulk.expect.len(),
        b_bulk.got.len(),
        b_bulk.expect.len(),
        a_keys.got.len(),
        a_keys.expect.len(),
        b_echo.got.len(),
        b_echo.expect.len(),
        pair.a.station.link_stats(),
        pair.b.station.link_stats()
    );
}

fn mixed_seeds() -> u64 {
    if cfg!(debug_assertions) {
        12
    } else {
        150
    }
}

#[test]
fn preemption_keeps_every_byte_on_clean_lines_and_is_used() {
    let both = (Features::DEFAULT, Features::DEFAULT);
    let (mut suspended, mut resumed, mut overtaken) = (0, 0, 0);
    let mut trips = Vec::new();
    for seed in 0..mixed_seeds() {
        let (a, b, t) = mixed_run(seed, ImpairmentKind::Clean, both);
        suspended += a.frames_suspended;
        resumed += b.frames_resumed;
        overtaken += a.frames_overtaken;
        trips.extend(t);
        assert_eq!(b.resume_mismatches, 0, "seed {seed}: clean line, {b:?}");
        assert_eq!(a.frames_retransmitted, 0, "seed {seed}: clean line, {a:?}");
    }
    // On a clean line every suspended frame is put back together by the peer,
    // after the keystroke that overtook it.
    assert!(suspended > 10 * mixed_seeds(), "{suspended}");
    assert_eq!(suspended, resumed);
    assert!(
        overtaken * 10 >= suspended * 9,
        "{overtaken} of {suspended}"
    );
    // What the overtaking buys, in simulated time (deterministic): a
    // keystroke's round trip no longer waits for the bulk frames in progress
    // each way (up to 172 ms each at 115200 baud), only for the device queue.
    trips.sort();
    let p99 = trips[trips.len() * 99 / 100];
    assert!(p99 <= Duration::from_millis(25), "p99 round trip {p99:?}");
}

/// Without RESUME, keystrokes wait behind whole frames: the reference the
/// test above improves on (and a check that the round trips are measured).
#[test]
fn without_resume_keystrokes_wait_for_frames_in_progress() {
    let plain = (Features::NONE, Features::NONE);
    let mut trips = Vec::new();
    for seed in 0..mixed_seeds() / 3 {
        trips.extend(mixed_run(seed, ImpairmentKind::Clean, plain).2);
    }
    trips.sort();
    let p99 = trips[trips.len() * 99 / 100];
    assert!(p99 > Duration::from_millis(25), "p99 round trip {p99:?}");
}

#[test]
fn preemption_keeps_every_byte_under_noise() {
    // Without FEC: coded frames are never cut (they have no COBS cut points),
    // and FEC would code most frames on these lines.
    let no_fec = Features(Features::DEFAULT.0 & !Features::FEC.0);
    let both = (no_fec, no_fec);
    for (i, imp) in [
        ImpairmentKind::Ber(1e-4),
        ImpairmentKind::DropInsert(1e-4),
        ImpairmentKind::Bursts(0.5, 20),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut suspended, mut resumed) = (0, 0);
        for seed in 0..mixed_seeds() {
            let (a, b, _) = mixed_run(seed * 3 + i as u64, imp.clone(), both);
            suspended += a.frames_suspended;
            resumed += b.frames_resumed;
        }
        assert!(
            suspended > 0 && resumed > 0,
            "{imp:?}: {suspended} {resumed}"
        );
    }
}

/// A keystroke cannot cut into a coded frame, so on a noisy line (where FEC
/// codes most frames) coded frames are kept short while other channels share
/// the line: keystrokes typed during bulk transfers both ways come back
/// sooner than with frames of the full adaptive size, every byte intact
/// (checked by the run). Virtual time: the comparison is exact.
#[test]
fn coded_frames_stay_short_while_someone_types() {
    let (mut short, mut full) = (Vec::new(), Vec::new());
    let mut coded = 0;
    for seed in 0..mixed_seeds().min(8) {
        let imp = ImpairmentKind::Ber(1e-4);
        let both = (Features::DEFAULT, Features::DEFAULT);
        let (a, _, rt) = mixed_run(seed, imp.clone(), both);
        coded += a.fec_frames_sent;
        short.extend(rt);
        let (_, _, rt) = mixed_run_with(seed, imp, both, |c| {
            c.coded_frame_time = Duration::from_secs(10)
        });
        full.extend(rt);
    }
    assert!(coded > 0, "the noisy line coded no frames");
    let pct = |v: &mut Vec<Duration>, p: usize| {
        v.sort();
        v[v.len() * p / 100]
    };
    for p in [50, 90, 99] {
        let (s, f) = (pct(&mut short, p), pct(&mut full, p));
        eprintln!("p{p} round trip {s:?} with short coded frames, {f:?} without");
    }
    let (s, f) = (pct(&mut short, 50), pct(&mut full, 50));
    assert!(
        s < f,
        "median round trip {s:?} with short coded frames, {f:?} without"
    );
    // The long waits are the ones behind a whole large coded frame.
    let (s, f) = (pct(&mut short, 99), pct(&mut full, 99));
    assert!(
        s * 3 / 2 < f,
        "p99 round trip {s:?} with short coded frames, {f:?} without"
    );
}

/// Issue 22: new connections opened while bulk data runs both ways, on a
/// lossy line: their OPEN (at A) and OPEN_OK (at B) overtake the bulk frames
/// in progress, every connection opens, and every bulk byte arrives intact
/// and in order (checked on arrival).
#[test]
fn opens_overtake_bulk_frames_under_loss() {
    let mut overtaking = (0, 0);
    let mut opened = 0;
    let seeds = mixed_seeds().min(12);
    for seed in 0..seeds {
        let imp = if seed % 2 == 0 {
            ImpairmentKind::Ber(1e-5)
        } else {
            ImpairmentKind::DropInsert(1e-4)
        };
        let byte_rate = 11_520;
        let base = Instant::now();
        let mut pair = StationPair::new(
            StationConfig::for_byte_rate(byte_rate, "sim-a"),
            imp.line(byte_rate, seed),
            imp.line(byte_rate, seed ^ 0xffff),
            (seed as u32 * 2 + 1, seed as u32 * 2 + 3),
            base,
        );
        pair.b.station.listen(SERVICE);
        let up = pattern_bytes(byte_rate as usize * 3, seed ^ 1);
        let down = pattern_bytes(byte_rate as usize * 3, seed ^ 2);
        let mk = |out: &Vec<u8>| Flow {
            out: out.clone(),
            expect: out.clone(),
            ..Flow::default()
        };
        let (mut a_bulk, mut b_bulk) = (mk(&up), mk(&down));
        let open_bulk = pair.a.station.open(base, SERVICE);
        let (mut a_ch, mut b_ch) = (None, None);
        let (mut logins, mut opened_here) = (Vec::new(), 0);
        let mut next_login = base + Duration::from_millis(1500);
        let limit = base + Duration::from_secs(120);
        while pair.now < limit {
            pair.step_quantum(QUANTUM, limit);
            let now = pair.now;
            while let Some(ev) = pair.a.station.poll_event() {
                match ev {
                    StationEvent::Opened { open, ch } if open == open_bulk => a_ch = Some(ch),
                    StationEvent::Opened { .. } => opened_here += 1,
                    StationEvent::Readable { ch } if Some(ch) == a_ch => {
                        b_bulk.drain(&mut pair.a.station, ch, "B bulk")
                    }
                    StationEvent::Reset { reason, .. } => panic!("seed {seed}: A: {reason}"),
                    StationEvent::OpenFailed { error, .. } => panic!("seed {seed}: A: {error}"),
                    _ => {}
                }
            }
            while let Some(ev) = pair.b.station.poll_event() {
                match ev {
                    StationEvent::Incoming { ch, .. } => {
                        pair.b.station.accept(ch);
                        b_ch.get_or_insert(ch);
                    }
                    StationEvent::Readable { ch } if Some(ch) == b_ch => {
                        a_bulk.drain(&mut pair.b.station, ch, "A bulk")
                    }
                    StationEvent::Reset { reason, .. } => panic!("seed {seed}: B: {reason}"),
                    _ => {}
                }
            }
            for (flow, ch, st) in [
                (&mut a_bulk, a_ch, &mut pair.a.station),
                (&mut b_bulk, b_ch, &mut pair.b.station),
            ] {
                if let Some(ch) = ch {
                    while flow.sent < flow.out.len() && st.write_room(ch) > 0 {
                        let n = (flow.out.len() - flow.sent).min(3000);
                        flow.sent +=
                            st.write(ch, Bytes::copy_from_slice(&flow.out[flow.sent..][..n]));
                    }
                }
            }
            if now >= next_login && logins.len() < 4 && !a_bulk.done() {
                logins.push(pair.a.station.open(now, SERVICE));
                next_login = now + Duration::from_millis(400);
            }
            if a_bulk.done() && b_bulk.done() && opened_here == 4 {
                break;
            }
        }
        assert!(a_bulk.done() && b_bulk.done(), "seed {seed}: bulk not done");
        assert_eq!(opened_here, 4, "seed {seed}: every login opened");
        opened += opened_here;
        overtaking.0 += pair.a.station.mux_stats().control_overtaking;
        overtaking.1 += pair.b.station.mux_stats().control_overtaking;
    }
    assert!(opened >= seeds as usize * 4, "{opened} opened");
    // Opens went ahead of bulk frames, both ways (deterministic: 12 of 48
    // each way since main offers FEC, more before).
    assert!(overtaking.0 >= seeds, "OPENs overtaking: {overtaking:?}");
    assert!(overtaking.1 >= seeds, "OPEN_OKs overtaking: {overtaking:?}");
}

#[test]
fn v1_peer_and_new_peer_carry_data_both_ways() {
    for seed in 0..mixed_seeds() {
        for (fa, fb) in [
            (Features::DEFAULT, Features::NONE),
            (Features::NONE, Features::DEFAULT),
        ] {
            let imp = if seed % 2 == 0 {
                ImpairmentKind::Clean
            } else {
                ImpairmentKind::Ber(1e-4)
            };
            let (a, b, _) = mixed_run(seed, imp, (fa, fb));
            for s in [&a, &b] {
                assert_eq!(s.frames_suspended, 0, "seed {seed}: v1 peer, {s:?}");
                assert_eq!(s.frames_resumed, 0, "seed {seed}: v1 peer, {s:?}");
                assert!(s.max_payload <= 600, "seed {seed}: v1 peer, {s:?}");
            }
        }
    }
}

#[test]
fn features_are_negotiated_and_reported() {
    let base = Instant::now();
    // B: a peer with every feature, one without large frames, and one built
    // before CAPS (no link features, no compression: wire v1). Compression
    // comes from each end's mux setting, as in production.
    // Both codecs: a peer with compression on offers deflate and LZ4.
    let lz4 = Features::COMPRESS_LZ4.union(Features::COMPRESS_DEFLATE);
    for (fa, fb, b_compress, want) in [
        (
            Features::DEFAULT,
            Features::DEFAULT,
            true,
            Features::DEFAULT.union(lz4),
        ),
        (
            Features::DEFAULT,
            Features::RESUME,
            true,
            Features::RESUME.union(lz4),
        ),
        (Features::DEFAULT, Features::RESUME, false, Features::RESUME),
        (Features::DEFAULT, Features::NONE, false, Features::NONE),
    ] {
        let mut cfg_a = StationConfig::for_byte_rate(11_520, "a");
        cfg_a.link.features = fa;
        let mut cfg_b = StationConfig::for_byte_rate(11_520, "b");
        cfg_b.link.features = fb;
        cfg_b.compress = if b_compress {
            Compression::On
        } else {
            Compression::Off
        };
        let mut pair = StationPair::new(
            cfg_a,
            ImpairmentKind::Clean.line(11_520, 1),
            ImpairmentKind::Clean.line(11_520, 2),
            (11, 22),
            base,
        );
        pair.b.station = Station::new(cfg_b, 22, base);
        let lim = base + Duration::from_secs(3);
        while pair.now < lim {
            pair.step_quantum(QUANTUM, lim);
        }
        let mut seen = None;
        while let Some(ev) = pair.a.station.poll_event() {
            if let StationEvent::PeerFeatures { features } = ev {
                assert!(seen.is_none(), "reported once per session");
                seen = Some(features);
            }
        }
        assert_eq!(pair.a.station.features(), want);
        assert_eq!(pair.b.station.features(), want);
        // A v1 peer sends no CAPS, so nothing is reported against it.
        assert_eq!(seen, (!fb.is_empty()).then_some(want));
    }
}

/// A peer that floods OPENs for an offered service at line rate (as a
/// compromised or buggy peer could) makes this end dial no faster than
/// `open_rate` (plus the burst) in any second, holds it to bounded memory,
/// and connections opened meanwhile, in either direction, still carry their
/// bytes intact. B's application answers each flooded open as a failed dial
/// would (refused), so the flood keeps the channel table churning.
#[test]
fn an_open_flood_is_paced_and_other_connections_still_work() {
    use crate::mux::wire::Record;
    use bytes::BytesMut;
    const FLOOD: &str = "flood";
    let mut cfg = StationConfig::for_byte_rate(92_160, "sim");
    cfg.mux.max_channels = 64;
    cfg.open_rate = 100;
    cfg.open_burst = 20;
    let (mut pair, base) = pair_with(cfg.clone());
    pair.b.station.listen(FLOOD);
    let mut a_up = App::uploader(pattern_bytes(20_000, 1), pattern_bytes(5_000, 2), 700);
    let mut b_srv = App::server(
        pattern_bytes(5_000, 2),
        pattern_bytes(20_000, 1),
        false,
        ExitStatus::Code(0),
    );
    let mut b_up = App::uploader(pattern_bytes(20_000, 3), pattern_bytes(5_000, 4), 700);
    let mut a_srv = App::server(
        pattern_bytes(5_000, 4),
        pattern_bytes(20_000, 3),
        false,
        ExitStatus::Code(0),
    );
    let start_legit = base + Duration::from_secs(2);
    let limit = base + Duration::from_secs(60);
    let mut next_id: u16 = 30_000;
    let mut flooded = 0u64;
    // Flooded opens B's application saw, per whole second of the run.
    let mut dials: Vec<u32> = vec![0; 61];
    let mut peak_heap = 0;
    let mut last_tick = 0;
    let done = |a: &App, b: &App| a.end.is_some() && b.end.is_some();
    while pair.now < limit && !(done(&a_up, &b_srv) && done(&b_up, &a_srv)) {
        pair.step_quantum(QUANTUM, limit);
        if pair.now >= start_legit && a_up.open.is_none() {
            a_up.open = Some(pair.a.station.open(pair.now, SERVICE));
            b_up.open = Some(pair.b.station.open(pair.now, SERVICE));
        }
        let sec = (pair.now - base).as_secs() as usize;
        let st = &mut pair.a.station;
        while let Some(ev) = st.poll_event() {
            match ev {
                StationEvent::Incoming { .. } => a_srv.handle(st, ev),
                StationEvent::Opened { .. } | StationEvent::OpenFailed { .. } => {
                    a_up.handle(st, ev)
                }
                StationEvent::LinkUp { .. }
                | StationEvent::LinkDown { .. }
                | StationEvent::PeerFeatures { .. } => {}
                ev if a_up.ch == Some(channel_of(&ev)) => a_up.handle(st, ev),
                ev => a_srv.handle(st, ev),
            }
        }
        a_up.pump(st);
        a_srv.pump(st);
        let st = &mut pair.b.station;
        while let Some(ev) = st.poll_event() {
            match ev {
                StationEvent::Incoming { ch, service, .. } if service == FLOOD => {
                    dials[sec] += 1;
                    st.refuse(ch, RefuseReason::ConnectionRefused, "");
                }
                StationEvent::Incoming { .. } => b_srv.handle(st, ev),
                StationEvent::Opened { .. } | StationEvent::OpenFailed { .. } => {
                    b_up.handle(st, ev)
                }
                StationEvent::LinkUp { .. }
                | StationEvent::LinkDown { .. }
                | StationEvent::PeerFeatures { .. } => {}
                ev if b_up.ch == Some(channel_of(&ev)) => b_up.handle(st, ev),
                ev => b_srv.handle(st, ev),
            }
        }
        b_up.pump(st);
        b_srv.pump(st);
        peak_heap = peak_heap.max(pair.b.station.mux_heap_bytes());
        // The flood: every 10 ms, as many OPENs as fit in a payload, written
        // behind A's mux.
        let tick = (pair.elapsed().as_millis() / 10) as u64;
        let link = pair.a.station.link_mut();
        if tick <= last_tick || !link.can_send() {
            continue;
        }
        last_tick = tick;
        let max = link.max_payload();
        let mut p = BytesMut::new();
        while p.len() + 16 <= max {
            Record::Open {
                id: next_id,
                window: 4096,
                service: FLOOD,
            }
            .encode(&mut p);
            next_id = next_id.wrapping_add(1).max(30_000);
            flooded += 1;
        }
        assert!(link.send(p.freeze()).is_ok());
    }
    for (app, what) in [
        (&a_up, "A's upload"),
        (&b_srv, "B's server"),
        (&b_up, "B's upload"),
        (&a_srv, "A's server"),
    ] {
        assert_eq!(app.end, Some(End::Confirmed), "{what}");
    }
    assert_eq!(a_up.stream.got, pattern_bytes(5_000, 2));
    assert_eq!(a_srv.stream.got, pattern_bytes(20_000, 3));
    let secs = (pair.now - base).as_secs() as usize;
    assert!(secs >= 3, "the legitimate transfers ran during the flood");
    let total: u32 = dials.iter().sum();
    assert!(
        flooded > 10 * u64::from(total),
        "{flooded} sent, {total} dialled"
    );
    let worst = dials[..secs].iter().max().copied().unwrap_or(0);
    assert!(
        worst <= cfg.open_rate + cfg.open_burst,
        "{worst} dials in one second: {dials:?}"
    );
    // The flood kept B's application busy at the rate the whole time.
    assert!(
        dials[1..secs].iter().all(|&d| d >= cfg.open_rate / 2),
        "{dials:?}"
    );
    let bound = 64 * cfg.mux.window as usize + 2 * cfg.mux.send_buffer as usize;
    assert!(peak_heap <= bound, "peak heap {peak_heap} > {bound}");
}

/// Text from the peer reaches logs and stderr only sanitised (issue 19, item
/// 3): a REFUSE detail with a line break and a bidi override comes out of
/// the failed open's text (what is logged, and printed by a one-shot) with
/// neither; an OPEN_TO whose host has them is refused by the mux before the
/// application (and its logs) ever sees the host.
#[test]
fn peer_text_reaches_logs_without_line_breaks_or_bidi_overrides() {
    const FORGED: &str = "no\nINFO sfs: forged line\r\u{202e}txt.exe\u{2028}";
    let (mut pair, base) = clean_pair(11_520, 64);
    let refused = pair.a.station.open(base, SERVICE);
    let bad_host = pair.a.station.open_to(
        base,
        SERVICE,
        Some(Target {
            host: "h\n\u{202e}x".into(),
            port: 80,
        }),
    );
    let mut failed: HashMap<OpenId, OpenError> = HashMap::new();
    let mut incoming = Vec::new();
    let limit = base + Duration::from_secs(10);
    while pair.now < limit && failed.len() < 2 {
        pair.step_quantum(QUANTUM, limit);
        while let Some(ev) = pair.b.station.poll_event() {
            if let StationEvent::Incoming { ch, target, .. } = ev {
                incoming.push(target.clone());
                pair.b.station.refuse(ch, RefuseReason::Other, FORGED);
            }
        }
        while let Some(ev) = pair.a.station.poll_event() {
            if let StationEvent::OpenFailed { open, error } = ev {
                failed.insert(open, error);
            }
        }
    }
    // Only the plain open reached B's application.
    assert_eq!(incoming, vec![None]);
    let unsafe_chars = ['\n', '\r', '\u{202e}', '\u{2028}'];
    let text = failed[&refused].to_string();
    assert!(
        matches!(failed[&refused], OpenError::Refused { .. }),
        "{text}"
    );
    assert!(!text.contains(unsafe_chars), "{text:?}");
    assert!(text.contains("forged line"), "{text:?}");
    let text = failed[&bad_host].to_string();
    assert!(
        matches!(
            &failed[&bad_host],
            OpenError::Refused { reason: RefuseReason::Other, detail } if detail == "invalid host name"
        ),
        "{text}"
    );
    assert!(pair.b.station.mux_stats().protocol_errors >= 1);
}
