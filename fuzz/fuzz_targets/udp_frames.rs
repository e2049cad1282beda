//! The UDP endpoints' length-prefix decoder (`DatagramSplitter`, what the
//! UDP writer runs on the stream from the peer): an arbitrary stream cut into
//! arbitrary pieces, with an arbitrary `max-datagram`. Must never panic, and
//! it gives exactly the datagrams (and the over-limit error, at the same
//! place) that a plain reading of the stream gives, takes at least one byte
//! of every non-empty piece until the error, and never more than asked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfs::endpoint::udp::{DatagramSplitter, OverMax};

/// The stream read in one go: its whole datagrams, then the error if a
/// prefix is over `max`.
fn reference(stream: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<OverMax>) {
    let mut out = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 2 {
        let n = usize::from(u16::from_be_bytes([stream[at], stream[at + 1]]));
        if n > max {
            return (out, Some(OverMax { len: n, max }));
        }
        if stream.len() - at - 2 < n {
            break;
        }
        out.push(stream[at + 2..at + 2 + n].to_vec());
        at += 2 + n;
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let mut cut = u32::from(data[2]) | 1;
    let stream = &data[3..];
    let (want, want_err) = reference(stream, max);
    let mut sp = DatagramSplitter::new(max);
    let mut got = Vec::new();
    let mut err = None;
    let mut rest = stream;
    'feed: while !rest.is_empty() {
        cut = cut.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let piece = &rest[..(1 + (cut >> 16) as usize % 300).min(rest.len())];
        rest = &rest[piece.len()..];
        let mut p = piece;
        while !p.is_empty() {
            match sp.take(p) {
                Ok(k) => {
                    assert!(k > 0 && k <= p.len(), "took {k} of {}", p.len());
                    p = &p[k..];
                }
                Err(e) => {
                    err = Some(e);
                    break 'feed;
                }
            }
            if let Some(d) = sp.datagram() {
                assert!(d.len() <= max);
                got.push(d.to_vec());
                sp.clear();
            }
        }
    }
    assert_eq!(got, want);
    assert_eq!(err, want_err);
});
