//! The channel multiplexer: many byte-stream channels over one reliable,
//! ordered link, as a pure state machine (no I/O, no clock, no tokio).
//!
//! # Model
//! The link below carries *payloads* (up to `max` bytes, 64..~500) reliably and
//! in order, and reports when the peer restarted. [`Mux`] turns payloads from
//! the peer into [`MuxEvent`]s ([`Mux::handle_payload`], [`Mux::poll_event`]) and
//! application calls ([`Mux::open`], [`Mux::send`], ...) into payloads for the
//! peer ([`Mux::poll_payload`]). Both ends run the same code: either may open
//! channels.
//!
//! # Wire format (summary; `docs/mux-protocol.md` is normative)
//! A payload is a sequence of records, each starting with
//! `[I rrr tttt] [id: u16 BE]`: `I` = "the sender of this record opened the
//! channel" (so ids from the two sides' spaces never collide), `rrr` = 0,
//! `tttt` = type. Bodies (integers big-endian, `s8` = `u8` length + UTF-8):
//!
//! | type | name    | body                                   | size      |
//! |------|---------|----------------------------------------|-----------|
//! | 0x1  | OPEN    | window u32, service s8 (≤ 32 B); I = 1  | 8 + n     |
//! | 0x2  | OPEN_OK | window u32; I = 0                      | 7         |
//! | 0x3  | REFUSE  | reason u8, detail s8 (≤ 48 B); I = 0   | 5 + n     |
//! | 0x4  | DATA    | len u16 (≥ 1), bytes                   | 5 + n     |
//! | 0x5  | CREDIT  | delta u32 (≥ 1)                        | 7         |
//! | 0x6  | EOF     | —                                      | 3         |
//! | 0x7  | CLOSE   | — (implies EOF)                        | 3         |
//! | 0x8  | RESET   | reason s8 (≤ 48 B)                     | 4 + n     |
//! | 0x9  | EXIT    | kind u8 (0 code, 1 signal), value u32  | 8         |
//! | 0xA  | OPEN_TO | OPEN + port u16, host s8 (≤ 64 B in all)| 11 + n + h|
//! | 0xB  | DATA_LZ4| len u16, raw u16, LZ4 block (`compress`) | 7 + n     |
//!
//! EXIT is an EOF that carries the exit status of the program behind the
//! sender's stream ([`Mux::close_write_with_status`]); the receiving
//! application gets [`MuxEvent::PeerExited`] just before
//! [`MuxEvent::ReadClosed`]. Unknown types, reserved bits, empty DATA, zero
//! CREDIT, an EXIT kind other than 0/1, over-long or non-UTF-8 text and
//! truncated records are decode errors.
//!
//! # Channel life and id reuse
//! OPEN → OPEN_OK or REFUSE; then DATA/CREDIT both ways; EOF ends a direction.
//! A side's *final record* is the last one it sends on a channel: RESET,
//! REFUSE, or CLOSE. CLOSE is sent once a side has sent its EOF, received the
//! peer's, and its application consumed ([`Mux::consumed`]) every byte it
//! received (it replaces the EOF when that all held first): until the peer's
//! EOF it may still owe CREDIT, and waiting for consumption makes the peer's
//! [`MuxEvent::Closed`] a confirmation of delivery. A RESET is
//! answered by a RESET unless the receiver already sent its final record; the
//! records that cross a RESET are ignored. A REFUSE is final for both sides
//! (the opener sends nothing before OPEN_OK except possibly a RESET, which the
//! acceptor ignores as it has already forgotten the id).
//! **An id is released when a side has sent its final record and received the
//! peer's**; the link being ordered, nothing for the old channel can follow,
//! so a new OPEN with the same id is unambiguous. Local ids are reused lowest
//! first.
//!
//! # Flow control
//! Credit per channel (`credit.rs`): a sender never sends beyond
//! credit; the receiver returns credit only for bytes the application reports
//! with [`Mux::consumed`], in deltas of at least half the window (or an eighth
//! when the sender is nearly blocked). A peer that exceeds credit gets its
//! channel reset.
//!
//! # Memory
//! At most `max_channels × (window + send_buffer + 2 × HISTORY_CAP)` bytes of
//! channel data ([`Mux::heap_bytes`], within [`MuxConfig::heap_bound`]): buffers never grow past their
//! configured size, whatever the record sizes the peer picks, and a channel
//! direction that carried a DATA_LZ4 record keeps a compression history of
//! [`compress::HISTORY_CAP`] (20 KiB; a peer can make every channel keep one
//! for the direction it sends). Plus per channel a few hundred bytes of state,
//! plus bounded control queues: at most 256 replies to unknown ids and 4096
//! refusals (a few hundred KiB at worst). With the defaults at 115200 baud
//! (256 channels, 5760-byte window and send buffer) that is at most 2.8 MiB of
//! buffers plus 10 MiB of histories, 12.8 MiB; typically far less, as buffers
//! grow only when data arrives faster than it is taken.
//!
//! # Scheduling
//! Control records first (the channels' own, then refusals and replies to
//! unknown ids, so a flood of those never delays a CREDIT), then interactive
//! channels (little queued, not recently bulk), then sparse channels (sent
//! little recently: a new connection's handshake), then deficit round robin
//! between bulk channels; several
//! records are packed into one payload and DATA may be cut to fit. See
//! `scheduler`.
//!
//! # Layout
//! This file: the [`Mux`] and the calls the application makes; `config`,
//! `event`: what it is told and what it reports; `channel`: one channel's
//! state; `recv`: records from the peer; `send`: building payloads
//! (control first, overtaking, compression); `scheduler`: which channel
//! sends next; `credit`: flow control; [`compress`]: the DATA_LZ4 codec;
//! [`wire`]: record encoding; `reason`: typed reset reasons.
//!
//! # Application contract
//! - The opener may `send` only after [`MuxEvent::Accepted`] (before it `send`
//!   returns 0). The acceptor may `send` right after [`Mux::accept`]; the data
//!   follows the OPEN_OK.
//! - [`MuxEvent::Readable`] is edge-triggered: after it, [`Mux::read`] until it
//!   returns `None`; the next `Readable` comes with the next data.
//! - [`MuxEvent::ReadClosed`] is emitted once the peer's EOF has arrived *and*
//!   every byte before it has been read; if the peer ended with an EXIT,
//!   [`MuxEvent::PeerExited`] comes immediately before it.
//! - [`MuxEvent::SendSpace`] follows a `send` that did not take everything (or
//!   filled the buffer), once some buffered bytes have gone into payloads.
//! - [`MuxEvent::Closed`] comes after both directions ended cleanly and the id
//!   was released: the peer's application consumed every byte sent to it, and
//!   this application read and reported consumed every byte it received (so
//!   report every byte read with [`Mux::consumed`], or the channel never
//!   closes cleanly). [`MuxEvent::Reset`] carries `unconfirmed`, the bytes
//!   given to `send` that the peer had not confirmed consuming. [`MuxEvent::Reset`] and
//!   [`MuxEvent::Refused`] are terminal too. No event follows a terminal one,
//!   and none follows the application's own [`Mux::reset`] / [`Mux::refuse`];
//!   the handle is dead afterwards (calls on it are ignored).

mod channel;
pub mod compress;
mod config;
mod credit;
mod event;
mod reason;
mod recv;
mod scheduler;
mod send;
pub mod wire;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

pub use channel::ChannelId;
use channel::{
    append_bounded, Channel, Ctl, CtlKind, OwnFinal, Phase, RecvHalf, Reply, SendHalf, WireKey,
};
pub use compress::Codec;
pub use config::MuxConfig;
pub use event::{ExitStatus, MuxError, MuxEvent, MuxStats, RefuseReason, Target};
pub use reason::{ResetReason, SessionEnd};
use scheduler::{Scheduler, Tier};
use wire::{truncate_str, MAX_HOST_LEN, MAX_SERVICE_LEN, MAX_TEXT_LEN};

/// Most replies to records for unknown channels (and refusals of channels
/// beyond `max_channels`) queued at once; more are dropped.
const MAX_STRAY: usize = 256;

/// Refusals by the application queued at once beyond which more are dropped
/// (counted in [`MuxStats::refusals_dropped`]; the peer's open then waits
/// until its session ends). A peer that keeps within its own channel limit
/// has at most that many opens awaiting an answer, so only a peer flooding
/// OPENs far beyond any sane limit while our output is stalled reaches it.
const MAX_QUEUED_REFUSALS: usize = 4096;

/// From this many queued refusals on, new ones go without their detail text:
/// a 5-byte REFUSE is shorter than the 8-byte OPEN it answers, so a flood of
/// OPENs cannot make this side's answers outgrow the flood.
const TERSE_REFUSALS_FROM: usize = 32;

/// The multiplexer state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Mux {
    cfg: MuxConfig,
    channels: HashMap<ChannelId, Channel>,
    wire: HashMap<WireKey, ChannelId>,
    ctl: VecDeque<Ctl>,
    /// Sent after `ctl`, so that a flood of refusals never delays the
    /// channels' own records (CREDIT in particular).
    replies: VecDeque<Reply>,
    /// `Reply::Refuse { stray: false }` entries in `replies`.
    refusals_queued: usize,
    /// Other entries in `replies`.
    strays: usize,
    sched: Scheduler,
    events: VecDeque<MuxEvent>,
    gen: u16,
    stats: MuxStats,
    /// What the peer can decompress (told by the link's feature exchange).
    peer_codec: Option<Codec>,
    /// The link reported this session's features ([`Mux::set_peer_compression`]):
    /// from then on DATA_LZ4 is a violation unless they include compression.
    peer_codec_known: bool,
    /// Scratch buffers for compression (input gathered from the ring, output).
    z_in: Vec<u8>,
    z_out: Vec<u8>,
    /// Channels with records in the last payload [`Mux::poll_payload`] built:
    /// data that overtakes that payload must not belong to them.
    last_payload_channels: Vec<ChannelId>,
    /// That payload carried bulk data: a sparse channel (a new connection)
    /// may overtake it too, not only a keystroke.
    last_payload_bulk: bool,
}

impl Mux {
    /// A multiplexer with no channels. `cfg` should have passed
    /// [`MuxConfig::validate`].
    pub fn new(cfg: MuxConfig) -> Self {
        debug_assert!(cfg.validate().is_ok(), "{:?}", cfg.validate());
        Mux {
            sched: Scheduler::new(cfg.interactive_bytes as usize, cfg.sparse_bytes as usize),
            cfg,
            channels: HashMap::new(),
            wire: HashMap::new(),
            ctl: VecDeque::new(),
            replies: VecDeque::new(),
            refusals_queued: 0,
            strays: 0,
            events: VecDeque::new(),
            gen: 0,
            stats: MuxStats::default(),
            peer_codec: None,
            peer_codec_known: false,
            z_in: Vec::new(),
            z_out: Vec::new(),
            last_payload_channels: Vec::new(),
            last_payload_bulk: false,
        }
    }

    /// What this side offers the peer in the link's feature negotiation: the
    /// codec it can decompress (and would use), or `None` when `compress` is
    /// off.
    pub fn compression_offer(&self) -> Option<Codec> {
        self.cfg.compress.then_some(Codec::Lz4)
    }

    /// The link told us what the peer can decompress for this link session
    /// (`None`: nothing, e.g. a peer that predates compression). DATA goes
    /// compressed only when this is set and our own `compress` is on. Cleared
    /// by [`Mux::handle_session_reset`]: call it again for each new session,
    /// after the reset. Channels that already exist start compressing from
    /// their next record (the history starts there on both sides).
    ///
    /// Receiving: with our `compress` off, or once this says the session
    /// runs without compression, a DATA_LZ4 record is a violation on its
    /// channel. Before it is called in a session, DATA_LZ4 is accepted (with
    /// `compress` on): the peer may legitimately have our offer while its
    /// own announcement is still on the way (lost and resent).
    pub fn set_peer_compression(&mut self, codec: Option<Codec>) {
        self.peer_codec = codec;
        self.peer_codec_known = true;
    }

    /// The codec DATA goes out with now, if any.
    pub fn compression(&self) -> Option<Codec> {
        self.peer_codec.filter(|_| self.cfg.compress)
    }

    /// The configuration.
    pub fn config(&self) -> &MuxConfig {
        &self.cfg
    }

    fn new_handle(&mut self, remote: bool, id: u16) -> ChannelId {
        loop {
            self.gen = (self.gen + 1) & 0x7fff;
            let h = ChannelId::new(remote, id, self.gen);
            if !self.channels.contains_key(&h) {
                return h;
            }
        }
    }

    // ----- application calls -------------------------------------------------

    /// Open a channel to `service` (≤ 32 bytes, may be empty). The peer answers
    /// with [`MuxEvent::Accepted`] or [`MuxEvent::Refused`].
    pub fn open(&mut self, service: &str) -> Result<ChannelId, MuxError> {
        self.open_to(service, None)
    }

    /// [`Mux::open`] that also asks the peer to connect to `target` (an
    /// OPEN_TO record, which must fit the 64-byte minimum payload: service
    /// and host together at most 53 bytes, host not empty).
    pub fn open_to(
        &mut self,
        service: &str,
        target: Option<&Target>,
    ) -> Result<ChannelId, MuxError> {
        if service.len() > MAX_SERVICE_LEN {
            return Err(MuxError::ServiceTooLong);
        }
        if let Some(t) = target {
            if t.host.is_empty() || service.len() + t.host.len() > MAX_HOST_LEN {
                return Err(MuxError::TargetTooLong);
            }
        }
        if self.channels.len() >= self.cfg.max_channels as usize {
            return Err(MuxError::TooManyChannels);
        }
        let id = (0..=u16::MAX)
            .find(|id| !self.wire.contains_key(&(false, *id)))
            .ok_or(MuxError::TooManyChannels)?;
        let h = self.new_handle(false, id);
        let mut c = Channel::new(
            (false, id),
            service.to_owned(),
            Phase::Opening { open_sent: false },
            self.cfg.window,
            0,
        );
        c.target = target.cloned();
        self.channels.insert(h, c);
        self.wire.insert((false, id), h);
        self.ctl.push_back(Ctl(h, CtlKind::Open));
        self.stats.opened_total += 1;
        Ok(h)
    }

    /// Accept an incoming channel (after [`MuxEvent::Incoming`]).
    pub fn accept(&mut self, ch: ChannelId) {
        let Some(c) = self.channels.get_mut(&ch) else {
            return;
        };
        if c.phase != Phase::Undecided {
            return;
        }
        c.phase = Phase::Accepted;
        self.ctl.push_back(Ctl(ch, CtlKind::OpenOk));
    }

    /// Refuse an incoming channel (after [`MuxEvent::Incoming`]); `detail` is
    /// cut to 48 bytes. The handle is dead afterwards.
    pub fn refuse(&mut self, ch: ChannelId, reason: RefuseReason, detail: &str) {
        let Some(c) = self.channels.get(&ch) else {
            return;
        };
        if c.phase != Phase::Undecided {
            return;
        }
        let id = c.key.1;
        self.events.retain(|e| e.channel() != ch);
        self.wire.remove(&c.key);
        self.channels.remove(&ch);
        if self.refusals_queued >= MAX_QUEUED_REFUSALS {
            self.stats.refusals_dropped += 1;
            return;
        }
        let detail = if self.refusals_queued >= TERSE_REFUSALS_FROM {
            String::new()
        } else {
            truncate_str(detail, MAX_TEXT_LEN).to_owned()
        };
        self.refusals_queued += 1;
        self.replies.push_back(Reply::Refuse {
            id,
            reason,
            detail,
            stray: false,
        });
    }

    /// Queue `data` for sending; returns how many bytes fit into the bounded
    /// send buffer (0 if full, before [`MuxEvent::Accepted`], after
    /// `close_write`, or on a dead handle). After a short write, wait for
    /// [`MuxEvent::SendSpace`].
    pub fn send(&mut self, ch: ChannelId, data: &[u8]) -> usize {
        let limit = self.cfg.send_buffer as usize;
        let Some(c) = self.channels.get_mut(&ch) else {
            return 0;
        };
        if !c.takes_data() {
            return 0;
        }
        let n = (limit - c.tx.len()).min(data.len());
        append_bounded(&mut c.tx, &data[..n], limit);
        if n < data.len() || c.tx.len() == limit {
            c.want_space = true;
        }
        if n > 0 && c.phase == Phase::Established {
            self.sched.wake(ch, c.tx.len());
        }
        n
    }

    /// Bytes `send` would accept now.
    pub fn send_space(&self, ch: ChannelId) -> usize {
        match self.channels.get(&ch) {
            Some(c) if c.takes_data() => self.cfg.send_buffer as usize - c.tx.len(),
            _ => 0,
        }
    }

    /// Half-close: EOF is sent after all buffered data.
    pub fn close_write(&mut self, ch: ChannelId) {
        self.end_write(ch, None);
    }

    /// Half-close because the program feeding the channel ended with
    /// `status`: like [`Mux::close_write`], but the EOF travels as an EXIT
    /// record and the peer application sees [`MuxEvent::PeerExited`] just
    /// before its [`MuxEvent::ReadClosed`].
    pub fn close_write_with_status(&mut self, ch: ChannelId, status: ExitStatus) {
        self.end_write(ch, Some(status));
    }

    fn end_write(&mut self, ch: ChannelId, exit: Option<ExitStatus>) {
        let Some(c) = self.channels.get_mut(&ch) else {
            return;
        };
        if !c.app_live() || c.send != SendHalf::Open {
            return;
        }
        c.send = SendHalf::EofPending { exit };
        Self::maybe_queue_eof(&mut self.ctl, ch, c);
    }

    /// EOF goes into the control queue once the data before it left (so it
    /// always follows the data) and the channel is established.
    fn maybe_queue_eof(ctl: &mut VecDeque<Ctl>, ch: ChannelId, c: &mut Channel) {
        if let SendHalf::EofPending { exit } = c.send {
            if c.phase == Phase::Established && c.tx.is_empty() {
                c.send = SendHalf::EofQueued { exit };
                ctl.push_back(Ctl(ch, CtlKind::Eof));
            }
        }
    }

    /// Our CLOSE is due once we sent EOF, received the peer's, and our
    /// application consumed everything (rule 3).
    fn maybe_queue_close(ctl: &mut VecDeque<Ctl>, ch: ChannelId, c: &mut Channel) {
        if c.send == SendHalf::EofSent
            && c.delivered_everything()
            && c.own_final == OwnFinal::NotYet
            && c.phase == Phase::Established
        {
            c.own_final = OwnFinal::CloseQueued;
            ctl.push_back(Ctl(ch, CtlKind::Close));
        }
    }

    /// Abort the channel: buffered data in both directions is discarded and
    /// the peer gets a RESET carrying `reason` (cut to 48 bytes). No event
    /// follows; the handle is dead. On an incoming channel not yet accepted
    /// this is a refusal with [`RefuseReason::Other`].
    pub fn reset(&mut self, ch: ChannelId, reason: &str) {
        let Some(c) = self.channels.get(&ch) else {
            return;
        };
        match c.phase {
            Phase::Aborted => return,
            Phase::Undecided => return self.refuse(ch, RefuseReason::Other, reason),
            _ => {}
        }
        // Nothing follows the application's own reset, not even queued events.
        self.events.retain(|e| e.channel() != ch);
        self.abort(ch, truncate_str(reason, MAX_TEXT_LEN).to_owned());
    }

    /// Take up to `max` received bytes out of the channel (possibly fewer even
    /// when more is buffered; call until `None`). Reading does not return
    /// credit: call [`Mux::consumed`] once the bytes were written onward.
    pub fn read(&mut self, ch: ChannelId, max: usize) -> Option<Bytes> {
        let c = self.channels.get_mut(&ch)?;
        if !c.app_live() || max == 0 || c.rx.is_empty() {
            return None;
        }
        // One copy out of the ring (the ring itself stays at most `window`).
        let n = c.rx.len().min(max);
        let (front, back) = c.rx.as_slices();
        let from_front = front.len().min(n);
        let mut out = Vec::with_capacity(n);
        out.extend_from_slice(&front[..from_front]);
        out.extend_from_slice(&back[..n - from_front]);
        c.rx.drain(..n);
        let out = Bytes::from(out);
        c.held += n;
        if c.rx.is_empty() {
            c.readable_notified = false;
            Self::report_read_closed_if_due(&mut self.events, ch, c);
        }
        Some(out)
    }

    /// Received bytes waiting to be read.
    pub fn buffered(&self, ch: ChannelId) -> usize {
        self.channels.get(&ch).map_or(0, |c| c.rx.len())
    }

    /// The application consumed (wrote onward) `n` bytes it read: credit goes
    /// back to the peer when worthwhile. Every byte read must be reported
    /// eventually: a channel closes cleanly only once all were consumed.
    pub fn consumed(&mut self, ch: ChannelId, n: usize) {
        let Some(c) = self.channels.get_mut(&ch) else {
            return;
        };
        let n = n.min(c.held);
        c.held -= n;
        if c.may_return_credit() {
            c.rxw.on_consumed(n);
            if c.rxw.credit_due() && !c.credit_queued {
                c.credit_queued = true;
                self.ctl.push_back(Ctl(ch, CtlKind::Credit));
            }
        }
        Self::maybe_queue_close(&mut self.ctl, ch, c);
    }

    // ----- events and getters ---------------------------------------------------

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<MuxEvent> {
        self.events.pop_front()
    }

    /// Counters.
    pub fn stats(&self) -> MuxStats {
        MuxStats {
            channels_open: self.channels.len(),
            ..self.stats.clone()
        }
    }

    /// Bytes of heap held by the channels' data buffers (receive and send, by
    /// capacity) and compression histories: at most
    /// `channels × (window + send_buffer + 2 × HISTORY_CAP)` whatever the
    /// record sizes the peer chooses.
    pub fn heap_bytes(&self) -> usize {
        self.channels
            .values()
            .map(|c| {
                c.rx.capacity()
                    + c.tx.capacity()
                    + c.tx_hist.as_ref().map_or(0, |h| h.heap_bytes())
                    + c.rx_hist.as_ref().map_or(0, |h| h.heap_bytes())
            })
            .sum()
    }

    /// Channels in the table (live, or draining after a reset/close; this is
    /// what `max_channels` bounds).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Check internal bounds and invariants; panics when one does not hold.
    /// For tests and the fuzz targets (linear in the number of channels).
    pub fn check_invariants(&self) {
        assert!(self.channels.len() <= self.cfg.max_channels as usize);
        assert!(self.heap_bytes() <= self.cfg.heap_bound());
        assert!(self.strays <= MAX_STRAY);
        assert!(self.refusals_queued <= MAX_QUEUED_REFUSALS);
        assert_eq!(self.refusals_queued + self.strays, self.replies.len());
        for (h, c) in &self.channels {
            assert!(c.tx.len() <= self.cfg.send_buffer as usize, "{h}: tx");
            assert!(
                c.rx.len() <= self.cfg.window as usize,
                "{h}: rx {}",
                c.rx.len()
            );
            assert!(c.rx.capacity() <= self.cfg.window as usize, "{h}: rx heap");
            assert!(
                c.tx.capacity() <= self.cfg.send_buffer as usize,
                "{h}: tx heap"
            );
            for hist in [&c.tx_hist, &c.rx_hist].into_iter().flatten() {
                assert!(
                    hist.heap_bytes() <= compress::HISTORY_CAP,
                    "{h}: history heap"
                );
            }
            if c.phase == Phase::Aborted {
                assert!(c.tx.is_empty() && c.rx.is_empty() && c.held == 0, "{h}");
                assert_ne!(c.own_final, OwnFinal::NotYet, "{h}: an abort owes RESET");
            }
            if c.own_final == OwnFinal::CloseQueued {
                assert_eq!(c.send, SendHalf::EofSent, "{h}: CLOSE before EOF");
            }
            if matches!(c.send, SendHalf::EofQueued { .. } | SendHalf::EofSent) {
                assert!(c.tx.is_empty(), "{h}: EOF before the data");
            }
            if c.app_live() && c.recv == RecvHalf::Open && c.own_final == OwnFinal::NotYet {
                assert_eq!(
                    c.rxw.remaining() as usize + c.rx.len() + c.held + c.rxw.unannounced() as usize,
                    self.cfg.window as usize,
                    "{h}: credit invariant"
                );
            }
            assert!(!c.released(), "{h}: a released channel is removed");
            assert_eq!(self.wire.get(&c.key), Some(h));
        }
        assert!(self.wire.values().all(|h| self.channels.contains_key(h)));
    }
}
