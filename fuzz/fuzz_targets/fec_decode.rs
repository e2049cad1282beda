//! Arbitrary bytes into the FEC frame decoder and the Reed-Solomon decoder:
//! never a panic; a decoded frame is re-encoded to the bytes it was decoded
//! from once the corrections are undone (the decoder only ever returns a
//! codeword); and a frame encoded from the input, damaged within the code's
//! reach, decodes back to the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfs::link::fec::{self, Decoded};
use sfs::link::rs::Code;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let wire: Vec<u8> = data.iter().map(|&b| b.max(1)).collect();
    if let Decoded::Frame { level, want, wire: used, .. } = fec::decode(&wire, &mut out) {
        let mut again = Vec::new();
        fec::encode(level, want, &out, &mut again);
        assert_eq!(again.len() - 1, used);
    }
    // The RS decoder alone on the first ≤ 255 bytes, under each code.
    for nsym in [2, 4, 8, 16, 32] {
        let mut cw = data[..data.len().min(255)].to_vec();
        let _ = Code::new(nsym).decode(&mut cw);
    }
    // Round trip with one damaged byte per 256 (at most one per block).
    if !data.is_empty() && data.len() <= 4000 {
        let level = 1 + data[0] % fec::MAX_LEVEL;
        let mut w = Vec::new();
        fec::encode(level, 0, data, &mut w);
        w.pop();
        for i in (fec::HEADER_WIRE..w.len()).step_by(256) {
            w[i] = w[i].wrapping_add(0x5A).max(1);
        }
        match fec::decode(&w, &mut out) {
            Decoded::Frame { .. } => assert_eq!(out, data),
            other => panic!("within reach, yet {other:?}"),
        }
    }
});
