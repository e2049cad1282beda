//! `contrib/sfs@.service`: systemd accepts the unit as written (no warnings),
//! its hardening scores as systemd rates it, and the promises the README makes
//! about it hold.
#![cfg(unix)]

mod util;

use std::process::Command;
use util::*;

const UNIT: &str = include_str!("../contrib/sfs@.service");

/// The unit as an instance, with ExecStart pointing at the binary under test
/// (systemd-analyze checks that the program exists).
fn instance() -> std::path::PathBuf {
    let dir = temp_dir("systemd");
    let path = dir.join("sfs@test.service");
    let unit = UNIT.replace("/usr/local/bin/sfs", &bin().display().to_string());
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn unit_keeps_its_promises() {
    for line in [
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "User=sfs",
        "SupplementaryGroups=dialout",
        "NoNewPrivileges=yes",
        "DeviceAllow=char-ttyUSB rw",
        "EnvironmentFile=/etc/sfs/%i.conf",
    ] {
        assert!(UNIT.lines().any(|l| l == line), "missing {line}");
    }
    // PrivateDevices would hide the serial adapter.
    assert!(!UNIT.contains("PrivateDevices=yes"));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        return missing_tool("systemd-analyze", "apt-get install systemd");
    }
    let path = instance();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
    // systemd's own exposure score (0 best, 10 worst): keep the hardening.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for sfs@test.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score:\n{text}"));
    assert!(score <= 4.0, "exposure {score}:\n{text}");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}
