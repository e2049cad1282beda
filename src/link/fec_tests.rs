//! Where each kind of line damage lands in a coded frame: corrected, or
//! detected (and then left to retransmission).

use super::*;
use crate::line::rng::Rng;
use crate::link::crc::crc32c;

/// A raw frame as the link hands it over: body with zeros in it (COBS would
/// need a code byte for each), then its CRC-32C.
fn raw_frame(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    for i in (0..len).step_by(7) {
        v[i] = 0;
    }
    let crc = crc32c(&[], &v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// The link's final judge: the frame's own CRC.
fn crc_ok(raw: &[u8]) -> bool {
    let (body, crc) = raw.split_at(raw.len() - 4);
    crc32c(&[], body).to_le_bytes() == crc
}

/// Where damage landed.
#[derive(Debug, PartialEq, Eq)]
enum Landed {
    /// Repaired: the very frame, with this many bytes corrected.
    Corrected(usize),
    /// The code found no codeword near it (or no header).
    DetectedByCode,
    /// The code "corrected" it into another codeword; the CRC refuses it.
    DetectedByCrc,
}

fn land(wire: &[u8], raw: &[u8]) -> Landed {
    let mut out = Vec::new();
    match decode(wire, &mut out) {
        Decoded::Frame { corrected, .. } if out == raw => Landed::Corrected(corrected),
        Decoded::Frame { .. } => {
            assert!(!crc_ok(&out), "a miscorrection passed the CRC");
            Landed::DetectedByCrc
        }
        Decoded::Failed { .. } | Decoded::NotCoded => Landed::DetectedByCode,
        Decoded::Short { .. } => panic!("no zeros were made"),
    }
}

fn coded(level: u8, raw: &[u8]) -> Vec<u8> {
    let mut w = Vec::new();
    encode(level, 2, raw, &mut w);
    assert_eq!(w.pop(), Some(0), "ends with the delimiter");
    w
}

#[test]
fn round_trip_every_level_and_size() {
    let mut rng = Rng::new(1);
    let mut out = Vec::new();
    for level in 1..=MAX_LEVEL {
        for len in [1, 2, 5, 100, 250, 251, 252, 600, 1000, 2047, 2100] {
            let raw = raw_frame(&mut rng, len);
            let w = coded(level, &raw);
            assert_eq!(w.len(), wire_len(level, raw.len()));
            assert!(!w.contains(&0), "no 0x00 inside a coded frame");
            assert_eq!(
                decode(&w, &mut out),
                Decoded::Frame {
                    level,
                    want: 2,
                    corrected: 0,
                    wire: w.len()
                }
            );
            assert_eq!(out, raw);
        }
    }
    // The overhead of each level on a 2 KB frame.
    let over = |l| wire_len(l, 2048) as f64 / 2048.0 - 1.0;
    assert!(over(1) < 0.025 && over(2) < 0.035 && over(3) < 0.05);
    assert!(over(4) < 0.09 && over(5) < 0.18);
}

#[test]
fn plain_cobs_frames_are_not_coded() {
    let mut rng = Rng::new(2);
    let mut out = Vec::new();
    for len in 5..400 {
        let raw = raw_frame(&mut rng, len);
        let mut enc = Vec::new();
        crate::link::cobs::encode(&raw, &mut enc);
        enc.pop();
        assert_eq!(decode(&enc, &mut out), Decoded::NotCoded);
    }
}

/// One byte error at every position of a frame: always corrected.
#[test]
fn single_byte_error_anywhere_is_corrected() {
    let mut rng = Rng::new(3);
    let mut out = Vec::new();
    for level in 1..=MAX_LEVEL {
        let raw = raw_frame(&mut rng, 700);
        let w = coded(level, &raw);
        for i in 0..w.len() {
            let mut bad = w.clone();
            bad[i] ^= rng.byte().max(1);
            if bad[i] == 0 {
                continue; // a noise zero: its own test
            }
            match decode(&bad, &mut out) {
                Decoded::Frame { corrected: 1, .. } => assert_eq!(out, raw),
                other => panic!("level {level} pos {i}: {other:?}"),
            }
        }
    }
}

/// A byte that noise turns into 0x00 cuts the chunk; past the header the
/// frame's length is known and the pieces are joined and corrected. Inside the
/// header the frame is lost (detected): neither piece decodes.
#[test]
fn noise_zero_is_rejoined_or_detected() {
    let mut rng = Rng::new(4);
    let mut out = Vec::new();
    let raw = raw_frame(&mut rng, 900);
    let w = coded(2, &raw);
    for cut in 0..w.len() {
        let (a, b) = (&w[..cut], &w[cut + 1..]);
        let mut rj = Rejoin::default();
        match decode(a, &mut out) {
            Decoded::Short { expected } => {
                assert!(cut >= HEADER_WIRE);
                assert_eq!(expected, w.len());
                rj.start(a, expected);
                assert_eq!(decode(b, &mut out), Decoded::NotCoded, "cut {cut}");
                let joined = rj.join(b).expect("complete");
                // The placeholder is wrong unless it happens to equal the cut byte.
                let wrong = usize::from(w[cut] != 0x55);
                assert_eq!(land(&joined, &raw), Landed::Corrected(wrong), "cut {cut}");
            }
            Decoded::NotCoded => {
                assert!(cut < HEADER_WIRE, "cut {cut}");
                assert!(!matches!(decode(b, &mut out), Decoded::Frame { .. }));
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

/// Two noise zeros in one frame: the pieces are joined in turn.
#[test]
fn two_noise_zeros_are_rejoined() {
    let mut rng = Rng::new(5);
    let mut out = Vec::new();
    let raw = raw_frame(&mut rng, 1500);
    let w = coded(3, &raw);
    for _ in 0..200 {
        let c1 = HEADER_WIRE + rng.below(600) as usize;
        let c2 = c1 + 2 + rng.below(600) as usize;
        let mut rj = Rejoin::default();
        let Decoded::Short { expected } = decode(&w[..c1], &mut out) else {
            panic!("short")
        };
        rj.start(&w[..c1], expected);
        assert_eq!(rj.join(&w[c1 + 1..c2]), None, "still short, kept");
        let joined = rj.join(&w[c2 + 1..]).expect("complete");
        let wrong = usize::from(w[c1] != 0x55) + usize::from(w[c2] != 0x55);
        assert_eq!(land(&joined, &raw), Landed::Corrected(wrong));
    }
}

/// A burst of n damaged bytes: corrected when no block gets more than t of it
/// (always when n ≤ t, past the header); beyond that detected — by the code,
/// or, when the code "corrects" into another codeword (likely with t = 2: about
/// half the patterns of 3+ errors in a block), by the CRC. Never delivered wrong.
#[test]
fn bursts_land_as_expected() {
    let mut rng = Rng::new(6);
    let mut tally = [0usize; 3];
    for level in 1..=MAX_LEVEL {
        let t = nsym(level) / 2;
        let raw = raw_frame(&mut rng, 1200);
        let w = coded(level, &raw);
        for _ in 0..300 {
            let n = 1 + rng.below(3 * t as u64) as usize;
            let at = HEADER_WIRE + rng.below((w.len() - HEADER_WIRE - n) as u64) as usize;
            let mut bad = w.clone();
            for b in &mut bad[at..at + n] {
                *b = rng.byte().max(1);
            }
            let hit = (at..at + n).filter(|&i| bad[i] != w[i]).count();
            match land(&bad, &raw) {
                Landed::Corrected(c) => {
                    assert_eq!(c, hit);
                    tally[0] += 1;
                }
                Landed::DetectedByCode => {
                    assert!(hit > t, "level {level}: burst of {hit} not corrected");
                    tally[1] += 1;
                }
                Landed::DetectedByCrc => {
                    assert!(hit > t, "level {level}: burst of {hit} miscorrected");
                    tally[2] += 1;
                }
            }
        }
        // A burst over the header (t = 2 there): the frame is lost, detected.
        let mut bad = w.clone();
        for b in &mut bad[..6] {
            *b = b.wrapping_add(1).max(1);
        }
        assert_ne!(land(&bad, &raw), Landed::Corrected(6));
    }
    assert!(tally.iter().all(|&n| n > 0), "{tally:?}");
}

/// Random byte errors at rates around each level's design point: thousands of
/// frames, every one corrected or detected, most corrected.
#[test]
fn random_errors_many_seeds() {
    let mut tally = [0usize; 3];
    for seed in 0..1500u64 {
        let mut rng = Rng::new(seed);
        let level = 1 + (seed % 5) as u8;
        let p = [1e-4, 5e-4, 2.4e-3, 8e-3, 3e-2][level as usize - 1];
        let len = 64 + rng.below(2000) as usize;
        let raw = raw_frame(&mut rng, len);
        let w = coded(level, &raw);
        let mut bad = w.clone();
        for b in &mut bad {
            if rng.chance(p) {
                *b = (*b ^ rng.byte()).max(1);
            }
        }
        tally[match land(&bad, &raw) {
            Landed::Corrected(_) => 0,
            Landed::DetectedByCode => 1,
            Landed::DetectedByCrc => 2,
        }] += 1;
    }
    assert!(tally[0] > 1500 * 98 / 100, "{tally:?}");
}

#[test]
fn estimate_picks_levels_by_error_rate() {
    let mut e = ErrorEstimate::default();
    for _ in 0..100 {
        e.record(2000, 0);
    }
    assert_eq!(e.want(), 0, "clean line: no code");
    let level_at = |p: f64| {
        let mut e = ErrorEstimate::default();
        let mut acc = 0.0;
        for _ in 0..400 {
            acc += 2000.0 * p;
            let n = acc as usize;
            acc -= n as f64;
            e.record(2000, n);
        }
        e.want()
    };
    // Byte error rates of BER 1e-5, 1e-4, 3e-4, 1e-3 (8 bits a byte).
    let levels: Vec<u8> = [8e-5, 8e-4, 2.4e-3, 8e-3].map(level_at).to_vec();
    assert_eq!(levels, vec![1, 3, 3, 4]);
    assert_eq!(level_at(5e-2), MAX_LEVEL);
    // One stray error on a fresh link asks for the weakest code, briefly.
    let mut e = ErrorEstimate::default();
    e.record(2000, 0);
    e.record(2000, 1);
    assert_eq!(e.want(), 1);
    let mut clean_bytes = 0;
    while e.want() > 0 {
        e.record(1000, 0);
        clean_bytes += 1000;
    }
    assert!(clean_bytes < 80_000, "{clean_bytes}");
}

proptest::proptest! {
    /// Any bytes (no zeros: the delimiter never reaches the decoder): no
    /// panic, and a frame found re-encodes to the length it took.
    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(1u8..=255, 0..3000)) {
        let mut out = Vec::new();
        if let Decoded::Frame { level, want, wire, .. } = decode(&data, &mut out) {
            let mut again = Vec::new();
            encode(level, want, &out, &mut again);
            proptest::prop_assert_eq!(again.len() - 1, wire);
        }
        let mut rj = Rejoin::default();
        rj.start(&data, data.len() + 5);
        let _ = rj.join(&data);
    }
}
