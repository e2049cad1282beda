//! Why channels end, typed: the mux, the station and the drivers pass these
//! on, and they become text only where they are logged or handed to a
//! socket (the peer's own words are sanitised there, see
//! [`crate::stats::sanitize`]).

use std::fmt;

use super::wire::DecodeError;
use crate::stats::sanitize;

/// Why a channel was cut.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// The peer reset it; its words as they came off the wire.
    ByPeer(String),
    /// The peer broke the mux protocol on it (data beyond credit, credit for
    /// bytes never sent, ...): what it did.
    Violation(&'static str),
    /// The link session ended, and every channel with it.
    SessionEnded(SessionEnd),
    /// This end is stopping and the channel did not finish in time.
    Stopping,
}

/// Why a link session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The peer started a new session (it restarted, or lost ours).
    PeerRestarted,
    /// The peer stayed silent past `dead-after`.
    PeerLost,
    /// A payload from the peer did not decode: both ends start over.
    Undecodable(DecodeError),
}

impl ResetReason {
    /// The peer broke the protocol on the channel.
    pub fn is_violation(&self) -> bool {
        matches!(self, ResetReason::Violation(_))
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The peer's words: where they become text for logs and stderr.
            ResetReason::ByPeer(words) => write!(f, "reset by peer: {}", sanitize(words)),
            ResetReason::Violation(what) => write!(f, "protocol error: {what}"),
            ResetReason::SessionEnded(end) => end.fmt(f),
            ResetReason::Stopping => f.write_str("sfs is stopping"),
        }
    }
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::PeerRestarted => f.write_str("peer restarted"),
            SessionEnd::PeerLost => f.write_str("serial link lost (peer silent past dead-after)"),
            SessionEnd::Undecodable(e) => write!(f, "mux protocol error: {e}"),
        }
    }
}
