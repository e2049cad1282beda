//! A private OpenSSH server for the ssh tests and the benchmark's ssh case.
//! Test-only: it writes an sshd_config, which has no place in the binary.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A private OpenSSH server on loopback: own host
/// and user keys in a temporary directory, own port, key authentication only.
/// Killed (and its directory removed) on drop.
pub struct PrivateSshd {
    child: std::process::Child,
    dir: PathBuf,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The user key that logs in.
    pub key: PathBuf,
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl PrivateSshd {
    /// The sshd binary, if installed.
    pub fn binary() -> Option<PathBuf> {
        ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    /// Starts `sshd` (from [`PrivateSshd::binary`]) and waits for its port.
    pub fn start(sshd: &Path) -> io::Result<PrivateSshd> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sfs-sshd-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (host, key) = (dir.join("host_key"), dir.join("user_key"));
        for k in [&host, &key] {
            let ok = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(k)
                .status()?
                .success();
            if !ok {
                return Err(io::Error::other("ssh-keygen failed"));
            }
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys"))?;
        // sshd cannot bind port 0 and say which it got: a port is picked
        // here, and if another program takes it before sshd binds it (sshd
        // then exits), another one is tried.
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            match Self::start_on(sshd, &dir, &host, &key, port)? {
                Ok(me) => return Ok(me),
                Err(log) => last = log,
            }
        }
        Err(io::Error::other(format!("sshd did not listen:\n{last}")))
    }

    /// Starts sshd on `port`; `Ok(Err(log))` when it exited instead (the port
    /// was taken).
    fn start_on(
        sshd: &Path,
        dir: &Path,
        host: &Path,
        key: &Path,
        port: u16,
    ) -> io::Result<std::result::Result<PrivateSshd, String>> {
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
            host.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        );
        std::fs::write(dir.join("sshd_config"), config)?;
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = dir.join("sshd.log");
        let child = std::process::Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut me = PrivateSshd {
            child,
            dir: dir.to_owned(),
            port,
            key: key.to_owned(),
        };
        // Ready when sshd says it listens (-e logs to stderr); gone if the
        // port was taken.
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        for _ in 0..200 {
            if std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&listening)) {
                return Ok(Ok(me));
            }
            if me.child.try_wait()?.is_some() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                // Its directory stays for the next try.
                me.dir = PathBuf::new();
                return Ok(Err(text));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "sshd did not listen:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        ))
    }

    /// Options for `ssh`/`scp`/`sftp`: this key, no host key checks, batch mode.
    pub fn client_opts(&self) -> Vec<String> {
        [
            "-i",
            &self.key.display().to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// The local user name (whom the server lets in with the key).
    pub fn user() -> String {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                std::process::Command::new("id")
                    .arg("-un")
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_else(|_| "root".into())
            })
    }
}
