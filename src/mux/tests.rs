//! Unit tests of the multiplexer state machine: two `Mux`es wired by hand.

use super::wire::{decode, Record};
use super::*;
use proptest::prelude::*;

fn cfg() -> MuxConfig {
    MuxConfig {
        window: 2048,
        send_buffer: 4096,
        max_channels: 8,
        interactive_bytes: 128,
        sparse_bytes: 8192,
        compress: true,
        compress_strength: compress::Strength::for_byte_rate(11_520),
    }
}

/// Move one payload from `from` to `to`; returns its records' debug form.
fn xfer(from: &mut Mux, to: &mut Mux, max: usize) -> Option<Bytes> {
    let p = from.poll_payload(max)?;
    to.handle_payload(&p).expect("valid payload");
    Some(p)
}

/// Exchange payloads until both sides are quiet.
fn pump(a: &mut Mux, b: &mut Mux) {
    for _ in 0..10_000 {
        let x = xfer(a, b, 300).is_some();
        let y = xfer(b, a, 300).is_some();
        a.check_invariants();
        b.check_invariants();
        if !x && !y {
            return;
        }
    }
    panic!("pump did not settle");
}

fn events(m: &mut Mux) -> Vec<MuxEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn read_all(m: &mut Mux, ch: ChannelId) -> Vec<u8> {
    let mut v = Vec::new();
    while let Some(b) = m.read(ch, 1000) {
        v.extend_from_slice(&b);
    }
    m.consumed(ch, v.len());
    v
}

/// Open from `a`, accept at `b`; returns (a's handle, b's handle).
fn open_pair(a: &mut Mux, b: &mut Mux, service: &str) -> (ChannelId, ChannelId) {
    let ca = a.open(service).unwrap();
    pump(a, b);
    let cb = match events(b).as_slice() {
        [MuxEvent::Incoming { ch, service: s, .. }] => {
            assert_eq!(s, service);
            *ch
        }
        e => panic!("expected Incoming, got {e:?}"),
    };
    b.accept(cb);
    pump(a, b);
    assert_eq!(events(a), vec![MuxEvent::Accepted { ch: ca }]);
    (ca, cb)
}

fn pair() -> (Mux, Mux) {
    (Mux::new(cfg()), Mux::new(cfg()))
}

fn payload(recs: &[Record<'_>]) -> Vec<u8> {
    let mut v = Vec::new();
    for r in recs {
        r.encode(&mut v);
    }
    v
}

#[test]
fn config_defaults_follow_line_rate() {
    let c = MuxConfig::for_byte_rate(11_520);
    assert_eq!(c.window, 5760);
    assert_eq!(c.max_channels, 256, "serves a browser");
    assert_eq!(MuxConfig::for_byte_rate(100).window, 2048);
    assert_eq!(MuxConfig::for_byte_rate(12_000_000).window, 65536);
    assert!(c.validate().is_ok());
    assert!(MuxConfig {
        max_channels: 0,
        ..c.clone()
    }
    .validate()
    .is_err());
    assert!(MuxConfig { window: 1, ..c }.validate().is_err());
}

#[test]
fn channel_id_display_and_parts() {
    let h = ChannelId::new(true, 513, 9);
    assert_eq!(h.wire_id(), 513);
    assert!(h.opened_by_peer());
    assert_eq!(h.generation(), 9);
    assert_eq!(h.to_string(), "R513.9");
    assert_eq!(ChannelId::new(false, 0, 1).to_string(), "L0.1");
}

#[test]
fn open_data_eof_close_both_ways() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "ssh");
    assert_eq!(a.send(ca, b"hello"), 5);
    assert_eq!(b.send(cb, b"world"), 5);
    a.close_write(ca);
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut b),
        vec![MuxEvent::Readable { ch: cb }],
        "EOF is not reported before the data is read"
    );
    assert_eq!(read_all(&mut b, cb), b"hello");
    assert_eq!(events(&mut b), vec![MuxEvent::ReadClosed { ch: cb }]);
    // b can still send after a's EOF (half-close).
    assert_eq!(b.send(cb, b"!"), 1);
    b.close_write(cb);
    pump(&mut a, &mut b);
    assert_eq!(read_all(&mut a, ca), b"world!");
    // a's CLOSE waited for a's application to consume b's data.
    pump(&mut a, &mut b);
    let ev = events(&mut a);
    assert!(
        ev.ends_with(&[MuxEvent::ReadClosed { ch: ca }, MuxEvent::Closed { ch: ca }]),
        "{ev:?}"
    );
    assert_eq!(events(&mut b), vec![MuxEvent::Closed { ch: cb }]);
    assert_eq!(a.channel_count(), 0);
    assert_eq!(b.channel_count(), 0);
    // The id is free again: the next channel reuses wire id 0.
    let (ca2, _) = open_pair(&mut a, &mut b, "");
    assert_eq!(ca2.wire_id(), ca.wire_id());
    assert_ne!(ca2, ca, "a stale handle never names the new channel");
    assert_eq!(a.send(ca, b"x"), 0);
}

#[test]
fn exit_status_arrives_just_before_eof() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "exec");
    a.send(ca, b"output");
    a.close_write_with_status(ca, ExitStatus::Code(3));
    a.close_write(ca); // no second EOF
    pump(&mut a, &mut b);
    assert_eq!(events(&mut b), vec![MuxEvent::Readable { ch: cb }]);
    assert_eq!(read_all(&mut b, cb), b"output");
    assert_eq!(
        events(&mut b),
        vec![
            MuxEvent::PeerExited {
                ch: cb,
                status: ExitStatus::Code(3)
            },
            MuxEvent::ReadClosed { ch: cb }
        ]
    );
    // The other way, after the peer's EOF: EXIT is not folded into CLOSE.
    b.close_write_with_status(cb, ExitStatus::Signal(9));
    let p = b.poll_payload(300).unwrap();
    assert_eq!(
        decode(&p).unwrap(),
        vec![
            Record::Exit {
                initiator: false,
                id: ca.wire_id(),
                status: ExitStatus::Signal(9)
            },
            Record::Close {
                initiator: false,
                id: ca.wire_id()
            }
        ]
    );
    a.handle_payload(&p).unwrap();
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut a),
        vec![
            MuxEvent::PeerExited {
                ch: ca,
                status: ExitStatus::Signal(9)
            },
            MuxEvent::ReadClosed { ch: ca },
            MuxEvent::Closed { ch: ca }
        ]
    );
    assert_eq!(events(&mut b), vec![MuxEvent::Closed { ch: cb }]);
    assert_eq!(ExitStatus::Code(3).to_string(), "exited with code 3");
    assert_eq!(ExitStatus::Signal(9).to_string(), "killed by signal 9");
}

/// A side sends its CLOSE only once its application consumed everything it
/// received, so the peer's `Closed` confirms delivery.
#[test]
fn closed_waits_until_everything_is_consumed() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    a.send(ca, b"data");
    a.close_write(ca);
    b.close_write(cb);
    pump(&mut a, &mut b);
    assert_eq!(events(&mut a), vec![MuxEvent::ReadClosed { ch: ca }]);
    assert_eq!(events(&mut b), vec![MuxEvent::Readable { ch: cb }]);
    assert_eq!(b.read(cb, 2).unwrap(), &b"da"[..]);
    assert_eq!(events(&mut b), vec![]);
    assert_eq!(b.read(cb, 10).unwrap(), &b"ta"[..]);
    assert_eq!(events(&mut b), vec![MuxEvent::ReadClosed { ch: cb }]);
    pump(&mut a, &mut b);
    assert_eq!(events(&mut a), vec![], "read is not consumed");
    b.consumed(cb, 3);
    pump(&mut a, &mut b);
    assert_eq!(events(&mut a), vec![], "not all of it");
    b.consumed(cb, 1);
    pump(&mut a, &mut b);
    assert_eq!(events(&mut a), vec![MuxEvent::Closed { ch: ca }]);
    assert_eq!(events(&mut b), vec![MuxEvent::Closed { ch: cb }]);
    assert_eq!((a.channel_count(), b.channel_count()), (0, 0));
}

/// `Reset` tells how much of what the application sent was not confirmed
/// consumed by the peer: still queued, or sent without credit back.
#[test]
fn reset_reports_unconfirmed_bytes() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    assert_eq!(a.send(ca, &[1; 3000]), 3000);
    pump(&mut a, &mut b);
    // The 2048-byte window went over; 952 bytes wait for credit.
    assert_eq!(b.buffered(cb), 2048);
    let mut got = 0;
    while let Some(x) = b.read(cb, 1500) {
        got += x.len();
    }
    b.consumed(cb, 1500);
    pump(&mut a, &mut b);
    // b returned 1500 (≥ half the window); a sent 952 more with it.
    assert_eq!(got, 2048);
    b.reset(cb, "bye");
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut a),
        vec![MuxEvent::Reset {
            ch: ca,
            reason: ResetReason::ByPeer("bye".into()),
            unconfirmed: 3000 - 1500,
        }]
    );
}

#[test]
fn refuse_carries_reason_and_frees_the_id() {
    let (mut a, mut b) = pair();
    let ca = a.open("web").unwrap();
    assert_eq!(a.send(ca, b"early"), 0, "no data before Accepted");
    pump(&mut a, &mut b);
    let MuxEvent::Incoming { ch: cb, .. } = events(&mut b)[0].clone() else {
        panic!()
    };
    b.refuse(cb, RefuseReason::ConnectionRefused, "port 80: refused");
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut a),
        vec![MuxEvent::Refused {
            ch: ca,
            reason: RefuseReason::ConnectionRefused,
            detail: "port 80: refused".into()
        }]
    );
    assert_eq!((a.channel_count(), b.channel_count()), (0, 0));
    let (ca2, _) = open_pair(&mut a, &mut b, "web");
    assert_eq!(ca2.wire_id(), ca.wire_id());
}

#[test]
fn reset_discards_buffers_and_reaches_the_peer() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    a.send(ca, &[1; 1000]);
    xfer(&mut a, &mut b, 300);
    a.reset(ca, "user abort");
    assert_eq!(a.send(ca, b"more"), 0);
    pump(&mut a, &mut b);
    let ev = events(&mut b);
    assert_eq!(
        ev.last(),
        Some(&MuxEvent::Reset {
            ch: cb,
            reason: ResetReason::ByPeer("user abort".into()),
            unconfirmed: 0,
        })
    );
    assert_eq!(b.read(cb, 100), None, "no data after reset");
    assert_eq!(events(&mut a), vec![], "no event for our own reset");
    assert_eq!((a.channel_count(), b.channel_count()), (0, 0));
    assert_eq!(a.stats().resets_sent, 1);
    assert_eq!(b.stats().resets_sent, 1, "b answered the RESET");
}

#[test]
fn simultaneous_resets_release_both_sides() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    a.reset(ca, "a");
    b.reset(cb, "b");
    pump(&mut a, &mut b);
    assert_eq!((events(&mut a), events(&mut b)), (vec![], vec![]));
    assert_eq!((a.channel_count(), b.channel_count()), (0, 0));
    assert_eq!(
        a.stats().resets_sent + b.stats().resets_sent,
        2,
        "no reply to a crossing RESET"
    );
}

#[test]
fn reset_before_open_left_sends_nothing() {
    let (mut a, mut b) = pair();
    let ca = a.open("x").unwrap();
    a.reset(ca, "changed my mind");
    assert!(!a.has_pending());
    assert_eq!(a.poll_payload(300), None);
    pump(&mut a, &mut b);
    assert_eq!(b.stats().incoming_total, 0);
}

#[test]
fn reset_crossing_refuse() {
    let (mut a, mut b) = pair();
    let ca = a.open("x").unwrap();
    pump(&mut a, &mut b);
    let cb = events(&mut b)[0].channel();
    a.reset(ca, "bye");
    b.refuse(cb, RefuseReason::Other, "");
    pump(&mut a, &mut b);
    assert_eq!((events(&mut a), events(&mut b)), (vec![], vec![]));
    assert_eq!((a.channel_count(), b.channel_count()), (0, 0));
    assert_eq!(b.stats().protocol_errors, 0);
}

/// The hazard the CLOSE record exists for: b sends EOF before it has seen
/// a's data, then returns credit for that data after its EOF. a must not reuse
/// the id until b's CLOSE says nothing more is coming.
#[test]
fn late_credit_never_hits_a_reused_id() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    a.send(ca, &[7; 1500]);
    while let Some(p) = a.poll_payload(300) {
        b.handle_payload(&p).unwrap();
    }
    // b's EOF travels before b has read anything.
    b.close_write(cb);
    let p = b.poll_payload(300).unwrap();
    assert_eq!(
        decode(&p).unwrap(),
        vec![Record::Eof {
            initiator: false,
            id: 0
        }]
    );
    a.handle_payload(&p).unwrap();
    // a is done too: its EOF is a CLOSE (it has b's EOF) — still in flight.
    a.close_write(ca);
    let a_close = a.poll_payload(300).unwrap();
    assert_eq!(
        decode(&a_close).unwrap(),
        vec![Record::Close {
            initiator: true,
            id: 0
        }]
    );
    assert_eq!(
        a.channel_count(),
        1,
        "a sent its final record but has not received b's"
    );
    let y = a.open("y").unwrap();
    assert_eq!(y.wire_id(), 1, "id 0 is still reserved");
    a.reset(y, "");
    // b consumes a's data and returns credit after its own EOF.
    assert_eq!(read_all(&mut b, cb).len(), 1500);
    let p = b.poll_payload(300).unwrap();
    assert!(matches!(decode(&p).unwrap()[0], Record::Credit { .. }));
    a.handle_payload(&p).unwrap();
    assert_eq!(a.stats().protocol_errors, 0, "late CREDIT is harmless");
    // Now a's CLOSE arrives; b answers with its CLOSE and both release.
    b.handle_payload(&a_close).unwrap();
    pump(&mut a, &mut b);
    assert_eq!(a.stats().protocol_errors + b.stats().protocol_errors, 0);
    assert!(events(&mut a).contains(&MuxEvent::Closed { ch: ca }));
    assert!(events(&mut b).contains(&MuxEvent::Closed { ch: cb }));
    assert_eq!(a.open("z").unwrap().wire_id(), 0, "now id 0 is reused");
}

#[test]
fn stalled_reader_stops_only_its_channel() {
    let (mut a, mut b) = pair();
    let (s_a, s_b) = open_pair(&mut a, &mut b, "stalled");
    let (f_a, f_b) = open_pair(&mut a, &mut b, "flowing");
    let (mut stalled_sent, mut flowing_recv) = (0, 0);
    for _ in 0..300 {
        stalled_sent += a.send(s_a, &[1; 500]);
        a.send(f_a, &[2; 500]);
        if let Some(p) = a.poll_payload(200) {
            b.handle_payload(&p).unwrap();
        }
        while let Some(p) = b.poll_payload(200) {
            a.handle_payload(&p).unwrap();
        }
        flowing_recv += read_all(&mut b, f_b).len();
        a.check_invariants();
        b.check_invariants();
    }
    assert_eq!(
        b.buffered(s_b),
        2048,
        "stalled channel stops at exactly its window"
    );
    assert_eq!(
        stalled_sent,
        2048 + 4096,
        "window + send buffer, then send() refuses"
    );
    assert_eq!(a.send_space(s_a), 0);
    assert!(
        flowing_recv > 40_000,
        "the other channel kept flowing: {flowing_recv}"
    );
    events(&mut a);
    // Unstall: the window reopens and SendSpace tells the writer.
    read_all(&mut b, s_b);
    pump(&mut a, &mut b);
    assert!(events(&mut a).contains(&MuxEvent::SendSpace { ch: s_a }));
}

#[test]
fn credit_returns_only_on_consumed() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    a.send(ca, &[0; 4096]);
    pump(&mut a, &mut b);
    let mut got = 0;
    while let Some(x) = b.read(cb, 4096) {
        got += x.len();
    }
    assert_eq!(got, 2048);
    pump(&mut a, &mut b);
    assert_eq!(
        b.buffered(cb),
        0,
        "read but not consumed: no credit, nothing new"
    );
    b.consumed(cb, 255);
    assert!(
        !b.has_pending(),
        "255 < window/8 even though the sender is blocked"
    );
    b.consumed(cb, 1);
    let p = b.poll_payload(300).unwrap();
    assert_eq!(
        decode(&p).unwrap(),
        vec![Record::Credit {
            initiator: false,
            id: 0,
            delta: 256
        }]
    );
    a.handle_payload(&p).unwrap();
    pump(&mut a, &mut b);
    assert_eq!(b.buffered(cb), 256, "credit of 256 returned and used");
    // Not blocked: half a window is needed.
    events(&mut a);
    events(&mut b);
    let (ca, cb) = open_pair(&mut a, &mut b, "y");
    a.send(ca, &[0; 1024]);
    pump(&mut a, &mut b);
    let mut n = 0;
    while let Some(x) = b.read(cb, 4096) {
        n += x.len();
    }
    assert_eq!(n, 1024);
    b.consumed(cb, 1023);
    assert!(!b.has_pending());
    b.consumed(cb, 1);
    assert!(b.has_pending());
}

#[test]
fn credit_violation_resets_the_channel() {
    let (mut a, mut b) = pair();
    let (_ca, cb) = open_pair(&mut a, &mut b, "x");
    let (_, other_b) = open_pair(&mut a, &mut b, "y");
    events(&mut b);
    // A rogue peer: 2049 bytes on a 2048-byte window.
    let big = vec![0u8; 1200];
    let p = payload(&[
        Record::Data {
            initiator: true,
            id: cb.wire_id(),
            data: &big,
        },
        Record::Data {
            initiator: true,
            id: cb.wire_id(),
            data: &big[..849],
        },
    ]);
    b.handle_payload(&p).unwrap();
    let ev = events(&mut b);
    assert!(
        matches!(&ev[..], [MuxEvent::Readable { .. }, MuxEvent::Reset { ch, reason, .. }]
            if *ch == cb && reason.to_string().contains("credit")),
        "{ev:?}"
    );
    assert_eq!(b.buffered(cb), 0, "buffer discarded");
    let out = b.poll_payload(300).unwrap();
    assert!(matches!(
        decode(&out).unwrap()[0],
        Record::Reset { id: 0, .. }
    ));
    assert_eq!(b.stats().protocol_errors, 1);
    // The other channel is unaffected.
    assert_eq!(b.send(other_b, b"fine"), 4);
}

/// CREDIT for bytes we never sent (a peer that would make us send beyond its
/// own window, or spams CREDIT) resets that channel alone.
#[test]
fn credit_beyond_the_window_resets_the_channel() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    let (other_a, _) = open_pair(&mut a, &mut b, "y");
    events(&mut a);
    // A sends 100 bytes on `ca`; B may return at most those 100.
    assert_eq!(a.send(ca, &[5; 100]), 100);
    pump(&mut a, &mut b);
    events(&mut a);
    let p = payload(&[Record::Credit {
        initiator: false,
        id: cb.wire_id(),
        delta: 101,
    }]);
    a.handle_payload(&p).unwrap();
    let ev = events(&mut a);
    assert!(
        matches!(&ev[..], [MuxEvent::Reset { ch, reason, .. }]
            if *ch == ca && reason.to_string().contains("CREDIT beyond the window")),
        "{ev:?}"
    );
    assert_eq!(a.stats().protocol_errors, 1);
    assert_eq!(
        a.send(other_a, b"fine"),
        4,
        "the other channel is unaffected"
    );
}

#[test]
fn records_for_unknown_channels_get_a_reset() {
    let (_, mut b) = pair();
    let p = payload(&[
        Record::Data {
            initiator: true,
            id: 5,
            data: b"x",
        },
        Record::Credit {
            initiator: false,
            id: 6,
            delta: 9,
        },
        Record::Reset {
            initiator: true,
            id: 7,
            reason: "",
        },
    ]);
    b.handle_payload(&p).unwrap();
    let raw = b.poll_payload(300).unwrap();
    let out = decode(&raw).unwrap();
    assert_eq!(
        out,
        vec![
            Record::Reset {
                initiator: false,
                id: 5,
                reason: "unknown channel"
            },
            Record::Reset {
                initiator: true,
                id: 6,
                reason: "unknown channel"
            },
        ],
        "a RESET for an unknown id is ignored (no reset ping-pong)"
    );
    // A flood of them stays bounded.
    let junk = payload(
        &[Record::Eof {
            initiator: true,
            id: 1,
        }; 100],
    );
    for _ in 0..100 {
        b.handle_payload(&junk).unwrap();
    }
    b.check_invariants();
    assert!(b.replies.len() <= MAX_STRAY);
}

#[test]
fn too_many_channels() {
    let (mut a, mut b) = (
        Mux::new(cfg()),
        Mux::new(MuxConfig {
            max_channels: 2,
            ..cfg()
        }),
    );
    let _ = open_pair(&mut a, &mut b, "1");
    let _ = open_pair(&mut a, &mut b, "2");
    let c3 = a.open("3").unwrap();
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut a),
        vec![MuxEvent::Refused {
            ch: c3,
            reason: RefuseReason::TooManyChannels,
            detail: String::new()
        }]
    );
    assert!(events(&mut b).is_empty());
    for i in 0..6 {
        b.open(&i.to_string()).map(|_| ()).unwrap_or(());
    }
    assert_eq!(b.open("z"), Err(MuxError::TooManyChannels));
    assert_eq!(a.open(&"s".repeat(33)), Err(MuxError::ServiceTooLong));
}

#[test]
fn protocol_violations_reset_only_that_channel() {
    let (mut a, mut b) = pair();
    let (_ca, cb) = open_pair(&mut a, &mut b, "x");
    let (_ca2, cb2) = open_pair(&mut a, &mut b, "y");
    let bad = [
        payload(&[Record::Open {
            id: cb.wire_id(),
            window: 1,
            service: "",
        }]),
        payload(&[
            Record::Eof {
                initiator: true,
                id: cb2.wire_id(),
            },
            Record::Eof {
                initiator: true,
                id: cb2.wire_id(),
            },
        ]),
    ];
    for p in &bad {
        b.handle_payload(p).unwrap();
    }
    let resets: Vec<_> = events(&mut b)
        .into_iter()
        .filter(|e| matches!(e, MuxEvent::Reset { .. }))
        .map(|e| e.channel())
        .collect();
    assert_eq!(resets, vec![cb, cb2]);
    assert_eq!(b.stats().protocol_errors, 2);
}

#[test]
fn garbage_payload_is_an_error_and_resets_everything() {
    let (mut a, mut b) = pair();
    let (_ca, cb) = open_pair(&mut a, &mut b, "x");
    assert!(matches!(
        b.handle_payload(&[0x0c, 0, 0]),
        Err(MuxError::Protocol(_))
    ));
    assert!(matches!(&events(&mut b)[..], [MuxEvent::Reset { ch, .. }] if *ch == cb));
    assert_eq!(b.channel_count(), 0);
}

#[test]
fn session_reset_resets_all_and_new_channels_work() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    let (ca2, cb2) = open_pair(&mut a, &mut b, "y");
    a.send(ca, b"old data");
    b.send(cb2, b"old too");
    xfer(&mut a, &mut b, 300);
    let pending = a.open("pending").unwrap();
    // b has a Readable for cb pending; the session dies.
    a.handle_session_reset(SessionEnd::PeerRestarted);
    b.handle_session_reset(SessionEnd::PeerRestarted);
    let mut ra: Vec<_> = events(&mut a).into_iter().map(|e| e.channel()).collect();
    ra.sort();
    let mut want = vec![ca, ca2, pending];
    want.sort();
    assert_eq!(ra, want);
    let eb = events(&mut b);
    assert!(
        eb.iter().all(|e| matches!(e, MuxEvent::Reset { .. })),
        "{eb:?}"
    );
    assert_eq!(eb.len(), 2);
    assert_eq!(b.read(cb, 100), None);
    assert!(!a.has_pending() && !b.has_pending());
    let (na, nb) = open_pair(&mut a, &mut b, "new");
    a.send(na, b"new");
    pump(&mut a, &mut b);
    assert_eq!(read_all(&mut b, nb), b"new");
}

// ----- scheduler through the mux ---------------------------------------------

/// Count DATA bytes per wire id in a payload.
fn data_by_id(p: &[u8]) -> Vec<(u16, usize)> {
    decode(p)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Data { id, data, .. } => Some((id, data.len())),
            _ => None,
        })
        .collect()
}

fn big_cfg() -> MuxConfig {
    MuxConfig {
        window: 65536,
        send_buffer: 65536,
        ..cfg()
    }
}

#[test]
fn two_bulk_channels_get_equal_shares() {
    let (mut a, mut b) = (Mux::new(big_cfg()), Mux::new(big_cfg()));
    let (x, _) = open_pair(&mut a, &mut b, "x");
    let (y, _) = open_pair(&mut a, &mut b, "y");
    a.send(x, &[0; 65536]);
    a.send(y, &[0; 65536]);
    let mut per = [0usize; 2];
    for i in 0..100 {
        let p = a.poll_payload(64 + (i * 53) % 449).unwrap();
        for (id, n) in data_by_id(&p) {
            per[id as usize] += n;
        }
    }
    let (p, q) = (per[0] as f64, per[1] as f64);
    assert!(p / q < 1.15 && q / p < 1.15, "{per:?}");
}

#[test]
fn keystroke_goes_into_the_very_next_payload() {
    let (mut a, mut b) = (Mux::new(big_cfg()), Mux::new(big_cfg()));
    let (x, _) = open_pair(&mut a, &mut b, "bulk1");
    let (y, _) = open_pair(&mut a, &mut b, "bulk2");
    let (k, kb) = open_pair(&mut a, &mut b, "ssh");
    a.send(x, &[0; 65536]);
    a.send(y, &[0; 65536]);
    for _ in 0..10 {
        let p = a.poll_payload(128).unwrap();
        b.handle_payload(&p).unwrap();
    }
    assert_eq!(a.send(k, b"l"), 1);
    let p = a.poll_payload(128).unwrap();
    assert_eq!(data_by_id(&p)[0], (k.wire_id(), 1), "keystroke first");
    b.handle_payload(&p).unwrap();
    assert_eq!(b.read(kb, 10).unwrap(), &b"l"[..]);
}

/// Data that overtakes a payload already built (the link delivers it first)
/// never belongs to a channel in that payload: every channel's records stay in
/// order. Keystrokes overtake anything; a new (sparse) connection overtakes
/// bulk data.
#[test]
fn overtaking_data_never_comes_from_the_payload_it_overtakes() {
    let (mut a, mut b) = (Mux::new(big_cfg()), Mux::new(big_cfg()));
    let (x, xb) = open_pair(&mut a, &mut b, "bulk");
    let (k, kb) = open_pair(&mut a, &mut b, "ssh");
    // Opened now, used later: a new connection's first data.
    let (n, nb) = open_pair(&mut a, &mut b, "new");
    a.send(x, &[1; 65536]);
    // Push x out of the sparse tier: it is bulk now.
    let mut order = Vec::new();
    for _ in 0..40 {
        order.push(a.poll_payload(600).unwrap());
    }
    assert!(!a.has_overtaker());
    assert_eq!(a.poll_overtaking_payload(600), None);
    // A keystroke on k overtakes the bulk payload just built...
    let stopped = a.poll_payload(600).unwrap();
    assert_eq!(a.send(k, b"l"), 1);
    assert!(a.has_overtaker());
    let over = a.poll_overtaking_payload(600).unwrap();
    assert_eq!(data_by_id(&over), vec![(k.wire_id(), 1)]);
    order.push(over);
    order.push(stopped);
    // ...but not a payload that holds k's own data: that keystroke waits.
    assert_eq!(a.send(k, b"s"), 1);
    let with_k = a.poll_payload(600).unwrap();
    assert!(data_by_id(&with_k).iter().any(|&(id, _)| id == k.wire_id()));
    assert_eq!(a.send(k, b"x"), 1);
    assert!(!a.has_overtaker());
    assert_eq!(a.poll_overtaking_payload(600), None);
    order.push(with_k);
    // Delivered in the link's order, every byte arrives in order.
    let mut got_x = Vec::new();
    for p in order.drain(..) {
        b.handle_payload(&p).unwrap();
        got_x.extend(read_all(&mut b, xb));
    }
    assert_eq!(read_all(&mut b, kb), b"ls");
    order.push(a.poll_payload(600).unwrap());
    // A new connection (sparse: little sent recently) overtakes bulk data.
    let stopped = a.poll_payload(600).unwrap();
    assert_eq!(a.send(n, &[9; 1500]), 1500);
    assert!(a.has_overtaker());
    let over = a.poll_overtaking_payload(600).unwrap();
    assert!(data_by_id(&over).iter().all(|&(id, _)| id == n.wire_id()));
    assert!(!data_by_id(&over).is_empty());
    order.push(over);
    order.push(stopped);
    while let Some(p) = a.poll_payload(600) {
        order.push(p);
    }
    for p in &order {
        b.handle_payload(p).unwrap();
        got_x.extend(read_all(&mut b, xb));
    }
    assert_eq!(got_x, vec![1; 65536]);
    assert_eq!(read_all(&mut b, kb), b"x");
    assert_eq!(read_all(&mut b, nb), vec![9; 1500]);
}

/// Issue 22: a new connection's OPEN and the peer's OPEN_OK overtake a bulk
/// payload already built (the link sends them ahead of the frame in
/// progress); an OPEN that reuses the wire id of a channel whose CLOSE is in
/// that payload does not (compared by wire id: the handles differ).
#[test]
fn open_and_open_ok_overtake_bulk_but_not_the_close_of_their_id() {
    let (mut a, mut b) = (Mux::new(big_cfg()), Mux::new(big_cfg()));
    let (x, xb) = open_pair(&mut a, &mut b, "bulk");
    let (y, yb) = open_pair(&mut a, &mut b, "short");
    a.send(x, &[1; 65536]);
    b.send(xb, &[2; 65536]);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        b.handle_payload(&a.poll_payload(600).unwrap()).unwrap();
        a.handle_payload(&b.poll_payload(600).unwrap()).unwrap();
        got_b.extend(read_all(&mut b, xb));
        got_a.extend(read_all(&mut a, x));
    }
    // A's new connection: its OPEN goes ahead of the bulk payload built.
    let stopped = a.poll_payload(600).unwrap();
    let n = a.open("new").unwrap();
    assert!(a.has_overtaker());
    let over = a.poll_overtaking_payload(600).unwrap();
    let recs = decode(&over).unwrap();
    assert!(
        matches!(recs[..], [Record::Open { id, .. }] if id == n.wire_id()),
        "{recs:?}"
    );
    b.handle_payload(&over).unwrap();
    let nb = events(&mut b)
        .into_iter()
        .find_map(|e| match e {
            MuxEvent::Incoming { ch, .. } => Some(ch),
            _ => None,
        })
        .expect("B learns of the new channel from the overtaking payload");
    b.handle_payload(&stopped).unwrap();
    got_b.extend(read_all(&mut b, xb));
    // B's answer overtakes B's bulk payload the same way.
    let stopped = b.poll_payload(600).unwrap();
    b.accept(nb);
    assert!(b.has_overtaker());
    let over = b.poll_overtaking_payload(600).unwrap();
    let recs = decode(&over).unwrap();
    assert!(
        matches!(recs[..], [Record::OpenOk { id, .. }] if id == n.wire_id()),
        "{recs:?}"
    );
    events(&mut a);
    a.handle_payload(&over).unwrap();
    assert_eq!(events(&mut a), vec![MuxEvent::Accepted { ch: n }]);
    a.handle_payload(&stopped).unwrap();
    got_a.extend(read_all(&mut a, x));
    assert_eq!(a.stats().control_overtaking, 1);
    assert_eq!(b.stats().control_overtaking, 1);
    // y ends: A's EOF, B's CLOSE, then A's CLOSE goes out in a bulk
    // payload, which frees y's wire id at once.
    a.close_write(y);
    b.handle_payload(&a.poll_payload(600).unwrap()).unwrap();
    got_b.extend(read_all(&mut b, xb));
    b.close_write(yb);
    a.handle_payload(&b.poll_payload(600).unwrap()).unwrap();
    got_a.extend(read_all(&mut a, x));
    events(&mut a);
    let stopped = a.poll_payload(600).unwrap();
    assert!(
        decode(&stopped)
            .unwrap()
            .iter()
            .any(|r| matches!(r, Record::Close { id, .. } if *id == y.wire_id())),
        "A's CLOSE of y"
    );
    let again = a.open("again").unwrap();
    assert_eq!(again.wire_id(), y.wire_id(), "the id is reused");
    assert_ne!(again, y);
    assert!(!a.has_overtaker(), "OPEN before the CLOSE of its id");
    assert_eq!(a.poll_overtaking_payload(600), None);
    b.handle_payload(&stopped).unwrap();
    got_b.extend(read_all(&mut b, xb));
    // In order, the OPEN is a new channel for B.
    while let Some(p) = a.poll_payload(600) {
        b.handle_payload(&p).unwrap();
        got_b.extend(read_all(&mut b, xb));
    }
    assert!(events(&mut b)
        .iter()
        .any(|e| matches!(e, MuxEvent::Incoming { service, .. } if service == "again")));
    while let Some(p) = b.poll_payload(600) {
        a.handle_payload(&p).unwrap();
        got_a.extend(read_all(&mut a, x));
    }
    assert_eq!(got_b, vec![1; 65536]);
    assert_eq!(got_a, vec![2; 65536]);
    assert_eq!(a.stats().protocol_errors + b.stats().protocol_errors, 0);
}

#[test]
fn control_records_go_first() {
    let (mut a, mut b) = (Mux::new(big_cfg()), Mux::new(big_cfg()));
    let (x, _) = open_pair(&mut a, &mut b, "bulk");
    let (y, _) = open_pair(&mut a, &mut b, "victim");
    a.send(x, &[0; 65536]);
    a.poll_payload(64);
    a.reset(y, "r");
    let z = a.open("new").unwrap();
    let p = a.poll_payload(64).unwrap();
    let recs = decode(&p).unwrap();
    assert!(matches!(recs[0], Record::Reset { .. }), "{recs:?}");
    assert!(
        matches!(recs[1], Record::Open { id, .. } if id == z.wire_id()),
        "{recs:?}"
    );
    assert!(matches!(recs.get(2), Some(Record::Data { .. }) | None));
}

#[test]
fn small_payload_limit_still_carries_everything() {
    let (mut a, mut b) = pair();
    let (ca, cb) = open_pair(&mut a, &mut b, &"s".repeat(32));
    a.send(ca, &[9; 3000]);
    a.close_write(ca);
    let mut got = Vec::new();
    for _ in 0..1000 {
        if let Some(p) = a.poll_payload(64) {
            assert!(p.len() <= 64);
            b.handle_payload(&p).unwrap();
        }
        if let Some(p) = b.poll_payload(64) {
            a.handle_payload(&p).unwrap();
        }
        got.extend(read_all(&mut b, cb));
    }
    assert_eq!(got, vec![9; 3000]);
    assert!(events(&mut b).contains(&MuxEvent::ReadClosed { ch: cb }));
}

// ----- robustness ------------------------------------------------------------

fn arb_small_record() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=9, any::<bool>(), 0u16..4, 0u32..5000, 1usize..300).prop_map(|(ty, i, id, n, len)| {
        let data = vec![0xa5; len];
        let r = match ty {
            1 => Record::Open {
                id,
                window: n,
                service: "s",
            },
            2 => Record::OpenOk { id, window: n },
            3 => Record::Refuse {
                id,
                reason: RefuseReason::Other,
                detail: "",
            },
            4 => Record::Data {
                initiator: i,
                id,
                data: &data,
            },
            5 => Record::Credit {
                initiator: i,
                id,
                delta: n.max(1),
            },
            6 => Record::Eof { initiator: i, id },
            7 => Record::Close { initiator: i, id },
            8 => Record::Reset {
                initiator: i,
                id,
                reason: "r",
            },
            _ => Record::Exit {
                initiator: i,
                id,
                status: ExitStatus::Code(n),
            },
        };
        payload(&[r])
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random bytes never panic and never grow memory beyond the configured bounds.
    #[test]
    fn prop_random_payloads(ps in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let (mut a, mut b) = pair();
        let (ca, cb) = open_pair(&mut a, &mut b, "x");
        a.send(ca, &[1; 100]);
        b.send(cb, &[1; 100]);
        for p in ps {
            let _ = b.handle_payload(&p);
            b.check_invariants();
            while b.poll_payload(64).is_some() {}
            events(&mut b);
        }
    }

    /// Well-formed but adversarial record sequences (small id space, so they
    /// hit live channels) keep every invariant and never panic.
    #[test]
    fn prop_adversarial_records(recs in proptest::collection::vec(arb_small_record(), 0..60), acts in proptest::collection::vec(0u8..6, 0..60)) {
        let (mut a, mut b) = pair();
        let (ca, cb) = open_pair(&mut a, &mut b, "x");
        let _ = open_pair(&mut b, &mut a, "y");
        a.send(ca, &[1; 100]);
        pump(&mut a, &mut b);
        for (i, p) in recs.iter().enumerate() {
            b.handle_payload(p).unwrap();
            let chans: Vec<ChannelId> = b.channels.keys().copied().collect();
            for ch in chans {
                match acts.get(i).copied().unwrap_or(0) {
                    0 => { b.send(ch, &[3; 50]); }
                    1 => { let n = read_all(&mut b, ch).len(); b.consumed(ch, n); }
                    2 => b.accept(ch),
                    3 => b.close_write(ch),
                    4 => b.reset(ch, "x"),
                    _ => {}
                }
            }
            b.check_invariants();
            while let Some(p) = b.poll_payload(64 + i * 7) {
                prop_assert!(decode(&p).is_ok());
            }
            events(&mut b);
        }
        let _ = cb;
    }
}

/// A hostile peer sends 1-byte DATA records until every channel's window is
/// full: the heap kept for them stays within twice `window × channels` (a
/// buffer per record would cost tens of times the window).
#[test]
fn one_byte_records_cost_no_more_than_the_window() {
    let window = 4096u32;
    let channels = 16usize;
    let c = MuxConfig {
        window,
        send_buffer: 1024,
        max_channels: channels as u32,
        interactive_bytes: 128,
        sparse_bytes: 8192,
        compress: true,
        compress_strength: compress::Strength::for_byte_rate(11_520),
    };
    let (mut a, mut b) = (Mux::new(c.clone()), Mux::new(c));
    let handles: Vec<ChannelId> = (0..channels)
        .map(|i| open_pair(&mut a, &mut b, &i.to_string()).1)
        .collect();
    for h in &handles {
        for _ in 0..window / 256 {
            let recs: Vec<Record<'_>> = (0..256)
                .map(|k| Record::Data {
                    initiator: true,
                    id: h.wire_id(),
                    data: if k % 2 == 0 { b"x" } else { b"y" },
                })
                .collect();
            b.handle_payload(&payload(&recs)).unwrap();
        }
        assert_eq!(b.buffered(*h), window as usize);
    }
    b.check_invariants();
    assert_eq!(b.stats().protocol_errors, 0);
    let bound = 2 * window as usize * channels;
    assert!(
        b.heap_bytes() <= bound,
        "{} bytes of buffers for {} bytes of window",
        b.heap_bytes(),
        window as usize * channels
    );
    // The data is intact and in order.
    let got = read_all(&mut b, handles[3]);
    assert_eq!(got.len(), window as usize);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, &x)| x == [b'x', b'y'][i % 2]));
}

/// The memory bound the README and the man page state (LIMITS):
/// `max_channels × (window + send_buffer + 2 × HISTORY_CAP)`, the last term for
/// the compression history of each direction of a channel that compresses.
/// Every channel here has compressed both ways, holds (nearly) a full receive
/// window its application has not read, and a full send buffer.
#[test]
fn heap_stays_within_the_documented_bound_with_compression_both_ways() {
    let (mut a, mut b) = compressing_pair(32 * 1024);
    let c = b.cfg.clone();
    let text = log_text(400_000, 5);
    let mut chans = Vec::new();
    for i in 0..c.max_channels {
        let (ca, cb) = open_pair(&mut a, &mut b, &format!("s{i}"));
        let (got, _, lz4) = transfer(&mut a, &mut b, ca, cb, &text[..100_000], 1984);
        assert!(got == text[..100_000] && lz4 > 0);
        let (got, _, lz4) = transfer(&mut b, &mut a, cb, ca, &text[..100_000], 1984);
        assert!(got == text[..100_000] && lz4 > 0);
        events(&mut a);
        events(&mut b);
        chans.push((ca, cb));
    }
    for &(ca, cb) in &chans {
        // B's receive window fills (B's application reads nothing), and B's
        // application fills its send buffer (nothing is polled from B).
        let mut off = 100_000;
        for _ in 0..20 {
            off += a.send(ca, &text[off..200_000]);
            pump(&mut a, &mut b);
        }
        // (Credit B still owes for bytes read earlier keeps it a little short.)
        assert!(
            b.buffered(cb) > c.window as usize * 3 / 4,
            "{}",
            b.buffered(cb)
        );
        assert_eq!(b.send(cb, &text[200_000..]), c.send_buffer as usize);
    }
    b.check_invariants();
    assert_eq!(b.stats().protocol_errors, 0);
    let per_channel = (c.window + c.send_buffer) as usize + 2 * compress::HISTORY_CAP;
    let bound = c.max_channels as usize * per_channel + compress::ENGINE_BOUND;
    let heap = b.heap_bytes();
    assert!(heap <= bound, "{heap} bytes of heap > {bound}");
    // The histories are counted: without them the bound would not hold.
    assert!(
        heap > c.max_channels as usize * (c.window + c.send_buffer) as usize,
        "{heap}"
    );
}

/// A peer floods OPENs for a service this side does not offer (100 000 of
/// them, faster than our output drains the refusals) while a data channel
/// keeps moving: the queued refusals stay bounded (detail dropped, then
/// refusals dropped and counted), and the data channel completes undisturbed.
#[test]
fn refusal_flood_stays_bounded_and_data_flows() {
    let c = MuxConfig {
        max_channels: 64,
        ..cfg()
    };
    let (mut a, mut b) = (Mux::new(c.clone()), Mux::new(c));
    let (ca, cb) = open_pair(&mut a, &mut b, "data");
    let total = 100_000;
    let (mut sent, mut received) = (0, 0);
    let mut opens = 0u32;
    let mut done_at = None;
    let mut round = 0;
    while opens < 100_000 || received < total {
        round += 1;
        assert!(round < 10_000, "stuck: {received} of {total}");
        // The flood: 50 OPENs (400 bytes) per round, from the peer's id space
        // above the data channel's id.
        if opens < 100_000 {
            let recs: Vec<Record<'_>> = (0..50)
                .map(|k| Record::Open {
                    id: 1 + ((opens + k) % 60_000) as u16,
                    window: 2048,
                    service: "nope",
                })
                .collect();
            opens += 50;
            b.handle_payload(&payload(&recs)).unwrap();
        }
        for ev in events(&mut b) {
            match ev {
                MuxEvent::Incoming { ch, .. } => b.refuse(
                    ch,
                    RefuseReason::NotAllowed,
                    "no service 'nope' here, sorry, try another one",
                ),
                MuxEvent::Readable { .. } => {}
                e => panic!("{e:?}"),
            }
        }
        received += read_all(&mut b, cb).len();
        if sent < total {
            let chunk = vec![5u8; (total - sent).min(1000)];
            sent += a.send(ca, &chunk);
        }
        // b's output is slower than the flood: 150 bytes per round.
        if let Some(p) = a.poll_payload(300) {
            b.handle_payload(&p).unwrap();
        }
        // The flood's refusals go to the attacker; the rest to a.
        if let Some(p) = b.poll_payload(150) {
            let to_a: Vec<Record<'_>> = decode(&p)
                .unwrap()
                .into_iter()
                .filter(|r| !matches!(r, Record::Refuse { .. }))
                .collect();
            a.handle_payload(&payload(&to_a)).unwrap();
        }
        events(&mut a);
        b.check_invariants();
        assert!(b.replies.len() <= MAX_QUEUED_REFUSALS + MAX_STRAY);
        assert!(b.ctl.len() <= 4, "channel control is not held up");
        if received == total && done_at.is_none() {
            done_at = Some(opens);
        }
    }
    assert!(
        done_at.unwrap() < 100_000,
        "the data completed during the flood"
    );
    let st = b.stats();
    assert!(st.refusals_dropped > 0, "{st:?}");
    assert_eq!(st.incoming_total, 100_001, "the flood and the data channel");
    assert!(st.refused_total + st.refusals_dropped + b.replies.len() as u64 >= 100_000);
}

#[test]
fn open_to_carries_the_target_and_refusals_their_reason() {
    let (mut a, mut b) = pair();
    let t = Target {
        host: "printer.lan".into(),
        port: 631,
    };
    let ca = a.open_to("web", Some(&t)).unwrap();
    pump(&mut a, &mut b);
    let cb = match events(&mut b).as_slice() {
        [MuxEvent::Incoming {
            ch,
            service,
            target,
        }] => {
            assert_eq!(service, "web");
            assert_eq!(target.as_ref(), Some(&t));
            *ch
        }
        e => panic!("expected Incoming, got {e:?}"),
    };
    b.refuse(cb, RefuseReason::NameNotFound, "no such host");
    pump(&mut a, &mut b);
    assert_eq!(
        events(&mut a),
        vec![MuxEvent::Refused {
            ch: ca,
            reason: RefuseReason::NameNotFound,
            detail: "no such host".into()
        }]
    );
    // A plain open has no target; one that cannot fit 64 bytes is refused locally.
    let (_, _) = open_pair(&mut a, &mut b, "x");
    let long = Target {
        host: "h".repeat(50),
        port: 1,
    };
    assert_eq!(a.open_to("four", Some(&long)), Err(MuxError::TargetTooLong));
    assert!(
        a.open_to("abc", Some(&long)).is_ok(),
        "3 + 50 = 53 bytes fits"
    );
    let empty = Target {
        host: String::new(),
        port: 1,
    };
    assert_eq!(a.open_to("", Some(&empty)), Err(MuxError::TargetTooLong));
}

// ----- compression ----------------------------------------------------------

/// Log-like text: repetitive structure, varying fields (deterministic).
fn log_text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 200);
    let mut x = seed | 1;
    let paths = ["/index.html", "/api/v1/items", "/static/app.js", "/login"];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(
            format!(
                "2026-12-01T02:{:02}:{:02}.{:03}Z INFO http: GET {} status={} bytes={} client=10.0.{}.{}\n",
                x % 60,
                (x >> 8) % 60,
                (x >> 16) % 1000,
                paths[(x >> 26) as usize % 4],
                [200, 200, 304, 404][(x >> 28) as usize % 4],
                (x >> 32) % 20000,
                (x >> 40) % 256,
                (x >> 48) % 256
            )
            .as_bytes(),
        );
    }
    out.truncate(len);
    out
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn compressing_pair(window: u32) -> (Mux, Mux) {
    let c = MuxConfig {
        window,
        send_buffer: window,
        ..cfg()
    };
    let (mut a, mut b) = (Mux::new(c.clone()), Mux::new(c));
    a.set_peer_compression(b.compression_offer());
    b.set_peer_compression(a.compression_offer());
    (a, b)
}

/// Sends `data` from `a` to `b` on channel (`ca`, `cb`), `max`-byte payloads;
/// returns (bytes received, payload bytes on the wire, DATA_LZ4 records).
fn transfer(
    a: &mut Mux,
    b: &mut Mux,
    ca: ChannelId,
    cb: ChannelId,
    data: &[u8],
    max: usize,
) -> (Vec<u8>, usize, usize) {
    let (mut off, mut got, mut wire, mut lz4) = (0, Vec::new(), 0, 0);
    for _ in 0..100_000 {
        off += a.send(ca, &data[off..]);
        let p = a.poll_payload(max);
        if let Some(p) = &p {
            wire += p.len();
            lz4 += decode(p)
                .unwrap()
                .iter()
                .filter(|r| matches!(r, Record::DataZ { .. }))
                .count();
            b.handle_payload(p).unwrap();
        }
        got.extend(read_all(b, cb));
        while let Some(q) = b.poll_payload(max) {
            a.handle_payload(&q).unwrap();
        }
        a.check_invariants();
        b.check_invariants();
        if p.is_none() && off == data.len() && !a.has_pending() {
            break;
        }
    }
    (got, wire, lz4)
}

#[test]
fn text_goes_compressed_and_arrives_intact() {
    let (mut a, mut b) = compressing_pair(16384);
    let (ca, cb) = open_pair(&mut a, &mut b, "logs");
    let data = log_text(200_000, 7);
    let (got, wire, lz4) = transfer(&mut a, &mut b, ca, cb, &data, 500);
    assert!(got == data, "bytes differ");
    assert!(lz4 > 0);
    // Log text moves at well over 3× the payload bytes.
    assert!(
        wire * 3 < data.len(),
        "{} app bytes in {wire} wire bytes",
        data.len()
    );
    let st = a.stats();
    assert_eq!(st.bytes_sent, data.len() as u64);
    assert!(st.compressed_bytes_sent > data.len() as u64 * 9 / 10);
    assert_eq!(
        b.stats().compressed_bytes_received,
        st.compressed_bytes_sent
    );
}

#[test]
fn random_data_goes_raw_and_costs_nothing() {
    let (mut a, mut b) = compressing_pair(16384);
    let (ca, cb) = open_pair(&mut a, &mut b, "ssh");
    let data = random_bytes(200_000, 3);
    let (got, wire, lz4) = transfer(&mut a, &mut b, ca, cb, &data, 500);
    assert!(got == data);
    assert_eq!(lz4, 0, "random data never compresses");
    // Same wire cost as without compression.
    let (mut c, mut d) = pair();
    let (cc, cd) = open_pair(&mut c, &mut d, "ssh");
    let (got2, wire_plain, _) = transfer(&mut c, &mut d, cc, cd, &data, 500);
    assert!(got2 == data);
    assert!(
        wire <= wire_plain + wire_plain / 200,
        "{wire} vs {wire_plain}"
    );
}

#[test]
fn mixed_text_and_random_on_one_channel_stays_in_step() {
    // Raw and compressed records alternate: both histories must stay equal.
    let (mut a, mut b) = compressing_pair(8192);
    let (ca, cb) = open_pair(&mut a, &mut b, "mixed");
    let mut data = Vec::new();
    for i in 0..40u64 {
        if i % 3 == 0 {
            data.extend(random_bytes(700 + 37 * i as usize, i));
        } else {
            data.extend(log_text(3000 + 11 * i as usize, i));
        }
    }
    for max in [64, 200, 500, 1500] {
        let (got, _, lz4) = transfer(&mut a, &mut b, ca, cb, &data, max);
        if got != data {
            let at = got.iter().zip(&data).position(|(x, y)| x != y);
            panic!(
                "max {max}: bytes differ at {at:?} of {} (got {})",
                data.len(),
                got.len()
            );
        }
        assert!(lz4 > 0, "max {max}");
    }
}

#[test]
fn no_compression_towards_a_peer_that_did_not_announce_it() {
    let (mut a, mut b) = pair();
    // b offers, but a was never told (a peer built before compression, or
    // one with compress=off, never announces it).
    assert_eq!(a.compression(), None);
    let (ca, cb) = open_pair(&mut a, &mut b, "logs");
    let data = log_text(20_000, 1);
    let (got, _, lz4) = transfer(&mut a, &mut b, ca, cb, &data, 500);
    assert!(got == data);
    assert_eq!(lz4, 0);
    // Our own compress=off wins over the peer's offer.
    let off = MuxConfig {
        compress: false,
        compress_strength: compress::Strength::for_byte_rate(11_520),
        ..cfg()
    };
    let mut m = Mux::new(off);
    assert_eq!(m.compression_offer(), None);
    m.set_peer_compression(Some(Codec::Lz4));
    assert_eq!(m.compression(), None);
}

#[test]
fn session_reset_forgets_the_peers_codec() {
    let (mut a, _b) = compressing_pair(4096);
    assert_eq!(a.compression(), Some(Codec::Deflate));
    a.handle_session_reset(SessionEnd::PeerRestarted);
    assert_eq!(a.compression(), None);
}

#[test]
fn keystrokes_are_never_compressed() {
    let (mut a, mut b) = compressing_pair(4096);
    let (ca, cb) = open_pair(&mut a, &mut b, "ssh");
    for k in b"ls -l\n" {
        a.send(ca, &[*k]);
        let p = a.poll_payload(500).unwrap();
        assert!(matches!(
            decode(&p).unwrap().as_slice(),
            [Record::Data { data, .. }] if data == &[*k]
        ));
        b.handle_payload(&p).unwrap();
    }
    assert_eq!(read_all(&mut b, cb), b"ls -l\n");
}

/// A hostile or broken peer: compressed records that claim more than the
/// window, do not decode, or decode to a different length reset that
/// channel only, and no byte of them is handed out.
#[test]
fn bad_compressed_records_reset_only_their_channel() {
    bad_compressed_records_reset_only_their_channel_with(Codec::Lz4);
    bad_compressed_records_reset_only_their_channel_with(Codec::Deflate);
}

/// `data` compressed as one `codec` record with no history before it.
fn zblock(codec: Codec, data: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    let strength = compress::Strength::for_byte_rate(11_520);
    compress::Engine::default()
        .compress(codec, strength, data, None, &mut block)
        .unwrap();
    block
}

fn bad_compressed_records_reset_only_their_channel_with(codec: Codec) {
    let text = log_text(3000, 5);
    let block = zblock(codec, &text);
    let cases: Vec<(u16, Vec<u8>, &str)> = vec![
        // Claims 65535 bytes: beyond the 2048-byte window.
        (65535, block.clone(), "beyond its credit"),
        // Garbage.
        (100, vec![0xff; 40], "undecodable"),
        // Valid block, wrong length (announces less than it holds).
        (1000, block.clone(), "compressed"),
    ];
    for (raw, blk, why) in cases {
        let (mut a, mut b) = compressing_pair(2048);
        let (ca, cb) = open_pair(&mut a, &mut b, "x");
        let (ca2, cb2) = open_pair(&mut a, &mut b, "y");
        events(&mut a);
        let p = payload(&[Record::DataZ {
            codec,
            initiator: true,
            id: ca.wire_id(),
            raw,
            block: &blk,
        }]);
        b.handle_payload(&p).unwrap();
        let ev = events(&mut b);
        assert!(
            matches!(ev.as_slice(), [MuxEvent::Reset { ch, reason, .. }] if *ch == cb && reason.is_violation()),
            "{why}: {ev:?}"
        );
        assert_eq!(b.read(cb, 100_000), None, "{why}: nothing handed out");
        b.check_invariants();
        // The other channel still works.
        a.send(ca2, b"still here");
        pump(&mut a, &mut b);
        assert_eq!(read_all(&mut b, cb2), b"still here", "{why}");
    }
    // With compress=off, a compressed record is a violation too.
    let off = MuxConfig {
        compress: false,
        compress_strength: compress::Strength::for_byte_rate(11_520),
        ..cfg()
    };
    let (mut a, mut b) = (Mux::new(cfg()), Mux::new(off));
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    let p = payload(&[Record::DataZ {
        codec,
        initiator: true,
        id: ca.wire_id(),
        raw: 2048,
        block: &block,
    }]);
    b.handle_payload(&p).unwrap();
    assert!(matches!(
        events(&mut b).as_slice(),
        [MuxEvent::Reset { ch, reason, .. }] if *ch == cb && reason.to_string().contains("not negotiated")
    ));
}

/// Issue 19, item 8a: with compress on here, DATA_LZ4 from a peer whose
/// session features exclude compression (it announced none, or not LZ4) is a
/// violation on that channel alone; a new session without an announcement
/// yet accepts it again (the peer's announcement may still be on the way).
#[test]
fn compressed_data_outside_the_negotiated_session_is_a_violation() {
    let text = log_text(1000, 3);
    let block = zblock(Codec::Lz4, &text);
    // A peer that announced LZ4 only (built before deflate) gets no
    // DATA_DEFLATE from us and may send none either.
    let (mut a, mut b) = pair();
    b.set_peer_compression(Some(Codec::Lz4));
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    let deflated = zblock(Codec::Deflate, &text);
    let p = payload(&[Record::DataZ {
        codec: Codec::Deflate,
        initiator: true,
        id: ca.wire_id(),
        raw: 1000,
        block: &deflated,
    }]);
    b.handle_payload(&p).unwrap();
    assert!(matches!(
        events(&mut b).as_slice(),
        [MuxEvent::Reset { ch, reason, .. }] if *ch == cb && reason.to_string().contains("not negotiated")
    ));
    pump(&mut a, &mut b);
    events(&mut a);
    let p = payload(&[Record::DataZ {
        codec: Codec::Lz4,
        initiator: true,
        id: open_pair(&mut a, &mut b, "x2").0.wire_id(),
        raw: 1000,
        block: &block,
    }]);
    b.handle_payload(&p).unwrap();
    let ev = events(&mut b);
    assert!(
        !ev.iter().any(|e| matches!(e, MuxEvent::Reset { .. })),
        "LZ4 is still taken: {ev:?}"
    );
    let (mut a, mut b) = pair();
    // B offers LZ4, but the link says this session's features exclude it.
    b.set_peer_compression(None);
    assert!(b.compression_offer().is_some());
    let (ca, cb) = open_pair(&mut a, &mut b, "x");
    let (ca2, cb2) = open_pair(&mut a, &mut b, "y");
    let p = payload(&[Record::DataZ {
        codec: Codec::Lz4,
        initiator: true,
        id: ca.wire_id(),
        raw: 1000,
        block: &block,
    }]);
    b.handle_payload(&p).unwrap();
    let ev = events(&mut b);
    assert!(
        matches!(ev.as_slice(), [MuxEvent::Reset { ch, reason, .. }] if *ch == cb && reason.to_string().contains("not negotiated")),
        "{ev:?}"
    );
    assert_eq!(b.read(cb, 100_000), None);
    b.check_invariants();
    // The other channel is untouched.
    a.send(ca2, b"still here");
    pump(&mut a, &mut b);
    assert_eq!(read_all(&mut b, cb2), b"still here");
    // A new session: features not reported yet, so the record is taken.
    a.handle_session_reset(SessionEnd::PeerRestarted);
    b.handle_session_reset(SessionEnd::PeerRestarted);
    events(&mut a);
    events(&mut b);
    let (ca, cb) = open_pair(&mut a, &mut b, "z");
    let p = payload(&[Record::DataZ {
        codec: Codec::Lz4,
        initiator: true,
        id: ca.wire_id(),
        raw: 1000,
        block: &block,
    }]);
    b.handle_payload(&p).unwrap();
    assert_eq!(read_all(&mut b, cb), text);
}

#[test]
fn credit_counts_uncompressed_bytes() {
    // A stalled reader holds at most the window of *decompressed* bytes,
    // however well the data compresses.
    let (mut a, mut b) = compressing_pair(4096);
    let (ca, cb) = open_pair(&mut a, &mut b, "logs");
    let data = log_text(100_000, 9);
    let mut off = 0;
    for _ in 0..200 {
        off += a.send(ca, &data[off..]);
        pump(&mut a, &mut b);
    }
    assert_eq!(b.buffered(cb), 4096);
    assert!(
        off <= 4096 * 2,
        "sender stopped at credit + its buffer: {off}"
    );
    assert!(a.stats().compressed_bytes_sent > 0);
}
