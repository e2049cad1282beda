//! What the multiplexer tells the application: events, errors and counters,
//! with the types they carry (where to connect, why an open was refused, how
//! the program behind a channel ended).

use std::fmt;

use super::wire::{self, MAX_HOST_LEN, MAX_SERVICE_LEN};
use super::{ChannelId, ResetReason};

/// Where the acceptor of a channel should connect (carried by OPEN_TO): a
/// host name or IP address in text form, resolved by the acceptor, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Name or address; 1..=53 bytes together with the service (see [`Mux::open_to`](super::Mux::open_to)).
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
    /// The peer opened a channel: call [`Mux::accept`](super::Mux::accept) or [`Mux::refuse`](super::Mux::refuse).
    Incoming {
        /// The new channel.
        ch: ChannelId,
        /// Service the peer asked for.
        service: String,
        /// Destination the peer asked for (OPEN_TO), if any.
        target: Option<Target>,
    },
    /// Our [`Mux::open`](super::Mux::open) was accepted; `send` works from now on.
    Accepted {
        /// The channel.
        ch: ChannelId,
    },
    /// Our [`Mux::open`](super::Mux::open) was refused (terminal).
    Refused {
        /// The channel.
        ch: ChannelId,
        /// Why.
        reason: RefuseReason,
        /// Peer's detail text.
        detail: String,
    },
    /// Data is available: [`Mux::read`](super::Mux::read) until it returns `None` (edge-triggered).
    Readable {
        /// The channel.
        ch: ChannelId,
    },
    /// The peer's program exited (its side used
    /// [`Mux::close_write_with_status`](super::Mux::close_write_with_status)); comes immediately before the
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
        /// Bytes the application handed to [`Mux::send`](super::Mux::send) on this channel that
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
    /// already on its way ([`Mux::poll_overtaking_payload`](super::Mux::poll_overtaking_payload)).
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
