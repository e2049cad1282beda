//! What a link is told at its start: line rate, frame sizes, window, timers, key
//! and the features it offers, with the defaults the drivers start from.

use std::time::Duration;

use super::arq::MAX_WINDOW;
use super::frame::{LARGE_MAX_PAYLOAD, MAX_PAYLOAD};
use super::turn::{TurnConfig, DEFAULT_MAX_TURN, DEFAULT_TURNAROUND};
use super::{cobs, crypto, Features, MIN_PAYLOAD};
use crate::error::ConfigError;

/// Link configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Line byte rate (bytes/s); sizes the RTO floor.
    pub byte_rate: u32,
    /// Largest payload per frame (cap of the adaptive size), ≤ 600.
    pub max_payload: usize,
    /// Receive window / maximum frames in flight (1..=256).
    pub window: u16,
    /// Send a keepalive after this long without transmitting.
    pub keepalive: Duration,
    /// Report `PeerLost` after this long without a valid frame.
    pub dead_after: Duration,
    /// Longest delay of a standalone ack.
    pub ack_delay: Duration,
    /// Queue target of the driver's [`Pacer`](super::Pacer); used in the RTO floor.
    pub pacing_target: Duration,
    /// Ceiling of the retransmission timeout (and its back-off).
    pub max_rto: Duration,
    /// Report `ProtocolMismatch` after bytes keep arriving this long without a frame.
    pub mismatch_after: Duration,
    /// Adapt the frame size to the observed error rate.
    pub adaptive: bool,
    /// Pre-shared secret: authenticate and encrypt the link (None: the plain v1
    /// protocol, unchanged on the wire).
    pub key: Option<crypto::KeyConfig>,
    /// Features offered to the peer in CAPS; [`Features::NONE`] runs plain wire v1
    /// (no CAPS sent, none understood).
    pub features: Features,
    /// Largest payload when both ends offer [`Features::LARGE_FRAMES`]
    /// (`max_payload..=1984`).
    pub large_max_payload: usize,
    /// Half-duplex medium (`duplex=half`): take turns ([`super::turn`]); None on
    /// a full-duplex line.
    pub turns: Option<TurnConfig>,
}

/// Idle time before a keepalive probe, unless `keepalive=` says otherwise.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(1);
/// Silence after which the peer counts as lost, unless `dead-after=` says
/// otherwise: long enough for a replugged adapter (docs/link-protocol.md).
pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(60);

impl LinkConfig {
    /// Defaults for a line of `byte_rate` bytes/s.
    pub fn for_byte_rate(byte_rate: u32) -> Self {
        LinkConfig {
            byte_rate: byte_rate.max(1),
            max_payload: 600,
            window: 64,
            keepalive: DEFAULT_KEEPALIVE,
            dead_after: DEFAULT_DEAD_AFTER,
            ack_delay: Duration::from_millis(4),
            pacing_target: Duration::from_millis(3),
            max_rto: Duration::from_secs(2),
            mismatch_after: Duration::from_secs(3),
            adaptive: true,
            key: None,
            // Large frames on clean lines, and urgent frames that overtake a
            // frame in progress; a peer without them keeps plain v1.
            features: Features::DEFAULT,
            large_max_payload: LARGE_MAX_PAYLOAD,
            turns: None,
        }
    }

    /// Makes this a link over a half-duplex medium: turn-taking with these
    /// settings (None: the defaults), and PASS offered in CAPS.
    pub fn half_duplex(mut self, turnaround: Option<Duration>, max_turn: Option<Duration>) -> Self {
        self.turns = Some(TurnConfig::new(
            self.byte_rate,
            turnaround.unwrap_or(DEFAULT_TURNAROUND),
            max_turn.unwrap_or(DEFAULT_MAX_TURN),
        ));
        self.features = self.features.union(Features::HALF_DUPLEX);
        self
    }

    /// The largest payload this end may ever send, given what it offers.
    pub fn payload_ceiling(&self) -> usize {
        if self.features.contains(Features::LARGE_FRAMES) {
            self.large_max_payload.max(self.max_payload)
        } else {
            self.max_payload
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::check("byte rate", self.byte_rate.into(), 1, u32::MAX.into())?;
        let payload = self.max_payload as u64;
        ConfigError::check(
            "max payload",
            payload,
            MIN_PAYLOAD as u64,
            MAX_PAYLOAD as u64,
        )?;
        ConfigError::check(
            "large max payload",
            self.large_max_payload as u64,
            payload,
            LARGE_MAX_PAYLOAD as u64,
        )?;
        ConfigError::check("link window", self.window as u64, 1, MAX_WINDOW as u64)?;
        if self.keepalive.is_zero() || self.dead_after <= self.keepalive {
            return Err(ConfigError::Inconsistent("0 < keepalive < dead-after"));
        }
        if self.max_rto < self.rto_floor() {
            return Err(ConfigError::Inconsistent(
                "the longest retransmission timeout at least its floor (frame time + latency)",
            ));
        }
        Ok(())
    }

    /// Time to serialise `n` bytes at the byte rate.
    pub fn byte_time(&self, n: usize) -> Duration {
        Duration::from_nanos(((n as u128 * 1_000_000_000) / self.byte_rate.max(1) as u128) as u64)
    }

    /// RTO floor of wire v1: two maximum frame times, the pacing queue, the ack
    /// delay and 5 ms.
    pub fn rto_floor(&self) -> Duration {
        self.rto_floor_for(self.max_payload)
    }

    /// RTO floor when frames carry up to `payload` bytes (large frames raise it).
    pub fn rto_floor_for(&self, payload: usize) -> Duration {
        let frame = if self.features.contains(Features::FEC) {
            super::fec::max_wire_len(payload + 16)
        } else {
            cobs::max_encoded_len(payload + 16)
        };
        self.byte_time(2 * frame)
            + self.pacing_target
            + self.ack_delay
            + Duration::from_millis(5)
            + self.turns.map_or(Duration::ZERO, |t| t.extra_rtt())
    }
}
