//! Records from the peer: opens, data (plain and compressed), credit, the
//! ends of a channel, and what a violation or a lost session does to the
//! channels they touch.

use std::collections::{HashMap, HashSet, VecDeque};

use super::channel::{append_bounded, data_refused, Channel, Phase, RecvHalf, Reply};
use super::credit::SendCredit;
use super::wire::{self, truncate_str, Record, MAX_TEXT_LEN};
use super::*;

impl Mux {
    // ----- input ------------------------------------------------------------

    /// Handle one link payload from the peer (any number of records).
    /// Violations on a channel reset that channel. A payload that cannot be
    /// decoded resets every channel (as [`Mux::handle_session_reset`]) and
    /// returns `Err`: the caller should restart the link session.
    pub fn handle_payload(&mut self, payload: &[u8]) -> Result<(), MuxError> {
        self.stats.payloads_received += 1;
        let recs = match wire::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                self.stats.protocol_errors += 1;
                self.handle_session_reset(SessionEnd::Undecodable(e.clone()));
                return Err(MuxError::Protocol(e));
            }
        };
        for r in recs {
            self.on_record(r);
        }
        Ok(())
    }

    pub(super) fn stray_reset(&mut self, initiator: bool, id: u16, reason: &'static str) {
        self.stats.protocol_errors += 1;
        if self.strays < MAX_STRAY {
            self.strays += 1;
            self.replies.push_back(Reply::StrayReset {
                initiator,
                id,
                reason,
            });
        }
    }

    fn on_record(&mut self, r: Record<'_>) {
        match r {
            Record::Open {
                id,
                window,
                service,
            } => return self.on_open(id, window, service, None),
            Record::OpenTo {
                id,
                window,
                service,
                port,
                host,
            } => {
                let target = Target {
                    host: host.to_owned(),
                    port,
                };
                return self.on_open(id, window, service, Some(target));
            }
            _ => {}
        }
        let (initiator, id) = r.channel();
        let Some(&h) = self.wire.get(&(initiator, id)) else {
            // Nothing can legitimately arrive for an unknown id except a RESET
            // crossing our REFUSE (or answering a stray RESET): ignore those.
            if !matches!(r, Record::Reset { .. }) {
                self.stray_reset(!initiator, id, "unknown channel");
            }
            return;
        };
        let aborted = self
            .channels
            .get(&h)
            .is_some_and(|c| c.phase == Phase::Aborted);
        match r {
            Record::Open { .. } | Record::OpenTo { .. } => unreachable!("handled above"),
            Record::Reset { reason, .. } => self.on_reset(h, reason),
            Record::Refuse { reason, detail, .. } => self.on_refuse(h, reason, detail),
            Record::Close { .. } => self.on_close(h),
            // Records that crossed our RESET.
            _ if aborted => {}
            Record::OpenOk { window, .. } => self.on_open_ok(h, window),
            Record::Data { data, .. } => self.on_data(h, data),
            Record::DataLz4 { raw, block, .. } => self.on_data_lz4(h, raw, block),
            Record::Credit { delta, .. } => self.on_credit(h, delta),
            Record::Eof { .. } => self.on_eof_record(h, None),
            Record::Exit { status, .. } => self.on_eof_record(h, Some(status)),
        }
    }

    /// An OPEN (or OPEN_TO, with `target`) from the peer.
    fn on_open(&mut self, id: u16, window: u32, service: &str, target: Option<Target>) {
        let key = (true, id);
        if let Some(&h) = self.wire.get(&key) {
            self.violation(h, "OPEN for a channel id in use");
            return;
        }
        // A host name with a control, line-separator or bidi character
        // names no host, and would forge log lines once logged: a
        // protocol violation, refused before any state exists.
        let bad_host = target
            .as_ref()
            .is_some_and(|t| t.host.chars().any(crate::stats::is_unsafe_char));
        if bad_host {
            self.stats.protocol_errors += 1;
        }
        if bad_host || self.channels.len() >= self.cfg.max_channels as usize {
            let (reason, detail) = if bad_host {
                (RefuseReason::Other, "invalid host name")
            } else {
                (RefuseReason::TooManyChannels, "")
            };
            if self.strays < MAX_STRAY {
                self.strays += 1;
                self.replies.push_back(Reply::Refuse {
                    id,
                    reason,
                    detail: detail.to_owned(),
                    stray: true,
                });
            } else {
                self.stats.refusals_dropped += 1;
            }
            return;
        }
        let h = self.new_handle(true, id);
        self.channels.insert(
            h,
            Channel::new(
                key,
                service.to_owned(),
                Phase::Undecided,
                self.cfg.window,
                window,
            ),
        );
        self.wire.insert(key, h);
        self.stats.incoming_total += 1;
        self.events.push_back(MuxEvent::Incoming {
            ch: h,
            service: service.to_owned(),
            target,
        });
    }

    fn on_reset(&mut self, h: ChannelId, reason: &str) {
        self.stats.resets_received += 1;
        let c = live(&mut self.channels, h);
        c.peer_final_received = true;
        if c.app_live() {
            self.events.push_back(MuxEvent::Reset {
                ch: h,
                reason: ResetReason::ByPeer(reason.to_owned()),
                unconfirmed: c.unconfirmed(),
            });
        }
        // Answered by a RESET unless our final record is already out.
        self.abort(h, String::new());
    }

    fn on_refuse(&mut self, h: ChannelId, reason: RefuseReason, detail: &str) {
        let c = live(&mut self.channels, h);
        // Legal only as the answer to our OPEN (possibly crossing our
        // RESET of it).
        if !matches!(c.phase, Phase::Opening { open_sent: true } | Phase::Aborted) {
            self.violation(h, "REFUSE after OPEN_OK");
            return;
        }
        // Final for both directions: any RESET we queued goes stale.
        c.peer_final_received = true;
        c.own_final = OwnFinal::Sent;
        if c.app_live() {
            self.events.push_back(MuxEvent::Refused {
                ch: h,
                reason,
                detail: detail.to_owned(),
            });
        }
        c.phase = Phase::Aborted;
        self.maybe_release(h);
    }

    fn on_close(&mut self, h: ChannelId) {
        let c = live(&mut self.channels, h);
        if c.phase == Phase::Aborted {
            c.peer_final_received = true;
            self.maybe_release(h);
            return;
        }
        if c.send != SendHalf::EofSent {
            self.violation(h, "CLOSE before our EOF");
            return;
        }
        c.peer_final_received = true;
        self.on_eof(h, None);
        self.maybe_release(h);
    }

    fn on_open_ok(&mut self, h: ChannelId, window: u32) {
        let c = live(&mut self.channels, h);
        if c.phase != (Phase::Opening { open_sent: true }) {
            self.violation(h, "unexpected OPEN_OK");
            return;
        }
        c.phase = Phase::Established;
        c.credit = SendCredit::new(window);
        self.events.push_back(MuxEvent::Accepted { ch: h });
        Self::maybe_queue_eof(&mut self.ctl, h, c);
    }

    fn on_data(&mut self, h: ChannelId, data: &[u8]) {
        let c = live(&mut self.channels, h);
        if let Some(why) = data_refused(c) {
            self.violation(h, why);
            return;
        }
        if let Err(e) = c.rxw.on_data(data.len()) {
            self.violation(h, e);
            return;
        }
        self.stats.bytes_received += data.len() as u64;
        if let Some(hist) = &mut c.rx_hist {
            hist.push(data);
        }
        deliver(&mut self.events, h, c, data, self.cfg.window as usize);
    }

    fn on_data_lz4(&mut self, h: ChannelId, raw: u16, block: &[u8]) {
        let c = live(&mut self.channels, h);
        if let Some(why) = data_refused(c) {
            self.violation(h, why);
            return;
        }
        // Not negotiated: our compress is off, or this session's
        // features (once known) do not include it.
        if !self.cfg.compress || (self.peer_codec_known && self.peer_codec.is_none()) {
            self.violation(h, "compressed DATA not negotiated");
            return;
        }
        // The announced length is checked against the window before
        // anything is decompressed: a hostile record cannot expand
        // beyond what the channel may hold.
        let raw = usize::from(raw);
        if let Err(e) = c.rxw.on_data(raw) {
            self.violation(h, e);
            return;
        }
        let hist = c.rx_hist.get_or_insert_with(Box::default);
        self.z_out.clear();
        self.z_out.resize(raw, 0);
        if let Err(e) = compress::decompress(block, hist.dict(), &mut self.z_out) {
            // Never hand out bytes that may be wrong.
            self.violation(h, e);
            return;
        }
        hist.push(&self.z_out);
        self.stats.bytes_received += raw as u64;
        self.stats.compressed_bytes_received += raw as u64;
        deliver(
            &mut self.events,
            h,
            c,
            &self.z_out,
            self.cfg.window as usize,
        );
    }

    fn on_credit(&mut self, h: ChannelId, delta: u32) {
        let c = live(&mut self.channels, h);
        if c.phase != Phase::Established {
            self.violation(h, "CREDIT before OPEN_OK");
            return;
        }
        // Consumption confirmed, even when it grants nothing.
        c.unconfirmed_on_wire = c.unconfirmed_on_wire.saturating_sub(delta.into());
        if c.send == SendHalf::EofSent {
            return; // sent before the peer saw our EOF: harmless
        }
        if let Err(e) = c.credit.grant(delta) {
            self.violation(h, e);
            return;
        }
        if !c.tx.is_empty() {
            self.sched.wake(h, c.tx.len());
        }
    }

    /// An EOF, or an EXIT carrying `exit`.
    fn on_eof_record(&mut self, h: ChannelId, exit: Option<ExitStatus>) {
        let c = live(&mut self.channels, h);
        if c.phase != Phase::Established || c.recv != RecvHalf::Open {
            self.violation(h, "unexpected EOF");
            return;
        }
        self.on_eof(h, exit);
    }

    /// The peer's EOF (or EXIT with `exit`, or a CLOSE implying EOF) arrived.
    pub(super) fn on_eof(&mut self, h: ChannelId, exit: Option<ExitStatus>) {
        let c = self.channels.get_mut(&h).expect("live channel");
        if c.recv == RecvHalf::Open {
            c.recv = RecvHalf::EofReceived { exit };
            Self::report_read_closed_if_due(&mut self.events, h, c);
        }
        Self::maybe_queue_close(&mut self.ctl, h, c);
    }

    /// `ReadClosed` (preceded by `PeerExited` if the peer sent EXIT) is
    /// reported once the peer's EOF is here and every byte before it was read.
    pub(super) fn report_read_closed_if_due(
        events: &mut VecDeque<MuxEvent>,
        h: ChannelId,
        c: &mut Channel,
    ) {
        if let RecvHalf::EofReceived { exit } = c.recv {
            if c.rx.is_empty() && c.app_live() {
                c.recv = RecvHalf::ReadClosed;
                if let Some(status) = exit {
                    events.push_back(MuxEvent::PeerExited { ch: h, status });
                }
                events.push_back(MuxEvent::ReadClosed { ch: h });
            }
        }
    }

    pub(super) fn violation(&mut self, h: ChannelId, what: &'static str) {
        self.stats.protocol_errors += 1;
        let reason = ResetReason::Violation(what);
        // What the peer is told in the RESET record.
        let told = reason.to_string();
        let c = self.channels.get_mut(&h).expect("live channel");
        if c.app_live() {
            self.events.push_back(MuxEvent::Reset {
                ch: h,
                reason,
                unconfirmed: c.unconfirmed(),
            });
        }
        self.abort(h, truncate_str(&told, MAX_TEXT_LEN).to_owned());
    }

    /// Tear the channel down on our side (the application's handle dies; it
    /// must already have been told, or have asked for it) and send RESET
    /// unless our final record already left.
    pub(super) fn abort(&mut self, h: ChannelId, reason: String) {
        let c = self.channels.get_mut(&h).expect("live channel");
        self.sched.forget(h);
        if c.phase == (Phase::Opening { open_sent: false }) {
            // The OPEN never left: the peer knows nothing, forget everything
            // (the queued OPEN included).
            self.wire.remove(&c.key);
            self.channels.remove(&h);
            self.ctl.retain(|x| !matches!(x, Ctl(q, _) if *q == h));
            return;
        }
        c.phase = Phase::Aborted;
        c.discard();
        if matches!(c.own_final, OwnFinal::NotYet | OwnFinal::CloseQueued) {
            c.own_final = OwnFinal::ResetQueued;
            self.ctl.push_back(Ctl(h, CtlKind::Reset(reason)));
        }
        self.maybe_release(h);
    }

    /// Once both final records crossed, the wire id is free (rule 6) and the
    /// channel ends; the application learns `Closed` unless it already had a
    /// terminal event. (A clean end leaves nothing unread: our CLOSE waited
    /// until the application consumed everything.)
    pub(super) fn maybe_release(&mut self, h: ChannelId) {
        let Some(c) = self.channels.get(&h) else {
            return;
        };
        if !c.released() {
            return;
        }
        debug_assert!(c.rx.is_empty() && c.held == 0);
        self.wire.remove(&c.key);
        self.sched.forget(h);
        if c.app_live() {
            self.events.push_back(MuxEvent::Closed { ch: h });
            self.stats.closed_total += 1;
        }
        self.channels.remove(&h);
    }

    /// The link lost the session (peer restarted): every channel is reset
    /// (a [`MuxEvent::Reset`] for each the application knows of), all state and
    /// queued output is dropped. Pending events of those channels are dropped
    /// too, so nothing from before is delivered afterwards. New channels work
    /// at once.
    pub fn handle_session_reset(&mut self, why: SessionEnd) {
        self.stats.session_resets += 1;
        let unannounced: HashSet<ChannelId> = self
            .events
            .iter()
            .filter_map(|e| match e {
                MuxEvent::Incoming { ch, .. } => Some(*ch),
                _ => None,
            })
            .collect();
        let channels = &self.channels;
        self.events.retain(|e| !channels.contains_key(&e.channel()));
        let mut dead: Vec<(ChannelId, u64)> = self
            .channels
            .iter()
            .filter(|(h, c)| c.app_live() && !unannounced.contains(h))
            .map(|(h, c)| (*h, c.unconfirmed()))
            .collect();
        dead.sort();
        for (ch, unconfirmed) in dead {
            self.events.push_back(MuxEvent::Reset {
                ch,
                reason: ResetReason::SessionEnded(why.clone()),
                unconfirmed,
            });
        }
        self.channels.clear();
        self.wire.clear();
        self.ctl.clear();
        self.replies.clear();
        self.refusals_queued = 0;
        self.strays = 0;
        self.sched.clear();
        // The next session announces its features afresh.
        self.peer_codec = None;
        self.peer_codec_known = false;
    }
}

/// The channel a wire id in the table points at.
fn live(channels: &mut HashMap<ChannelId, Channel>, h: ChannelId) -> &mut Channel {
    channels.get_mut(&h).expect("wire map points at a channel")
}

/// Received bytes for the application: buffered (within `window`), and
/// `Readable` reported once until `read` drains the buffer.
fn deliver(
    events: &mut VecDeque<MuxEvent>,
    h: ChannelId,
    c: &mut Channel,
    data: &[u8],
    window: usize,
) {
    append_bounded(&mut c.rx, data, window);
    if !c.readable_notified {
        c.readable_notified = true;
        events.push_back(MuxEvent::Readable { ch: h });
    }
}
