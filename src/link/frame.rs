//! Frame header encode/parse (`Repr` with `parse`/`emit`).
//!
//! Raw frame (before COBS), all integers big-endian except the CRC:
//!
//! ```text
//! byte 0      kind << 4 | flags
//! DATA  (1)   seq:u16 [ack:u16 if flag A=0x1] [sack if flag S=0x2] payload…
//! ACK   (2)   ack:u16 [sack if flag S=0x2]      (flag T=0x4: PASS, passes the turn)
//! HELLO (3)   version:u8 epoch:u32 seen:u32 window:u16      (flag R=0x1: reply/established)
//! CAPS  (4)   epoch:u32 seen:u32 features:u32 max_payload:u16 (flag K=0x1: I have yours)
//! RESUME (5)  offset:u16 rest-of-a-suspended-frame…  (no trailer of its own; link layer)
//!             flag N=0x1 (renumbered): offset:u16 seq:u16 check:u32 rest…, the check
//!             (CRC-32C, keyed, LE) over the kind byte, offset and seq
//! sack        n:u8 (1..=32) bitmap[n]   bit i (LSB first) ⇒ seq ack+1+i received
//! trailer     check:u32 little-endian over key ‖ frame: CRC-32C, or CRC-32K when
//!             key ‖ frame is longer than 655 bytes (large frames only)
//! ```
//!
//! The CRC key of DATA/ACK is `sender_epoch ‖ receiver_epoch` (u32 LE each), never
//! transmitted, so a frame of another session fails the check; HELLO and CAPS use an
//! empty key so they can be read before a session exists, whatever the version (as
//! does the keyed link's handshake, kind 6). Kind 7 (sealed) has no CRC: see
//! `crypto.rs`.

use super::crc::frame_check;
use super::features::Features;
use super::seq::Seq;

/// Wire protocol version carried in HELLO.
pub const VERSION: u8 = 1;
/// Largest payload of wire v1 (keeps the CRC-covered length ≤ 650 B, CRC-32C's HD 6
/// range); larger payloads need [`Features::LARGE_FRAMES`] from the peer.
pub const MAX_PAYLOAD: usize = 600;
/// Largest payload of a large frame: the covered length (key 8 + header ≤ 38 +
/// payload) stays ≤ 2045 B, CRC-32K's HD 6 range.
pub const LARGE_MAX_PAYLOAD: usize = 1984;
/// Largest SACK bitmap in bytes (window ≤ 256 frames).
pub const MAX_SACK_BYTES: usize = 32;
/// Largest raw frame: type, seq, ack, sack, payload, CRC.
pub const MAX_RAW_FRAME: usize = 1 + 2 + 2 + 1 + MAX_SACK_BYTES + LARGE_MAX_PAYLOAD + 4;
/// CRC trailer length.
pub const CRC_LEN: usize = 4;

const KIND_DATA: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_HELLO: u8 = 3;
const KIND_CAPS: u8 = 4;
/// The kind of a RESUME frame (handled by the link before [`parse`]).
pub const KIND_RESUME: u8 = 5;
/// RESUME flag: the frame takes a new sequence number (a frame overtook it).
const FLAG_RENUMBERED: u8 = 0x1;
/// Header of a plain RESUME: kind byte, offset.
pub const RESUME_HEADER: usize = 3;
/// Header of a renumbered RESUME: kind byte, offset, seq, check.
pub const RENUMBERED_RESUME_HEADER: usize = 9;
const FLAG_ACK: u8 = 0x1;
const FLAG_SACK: u8 = 0x2;
const FLAG_REPLY: u8 = 0x1;
const FLAG_HAVE: u8 = 0x1;
/// ACK flag: the sender passes the turn (half duplex, [`Repr::Pass`]).
const FLAG_TURN: u8 = 0x4;
const CAPS_BODY: usize = 15;

/// Selective acknowledgement bitmap of the frames after the cumulative ack.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Sack {
    len: u8,
    bits: [u8; MAX_SACK_BYTES],
}

impl Sack {
    /// Empty bitmap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `ack + 1 + i` as received (ignored beyond the bitmap capacity).
    pub fn set(&mut self, i: usize) {
        if i < MAX_SACK_BYTES * 8 {
            self.bits[i / 8] |= 1 << (i % 8);
            self.len = self.len.max((i / 8 + 1) as u8);
        }
    }

    /// Whether `ack + 1 + i` is marked.
    pub fn get(&self, i: usize) -> bool {
        i < self.len as usize * 8 && self.bits[i / 8] & (1 << (i % 8)) != 0
    }

    /// Bitmap length in bytes on the wire (0 = absent).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// No bit set.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of bits the bitmap spans.
    pub fn span(&self) -> usize {
        self.len as usize * 8
    }
}

/// Cumulative ack (`next expected seq`) plus optional SACK bitmap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AckInfo {
    /// Every seq before this one was received.
    pub ack: Seq,
    /// Frames after `ack + 1` received out of order.
    pub sack: Sack,
}

/// Handshake contents.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Hello {
    /// Sender's epoch.
    pub epoch: u32,
    /// Receiver's epoch as the sender last saw it (0 = none).
    pub seen: u32,
    /// Sender's receive window in frames.
    pub window: u16,
    /// Sender considers the session (epoch, seen) established.
    pub reply: bool,
}

/// Feature announcement (kind 4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Caps {
    /// Sender's epoch (the announcement holds for this session of the sender).
    pub epoch: u32,
    /// Receiver's epoch as the sender last saw it (0 = none).
    pub seen: u32,
    /// Features the sender offers.
    pub features: Features,
    /// Largest payload the sender accepts.
    pub max_payload: u16,
    /// The sender has the receiver's CAPS for (`seen`, `epoch`): no reply needed.
    pub have_yours: bool,
}

/// A parsed frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Repr<'a> {
    /// Application data with optional piggy-backed ack.
    Data {
        /// Sequence number.
        seq: Seq,
        /// Piggy-backed acknowledgement.
        ack: Option<AckInfo>,
        /// Application payload.
        payload: &'a [u8],
    },
    /// Standalone acknowledgement (also the keepalive).
    Ack(AckInfo),
    /// An acknowledgement that also passes the turn on a half-duplex medium
    /// (an ACK with flag T; only to a peer that announced
    /// [`Features::HALF_DUPLEX`]).
    Pass(AckInfo),
    /// Handshake.
    Hello(Hello),
    /// Feature announcement.
    Caps(Caps),
}

/// Why a raw frame was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParseError {
    /// Shorter than its fields.
    Truncated,
    /// Longer than the protocol allows.
    TooLong,
    /// CRC mismatch (corruption or another session's frame).
    BadCrc,
    /// Unknown frame kind.
    UnknownKind(u8),
    /// Reserved flag bits set or inconsistent fields.
    BadFlags,
    /// A HELLO of another protocol version.
    Version(u8),
}

fn key_for(kind: u8, key: &[u8; 8]) -> &[u8] {
    // Kind 6 (keyed-link handshake, `handshake.rs`) is unkeyed too, so that an
    // unkeyed link can tell a keyed peer from noise.
    if kind == KIND_HELLO || kind == KIND_CAPS || kind == 6 {
        &[]
    } else {
        key
    }
}

fn emit_sack(sack: &Sack, out: &mut Vec<u8>) {
    out.push(sack.len);
    out.extend_from_slice(&sack.bits[..sack.len as usize]);
}

impl Repr<'_> {
    /// Header bytes (without payload and CRC) this frame takes.
    pub fn header_len(&self) -> usize {
        let sack = |s: &Sack| if s.is_empty() { 0 } else { 1 + s.len() };
        match self {
            Repr::Data { ack, .. } => 3 + ack.map_or(0, |a| 2 + sack(&a.sack)),
            Repr::Ack(a) | Repr::Pass(a) => 3 + sack(&a.sack),
            Repr::Hello(_) => 12,
            Repr::Caps(_) => CAPS_BODY,
        }
    }

    /// Appends the raw frame followed by its CRC (keyed by `key` for DATA/ACK) to `out`.
    pub fn emit(&self, key: &[u8; 8], out: &mut Vec<u8>) {
        let start = out.len();
        self.emit_body(out);
        let kind = out[start] >> 4;
        let crc = frame_check(key_for(kind, key), &out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Appends the raw frame without CRC (what a sealed frame carries).
    pub fn emit_body(&self, out: &mut Vec<u8>) {
        match self {
            Repr::Data { seq, ack, payload } => {
                let mut flags = 0;
                if let Some(a) = ack {
                    flags |= FLAG_ACK;
                    if !a.sack.is_empty() {
                        flags |= FLAG_SACK;
                    }
                }
                out.push(KIND_DATA << 4 | flags);
                out.extend_from_slice(&seq.0.to_be_bytes());
                if let Some(a) = ack {
                    out.extend_from_slice(&a.ack.0.to_be_bytes());
                    if !a.sack.is_empty() {
                        emit_sack(&a.sack, out);
                    }
                }
                out.extend_from_slice(payload);
            }
            Repr::Ack(a) | Repr::Pass(a) => {
                let mut flags = if a.sack.is_empty() { 0 } else { FLAG_SACK };
                if matches!(self, Repr::Pass(_)) {
                    flags |= FLAG_TURN;
                }
                out.push(KIND_ACK << 4 | flags);
                out.extend_from_slice(&a.ack.0.to_be_bytes());
                if !a.sack.is_empty() {
                    emit_sack(&a.sack, out);
                }
            }
            Repr::Hello(h) => {
                out.push(KIND_HELLO << 4 | if h.reply { FLAG_REPLY } else { 0 });
                out.push(VERSION);
                out.extend_from_slice(&h.epoch.to_be_bytes());
                out.extend_from_slice(&h.seen.to_be_bytes());
                out.extend_from_slice(&h.window.to_be_bytes());
            }
            Repr::Caps(c) => {
                out.push(KIND_CAPS << 4 | if c.have_yours { FLAG_HAVE } else { 0 });
                out.extend_from_slice(&c.epoch.to_be_bytes());
                out.extend_from_slice(&c.seen.to_be_bytes());
                out.extend_from_slice(&c.features.0.to_be_bytes());
                out.extend_from_slice(&c.max_payload.to_be_bytes());
            }
        }
    }
}

fn u16_at(b: &[u8], i: usize) -> Result<u16, ParseError> {
    b.get(i..i + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(ParseError::Truncated)
}

fn u32_at(b: &[u8], i: usize) -> Result<u32, ParseError> {
    b.get(i..i + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ParseError::Truncated)
}

fn parse_sack(b: &[u8], i: &mut usize) -> Result<Sack, ParseError> {
    let n = *b.get(*i).ok_or(ParseError::Truncated)? as usize;
    if n == 0 || n > MAX_SACK_BYTES {
        return Err(ParseError::BadFlags);
    }
    let bits = b.get(*i + 1..*i + 1 + n).ok_or(ParseError::Truncated)?;
    let mut s = Sack::new();
    s.bits[..n].copy_from_slice(bits);
    s.len = n as u8;
    *i += 1 + n;
    Ok(s)
}

/// Parses and checks a raw frame (COBS already removed). `key` is
/// `peer_epoch ‖ my_epoch` (u32 LE each).
pub fn parse<'a>(raw: &'a [u8], key: &[u8; 8]) -> Result<Repr<'a>, ParseError> {
    if raw.len() < 1 + CRC_LEN {
        return Err(ParseError::Truncated);
    }
    if raw.len() > MAX_RAW_FRAME {
        return Err(ParseError::TooLong);
    }
    let (body, crc) = raw.split_at(raw.len() - CRC_LEN);
    let kind = body[0] >> 4;
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if frame_check(key_for(kind, key), body) != want {
        return Err(ParseError::BadCrc);
    }
    parse_body(body)
}

/// Parses a raw frame without CRC (the inside of a sealed frame, already
/// authenticated).
pub fn parse_body(body: &[u8]) -> Result<Repr<'_>, ParseError> {
    let Some(&first) = body.first() else {
        return Err(ParseError::Truncated);
    };
    if body.len() > MAX_RAW_FRAME - CRC_LEN {
        return Err(ParseError::TooLong);
    }
    let kind = first >> 4;
    let flags = first & 0xF;
    match kind {
        KIND_DATA => {
            if flags & !(FLAG_ACK | FLAG_SACK) != 0
                || (flags & FLAG_SACK != 0 && flags & FLAG_ACK == 0)
            {
                return Err(ParseError::BadFlags);
            }
            let seq = Seq(u16_at(body, 1)?);
            let mut i = 3;
            let ack = if flags & FLAG_ACK != 0 {
                let ack = Seq(u16_at(body, i)?);
                i += 2;
                let sack = if flags & FLAG_SACK != 0 {
                    parse_sack(body, &mut i)?
                } else {
                    Sack::new()
                };
                Some(AckInfo { ack, sack })
            } else {
                None
            };
            let payload = &body[i..];
            if payload.len() > LARGE_MAX_PAYLOAD {
                return Err(ParseError::TooLong);
            }
            Ok(Repr::Data { seq, ack, payload })
        }
        KIND_ACK => {
            if flags & !(FLAG_SACK | FLAG_TURN) != 0 {
                return Err(ParseError::BadFlags);
            }
            let ack = Seq(u16_at(body, 1)?);
            let mut i = 3;
            let sack = if flags & FLAG_SACK != 0 {
                parse_sack(body, &mut i)?
            } else {
                Sack::new()
            };
            if i != body.len() {
                return Err(ParseError::BadFlags);
            }
            let info = AckInfo { ack, sack };
            Ok(if flags & FLAG_TURN != 0 {
                Repr::Pass(info)
            } else {
                Repr::Ack(info)
            })
        }
        KIND_HELLO => {
            let version = *body.get(1).ok_or(ParseError::Truncated)?;
            if version != VERSION {
                return Err(ParseError::Version(version));
            }
            if flags & !FLAG_REPLY != 0 {
                return Err(ParseError::BadFlags);
            }
            if body.len() != 12 {
                return Err(if body.len() < 12 {
                    ParseError::Truncated
                } else {
                    ParseError::BadFlags
                });
            }
            Ok(Repr::Hello(Hello {
                epoch: u32_at(body, 2)?,
                seen: u32_at(body, 6)?,
                window: u16_at(body, 10)?,
                reply: flags & FLAG_REPLY != 0,
            }))
        }
        KIND_CAPS => {
            if flags & !FLAG_HAVE != 0 || body.len() != CAPS_BODY {
                return Err(ParseError::BadFlags);
            }
            Ok(Repr::Caps(Caps {
                epoch: u32_at(body, 1)?,
                seen: u32_at(body, 5)?,
                features: Features(u32_at(body, 9)?),
                max_payload: u16_at(body, 13)?,
                have_yours: flags & FLAG_HAVE != 0,
            }))
        }
        k => Err(ParseError::UnknownKind(k)),
    }
}

/// The header of a RESUME (kind 5): where the rest continues the suspended
/// frame, and the frame's new place in the order if it was overtaken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Resume {
    /// Raw bytes of the frame the receiver already holds.
    pub offset: u16,
    /// The frame's new sequence number (it no longer matches the one inside it).
    pub renumber: Option<Seq>,
}

impl Resume {
    /// Header bytes on the wire.
    pub fn header_len(&self) -> usize {
        if self.renumber.is_some() {
            RENUMBERED_RESUME_HEADER
        } else {
            RESUME_HEADER
        }
    }

    /// Appends the header (the rest of the frame follows it). The frame's own
    /// check covers the bytes it continues, not the new sequence number, so a
    /// renumbered header carries a check of its own: a damaged `seq` would
    /// deliver the frame in the wrong place.
    pub fn emit(&self, key: &[u8; 8], out: &mut Vec<u8>) {
        let start = out.len();
        let flags = if self.renumber.is_some() {
            FLAG_RENUMBERED
        } else {
            0
        };
        out.push(KIND_RESUME << 4 | flags);
        out.extend_from_slice(&self.offset.to_be_bytes());
        if let Some(seq) = self.renumber {
            out.extend_from_slice(&seq.0.to_be_bytes());
            let check = super::crc::crc32c(key, &out[start..]);
            out.extend_from_slice(&check.to_le_bytes());
        }
    }

    /// Parses the header at the start of `raw` (kind 5 already seen) and
    /// returns it with the rest of the frame. A renumbered header whose check
    /// fails is [`ParseError::BadCrc`].
    pub fn parse<'a>(raw: &'a [u8], key: &[u8; 8]) -> Result<(Resume, &'a [u8]), ParseError> {
        let first = *raw.first().ok_or(ParseError::Truncated)?;
        if first >> 4 != KIND_RESUME {
            return Err(ParseError::UnknownKind(first >> 4));
        }
        let offset = u16_at(raw, 1)?;
        match first & 0xF {
            0 => Ok((
                Resume {
                    offset,
                    renumber: None,
                },
                &raw[RESUME_HEADER..],
            )),
            FLAG_RENUMBERED => {
                let seq = Seq(u16_at(raw, 3)?);
                let check = u32_at(raw, 5)?.swap_bytes();
                if super::crc::crc32c(key, &raw[..5]) != check {
                    return Err(ParseError::BadCrc);
                }
                Ok((
                    Resume {
                        offset,
                        renumber: Some(seq),
                    },
                    &raw[RENUMBERED_RESUME_HEADER..],
                ))
            }
            _ => Err(ParseError::BadFlags),
        }
    }
}

/// The CRC key of frames sent by `from` to `to`.
pub fn session_key(from: u32, to: u32) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&from.to_le_bytes());
    k[4..].copy_from_slice(&to.to_le_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn rt(r: Repr<'_>) {
        let mut out = Vec::new();
        r.emit(&K, &mut out);
        assert_eq!(
            out.len(),
            r.header_len()
                + CRC_LEN
                + if let Repr::Data { payload, .. } = r {
                    payload.len()
                } else {
                    0
                }
        );
        assert_eq!(parse(&out, &K), Ok(r));
    }

    #[test]
    fn round_trips() {
        let mut sack = Sack::new();
        sack.set(0);
        sack.set(17);
        sack.set(255);
        assert_eq!(sack.len(), 32);
        let a = AckInfo {
            ack: Seq(65535),
            sack,
        };
        let plain = AckInfo {
            ack: Seq(3),
            sack: Sack::new(),
        };
        rt(Repr::Data {
            seq: Seq(7),
            ack: None,
            payload: b"hello",
        });
        rt(Repr::Data {
            seq: Seq(7),
            ack: Some(plain),
            payload: &[],
        });
        rt(Repr::Data {
            seq: Seq(0xFFFF),
            ack: Some(a),
            payload: &[0u8; MAX_PAYLOAD],
        });
        rt(Repr::Data {
            seq: Seq(3),
            ack: Some(a),
            payload: &[7u8; LARGE_MAX_PAYLOAD],
        });
        rt(Repr::Caps(Caps {
            epoch: 5,
            seen: 6,
            features: Features(0x8000_0003),
            max_payload: 1984,
            have_yours: true,
        }));
        rt(Repr::Ack(a));
        rt(Repr::Ack(plain));
        rt(Repr::Hello(Hello {
            epoch: 0xDEADBEEF,
            seen: 0,
            window: 64,
            reply: true,
        }));
        assert!(a.sack.get(17) && !a.sack.get(16) && a.sack.get(255) && !a.sack.get(256));
    }

    #[test]
    fn resume_headers_round_trip_and_a_damaged_renumber_is_caught() {
        for renumber in [None, Some(Seq(0)), Some(Seq(0xBEEF))] {
            let r = Resume {
                offset: 517,
                renumber,
            };
            let mut out = Vec::new();
            r.emit(&K, &mut out);
            assert_eq!(out.len(), r.header_len());
            out.extend_from_slice(b"rest");
            assert_eq!(Resume::parse(&out, &K), Ok((r, &b"rest"[..])));
            if renumber.is_some() {
                // Any single bit flip in the header is caught (or, in the kind
                // byte's flag, turns it into a plain RESUME whose "rest" then
                // fails the frame's own check).
                for bit in 0..8 * RENUMBERED_RESUME_HEADER {
                    let mut bad = out.clone();
                    bad[bit / 8] ^= 1 << (bit % 8);
                    if let Ok((h, _)) = Resume::parse(&bad, &K) {
                        assert!(h.renumber.is_none(), "bit {bit}: {h:?}");
                    }
                }
                // Another session's key fails the check too.
                assert_eq!(Resume::parse(&out, &[9; 8]), Err(ParseError::BadCrc));
            }
        }
        assert_eq!(Resume::parse(&[0x50, 1], &K), Err(ParseError::Truncated));
        assert_eq!(Resume::parse(&[0x52, 0, 1], &K), Err(ParseError::BadFlags));
    }

    #[test]
    fn malformed_shapes() {
        let mut out = Vec::new();
        Repr::Data {
            seq: Seq(1),
            ack: Some(AckInfo {
                ack: Seq(2),
                sack: Sack::new(),
            }),
            payload: b"abc",
        }
        .emit(&K, &mut out);
        // Truncated.
        assert_eq!(parse(&out[..5], &K), Err(ParseError::BadCrc));
        assert_eq!(parse(&out[..4], &K), Err(ParseError::Truncated));
        assert_eq!(parse(&out[..3], &K), Err(ParseError::Truncated));
        assert_eq!(parse(&[], &K), Err(ParseError::Truncated));
        // Bad CRC: every single bit flip is caught.
        for i in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(parse(&bad, &K).is_err(), "bit {i}");
        }
        // Another session's key.
        assert_eq!(parse(&out, &session_key(9, 9)), Err(ParseError::BadCrc));
        // Over-long.
        let big = vec![0u8; MAX_RAW_FRAME + 1];
        assert_eq!(parse(&big, &K), Err(ParseError::TooLong));
        // Unknown kind / bad flags / truncated fields with a valid CRC.
        let with_crc = |body: &[u8], key: &[u8]| {
            let mut v = body.to_vec();
            v.extend_from_slice(&frame_check(key, body).to_le_bytes());
            v
        };
        assert_eq!(
            parse(&with_crc(&[0x90, 1, 2], &K), &K),
            Err(ParseError::UnknownKind(9))
        );
        assert_eq!(
            parse(&with_crc(&[0x18, 1, 2], &K), &K),
            Err(ParseError::BadFlags)
        );
        assert_eq!(
            parse(&with_crc(&[0x12, 1, 2], &K), &K),
            Err(ParseError::BadFlags)
        );
        assert_eq!(
            parse(&with_crc(&[0x10, 1], &K), &K),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            parse(&with_crc(&[0x22, 0, 1, 5, 1], &K), &K),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            parse(&with_crc(&[0x22, 0, 1, 0], &K), &K),
            Err(ParseError::BadFlags)
        );
        assert_eq!(
            parse(&with_crc(&[0x20, 0, 1, 9], &K), &K),
            Err(ParseError::BadFlags)
        );
        // Wrong version, and a short HELLO.
        assert_eq!(
            parse(&with_crc(&[0x30, 2, 0, 0], &[]), &K),
            Err(ParseError::Version(2))
        );
        assert_eq!(
            parse(&with_crc(&[0x30, 1, 0, 0], &[]), &K),
            Err(ParseError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..800)) {
            let _ = parse(&data, &K);
        }
    }
}
