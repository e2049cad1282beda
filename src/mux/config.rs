//! What a multiplexer is told at its start, with defaults that follow the line rate.

use crate::error::ConfigError;

use super::compress;

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
    /// ([`Mux::set_peer_compression`](super::Mux::set_peer_compression)), and accept compressed records: what
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

    /// Most heap bytes [`Mux::heap_bytes`](super::Mux::heap_bytes) may count, whatever the peer
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
