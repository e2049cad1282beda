//! lz4_flex (block + 16 KiB history as dictionary, as the mux does) against
//! zstd streaming with a flush per record (levels 1 and 3), on `TextGen` text
//! and on random bytes, cut into records of the sizes a 500-byte payload
//! carries. Prints ratio (raw / compressed) and CPU ns per raw byte.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::time::Instant;

use sfs::testbed::PatternGen;
use text::TextGen;

// The benchmark's text generator: a test helper, not part of the sfs library.
#[path = "../../../tests/util/text.rs"]
#[allow(dead_code)]
mod text;

const HISTORY: usize = 16 * 1024;

fn lz4(data: &[u8], rec: usize) -> (usize, f64) {
    let t0 = Instant::now();
    let mut hist: Vec<u8> = Vec::new();
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(rec)];
    let mut total = 0;
    let mut back = vec![0u8; rec];
    for chunk in data.chunks(rec) {
        let dict = &hist[hist.len().saturating_sub(HISTORY)..];
        let n = lz4_flex::block::compress_into_with_dict(chunk, &mut out, dict).unwrap();
        // Decompress too (the receiver's cost), and check.
        let m = lz4_flex::block::decompress_into_with_dict(&out[..n], &mut back[..chunk.len()], dict)
            .unwrap();
        assert_eq!(&back[..m], chunk);
        total += n.min(chunk.len()); // raw when it does not shrink
        hist.extend_from_slice(chunk);
        if hist.len() > 2 * HISTORY {
            hist.drain(..hist.len() - HISTORY);
        }
    }
    (total, t0.elapsed().as_nanos() as f64 / data.len() as f64)
}

fn zstd_stream(data: &[u8], rec: usize, level: i32) -> (usize, f64) {
    let t0 = Instant::now();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
    // A bounded window (as a mux would need per channel): 64 KiB.
    enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(16))
        .unwrap();
    let mut dec = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
    let mut total = 0;
    let mut at = 0;
    for chunk in data.chunks(rec) {
        enc.write_all(chunk).unwrap();
        enc.flush().unwrap();
        let produced = std::mem::take(enc.get_mut());
        total += produced.len();
        dec.write_all(&produced).unwrap();
        dec.flush().unwrap();
        let got = std::mem::take(dec.get_mut());
        assert_eq!(&got[..], &data[at..at + got.len()]);
        at += got.len();
    }
    (total, t0.elapsed().as_nanos() as f64 / data.len() as f64)
}

fn main() {
    let len = 8 << 20;
    let mut text = vec![0u8; len];
    TextGen::new(1).fill(&mut text);
    let mut random = vec![0u8; len];
    PatternGen::new(1).fill(&mut random);
    println!("{:<8} {:>6} {:<12} {:>7} {:>12}", "data", "record", "codec", "ratio", "ns/raw byte");
    for (name, data) in [("text", &text), ("random", &random)] {
        for rec in [256, 1024, 2048, 4096] {
            let (n, ns) = lz4(data, rec);
            println!("{name:<8} {rec:>6} {:<12} {:>7.2} {:>12.1}", "lz4_flex", len as f64 / n as f64, ns);
            for level in [1, 3] {
                let (n, ns) = zstd_stream(data, rec, level);
                println!(
                    "{name:<8} {rec:>6} {:<12} {:>7.2} {:>12.1}",
                    format!("zstd -{level}"),
                    len as f64 / n as f64,
                    ns
                );
            }
        }
    }
}
