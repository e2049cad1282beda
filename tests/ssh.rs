//! OpenSSH's ssh, scp and sftp through sfs over the virtual cable, to a private
//! sshd on loopback (own config, own port, key authentication), on a clean line
//! and on a noisy one. Skipped, with a notice, where no sshd is installed.
#![cfg(unix)] // the test bed (sfs::testbed) runs the virtual cable, ptys

mod util;

use sfs::testbed::{CableSpec, Testbed, TestbedOptions};
use std::process::Command;
use util::sshd::PrivateSshd;
use util::*;

async fn ssh_suite(cable: CableSpec) {
    let Some(sshd_bin) = PrivateSshd::binary() else {
        missing_tool("sshd", "apt-get install openssh-server");
        return;
    };
    let sshd = PrivateSshd::start(&sshd_bin).expect("sshd starts");
    let bed = Testbed::start(TestbedOptions {
        target: Some(([127, 0, 0, 1], sshd.port).into()),
        log: "-v".into(),
        ..TestbedOptions::new(bin(), cable)
    })
    .await
    .unwrap();
    let port = bed.entry.port().to_string();
    let opts = sshd.client_opts();
    let dest = format!("{}@127.0.0.1", PrivateSshd::user());
    let work = temp_dir("sshwork");
    let run = |mut cmd: Command| tokio::task::spawn_blocking(move || cmd.output().unwrap());

    // ssh: a remote command, its output and exit status.
    let mut cmd = Command::new("ssh");
    cmd.args(&opts)
        .args(["-p", &port, &dest, "echo hello-$((40+2)); exit 3"]);
    let out = run(cmd).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello-42\n",
        "ssh stderr: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        bed.logs()
    );
    assert_eq!(out.status.code(), Some(3));

    // scp up and back down, compared byte for byte.
    let src = work.join("up.bin");
    std::fs::write(&src, pattern(150_000, 77)).unwrap();
    let remote = work.join("remote.bin");
    let mut cmd = Command::new("scp");
    cmd.args(&opts)
        .args(["-P", &port])
        .arg(&src)
        .arg(format!("{dest}:{}", remote.display()));
    let out = run(cmd).await.unwrap();
    assert!(
        out.status.success(),
        "scp up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = work.join("back.bin");
    let mut cmd = Command::new("scp");
    cmd.args(&opts)
        .args(["-P", &port])
        .arg(format!("{dest}:{}", remote.display()))
        .arg(&back);
    let out = run(cmd).await.unwrap();
    assert!(
        out.status.success(),
        "scp down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&back).unwrap() == std::fs::read(&src).unwrap(),
        "scp round trip differs"
    );

    // sftp in batch mode.
    let batch = work.join("batch");
    let got = work.join("sftp.bin");
    std::fs::write(
        &batch,
        format!("get {} {}\n", remote.display(), got.display()),
    )
    .unwrap();
    let mut cmd = Command::new("sftp");
    cmd.args(&opts)
        .args(["-P", &port, "-b"])
        .arg(&batch)
        .arg(&dest);
    let out = run(cmd).await.unwrap();
    assert!(
        out.status.success(),
        "sftp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&got).unwrap() == std::fs::read(&src).unwrap(),
        "sftp copy differs"
    );
    let _ = std::fs::remove_dir_all(work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_scp_sftp_over_a_clean_line() {
    ssh_suite(CableSpec::clean(460_800)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_scp_sftp_over_a_noisy_line() {
    ssh_suite(CableSpec::clean(460_800).both("ber=1e-4,drop=1e-5,insert=1e-5")).await;
}
