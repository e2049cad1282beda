//! Selective-repeat ARQ: send and receive windows with cumulative + selective acks.
//!
//! Loss detection on the sender, given a line that never reorders:
//! - every transmission gets a transmit order number; when an ack newly covers a frame
//!   whose *first* transmission came after the *last* transmission of a still-unacked
//!   frame, that earlier transmission is certainly lost (fast retransmit, no
//!   duplicate-ack counting needed);
//! - the retransmission timer covers tail losses: its first expiry resends every frame
//!   older than one RTO, later expiries (line dead) resend only the oldest as a probe.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::{AckInfo, Sack, MAX_SACK_BYTES};
use super::seq::Seq;

/// Largest window in frames (bounded by the SACK bitmap).
pub const MAX_WINDOW: u16 = (MAX_SACK_BYTES * 8) as u16;

#[derive(Debug)]
struct Slot {
    payload: Bytes,
    first_order: u64,
    last_order: u64,
    sent_at: Option<Instant>,
    tx_count: u32,
    wire_len: usize,
    acked: bool,
    lost: bool,
    /// Its current transmission has started but not ended (a frame emitted in
    /// pieces, possibly suspended): neither lost nor timed out yet.
    partial: bool,
}

/// What an ack or a timer expiry changed in the [`SendWindow`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct AckOutcome {
    /// Frames newly acknowledged.
    pub acked_frames: u32,
    /// Their wire bytes (last transmission).
    pub acked_wire_bytes: u64,
    /// Their payload bytes.
    pub acked_payload_bytes: u64,
    /// Frames newly declared lost.
    pub lost_frames: u32,
    /// Wire bytes of those lost transmissions.
    pub lost_wire_bytes: u64,
    /// RTT sample from a newly acked frame transmitted exactly once (Karn).
    pub rtt_sample: Option<Duration>,
}

/// Sender side: frames submitted but not yet cumulatively acknowledged.
#[derive(Debug)]
pub struct SendWindow {
    una: Seq,
    slots: VecDeque<Slot>,
    window: u16,
    order: u64,
    max_acked_first_order: u64,
}

impl SendWindow {
    /// Empty window of `window` frames starting at seq 0.
    pub fn new(window: u16) -> Self {
        SendWindow {
            una: Seq(0),
            slots: VecDeque::new(),
            window: window.clamp(1, MAX_WINDOW),
            order: 0,
            max_acked_first_order: 0,
        }
    }

    /// Sets the window (e.g. the minimum of ours and the peer's).
    pub fn set_window(&mut self, window: u16) {
        self.window = window.clamp(1, MAX_WINDOW);
    }

    /// Oldest unacknowledged seq.
    pub fn una(&self) -> Seq {
        self.una
    }

    /// Frames in the window (sent or not, not cumulatively acked).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No frame in the window.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Room for one more new frame.
    pub fn has_room(&self) -> bool {
        self.slots.len() < self.window as usize
    }

    /// A submitted frame has never been transmitted.
    pub fn has_unsent(&self) -> bool {
        self.slots.back().is_some_and(|s| s.tx_count == 0)
    }

    /// Some transmitted frame is still unacknowledged.
    pub fn outstanding(&self) -> bool {
        self.slots.iter().any(|s| s.tx_count > 0 && !s.acked)
    }

    /// Adds a new frame; returns its seq. Caller checks [`has_room`](Self::has_room).
    pub fn push(&mut self, payload: Bytes) -> Seq {
        let seq = self.una.plus(self.slots.len() as u16);
        self.slots.push_back(Slot {
            payload,
            first_order: 0,
            last_order: 0,
            sent_at: None,
            tx_count: 0,
            wire_len: 0,
            acked: false,
            lost: false,
            partial: false,
        });
        seq
    }

    /// Next frame to transmit: the oldest frame marked lost, else the oldest unsent.
    /// Returns `(seq, payload, is_retransmission)`.
    pub fn next_to_send(&self) -> Option<(Seq, Bytes, bool)> {
        let i = self
            .slots
            .iter()
            .position(|s| !s.acked && s.lost)
            .or_else(|| self.slots.iter().position(|s| s.tx_count == 0))?;
        let s = &self.slots[i];
        Some((self.una.plus(i as u16), s.payload.clone(), s.tx_count > 0))
    }

    /// The oldest frame never transmitted (what a suspended frame lets past).
    pub fn next_unsent(&self) -> Option<(Seq, Bytes)> {
        let i = self.slots.iter().position(|s| s.tx_count == 0)?;
        Some((self.una.plus(i as u16), self.slots[i].payload.clone()))
    }

    /// `seq` is being transmitted for the first time (its transmission began and
    /// has not ended).
    pub fn is_first_transmission(&self, seq: Seq) -> bool {
        self.slot(seq)
            .is_some_and(|s| s.tx_count == 1 && s.partial && !s.acked)
    }

    /// Lets the never-sent frame `next` overtake the frame `stopped` in the order:
    /// they trade places, so `stopped`'s number now holds `next`'s payload (not
    /// sent yet) and `next`'s number the stopped transmission, still in progress.
    /// Only the first transmission of the frame right before `next` can be
    /// overtaken (the peer cannot hold it yet); false, and nothing changed,
    /// otherwise.
    pub fn overtake(&mut self, stopped: Seq, next: Seq) -> bool {
        if next != stopped.plus(1)
            || !self.is_first_transmission(stopped)
            || self.slot(next).is_none_or(|s| s.tx_count != 0)
        {
            return false;
        }
        let i = stopped.diff(self.una) as usize;
        self.slots.swap(i, i + 1);
        true
    }

    fn slot(&self, seq: Seq) -> Option<&Slot> {
        usize::try_from(seq.diff(self.una))
            .ok()
            .and_then(|i| self.slots.get(i))
    }

    /// `seq` is in the window and not acknowledged yet.
    pub fn is_unacked(&self, seq: Seq) -> bool {
        self.slot(seq).is_some_and(|s| !s.acked)
    }

    /// Records the complete transmission of `seq` at `now` taking `wire_len` line bytes.
    pub fn on_transmit(&mut self, seq: Seq, now: Instant, wire_len: usize) {
        self.begin_transmit(seq, now);
        self.end_transmit(seq, wire_len);
    }

    /// A transmission of `seq` starts at `now`; until [`end_transmit`](Self::end_transmit)
    /// it can be neither lost nor timed out (it may be emitted in pieces, or suspended
    /// for an urgent frame and resumed after it).
    pub fn begin_transmit(&mut self, seq: Seq, now: Instant) {
        let Ok(i) = usize::try_from(seq.diff(self.una)) else {
            return;
        };
        if let Some(s) = self.slots.get_mut(i) {
            s.tx_count += 1;
            s.sent_at = Some(now);
            s.lost = false;
            s.partial = true;
        }
    }

    /// The transmission of `seq` ended (its last byte was handed out): it takes its
    /// place in the transmit order now, so frames that overtook it while it was
    /// suspended do not make it look lost.
    pub fn end_transmit(&mut self, seq: Seq, wire_len: usize) {
        let Ok(i) = usize::try_from(seq.diff(self.una)) else {
            return;
        };
        self.order += 1;
        let order = self.order;
        if let Some(s) = self.slots.get_mut(i) {
            if !s.partial {
                return;
            }
            if s.tx_count == 1 {
                s.first_order = order;
            }
            s.last_order = order;
            s.wire_len = wire_len;
            s.partial = false;
        }
    }

    /// Processes a cumulative + selective ack received at `now`. `recovering` (the
    /// retransmission timer had backed off) treats every frame transmitted before a
    /// newly acked one as lost without counting it (the line was dead, not noisy).
    pub fn on_ack(&mut self, a: &AckInfo, now: Instant, recovering: bool) -> AckOutcome {
        let mut out = AckOutcome::default();
        let cum = a.ack.diff(self.una);
        if cum < 0 || cum as usize > self.slots.len() {
            return out; // stale or bogus
        }
        let cum = cum as usize;
        let mut newest_first = 0u64;
        let mut newest_last = 0u64;
        let mut sample: Option<(u64, Duration)> = None;
        let n = self.slots.len();
        for i in 0..n {
            let covered = i < cum || (i > cum && a.sack.get(i - cum - 1));
            if i > cum && i - cum > a.sack.span() {
                break;
            }
            let s = &mut self.slots[i];
            if !covered || s.acked || s.tx_count == 0 {
                continue;
            }
            s.acked = true;
            out.acked_frames += 1;
            out.acked_wire_bytes += s.wire_len as u64;
            out.acked_payload_bytes += s.payload.len() as u64;
            newest_first = newest_first.max(s.first_order);
            newest_last = newest_last.max(s.last_order);
            if s.tx_count == 1 {
                if let Some(t) = s.sent_at {
                    if sample.is_none_or(|(o, _)| s.last_order > o) {
                        sample = Some((s.last_order, now.saturating_duration_since(t)));
                    }
                }
            }
        }
        out.rtt_sample = sample.map(|(_, d)| d);
        self.max_acked_first_order = self.max_acked_first_order.max(newest_first);
        let horizon = self.max_acked_first_order;
        for s in self.slots.iter_mut() {
            if s.acked || s.lost || s.partial || s.tx_count == 0 {
                continue;
            }
            if s.last_order < horizon {
                s.lost = true;
                out.lost_frames += 1;
                out.lost_wire_bytes += s.wire_len as u64;
            } else if recovering && s.last_order < newest_last {
                s.lost = true;
            }
        }
        while self.slots.front().is_some_and(|s| s.acked) {
            self.slots.pop_front();
            self.una = self.una.plus(1);
        }
        out
    }

    /// Retransmission timer expiry at `now`. On the first expiry (`first`), frames
    /// transmitted at least `rto` ago are marked lost; otherwise (line dead) only the
    /// oldest unacked frame is marked, as a probe. Returns how many were marked.
    pub fn on_rto(&mut self, now: Instant, rto: Duration, first: bool) -> u32 {
        let mut marked = 0;
        if first {
            for s in self.slots.iter_mut() {
                if !s.acked
                    && !s.lost
                    && !s.partial
                    && s.tx_count > 0
                    && s.sent_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= rto)
                {
                    s.lost = true;
                    marked += 1;
                }
            }
        }
        if marked == 0 {
            if let Some(s) = self
                .slots
                .iter_mut()
                .find(|s| !s.acked && !s.partial && s.tx_count > 0)
            {
                if !s.lost {
                    s.lost = true;
                    marked += 1;
                }
            }
        }
        marked
    }
}

/// Result of receiving a DATA frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvOutcome {
    /// New frame accepted (in order or buffered).
    New,
    /// Already received.
    Duplicate,
    /// Beyond the receive window: dropped.
    OutOfWindow,
}

/// Receiver side: reassembles frames in order and builds acks.
#[derive(Debug)]
pub struct RecvWindow {
    next: Seq,
    buf: VecDeque<Option<Bytes>>,
    window: u16,
}

impl RecvWindow {
    /// Empty receive window of `window` frames starting at seq 0.
    pub fn new(window: u16) -> Self {
        RecvWindow {
            next: Seq(0),
            buf: VecDeque::new(),
            window: window.clamp(1, MAX_WINDOW),
        }
    }

    /// Next in-order seq expected.
    pub fn next(&self) -> Seq {
        self.next
    }

    /// Stores a received frame.
    pub fn on_data(&mut self, seq: Seq, payload: &[u8]) -> RecvOutcome {
        let d = seq.diff(self.next);
        if d < 0 {
            return RecvOutcome::Duplicate;
        }
        let d = d as usize;
        if d >= self.window as usize {
            return RecvOutcome::OutOfWindow;
        }
        if self.buf.len() <= d {
            self.buf.resize(d + 1, None);
        }
        if self.buf[d].is_some() {
            return RecvOutcome::Duplicate;
        }
        self.buf[d] = Some(Bytes::copy_from_slice(payload));
        RecvOutcome::New
    }

    /// Next in-order payload ready for delivery.
    pub fn pop_ready(&mut self) -> Option<Bytes> {
        if self.buf.front().is_some_and(|s| s.is_some()) {
            self.next = self.next.plus(1);
            self.buf.pop_front().flatten()
        } else {
            None
        }
    }

    /// Frames received beyond a missing one.
    pub fn has_gap(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The ack describing the current state.
    pub fn ack_info(&self) -> AckInfo {
        let mut sack = Sack::new();
        for (i, s) in self.buf.iter().enumerate().skip(1) {
            if s.is_some() {
                sack.set(i - 1);
            }
        }
        AckInfo {
            ack: self.next,
            sack,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests pick a starting instant
mod tests {
    use super::*;

    fn p(n: u8) -> Bytes {
        Bytes::from(vec![n; 4])
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn single_loss_resends_only_that_frame() {
        let t0 = Instant::now();
        let mut s = SendWindow::new(8);
        let mut r = RecvWindow::new(8);
        for i in 0..6 {
            assert!(s.has_room());
            s.push(p(i));
            let (seq, pl, re) = s.next_to_send().unwrap();
            assert!(!re);
            s.on_transmit(seq, t0 + ms(i as u64), 10);
            if i != 2 {
                assert_eq!(r.on_data(seq, &pl), RecvOutcome::New);
            }
        }
        let mut got = Vec::new();
        while let Some(b) = r.pop_ready() {
            got.push(b[0]);
        }
        assert_eq!(got, vec![0, 1]);
        assert!(r.has_gap());
        let a = r.ack_info();
        assert_eq!(a.ack, Seq(2));
        assert!(a.sack.get(0) && a.sack.get(1) && a.sack.get(2) && !a.sack.get(3));
        let out = s.on_ack(&a, t0 + ms(50), false);
        assert_eq!(out.acked_frames, 5);
        assert_eq!(out.lost_frames, 1);
        assert_eq!(out.rtt_sample, Some(ms(45)));
        assert_eq!(s.una(), Seq(2));
        let (seq, pl, re) = s.next_to_send().unwrap();
        assert_eq!((seq, re), (Seq(2), true));
        s.on_transmit(seq, t0 + ms(51), 10);
        assert!(s.next_to_send().is_none(), "nothing else resent");
        assert_eq!(r.on_data(seq, &pl), RecvOutcome::New);
        let mut got = Vec::new();
        while let Some(b) = r.pop_ready() {
            got.push(b[0]);
        }
        assert_eq!(got, vec![2, 3, 4, 5]);
        assert_eq!(r.on_data(Seq(3), b"x"), RecvOutcome::Duplicate);
        let out = s.on_ack(&r.ack_info(), t0 + ms(90), false);
        assert_eq!(out.acked_frames, 1);
        assert_eq!(
            out.rtt_sample, None,
            "Karn: no sample from a retransmission"
        );
        assert!(s.is_empty());
    }

    #[test]
    fn window_limits_and_wraps() {
        let t0 = Instant::now();
        let mut s = SendWindow::new(4);
        let mut r = RecvWindow::new(4);
        let mut delivered = 0u32;
        for round in 0..40_000u32 {
            while s.has_room() && !s.has_unsent() {
                s.push(p(round as u8));
                let (seq, pl, _) = s.next_to_send().unwrap();
                s.on_transmit(seq, t0, 4);
                r.on_data(seq, &pl);
            }
            assert_eq!(s.len(), 4);
            while r.pop_ready().is_some() {
                delivered += 1;
            }
            s.on_ack(&r.ack_info(), t0, false);
        }
        assert!(delivered >= 40_000 * 4 - 4);
        assert_eq!(r.on_data(r.next().plus(4), b"x"), RecvOutcome::OutOfWindow);
        // Bogus acks are ignored.
        s.push(p(1));
        let before = s.len();
        s.on_ack(
            &AckInfo {
                ack: s.una().plus(100),
                sack: Sack::new(),
            },
            t0,
            false,
        );
        assert_eq!(s.len(), before);
    }

    #[test]
    fn rto_first_then_probe() {
        let t0 = Instant::now();
        let mut s = SendWindow::new(8);
        for i in 0..4 {
            s.push(p(i));
            let (seq, _, _) = s.next_to_send().unwrap();
            s.on_transmit(seq, t0 + ms(i as u64 * 10), 10);
        }
        // At 30 ms with rto 20: frames sent at 0 and 10 are stale.
        assert_eq!(s.on_rto(t0 + ms(30), ms(20), true), 2);
        assert_eq!(s.next_to_send().unwrap().0, Seq(0));
        s.on_transmit(Seq(0), t0 + ms(26), 10);
        s.on_transmit(Seq(1), t0 + ms(27), 10);
        // Dead line: later expiries mark only the oldest.
        assert_eq!(s.on_rto(t0 + ms(1000), ms(20), false), 1);
        assert_eq!(s.next_to_send().unwrap().0, Seq(0));
        s.on_transmit(Seq(0), t0 + ms(1001), 10);
        assert!(s.next_to_send().is_none());
        // The probe is acked while recovering: everything sent before it is resent.
        let out = s.on_ack(
            &AckInfo {
                ack: Seq(1),
                sack: Sack::new(),
            },
            t0 + ms(1100),
            true,
        );
        assert_eq!(out.acked_frames, 1);
        assert_eq!(out.lost_frames, 0, "not counted as line errors");
        let mut resent = Vec::new();
        while let Some((seq, _, re)) = s.next_to_send() {
            assert!(re);
            s.on_transmit(seq, t0 + ms(1101), 10);
            resent.push(seq.0);
        }
        assert_eq!(resent, vec![1, 2, 3]);
    }
}
