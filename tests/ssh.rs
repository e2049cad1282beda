//! OpenSSH's ssh, scp and sftp through sfs over the virtual cable, to a private
//! sshd on loopback (own config, own port, key authentication), on a clean line
//! and on a noisy one. Skipped, with a notice, where no sshd is installed.

mod util;

use sfs::testbed::{CableSpec, Testbed, TestbedOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use util::*;

fn sshd_path() -> Option<PathBuf> {
    ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

struct Sshd {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
    key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen failed");
}

fn start_sshd(sshd: &Path) -> Sshd {
    let dir = temp_dir("sshd");
    let (host, key) = (dir.join("host_key"), dir.join("user_key"));
    keygen(&host);
    keygen(&key);
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
        host.display(),
        dir.join("authorized_keys").display(),
        dir.join("sshd.pid").display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    // Wait for the port.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd {
        child,
        dir,
        port,
        key,
    }
}

fn ssh_opts(key: &Path) -> Vec<String> {
    vec![
        "-i".into(),
        key.display().to_string(),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
        "-o".into(),
        "ConnectTimeout=30".into(),
    ]
}

fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string()
        })
}

async fn ssh_suite(cable: CableSpec) {
    let Some(sshd_bin) = sshd_path() else {
        missing_tool("sshd", "apt-get install openssh-server");
        return;
    };
    let sshd = start_sshd(&sshd_bin);
    let bed = Testbed::start(TestbedOptions {
        target: Some(([127, 0, 0, 1], sshd.port).into()),
        log: "-v".into(),
        ..TestbedOptions::new(bin(), cable)
    })
    .await
    .unwrap();
    let port = bed.entry.port().to_string();
    let opts = ssh_opts(&sshd.key);
    let dest = format!("{}@127.0.0.1", user());
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
