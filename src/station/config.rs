//! What a station needs to know before it starts: the link's and the mux's
//! settings, the waits and limits for opens, and the choices derived from
//! them in one place (the compression offer, the default open rate).

use std::time::Duration;

use crate::link::{Features, LinkConfig};
use crate::mux::MuxConfig;

/// Everything a station needs to know before it starts.
#[derive(Clone, Debug)]
pub struct StationConfig {
    /// The link layer's settings.
    pub link: LinkConfig,
    /// The multiplexer's settings (its `compress` is decided by `compress`).
    pub mux: MuxConfig,
    /// How long an open waits for the link to come up.
    pub link_wait: Duration,
    /// How long an open waits for a free channel while all are in use.
    pub channel_wait: Duration,
    /// Opens that may wait at once; one more fails at once.
    pub max_waiting: usize,
    /// Channels per second the peer's opens for offered services are handed to
    /// the application (dialled), on average; faster opens wait their turn.
    pub open_rate: u32,
    /// Opens handed over at once beyond the rate (a browser loading a page);
    /// with `open_rate` a token bucket.
    pub open_burst: u32,
    /// Name for log lines (the device).
    pub label: String,
    /// Most bytes handed to the device in one write: a batch of frames, at
    /// most one in flight (the pacer keeps a batch to milliseconds of line time).
    pub write_batch: usize,
    /// How often a lost device is tried again.
    pub reopen_every: Duration,
    /// Bytes the application may have written on a channel that the mux has
    /// not taken yet ([`Station::write_room`](super::Station::write_room)): what bounds a channel's
    /// share of this end's memory before the mux's send buffer.
    pub write_budget: usize,
    /// Whether channel data is compressed (`compress=`); decides
    /// `mux.compress` and the link's offer.
    pub compress: Compression,
    /// Longest line time of a coded frame (a noisy line, FEC) while several
    /// channels share the line. A coded frame cannot be cut for a keystroke
    /// the way a COBS frame can, so this is the longest an urgent payload
    /// waits behind one: 40 ms (460 bytes at 115200 baud) costs a bulk
    /// transfer about 3 % while someone types, and cuts their wait from a
    /// whole large frame (up to ~190 ms at 115200).
    pub coded_frame_time: Duration,
}

/// `compress=`: whether DATA goes compressed (when the peer can take it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not given: on, unless the link is keyed. As in ssh: on a keyed link
    /// the sealed frames' lengths would tell an observer how well each
    /// channel's data compresses, and so something of the data itself
    /// (CRIME, BREACH); only an explicit `compress=on` takes that risk.
    UnlessKeyed,
    /// `compress=on`.
    On,
    /// `compress=off`.
    Off,
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
            open_rate: open_rate_for(byte_rate),
            open_burst: 256,
            label: label.into(),
            write_batch: 8192,
            reopen_every: Duration::from_millis(500),
            write_budget: 4096,
            compress: Compression::UnlessKeyed,
            coded_frame_time: Duration::from_millis(40),
        }
    }

    /// Whether this end compresses: the one place `compress=` and the key
    /// decide it.
    pub fn compresses(&self) -> bool {
        match self.compress {
            Compression::UnlessKeyed => self.link.key.is_none(),
            Compression::On => true,
            Compression::Off => false,
        }
    }

    /// The mux's settings as this end runs them (compression decided by
    /// [`StationConfig::compresses`]).
    pub fn mux_config(&self) -> MuxConfig {
        let compress = self.compresses();
        let default = MuxConfig::for_byte_rate(self.link.byte_rate);
        // Credit counts raw bytes: half a second of line time carries several
        // times more of them once compressed, and a window of the plain size
        // would leave the line idle between credits (text at 115200: 5.4x
        // with 5760 B, 6.5x with 4x that). So the default window (not one set
        // with window=) grows by COMPRESSED_WINDOW_FACTOR up to its 64 KiB cap.
        let window = if compress && self.mux.window == default.window {
            (default.window.saturating_mul(COMPRESSED_WINDOW_FACTOR)).min(65536)
        } else {
            self.mux.window
        };
        MuxConfig {
            compress,
            window,
            ..self.mux.clone()
        }
    }

    /// The link's settings as this end runs them: the configured link
    /// features plus what the mux can take — deflate and LZ4 records when it
    /// compresses (offered in CAPS; a peer built before CAPS never sees the
    /// difference, one built before deflate sees only LZ4).
    /// The one place the compression offer is made, so the simulator
    /// negotiates exactly as the driver does.
    pub fn link_config(&self) -> LinkConfig {
        let mut link = self.link.clone();
        let codecs = Features::COMPRESS_LZ4.union(Features::COMPRESS_DEFLATE);
        // The compression choice alone decides: `link.features` with a
        // compression bit (SFS_LINK_FEATURES) and no compression would invite
        // records this end's mux refuses.
        link.features = if self.compresses() {
            link.features.union(codecs)
        } else {
            Features(link.features.0 & !codecs.0)
        };
        link
    }

    /// Checks the link and mux settings.
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        self.link.validate()?;
        self.mux.validate()
    }
}

/// How much larger the default receive window is when the link compresses
/// (see [`StationConfig::mux_config`]): about the ratio log-like text reaches.
pub const COMPRESSED_WINDOW_FACTOR: u32 = 4;

/// The default rate at which the peer's opens are dialled: one per 64 bytes of
/// line time (at least 64 a second). A legitimate open costs the peer more
/// than that on the wire (its OPEN, our OPEN_OK, a request, a reply and two
/// closes are each framed records), so connections made one after another
/// never meet the limit — at 921600 baud that is 1440 a second against the
/// ~300 a second a sequential client reaches — while a peer that packs bare
/// OPENs into every frame (~10 bytes each) is slowed several times.
fn open_rate_for(byte_rate: u32) -> u32 {
    (byte_rate / 64).max(64)
}
