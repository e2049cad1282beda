//! What a new user meets first: `sfs` alone, `-h`, `--help`,
//! `--help-addresses`, a bad value, and the demo.
#![cfg(unix)]

use std::process::{Command, Output};

fn sfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfs"))
        .args(args)
        // Not a terminal here: help is filled to COLUMNS.
        .env("COLUMNS", "80")
        .output()
        .expect("run sfs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn sfs_alone_shows_the_short_help_and_the_demo() {
    let out = sfs(&[]);
    assert_eq!(out.status.code(), Some(2));
    let help = text(&out.stderr) + &text(&out.stdout);
    assert!(help.contains("sfs --demo"), "{help}");
    assert!(help.contains("ADDRESS1 ADDRESS2"), "{help}");
    assert!(help.contains("Address types:"), "{help}");
}

#[test]
fn short_help_fits_a_screen_and_says_what_each_type_is() {
    let out = sfs(&["-h"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.lines().count() <= 60, "{} lines", help.lines().count());
    for line in help.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line}");
    }
    for t in sfs::address::ADDRESS_TYPES {
        assert!(
            help.lines()
                .any(|l| l.contains(t.syntax) && l.contains(t.summary)),
            "{} has no one-line description",
            t.name
        );
    }
}

#[test]
fn long_help_is_wrapped_and_differs_from_the_address_reference() {
    let long = text(&sfs(&["--help"]).stdout);
    let reference = text(&sfs(&["--help-addresses"]).stdout);
    for line in long.lines().chain(reference.lines()) {
        // A single word longer than the width may stand alone.
        assert!(
            line.chars().count() <= 80 || !line.trim().contains(' '),
            "too wide: {line}"
        );
    }
    assert!(long.contains("options: fork, bind=ADDR"), "{long}");
    // The reference describes each option; --help only names them.
    assert_ne!(long, reference);
    for o in sfs::address::OPTIONS {
        assert!(reference.contains(&o.usage()), "{}", o.name);
    }
    assert!(reference.contains("Give up connecting after SECONDS"));
    assert!(!long.contains("Give up connecting after SECONDS"));
}

#[test]
fn out_of_range_values_are_said_in_words() {
    let out = sfs(&["TCP-LISTEN:99999", "STDIO"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("expected a port number from 0 to 65535"),
        "{err}"
    );
    assert!(!err.contains("..="), "{err}");
    let err = text(&sfs(&["SERIAL-MUX:/dev/null,max-channels=0", "STDIO"]).stderr);
    assert!(err.contains("must be from 1 to 32768"), "{err}");
}

/// The binary carries the demo but none of the tests' scaffolding: the
/// private sshd (its sshd_config), the text generator and the other helpers
/// live in tests/util and never link into it. `.ci/run` checks the release
/// build the same way with `strings`.
#[test]
fn the_binary_carries_the_demo_but_no_test_scaffolding() {
    let bin = std::fs::read(env!("CARGO_BIN_EXE_sfs")).expect("read the sfs binary");
    let has = |s: &str| {
        let s = s.as_bytes();
        bin.windows(s.len()).any(|w| w[0] == s[0] && w == s)
    };
    // The search works: the demo's own words are found.
    assert!(has("sfs demo: every byte arrived intact"));
    assert!(has("testbed not ready"));
    for scaffolding in [
        "AuthorizedKeysFile",
        "Prometheus/2.51.0",
        "sfs-sshd-",
        "PrivateSshd",
        "TextGen",
    ] {
        assert!(!has(scaffolding), "{scaffolding} is in the binary");
    }
}

/// The README's first command: the demo runs on its own virtual cable and
/// says every byte arrived.
#[test]
fn the_demo_runs_and_reports_every_byte_intact() {
    let out = sfs(&["--demo"]);
    let says = text(&out.stdout);
    assert!(out.status.success(), "{says}{}", text(&out.stderr));
    assert!(says.contains("4 of 4 uploads arrived intact"), "{says}");
    assert!(says.contains("every byte arrived intact"), "{says}");
    assert!(says.contains("the same demo on a clean line"), "{says}");
    // The raw counters are for -v only.
    assert!(!says.contains("CRC failures"), "{says}");
}
