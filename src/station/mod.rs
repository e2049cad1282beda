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
//!   on average (bursts of `open_burst`); the excess is refused ("too many
//!   opens per second"), so a peer cannot make this end connect to its
//!   targets without bound (logged once per flood);
//! - a payload from the peer that does not decode restarts the link session, so
//!   both ends reset their channels (docs/mux-protocol.md);
//! - the bytes an application writes are queued per channel until the mux takes
//!   them, and [`StationEvent::Sent`] says when, so a driver can bound what it
//!   accepts from a socket;
//! - closing the station lets channels finish cleanly for a grace period, then
//!   resets the rest and flushes the resets.
#![deny(clippy::disallowed_methods)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use crate::link::{Features, Link, LinkConfig, LinkEvent, LinkStats, Pacer};
use crate::mux::{
    ChannelId, Codec, ExitStatus, Mux, MuxConfig, MuxError, MuxEvent, MuxStats, RefuseReason,
    Target,
};
use crate::stats::sanitize;

/// Everything a station needs to know before it starts.
#[derive(Clone, Debug)]
pub struct StationConfig {
    /// The link layer's settings.
    pub link: LinkConfig,
    /// The multiplexer's settings.
    pub mux: MuxConfig,
    /// How long an open waits for the link to come up.
    pub link_wait: Duration,
    /// How long an open waits for a free channel while all are in use.
    pub channel_wait: Duration,
    /// Opens that may wait at once; one more fails at once.
    pub max_waiting: usize,
    /// Channels per second the peer may open for offered services, on average.
    pub open_rate: u32,
    /// Channels the peer may open at once beyond the rate (a browser loading a
    /// page); with `open_rate` a token bucket.
    pub open_burst: u32,
    /// Name for log lines (the device).
    pub label: String,
}

impl StationConfig {
    /// Defaults for a line of `byte_rate` bytes/s.
    pub fn for_byte_rate(byte_rate: u32, label: impl Into<String>) -> Self {
        StationConfig {
            link: LinkConfig::for_byte_rate(byte_rate),
            mux: MuxConfig::for_byte_rate(byte_rate),
            link_wait: Duration::from_secs(5),
            channel_wait: Duration::from_secs(60),
            max_waiting: 4096,
            open_rate: 64,
            open_burst: 256,
            label: label.into(),
        }
    }

    /// Checks the link and mux settings.
    pub fn validate(&self) -> Result<(), String> {
        self.link.validate()?;
        self.mux.validate()
    }
}

/// Names one [`Station::open`] until it becomes a channel or fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenId(pub u64);

/// Why an open did not become a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No sfs peer answered within `link_wait`.
    LinkDown(Duration),
    /// Every channel stayed in use for `channel_wait`.
    ChannelsBusy(Duration),
    /// Too many opens were already waiting.
    QueueFull(usize),
    /// The peer refused the channel.
    Refused {
        /// The peer's reason.
        reason: RefuseReason,
        /// The peer's detail text, raw (`Display` sanitises it).
        detail: String,
    },
    /// The session ended before the peer answered.
    Reset(String),
    /// The station is closing.
    Closing,
    /// The service name cannot be sent.
    Invalid(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::LinkDown(w) => write!(
                f,
                "no sfs peer answering on the line (link down for {} s)",
                w.as_secs()
            ),
            OpenError::ChannelsBusy(w) => write!(
                f,
                "every channel stayed busy for {} s (max-channels)",
                w.as_secs()
            ),
            OpenError::QueueFull(n) => write!(f, "{n} connections already waiting for a channel"),
            OpenError::Refused { reason, detail } if detail.is_empty() => {
                write!(f, "refused by peer: {reason}")
            }
            // The detail and a reset's reason may be the peer's text: this is
            // where they become text for logs and stderr.
            OpenError::Refused { reason, detail } => {
                write!(f, "refused by peer: {reason} ({})", sanitize(detail))
            }
            OpenError::Reset(why) => {
                write!(f, "reset before the peer answered: {}", sanitize(why))
            }
            OpenError::Closing => f.write_str("sfs is stopping"),
            OpenError::Invalid(why) => f.write_str(why),
        }
    }
}

/// Something the application (driver) must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StationEvent {
    /// A session with the peer is up.
    LinkUp {
        /// The peer's epoch.
        peer_epoch: u32,
    },
    /// The session ended (peer restarted or silent past `dead-after`, or its
    /// data did not decode); every channel was reset.
    LinkDown {
        /// Why.
        reason: String,
    },
    /// An [`Station::open`] became a channel; `write` works from now on.
    Opened {
        /// The open.
        open: OpenId,
        /// Its channel.
        ch: ChannelId,
    },
    /// An [`Station::open`] failed (terminal for that open).
    OpenFailed {
        /// The open.
        open: OpenId,
        /// Why.
        error: OpenError,
    },
    /// The peer opened a channel for a service this end offers: call
    /// [`Station::accept`] or [`Station::refuse`].
    Incoming {
        /// The channel.
        ch: ChannelId,
        /// The service asked for.
        service: String,
        /// The destination asked for (an OPEN_TO), if any.
        target: Option<Target>,
    },
    /// The peer's link features for this session are known: the features both
    /// ends use (a v1 peer never sends this; its session runs without them).
    PeerFeatures {
        /// Ours ∩ the peer's.
        features: Features,
    },
    /// Data to [`Station::read`] (edge-triggered, as [`MuxEvent::Readable`]).
    Readable {
        /// The channel.
        ch: ChannelId,
    },
    /// The peer's stream ended, after every byte was read; with the exit status
    /// of the peer's program when it sent one.
    ReadClosed {
        /// The channel.
        ch: ChannelId,
        /// The peer program's exit status, if it ended with one.
        status: Option<ExitStatus>,
    },
    /// `bytes` of what [`Station::write`] took left the channel's queue for the mux.
    Sent {
        /// The channel.
        ch: ChannelId,
        /// How many.
        bytes: usize,
    },
    /// Both directions ended and the peer confirmed it took every byte (terminal).
    Closed {
        /// The channel.
        ch: ChannelId,
    },
    /// The channel was cut (terminal): nothing more is delivered either way.
    Reset {
        /// The channel.
        ch: ChannelId,
        /// Why.
        reason: String,
        /// Bytes written on it that the peer never confirmed taking.
        unconfirmed: u64,
    },
}

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

/// Why an open is waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitReason {
    LinkDown,
    ChannelsBusy,
}

#[derive(Debug)]
struct WaitingOpen {
    open: OpenId,
    service: String,
    target: Option<Target>,
    reason: WaitReason,
    since: Instant,
    deadline: Instant,
}

/// A channel's place between the application and the mux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChanRole {
    /// We opened it; the peer has not accepted yet.
    Opening(OpenId),
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
    /// Written by the application, not yet taken by the mux.
    queue: VecDeque<Bytes>,
    queued: usize,
    send_end: SendEnd,
    /// The peer's exit status, held until its end of stream is reported.
    peer_status: Option<ExitStatus>,
}

impl Chan {
    fn new(role: ChanRole) -> Self {
        Chan {
            role,
            queue: VecDeque::new(),
            queued: 0,
            send_end: SendEnd::Open,
            peer_status: None,
        }
    }
}

/// Counters of the station's own decisions (the link and mux keep theirs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StationStats {
    /// Opens that could not start at once (link down or every channel busy).
    pub opens_queued: u64,
    /// Opens that failed without becoming a channel.
    pub opens_failed: u64,
    /// Channels the peer asked for a service not offered here.
    pub unknown_service: u64,
    /// Session restarts because the peer's mux data did not decode.
    pub decode_restarts: u64,
    /// Channels the peer opened beyond `open_rate`/`open_burst`, refused.
    pub opens_over_rate: u64,
    /// Channels reset because the peer broke the mux protocol on them.
    pub peer_violations: u64,
    /// Opens waiting now.
    pub waiting: usize,
}

/// One end of a SERIAL-MUX line (see the module docs).
#[derive(Debug)]
pub struct Station {
    cfg: StationConfig,
    link: Link,
    mux: Mux,
    pacer: Pacer,
    /// When the pacer lets the next frame out, if it held one back.
    pacer_wake: Option<Instant>,
    services: HashSet<String>,
    waiting: VecDeque<WaitingOpen>,
    chans: HashMap<ChannelId, Chan>,
    events: VecDeque<StationEvent>,
    next_open: u64,
    phase: Phase,
    /// The current wait for free channels was logged (once per burst).
    burst_reported: bool,
    opens_allowed: OpenBudget,
    /// When a protocol violation by the peer was last logged.
    violation_logged: Option<Instant>,
    violations_unlogged: u64,
    stats: StationStats,
}

/// Protocol violations by the peer are logged at most this often.
const VIOLATION_LOG_EVERY: Duration = Duration::from_secs(10);

/// A token bucket for the peer's opens: `open_burst` tokens, refilled at
/// `open_rate` per second, one per open.
#[derive(Debug)]
struct OpenBudget {
    tokens: f64,
    at: Option<Instant>,
    /// Opens refused in the current flood (logged when it starts and ends).
    refused: u64,
}

impl OpenBudget {
    fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        let elapsed = self
            .at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.at = Some(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * f64::from(rate)).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How long the resets of a closing station may take to reach the peer.
const FLUSH_TIME: Duration = Duration::from_millis(500);

impl Station {
    /// A station with our link `epoch` (random, non-zero) at `now`.
    pub fn new(cfg: StationConfig, epoch: u32, now: Instant) -> Self {
        Station {
            link: Link::new(cfg.link.clone(), epoch, now),
            mux: Mux::new(cfg.mux.clone()),
            pacer: Pacer::new(cfg.link.byte_rate, cfg.link.pacing_target),
            pacer_wake: None,
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
                refused: 0,
            },
            violation_logged: None,
            violations_unlogged: 0,
            stats: StationStats::default(),
            cfg,
        }
    }

    // ----- getters ----------------------------------------------------------

    /// What this end offers in the link's feature negotiation: the codec it
    /// can decompress (`None` with `compress=off`). The link announces it to
    /// the peer in each session.
    pub fn compression_offer(&self) -> Option<Codec> {
        self.mux.compression_offer()
    }

    /// The link reported what the peer can decompress for the current
    /// session (`None` for a peer that announced nothing, e.g. one built
    /// before compression). Call it for every session once its features are
    /// known, after the session reset of the previous one (which clears it).
    pub fn set_peer_compression(&mut self, codec: Option<Codec>) {
        self.mux.set_peer_compression(codec);
    }

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
    /// histories (bounded by [`MuxConfig::heap_bound`], whatever the peer sends).
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

    /// Queues `data` on the channel. The caller bounds what it writes before
    /// [`StationEvent::Sent`] gives room back; bytes written after the end of
    /// the stream, or on a dead channel, are dropped.
    pub fn write(&mut self, ch: ChannelId, data: Bytes) {
        let Some(c) = self.chans.get_mut(&ch) else {
            return;
        };
        if c.send_end != SendEnd::Open || data.is_empty() {
            return;
        }
        c.queued += data.len();
        c.queue.push_back(data);
        self.flush_queue(ch);
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
                ChanRole::Offered => self.mux.refuse(ch, RefuseReason::Other, reason),
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
        self.expire_waiting(now);
        self.process(now);
    }

    /// The device is open again after it was lost: the bytes the pacer thought
    /// queued below us are gone with it.
    pub fn device_reopened(&mut self) {
        self.pacer = Pacer::new(self.cfg.link.byte_rate, self.cfg.link.pacing_target);
        self.pacer_wake = None;
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
            let p = if self.link.awaiting_overtaker() {
                self.mux.poll_overtaking_payload(self.link.max_payload())
            } else {
                self.mux.poll_payload(self.link.max_payload())
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

    /// When [`Station::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.link.poll_timeout();
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Instant| t.min(x)));
            }
        };
        consider(self.pacer_wake);
        consider(self.waiting.iter().map(|w| w.deadline).min());
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

    fn wait_limit(&self, reason: WaitReason) -> Duration {
        match reason {
            WaitReason::LinkDown => self.cfg.link_wait,
            WaitReason::ChannelsBusy => self.cfg.channel_wait,
        }
    }

    fn fail_open(&mut self, open: OpenId, error: OpenError) {
        self.stats.opens_failed += 1;
        self.events
            .push_back(StationEvent::OpenFailed { open, error });
    }

    /// Turns waiting opens into channels, first come first served, while the
    /// link is up and the mux has room.
    fn start_waiting(&mut self, now: Instant) {
        if !self.link.is_up() {
            return;
        }
        if self.waiting.is_empty() {
            self.burst_reported = false;
        }
        while let Some(w) = self.waiting.front() {
            match self.mux.open_to(&w.service, w.target.as_ref()) {
                Ok(ch) => {
                    let w = self.waiting.pop_front().expect("front exists");
                    self.chans.insert(ch, Chan::new(ChanRole::Opening(w.open)));
                }
                Err(MuxError::TooManyChannels) => {
                    let channel_wait = self.cfg.channel_wait;
                    for w in self.waiting.iter_mut() {
                        if w.reason == WaitReason::LinkDown {
                            // Up now, but full: the wait for a channel starts.
                            w.reason = WaitReason::ChannelsBusy;
                            w.deadline = now + channel_wait;
                        }
                    }
                    if !self.burst_reported {
                        self.burst_reported = true;
                        info!(
                            "SERIAL-MUX:{}: all {} channels in use; new connections wait for one (up to {} s)",
                            self.cfg.label,
                            self.cfg.mux.max_channels,
                            channel_wait.as_secs()
                        );
                    }
                    return;
                }
                Err(e) => {
                    let w = self.waiting.pop_front().expect("front exists");
                    self.fail_open(w.open, OpenError::Invalid(e.to_string()));
                }
            }
        }
    }

    fn expire_waiting(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].deadline <= now {
                let w = self.waiting.remove(i).expect("index in range");
                let waited = now - w.since;
                let error = match w.reason {
                    WaitReason::LinkDown => OpenError::LinkDown(waited),
                    WaitReason::ChannelsBusy => OpenError::ChannelsBusy(waited),
                };
                warn!(
                    "SERIAL-MUX:{}: a connection gave up waiting: {error}",
                    self.cfg.label
                );
                self.fail_open(w.open, error);
            } else {
                i += 1;
            }
        }
    }

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
            self.on_link_event(ev);
        }
        while let Some(ev) = self.mux.poll_event() {
            self.on_mux_event(now, ev);
        }
        self.start_waiting(now);
        self.advance_close(now);
    }

    fn on_link_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Up { peer_epoch } => {
                self.events.push_back(StationEvent::LinkUp { peer_epoch });
            }
            LinkEvent::Delivered(p) => {
                if let Err(e) = self.mux.handle_payload(&p) {
                    // The spec's answer to data we cannot understand: both ends
                    // start over (the mux already reset its channels here).
                    self.stats.decode_restarts += 1;
                    warn!(
                        "SERIAL-MUX:{}: peer sent undecodable mux data ({e}); restarting the session",
                        self.cfg.label
                    );
                    self.link.restart_session();
                    self.session_lost(format!("{e}"));
                }
            }
            LinkEvent::PeerRestarted => {
                self.mux.handle_session_reset("peer restarted");
                self.session_lost("peer restarted".into());
            }
            LinkEvent::PeerLost => {
                self.mux.handle_session_reset("serial link lost");
                self.session_lost("serial link lost (peer silent past dead-after)".into());
            }
            LinkEvent::ProtocolMismatch(why) => {
                warn!("SERIAL-MUX:{}: {why}", self.cfg.label);
            }
            LinkEvent::PeerFeatures(features) => {
                // What both ends offered for this session (the session reset
                // before it cleared the last one's).
                self.mux.set_peer_compression(
                    features
                        .contains(crate::link::Features::COMPRESS_LZ4)
                        .then_some(Codec::Lz4),
                );
                self.events
                    .push_back(StationEvent::PeerFeatures { features });
            }
        }
    }

    /// The peer broke the mux protocol on `ch` (overran its credit, CREDIT
    /// beyond the window, DATA before OPEN_OK...): the mux reset that channel
    /// alone. Logged at most once per [`VIOLATION_LOG_EVERY`], with a count,
    /// so that a peer that keeps at it cannot flood the log.
    fn report_violation(&mut self, now: Instant, ch: ChannelId, reason: &str) {
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

    /// The mux has reset its channels (their `Reset` events are queued); the
    /// waiting opens now wait for the link again.
    fn session_lost(&mut self, reason: String) {
        self.events.push_back(StationEvent::LinkDown { reason });
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
                } else if self.services.contains(&service)
                    && !self
                        .opens_allowed
                        .take(now, self.cfg.open_rate, self.cfg.open_burst)
                {
                    self.stats.opens_over_rate += 1;
                    if self.opens_allowed.refused == 0 {
                        warn!(
                            "SERIAL-MUX:{}: the peer opens channels faster than {}/s (bursts of {}); refusing the excess",
                            self.cfg.label, self.cfg.open_rate, self.cfg.open_burst
                        );
                    }
                    self.opens_allowed.refused += 1;
                    self.mux
                        .refuse(ch, RefuseReason::Other, "too many opens per second");
                } else if self.services.contains(&service) {
                    let refused = std::mem::take(&mut self.opens_allowed.refused);
                    if refused > 0 {
                        info!(
                            "SERIAL-MUX:{}: the peer's opens are within the rate again ({refused} refused)",
                            self.cfg.label
                        );
                    }
                    self.chans.insert(ch, Chan::new(ChanRole::Offered));
                    self.events.push_back(StationEvent::Incoming {
                        ch,
                        service,
                        target,
                    });
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
                        self.fail_open(open, OpenError::Refused { reason, detail });
                    }
                }
            }
            MuxEvent::Readable { ch } => {
                if self.chans.contains_key(&ch) {
                    self.events.push_back(StationEvent::Readable { ch });
                }
            }
            MuxEvent::PeerExited { ch, status } => {
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.peer_status = Some(status);
                }
            }
            MuxEvent::ReadClosed { ch } => {
                if let Some(c) = self.chans.get_mut(&ch) {
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
                if reason.starts_with("protocol error") {
                    self.report_violation(now, ch, &reason);
                }
                if let Some(c) = self.chans.remove(&ch) {
                    match c.role {
                        ChanRole::Opening(open) => {
                            self.fail_open(open, OpenError::Reset(reason));
                        }
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
                if self.chans.remove(&ch).is_some() {
                    self.events.push_back(StationEvent::Closed { ch });
                }
            }
        }
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
                        self.reset(ch, "sfs is stopping");
                        self.events.push_back(StationEvent::Reset {
                            ch,
                            reason: "sfs is stopping".into(),
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
