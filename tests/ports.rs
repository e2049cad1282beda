//! Finding the port: `--list-ports`, and `usb=VID:PID[:SERIAL]` in place of a
//! device path. No hardware here, so these check the fallbacks and the errors.

mod util;

use util::*;

fn sfs(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_ports_prints_ports_or_a_clear_fallback() {
    let (code, out, err) = sfs(&["--list-ports"]);
    assert_eq!(code, Some(0), "{err}");
    // Every line is a port with its identity, or the plain fallback line that
    // says why a device (a pty, the virtual cable) is not there.
    assert!(!out.trim().is_empty());
    for line in out.lines() {
        assert!(
            line.contains("usb=")
                || line.contains("no USB identity")
                || line
                    .contains("pseudo-terminals such as the virtual cable's ends are never listed"),
            "unexpected line: {line}"
        );
    }
    if !out.contains("usb=") {
        assert!(out.contains("name them by path"), "{out}");
    }
}

#[test]
fn usb_identity_is_checked_when_parsed() {
    let (code, _, err) = sfs(&["SERIAL-MUX:usb=zz:6001,b115200", "TCP:127.0.0.1:9"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("usb=VID:PID"), "{err}");
    assert_eq!(
        err.lines().count(),
        3,
        "one-line error with a caret:\n{err}"
    );
}

#[test]
fn an_absent_usb_adapter_is_a_one_line_runtime_error() {
    // No adapter with this made-up identity is plugged in here.
    let (code, _, err) = sfs(&["SERIAL-MUX:usb=f00d:beef:NOPE,b115200", "TCP:127.0.0.1:9"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no serial adapter usb=f00d:beef:NOPE is plugged in"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn usb_identity_parses_and_round_trips() {
    let a: sfs::address::Address = "SERIAL-MUX:usb=0403:6001:A10K,b115200".parse().unwrap();
    let sfs::address::Address::SerialMux(m) = &a else {
        panic!("{a:?}")
    };
    assert_eq!(m.device, "usb=0403:6001:A10K");
    let again: sfs::address::Address = a.to_string().parse().unwrap();
    assert_eq!(again, a);
    let s: sfs::address::Address = "SERIAL:USB=403:6001".parse().unwrap();
    assert!(s.to_string().contains("usb=0403:6001"), "{s}");
}
