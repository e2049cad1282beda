//! The receive path: line bytes are decoded into frames (COBS), pieces of
//! suspended frames are put back together (RESUME), frames are checked (CRC,
//! or the keyed link's AEAD) and acted on — HELLOs decide sessions, DATA is
//! delivered in order exactly once, acks free the send window.

use std::time::Instant;

use super::arq::{AckOutcome, RecvOutcome, MAX_WINDOW};
use super::frame::{self, Hello, ParseError, Repr, KIND_RESUME, MAX_RAW_FRAME};
use super::timers::Timer;
use super::{
    cobs, handshake, session, Link, LinkEvent, Mismatch, Seq, Session, HELLO_INITIAL, LOOP_HELLOS,
};

impl Link {
    /// Feeds raw bytes received from the line.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.foreign.heard(now, bytes);
        if let Some(t) = &mut self.turns {
            t.on_rx_bytes(now);
        }
        let mut dec = std::mem::replace(&mut self.decoder, cobs::Decoder::new(0));
        dec.push_delimited(bytes, |mut d| {
            if let Some(wire) = d.encoded() {
                if self.on_coded_chunk(now, wire) {
                    return;
                }
            }
            self.on_chunk(now, d.decode())
        });
        self.decoder = dec;
        // Once a session was agreed the peer speaks sfs: garbage is noise, not
        // a mismatch.
        if !self.is_up() {
            if let Some(m) = self.foreign.judge(now, self.cfg.mismatch_after) {
                self.events.push_back(LinkEvent::ProtocolMismatch(m));
            }
        }
    }

    fn on_chunk(&mut self, now: Instant, chunk: cobs::Chunk<'_>) {
        let resume = |raw: &[u8]| raw.first().is_some_and(|b| b >> 4 == KIND_RESUME);
        let raw = match chunk {
            cobs::Chunk::Frame(raw) if resume(raw) && !self.cfg.features.is_empty() => {
                self.on_resume(now, raw, true);
                return;
            }
            cobs::Chunk::Frame(raw) => raw,
            cobs::Chunk::Partial(raw) if self.cfg.features.is_empty() => {
                let _ = raw;
                self.stats.malformed += 1;
                return;
            }
            cobs::Chunk::Partial(raw) if resume(raw) => {
                self.on_resume(now, raw, false);
                return;
            }
            cobs::Chunk::Partial(raw) => {
                // Perhaps a suspended frame: keep its bytes (one slot, bounded) for
                // the RESUME that may follow. Damage looks the same and is
                // harmless here: only a RESUME at exactly this length continues it,
                // and the frame's own check covers the whole.
                let kept = self.rx_kept.get_or_insert_with(Vec::new);
                kept.clear();
                if raw.len() <= MAX_RAW_FRAME {
                    kept.extend_from_slice(raw);
                } else {
                    self.rx_kept = None;
                }
                return;
            }
            cobs::Chunk::TooLong => {
                self.stats.malformed += 1;
                return;
            }
        };
        self.on_raw(now, raw);
    }

    /// A RESUME (kind 5): `offset:u16` then the rest of the frame whose first
    /// `offset` raw bytes came in earlier pieces. `complete` is false for a RESUME
    /// that was itself suspended (its bytes extend the kept piece).
    fn on_resume(&mut self, now: Instant, raw: &[u8], complete: bool) {
        let key = frame::session_key(self.peer_epoch.unwrap_or(0), self.epoch);
        let (header, rest) = match frame::Resume::parse(raw, &key) {
            Ok(r) => r,
            // A RESUME that was itself suspended within its header adds no
            // bytes; the next one continues from the same offset.
            Err(ParseError::Truncated) if !complete => return,
            Err(_) => {
                self.stats.resume_mismatches += 1;
                self.rx_kept = None;
                return;
            }
        };
        let offset = header.offset as usize;
        let Some(mut kept) = self.rx_kept.take() else {
            self.stats.resume_mismatches += 1;
            return;
        };
        if kept.len() != offset || offset + rest.len() > MAX_RAW_FRAME {
            self.stats.resume_mismatches += 1;
            return;
        }
        kept.extend_from_slice(rest);
        if complete {
            self.stats.frames_resumed += 1;
            self.on_raw_at(now, &kept, header.renumber);
        } else {
            // Only the final RESUME's seq counts: a frame may be overtaken
            // again while it is being resumed.
            self.rx_kept = Some(kept);
        }
    }

    fn on_raw(&mut self, now: Instant, raw: &[u8]) {
        self.on_plain_raw(now, raw);
    }

    /// A raw frame; `renumber` is the place in the order a RESUME gave it (a
    /// frame overtook it), instead of the seq inside it. Returns whether it
    /// passed its check (CRC, or the keyed link's AEAD).
    pub(super) fn on_raw_at(&mut self, now: Instant, raw: &[u8], renumber: Option<Seq>) -> bool {
        if self.keyed.is_some() {
            if renumber.is_some() {
                // Never sent on a keyed link (its seq would not be authenticated).
                self.stats.malformed += 1;
                return false;
            }
            return self.on_keyed_chunk(now, raw);
        }
        let key = frame::session_key(self.peer_epoch.unwrap_or(0), self.epoch);
        match frame::parse(raw, &key) {
            Ok(repr) => {
                self.errors.record(1, 0, raw.len() as u64 + 2);
                let repr = match (repr, renumber) {
                    (repr, None) => repr,
                    (Repr::Data { ack, payload, .. }, Some(seq)) => {
                        Repr::Data { seq, ack, payload }
                    }
                    (_, Some(_)) => {
                        self.stats.malformed += 1;
                        return false;
                    }
                };
                self.on_frame(now, repr);
                return true;
            }
            Err(ParseError::BadCrc) if self.is_own_frame(raw) => {
                // Our own DATA/ACK came back (a loop, or a bus that echoes):
                // not a line error, and not the peer.
                self.stats.own_frames += 1;
            }
            Err(ParseError::BadCrc) => {
                self.stats.crc_failures += 1;
                // Lines are usually symmetric: what we lose says something about
                // what our frames meet.
                self.errors.record(1, 1, raw.len() as u64 + 2);
                self.update_payload_size();
            }
            Err(ParseError::Version(v)) => {
                self.stats.malformed += 1;
                self.report_mismatch(Mismatch::Version(v));
            }
            Err(ParseError::UnknownKind(handshake::KIND_HANDSHAKE)) => {
                // An intact keyed-link handshake: the peer has a secret, we do not.
                self.stats.malformed += 1;
                self.report_mismatch(Mismatch::PeerNeedsSecret);
            }
            Err(_) => self.stats.malformed += 1,
        }
        false
    }

    /// A frame that failed the CRC under the receive key passes under our
    /// send key: we sent it. (One more CRC per bad frame, only.)
    fn is_own_frame(&self, raw: &[u8]) -> bool {
        self.peer_epoch.is_some_and(|p| p != self.epoch)
            && frame::parse(
                raw,
                &frame::session_key(self.epoch, self.peer_epoch.unwrap_or(0)),
            )
            .is_ok()
    }

    /// A frame on a keyed link: handshake messages and sealed frames only.
    /// Returns whether it was authentic.
    fn on_keyed_chunk(&mut self, now: Instant, raw: &[u8]) -> bool {
        let Some(keyed) = self.keyed.as_mut() else {
            return false;
        };
        let mut plain = std::mem::take(&mut self.plain);
        let sessions = keyed.sessions;
        let got = keyed.receive(now, raw, &mut plain);
        while let Some(r) = keyed.poll_report() {
            self.events
                .push_back(LinkEvent::ProtocolMismatch(Mismatch::Keyed(r)));
        }
        if keyed.sessions != sessions && (self.is_up() || self.peer_epoch.is_some()) {
            // New keys replaced a session we had: the peer restarted (or we
            // did and it answered). Its sequence numbers start afresh, so ours
            // must too — frames of the old session still waiting here would
            // otherwise be delivered in the new one's place.
            if self.is_up() {
                self.events.push_back(LinkEvent::PeerRestarted);
            }
            self.reset_session(HELLO_INITIAL);
            // Its epoch in the new session comes with its next HELLO, which
            // must not count as a second restart.
            self.peer_epoch = None;
            self.caps.unconfirm();
            self.hello_due = true;
        }
        // Received frames do not feed the frame-size estimate on a keyed link:
        // a frame that fails its tag is as likely an injection as line noise,
        // and anyone on the line can inject them for free (a few tiny forged
        // frames, each counted as a lost frame of its own tiny size, used to
        // pin the payload at 64 B). Flooring junk at a frame's size would only
        // raise the price of that attack, and counting the frames that do
        // open without those that fail would bias the estimate low. What
        // sizes our frames is what the peer's sealed — authenticated — acks
        // prove about *our* frames (`on_ack`, and the RTO while we still hear
        // the peer): only a real loss on the line moves it.
        match got {
            handshake::Received::Frame => match frame::parse_body(&plain) {
                Ok(repr) => self.on_frame(now, repr),
                // Authentic yet unparsable: the peer's bug, not noise.
                Err(_) => self.stats.malformed += 1,
            },
            handshake::Received::Handshake | handshake::Received::Refused => {
                // Intact sfs frames: the peer speaks sfs (no "not sfs" report).
                self.foreign.heard_sfs(now);
                if got == handshake::Received::Handshake {
                    self.stats.frames_received += 1;
                }
            }
            handshake::Received::Corrupt => self.stats.crc_failures += 1,
            handshake::Received::Replay => self.stats.duplicates += 1,
            handshake::Received::Malformed => self.stats.malformed += 1,
        }
        self.plain = plain;
        matches!(
            got,
            handshake::Received::Frame | handshake::Received::Handshake
        )
    }

    fn on_frame(&mut self, now: Instant, repr: Repr<'_>) {
        if let Repr::Hello(h) = &repr {
            if h.epoch == self.epoch || h.epoch == self.prev_epoch {
                self.on_own_hello();
                return;
            }
        }
        if let Repr::Caps(c) = &repr {
            // Our own CAPS came back through a loop: answering it would make a
            // CAPS ping-pong with ourselves at line rate.
            if c.epoch == self.epoch || c.epoch == self.prev_epoch {
                self.stats.own_frames += 1;
                return;
            }
        }
        self.stats.frames_received += 1;
        if let Some(t) = &mut self.turns {
            let pass = matches!(repr, Repr::Pass(_));
            t.on_frame(now, pass);
            if pass && self.timers.is_set(Timer::Ack) {
                // The medium is ours now: an ack held back for company goes
                // with this turn at once (after the turnaround), not later.
                self.timers.stop(Timer::Ack);
                self.ack_due = true;
            }
        }
        self.foreign.heard_sfs(now);
        self.foreign.frame_decoded();
        if self.is_up() {
            self.timers.set(Timer::PeerDead, now + self.cfg.dead_after);
        }
        self.rx_since_rto = true;
        match repr {
            Repr::Hello(h) => self.on_hello(now, &h),
            Repr::Data { seq, ack, payload } => {
                // A valid keyed frame proves the peer agreed on this session.
                self.on_session_frame(now);
                if let Some(a) = ack {
                    self.on_ack(now, &a);
                }
                match self.rcv.on_data(seq, payload) {
                    RecvOutcome::New => {
                        while let Some(p) = self.rcv.pop_ready() {
                            self.stats.payload_bytes_delivered += p.len() as u64;
                            self.events.push_back(LinkEvent::Delivered(p));
                        }
                        if self.rcv.has_gap() {
                            self.ack_due = true;
                        } else if !self.timers.is_set(Timer::Ack) {
                            self.timers.set(Timer::Ack, now + self.cfg.ack_delay);
                        }
                    }
                    RecvOutcome::Duplicate => {
                        self.stats.duplicates += 1;
                        self.ack_due = true;
                    }
                    RecvOutcome::OutOfWindow => self.ack_due = true,
                }
                self.ack_repeat = 2;
            }
            Repr::Ack(a) | Repr::Pass(a) => {
                self.on_session_frame(now);
                self.on_ack(now, &a);
            }
            Repr::Caps(c) => self.on_caps(c),
        }
    }

    /// Our own HELLO came back. Taking it as the peer's would agree a session
    /// with ourselves (it carries our epoch, and our reply to it would carry
    /// it as `seen`); it is ignored, so a real peer that appears later is
    /// answered as usual. Epochs are random 32-bit values: a real peer with
    /// ours is a 2⁻³² coincidence, and a restart picks another.
    fn on_own_hello(&mut self) {
        self.stats.own_frames += 1;
        if let Session::Probing { own_hellos, .. } = &mut self.session {
            *own_hellos = own_hellos.saturating_add(1);
            if *own_hellos >= LOOP_HELLOS {
                self.report_mismatch(Mismatch::LoopedBack);
            }
        }
    }

    fn on_hello(&mut self, now: Instant, h: &Hello) {
        let act = session::on_hello(self.epoch, self.peer_epoch, h);
        if act.restart {
            if self.is_up() {
                self.events.push_back(LinkEvent::PeerRestarted);
            }
            self.reset_session(HELLO_INITIAL);
            self.caps.unconfirm();
        }
        self.peer_epoch = Some(h.epoch);
        if let Some(t) = &mut self.turns {
            t.set_epochs(self.epoch, h.epoch);
        }
        self.peer_window = h.window.clamp(1, MAX_WINDOW);
        if act.agreed {
            self.on_session_frame(now);
        }
        if act.reply {
            self.hello_due = true;
        }
    }

    fn on_ack(&mut self, now: Instant, a: &frame::AckInfo) {
        let recovering = self.rtt.backoff() > 0;
        let out: AckOutcome = self.snd.on_ack(a, now, recovering);
        if let Some(s) = out.rtt_sample {
            self.rtt.sample(s);
        }
        self.stats.payload_bytes_acked += out.acked_payload_bytes;
        self.errors.record(
            out.acked_frames + out.lost_frames,
            out.lost_frames,
            out.acked_wire_bytes + out.lost_wire_bytes,
        );
        self.update_payload_size();
        if out.acked_frames > 0 {
            self.rtt.on_progress();
            self.arm_retransmit(now);
        }
    }
}
