//! Arbitrary UTF-8 into `parse_address`: must never panic, and whatever parses
//! must print canonically and round-trip: `parse(display(a)) == a`, and the
//! canonical text is a fixed point of parse∘display.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfs::address::parse_address;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(a) = parse_address(s) {
        let text = a.to_string();
        let b = parse_address(&text).unwrap_or_else(|e| {
            panic!("{s:?} parsed as {a:?}, printed as {text:?}, which fails: {e}")
        });
        assert_eq!(a, b, "{s:?} printed as {text:?}");
        assert_eq!(b.to_string(), text, "{s:?}: display not canonical");
    }
});
