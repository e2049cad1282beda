//! Statistics snapshots of SERIAL-MUX links, one structure for every consumer:
//! the `SIGUSR1`/`--stats-interval` text line, `--stats-json` (schema in
//! `docs/stats-schema.md`, versioned by [`SCHEMA_VERSION`]) and `--status`.
//!
//! The driver fills a [`LinkSnapshot`]; nothing here reads the clock or does I/O.

use serde::Serialize;

/// The `version` field of every `--stats-json` object. Adding a field keeps the
/// version; renaming, removing or changing the meaning of one bumps it.
pub const SCHEMA_VERSION: u32 = 1;

/// One `--stats-json` line: every SERIAL-MUX link of the process at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Always `"sfs-stats"`, so a reader can tell the stream apart.
    pub schema: &'static str,
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// Why this object was written.
    pub reason: ReportReason,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Seconds since sfs started.
    pub uptime_s: f64,
    /// One entry per serial device sfs drives, sorted by device.
    pub links: Vec<LinkSnapshot>,
}

impl Report {
    /// A report of `links` at `time_ms`, `uptime_s` into the run.
    pub fn new(
        reason: ReportReason,
        time_ms: u64,
        uptime_s: f64,
        mut links: Vec<LinkSnapshot>,
    ) -> Self {
        links.sort_by(|a, b| a.device.cmp(&b.device));
        Report {
            schema: "sfs-stats",
            version: SCHEMA_VERSION,
            reason,
            time_ms,
            uptime_s,
            links,
        }
    }
}

/// Why a report was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    /// The `--stats-interval` period passed.
    Interval,
    /// sfs is exiting: the last report.
    Exit,
}

/// The state of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// `bootstrap=` is putting sfs on the far side; the link starts after.
    Bootstrapping,
    /// A session with the peer is up.
    Up,
    /// No session (handshaking, or the peer is silent).
    #[default]
    Down,
    /// The device failed; sfs reopens it every 500 ms.
    DeviceLost,
}

impl LinkState {
    /// The word the text line and the status view use.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Bootstrapping => "bootstrapping",
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::DeviceLost => "device lost",
        }
    }
}

/// One SERIAL-MUX link at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LinkSnapshot {
    /// The device path as given on the command line.
    pub device: String,
    /// Up, down or device lost.
    pub state: LinkState,
    /// Our link epoch (hex), new each time sfs starts.
    pub epoch: String,
    /// The peer's epoch (hex) of the current or last session, if any.
    pub peer_epoch: Option<String>,
    /// Seconds the current session has been up (0 when down).
    pub link_uptime_s: f64,
    /// Sessions established so far (a restart of either end starts a new one).
    pub sessions: u64,
    /// Line speed in baud.
    pub baud: u32,
    /// Line capacity in bytes per second (baud / bits per character).
    pub line_bytes_per_s: u32,
    /// Channel payload bytes per second the peer acknowledged, over the last
    /// second or more (what we send that arrives).
    pub goodput_tx_bytes_per_s: f64,
    /// Channel payload bytes per second delivered to us, same window.
    pub goodput_rx_bytes_per_s: f64,
    /// Frames sent (all kinds, retransmissions included).
    pub frames_sent: u64,
    /// Frames received that passed the CRC.
    pub frames_received: u64,
    /// Data frames sent again.
    pub retransmissions: u64,
    /// Frames that failed the CRC.
    pub crc_failures: u64,
    /// Over-long or badly framed input.
    pub malformed: u64,
    /// Line bytes sent (framing included).
    pub line_bytes_sent: u64,
    /// Payload bytes sent in data frames (retransmissions included).
    pub payload_bytes_sent: u64,
    /// Payload bytes acknowledged by the peer.
    pub payload_bytes_acked: u64,
    /// Payload bytes received and delivered.
    pub payload_bytes_received: u64,
    /// Smoothed round-trip time in milliseconds, once measured.
    pub srtt_ms: Option<f64>,
    /// The current adaptive frame payload limit in bytes.
    pub frame_payload: usize,
    /// Estimated per-byte error probability of the line.
    pub error_rate: f64,
    /// Reed-Solomon parity bytes per block of ≤ 255 our frames carry now
    /// (0: frames go plain; 2, 4, 8, 16 or 32 on a noisy line).
    pub fec_parity: usize,
    /// Parity we ask the peer for, from what arrives (same scale).
    pub fec_parity_wanted: usize,
    /// Byte errors the code corrected in frames received.
    pub fec_bytes_corrected: u64,
    /// Frames received that the code repaired (each one a retransmission saved).
    pub fec_frames_repaired: u64,
    /// Coded frames received beyond repair (retransmitted).
    pub fec_frames_failed: u64,
    /// Bytes the applications wrote that wait for the link, all channels.
    pub queue_bytes: usize,
    /// Opens waiting for the link or a free channel.
    pub opens_waiting: usize,
    /// Channels opened by this end, ever.
    pub channels_opened: u64,
    /// Channels the peer opened, ever.
    pub channels_served: u64,
    /// Channels refused, ever.
    pub channels_refused: u64,
    /// Channel resets sent and received, ever.
    pub channels_reset: u64,
    /// The channels open now, by id.
    pub channels: Vec<ChannelSnapshot>,
    /// Turn-taking on a half-duplex medium (`duplex=half`); null on a
    /// full-duplex line.
    pub turns: Option<TurnsSnapshot>,
    /// The `bootstrap=` conversation while state is `bootstrapping`; null
    /// otherwise.
    pub bootstrap: Option<BootstrapSnapshot>,
}

/// A `bootstrap=` conversation in progress: what it is doing, and how far the
/// upload of the far sfs got.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BootstrapSnapshot {
    /// `finding_shell`, `probing`, `checking_cache`, `uploading`,
    /// `verifying`, `starting` or `restoring` (after a stop).
    pub step: &'static str,
    /// `uname -m` of the far side, once known.
    pub far_arch: Option<String>,
    /// Bytes to upload (gzip-compressed when the far side has gzip); 0 until
    /// known, and when a cached copy is used.
    pub upload_bytes: u64,
    /// Bytes of it the far side has verified so far.
    pub uploaded_bytes: u64,
    /// Verified bytes per second since the upload began.
    pub upload_bytes_per_s: f64,
    /// Seconds the rest of the upload should take at that rate.
    pub upload_eta_s: Option<f64>,
    /// Seconds since the bootstrap began.
    pub elapsed_s: f64,
}

impl BootstrapSnapshot {
    /// `uploading: 45% of 1.6 MB, 10.2 kB/s, 80 s left` and the like.
    pub fn describe(&self) -> String {
        let step = self.step.replace('_', " ");
        let arch = self
            .far_arch
            .as_deref()
            .map_or(String::new(), |a| format!(" ({a})"));
        if self.upload_bytes == 0 {
            return format!("{step}{arch}, {:.0} s", self.elapsed_s);
        }
        format!(
            "{step}{arch}: {}% of {:.1} MB, {:.1} kB/s{}",
            self.uploaded_bytes * 100 / self.upload_bytes,
            self.upload_bytes as f64 / 1e6,
            self.upload_bytes_per_s / 1e3,
            self.upload_eta_s
                .map_or(String::new(), |s| format!(", {s:.0} s left"))
        )
    }
}

/// Turn-taking counters of a `duplex=half` link, since sfs started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TurnsSnapshot {
    /// Turns the peer passed to this end (a PASS frame received).
    pub taken: u64,
    /// Turns this end passed (a PASS frame, or silence before PASS is agreed).
    pub passed: u64,
    /// Turns this end claimed after the medium fell silent (a lost PASS, an
    /// idle holder, the handshake).
    pub claimed: u64,
    /// Claims not answered before the next one (collisions, or no peer).
    pub unanswered: u64,
}

/// Which end opened a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We opened it (a local connection reached the peer's service).
    Outbound,
    /// The peer opened it (we dialed our target for it).
    Inbound,
}

/// How far a channel's streams have come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelState {
    /// Both directions carry data.
    Open,
    /// We finished sending; the peer still sends.
    LocalDone,
    /// The peer finished sending; we still send.
    PeerDone,
    /// Both finished; waiting for the peer to confirm it took every byte.
    Closing,
}

impl ChannelState {
    /// From which halves have ended.
    pub fn from_ends(local_done: bool, peer_done: bool) -> Self {
        match (local_done, peer_done) {
            (false, false) => ChannelState::Open,
            (true, false) => ChannelState::LocalDone,
            (false, true) => ChannelState::PeerDone,
            (true, true) => ChannelState::Closing,
        }
    }

    /// The word the status view uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::Open => "open",
            ChannelState::LocalDone => "local done",
            ChannelState::PeerDone => "peer done",
            ChannelState::Closing => "closing",
        }
    }
}

/// One open channel.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelSnapshot {
    /// The channel's number (unique while sfs runs).
    pub id: u32,
    /// The channel as logs name it: `L3.7` is wire id 3, generation 7, opened
    /// here (`R`: opened by the peer).
    pub name: String,
    /// The service it was opened for.
    pub service: String,
    /// Who opened it.
    pub direction: Direction,
    /// The local end it is bridged to (`tcp 127.0.0.1:40112`, `exec sh`), once known.
    pub endpoint: Option<String>,
    /// Bytes the local end sent into the channel.
    pub bytes_out: u64,
    /// Bytes the peer sent us on the channel.
    pub bytes_in: u64,
    /// Which directions have ended.
    pub state: ChannelState,
    /// Seconds since it opened.
    pub age_s: f64,
    /// Bytes written on it that wait for the link.
    pub queue_bytes: usize,
}

impl LinkSnapshot {
    /// A link `bootstrap=` is still setting up: no link counters yet.
    pub fn bootstrapping(
        device: &str,
        baud: u32,
        line_bytes_per_s: u32,
        boot: BootstrapSnapshot,
    ) -> Self {
        LinkSnapshot {
            device: device.to_string(),
            state: LinkState::Bootstrapping,
            baud,
            line_bytes_per_s,
            bootstrap: Some(boot),
            ..LinkSnapshot::default()
        }
    }

    /// The one-line summary `SIGUSR1` and `--stats-interval` print.
    pub fn text_line(&self) -> String {
        if let Some(b) = &self.bootstrap {
            return format!(
                "SERIAL-MUX:{}: bootstrapping: {}",
                self.device,
                b.describe()
            );
        }
        format!(
            "SERIAL-MUX:{}: link {}, {} sessions; sent {} frames ({} retransmitted, {} line bytes, {} payload), \
             received {} frames ({} payload bytes, {} CRC failures, {} malformed); srtt {}, frame payload {} B, \
             error rate {:.1e}/byte; FEC parity {}/{} out/wanted, {} bytes corrected in {} frames, {} beyond repair; goodput {:.0}/{:.0} B/s out/in, {} B queued; channels {} open, {} opened, \
             {} served, {} refused, {} reset, {} waiting",
            self.device,
            self.state.as_str(),
            self.sessions,
            self.frames_sent,
            self.retransmissions,
            self.line_bytes_sent,
            self.payload_bytes_sent,
            self.frames_received,
            self.payload_bytes_received,
            self.crc_failures,
            self.malformed,
            self.srtt_ms
                .map(|ms| format!("{ms:.1} ms"))
                .unwrap_or_else(|| "-".into()),
            self.frame_payload,
            self.error_rate,
            self.fec_parity,
            self.fec_parity_wanted,
            self.fec_bytes_corrected,
            self.fec_frames_repaired,
            self.fec_frames_failed,
            self.goodput_tx_bytes_per_s,
            self.goodput_rx_bytes_per_s,
            self.queue_bytes,
            self.channels.len(),
            self.channels_opened,
            self.channels_served,
            self.channels_refused,
            self.channels_reset,
            self.opens_waiting,
        ) + &self.turns.map_or(String::new(), |t| {
            format!(
                "; half duplex: turns {} taken, {} passed, {} claimed ({} unanswered)",
                t.taken, t.passed, t.claimed, t.unanswered
            )
        })
    }
}

/// A string from the peer (a service name, a refusal's detail, a reset reason)
/// made safe to log or display: every character [`is_unsafe_char`] names
/// (terminal escapes, line breaks that would forge log lines, bidi overrides
/// that would reorder what a reader sees) becomes `?`, and it is cut to
/// [`PEER_TEXT_MAX`] characters. The one place peer text is made printable.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(PEER_TEXT_MAX)
        .map(|c| if is_unsafe_char(c) { '?' } else { c })
        .collect();
    if s.chars().nth(PEER_TEXT_MAX).is_some() {
        out.push('…');
    }
    out
}

/// A character that must not reach a log line or a terminal raw: C0 and C1
/// controls and DEL (`\n`, `\r`, ESC, NEL U+0085...), the line and paragraph
/// separators U+2028/U+2029 (line breaks to some log viewers), and the bidi
/// embeddings, overrides and isolates U+202A–U+202E, U+2066–U+2069 (which
/// make text display in another order than it is stored).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}'..='\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Most characters of a peer-supplied string that are logged.
pub const PEER_TEXT_MAX: usize = 120;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_control_characters_and_caps_length() {
        assert_eq!(sanitize("ssh"), "ssh");
        assert_eq!(sanitize("a\x1b[2Jb\nc\r"), "a?[2Jb?c?");
        // C1 controls, line separators, bidi overrides and isolates.
        assert_eq!(
            sanitize("a\u{85}b\u{9b}c\u{2028}d\u{2029}e\u{202e}f\u{2066}g\u{2069}h\u{7f}"),
            "a?b?c?d?e?f?g?h?"
        );
        for c in [
            '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{2067}', '\u{2068}',
        ] {
            assert!(is_unsafe_char(c), "{c:?}");
        }
        // Neighbours of those ranges, and ordinary non-ASCII text, stay.
        for c in [
            '\u{2027}', '\u{202f}', '\u{2065}', '\u{206a}', 'é', '日', ' ',
        ] {
            assert!(!is_unsafe_char(c), "{c:?}");
        }
        assert_eq!(sanitize("café 日本"), "café 日本");
        let long = "x".repeat(500);
        let s = sanitize(&long);
        assert_eq!(s.chars().count(), PEER_TEXT_MAX + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn a_bootstrapping_link_reports_its_upload() {
        let mut b = BootstrapSnapshot {
            step: "uploading",
            far_arch: Some("aarch64".into()),
            upload_bytes: 1_600_000,
            uploaded_bytes: 720_000,
            upload_bytes_per_s: 10_240.0,
            upload_eta_s: Some(86.0),
            elapsed_s: 75.0,
        };
        let l = LinkSnapshot::bootstrapping("/dev/ttyUSB0", 115_200, 11_520, b.clone());
        assert_eq!(l.state, LinkState::Bootstrapping);
        assert_eq!(
            l.text_line(),
            "SERIAL-MUX:/dev/ttyUSB0: bootstrapping: uploading (aarch64): 45% of 1.6 MB, \
             10.2 kB/s, 86 s left"
        );
        b.step = "finding_shell";
        b.far_arch = None;
        b.upload_bytes = 0;
        assert_eq!(b.describe(), "finding shell, 75 s");
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["state"], "bootstrapping");
        assert_eq!(json["bootstrap"]["uploaded_bytes"], 720_000);
    }

    #[test]
    fn channel_state_from_ends() {
        assert_eq!(ChannelState::from_ends(false, false), ChannelState::Open);
        assert_eq!(ChannelState::from_ends(true, true), ChannelState::Closing);
        assert_eq!(
            serde_json::to_string(&ChannelState::PeerDone).unwrap(),
            "\"peer_done\""
        );
    }
}
