//! One channel's state: its phase from OPEN to release, each direction's
//! half, the final records owed and received, buffers and credit, and the
//! control records owed on it.

use std::collections::VecDeque;
use std::fmt;

use super::compress::History;
use super::credit::{RecvWindow, SendCredit};
use super::{ExitStatus, RefuseReason, Target};

/// Local handle of a channel.
///
/// Layout: bits 0..16 the wire id, bit 16 set when the peer opened the channel,
/// bits 17..32 a local generation so that a stale handle never reaches a new
/// channel that reuses the same wire id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

impl ChannelId {
    pub(super) fn new(remote: bool, id: u16, gen: u16) -> Self {
        ChannelId((u32::from(gen & 0x7fff) << 17) | (u32::from(remote) << 16) | u32::from(id))
    }

    /// The channel id on the wire.
    pub fn wire_id(self) -> u16 {
        self.0 as u16
    }

    /// True when the peer opened the channel.
    pub fn opened_by_peer(self) -> bool {
        self.0 & (1 << 16) != 0
    }

    /// Local generation (distinguishes reuses of a wire id).
    pub fn generation(self) -> u16 {
        (self.0 >> 17) as u16
    }
}

impl fmt::Display for ChannelId {
    /// `L3.7`: locally opened wire id 3, generation 7 (`R` = opened by the peer).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = if self.opened_by_peer() { 'R' } else { 'L' };
        write!(f, "{side}{}.{}", self.wire_id(), self.generation())
    }
}

/// (peer opened it, wire id)
pub(super) type WireKey = (bool, u16);

#[derive(Debug)]
pub(super) enum CtlKind {
    Open,
    OpenOk,
    Credit,
    Eof,
    Close,
    Reset(String),
}

/// A control record owed on a channel in the table.
#[derive(Debug)]
pub(super) struct Ctl(pub(super) ChannelId, pub(super) CtlKind);

/// A record answering an id that is not (or no longer) in the table.
#[derive(Debug)]
pub(super) enum Reply {
    /// REFUSE of an incoming channel: by the application (`stray` false), or
    /// beyond `max_channels` before any state was created (`stray` true).
    Refuse {
        id: u16,
        reason: RefuseReason,
        detail: String,
        stray: bool,
    },
    /// RESET answering a record for an unknown channel.
    StrayReset {
        initiator: bool,
        id: u16,
        reason: &'static str,
    },
}

/// Where a channel is between its OPEN and the end of the application's
/// interest in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// We opened it and wait for OPEN_OK or REFUSE. Until `open_sent` the peer
    /// does not know the channel, so aborting it simply forgets it.
    Opening { open_sent: bool },
    /// The peer opened it; the application has not accepted it yet.
    Undecided,
    /// The application accepted it; our OPEN_OK is queued (`send` already
    /// buffers).
    Accepted,
    /// OPEN_OK crossed: DATA, CREDIT and EOF may flow.
    Established,
    /// The application's handle is dead: it reset the channel, or was told of
    /// a reset or refusal. Buffers are gone, records other than the peer's
    /// final one are ignored, and the channel stays only until the final
    /// records crossed.
    Aborted,
}

/// Our direction of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendHalf {
    /// `send` takes data.
    Open,
    /// `close_write` was called: EOF (EXIT when `exit` is known) is queued
    /// once the buffer drained and the channel is established.
    EofPending { exit: Option<ExitStatus> },
    /// EOF (or EXIT) is in the control queue.
    EofQueued { exit: Option<ExitStatus> },
    /// EOF (or EXIT, or a CLOSE standing for the EOF) is on the wire.
    EofSent,
}

/// The peer's direction of the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecvHalf {
    /// DATA may arrive.
    Open,
    /// The peer's EOF (or EXIT with `exit`) arrived; `ReadClosed` (preceded
    /// by `PeerExited`) waits until the data before it was read.
    EofReceived { exit: Option<ExitStatus> },
    /// `ReadClosed` was reported.
    ReadClosed,
}

/// Our final record on the channel (rule 3 of the protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnFinal {
    /// Not due yet.
    NotYet,
    /// CLOSE is in the control queue.
    CloseQueued,
    /// RESET is in the control queue (the reason travels with the entry). It
    /// replaces a queued CLOSE: an abort overrides a clean end not yet sent.
    ResetQueued,
    /// On the wire, or owed no more (the peer's REFUSE ended it for both).
    Sent,
}

#[derive(Debug)]
pub(super) struct Channel {
    pub(super) key: WireKey,
    pub(super) service: String,
    /// Destination sent with our OPEN_TO (opened channels only).
    pub(super) target: Option<Target>,
    pub(super) phase: Phase,
    pub(super) send: SendHalf,
    pub(super) recv: RecvHalf,
    pub(super) own_final: OwnFinal,
    /// The peer's final record (CLOSE, RESET or REFUSE) arrived.
    pub(super) peer_final_received: bool,

    /// Bytes `send` took that are not on the wire yet (≤ `send_buffer`).
    pub(super) tx: VecDeque<u8>,
    /// DATA bytes put on the wire that no CREDIT has confirmed consumed yet
    /// (CREDIT after our EOF, which grants nothing, still confirms).
    pub(super) unconfirmed_on_wire: u64,
    pub(super) credit: SendCredit,
    /// A `send` came up short: report `SendSpace` once data leaves.
    pub(super) want_space: bool,

    /// Received bytes not yet read (≤ `window`). One contiguous ring, not a
    /// `Bytes` per record: a peer sending 1-byte records would otherwise make
    /// the heap cost tens of times the window.
    pub(super) rx: VecDeque<u8>,
    /// Read by the application but not yet reported consumed.
    pub(super) held: usize,
    pub(super) rxw: RecvWindow,
    /// A CREDIT entry is in the control queue.
    pub(super) credit_queued: bool,
    /// `Readable` was reported and `read` has not drained the buffer since.
    pub(super) readable_notified: bool,

    /// Our data on this channel since our first DATA_LZ4 record (the
    /// dictionary of the next one); `None` until then.
    pub(super) tx_hist: Option<Box<History>>,
    /// The peer's data since its first DATA_LZ4 record on this channel.
    pub(super) rx_hist: Option<Box<History>>,
    /// Records to send raw before trying to compress again.
    pub(super) z_skip: u16,
    /// Current length of that run (doubles with each incompressible try).
    pub(super) z_backoff: u16,
    /// Raw bytes per wire byte of the last DATA_LZ4, × 16 (first guess of
    /// how much to feed the next one).
    pub(super) z_ratio16: usize,
}

impl Channel {
    pub(super) fn new(
        key: WireKey,
        service: String,
        phase: Phase,
        window: u32,
        peer_window: u32,
    ) -> Self {
        Channel {
            key,
            service,
            target: None,
            phase,
            send: SendHalf::Open,
            recv: RecvHalf::Open,
            own_final: OwnFinal::NotYet,
            peer_final_received: false,
            tx: VecDeque::new(),
            unconfirmed_on_wire: 0,
            credit: SendCredit::new(peer_window),
            want_space: false,
            rx: VecDeque::new(),
            held: 0,
            rxw: RecvWindow::new(window),
            credit_queued: false,
            readable_notified: false,
            tx_hist: None,
            rx_hist: None,
            z_skip: 0,
            z_backoff: 0,
            z_ratio16: 4 * 16,
        }
    }

    pub(super) fn ours(&self) -> bool {
        !self.key.0
    }

    /// The application may still use the handle (no terminal event yet).
    pub(super) fn app_live(&self) -> bool {
        self.phase != Phase::Aborted
    }

    /// `send` takes data (the opener only after OPEN_OK; the acceptor right
    /// after accepting, its data follows the OPEN_OK).
    pub(super) fn takes_data(&self) -> bool {
        matches!(self.phase, Phase::Accepted | Phase::Established) && self.send == SendHalf::Open
    }

    /// Bytes that may go on the wire now.
    pub(super) fn sendable(&self) -> usize {
        let data_flows = self.phase == Phase::Established
            && matches!(self.send, SendHalf::Open | SendHalf::EofPending { .. });
        if data_flows {
            self.tx.len().min(self.credit.available())
        } else {
            0
        }
    }

    /// CREDIT may still be sent: never after the peer's EOF (rule 2) nor
    /// after our final record.
    pub(super) fn may_return_credit(&self) -> bool {
        self.phase == Phase::Established
            && self.recv == RecvHalf::Open
            && self.own_final == OwnFinal::NotYet
    }

    /// Bytes `send` took that the peer has not confirmed consuming.
    pub(super) fn unconfirmed(&self) -> u64 {
        self.tx.len() as u64 + self.unconfirmed_on_wire
    }

    /// The peer's stream ended and the application consumed every byte of it:
    /// the condition, besides our EOF, for our CLOSE (rule 3), so that the
    /// peer's `Closed` confirms delivery.
    pub(super) fn delivered_everything(&self) -> bool {
        self.recv != RecvHalf::Open && self.rx.is_empty() && self.held == 0
    }

    /// Both final records crossed: the wire id is free (rule 6).
    pub(super) fn released(&self) -> bool {
        self.own_final == OwnFinal::Sent && self.peer_final_received
    }

    pub(super) fn discard(&mut self) {
        self.tx = VecDeque::new();
        self.rx = VecDeque::new();
        self.held = 0;
        self.tx_hist = None;
        self.rx_hist = None;
    }
}

/// Why a DATA record (plain or compressed) may not be taken on `c` now, if so:
/// the peer broke the protocol.
pub(super) fn data_refused(c: &Channel) -> Option<&'static str> {
    if c.phase != Phase::Established {
        Some("DATA before OPEN_OK")
    } else if c.recv != RecvHalf::Open {
        Some("DATA after EOF")
    } else {
        None
    }
}

/// Append `data` to a buffer whose length never exceeds `limit`, growing its
/// allocation by doubling (amortised O(1) per byte) but never beyond `limit`,
/// so the heap a channel holds is bounded by its configured sizes.
pub(super) fn append_bounded(buf: &mut VecDeque<u8>, data: &[u8], limit: usize) {
    let need = buf.len() + data.len();
    debug_assert!(need <= limit);
    if need > buf.capacity() {
        let target = (buf.capacity() * 2).max(64).clamp(need, limit.max(need));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend(data);
}
