//! One end of a SERIAL-MUX line as a single sans-IO state machine: the reliable
//! [`Link`], the channel [`Mux`] above it, the write [`Pacer`], the table of
//! services this end offers, the opens waiting for the link or for a free
//! channel, and the orderly close of the whole end.
//!
//! Shaped like quinn-proto's endpoint: bytes from the device go in through
//! [`Station::handle_input`], frames for the device come out of
//! [`Station::poll_transmit`], time is always an argument, [`Station::poll_timeout`]
//! says when to call [`Station::handle_timeout`], and everything the application
//! must act on comes out of [`Station::poll_event`]. Commands ([`Station::open`],
//! [`Station::write`], [`Station::shutdown_write`], ...) take effect at once.
//!
//! The tokio driver (`endpoint::serial_mux`) only moves bytes between the device,
//! this machine and the sockets; the simulations (`sim::StationPair`) drive
//! exactly the same code on simulated time. Every policy decision about the line
//! lives here:
//! - an open waits (bounded in number and time) while the link is down or every
//!   channel is in use, instead of failing: a burst of connections queues;
//! - a channel the peer opens for a service this end does not offer is refused;
//! - the peer may open channels for offered services at `open_rate` per second
//!   on average (bursts of `open_burst`); opens beyond that wait their turn
//!   (first come, first served) and are handed to the application as the rate
//!   allows. They are never refused for the rate: a health-check loop or a
//!   build fetching many small files is legitimate churn. What a flood costs
//!   this end stays bounded: the waiting opens hold mux channels, so at most
//!   `max_channels` of them (the mux refuses beyond), and the application
//!   dials at most `open_rate` targets per second (a flood is logged once);
//! - a payload from the peer that does not decode restarts the link session, so
//!   both ends reset their channels (docs/mux-protocol.md);
//! - the bytes an application writes are queued per channel until the mux takes
//!   them, and [`StationEvent::Sent`] says when, so a driver can bound what it
//!   accepts from a socket;
//! - closing the station lets channels finish cleanly for a grace period, then
//!   resets the rest and flushes the resets.
#![deny(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::warn;

mod config;
mod event;
mod opens;

pub use config::{Compression, StationConfig};
pub use event::{OpenError, OpenId, StationEvent, StationStats};
use opens::{OpenBudget, WaitReason, WaitingOpen};

use crate::link::{Features, Link, LinkEvent, LinkStats, Pacer};
use crate::mux::{
    ChannelId, Codec, ExitStatus, Mux, MuxError, MuxEvent, MuxStats, RefuseReason, ResetReason,
    SessionEnd, Target,
};

/// Where the whole station is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Closing: channels may still finish cleanly until `deadline`.
    Draining {
        deadline: Instant,
    },
    /// Remaining channels were reset; their resets are flushed until `deadline`.
    Flushing {
        deadline: Instant,
    },
    /// Nothing more to do.
    Closed,
}

/// A channel's place between the application and the mux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChanRole {
    /// We opened it; the peer has not accepted yet.
    Opening(OpenId),
    /// The peer opened it faster than `open_rate`: it waits in
    /// `Station::deferred` for its turn before the application sees it.
    Deferred,
    /// The peer opened it; the application has not decided yet.
    Offered,
    /// Data may flow.
    Open,
}

/// How far the application's sending direction has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendEnd {
    Open,
    /// The application ended its stream; the end goes out once the queue is empty.
    Ending(Option<ExitStatus>),
    /// The end was handed to the mux.
    Ended,
}

#[derive(Debug)]
struct Chan {
    role: ChanRole,
    /// While `Opening`: the open it answers, to wait again if the peer has
    /// no free channel.
    asked: Option<WaitingOpen>,
    /// Written by the application, not yet taken by the mux.
    queue: VecDeque<Bytes>,
    queued: usize,
    send_end: SendEnd,
    /// The peer's exit status, held until its end of stream is reported.
    peer_status: Option<ExitStatus>,
    /// The peer's stream ended (every byte of it read).
    peer_ended: bool,
}

impl Chan {
    fn new(role: ChanRole) -> Self {
        Chan {
            role,
            asked: None,
            queue: VecDeque::new(),
            queued: 0,
            send_end: SendEnd::Open,
            peer_status: None,
            peer_ended: false,
        }
    }
}

/// The smallest payload [`StationConfig::coded_frame_time`] leaves a coded
/// frame (slow lines).
const CODED_FRAME_MIN: usize = 128;

/// One end of a SERIAL-MUX line (see the module docs).
#[derive(Debug)]
pub struct Station {
    cfg: StationConfig,
    link: Link,
    mux: Mux,
    pacer: Pacer,
    /// When the pacer lets the next frame out, if it held one back.
    pacer_wake: Option<Instant>,
    device: Device,
    /// The peer's epoch in the current or last session.
    peer_epoch: Option<u32>,
    /// When the current session came up.
    up_since: Option<Instant>,
    services: HashSet<String>,
    waiting: VecDeque<WaitingOpen>,
    chans: HashMap<ChannelId, Chan>,
    events: VecDeque<StationEvent>,
    next_open: u64,
    phase: Phase,
    /// The current wait for free channels was logged (once per burst).
    burst_reported: bool,
    opens_allowed: OpenBudget,
    /// The peer's opens waiting for the rate, oldest first, with what their
    /// [`StationEvent::Incoming`] will carry. A channel reset meanwhile is
    /// skipped when its turn comes.
    deferred: VecDeque<(ChannelId, String, Option<Target>)>,
    /// When the next deferred open may be handed over.
    deferred_wake: Option<Instant>,
    /// When a protocol violation by the peer was last logged.
    violation_logged: Option<Instant>,
    violations_unlogged: u64,
    stats: StationStats,
}

/// Protocol violations by the peer are logged at most this often.
const VIOLATION_LOG_EVERY: Duration = Duration::from_secs(10);

/// The serial device as the station sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    /// Open; `writing` while a [`Station::poll_write`] batch is in flight.
    Open { writing: bool },
    /// Failed; the driver tries to reopen it from `reopen_at`.
    Lost { reopen_at: Instant },
}

/// How long the resets of a closing station may take to reach the peer.
const FLUSH_TIME: Duration = Duration::from_millis(500);

impl Station {
    /// A station with our link `epoch` (random, non-zero) at `now`.
    pub fn new(cfg: StationConfig, epoch: u32, now: Instant) -> Self {
        Station {
            link: Link::new(cfg.link_config(), epoch, now),
            mux: Mux::new(cfg.mux_config()),
            pacer: Pacer::new(cfg.link.byte_rate, cfg.link.pacing_target),
            pacer_wake: None,
            device: Device::Open { writing: false },
            peer_epoch: None,
            up_since: None,
            services: HashSet::new(),
            waiting: VecDeque::new(),
            chans: HashMap::new(),
            events: VecDeque::new(),
            next_open: 0,
            phase: Phase::Running,
            burst_reported: false,
            opens_allowed: OpenBudget {
                tokens: f64::from(cfg.open_burst),
                at: None,
                deferred: 0,
            },
            deferred: VecDeque::new(),
            deferred_wake: None,
            violation_logged: None,
            violations_unlogged: 0,
            stats: StationStats::default(),
            cfg,
        }
    }

    // ----- getters ----------------------------------------------------------

    /// The codec DATA goes out with now, if any.
    pub fn compression(&self) -> Option<Codec> {
        self.mux.compression()
    }

    /// The configuration in use.
    pub fn config(&self) -> &StationConfig {
        &self.cfg
    }

    /// A session with the peer is up.
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Our link epoch.
    pub fn epoch(&self) -> u32 {
        self.link.epoch()
    }

    /// The peer's epoch in the current session, or the last one.
    pub fn peer_epoch(&self) -> Option<u32> {
        self.peer_epoch
    }

    /// When the current session came up (`None` while the link is down).
    pub fn up_since(&self) -> Option<Instant> {
        self.up_since
    }

    /// The device failed and waits to be reopened.
    pub fn is_device_lost(&self) -> bool {
        matches!(self.device, Device::Lost { .. })
    }

    /// Bytes [`Station::write`] takes on `ch` now (0 for an unknown or ended
    /// channel); [`StationEvent::Sent`] gives room back.
    pub fn write_room(&self, ch: ChannelId) -> usize {
        self.chans
            .get(&ch)
            .filter(|c| c.send_end == SendEnd::Open)
            .map_or(0, |c| self.cfg.write_budget.saturating_sub(c.queued))
    }

    /// How far the channel's two directions have come: (we ended our stream,
    /// the peer ended its stream).
    pub fn channel_ends(&self, ch: ChannelId) -> (bool, bool) {
        self.chans.get(&ch).map_or((true, true), |c| {
            (c.send_end != SendEnd::Open, c.peer_ended)
        })
    }

    /// The link features this session uses (ours ∩ the peer's; none until the
    /// peer's CAPS arrived, and none with a v1 peer).
    pub fn features(&self) -> Features {
        self.link.features()
    }

    /// The link's counters.
    pub fn link_stats(&self) -> LinkStats {
        self.link.stats()
    }

    /// The mux's counters.
    pub fn mux_stats(&self) -> MuxStats {
        self.mux.stats()
    }

    /// Check the mux's internal bounds and invariants (panics when one does
    /// not hold): for tests and the fuzz targets.
    pub fn check_invariants(&self) {
        self.mux.check_invariants();
    }

    /// Heap bytes held by the mux's channel buffers and compression
    /// histories (bounded by [`MuxConfig::heap_bound`](crate::mux::MuxConfig::heap_bound), whatever the peer sends).
    pub fn mux_heap_bytes(&self) -> usize {
        self.mux.heap_bytes()
    }

    /// The station's own counters.
    pub fn stats(&self) -> StationStats {
        StationStats {
            waiting: self.waiting.len(),
            ..self.stats.clone()
        }
    }

    /// Bytes the application wrote on `ch` that wait for the mux (0 for an
    /// unknown channel): the queue depth reported in statistics.
    pub fn queued(&self, ch: ChannelId) -> usize {
        self.chans.get(&ch).map_or(0, |c| c.queued)
    }

    /// The station has closed (see [`Station::close`]); the driver may stop.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    // ----- commands ---------------------------------------------------------

    /// Offers `service`: channels the peer opens for it arrive as
    /// [`StationEvent::Incoming`]; others are refused here.
    pub fn listen(&mut self, service: &str) {
        self.services.insert(service.to_owned());
    }

    /// Opens a channel to the peer's `service`. The answer comes as
    /// [`StationEvent::Opened`] or [`StationEvent::OpenFailed`]; meanwhile the
    /// open waits for the link and for a free channel.
    pub fn open(&mut self, now: Instant, service: &str) -> OpenId {
        self.open_to(now, service, None)
    }

    /// [`Station::open`] that asks the peer to connect to `target` (OPEN_TO).
    pub fn open_to(&mut self, now: Instant, service: &str, target: Option<Target>) -> OpenId {
        let open = OpenId(self.next_open);
        self.next_open += 1;
        if self.phase != Phase::Running {
            self.fail_open(open, OpenError::Closing);
            return open;
        }
        if self.waiting.len() >= self.cfg.max_waiting {
            self.fail_open(open, OpenError::QueueFull(self.waiting.len()));
            return open;
        }
        let reason = if self.link.is_up() {
            WaitReason::ChannelsBusy
        } else {
            WaitReason::LinkDown
        };
        self.waiting.push_back(WaitingOpen {
            open,
            service: service.to_owned(),
            target,
            reason,
            since: now,
            deadline: now + self.wait_limit(reason),
            not_before: None,
        });
        self.start_waiting(now);
        if self.waiting.back().is_some_and(|w| w.open == open) {
            self.stats.opens_queued += 1;
        }
        open
    }

    /// Accepts a channel from [`StationEvent::Incoming`].
    pub fn accept(&mut self, ch: ChannelId) {
        if let Some(c) = self.chans.get_mut(&ch) {
            if c.role == ChanRole::Offered {
                c.role = ChanRole::Open;
                self.mux.accept(ch);
                self.flush_queue(ch);
            }
        }
    }

    /// Refuses a channel from [`StationEvent::Incoming`]; the reason travels.
    pub fn refuse(&mut self, ch: ChannelId, reason: RefuseReason, detail: &str) {
        if self.chans.remove(&ch).is_some() {
            self.mux.refuse(ch, reason, detail);
        }
    }

    /// Queues as much of `data` on the channel as [`Station::write_room`]
    /// allows and returns how much that was; [`StationEvent::Sent`] gives room
    /// back. Nothing is taken after the end of the stream or on a dead channel.
    pub fn write(&mut self, ch: ChannelId, mut data: Bytes) -> usize {
        let room = self.write_room(ch);
        let Some(c) = self.chans.get_mut(&ch) else {
            return 0;
        };
        data.truncate(room);
        if data.is_empty() {
            return 0;
        }
        let n = data.len();
        c.queued += n;
        c.queue.push_back(data);
        self.flush_queue(ch);
        n
    }

    /// Ends the application's stream on the channel once everything written
    /// before has gone; with `status`, the peer learns the exit status of the
    /// program that produced it.
    pub fn shutdown_write(&mut self, ch: ChannelId, status: Option<ExitStatus>) {
        if let Some(c) = self.chans.get_mut(&ch) {
            if c.send_end == SendEnd::Open {
                c.send_end = SendEnd::Ending(status);
                self.flush_queue(ch);
            }
        }
    }

    /// Reads up to `max` received bytes (after [`StationEvent::Readable`]).
    /// Report them with [`Station::consumed`] once they reached their destination.
    pub fn read(&mut self, ch: ChannelId, max: usize) -> Option<Bytes> {
        self.mux.read(ch, max)
    }

    /// The application delivered `n` bytes read from the channel: the peer may
    /// send more, and a clean close can confirm them.
    pub fn consumed(&mut self, ch: ChannelId, n: usize) {
        self.mux.consumed(ch, n);
    }

    /// Cuts the channel: the peer sees a reset, never a clean end.
    pub fn reset(&mut self, ch: ChannelId, reason: &str) {
        if let Some(c) = self.chans.remove(&ch) {
            match c.role {
                ChanRole::Offered | ChanRole::Deferred => {
                    self.mux.refuse(ch, RefuseReason::Other, reason);
                }
                ChanRole::Opening(_) | ChanRole::Open => self.mux.reset(ch, reason),
            }
        }
    }

    /// Starts closing the station: no new channels; open ones may finish
    /// cleanly for `grace`, then are reset, and the resets are flushed.
    pub fn close(&mut self, now: Instant, grace: Duration) {
        if self.phase != Phase::Running {
            return;
        }
        for w in std::mem::take(&mut self.waiting) {
            self.fail_open(w.open, OpenError::Closing);
        }
        // The application never saw these: refused, not reset.
        for (ch, _, _) in std::mem::take(&mut self.deferred) {
            if self
                .chans
                .get(&ch)
                .is_some_and(|c| c.role == ChanRole::Deferred)
            {
                self.reset(ch, "sfs is stopping");
            }
        }
        self.phase = Phase::Draining {
            deadline: now + grace,
        };
        self.advance_close(now);
    }

    // ----- input ------------------------------------------------------------

    /// Bytes read from the device.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.link.handle_input(now, bytes);
        self.process(now);
    }

    /// Processes expired timers at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.link.poll_timeout().is_some_and(|t| t <= now) {
            self.link.handle_timeout(now);
        }
        if self.pacer_wake.is_some_and(|t| t <= now) {
            self.pacer_wake = None;
        }
        if self.deferred_wake.is_some_and(|t| t <= now) {
            self.deferred_wake = None;
        }
        self.expire_waiting(now);
        self.process(now);
    }

    /// The device failed (unplugged, gone): nothing is written or read until
    /// it is reopened; the link and its channels are kept (up to
    /// `dead-after`). [`Station::poll_reopen`] says when to try again.
    pub fn handle_device_lost(&mut self, now: Instant) {
        self.device = Device::Lost {
            reopen_at: now + self.cfg.reopen_every,
        };
    }

    /// Whether the driver should try to reopen the lost device now.
    pub fn poll_reopen(&self, now: Instant) -> bool {
        matches!(self.device, Device::Lost { reopen_at } if reopen_at <= now)
    }

    /// The device could not be reopened; the next try comes `reopen_every` later.
    pub fn handle_reopen_failed(&mut self, now: Instant) {
        self.handle_device_lost(now);
    }

    /// The device is open again after it was lost: the bytes the pacer thought
    /// queued below us are gone with it, and no write is in flight.
    pub fn handle_device_reopened(&mut self) {
        self.device = Device::Open { writing: false };
        self.pacer = Pacer::new(self.cfg.link.byte_rate, self.cfg.link.pacing_target);
        self.pacer_wake = None;
    }

    /// The next write for the device: frames appended to `out` up to
    /// `write_batch` bytes, returning their length. 0 while a write is in
    /// flight, the device is lost, or nothing is due (then
    /// [`Station::poll_timeout`] includes when something is). Report the
    /// write's end with [`Station::handle_write_done`]: one write at a time
    /// keeps the device queue short, so an urgent frame is never stuck
    /// behind bytes chosen earlier.
    pub fn poll_write(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        if self.device != (Device::Open { writing: false }) {
            return 0;
        }
        let start = out.len();
        while out.len() - start < self.cfg.write_batch && self.poll_transmit(now, out) > 0 {}
        let n = out.len() - start;
        if n > 0 {
            self.device = Device::Open { writing: true };
        }
        n
    }

    /// The device took the whole of the last [`Station::poll_write`].
    pub fn handle_write_done(&mut self) {
        if self.device == (Device::Open { writing: true }) {
            self.device = Device::Open { writing: false };
        }
    }

    // ----- output -----------------------------------------------------------

    /// Appends at most one frame for the device to `out` and returns its length;
    /// 0 when there is nothing to send or the pacer holds it back (then
    /// [`Station::poll_timeout`] includes the moment it lets go). The frame's
    /// contents are chosen now, when it can leave at once, so a keystroke never
    /// waits behind bulk data chosen earlier.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        if !self.pacer.writable(now) {
            self.pacer_wake = self.pacer.next_writable(now);
            return 0;
        }
        // Frames go out in pieces of about the pacing target, so the device queue
        // never holds more than twice that: a big frame in progress is where an
        // urgent one can still cut in.
        // Only when the peer can resume: otherwise pieces would buy nothing, and a
        // driver woken late (a loaded machine) would leave the line idle.
        let target = self.pacer.target_bytes();
        let piece = if self.link.features().contains(Features::RESUME) {
            (2 * target).saturating_sub(self.pacer.queued(now)).max(16)
        } else {
            usize::MAX
        };
        if self.link.can_preempt(2 * target.max(16)) && self.mux.has_overtaker() {
            self.link.preempt(2 * target.max(16));
        }
        while self.link.can_send() {
            // The frame in progress was stopped for a keystroke: what goes past
            // it is delivered before it, so only data that does not depend on it.
            let limit = self.payload_limit();
            let p = if self.link.awaiting_overtaker() {
                self.mux.poll_overtaking_payload(limit)
            } else {
                self.mux.poll_payload(limit)
            };
            let Some(p) = p else {
                break;
            };
            if self.link.send(p).is_err() {
                break;
            }
        }
        let n = self.link.poll_transmit_max(now, out, piece);
        if n > 0 {
            self.pacer.on_written(now, n);
        }
        // Taking payloads frees send buffers (SendSpace) and may finish closes.
        self.process(now);
        n
    }

    /// The largest payload the next frame may carry: a coded frame (a noisy
    /// line, FEC) cannot be cut for a keystroke, so while other channels
    /// share the line it is kept to [`StationConfig::coded_frame_time`].
    fn payload_limit(&self) -> usize {
        let max = self.link.max_payload();
        if !self.link.codes_frames() || self.mux.channel_count() < 2 {
            return max;
        }
        let rate = u128::from(self.cfg.link.byte_rate);
        let cap = (rate * self.cfg.coded_frame_time.as_micros() / 1_000_000) as usize;
        max.min(cap.max(CODED_FRAME_MIN))
    }

    /// When [`Station::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.link.poll_timeout();
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Instant| t.min(x)));
            }
        };
        consider(self.pacer_wake);
        consider(self.deferred_wake);
        if let Device::Lost { reopen_at } = self.device {
            consider(Some(reopen_at));
        }
        consider(self.waiting.iter().map(|w| w.deadline).min());
        consider(self.waiting.front().and_then(|w| w.not_before));
        match self.phase {
            Phase::Draining { deadline } | Phase::Flushing { deadline } => consider(Some(deadline)),
            Phase::Running | Phase::Closed => {}
        }
        t
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<StationEvent> {
        self.events.pop_front()
    }

    // ----- internals --------------------------------------------------------

    /// Moves the channel's queued bytes into the mux as far as its buffer
    /// allows, then its end of stream.
    fn flush_queue(&mut self, ch: ChannelId) {
        let Some(c) = self.chans.get_mut(&ch) else {
            return;
        };
        if c.role != ChanRole::Open {
            return;
        }
        let mut moved = 0;
        while let Some(front) = c.queue.front_mut() {
            let n = self.mux.send(ch, front);
            if n == 0 {
                break;
            }
            moved += n;
            if n == front.len() {
                c.queue.pop_front();
            } else {
                let _ = front.split_to(n);
            }
        }
        c.queued -= moved;
        if let SendEnd::Ending(status) = c.send_end {
            if c.queue.is_empty() {
                c.send_end = SendEnd::Ended;
                match status {
                    Some(s) => self.mux.close_write_with_status(ch, s),
                    None => self.mux.close_write(ch),
                }
            }
        }
        if moved > 0 {
            self.events
                .push_back(StationEvent::Sent { ch, bytes: moved });
        }
    }

    /// Hands link events to the mux and mux events to the application, then
    /// lets waiting opens in and moves the close along.
    fn process(&mut self, now: Instant) {
        while let Some(ev) = self.link.poll_event() {
            self.on_link_event(now, ev);
        }
        while let Some(ev) = self.mux.poll_event() {
            self.on_mux_event(now, ev);
        }
        self.start_waiting(now);
        self.release_deferred(now);
        self.advance_close(now);
    }

    fn on_link_event(&mut self, now: Instant, ev: LinkEvent) {
        match ev {
            LinkEvent::Up { peer_epoch } => {
                self.peer_epoch = Some(peer_epoch);
                self.up_since = Some(now);
                self.events.push_back(StationEvent::LinkUp { peer_epoch });
            }
            LinkEvent::Delivered(p) => {
                if let Err(MuxError::Protocol(e)) = self.mux.handle_payload(&p) {
                    // The spec's answer to data we cannot understand: both ends
                    // start over (the mux already reset its channels here).
                    self.stats.decode_restarts += 1;
                    warn!(
                        "SERIAL-MUX:{}: peer sent undecodable mux data ({e}); restarting the session",
                        self.cfg.label
                    );
                    self.link.restart_session();
                    self.session_lost(SessionEnd::Undecodable(e));
                }
            }
            LinkEvent::PeerRestarted => self.session_lost(SessionEnd::PeerRestarted),
            LinkEvent::PeerLost => self.session_lost(SessionEnd::PeerLost),
            LinkEvent::ProtocolMismatch(why) => {
                warn!("SERIAL-MUX:{}: {why}", self.cfg.label);
            }
            LinkEvent::PeerFeatures(features) => {
                // What both ends offered for this session (the session reset
                // before it cleared the last one's).
                self.mux.set_peer_compression(Codec::best_in(features));
                self.events
                    .push_back(StationEvent::PeerFeatures { features });
            }
        }
    }

    /// The peer broke the mux protocol on `ch` (overran its credit, CREDIT
    /// beyond the window, DATA before OPEN_OK...): the mux reset that channel
    /// alone. Logged at most once per [`VIOLATION_LOG_EVERY`], with a count,
    /// so that a peer that keeps at it cannot flood the log.
    fn report_violation(&mut self, now: Instant, ch: ChannelId, reason: &ResetReason) {
        self.stats.peer_violations += 1;
        self.violations_unlogged += 1;
        if self
            .violation_logged
            .is_some_and(|t| now.saturating_duration_since(t) < VIOLATION_LOG_EVERY)
        {
            return;
        }
        let n = std::mem::take(&mut self.violations_unlogged);
        let more = if n > 1 {
            format!(" ({n} channels cut since the last report)")
        } else {
            String::new()
        };
        warn!(
            "SERIAL-MUX:{}: the peer broke the protocol on channel {ch}, which is reset: {reason}{more}",
            self.cfg.label
        );
        self.violation_logged = Some(now);
    }

    /// The session ended: the mux resets every channel (their `Reset` events
    /// follow); the waiting opens now wait for the link again.
    fn session_lost(&mut self, why: SessionEnd) {
        if !matches!(why, SessionEnd::Undecodable(_)) {
            // An undecodable payload made the mux reset its channels already.
            self.mux.handle_session_reset(why.clone());
        }
        self.up_since = None;
        self.events
            .push_back(StationEvent::LinkDown { reason: why });
    }

    fn on_mux_event(&mut self, now: Instant, ev: MuxEvent) {
        match ev {
            MuxEvent::Incoming {
                ch,
                service,
                target,
            } => {
                if self.phase != Phase::Running {
                    self.mux.refuse(ch, RefuseReason::Other, "sfs is stopping");
                } else if self.services.contains(&service) {
                    // Behind the others if any wait: first come, first served.
                    let (rate, burst) = (self.cfg.open_rate, self.cfg.open_burst);
                    if self.deferred.is_empty() && self.opens_allowed.take(now, rate, burst) {
                        self.chans.insert(ch, Chan::new(ChanRole::Offered));
                        self.events.push_back(StationEvent::Incoming {
                            ch,
                            service,
                            target,
                        });
                    } else {
                        self.stats.opens_deferred += 1;
                        if self.opens_allowed.deferred == 0 {
                            warn!(
                                "SERIAL-MUX:{}: the peer opens channels faster than {rate}/s (bursts of {burst}); the excess waits its turn",
                                self.cfg.label
                            );
                        }
                        self.opens_allowed.deferred += 1;
                        self.chans.insert(ch, Chan::new(ChanRole::Deferred));
                        self.deferred.push_back((ch, service, target));
                    }
                } else {
                    self.stats.unknown_service += 1;
                    self.mux
                        .refuse(ch, RefuseReason::NotAllowed, "no such service here");
                }
            }
            MuxEvent::Accepted { ch } => {
                if let Some(c) = self.chans.get_mut(&ch) {
                    if let ChanRole::Opening(open) = c.role {
                        c.role = ChanRole::Open;
                        self.events.push_back(StationEvent::Opened { open, ch });
                        self.flush_queue(ch);
                    }
                }
            }
            MuxEvent::Refused { ch, reason, detail } => {
                if let Some(c) = self.chans.remove(&ch) {
                    if let ChanRole::Opening(open) = c.role {
                        match c.asked {
                            // Its channels are all in use (a smaller
                            // max-channels, or a burst from its side): like
                            // ours being full, the open waits for one.
                            Some(w)
                                if reason == RefuseReason::TooManyChannels
                                    && self.phase == Phase::Running =>
                            {
                                self.wait_for_peer_channel(now, w);
                            }
                            _ => self.fail_open(open, OpenError::Refused { reason, detail }),
                        }
                    }
                }
            }
            MuxEvent::Readable { ch } => {
                if self.is_visible(ch) {
                    self.events.push_back(StationEvent::Readable { ch });
                }
            }
            MuxEvent::PeerExited { ch, status } => {
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.peer_status = Some(status);
                }
            }
            MuxEvent::ReadClosed { ch } => {
                if let Some(c) = self
                    .chans
                    .get_mut(&ch)
                    .filter(|c| c.role != ChanRole::Deferred)
                {
                    c.peer_ended = true;
                    let status = c.peer_status.take();
                    self.events
                        .push_back(StationEvent::ReadClosed { ch, status });
                }
            }
            MuxEvent::SendSpace { ch } => self.flush_queue(ch),
            MuxEvent::Reset {
                ch,
                reason,
                unconfirmed,
            } => {
                if reason.is_violation() {
                    self.report_violation(now, ch, &reason);
                }
                if let Some(c) = self.chans.remove(&ch) {
                    match c.role {
                        ChanRole::Opening(open) => {
                            self.fail_open(open, OpenError::Reset(reason));
                        }
                        // The application never heard of it.
                        ChanRole::Deferred => {}
                        ChanRole::Offered | ChanRole::Open => {
                            self.events.push_back(StationEvent::Reset {
                                ch,
                                reason,
                                unconfirmed: unconfirmed + c.queued as u64,
                            });
                        }
                    }
                }
            }
            MuxEvent::Closed { ch } => {
                if self
                    .chans
                    .remove(&ch)
                    .is_some_and(|c| c.role != ChanRole::Deferred)
                {
                    self.events.push_back(StationEvent::Closed { ch });
                }
            }
        }
    }

    /// The application knows of `ch` (a deferred open is not handed over yet).
    fn is_visible(&self, ch: ChannelId) -> bool {
        self.chans
            .get(&ch)
            .is_some_and(|c| c.role != ChanRole::Deferred)
    }

    fn advance_close(&mut self, now: Instant) {
        match self.phase {
            Phase::Running | Phase::Closed => {}
            Phase::Draining { deadline } => {
                if self.chans.is_empty() && self.quiet() {
                    self.phase = Phase::Closed;
                } else if now >= deadline {
                    let mut left: Vec<ChannelId> = self.chans.keys().copied().collect();
                    left.sort();
                    for ch in left {
                        let unconfirmed = self.chans.get(&ch).map_or(0, |c| c.queued as u64);
                        let reason = ResetReason::Stopping;
                        self.reset(ch, &reason.to_string());
                        self.events.push_back(StationEvent::Reset {
                            ch,
                            reason,
                            unconfirmed,
                        });
                    }
                    self.phase = Phase::Flushing {
                        deadline: now + FLUSH_TIME,
                    };
                }
            }
            Phase::Flushing { deadline } => {
                if self.quiet() || now >= deadline {
                    self.phase = Phase::Closed;
                }
            }
        }
    }

    /// Nothing left to send and everything sent was acknowledged (or the
    /// link is down, so nothing will be).
    fn quiet(&self) -> bool {
        !self.mux.has_pending() && (self.link.all_acked() || !self.link.is_up())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Station {
    /// The link, for tests that play a misbehaving peer.
    pub(crate) fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}
