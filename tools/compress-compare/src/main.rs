//! Candidate codecs for the mux's per-record compression, each used the way
//! the mux uses it: every record is compressed on its own (complete when
//! sent) with the channel's last `dict` bytes of history as a prefix
//! dictionary, so the sender may still pick plain DATA for any record.
//! lz4_flex (today's DATA_LZ4), deflate via miniz_oxide (the history fed to a
//! reset compressor first, then the record as a complete raw deflate stream;
//! the decoder starts with the history in its output buffer), brotli with a
//! custom dictionary, and zstd streaming with a flush per record (C, for
//! reference: the best a codec with memory can do). On `TextGen` text and on
//! random bytes; ratio = raw / wire (a record that does not shrink counts
//! raw), CPU = ns per raw byte, compression + decompression.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::time::Instant;

use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus};
use miniz_oxide::inflate::core::{inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;
use sfs::testbed::PatternGen;
use text::TextGen;

// The benchmark's text generator: a test helper, not part of the sfs library.
#[path = "../../../tests/util/text.rs"]
#[allow(dead_code)]
mod text;

type Codec<'a> = Box<dyn FnMut(&[u8], &[u8], &mut Vec<u8>) -> usize + 'a>;

fn run(data: &[u8], rec: usize, dict_len: usize, mut codec: Codec) -> (usize, f64) {
    let t0 = Instant::now();
    let mut hist: Vec<u8> = Vec::new();
    let mut total = 0;
    let mut back = Vec::new();
    for chunk in data.chunks(rec) {
        let dict = &hist[hist.len().saturating_sub(dict_len)..];
        let n = codec(chunk, dict, &mut back);
        assert_eq!(&back[..], chunk);
        total += n.min(chunk.len());
        hist.extend_from_slice(chunk);
        if hist.len() > 4 * dict_len.max(4096) {
            hist.drain(..hist.len() - dict_len);
        }
    }
    (total, t0.elapsed().as_nanos() as f64 / data.len() as f64)
}

fn lz4() -> Codec<'static> {
    let mut out = Vec::new();
    Box::new(move |chunk, dict, back| {
        out.resize(lz4_flex::block::get_maximum_output_size(chunk.len()), 0);
        let n = lz4_flex::block::compress_into_with_dict(chunk, &mut out, dict).unwrap();
        back.resize(chunk.len(), 0);
        lz4_flex::block::decompress_into_with_dict(&out[..n], back, dict).unwrap();
        n
    })
}

fn deflate(level: u8) -> Codec<'static> {
    let flags = miniz_oxide::deflate::core::create_comp_flags_from_zip_params(level.into(), -15, 0);
    let mut c = Box::new(CompressorOxide::new(flags));
    let mut out = vec![0u8; 1 << 17];
    let mut d = Box::new(DecompressorOxide::new());
    let mut buf = Vec::new();
    Box::new(move |chunk, dict, back| {
        c.reset();
        if !dict.is_empty() {
            let (st, _, _) = miniz_oxide::deflate::core::compress(&mut c, dict, &mut out, TDEFLFlush::Sync);
            assert_eq!(st, TDEFLStatus::Okay);
        }
        let (st, _, n) = miniz_oxide::deflate::core::compress(&mut c, chunk, &mut out, TDEFLFlush::Finish);
        assert_eq!(st, TDEFLStatus::Done);
        // Decode: history in the output buffer, then the record.
        buf.clear();
        buf.extend_from_slice(dict);
        buf.resize(dict.len() + chunk.len(), 0);
        d.init();
        let (st, used, made) = miniz_oxide::inflate::core::decompress(
            &mut d,
            &out[..n],
            &mut buf,
            dict.len(),
            inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        );
        assert_eq!((st, used, made), (TINFLStatus::Done, n, chunk.len()));
        back.clear();
        back.extend_from_slice(&buf[dict.len()..]);
        n
    })
}

fn brotli(quality: u32, lgwin: u32) -> Codec<'static> {
    use brotli::enc::encode::{BrotliEncoderOperation, BrotliEncoderParameter, BrotliEncoderStateStruct};
    use brotli::enc::StandardAlloc;
    let mut out = vec![0u8; 1 << 17];
    Box::new(move |chunk, dict, back| {
        let mut s = BrotliEncoderStateStruct::new(StandardAlloc::default());
        s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_QUALITY, quality);
        s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_LGWIN, lgwin);
        s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_MODE, 1); // text
        s.set_parameter(BrotliEncoderParameter::BROTLI_PARAM_SIZE_HINT, chunk.len() as u32);
        if !dict.is_empty() {
            s.set_custom_dictionary(dict.len(), dict);
        }
        let (mut ain, mut inoff, mut aout, mut outoff, mut total) = (chunk.len(), 0, out.len(), 0, None);
        let ok = s.compress_stream(
            BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
            &mut ain, chunk, &mut inoff, &mut aout, &mut out, &mut outoff, &mut total,
            &mut |_, _, _, _| (),
        );
        assert!(ok && s.is_finished());
        let n = outoff;
        let mut st = brotli::BrotliState::new_with_custom_dictionary(
            StandardAlloc::default(), StandardAlloc::default(), StandardAlloc::default(),
            dict.to_vec().into(),
        );
        back.clear();
        back.resize(chunk.len(), 0);
        let (mut ain, mut inoff, mut aout, mut outoff, mut total) = (n, 0, chunk.len(), 0, 0);
        let r = brotli::BrotliDecompressStream(&mut ain, &mut inoff, &out[..n], &mut aout, &mut outoff, back, &mut total, &mut st);
        assert!(matches!(r, brotli::BrotliResult::ResultSuccess), "{}", chunk.len());
        assert_eq!(outoff, chunk.len());
        n
    })
}

fn zstd_stream(level: i32) -> Codec<'static> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
    enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(16)).unwrap();
    let mut dec = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
    Box::new(move |chunk, _dict, back| {
        enc.write_all(chunk).unwrap();
        enc.flush().unwrap();
        let produced = std::mem::take(enc.get_mut());
        dec.write_all(&produced).unwrap();
        dec.flush().unwrap();
        *back = std::mem::take(dec.get_mut());
        produced.len()
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let len = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2usize << 20);
    let mut text = vec![0u8; len];
    TextGen::new(1).fill(&mut text);
    let mut random = vec![0u8; len];
    PatternGen::new(1).fill(&mut random);
    println!("{:<7} {:>6} {:>6} {:<16} {:>6} {:>8}", "data", "record", "dict", "codec", "ratio", "ns/byte");
    for (name, data) in [("text", &text), ("random", &random)] {
        for rec in [2048, 8192, 16384] {
            let mut cases: Vec<(String, usize, Codec)> = vec![
                ("lz4_flex".into(), 16384, lz4()),
                ("zstd-3 stream".into(), 65536, zstd_stream(3)),
                ("zstd-19 stream".into(), 65536, zstd_stream(19)),
            ];
            for (level, dict) in [(1u8, 8192), (1, 32768), (3, 32768), (6, 32768), (9, 32768)] {
                cases.push((format!("deflate-{level}"), dict, deflate(level)));
            }
            // brotli 8.0.4 panics (index out of bounds in StoreCommandExtra)
            // at quality 5 and above with a custom dictionary: only 2-4 here.
            for (q, w) in [(2, 16), (4, 16)] {
                cases.push((format!("brotli-{q} w{w}"), (1 << w) - 16 - rec, brotli(q, w)));
            }
            for (codec, dict, f) in cases {
                let (n, ns) = run(data, rec, dict, f);
                println!("{name:<7} {rec:>6} {dict:>6} {codec:<16} {:>6.2} {:>8.1}", data.len() as f64 / n as f64, ns);
            }
        }
    }
}
