//! What the driver reports: a [`LinkSnapshot`] of the link and its channels
//! (for `--status` and the closing line) with goodput over a window, and the
//! `-vv` watch that logs frame-size changes and retransmission bursts.

use super::driver::Driver;
use crate::stats::{sanitize, ChannelSnapshot, ChannelState, LinkSnapshot, LinkState};
use std::time::{Duration, Instant};
use tracing::debug;

/// Goodput is the change of the acknowledged and delivered payload counters
/// over at least [`RATE_WINDOW`]: snapshots asked for more often (the status
/// view) see the last full window's rates rather than noise.
pub(super) struct RateSample {
    pub(super) at: Instant,
    pub(super) acked: u64,
    pub(super) delivered: u64,
    pub(super) tx: f64,
    pub(super) rx: f64,
}

const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Link facts last logged at debug level, to log only their changes.
pub(super) struct LinkWatch {
    pub(super) checked: Instant,
    pub(super) max_payload: usize,
    pub(super) retransmitted: u64,
}

/// Retransmissions within one check that make a burst worth a debug line.
const RETRANSMIT_BURST: u64 = 4;
/// How often the driver compares the link's counters for `-vv` logging.
const WATCH_EVERY: Duration = Duration::from_millis(250);

impl Driver {
    /// The link and its channels now. Goodput rates are refreshed when the
    /// last sample is at least [`RATE_WINDOW`] old.
    pub(super) fn snapshot(&mut self) -> LinkSnapshot {
        let now = Instant::now();
        let l = self.station.link_stats();
        let m = self.station.mux_stats();
        let s = self.station.stats();
        let r = &mut self.rate;
        let dt = now.duration_since(r.at);
        if dt >= RATE_WINDOW {
            let secs = dt.as_secs_f64();
            r.tx = l.payload_bytes_acked.saturating_sub(r.acked) as f64 / secs;
            r.rx = l.payload_bytes_delivered.saturating_sub(r.delivered) as f64 / secs;
            r.at = now;
            r.acked = l.payload_bytes_acked;
            r.delivered = l.payload_bytes_delivered;
        }
        let mut channels: Vec<ChannelSnapshot> = self
            .chans
            .iter()
            .map(|(&ch, c)| ChannelSnapshot {
                id: ch.0,
                name: ch.to_string(),
                service: sanitize(&c.service),
                direction: c.direction,
                endpoint: c.endpoint.clone(),
                bytes_out: c.bytes_out,
                bytes_in: c.bytes_in,
                state: {
                    let (local, peer) = self.station.channel_ends(ch);
                    ChannelState::from_ends(local, peer)
                },
                age_s: now.duration_since(c.opened).as_secs_f64(),
                queue_bytes: self.station.queued(ch),
            })
            .collect();
        channels.sort_by_key(|c| c.id);
        let state = if self.station.is_device_lost() {
            LinkState::DeviceLost
        } else if self.station.is_up() {
            LinkState::Up
        } else {
            LinkState::Down
        };
        LinkSnapshot {
            device: self.device.clone(),
            state,
            epoch: format!("{:08x}", self.station.epoch()),
            peer_epoch: self.station.peer_epoch().map(|e| format!("{e:08x}")),
            link_uptime_s: self
                .station
                .up_since()
                .map_or(0.0, |t| now.duration_since(t).as_secs_f64()),
            sessions: l.sessions,
            baud: self.line.baud,
            line_bytes_per_s: self.line.byte_rate(),
            goodput_tx_bytes_per_s: self.rate.tx,
            goodput_rx_bytes_per_s: self.rate.rx,
            frames_sent: l.frames_sent,
            frames_received: l.frames_received,
            retransmissions: l.frames_retransmitted,
            crc_failures: l.crc_failures,
            malformed: l.malformed,
            line_bytes_sent: l.bytes_sent,
            payload_bytes_sent: l.payload_bytes_sent,
            payload_bytes_acked: l.payload_bytes_acked,
            payload_bytes_received: l.payload_bytes_delivered,
            srtt_ms: l.srtt.map(|d| d.as_secs_f64() * 1000.0),
            frame_payload: l.max_payload,
            error_rate: l.error_rate,
            fec_parity: crate::link::fec::nsym(l.fec_level),
            fec_parity_wanted: crate::link::fec::nsym(l.fec_want),
            fec_bytes_corrected: l.fec_bytes_corrected,
            fec_frames_repaired: l.fec_frames_repaired,
            fec_frames_failed: l.fec_frames_failed,
            queue_bytes: channels.iter().map(|c| c.queue_bytes).sum(),
            opens_waiting: s.waiting,
            channels_opened: m.opened_total,
            channels_served: m.incoming_total,
            channels_refused: m.refused_total,
            channels_reset: m.resets_sent + m.resets_received,
            channels,
            turns: l.turns.map(|t| crate::stats::TurnsSnapshot {
                taken: t.taken,
                passed: t.passed,
                claimed: t.claimed,
                unanswered: t.unanswered,
            }),
            bootstrap: None,
        }
    }

    /// `-vv`: logs changes of the frame size and bursts of retransmissions,
    /// checked every [`WATCH_EVERY`] (link events come as station events).
    pub(super) fn watch_link(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.watch.checked) < WATCH_EVERY {
            return;
        }
        let l = self.station.link_stats();
        let w = &mut self.watch;
        w.checked = now;
        if l.max_payload != w.max_payload {
            debug!(
                "SERIAL-MUX:{}: frame payload {} -> {} B (error rate {:.1e}/byte)",
                self.device, w.max_payload, l.max_payload, l.error_rate
            );
            w.max_payload = l.max_payload;
        }
        let burst = l.frames_retransmitted.saturating_sub(w.retransmitted);
        if burst >= RETRANSMIT_BURST {
            debug!(
                "SERIAL-MUX:{}: {burst} frames retransmitted in {} ms ({} CRC failures so far)",
                self.device,
                WATCH_EVERY.as_millis(),
                l.crc_failures
            );
        }
        w.retransmitted = l.frames_retransmitted;
    }
}
