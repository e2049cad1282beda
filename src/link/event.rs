//! What the link tells the layer above: events, the reasons a far end is not a
//! usable peer (typed, rendered to text only by `Display`), and its counters.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::frame::VERSION;
use super::handshake::KeyedReport;
use super::Features;

/// Something the layer above must know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// A session with the peer is up (first time, after a restart, or after `PeerLost`).
    Up {
        /// The peer's epoch.
        peer_epoch: u32,
    },
    /// One application frame, in order, exactly once.
    Delivered(Bytes),
    /// The peer restarted: everything in flight in both directions is gone; reset.
    PeerRestarted,
    /// No valid frame for `dead_after`: the session is over (everything in flight
    /// either way is dropped; a new session, under a new epoch, starts when the
    /// peer answers the probes, and is reported with `Up`). Reset everything above.
    PeerLost,
    /// The peer does not speak this protocol (reported once).
    ProtocolMismatch(Mismatch),
    /// The peer's CAPS arrived for this session: the features both ends use from
    /// now on (ours ∩ the peer's; once per session, after `Up`).
    PeerFeatures(Features),
}

/// Link counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    /// Frames transmitted (all kinds).
    pub frames_sent: u64,
    /// DATA frames transmitted again.
    pub frames_retransmitted: u64,
    /// Line bytes produced.
    pub bytes_sent: u64,
    /// Payload bytes in DATA frames transmitted (retransmissions included).
    pub payload_bytes_sent: u64,
    /// Payload bytes delivered to the layer above.
    pub payload_bytes_delivered: u64,
    /// Payload bytes of our frames acknowledged by the peer.
    pub payload_bytes_acked: u64,
    /// Frames received that passed the CRC.
    pub frames_received: u64,
    /// Frames failing the CRC.
    pub crc_failures: u64,
    /// Over-long, badly stuffed or otherwise malformed frames.
    pub malformed: u64,
    /// Duplicate DATA frames received.
    pub duplicates: u64,
    /// Line bytes sent that were not payload.
    pub framing_overhead_bytes: u64,
    /// Standalone ACK frames sent (including keepalives).
    pub acks_sent: u64,
    /// HELLO frames sent.
    pub hellos_sent: u64,
    /// Retransmission timer expiries.
    pub rto_expiries: u64,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// Current adaptive payload limit.
    pub max_payload: usize,
    /// Estimated per-byte error probability.
    pub error_rate: f64,
    /// Sessions established (counting re-establishment after a restart).
    pub sessions: u64,
    /// Our own frames received back (a looped line, or a bus that echoes what
    /// we send): ignored, and not counted as line errors.
    pub own_frames: u64,
    /// Frames we suspended for an urgent frame (finished later by RESUME).
    pub frames_suspended: u64,
    /// Frames received in more than one piece and put back together.
    pub frames_resumed: u64,
    /// RESUME frames that did not continue the piece we held (dropped; ARQ resends).
    pub resume_mismatches: u64,
    /// Suspended frames that a payload overtook in the delivery order (their
    /// RESUME gave them the next sequence number).
    pub frames_overtaken: u64,
    /// Frames sent Reed-Solomon coded (feature FEC).
    pub fec_frames_sent: u64,
    /// Coded frames received and accepted (CRC or AEAD passed).
    pub fec_frames_received: u64,
    /// Byte errors the code corrected in accepted frames.
    pub fec_bytes_corrected: u64,
    /// Accepted coded frames that needed at least one correction: each one a
    /// retransmission saved.
    pub fec_frames_repaired: u64,
    /// Coded frames cut by a noise-made 0x00 and put back together.
    pub fec_frames_rejoined: u64,
    /// Coded frames beyond repair (left to retransmission).
    pub fec_frames_failed: u64,
    /// The code level our frames go out at now (0: none; 1–5: 2, 4, 8, 16, 32
    /// parity bytes per block of ≤ 255).
    pub fec_level: u8,
    /// The level we ask the peer for, from what we receive.
    pub fec_want: u8,
    /// Turn-taking on a half-duplex medium (None on a full-duplex line).
    pub turns: Option<super::turn::TurnStats>,
}

/// Why the far end is not (or not yet) a peer this link can talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Bytes kept arriving without one valid frame.
    NoFrames {
        /// Bytes heard.
        bytes: u64,
        /// Over this long.
        over: Duration,
    },
    /// An intact HELLO of another protocol version.
    Version(u8),
    /// The peer sends keyed handshakes; this side has no secret.
    PeerNeedsSecret,
    /// Our own frames come back.
    LoopedBack,
    /// The far end talks text (a modem, a console, a shell); a sample line.
    Text(String),
    /// A terminal in cooked mode echoes our frames (shows NUL as `^@`).
    CookedEcho,
    /// The keyed handshake failed or was refused.
    Keyed(KeyedReport),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::NoFrames { bytes, over } => write!(
                f,
                "the far end does not speak sfs link v{VERSION} (no valid frame in {bytes} bytes over {:.1} s)",
                over.as_secs_f64()
            ),
            Mismatch::Version(v) => write!(
                f,
                "peer does not speak sfs link v{VERSION} (it offers version {v})"
            ),
            Mismatch::PeerNeedsSecret => f.write_str(
                "the peer requires a shared secret (it sends keyed handshakes); \
                 give this side the same secret-file",
            ),
            Mismatch::LoopedBack => f.write_str(
                "the line is looped back: we receive our own frames (a loopback plug, \
                 a cable wired to itself, or a program such as `cat` echoing the line)",
            ),
            Mismatch::Text(line) => write!(
                f,
                "the far end is not sfs: it sends text like '{line}' (a modem, a console or a shell?)"
            ),
            Mismatch::CookedEcho => f.write_str(
                "the far end is not sfs: it echoes our frames as text, as a terminal in \
                 cooked mode does (a shell's tty? start sfs there, or make it raw with \
                 `stty raw -echo`)",
            ),
            Mismatch::Keyed(r) => r.fmt(f),
        }
    }
}
