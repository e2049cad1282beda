//! The transmit path: which frame goes next (handshake, HELLO, CAPS, a
//! resumed or overtaking frame, retransmissions, new data, a standalone ack or
//! keepalive), handed out whole or in pieces, and the preemption that lets an
//! urgent frame cut into a big one.

use std::time::{Duration, Instant};

use super::frame::{self, Hello, Repr};
use super::timers::Timer;
use super::turn::Permit;
use super::{cobs, Features, Link, Seq, Session};

/// The frame being handed out, possibly in pieces.
#[derive(Debug)]
pub(super) struct Tx {
    /// Its encoding, with a leading delimiter if any, and the trailing one.
    pub(super) buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    pub(super) pos: usize,
    /// 1 if `buf` starts with a leading delimiter.
    lead: usize,
    /// Reed-Solomon coded (not COBS): it cannot be cut for a RESUME.
    coded: bool,
    /// A DATA frame (or its RESUME) that can be suspended.
    pub(super) data: Option<TxData>,
}

#[derive(Debug)]
pub(super) struct TxData {
    /// Its place in the order: the seq inside the frame, or the one a frame that
    /// overtook it left (then a RESUME carries it).
    seq: Seq,
    /// The seq written inside the frame.
    frame_seq: Seq,
    /// The whole raw DATA frame with its check.
    raw: Vec<u8>,
    /// Raw bytes of it the receiver has from earlier pieces.
    base: usize,
    /// Line bytes spent on this frame so far (all pieces).
    wire: usize,
    /// What is being handed out: the frame, or a RESUME of it.
    encoding: TxEncoding,
}

/// How a DATA frame in progress is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxEncoding {
    /// The frame itself.
    Frame,
    /// A RESUME from `base`, with a header of this many raw bytes.
    Resume { header: usize },
}

/// A DATA frame stopped for an urgent one, to be finished by a RESUME.
#[derive(Debug)]
pub(super) struct Suspended {
    data: TxData,
    /// The one frame let past has been started.
    pub(super) passed: bool,
}

impl Link {
    fn ack_for_data(&self) -> Option<frame::AckInfo> {
        let want = self.ack_due
            || self.timers.is_set(Timer::Ack)
            || self.ack_repeat > 0
            || self.rcv.has_gap();
        want.then(|| self.rcv.ack_info())
    }

    /// Appends at most one encoded frame to `out` and returns its length (0 if there
    /// is nothing to send now). Priority: handshake, retransmissions, new data,
    /// standalone ack, keepalive.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        self.poll_transmit_max(now, out, usize::MAX)
    }

    /// Appends at most `max` bytes (at least 1) of the frame being sent, starting a
    /// new one if none is, and returns how many (0: nothing to send now). A driver
    /// that paces its writes hands frames out in pieces this way, so that
    /// [`preempt`](Self::preempt) can stop a big frame for an urgent one.
    pub fn poll_transmit_max(&mut self, now: Instant, out: &mut Vec<u8>, max: usize) -> usize {
        if self.tx.is_none() && !self.start_frame_in_turn(now) {
            return 0;
        }
        let Some(tx) = self.tx.as_mut() else {
            return 0;
        };
        let n = (tx.buf.len() - tx.pos).min(max.max(1));
        out.extend_from_slice(&tx.buf[tx.pos..tx.pos + n]);
        tx.pos += n;
        if let Some(d) = &mut tx.data {
            d.wire += n;
        }
        if tx.pos == tx.buf.len() {
            if let Some(tx) = self.tx.take() {
                if let Some(d) = tx.data {
                    self.snd.end_transmit(d.seq, d.wire);
                }
            }
        }
        n
    }

    /// A frame is being handed out and not finished.
    pub fn transmitting(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether [`preempt`](Self::preempt) would stop the current frame: the first
    /// transmission of a DATA frame (or the RESUME of one) with more than
    /// `min_left` bytes still to go, sent as COBS (a coded frame has no cut
    /// points), on an unkeyed link whose peer announced RESUME. (A retransmission is never stopped: the peer may hold it already,
    /// so nothing could take its place in the order.)
    pub fn can_preempt(&self, min_left: usize) -> bool {
        self.features().contains(Features::RESUME)
            && self.keyed.is_none()
            && self.suspended.is_none()
            && self.tx.as_ref().is_some_and(|t| {
                !t.coded
                    && t.data
                        .as_ref()
                        .is_some_and(|d| self.snd.is_first_transmission(d.seq))
                    && t.buf.len() - t.pos > min_left
            })
    }

    /// A frame was stopped by [`preempt`](Self::preempt) and the one payload that
    /// may overtake it has not been given yet: what [`send`](Self::send) takes now
    /// is delivered to the peer *before* the stopped frame's payload (it takes
    /// that frame's place in the order), so it must not depend on it.
    pub fn awaiting_overtaker(&self) -> bool {
        self.suspended.as_ref().is_some_and(|s| !s.passed)
    }

    /// Stops the DATA frame being sent (see [`can_preempt`](Self::can_preempt)) so
    /// that one frame — the next payload [`send`](Self::send) takes, for an urgent
    /// channel — overtakes it: that payload is sent at once under the stopped
    /// frame's sequence number, and the stopped frame is finished right after it
    /// by a RESUME that gives it the next number. The cut falls inside a COBS
    /// group at or after what was handed out, so the receiver gets an
    /// undecodable piece it keeps, never a frame. Returns whether it stopped.
    pub fn preempt(&mut self, min_left: usize) -> bool {
        if !self.can_preempt(min_left) {
            return false;
        }
        let Some(tx) = self.tx.as_mut() else {
            return false;
        };
        let end = tx.buf.len() - 1; // the trailing delimiter
        let enc = &tx.buf[tx.lead..end];
        let Some(p) = cobs::cut_point(enc, tx.pos.saturating_sub(tx.lead)) else {
            return false;
        };
        if end - (tx.lead + p) <= min_left / 2 {
            return false;
        }
        let mut piece = Vec::new();
        cobs::decode_partial(&enc[..p], &mut piece);
        let Some(mut data) = tx.data.take() else {
            return false;
        };
        // Raw bytes of the frame the receiver will hold after this piece.
        data.base += match data.encoding {
            TxEncoding::Frame => piece.len(),
            TxEncoding::Resume { header } => piece.len().saturating_sub(header),
        };
        tx.buf.truncate(tx.lead + p);
        tx.buf.push(0);
        data.wire += 1;
        if data.encoding == TxEncoding::Frame {
            self.stats.frames_suspended += 1;
        }
        self.suspended = Some(Suspended {
            data,
            passed: false,
        });
        true
    }

    /// On a half-duplex medium, starts the next frame only when the turn
    /// allows it (else the Turn timer says when it may), and passes the turn
    /// once this side has nothing more to say or held it for `max_turn`.
    fn start_frame_in_turn(&mut self, now: Instant) -> bool {
        let wants = self.turns.is_some() && self.has_frame_to_send();
        let Some(permit) = self.turns.as_mut().map(|t| t.permit(now, wants)) else {
            return self.start_frame(now);
        };
        match permit {
            Permit::Wait(at) => {
                self.timers.set(Timer::Turn, at);
                false
            }
            Permit::Send => {
                self.start_frame(now)
                    || (self.turns.as_ref().is_some_and(|t| t.owes_pass()) && self.pass_turn(now))
            }
            Permit::Claim => {
                let started = self.start_frame(now);
                if !started {
                    if let Some(t) = &mut self.turns {
                        t.no_claim();
                    }
                }
                started
            }
            Permit::PassNow => self.pass_turn(now),
        }
    }

    /// Whether [`start_frame`](Self::start_frame) would find a frame to send
    /// (a keyed handshake message aside).
    fn has_frame_to_send(&self) -> bool {
        self.hello_due
            || self.keyed.as_ref().is_some_and(|k| !k.ready())
            || self.caps.is_due()
            || self.ack_due
            || self.keepalive_due
            || (self.is_up() && (self.suspended.is_some() || self.snd.next_to_send().is_some()))
    }

    /// Whether the turn may be passed with a PASS frame: the session is up and
    /// the peer announced it understands one.
    fn can_send_pass(&self) -> bool {
        self.turns.is_some() && self.is_up() && self.features().contains(Features::HALF_DUPLEX)
    }

    /// Passes the turn: a PASS frame (true: it is in `self.tx`), or silence
    /// before the session and CAPS allow one (the peer claims the turn).
    fn pass_turn(&mut self, now: Instant) -> bool {
        if self.can_send_pass() {
            self.pass_due = true;
            if self.start_frame(now) {
                return true;
            }
        }
        if let Some(t) = &mut self.turns {
            t.on_pass(now.max(self.last_tx_end));
        }
        false
    }

    /// Builds the next frame into `self.tx`; false if there is none to send.
    fn start_frame(&mut self, now: Instant) -> bool {
        let pass_due = std::mem::take(&mut self.pass_due);
        let mut passing = false;
        let key = frame::session_key(self.epoch, self.peer_epoch.unwrap_or(0));
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        let mut payload_len = 0usize;
        let mut carried_ack = false;
        let mut data: Option<TxData> = None;
        let mut resume_of: Option<TxData> = None;
        let mut handshake = false;
        if let Some(k) = self.keyed.as_mut() {
            // Keyed: handshake messages first; nothing else until keys are agreed.
            if k.poll_handshake(now, &mut raw) {
                self.stats.hellos_sent += 1;
                handshake = true;
            } else if !k.ready() {
                self.raw = raw;
                return false;
            }
        }
        if handshake {
            // The handshake message is this frame.
        } else if pass_due && self.can_send_pass() {
            // The turn's last frame: the latest ack, and the turn with it.
            Repr::Pass(self.rcv.ack_info()).emit(&key, &mut raw);
            carried_ack = true;
            passing = true;
            self.stats.acks_sent += 1;
        } else if self.hello_due {
            self.hello_due = false;
            Repr::Hello(Hello {
                epoch: self.epoch,
                seen: self.peer_epoch.unwrap_or(0),
                window: self.cfg.window,
                reply: self.is_up(),
            })
            .emit(&key, &mut raw);
            self.stats.hellos_sent += 1;
            if let Session::Probing { interval, .. } = &mut self.session {
                self.timers.set(Timer::Hello, now + *interval);
                *interval = (*interval * 2).min(self.cfg.keepalive);
            }
            self.caps_with_hello();
        } else if let Some(caps) = self.take_due_caps() {
            caps.emit(&key, &mut raw);
        } else if self.is_up() {
            // A suspended frame lets one new frame past, then is resumed.
            let mut pick = None;
            if let Some(sus) = &mut self.suspended {
                if !self.snd.is_unacked(sus.data.seq) {
                    self.suspended = None;
                } else if !sus.passed && self.snd.has_unsent() {
                    sus.passed = true;
                    if let Some((q, p)) = self.snd.next_unsent() {
                        // The overtaking payload takes the stopped frame's
                        // place in the order, and the stopped frame the next.
                        let seq = if self.snd.overtake(sus.data.seq, q) {
                            std::mem::replace(&mut sus.data.seq, q)
                        } else {
                            q
                        };
                        pick = Some((seq, p, false));
                        self.stats.frames_overtaken += u64::from(seq != q);
                    }
                } else {
                    resume_of = self.suspended.take().map(|s| s.data);
                }
            }
            if resume_of.is_none() && pick.is_none() && self.suspended.is_none() {
                pick = self.snd.next_to_send();
            }
            if let Some(d) = &mut resume_of {
                let header = frame::Resume {
                    offset: d.base as u16,
                    renumber: (d.seq != d.frame_seq).then_some(d.seq),
                };
                header.emit(&key, &mut raw);
                raw.extend_from_slice(&d.raw[d.base..]);
                d.encoding = TxEncoding::Resume {
                    header: header.header_len(),
                };
            } else if let Some((seq, payload, retx)) = pick {
                let ack = self.ack_for_data();
                carried_ack = ack.is_some();
                Repr::Data {
                    seq,
                    ack,
                    payload: &payload,
                }
                .emit(&key, &mut raw);
                payload_len = payload.len();
                self.snd.begin_transmit(seq, now);
                if retx {
                    self.stats.frames_retransmitted += 1;
                }
                self.stats.payload_bytes_sent += payload_len as u64;
                if !self.timers.is_set(Timer::Retransmit) {
                    self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                }
                data = Some(TxData {
                    seq,
                    frame_seq: seq,
                    raw: raw.clone(),
                    base: 0,
                    wire: 0,
                    encoding: TxEncoding::Frame,
                });
            } else if self.ack_due || self.keepalive_due {
                // Nothing else to send: on a half-duplex medium this ack
                // ends the turn too.
                passing = self.can_send_pass();
                let info = self.rcv.ack_info();
                if passing {
                    Repr::Pass(info)
                } else {
                    Repr::Ack(info)
                }
                .emit(&key, &mut raw);
                carried_ack = true;
                self.stats.acks_sent += 1;
            }
        }
        if raw.is_empty() {
            self.raw = raw;
            return false;
        }
        if carried_ack {
            self.ack_due = false;
            self.timers.stop(Timer::Ack);
            self.ack_repeat = self.ack_repeat.saturating_sub(1);
        }
        if let Some(k) = self.keyed.as_mut() {
            if !handshake && resume_of.is_none() {
                // Sealed once per transmission, so a retransmission takes a new
                // nonce; a RESUME resends these very bytes, never resealed.
                k.seal(&mut raw);
                if let Some(d) = &mut data {
                    d.raw.clone_from(&raw);
                }
            }
        }
        let mut buf = Vec::with_capacity(super::fec::max_wire_len(raw.len()) + 2);
        // After an idle line, a leading delimiter flushes any garbage the receiver
        // may hold, so this frame is not merged with it.
        let lead = usize::from(now >= self.last_tx_end + Duration::from_millis(5));
        if lead == 1 {
            buf.push(0);
        }
        let coded = self.encode_frame(&raw, &mut buf);
        let n = buf.len();
        self.raw = raw;
        self.keepalive_due = false;
        self.last_tx = now;
        if self.is_up() {
            self.timers.set(Timer::Keepalive, now + self.cfg.keepalive);
        }
        self.last_tx_end = now.max(self.last_tx_end) + self.cfg.byte_time(n);
        if let Some(t) = &mut self.turns {
            t.on_transmit(now, self.last_tx_end);
            if passing {
                t.on_pass(self.last_tx_end);
            }
        }
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += n as u64;
        self.stats.framing_overhead_bytes += (n - payload_len) as u64;
        // A RESUME continues the same transmission of the same frame.
        let data = data.or(resume_of);
        self.tx = Some(Tx {
            buf,
            pos: 0,
            lead,
            coded,
            data,
        });
        true
    }
}
