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

pub mod compress;
mod credit;
mod reason;
mod scheduler;
pub mod wire;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use crate::error::ConfigError;
use bytes::{BufMut, Bytes, BytesMut};

pub use compress::Codec;
use compress::History;
use credit::{RecvWindow, SendCredit};
pub use reason::{ResetReason, SessionEnd};
use scheduler::{Pick, Scheduler, Tier, MIN_CUT};
use wire::{
    code, truncate_str, Record, DATA_HEADER_LEN, DATA_LZ4_HEADER_LEN, MAX_DATA_LEN, MAX_HOST_LEN,
    MAX_SERVICE_LEN, MAX_TEXT_LEN,
};

/// Smallest DATA record worth trying to compress: below it the 2 extra header
/// bytes and the CPU are not worth it (keystrokes never qualify anyway).
const COMPRESS_MIN: usize = 32;
/// Most raw bytes one DATA_LZ4 record may carry per byte of room it was
/// given: bounds the work of one attempt (highly repetitive data still
/// moves at up to this many times the line rate).
const COMPRESS_MAX_RATIO: usize = 16;
/// Longest run of records sent raw without trying to compress after data
/// turned out incompressible (doubling from 1 with each failure).
const COMPRESS_MAX_BACKOFF: u16 = 64;

/// Local handle of a channel.
///
/// Layout: bits 0..16 the wire id, bit 16 set when the peer opened the channel,
/// bits 17..32 a local generation so that a stale handle never reaches a new
/// channel that reuses the same wire id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

impl ChannelId {
    fn new(remote: bool, id: u16, gen: u16) -> Self {
        ChannelId((u32::from(gen & 0x7fff) << 17) | (u32::from(remote) << 16) | u32::from(id))
    }

    /// The channel id on the wire.
    pub fn wire_id(self) -> u16 {
        self.0 as u16
    }

    /// True when the peer opened the channel.
    pub fn opened_by_peer(self) -> bool {
        self.0 & (1 << 16) != 0
    }

    /// Local generation (distinguishes reuses of a wire id).
    pub fn generation(self) -> u16 {
        (self.0 >> 17) as u16
    }
}

impl fmt::Display for ChannelId {
    /// `L3.7`: locally opened wire id 3, generation 7 (`R` = opened by the peer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = if self.opened_by_peer() { 'R' } else { 'L' };
        write!(f, "{side}{}.{}", self.wire_id(), self.generation())
    }
}

/// Multiplexer configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxConfig {
    /// Receive window granted to the peer per channel (bytes it may send
    /// before we return credit); also the bound of received-but-unconsumed data.
    pub window: u32,
    /// Send buffer per channel: `send` accepts at most this much unsent data.
    pub send_buffer: u32,
    /// Channels in the table at once (both directions, including ones still
    /// draining), bounding memory to
    /// `max_channels × (window + send_buffer + 2 × HISTORY_CAP)` (see `# Memory`).
    /// The default, 256, serves a web browser (which opens dozens of
    /// connections per page) through one line.
    pub max_channels: u32,
    /// A channel with at most this many bytes queued and no recent bulk
    /// traffic is interactive and goes ahead of bulk data.
    pub interactive_bytes: u32,
    /// A channel that sent fewer than this many bytes recently (a counter
    /// halving every 32 KiB of line traffic) goes ahead of bulk channels until
    /// it has used them: a new connection's handshake (an ssh login) is not
    /// slowed to a fair share by transfers already running. 0 turns it off.
    pub sparse_bytes: u32,
    /// Compress DATA (DATA_LZ4 records) towards a peer that can decompress
    /// ([`Mux::set_peer_compression`]), and accept compressed records: what
    /// this side offers in the link's feature negotiation. Off, nothing is
    /// compressed either way.
    pub compress: bool,
}

impl MuxConfig {
    /// Defaults for a line that moves `byte_rate` bytes per second: the window
    /// is half a second of line time, clamped to 2 KiB..64 KiB (5.6 KiB at
    /// 115200 baud); the send buffer equals the window; 256 channels (at most
    /// 256 × 2 × 5760 B = 2.8 MiB of buffers at 115200 baud, 32 MiB with the
    /// largest window, plus up to 10 MiB of compression histories).
    pub fn for_byte_rate(byte_rate: u32) -> Self {
        let window = (byte_rate / 2).clamp(2048, 65536);
        MuxConfig {
            window,
            send_buffer: window,
            max_channels: 256,
            interactive_bytes: 128,
            sparse_bytes: 8192,
            compress: true,
        }
    }

    /// Check the values are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check("mux window", self.window.into(), 64, 16 << 20)?;
        ConfigError::check("mux send buffer", self.send_buffer.into(), 1, 16 << 20)?;
        ConfigError::check("max channels", self.max_channels.into(), 1, 32768)?;
        ConfigError::check("interactive bytes", self.interactive_bytes as u64, 0, 4096)?;
        ConfigError::check("sparse bytes", self.sparse_bytes as u64, 0, 1 << 20)?;
        Ok(())
    }

    /// Most heap bytes [`Mux::heap_bytes`] may count, whatever the peer
    /// sends: per channel its window and send buffer, plus a compression
    /// history per direction ([`compress::HISTORY_CAP`]; docs/mux-protocol.md
    /// §8: `max_channels × 40 KiB` on top of §5's bound).
    pub fn heap_bound(&self) -> usize {
        self.max_channels as usize
            * (self.window as usize + self.send_buffer as usize + 2 * compress::HISTORY_CAP)
    }
}

impl Default for MuxConfig {
    /// [`MuxConfig::for_byte_rate`] at 115200 baud (11520 B/s).
    fn default() -> Self {
        MuxConfig::for_byte_rate(11_520)
    }
}

/// Where the acceptor of a channel should connect (carried by OPEN_TO): a
/// host name or IP address in text form, resolved by the acceptor, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Name or address; 1..=53 bytes together with the service (see [`Mux::open_to`]).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Target {
    /// `host:port`, with an IPv6 address in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a channel open was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// The target refused the connection.
    ConnectionRefused,
    /// The target could not be reached.
    NoRoute,
    /// Policy forbids this service.
    NotAllowed,
    /// The far side has too many channels.
    TooManyChannels,
    /// The target's name did not resolve.
    NameNotFound,
    /// Connecting to the target timed out.
    TimedOut,
    /// Anything else (see the detail text).
    Other,
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefuseReason::ConnectionRefused => "connection refused",
            RefuseReason::NoRoute => "no route",
            RefuseReason::NotAllowed => "not allowed",
            RefuseReason::TooManyChannels => "too many channels",
            RefuseReason::NameNotFound => "name not found",
            RefuseReason::TimedOut => "timed out",
            RefuseReason::Other => "refused",
        })
    }
}

/// How the program behind a channel ended (carried by an EXIT record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(u32),
    /// It was killed by this signal.
    Signal(u32),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Something the application must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxEvent {
    /// The peer opened a channel: call [`Mux::accept`] or [`Mux::refuse`].
    Incoming {
        /// The new channel.
        ch: ChannelId,
        /// Service the peer asked for.
        service: String,
        /// Destination the peer asked for (OPEN_TO), if any.
        target: Option<Target>,
    },
    /// Our [`Mux::open`] was accepted; `send` works from now on.
    Accepted {
        /// The channel.
        ch: ChannelId,
    },
    /// Our [`Mux::open`] was refused (terminal).
    Refused {
        /// The channel.
        ch: ChannelId,
        /// Why.
        reason: RefuseReason,
        /// Peer's detail text.
        detail: String,
    },
    /// Data is available: [`Mux::read`] until it returns `None` (edge-triggered).
    Readable {
        /// The channel.
        ch: ChannelId,
    },
    /// The peer's program exited (its side used
    /// [`Mux::close_write_with_status`]); comes immediately before the
    /// channel's [`MuxEvent::ReadClosed`].
    PeerExited {
        /// The channel.
        ch: ChannelId,
        /// How the peer's program ended.
        status: ExitStatus,
    },
    /// The peer sent EOF and all data before it has been read.
    ReadClosed {
        /// The channel.
        ch: ChannelId,
    },
    /// Send buffer space was freed after a short `send`.
    SendSpace {
        /// The channel.
        ch: ChannelId,
    },
    /// The channel was aborted: peer reset, protocol violation or session loss
    /// (terminal; buffered data in both directions is discarded).
    Reset {
        /// The channel.
        ch: ChannelId,
        /// Why.
        reason: ResetReason,
        /// Bytes the application handed to [`Mux::send`] on this channel that
        /// the peer had not confirmed consuming: still queued here, or sent
        /// but not yet returned as credit (so "N bytes not confirmed"; some
        /// of them may have been consumed, the peer returns credit in chunks).
        unconfirmed: u64,
    },
    /// Both directions finished cleanly (terminal): the peer's application
    /// consumed every byte we sent and its stream ended; every byte it sent
    /// was read here and reported consumed.
    Closed {
        /// The channel.
        ch: ChannelId,
    },
}

impl MuxEvent {
    /// The channel the event is about.
    pub fn channel(&self) -> ChannelId {
        match self {
            MuxEvent::Incoming { ch, .. }
            | MuxEvent::Accepted { ch }
            | MuxEvent::Refused { ch, .. }
            | MuxEvent::Readable { ch }
            | MuxEvent::PeerExited { ch, .. }
            | MuxEvent::ReadClosed { ch }
            | MuxEvent::SendSpace { ch }
            | MuxEvent::Reset { ch, .. }
            | MuxEvent::Closed { ch } => *ch,
        }
    }
}

/// Errors of the multiplexer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxError {
    /// `max_channels` reached (or the local id space is exhausted).
    TooManyChannels,
    /// Service name longer than 32 bytes.
    ServiceTooLong,
    /// Target host empty, or service and host longer than 53 bytes together.
    TargetTooLong,
    /// The peer sent a payload that cannot be parsed. All channels were reset
    /// locally; the caller should restart the link session so the peer does
    /// the same.
    Protocol(wire::DecodeError),
}

impl fmt::Display for MuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuxError::TooManyChannels => f.write_str("too many channels"),
            MuxError::ServiceTooLong => {
                write!(f, "service name longer than {MAX_SERVICE_LEN} bytes")
            }
            MuxError::TargetTooLong => write!(
                f,
                "target host empty or longer than {MAX_HOST_LEN} bytes minus the service name"
            ),
            MuxError::Protocol(s) => write!(f, "mux protocol error: {s}"),
        }
    }
}

impl std::error::Error for MuxError {}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MuxStats {
    /// Channels in the table now (including draining ones).
    pub channels_open: usize,
    /// Channels we opened.
    pub opened_total: u64,
    /// Channels the peer opened.
    pub incoming_total: u64,
    /// REFUSE records sent.
    pub refused_total: u64,
    /// Channels that ended with `Closed`.
    pub closed_total: u64,
    /// DATA bytes sent.
    pub bytes_sent: u64,
    /// DATA bytes received.
    pub bytes_received: u64,
    /// Payloads produced.
    pub payloads_sent: u64,
    /// Of those, payloads of interactive or sparse data built to overtake a frame
    /// already on its way ([`Mux::poll_overtaking_payload`]).
    pub payloads_overtaking: u64,
    /// Payloads handled.
    pub payloads_received: u64,
    /// RESET records sent.
    pub resets_sent: u64,
    /// RESET records received.
    pub resets_received: u64,
    /// Protocol violations seen (channel-level and payload-level).
    pub protocol_errors: u64,
    /// Session resets (link restarts and undecodable payloads).
    pub session_resets: u64,
    /// Refusals not sent because too many were queued already (a flood of
    /// OPENs): the application's refusals beyond 4096 queued, and refusals of
    /// channels beyond `max_channels` beyond 256 queued replies.
    pub refusals_dropped: u64,
    /// DATA bytes sent compressed (part of `bytes_sent`).
    pub compressed_bytes_sent: u64,
    /// Wire bytes those took (DATA_LZ4 blocks, without record headers).
    pub compressed_wire_sent: u64,
    /// DATA bytes received compressed (part of `bytes_received`).
    pub compressed_bytes_received: u64,
}

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

/// (peer opened it, wire id)
type WireKey = (bool, u16);

#[derive(Debug)]
enum CtlKind {
    Open,
    OpenOk,
    Credit,
    Eof,
    Close,
    Reset(String),
}

/// A control record owed on a channel in the table.
#[derive(Debug)]
struct Ctl(ChannelId, CtlKind);

/// A record answering an id that is not (or no longer) in the table.
#[derive(Debug)]
enum Reply {
    /// REFUSE of an incoming channel: by the application (`stray` false), or
    /// beyond `max_channels` before any state was created (`stray` true).
    Refuse {
        id: u16,
        reason: RefuseReason,
        detail: String,
        stray: bool,
    },
    /// RESET answering a record for an unknown channel.
    StrayReset {
        initiator: bool,
        id: u16,
        reason: &'static str,
    },
}

/// Where a channel is between its OPEN and the end of the application's
/// interest in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// We opened it and wait for OPEN_OK or REFUSE. Until `open_sent` the peer
    /// does not know the channel, so aborting it simply forgets it.
    Opening { open_sent: bool },
    /// The peer opened it; the application has not accepted it yet.
    Undecided,
    /// The application accepted it; our OPEN_OK is queued (`send` already
    /// buffers).
    Accepted,
    /// OPEN_OK crossed: DATA, CREDIT and EOF may flow.
    Established,
    /// The application's handle is dead: it reset the channel, or was told of
    /// a reset or refusal. Buffers are gone, records other than the peer's
    /// final one are ignored, and the channel stays only until the final
    /// records crossed.
    Aborted,
}

/// Our direction of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendHalf {
    /// `send` takes data.
    Open,
    /// `close_write` was called: EOF (EXIT when `exit` is known) is queued
    /// once the buffer drained and the channel is established.
    EofPending { exit: Option<ExitStatus> },
    /// EOF (or EXIT) is in the control queue.
    EofQueued { exit: Option<ExitStatus> },
    /// EOF (or EXIT, or a CLOSE standing for the EOF) is on the wire.
    EofSent,
}

/// The peer's direction of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvHalf {
    /// DATA may arrive.
    Open,
    /// The peer's EOF (or EXIT with `exit`) arrived; `ReadClosed` (preceded
    /// by `PeerExited`) waits until the data before it was read.
    EofReceived { exit: Option<ExitStatus> },
    /// `ReadClosed` was reported.
    ReadClosed,
}

/// Our final record on the channel (rule 3 of the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnFinal {
    /// Not due yet.
    NotYet,
    /// CLOSE is in the control queue.
    CloseQueued,
    /// RESET is in the control queue (the reason travels with the entry). It
    /// replaces a queued CLOSE: an abort overrides a clean end not yet sent.
    ResetQueued,
    /// On the wire, or owed no more (the peer's REFUSE ended it for both).
    Sent,
}

#[derive(Debug)]
struct Channel {
    key: WireKey,
    service: String,
    /// Destination sent with our OPEN_TO (opened channels only).
    target: Option<Target>,
    phase: Phase,
    send: SendHalf,
    recv: RecvHalf,
    own_final: OwnFinal,
    /// The peer's final record (CLOSE, RESET or REFUSE) arrived.
    peer_final_received: bool,

    /// Bytes `send` took that are not on the wire yet (≤ `send_buffer`).
    tx: VecDeque<u8>,
    /// DATA bytes put on the wire that no CREDIT has confirmed consumed yet
    /// (CREDIT after our EOF, which grants nothing, still confirms).
    unconfirmed_on_wire: u64,
    credit: SendCredit,
    /// A `send` came up short: report `SendSpace` once data leaves.
    want_space: bool,

    /// Received bytes not yet read (≤ `window`). One contiguous ring, not a
    /// `Bytes` per record: a peer sending 1-byte records would otherwise make
    /// the heap cost tens of times the window.
    rx: VecDeque<u8>,
    /// Read by the application but not yet reported consumed.
    held: usize,
    rxw: RecvWindow,
    /// A CREDIT entry is in the control queue.
    credit_queued: bool,
    /// `Readable` was reported and `read` has not drained the buffer since.
    readable_notified: bool,

    /// Our data on this channel since our first DATA_LZ4 record (the
    /// dictionary of the next one); `None` until then.
    tx_hist: Option<Box<History>>,
    /// The peer's data since its first DATA_LZ4 record on this channel.
    rx_hist: Option<Box<History>>,
    /// Records to send raw before trying to compress again.
    z_skip: u16,
    /// Current length of that run (doubles with each incompressible try).
    z_backoff: u16,
    /// Raw bytes per wire byte of the last DATA_LZ4, × 16 (first guess of
    /// how much to feed the next one).
    z_ratio16: usize,
}

impl Channel {
    fn new(key: WireKey, service: String, phase: Phase, window: u32, peer_window: u32) -> Self {
        Channel {
            key,
            service,
            target: None,
            phase,
            send: SendHalf::Open,
            recv: RecvHalf::Open,
            own_final: OwnFinal::NotYet,
            peer_final_received: false,
            tx: VecDeque::new(),
            unconfirmed_on_wire: 0,
            credit: SendCredit::new(peer_window),
            want_space: false,
            rx: VecDeque::new(),
            held: 0,
            rxw: RecvWindow::new(window),
            credit_queued: false,
            readable_notified: false,
            tx_hist: None,
            rx_hist: None,
            z_skip: 0,
            z_backoff: 0,
            z_ratio16: 4 * 16,
        }
    }

    fn ours(&self) -> bool {
        !self.key.0
    }

    /// The application may still use the handle (no terminal event yet).
    fn app_live(&self) -> bool {
        self.phase != Phase::Aborted
    }

    /// `send` takes data (the opener only after OPEN_OK; the acceptor right
    /// after accepting, its data follows the OPEN_OK).
    fn takes_data(&self) -> bool {
        matches!(self.phase, Phase::Accepted | Phase::Established) && self.send == SendHalf::Open
    }

    /// Bytes that may go on the wire now.
    fn sendable(&self) -> usize {
        let data_flows = self.phase == Phase::Established
            && matches!(self.send, SendHalf::Open | SendHalf::EofPending { .. });
        if data_flows {
            self.tx.len().min(self.credit.available())
        } else {
            0
        }
    }

    /// CREDIT may still be sent: never after the peer's EOF (rule 2) nor
    /// after our final record.
    fn may_return_credit(&self) -> bool {
        self.phase == Phase::Established
            && self.recv == RecvHalf::Open
            && self.own_final == OwnFinal::NotYet
    }

    /// Bytes `send` took that the peer has not confirmed consuming.
    fn unconfirmed(&self) -> u64 {
        self.tx.len() as u64 + self.unconfirmed_on_wire
    }

    /// The peer's stream ended and the application consumed every byte of it:
    /// the condition, besides our EOF, for our CLOSE (rule 3), so that the
    /// peer's `Closed` confirms delivery.
    fn delivered_everything(&self) -> bool {
        self.recv != RecvHalf::Open && self.rx.is_empty() && self.held == 0
    }

    /// Both final records crossed: the wire id is free (rule 6).
    fn released(&self) -> bool {
        self.own_final == OwnFinal::Sent && self.peer_final_received
    }

    fn discard(&mut self) {
        self.tx = VecDeque::new();
        self.rx = VecDeque::new();
        self.held = 0;
        self.tx_hist = None;
        self.rx_hist = None;
    }
}

/// Why a DATA record (plain or compressed) may not be taken on `c` now, if so:
/// the peer broke the protocol.
fn data_refused(c: &Channel) -> Option<&'static str> {
    if c.phase != Phase::Established {
        Some("DATA before OPEN_OK")
    } else if c.recv != RecvHalf::Open {
        Some("DATA after EOF")
    } else {
        None
    }
}

/// Append `data` to a buffer whose length never exceeds `limit`, growing its
/// allocation by doubling (amortised O(1) per byte) but never beyond `limit`,
/// so the heap a channel holds is bounded by its configured sizes.
fn append_bounded(buf: &mut VecDeque<u8>, data: &[u8], limit: usize) {
    let need = buf.len() + data.len();
    debug_assert!(need <= limit);
    if need > buf.capacity() {
        let target = (buf.capacity() * 2).max(64).clamp(need, limit.max(need));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend(data);
}

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

    fn stray_reset(&mut self, initiator: bool, id: u16, reason: &'static str) {
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
        let open = match r {
            Record::Open {
                id,
                window,
                service,
            } => Some((id, window, service, None)),
            Record::OpenTo {
                id,
                window,
                service,
                port,
                host,
            } => Some((
                id,
                window,
                service,
                Some(Target {
                    host: host.to_owned(),
                    port,
                }),
            )),
            _ => None,
        };
        if let Some((id, window, service, target)) = open {
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
            return;
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
        let c = self
            .channels
            .get_mut(&h)
            .expect("wire map points at a channel");
        match r {
            Record::Open { .. } | Record::OpenTo { .. } => unreachable!("handled above"),
            Record::Reset { reason, .. } => {
                self.stats.resets_received += 1;
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
            Record::Refuse { reason, detail, .. } => {
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
            Record::Close { .. } => {
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
            // Records that crossed our RESET.
            _ if c.phase == Phase::Aborted => {}
            Record::OpenOk { window, .. } => {
                if c.phase != (Phase::Opening { open_sent: true }) {
                    self.violation(h, "unexpected OPEN_OK");
                    return;
                }
                c.phase = Phase::Established;
                c.credit = SendCredit::new(window);
                self.events.push_back(MuxEvent::Accepted { ch: h });
                Self::maybe_queue_eof(&mut self.ctl, h, c);
            }
            Record::Data { data, .. } => {
                if let Some(why) = data_refused(c) {
                    self.violation(h, why);
                    return;
                }
                if let Err(e) = c.rxw.on_data(data.len()) {
                    self.violation(h, e);
                    return;
                }
                self.stats.bytes_received += data.len() as u64;
                append_bounded(&mut c.rx, data, self.cfg.window as usize);
                if let Some(hist) = &mut c.rx_hist {
                    hist.push(data);
                }
                if !c.readable_notified {
                    c.readable_notified = true;
                    self.events.push_back(MuxEvent::Readable { ch: h });
                }
            }
            Record::DataLz4 { raw, block, .. } => {
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
                append_bounded(&mut c.rx, &self.z_out, self.cfg.window as usize);
                if !c.readable_notified {
                    c.readable_notified = true;
                    self.events.push_back(MuxEvent::Readable { ch: h });
                }
            }
            Record::Credit { delta, .. } => {
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
            Record::Eof { .. } | Record::Exit { .. } => {
                if c.phase != Phase::Established || c.recv != RecvHalf::Open {
                    self.violation(h, "unexpected EOF");
                    return;
                }
                let exit = match r {
                    Record::Exit { status, .. } => Some(status),
                    _ => None,
                };
                self.on_eof(h, exit);
            }
        }
    }

    /// The peer's EOF (or EXIT with `exit`, or a CLOSE implying EOF) arrived.
    fn on_eof(&mut self, h: ChannelId, exit: Option<ExitStatus>) {
        let c = self.channels.get_mut(&h).expect("live channel");
        if c.recv == RecvHalf::Open {
            c.recv = RecvHalf::EofReceived { exit };
            Self::report_read_closed_if_due(&mut self.events, h, c);
        }
        Self::maybe_queue_close(&mut self.ctl, h, c);
    }

    /// `ReadClosed` (preceded by `PeerExited` if the peer sent EXIT) is
    /// reported once the peer's EOF is here and every byte before it was read.
    fn report_read_closed_if_due(events: &mut VecDeque<MuxEvent>, h: ChannelId, c: &mut Channel) {
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

    fn violation(&mut self, h: ChannelId, what: &'static str) {
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
    fn abort(&mut self, h: ChannelId, reason: String) {
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
    fn maybe_release(&mut self, h: ChannelId) {
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

    // ----- output -----------------------------------------------------------

    /// [`Mux::poll_overtaking_payload`] would have data: an interactive
    /// channel, or a sparse one if the last payload was bulk data, that has
    /// nothing in the last payload.
    pub fn has_overtaker(&self) -> bool {
        self.overtakers()
            .any(|h| self.channels.get(&h).is_some_and(|c| c.sendable() > 0))
    }

    fn sparse_may_overtake(&self) -> bool {
        self.last_payload_bulk && self.sched.sparse_may_overtake()
    }

    /// Channels whose data may overtake the last payload (see
    /// [`Mux::has_overtaker`]).
    fn overtakers(&self) -> impl Iterator<Item = ChannelId> + '_ {
        let sparse = self
            .sched
            .sparse_lane()
            .filter(|_| self.sparse_may_overtake());
        self.sched
            .urgent_lane()
            .chain(sparse)
            .filter(|&h| self.may_overtake(h))
    }

    /// Whether channel `h`'s data may be delivered before the last payload
    /// (built earlier): nothing of it is in that payload, and no record of it
    /// waits that must come first — only a CREDIT may (it is about the other
    /// direction, so its place relative to this data does not matter).
    fn may_overtake(&self, h: ChannelId) -> bool {
        !self.last_payload_channels.contains(&h)
            && !self
                .ctl
                .iter()
                .any(|Ctl(c, kind)| *c == h && !matches!(kind, CtlKind::Credit))
    }

    /// Builds a payload of interactive (or sparse) data that the peer is to
    /// receive *before* the last payload [`Mux::poll_payload`] built (the link
    /// is about to stop that frame and let this one take its place): DATA
    /// records only, of channels [`Mux::has_overtaker`] names, so that every
    /// channel's records still arrive in order. `None` if there is no such data.
    pub fn poll_overtaking_payload(&mut self, max: usize) -> Option<Bytes> {
        self.sched.begin_payload();
        let quantum = max.saturating_sub(DATA_HEADER_LEN).max(MIN_CUT);
        let sparse = self.sparse_may_overtake();
        let codec = self.peer_codec.filter(|_| self.cfg.compress);
        let allowed: Vec<ChannelId> = self.overtakers().collect();
        let mut buf = BytesMut::with_capacity(max);
        loop {
            let room = max.saturating_sub(buf.len());
            let channels = &self.channels;
            let Some(p) = self.sched.pick_overtaking(
                room,
                quantum,
                sparse,
                |h| {
                    channels
                        .get(&h)
                        .map_or((0, 0), |c| (c.tx.len(), c.sendable()))
                },
                |h| allowed.contains(&h),
            ) else {
                break;
            };
            self.put_data(&mut buf, &p, codec);
        }
        if buf.is_empty() {
            return None;
        }
        self.stats.payloads_sent += 1;
        self.stats.payloads_overtaking += 1;
        Some(buf.freeze())
    }

    /// Is there anything to send (control records or data with credit)?
    pub fn has_pending(&self) -> bool {
        !self.ctl.is_empty()
            || !self.replies.is_empty()
            || self.channels.values().any(|c| c.sendable() > 0)
    }

    /// Build the next link payload of at most `max` bytes (`max` ≥ 64 keeps
    /// every control record sendable), or `None` if there is nothing to send.
    /// Control records come first, then data as the scheduler decides.
    pub fn poll_payload(&mut self, max: usize) -> Option<Bytes> {
        if !self.has_pending() {
            return None;
        }
        self.sched.begin_payload();
        self.last_payload_channels.clear();
        self.last_payload_bulk = false;
        let mut buf = BytesMut::with_capacity(max);
        // Replies (refusals, resets of unknown ids) cost the peer as little to
        // provoke as they cost us to send: while data waits they may fill only
        // half a payload, so a flood of them cannot starve the channels (the
        // excess waits in the capped queues, then is dropped and counted).
        let data_waits = self.channels.values().any(|c| c.sendable() > 0);
        let reply_limit = if data_waits { max / 2 } else { max };
        self.fill_control(&mut buf, max, reply_limit);
        self.fill_data(&mut buf, max);
        // EOFs and CLOSEs that became due once the data left; replies in
        // what room the data left.
        self.fill_control(&mut buf, max, max);
        if buf.is_empty() {
            return None;
        }
        self.stats.payloads_sent += 1;
        Some(buf.freeze())
    }

    /// Channel control records first (FIFO), then replies to ids not in the
    /// table, as many as fit within `reply_limit` bytes of payload.
    fn fill_control(&mut self, buf: &mut BytesMut, max: usize, reply_limit: usize) {
        while let Some(Ctl(h, kind)) = self.ctl.front() {
            let room = max.saturating_sub(buf.len());
            let h = *h;
            let Some(c) = self.channels.get(&h) else {
                self.ctl.pop_front();
                continue;
            };
            let (initiator, id) = (c.ours(), c.key.1);
            // Each entry is checked against the channel's state when it
            // reaches the front: a later event may have made it stale.
            let rec = match kind {
                CtlKind::Open if c.phase == (Phase::Opening { open_sent: false }) => {
                    Some(match &c.target {
                        None => Record::Open {
                            id,
                            window: c.rxw.window(),
                            service: &c.service,
                        },
                        Some(t) => Record::OpenTo {
                            id,
                            window: c.rxw.window(),
                            service: &c.service,
                            port: t.port,
                            host: &t.host,
                        },
                    })
                }
                CtlKind::OpenOk if c.phase == Phase::Accepted => Some(Record::OpenOk {
                    id,
                    window: c.rxw.window(),
                }),
                CtlKind::Credit if c.may_return_credit() && c.rxw.unannounced() > 0 => {
                    Some(Record::Credit {
                        initiator,
                        id,
                        delta: c.rxw.unannounced(),
                    })
                }
                CtlKind::Eof if c.phase == Phase::Established => match c.send {
                    // An EXIT is never folded into a CLOSE: the status matters.
                    SendHalf::EofQueued { exit: Some(status) } => Some(Record::Exit {
                        initiator,
                        id,
                        status,
                    }),
                    // The peer's EOF is already here and everything before it
                    // consumed: this is our last record.
                    SendHalf::EofQueued { exit: None } if c.delivered_everything() => {
                        Some(Record::Close { initiator, id })
                    }
                    SendHalf::EofQueued { exit: None } => Some(Record::Eof { initiator, id }),
                    _ => None,
                },
                CtlKind::Close if c.own_final == OwnFinal::CloseQueued => {
                    Some(Record::Close { initiator, id })
                }
                CtlKind::Reset(reason) if c.own_final == OwnFinal::ResetQueued => {
                    Some(Record::Reset {
                        initiator,
                        id,
                        reason,
                    })
                }
                _ => None,
            };
            match rec {
                None => {
                    if let CtlKind::Credit = kind {
                        self.channels.get_mut(&h).expect("exists").credit_queued = false;
                    }
                }
                Some(r) if r.len() > room => return,
                Some(r) => {
                    r.encode(buf);
                    let ty = r.code();
                    self.after_emit(h, ty);
                }
            }
            self.ctl.pop_front();
        }
        while let Some(reply) = self.replies.front() {
            let room = max.min(reply_limit).saturating_sub(buf.len());
            let r = match reply {
                Reply::Refuse {
                    id, reason, detail, ..
                } => Record::Refuse {
                    id: *id,
                    reason: *reason,
                    detail,
                },
                Reply::StrayReset {
                    initiator,
                    id,
                    reason,
                } => Record::Reset {
                    initiator: *initiator,
                    id: *id,
                    reason,
                },
            };
            if r.len() > room {
                return;
            }
            r.encode(buf);
            match self.replies.pop_front().expect("front exists") {
                Reply::Refuse { stray: false, .. } => {
                    self.stats.refused_total += 1;
                    self.refusals_queued -= 1;
                }
                Reply::Refuse { stray: true, .. } => {
                    self.stats.refused_total += 1;
                    self.strays -= 1;
                }
                Reply::StrayReset { .. } => {
                    self.stats.resets_sent += 1;
                    self.strays -= 1;
                }
            }
        }
    }

    /// Side effects of having put a control record of type `ty` on the wire.
    fn after_emit(&mut self, h: ChannelId, ty: u8) {
        self.last_payload_channels.push(h);
        let c = self.channels.get_mut(&h).expect("exists");
        match ty {
            code::OPEN | code::OPEN_TO => c.phase = Phase::Opening { open_sent: true },
            code::OPEN_OK => {
                c.phase = Phase::Established;
                if !c.tx.is_empty() {
                    self.sched.wake(h, c.tx.len());
                }
                Self::maybe_queue_eof(&mut self.ctl, h, c);
            }
            code::CREDIT => {
                c.credit_queued = false;
                c.rxw.take_credit();
            }
            code::EOF | code::EXIT => {
                c.send = SendHalf::EofSent;
                Self::maybe_queue_close(&mut self.ctl, h, c);
            }
            code::CLOSE => {
                c.send = SendHalf::EofSent;
                c.own_final = OwnFinal::Sent;
                self.maybe_release(h);
            }
            code::RESET => {
                self.stats.resets_sent += 1;
                c.own_final = OwnFinal::Sent;
                self.maybe_release(h);
            }
            _ => unreachable!("not a channel control record"),
        }
    }

    fn fill_data(&mut self, buf: &mut BytesMut, max: usize) {
        let quantum = max.saturating_sub(DATA_HEADER_LEN).max(MIN_CUT);
        // A payload carrying interactive data is not topped up with bulk: on a
        // slow line a full frame is tens of milliseconds, and the keystroke
        // would wait for all of it to be serialised.
        let mut interactive = false;
        loop {
            if interactive && !self.sched.has_interactive() {
                return;
            }
            let room = max.saturating_sub(buf.len());
            let channels = &self.channels;
            let pick = self.sched.pick(room, quantum, |h| {
                channels
                    .get(&h)
                    .map_or((0, 0), |c| (c.tx.len(), c.sendable()))
            });
            let Some(p) = pick else {
                return;
            };
            interactive |= p.interactive();
            self.last_payload_channels.push(p.ch);
            self.last_payload_bulk |= p.tier == Tier::Bulk;
            let codec = self.peer_codec.filter(|_| self.cfg.compress);
            self.put_data(buf, &p, codec);
        }
    }

    /// Puts the data of pick `p` into `buf`: a DATA_LZ4 record when `codec` is
    /// set and it pays (never for interactive data: a keystroke is not worth a
    /// dictionary lookup), a DATA record otherwise.
    fn put_data(&mut self, buf: &mut BytesMut, p: &Pick, codec: Option<Codec>) {
        let c = self.channels.get_mut(&p.ch).expect("picked a live channel");
        debug_assert!(p.len >= 1 && p.len <= c.sendable());
        let compressed = match codec {
            Some(Codec::Lz4) if p.tier != Tier::Interactive => {
                Self::try_compress(c, p, &mut self.z_in, &mut self.z_out, buf, &mut self.stats)
            }
            _ => None,
        };
        let sent = match compressed {
            Some((raw, wire)) => {
                self.sched.refund(p, wire);
                raw
            }
            None => {
                buf.put_u8(code::DATA | if c.ours() { 0x80 } else { 0 });
                buf.put_u16(c.key.1);
                buf.put_u16(p.len as u16);
                let (a, b) = c.tx.as_slices();
                let from_a = a.len().min(p.len);
                buf.put_slice(&a[..from_a]);
                buf.put_slice(&b[..p.len - from_a]);
                if let Some(hist) = &mut c.tx_hist {
                    hist.push2(&a[..from_a], &b[..p.len - from_a]);
                }
                p.len
            }
        };
        c.tx.drain(..sent);
        c.credit.spend(sent);
        c.unconfirmed_on_wire += sent as u64;
        self.stats.bytes_sent += sent as u64;
        if c.want_space {
            c.want_space = false;
            self.events.push_back(MuxEvent::SendSpace { ch: p.ch });
        }
        Self::maybe_queue_eof(&mut self.ctl, p.ch, c);
    }

    /// Try to put channel `c`'s data into a DATA_LZ4 record that takes no
    /// more wire than the DATA record of pick `p` would and saves at least
    /// 1/32 of what it carries. On success
    /// the record is in `buf` and the result is `(raw bytes, wire bytes in
    /// DATA-record terms)`; the caller drains the raw bytes from the ring.
    /// `None`: send plain DATA (nothing was written).
    fn try_compress(
        c: &mut Channel,
        p: &Pick,
        z_in: &mut Vec<u8>,
        z_out: &mut Vec<u8>,
        buf: &mut BytesMut,
        stats: &mut MuxStats,
    ) -> Option<(usize, usize)> {
        if p.len < COMPRESS_MIN {
            return None;
        }
        if c.z_skip > 0 {
            c.z_skip -= 1;
            return None;
        }
        let limit = p.len - (DATA_LZ4_HEADER_LEN - DATA_HEADER_LEN);
        let sendable = c.sendable();
        let most = sendable.min(p.len * COMPRESS_MAX_RATIO).min(MAX_DATA_LEN);
        // First guess from the last record's ratio, aiming a little under the
        // limit; at most two corrections.
        let mut k = (limit * c.z_ratio16 / 16 * 15 / 16).clamp(p.len.min(most), most);
        let dict: &[u8] = c.tx_hist.as_deref().map_or(&[], |h| h.dict());
        let mut compressible = false;
        let mut priming = false;
        for _ in 0..4 {
            z_in.clear();
            let (a, b) = c.tx.as_slices();
            let from_a = a.len().min(k);
            z_in.extend_from_slice(&a[..from_a]);
            z_in.extend_from_slice(&b[..k - from_a]);
            let n = compress::compress(z_in, dict, z_out)?;
            // Worth it when it saves at least 1/32 of the bytes it carries
            // (a smaller record than the pick allowed leaves the rest of the
            // payload to the next pick, possibly this channel again).
            let saved = (k - k / 32).saturating_sub(n + DATA_LZ4_HEADER_LEN - DATA_HEADER_LEN);
            if n <= limit && (saved > 0 || priming) {
                let raw = k;
                buf.put_u8(code::DATA_LZ4 | if c.ours() { 0x80 } else { 0 });
                buf.put_u16(c.key.1);
                buf.put_u16(n as u16);
                buf.put_u16(raw as u16);
                buf.put_slice(&z_out[..n]);
                c.tx_hist.get_or_insert_with(Box::default).push(z_in);
                c.z_ratio16 = (raw * 16 / n).max(16);
                c.z_backoff = 0;
                stats.compressed_bytes_sent += raw as u64;
                stats.compressed_wire_sent += n as u64;
                return Some((raw, n + (DATA_LZ4_HEADER_LEN - DATA_HEADER_LEN)));
            }
            if priming {
                break;
            }
            let next = (k * limit / n * 15 / 16).min(most);
            if n < k - k / 32 && next >= COMPRESS_MIN && next < k {
                // Compressible, but this much does not fit: feed less
                // (aiming a little under the limit).
                compressible = true;
                k = next;
                continue;
            }
            if compressible && c.tx_hist.is_none() {
                // Small records without a dictionary (the channel's first)
                // compress badly: LZ4 needs history. The data looked
                // compressible, so prime the history, once, with a record
                // that carries as much as a plain DATA would, less a few
                // bytes (a literal-only block).
                priming = true;
                k = (limit - 2 - limit / 255).min(sendable);
                continue;
            }
            // Saving under 1/32: incompressible (random, encrypted, already
            // compressed). Send raw and back off before trying again.
            break;
        }
        c.z_backoff = (c.z_backoff * 2 + 1).min(COMPRESS_MAX_BACKOFF);
        c.z_skip = c.z_backoff;
        None
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
