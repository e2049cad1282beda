//! Building payloads for the link: control records first, then the channels
//! the scheduler picks (with overtaking for urgent ones), DATA cut to fit and
//! compressed when it pays.

use bytes::{BufMut, Bytes, BytesMut};

use super::channel::{Ctl, CtlKind, Reply};
use super::scheduler::{Pick, MIN_CUT};
use super::wire::{code, Record, DATA_HEADER_LEN, DATA_LZ4_HEADER_LEN, MAX_DATA_LEN};
use super::*;

/// Smallest DATA record worth trying to compress: below it the 2 extra header
/// bytes and the CPU are not worth it (keystrokes never qualify anyway).
const COMPRESS_MIN: usize = 32;
/// Most raw bytes one DATA_LZ4 record may carry per byte of room it was
/// given: bounds the work of one attempt (highly repetitive data still
/// moves at up to this many times the line rate).
const COMPRESS_MAX_RATIO: usize = 16;
/// Longest run of records sent raw without trying to compress after data
/// turned out incompressible (doubling from 1 with each failure).
const COMPRESS_MAX_BACKOFF: u16 = 64;

impl Mux {
    // ----- output -----------------------------------------------------------

    /// [`Mux::poll_overtaking_payload`] would have data: an interactive
    /// channel, or a sparse one if the last payload was bulk data, that has
    /// nothing in the last payload.
    pub fn has_overtaker(&self) -> bool {
        self.overtakers()
            .any(|h| self.channels.get(&h).is_some_and(|c| c.sendable() > 0))
    }

    pub(super) fn sparse_may_overtake(&self) -> bool {
        self.last_payload_bulk && self.sched.sparse_may_overtake()
    }

    /// Channels whose data may overtake the last payload (see
    /// [`Mux::has_overtaker`]).
    pub(super) fn overtakers(&self) -> impl Iterator<Item = ChannelId> + '_ {
        let sparse = self
            .sched
            .sparse_lane()
            .filter(|_| self.sparse_may_overtake());
        self.sched
            .urgent_lane()
            .chain(sparse)
            .filter(|&h| self.may_overtake(h))
    }

    /// Whether channel `h`'s data may be delivered before the last payload
    /// (built earlier): nothing of it is in that payload, and no record of it
    /// waits that must come first — only a CREDIT may (it is about the other
    /// direction, so its place relative to this data does not matter).
    pub(super) fn may_overtake(&self, h: ChannelId) -> bool {
        !self.last_payload_channels.contains(&h)
            && !self
                .ctl
                .iter()
                .any(|Ctl(c, kind)| *c == h && !matches!(kind, CtlKind::Credit))
    }

    /// Builds a payload of interactive (or sparse) data that the peer is to
    /// receive *before* the last payload [`Mux::poll_payload`] built (the link
    /// is about to stop that frame and let this one take its place): DATA
    /// records only, of channels [`Mux::has_overtaker`] names, so that every
    /// channel's records still arrive in order. `None` if there is no such data.
    pub fn poll_overtaking_payload(&mut self, max: usize) -> Option<Bytes> {
        self.sched.begin_payload();
        let quantum = max.saturating_sub(DATA_HEADER_LEN).max(MIN_CUT);
        let sparse = self.sparse_may_overtake();
        let codec = self.peer_codec.filter(|_| self.cfg.compress);
        let allowed: Vec<ChannelId> = self.overtakers().collect();
        let mut buf = BytesMut::with_capacity(max);
        loop {
            let room = max.saturating_sub(buf.len());
            let channels = &self.channels;
            let Some(p) = self.sched.pick_overtaking(
                room,
                quantum,
                sparse,
                |h| {
                    channels
                        .get(&h)
                        .map_or((0, 0), |c| (c.tx.len(), c.sendable()))
                },
                |h| allowed.contains(&h),
            ) else {
                break;
            };
            self.put_data(&mut buf, &p, codec);
        }
        if buf.is_empty() {
            return None;
        }
        self.stats.payloads_sent += 1;
        self.stats.payloads_overtaking += 1;
        Some(buf.freeze())
    }

    /// Is there anything to send (control records or data with credit)?
    pub fn has_pending(&self) -> bool {
        !self.ctl.is_empty()
            || !self.replies.is_empty()
            || self.channels.values().any(|c| c.sendable() > 0)
    }

    /// Build the next link payload of at most `max` bytes (`max` ≥ 64 keeps
    /// every control record sendable), or `None` if there is nothing to send.
    /// Control records come first, then data as the scheduler decides.
    pub fn poll_payload(&mut self, max: usize) -> Option<Bytes> {
        if !self.has_pending() {
            return None;
        }
        self.sched.begin_payload();
        self.last_payload_channels.clear();
        self.last_payload_bulk = false;
        let mut buf = BytesMut::with_capacity(max);
        // Replies (refusals, resets of unknown ids) cost the peer as little to
        // provoke as they cost us to send: while data waits they may fill only
        // half a payload, so a flood of them cannot starve the channels (the
        // excess waits in the capped queues, then is dropped and counted).
        let data_waits = self.channels.values().any(|c| c.sendable() > 0);
        let reply_limit = if data_waits { max / 2 } else { max };
        self.fill_control(&mut buf, max, reply_limit);
        self.fill_data(&mut buf, max);
        // EOFs and CLOSEs that became due once the data left; replies in
        // what room the data left.
        self.fill_control(&mut buf, max, max);
        if buf.is_empty() {
            return None;
        }
        self.stats.payloads_sent += 1;
        Some(buf.freeze())
    }

    /// Channel control records first (FIFO), then replies to ids not in the
    /// table, as many as fit within `reply_limit` bytes of payload.
    pub(super) fn fill_control(&mut self, buf: &mut BytesMut, max: usize, reply_limit: usize) {
        while let Some(Ctl(h, kind)) = self.ctl.front() {
            let room = max.saturating_sub(buf.len());
            let h = *h;
            let Some(c) = self.channels.get(&h) else {
                self.ctl.pop_front();
                continue;
            };
            let (initiator, id) = (c.ours(), c.key.1);
            // Each entry is checked against the channel's state when it
            // reaches the front: a later event may have made it stale.
            let rec = match kind {
                CtlKind::Open if c.phase == (Phase::Opening { open_sent: false }) => {
                    Some(match &c.target {
                        None => Record::Open {
                            id,
                            window: c.rxw.window(),
                            service: &c.service,
                        },
                        Some(t) => Record::OpenTo {
                            id,
                            window: c.rxw.window(),
                            service: &c.service,
                            port: t.port,
                            host: &t.host,
                        },
                    })
                }
                CtlKind::OpenOk if c.phase == Phase::Accepted => Some(Record::OpenOk {
                    id,
                    window: c.rxw.window(),
                }),
                CtlKind::Credit if c.may_return_credit() && c.rxw.unannounced() > 0 => {
                    Some(Record::Credit {
                        initiator,
                        id,
                        delta: c.rxw.unannounced(),
                    })
                }
                CtlKind::Eof if c.phase == Phase::Established => match c.send {
                    // An EXIT is never folded into a CLOSE: the status matters.
                    SendHalf::EofQueued { exit: Some(status) } => Some(Record::Exit {
                        initiator,
                        id,
                        status,
                    }),
                    // The peer's EOF is already here and everything before it
                    // consumed: this is our last record.
                    SendHalf::EofQueued { exit: None } if c.delivered_everything() => {
                        Some(Record::Close { initiator, id })
                    }
                    SendHalf::EofQueued { exit: None } => Some(Record::Eof { initiator, id }),
                    _ => None,
                },
                CtlKind::Close if c.own_final == OwnFinal::CloseQueued => {
                    Some(Record::Close { initiator, id })
                }
                CtlKind::Reset(reason) if c.own_final == OwnFinal::ResetQueued => {
                    Some(Record::Reset {
                        initiator,
                        id,
                        reason,
                    })
                }
                _ => None,
            };
            match rec {
                None => {
                    if let CtlKind::Credit = kind {
                        self.channels.get_mut(&h).expect("exists").credit_queued = false;
                    }
                }
                Some(r) if r.len() > room => return,
                Some(r) => {
                    r.encode(buf);
                    let ty = r.code();
                    self.after_emit(h, ty);
                }
            }
            self.ctl.pop_front();
        }
        while let Some(reply) = self.replies.front() {
            let room = max.min(reply_limit).saturating_sub(buf.len());
            let r = match reply {
                Reply::Refuse {
                    id, reason, detail, ..
                } => Record::Refuse {
                    id: *id,
                    reason: *reason,
                    detail,
                },
                Reply::StrayReset {
                    initiator,
                    id,
                    reason,
                } => Record::Reset {
                    initiator: *initiator,
                    id: *id,
                    reason,
                },
            };
            if r.len() > room {
                return;
            }
            r.encode(buf);
            match self.replies.pop_front().expect("front exists") {
                Reply::Refuse { stray: false, .. } => {
                    self.stats.refused_total += 1;
                    self.refusals_queued -= 1;
                }
                Reply::Refuse { stray: true, .. } => {
                    self.stats.refused_total += 1;
                    self.strays -= 1;
                }
                Reply::StrayReset { .. } => {
                    self.stats.resets_sent += 1;
                    self.strays -= 1;
                }
            }
        }
    }

    /// Side effects of having put a control record of type `ty` on the wire.
    pub(super) fn after_emit(&mut self, h: ChannelId, ty: u8) {
        self.last_payload_channels.push(h);
        let c = self.channels.get_mut(&h).expect("exists");
        match ty {
            code::OPEN | code::OPEN_TO => c.phase = Phase::Opening { open_sent: true },
            code::OPEN_OK => {
                c.phase = Phase::Established;
                if !c.tx.is_empty() {
                    self.sched.wake(h, c.tx.len());
                }
                Self::maybe_queue_eof(&mut self.ctl, h, c);
            }
            code::CREDIT => {
                c.credit_queued = false;
                c.rxw.take_credit();
            }
            code::EOF | code::EXIT => {
                c.send = SendHalf::EofSent;
                Self::maybe_queue_close(&mut self.ctl, h, c);
            }
            code::CLOSE => {
                c.send = SendHalf::EofSent;
                c.own_final = OwnFinal::Sent;
                self.maybe_release(h);
            }
            code::RESET => {
                self.stats.resets_sent += 1;
                c.own_final = OwnFinal::Sent;
                self.maybe_release(h);
            }
            _ => unreachable!("not a channel control record"),
        }
    }

    pub(super) fn fill_data(&mut self, buf: &mut BytesMut, max: usize) {
        let quantum = max.saturating_sub(DATA_HEADER_LEN).max(MIN_CUT);
        // A payload carrying interactive data is not topped up with bulk: on a
        // slow line a full frame is tens of milliseconds, and the keystroke
        // would wait for all of it to be serialised.
        let mut interactive = false;
        loop {
            if interactive && !self.sched.has_interactive() {
                return;
            }
            let room = max.saturating_sub(buf.len());
            let channels = &self.channels;
            let pick = self.sched.pick(room, quantum, |h| {
                channels
                    .get(&h)
                    .map_or((0, 0), |c| (c.tx.len(), c.sendable()))
            });
            let Some(p) = pick else {
                return;
            };
            interactive |= p.interactive();
            self.last_payload_channels.push(p.ch);
            self.last_payload_bulk |= p.tier == Tier::Bulk;
            let codec = self.peer_codec.filter(|_| self.cfg.compress);
            self.put_data(buf, &p, codec);
        }
    }

    /// Puts the data of pick `p` into `buf`: a DATA_LZ4 record when `codec` is
    /// set and it pays (never for interactive data: a keystroke is not worth a
    /// dictionary lookup), a DATA record otherwise.
    pub(super) fn put_data(&mut self, buf: &mut BytesMut, p: &Pick, codec: Option<Codec>) {
        let c = self.channels.get_mut(&p.ch).expect("picked a live channel");
        debug_assert!(p.len >= 1 && p.len <= c.sendable());
        let compressed = match codec {
            Some(Codec::Lz4) if p.tier != Tier::Interactive => {
                Self::try_compress(c, p, &mut self.z_in, &mut self.z_out, buf, &mut self.stats)
            }
            _ => None,
        };
        let sent = match compressed {
            Some((raw, wire)) => {
                self.sched.refund(p, wire);
                raw
            }
            None => {
                buf.put_u8(code::DATA | if c.ours() { 0x80 } else { 0 });
                buf.put_u16(c.key.1);
                buf.put_u16(p.len as u16);
                let (a, b) = c.tx.as_slices();
                let from_a = a.len().min(p.len);
                buf.put_slice(&a[..from_a]);
                buf.put_slice(&b[..p.len - from_a]);
                if let Some(hist) = &mut c.tx_hist {
                    hist.push2(&a[..from_a], &b[..p.len - from_a]);
                }
                p.len
            }
        };
        c.tx.drain(..sent);
        c.credit.spend(sent);
        c.unconfirmed_on_wire += sent as u64;
        self.stats.bytes_sent += sent as u64;
        if c.want_space {
            c.want_space = false;
            self.events.push_back(MuxEvent::SendSpace { ch: p.ch });
        }
        Self::maybe_queue_eof(&mut self.ctl, p.ch, c);
    }

    /// Try to put channel `c`'s data into a DATA_LZ4 record that takes no
    /// more wire than the DATA record of pick `p` would and saves at least
    /// 1/32 of what it carries. On success
    /// the record is in `buf` and the result is `(raw bytes, wire bytes in
    /// DATA-record terms)`; the caller drains the raw bytes from the ring.
    /// `None`: send plain DATA (nothing was written).
    pub(super) fn try_compress(
        c: &mut Channel,
        p: &Pick,
        z_in: &mut Vec<u8>,
        z_out: &mut Vec<u8>,
        buf: &mut BytesMut,
        stats: &mut MuxStats,
    ) -> Option<(usize, usize)> {
        if p.len < COMPRESS_MIN {
            return None;
        }
        if c.z_skip > 0 {
            c.z_skip -= 1;
            return None;
        }
        let limit = p.len - (DATA_LZ4_HEADER_LEN - DATA_HEADER_LEN);
        let sendable = c.sendable();
        let most = sendable.min(p.len * COMPRESS_MAX_RATIO).min(MAX_DATA_LEN);
        // First guess from the last record's ratio, aiming a little under the
        // limit; at most two corrections.
        let mut k = (limit * c.z_ratio16 / 16 * 15 / 16).clamp(p.len.min(most), most);
        let dict: &[u8] = c.tx_hist.as_deref().map_or(&[], |h| h.dict());
        let mut compressible = false;
        let mut priming = false;
        for _ in 0..4 {
            z_in.clear();
            let (a, b) = c.tx.as_slices();
            let from_a = a.len().min(k);
            z_in.extend_from_slice(&a[..from_a]);
            z_in.extend_from_slice(&b[..k - from_a]);
            let n = compress::compress(z_in, dict, z_out)?;
            // Worth it when it saves at least 1/32 of the bytes it carries
            // (a smaller record than the pick allowed leaves the rest of the
            // payload to the next pick, possibly this channel again).
            let saved = (k - k / 32).saturating_sub(n + DATA_LZ4_HEADER_LEN - DATA_HEADER_LEN);
            if n <= limit && (saved > 0 || priming) {
                let raw = k;
                buf.put_u8(code::DATA_LZ4 | if c.ours() { 0x80 } else { 0 });
                buf.put_u16(c.key.1);
                buf.put_u16(n as u16);
                buf.put_u16(raw as u16);
                buf.put_slice(&z_out[..n]);
                c.tx_hist.get_or_insert_with(Box::default).push(z_in);
                c.z_ratio16 = (raw * 16 / n).max(16);
                c.z_backoff = 0;
                stats.compressed_bytes_sent += raw as u64;
                stats.compressed_wire_sent += n as u64;
                return Some((raw, n + (DATA_LZ4_HEADER_LEN - DATA_HEADER_LEN)));
            }
            if priming {
                break;
            }
            let next = (k * limit / n * 15 / 16).min(most);
            if n < k - k / 32 && next >= COMPRESS_MIN && next < k {
                // Compressible, but this much does not fit: feed less
                // (aiming a little under the limit).
                compressible = true;
                k = next;
                continue;
            }
            if compressible && c.tx_hist.is_none() {
                // Small records without a dictionary (the channel's first)
                // compress badly: LZ4 needs history. The data looked
                // compressible, so prime the history, once, with a record
                // that carries as much as a plain DATA would, less a few
                // bytes (a literal-only block).
                priming = true;
                k = (limit - 2 - limit / 255).min(sendable);
                continue;
            }
            // Saving under 1/32: incompressible (random, encrypted, already
            // compressed). Send raw and back off before trying again.
            break;
        }
        c.z_backoff = (c.z_backoff * 2 + 1).min(COMPRESS_MAX_BACKOFF);
        c.z_skip = c.z_backoff;
        None
    }
}
