//! What a station tells its application: events, why an open failed, and
//! the station's own counters.

use std::fmt;
use std::time::Duration;

use crate::link::Features;
use crate::mux::{ChannelId, ExitStatus, RefuseReason, ResetReason, SessionEnd, Target};
use crate::stats::sanitize;

/// Names one [`Station::open`](super::Station::open) until it becomes a channel or fails.
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
    Reset(ResetReason),
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
            // The detail is the peer's text: this is where it becomes text
            // for logs and stderr (a reset's reason sanitises its own).
            OpenError::Refused { reason, detail } => {
                write!(f, "refused by peer: {reason} ({})", sanitize(detail))
            }
            OpenError::Reset(why) => write!(f, "reset before the peer answered: {why}"),
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
        reason: SessionEnd,
    },
    /// An [`Station::open`](super::Station::open) became a channel; `write` works from now on.
    Opened {
        /// The open.
        open: OpenId,
        /// Its channel.
        ch: ChannelId,
    },
    /// An [`Station::open`](super::Station::open) failed (terminal for that open).
    OpenFailed {
        /// The open.
        open: OpenId,
        /// Why.
        error: OpenError,
    },
    /// The peer opened a channel for a service this end offers: call
    /// [`Station::accept`](super::Station::accept) or [`Station::refuse`](super::Station::refuse).
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
    /// Data to [`Station::read`](super::Station::read) (edge-triggered, as [`MuxEvent::Readable`](crate::mux::MuxEvent::Readable)).
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
    /// `bytes` of what [`Station::write`](super::Station::write) took left the channel's queue for the mux.
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
        reason: ResetReason,
        /// Bytes written on it that the peer never confirmed taking.
        unconfirmed: u64,
    },
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
    /// Channels the peer opened beyond `open_rate`/`open_burst`: they waited
    /// for their turn before the application saw them.
    pub opens_deferred: u64,
    /// Channels reset because the peer broke the mux protocol on them.
    pub peer_violations: u64,
    /// Opens waiting now.
    pub waiting: usize,
}
