//! The key-file parser (`parse_secret`: the text of a `secret-file=`, the
//! file itself opened elsewhere) and its base64 codec. Must never panic, and:
//! - a parsed secret is what its base64 says: encoding it and parsing that
//!   (with comments and blank lines around) gives the same key;
//! - an error is one short line (it is printed as the reason sfs does not
//!   start) that quotes nothing of the text;
//! - base64: what decodes re-encodes to the same text (up to padding), and
//!   any bytes round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfs::link::crypto::{base64_decode, base64_encode, parse_secret};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        assert_eq!(base64_decode(&base64_encode(data)).as_deref(), Some(data));
        return;
    };
    match parse_secret(text) {
        Ok(secret) => {
            let line = base64_encode(&secret.0);
            let again = parse_secret(&format!("# a key\n\n  {line}  \n# end\n")).unwrap();
            assert_eq!(again.0, secret.0);
        }
        Err(e) => {
            // One short line: it quotes nothing of the text.
            let e = e.to_string();
            assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
            assert!(e.len() < 120, "{e:?}");
        }
    }
    if let Some(bytes) = base64_decode(text) {
        assert_eq!(
            base64_encode(&bytes).trim_end_matches('='),
            text.trim_end_matches('=')
        );
    }
});
