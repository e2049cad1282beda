//! Mux records: the byte layout of everything the multiplexer puts into a link
//! payload (see `docs/mux-protocol.md` for the normative description).
//!
//! A link payload is a concatenation of records. Every record starts with a
//! 3-byte header: one byte `I rrr tttt` (initiator bit, three reserved zero bits,
//! record type) and the channel id as a big-endian `u16`. Records carry no outer
//! length, so a record that cannot be parsed makes the rest of the payload
//! unparseable: [`decode`] reports it as an error.

use bytes::BufMut;

use super::compress::Codec;
use super::{ExitStatus, RefuseReason};

/// Longest service name an OPEN may carry, in bytes.
pub const MAX_SERVICE_LEN: usize = 32;
/// Longest free text a REFUSE or RESET may carry, in bytes (keeps every control
/// record within a 64-byte payload).
pub const MAX_TEXT_LEN: usize = 48;
/// Longest OPEN_TO record: it must fit the smallest payload on its own, so
/// `service` and `host` share what is left (53 bytes between them).
pub const MAX_OPEN_TO_LEN: usize = MIN_PAYLOAD;
/// Longest target host an OPEN_TO may carry (with an empty service).
pub const MAX_HOST_LEN: usize = MAX_OPEN_TO_LEN - HEADER_LEN - 4 - 1 - 2 - 1;
/// Bytes of record header before any type-specific field.
pub const HEADER_LEN: usize = 3;
/// Bytes of a DATA record header (common header + 16-bit length).
pub const DATA_HEADER_LEN: usize = 5;
/// Bytes of a compressed DATA record's header, DATA_LZ4 or DATA_DEFLATE
/// (common header + compressed and raw lengths).
pub const DATA_Z_HEADER_LEN: usize = 7;
/// Largest data a single DATA record can carry.
pub const MAX_DATA_LEN: usize = u16::MAX as usize;
/// Smallest link payload the mux is designed for: every control record fits.
pub const MIN_PAYLOAD: usize = 64;

/// Record type codes (low four bits of the first byte).
pub mod code {
    /// Open a channel.
    pub const OPEN: u8 = 0x1;
    /// Accept an opened channel.
    pub const OPEN_OK: u8 = 0x2;
    /// Refuse an opened channel.
    pub const REFUSE: u8 = 0x3;
    /// Channel data.
    pub const DATA: u8 = 0x4;
    /// Return receive credit.
    pub const CREDIT: u8 = 0x5;
    /// End of the sender's data.
    pub const EOF: u8 = 0x6;
    /// Sender's last record on the channel (implies EOF).
    pub const CLOSE: u8 = 0x7;
    /// Abort the channel.
    pub const RESET: u8 = 0x8;
    /// End of the sender's data because its program exited (implies EOF).
    pub const EXIT: u8 = 0x9;
    /// Open a channel to a service and a target host and port.
    pub const OPEN_TO: u8 = 0xA;
    /// Channel data compressed as an LZ4 block (only towards a peer that
    /// announced it can decompress).
    pub const DATA_LZ4: u8 = 0xB;
    /// Channel data compressed as a raw deflate stream whose preset window
    /// is the channel's history (only towards a peer that announced it).
    pub const DATA_DEFLATE: u8 = 0xC;
}

const INITIATOR_BIT: u8 = 0x80;
/// EXIT `kind`: the program exited with a code.
const EXIT_CODE: u8 = 0;
/// EXIT `kind`: the program was killed by a signal.
const EXIT_SIGNAL: u8 = 1;
const RESERVED_BITS: u8 = 0x70;

/// One mux record, borrowing its variable-length parts from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// Open channel `id` (always sent by its initiator) towards `service`;
    /// `window` is the opener's receive window (the acceptor's initial credit).
    Open {
        /// Channel id in the opener's id space.
        id: u16,
        /// Opener's initial receive window in bytes.
        window: u32,
        /// Service name (UTF-8, at most [`MAX_SERVICE_LEN`] bytes).
        service: &'a str,
    },
    /// OPEN that also names a destination for the acceptor to dial
    /// (`host` a name or an IP address in text form, `port`).
    OpenTo {
        /// Channel id in the opener's id space.
        id: u16,
        /// Opener's initial receive window in bytes.
        window: u32,
        /// Service name (UTF-8); `service` + `host` ≤ 53 bytes.
        service: &'a str,
        /// Destination port.
        port: u16,
        /// Destination host (UTF-8, 1..=[`MAX_HOST_LEN`] bytes).
        host: &'a str,
    },
    /// The acceptor accepts channel `id`; `window` is its receive window.
    OpenOk {
        /// Channel id (opener's space).
        id: u16,
        /// Acceptor's initial receive window in bytes.
        window: u32,
    },
    /// The acceptor refuses channel `id`. Final for both directions.
    Refuse {
        /// Channel id (opener's space).
        id: u16,
        /// Machine-readable reason.
        reason: RefuseReason,
        /// Short human-readable detail.
        detail: &'a str,
    },
    /// Channel data (1..=65535 bytes).
    Data {
        /// Set when the sender of the record opened the channel.
        initiator: bool,
        /// Channel id.
        id: u16,
        /// The bytes.
        data: &'a [u8],
    },
    /// Channel data compressed with `codec` (DATA_LZ4: one LZ4 block;
    /// DATA_DEFLATE: one raw deflate stream), the channel's history as the
    /// dictionary (see `compress.rs`): `raw` bytes once decompressed.
    DataZ {
        /// The record type: which codec.
        codec: Codec,
        /// Set when the sender of the record opened the channel.
        initiator: bool,
        /// Channel id.
        id: u16,
        /// Length of the data once decompressed (1..=65535).
        raw: u16,
        /// The compressed bytes (1..=65535).
        block: &'a [u8],
    },
    /// The sender consumed `delta` more bytes: the receiver may send that much more.
    Credit {
        /// Set when the sender of the record opened the channel.
        initiator: bool,
        /// Channel id.
        id: u16,
        /// Credit increment (non-zero).
        delta: u32,
    },
    /// The sender will send no more DATA on this channel.
    Eof {
        /// Set when the sender of the record opened the channel.
        initiator: bool,
        /// Channel id.
        id: u16,
    },
    /// The sender will send nothing more at all on this channel (implies EOF).
    Close {
        /// Set when the sender of the record opened the channel.
        initiator: bool,
        /// Channel id.
        id: u16,
    },
    /// Abort the channel in both directions.
    Reset {
        /// Set when the sender of the record opened the channel.
        initiator: bool,
        /// Channel id.
        id: u16,
        /// Short human-readable reason.
        reason: &'a str,
    },
    /// The sender's data ended because its program exited with `status`
    /// (implies EOF).
    Exit {
        /// Set when the sender of the record opened the channel.
        initiator: bool,
        /// Channel id.
        id: u16,
        /// How the program ended.
        status: ExitStatus,
    },
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload ends inside a record.
    Truncated {
        /// Offset of the record that is cut short.
        at: usize,
    },
    /// The record type is not one this version knows.
    UnknownType {
        /// Offset of the record.
        at: usize,
        /// The type code.
        code: u8,
    },
    /// A field has a value the format forbids.
    Malformed {
        /// Offset of the record.
        at: usize,
        /// What is wrong.
        what: &'static str,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { at } => write!(f, "record at byte {at} is truncated"),
            DecodeError::UnknownType { at, code } => {
                write!(f, "unknown record type {code:#x} at byte {at}")
            }
            DecodeError::Malformed { at, what } => {
                write!(f, "malformed record at byte {at}: {what}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

impl RefuseReason {
    /// Wire code of the reason.
    pub fn code(self) -> u8 {
        match self {
            RefuseReason::Other => 0,
            RefuseReason::ConnectionRefused => 1,
            RefuseReason::NoRoute => 2,
            RefuseReason::NotAllowed => 3,
            RefuseReason::TooManyChannels => 4,
            RefuseReason::NameNotFound => 5,
            RefuseReason::TimedOut => 6,
        }
    }

    /// Reason for a wire code; unknown codes map to [`RefuseReason::Other`] so
    /// that newer peers may add reasons.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => RefuseReason::ConnectionRefused,
            2 => RefuseReason::NoRoute,
            3 => RefuseReason::NotAllowed,
            4 => RefuseReason::TooManyChannels,
            5 => RefuseReason::NameNotFound,
            6 => RefuseReason::TimedOut,
            _ => RefuseReason::Other,
        }
    }
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Record<'_> {
    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        HEADER_LEN
            + match self {
                Record::Open { service, .. } => 5 + service.len(),
                Record::OpenTo { service, host, .. } => 8 + service.len() + host.len(),
                Record::OpenOk { .. } => 4,
                Record::Refuse { detail, .. } => 2 + detail.len(),
                Record::Data { data, .. } => 2 + data.len(),
                Record::DataZ { block, .. } => 4 + block.len(),
                Record::Credit { .. } => 4,
                Record::Eof { .. } | Record::Close { .. } => 0,
                Record::Reset { reason, .. } => 1 + reason.len(),
                Record::Exit { .. } => 5,
            }
    }

    /// Never true: every record has a header. (Present for clippy's `len_without_is_empty`.)
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Record type code.
    pub fn code(&self) -> u8 {
        self.head().0
    }

    /// `(initiator bit, channel id)` of the record.
    pub fn channel(&self) -> (bool, u16) {
        let (_, i, id) = self.head();
        (i, id)
    }

    fn head(&self) -> (u8, bool, u16) {
        match *self {
            Record::Open { id, .. } => (code::OPEN, true, id),
            Record::OpenTo { id, .. } => (code::OPEN_TO, true, id),
            Record::OpenOk { id, .. } => (code::OPEN_OK, false, id),
            Record::Refuse { id, .. } => (code::REFUSE, false, id),
            Record::Data { initiator, id, .. } => (code::DATA, initiator, id),
            Record::DataZ {
                codec,
                initiator,
                id,
                ..
            } => (codec.record_code(), initiator, id),
            Record::Credit { initiator, id, .. } => (code::CREDIT, initiator, id),
            Record::Eof { initiator, id } => (code::EOF, initiator, id),
            Record::Close { initiator, id } => (code::CLOSE, initiator, id),
            Record::Reset { initiator, id, .. } => (code::RESET, initiator, id),
            Record::Exit { initiator, id, .. } => (code::EXIT, initiator, id),
        }
    }

    /// Append the record to `out`.
    ///
    /// Panics (in debug builds) if a field exceeds its wire limit; the mux only
    /// builds records within limits.
    pub fn encode(&self, out: &mut impl BufMut) {
        let (ty, initiator, id) = self.head();
        out.put_u8(ty | if initiator { INITIATOR_BIT } else { 0 });
        out.put_u16(id);
        match self {
            Record::Open {
                window, service, ..
            } => {
                debug_assert!(service.len() <= MAX_SERVICE_LEN);
                out.put_u32(*window);
                out.put_u8(service.len() as u8);
                out.put_slice(service.as_bytes());
            }
            Record::OpenTo {
                window,
                service,
                port,
                host,
                ..
            } => {
                debug_assert!(self.len() <= MAX_OPEN_TO_LEN && !host.is_empty());
                out.put_u32(*window);
                out.put_u8(service.len() as u8);
                out.put_slice(service.as_bytes());
                out.put_u16(*port);
                out.put_u8(host.len() as u8);
                out.put_slice(host.as_bytes());
            }
            Record::OpenOk { window, .. } => out.put_u32(*window),
            Record::Refuse { reason, detail, .. } => {
                debug_assert!(detail.len() <= MAX_TEXT_LEN);
                out.put_u8(reason.code());
                out.put_u8(detail.len() as u8);
                out.put_slice(detail.as_bytes());
            }
            Record::Data { data, .. } => {
                debug_assert!(!data.is_empty() && data.len() <= MAX_DATA_LEN);
                out.put_u16(data.len() as u16);
                out.put_slice(data);
            }
            Record::DataZ { raw, block, .. } => {
                debug_assert!(*raw > 0 && !block.is_empty() && block.len() <= MAX_DATA_LEN);
                out.put_u16(block.len() as u16);
                out.put_u16(*raw);
                out.put_slice(block);
            }
            Record::Credit { delta, .. } => {
                debug_assert!(*delta > 0);
                out.put_u32(*delta)
            }
            Record::Eof { .. } | Record::Close { .. } => {}
            Record::Reset { reason, .. } => {
                debug_assert!(reason.len() <= MAX_TEXT_LEN);
                out.put_u8(reason.len() as u8);
                out.put_slice(reason.as_bytes());
            }
            Record::Exit { status, .. } => {
                let (kind, value) = match *status {
                    ExitStatus::Code(v) => (EXIT_CODE, v),
                    ExitStatus::Signal(v) => (EXIT_SIGNAL, v),
                };
                out.put_u8(kind);
                out.put_u32(value);
            }
        }
    }
}

/// A cursor over one payload.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    start: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(DecodeError::Truncated { at: self.start });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn malformed(&self, what: &'static str) -> DecodeError {
        DecodeError::Malformed {
            at: self.start,
            what,
        }
    }
    fn text(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let n = self.u8()? as usize;
        if n > max {
            return Err(self.malformed("text field too long"));
        }
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| self.malformed("text field is not UTF-8"))
    }

    fn record(&mut self) -> Result<Record<'a>, DecodeError> {
        self.start = self.pos;
        let b0 = self.u8()?;
        let id = self.u16()?;
        let ty = b0 & 0x0f;
        let initiator = b0 & INITIATOR_BIT != 0;
        if b0 & RESERVED_BITS != 0 {
            return Err(self.malformed("reserved header bits set"));
        }
        let rec = match ty {
            code::OPEN => {
                if !initiator {
                    return Err(self.malformed("OPEN without initiator bit"));
                }
                let window = self.u32()?;
                let service = self.text(MAX_SERVICE_LEN)?;
                Record::Open {
                    id,
                    window,
                    service,
                }
            }
            code::OPEN_TO => {
                if !initiator {
                    return Err(self.malformed("OPEN_TO without initiator bit"));
                }
                let window = self.u32()?;
                let service = self.text(MAX_SERVICE_LEN)?;
                let port = self.u16()?;
                let host = self.text(MAX_HOST_LEN)?;
                if host.is_empty() {
                    return Err(self.malformed("OPEN_TO with an empty host"));
                }
                if self.pos - self.start > MAX_OPEN_TO_LEN {
                    return Err(self.malformed("OPEN_TO longer than 64 bytes"));
                }
                Record::OpenTo {
                    id,
                    window,
                    service,
                    port,
                    host,
                }
            }
            code::OPEN_OK | code::REFUSE if initiator => {
                return Err(self.malformed("OPEN_OK/REFUSE with initiator bit"));
            }
            code::OPEN_OK => Record::OpenOk {
                id,
                window: self.u32()?,
            },
            code::REFUSE => {
                let reason = RefuseReason::from_code(self.u8()?);
                let detail = self.text(MAX_TEXT_LEN)?;
                Record::Refuse { id, reason, detail }
            }
            code::DATA => {
                let n = self.u16()? as usize;
                if n == 0 {
                    return Err(self.malformed("empty DATA"));
                }
                Record::Data {
                    initiator,
                    id,
                    data: self.take(n)?,
                }
            }
            code::DATA_LZ4 | code::DATA_DEFLATE => {
                let codec = if ty == code::DATA_LZ4 {
                    Codec::Lz4
                } else {
                    Codec::Deflate
                };
                let n = self.u16()? as usize;
                let raw = self.u16()?;
                if n == 0 || raw == 0 {
                    return Err(self.malformed("empty compressed DATA"));
                }
                Record::DataZ {
                    codec,
                    initiator,
                    id,
                    raw,
                    block: self.take(n)?,
                }
            }
            code::CREDIT => {
                let delta = self.u32()?;
                if delta == 0 {
                    return Err(self.malformed("zero CREDIT"));
                }
                Record::Credit {
                    initiator,
                    id,
                    delta,
                }
            }
            code::EOF => Record::Eof { initiator, id },
            code::CLOSE => Record::Close { initiator, id },
            code::RESET => Record::Reset {
                initiator,
                id,
                reason: self.text(MAX_TEXT_LEN)?,
            },
            code::EXIT => {
                let kind = self.u8()?;
                let value = self.u32()?;
                let status = match kind {
                    EXIT_CODE => ExitStatus::Code(value),
                    EXIT_SIGNAL => ExitStatus::Signal(value),
                    _ => return Err(self.malformed("unknown EXIT kind")),
                };
                Record::Exit {
                    initiator,
                    id,
                    status,
                }
            }
            code => {
                return Err(DecodeError::UnknownType {
                    at: self.start,
                    code,
                })
            }
        };
        Ok(rec)
    }
}

/// Decode every record of `payload`, calling `f` for each; stops at the first
/// error. Nothing is allocated.
pub fn decode_each<'a>(
    payload: &'a [u8],
    mut f: impl FnMut(Record<'a>),
) -> Result<usize, DecodeError> {
    let mut r = Reader {
        buf: payload,
        pos: 0,
        start: 0,
    };
    let mut n = 0;
    while r.pos < payload.len() {
        f(r.record()?);
        n += 1;
    }
    Ok(n)
}

/// Decode a whole payload into records (all or nothing).
pub fn decode(payload: &[u8]) -> Result<Vec<Record<'_>>, DecodeError> {
    // At most one record per 3 bytes: the Vec is bounded by the payload size.
    let mut v = Vec::new();
    decode_each(payload, |r| v.push(r))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(r: &Record<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        r.encode(&mut v);
        assert_eq!(v.len(), r.len(), "len() matches encoding of {r:?}");
        v
    }

    fn samples() -> Vec<Record<'static>> {
        vec![
            Record::Open {
                id: 0,
                window: 4096,
                service: "",
            },
            Record::Open {
                id: 65535,
                window: u32::MAX,
                service: "ssh-aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            },
            Record::OpenOk { id: 7, window: 0 },
            Record::Refuse {
                id: 3,
                reason: RefuseReason::NoRoute,
                detail: "no route to host",
            },
            Record::Refuse {
                id: 3,
                reason: RefuseReason::TooManyChannels,
                detail: "",
            },
            Record::Data {
                initiator: true,
                id: 1,
                data: b"x",
            },
            Record::Data {
                initiator: false,
                id: 300,
                data: &[0xff; 300],
            },
            Record::DataZ {
                codec: Codec::Lz4,
                initiator: true,
                id: 2,
                raw: 65535,
                block: &[0x1f, 0x61, 0x01, 0x00],
            },
            Record::DataZ {
                codec: Codec::Deflate,
                initiator: false,
                id: 3,
                raw: 9,
                block: &[0x4b, 0x4c, 0x84, 0x01, 0x00],
            },
            Record::Credit {
                initiator: false,
                id: 9,
                delta: 1,
            },
            Record::Eof {
                initiator: true,
                id: 2,
            },
            Record::Close {
                initiator: false,
                id: 2,
            },
            Record::Reset {
                initiator: true,
                id: 4,
                reason: "protocol error: é",
            },
            Record::Exit {
                initiator: false,
                id: 5,
                status: ExitStatus::Code(0),
            },
            Record::Exit {
                initiator: true,
                id: 65535,
                status: ExitStatus::Signal(u32::MAX),
            },
            Record::OpenTo {
                id: 3,
                window: 5760,
                service: "",
                port: 80,
                host: "localhost",
            },
            Record::OpenTo {
                id: 65535,
                window: 1,
                service: "web",
                port: 65535,
                host: "2001:db8::1",
            },
        ]
    }

    #[test]
    fn open_to_byte_layout() {
        // OPEN_TO of channel 3, window 5760, service "ssh", port 22, host "h".
        let b = enc(&Record::OpenTo {
            id: 3,
            window: 5760,
            service: "ssh",
            port: 22,
            host: "h",
        });
        assert_eq!(
            b,
            [0x8a, 0, 3, 0, 0, 0x16, 0x80, 3, b's', b's', b'h', 0, 22, 1, b'h']
        );
        // The largest one fills the minimum payload exactly.
        let host = "h".repeat(MAX_HOST_LEN);
        let r = Record::OpenTo {
            id: 1,
            window: 1,
            service: "",
            port: 1,
            host: &host,
        };
        assert_eq!(enc(&r).len(), MIN_PAYLOAD);
        // Service and host share the 64 bytes: one more byte of either is malformed.
        let mut b = enc(&Record::OpenTo {
            id: 1,
            window: 1,
            service: "s",
            port: 1,
            host: &host[1..],
        });
        assert_eq!(b.len(), MIN_PAYLOAD);
        b[7] = 2;
        b.insert(8, b's');
        assert!(matches!(
            decode(&b),
            Err(DecodeError::Malformed { at: 0, .. })
        ));
        // Empty host, missing initiator bit, host too long, truncated.
        let bad: &[(&[u8], &str)] = &[
            (&[0x8a, 0, 1, 0, 0, 0, 1, 0, 0, 80, 0], "empty host"),
            (&[0x0a, 0, 1, 0, 0, 0, 1, 0, 0, 80, 1, b'h'], "no initiator"),
            (&[0x8a, 0, 1, 0, 0, 0, 1, 0, 0, 80, 54], "host too long"),
            (&[0x8a, 0, 1, 0, 0, 0, 1, 0, 0, 80, 2, b'h'], "truncated"),
            (&[0x8a, 0, 1, 0, 0, 0, 1, 0, 0, 80, 1, 0xff], "not UTF-8"),
        ];
        for (b, what) in bad {
            assert!(decode(b).is_err(), "{what}");
        }
    }

    #[test]
    fn every_record_round_trips() {
        for r in samples() {
            let b = enc(&r);
            assert_eq!(decode(&b).unwrap(), vec![r]);
        }
        // And all of them packed into one payload.
        let mut all = Vec::new();
        for r in samples() {
            r.encode(&mut all);
        }
        assert_eq!(decode(&all).unwrap(), samples());
    }

    #[test]
    fn every_reason_round_trips() {
        for r in [
            RefuseReason::ConnectionRefused,
            RefuseReason::NoRoute,
            RefuseReason::NotAllowed,
            RefuseReason::TooManyChannels,
            RefuseReason::NameNotFound,
            RefuseReason::TimedOut,
            RefuseReason::Other,
        ] {
            assert_eq!(RefuseReason::from_code(r.code()), r);
        }
        assert_eq!(RefuseReason::from_code(200), RefuseReason::Other);
    }

    #[test]
    fn examples_from_the_spec() {
        // docs/mux-protocol.md §3
        let open = [0x81, 0, 3, 0, 0, 0x16, 0x80, 3, b's', b's', b'h'];
        assert_eq!(
            decode(&open).unwrap(),
            vec![Record::Open {
                id: 3,
                window: 5760,
                service: "ssh"
            }]
        );
        let data = [0x04, 0, 3, 0, 2, b'h', b'i'];
        assert_eq!(
            decode(&data).unwrap(),
            vec![Record::Data {
                initiator: false,
                id: 3,
                data: b"hi"
            }]
        );
        assert_eq!(
            decode(&[0x86, 0, 3]).unwrap(),
            vec![Record::Eof {
                initiator: true,
                id: 3
            }]
        );
        assert_eq!(
            decode(&[0x09, 0, 3, 1, 0, 0, 0, 9]).unwrap(),
            vec![Record::Exit {
                initiator: false,
                id: 3,
                status: ExitStatus::Signal(9)
            }]
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for r in samples() {
            let b = enc(&r);
            for cut in 1..b.len() {
                assert!(
                    matches!(decode(&b[..cut]), Err(DecodeError::Truncated { at: 0 })),
                    "{r:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn malformed_shapes_are_errors() {
        let bad: &[(&[u8], &str)] = &[
            (&[0x00, 0, 1], "type 0"),
            (&[0x0d, 0, 1], "type 13"),
            (&[0x0b, 0, 1, 0, 0, 0, 1], "empty DATA_LZ4"),
            (&[0x0c, 0, 1, 0, 1, 0, 0, 0], "DATA_DEFLATE of nothing"),
            (&[0x0b, 0, 1, 0, 1, 0, 0, 0], "DATA_LZ4 of nothing"),
            (&[0x09, 0, 1, 2, 0, 0, 0, 0], "EXIT kind 2"),
            (&[0x0f, 0, 1], "type 15"),
            (&[0x16, 0, 1], "reserved bit"),
            (&[0x46, 0, 1], "reserved bit"),
            (&[0x01, 0, 1, 0, 0, 0, 0, 0], "OPEN without initiator"),
            (&[0x82, 0, 1, 0, 0, 0, 0], "OPEN_OK with initiator"),
            (&[0x83, 0, 1, 0, 0], "REFUSE with initiator"),
            (&[0x04, 0, 1, 0, 0], "empty DATA"),
            (&[0x05, 0, 1, 0, 0, 0, 0], "zero CREDIT"),
            (&[0x81, 0, 1, 0, 0, 0, 0, 33], "service too long"),
            (&[0x81, 0, 1, 0, 0, 0, 0, 1, 0xff], "service not UTF-8"),
            (&[0x08, 0, 1, 49], "reason too long"),
            (&[0x08, 0, 1, 2, 0xc3, 0x28], "reason not UTF-8"),
            (&[0x03, 0, 1, 1, 1, 0x80], "detail not UTF-8"),
        ];
        for (b, what) in bad {
            assert!(decode(b).is_err(), "{what}");
        }
        // The error points at the offending record, not the payload start.
        let mut p = enc(&Record::Eof {
            initiator: true,
            id: 1,
        });
        p.extend_from_slice(&[0x0d, 0, 0]);
        assert_eq!(
            decode(&p),
            Err(DecodeError::UnknownType { at: 3, code: 0xd })
        );
    }

    #[test]
    fn truncate_str_respects_char_boundaries() {
        assert_eq!(truncate_str("héllo", 2), "h");
        assert_eq!(truncate_str("héllo", 3), "hé");
        assert_eq!(truncate_str("abc", 10), "abc");
    }

    #[test]
    fn every_control_record_fits_the_minimum_payload() {
        let long = "x".repeat(MAX_TEXT_LEN);
        let svc = "s".repeat(MAX_SERVICE_LEN);
        assert!(
            Record::Open {
                id: 1,
                window: 1,
                service: &svc
            }
            .len()
                <= MIN_PAYLOAD
        );
        assert!(
            Record::Refuse {
                id: 1,
                reason: RefuseReason::Other,
                detail: &long
            }
            .len()
                <= MIN_PAYLOAD
        );
        assert!(
            Record::Reset {
                initiator: true,
                id: 1,
                reason: &long
            }
            .len()
                <= MIN_PAYLOAD
        );
    }

    fn arb_record() -> impl Strategy<Value = (u8, bool, u16, u32, Vec<u8>, String)> {
        (
            1u8..=11,
            any::<bool>(),
            any::<u16>(),
            1u32..,
            proptest::collection::vec(any::<u8>(), 1..600),
            "[a-z0-9é-]{0,10}",
        )
    }

    proptest! {
        #[test]
        fn prop_round_trip(recs in proptest::collection::vec(arb_record(), 0..8)) {
            let built: Vec<Record<'_>> = recs.iter().map(|(ty, init, id, n, data, s)| {
                let (id, init) = (*id, *init);
                match ty {
                    1 => Record::Open { id, window: *n, service: s },
                    2 => Record::OpenOk { id, window: *n },
                    3 => Record::Refuse { id, reason: RefuseReason::from_code(*n as u8 % 7), detail: s },
                    4 => Record::Data { initiator: init, id, data },
                    5 => Record::Credit { initiator: init, id, delta: *n },
                    6 => Record::Eof { initiator: init, id },
                    7 => Record::Close { initiator: init, id },
                    8 => Record::Reset { initiator: init, id, reason: s },
                    10 => Record::DataZ { codec: Codec::Lz4, initiator: init, id, raw: (*n as u16).max(1), block: data },
                    11 => Record::DataZ { codec: Codec::Deflate, initiator: init, id, raw: (*n as u16).max(1), block: data },
                    _ => Record::Exit {
                        initiator: init,
                        id,
                        status: if n % 2 == 0 { ExitStatus::Code(*n) } else { ExitStatus::Signal(*n) },
                    },
                }
            }).collect();
            let mut buf = Vec::new();
            for r in &built { r.encode(&mut buf); }
            prop_assert_eq!(decode(&buf).unwrap(), built);
        }

        #[test]
        fn prop_random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(v) = decode(&b) {
                let total: usize = v.iter().map(|r| r.len()).sum();
                prop_assert_eq!(total, b.len());
                let mut re = Vec::new();
                for r in &v { r.encode(&mut re); }
                prop_assert_eq!(re, b);
            }
        }
    }
}
