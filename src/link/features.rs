//! Optional link features, announced in CAPS frames (kind 4) and used only once
//! the peer announced them too, so a peer built before they existed (wire v1,
//! which drops CAPS as malformed) keeps seeing plain v1 behaviour.

use std::fmt;

/// A set of link features (bit flags; unknown bits are carried and ignored).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Features(pub u32);

impl Features {
    /// No optional feature: plain wire v1 (no CAPS is sent at all).
    pub const NONE: Features = Features(0);
    /// Suspend a frame for an urgent one and send the rest later (RESUME, kind 5).
    pub const RESUME: Features = Features(1 << 0);
    /// Frames with payloads above 600 bytes (up to [`LARGE_MAX_PAYLOAD`](super::frame::LARGE_MAX_PAYLOAD)), checked with CRC-32K.
    pub const LARGE_FRAMES: Features = Features(1 << 1);
    /// Per-channel LZ4 compression (used by the multiplexer, carried here).
    pub const COMPRESS_LZ4: Features = Features(1 << 2);
    /// Per-channel zstd compression (used by the multiplexer, carried here).
    pub const COMPRESS_ZSTD: Features = Features(1 << 3);
    /// Adaptive forward error correction: frames may travel Reed-Solomon coded
    /// (`fec.rs`, docs/link-protocol.md §11), at the level the receiver asks for.
    pub const FEC: Features = Features(1 << 4);
    /// Half-duplex turn-taking (`duplex=half`): the turn is passed with a PASS
    /// (an ACK with flag T, docs/link-protocol.md "Half duplex"). Offered only
    /// by an end configured for a half-duplex medium.
    pub const HALF_DUPLEX: Features = Features(1 << 5);
    /// Per-channel deflate compression with a 32 KiB history (DATA_DEFLATE,
    /// used by the multiplexer, carried here). The highest bit, far from the
    /// link's own.
    pub const COMPRESS_DEFLATE: Features = Features(1 << 31);
    /// What this build offers at the link level by default
    /// (`LinkConfig::features`): large frames on clean lines, urgent frames
    /// that overtake a frame in progress (docs/link-protocol.md §10), and
    /// error correction on noisy lines (none on clean ones).
    pub const DEFAULT: Features = Features(Self::RESUME.0 | Self::LARGE_FRAMES.0 | Self::FEC.0);

    /// Every feature of `other` is in `self`.
    pub fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// Features in both sets.
    pub fn intersect(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }

    /// Features in either set.
    pub fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// No feature at all.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Features({self})")
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::RESUME, "resume"),
            (Self::LARGE_FRAMES, "large-frames"),
            (Self::COMPRESS_LZ4, "lz4"),
            (Self::COMPRESS_ZSTD, "zstd"),
            (Self::FEC, "fec"),
            (Self::HALF_DUPLEX, "half-duplex"),
            (Self::COMPRESS_DEFLATE, "deflate"),
        ];
        let mut first = true;
        let mut rest = self.0;
        for (flag, name) in names {
            if self.contains(flag) {
                f.write_str(if first { "" } else { "," })?;
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            write!(f, "{}{rest:#x}", if first { "" } else { "," })?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}
