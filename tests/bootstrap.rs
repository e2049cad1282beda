//! `bootstrap=` end to end: the real sfs over the virtual cable, whose far end
//! is a pseudo-terminal with `bash -i` (or dash, busybox `sh`, tcsh, a login prompt) on
//! it as its controlling terminal, in cooked mode as a getty leaves it
//! (`tests/util/console.py`). The local sfs finds the shell, uploads the peer,
//! starts it, and connections go through; the console is a shell again, with
//! its settings, once the link ends.
//!
//! The peer uploaded here is a small script that runs the sfs under test
//! (the far side is this machine), padded with random bytes so the upload
//! takes several chunks: the mechanism is the same as for a release binary,
//! whose timings docs/benchmarks.md records.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock
#![cfg(unix)]

mod util;

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use util::sshd::PrivateSshd;
use util::*;

const BAUD: u32 = 921_600;

/// A far console: `program` on the cable's end `b` as its controlling tty.
struct Console {
    child: Child,
    home: PathBuf,
    /// `stty -g` of the console before sfs came.
    before: PathBuf,
}

impl Console {
    fn start(cable: &Cable, program: &[&str], path: Option<&Path>) -> Console {
        let home = cable.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let before = cable.dir.join("stty-before");
        let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/util/console.py");
        // The interpreter itself (not a shim that needs PATH): PATH may be
        // replaced for the console's program.
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mut cmd = Command::new(python);
        cmd.arg(helper)
            .arg(&cable.b)
            .arg(&before)
            .args(program)
            .env("HOME", &home)
            .env("PS1", "board$ ")
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        Console {
            child: cmd.spawn().expect("python3 runs the console"),
            home,
            before,
        }
    }

    /// Stops (`true`) or resumes the console's program: a far side that
    /// no longer answers.
    fn freeze(&self, frozen: bool) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        let sig = if frozen {
            nix::sys::signal::Signal::SIGSTOP
        } else {
            nix::sys::signal::Signal::SIGCONT
        };
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// `bash -i` as the far console, the common case.
    fn bash(cable: &Cable) -> Console {
        Console::start(cable, &["bash", "--norc", "--noprofile", "-i"], None)
    }

    /// The far side keeps one copy of sfs, and it is `peer` byte for byte.
    fn holds_exactly(&self, peer: &Path) {
        let installed = self.installed();
        assert_eq!(installed.len(), 1, "{installed:?}");
        assert_eq!(
            std::fs::read(&installed[0]).unwrap(),
            std::fs::read(peer).unwrap(),
            "the installed copy is the peer"
        );
    }

    /// The copies of sfs the far side keeps.
    fn installed(&self) -> Vec<PathBuf> {
        let dir = self.home.join(".cache/sfs");
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.file_name().unwrap().to_string_lossy().starts_with("sfs-"));
        v
    }
}

/// The path of `tool` (empty when missing).
fn which(tool: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The peer to upload: runs the sfs under test, padded with `pad` random
/// bytes (never read: `exec` comes first).
fn peer_script(dir: &Path, pad: usize) -> PathBuf {
    let p = dir.join("peer");
    let mut f = std::fs::File::create(&p).unwrap();
    writeln!(f, "#!/bin/sh\nexec '{}' \"$@\"", bin().display()).unwrap();
    f.write_all(&pattern(pad, 7)).unwrap();
    drop(f);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// An echo service; returns its port.
async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// Three connections at once through the link, each echoing its own data.
async fn echo_through(port: u16) {
    let mut tasks = Vec::new();
    for i in 0..3u64 {
        tasks.push(tokio::spawn(async move {
            let data = pattern(20_000, i);
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut r, mut w) = s.split();
            let send = async {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let recv = r.read_to_end(&mut got);
            let (_, n) = tokio::join!(send, recv);
            n.unwrap();
            assert_eq!(got, data, "connection {i} echoed intact");
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("echo within 60 s")
            .unwrap();
    }
}

/// Waits for the link; on failure shows the far sfs's log too.
async fn link_up(a: &Sfs, console: &Console, limit: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let log = a.log_text();
        if log.contains("link up") {
            return log;
        }
        if t0.elapsed() > limit {
            let far = std::fs::read_to_string(console.home.join(".cache/sfs/sfs.log"))
                .unwrap_or_default();
            panic!("no link within {limit:?}; log:\n{log}\nfar sfs.log:\n{far}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The local sfs: a listener, and a bootstrap whose far sfs dials
/// 127.0.0.1:`target`.
fn local(cable: &Cable, target: u16, peer: &Path, extra: &str) -> Sfs {
    Sfs::start(&[
        "TCP-LISTEN:0,fork".into(),
        format!(
            "SERIAL-MUX:{},b{BAUD},bootstrap=TCP:127.0.0.1:{target},peer-binary={}{extra}",
            cable.a.display(),
            peer.display()
        ),
    ])
}

/// Three connections through the link, then sfs is killed; the console
/// comes back.
async fn echo_then_stop(a: Sfs, port: u16, cable: &Cable, console: &Console) {
    echo_through(port).await;
    a.stop().await;
    console_is_back(cable, console).await;
}

/// After the link ended: the console answers as a shell again, with the
/// settings it had before sfs came.
async fn console_is_back(cable: &Cable, console: &Console) {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&cable.a)
        .unwrap();
    let after = cable.dir.join("stty-after");
    let t0 = Instant::now();
    // The far sfs exits when told, or dead-after (3 s here) after the local one
    // vanished; until then what is typed goes to it, so the question is asked
    // again each second.
    while !after.exists() {
        if t0.elapsed() > Duration::from_secs(30) {
            let far = std::fs::read_to_string(console.home.join(".cache/sfs/sfs.log"))
                .unwrap_or_default();
            panic!("the console did not come back as a shell; far sfs.log:\n{far}");
        }
        writeln!(tty, "stty -g > '{}'", after.display()).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = std::fs::read_to_string(&console.before).unwrap();
    let now = std::fs::read_to_string(&after).unwrap();
    assert_eq!(now.trim(), before.trim(), "console settings restored");
}

/// Runs `ssh` with `args` within 60 s; returns its output.
async fn run_ssh(args: &[String]) -> std::process::Output {
    let mut cmd = Command::new("ssh");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("ssh {args:?} did not finish within 60 s"))
        .unwrap()
}

/// Sends SIGTERM and waits for a clean exit.
async fn sigterm(a: &mut Sfs) {
    let pid = nix::unistd::Pid::from_raw(a.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), a.child.wait())
        .await
        .expect("sfs stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}: {}", a.log_text());
}

#[tokio::test]
async fn first_run_uploads_second_run_is_cached_and_the_console_comes_back() {
    if !have("python3") || !have("bash") {
        return missing_tool("python3 and bash", "apt-get install python3 bash");
    }
    let cable = Cable::start("boot-first", BAUD).await;
    let console = Console::bash(&cable);
    let peer = peer_script(&cable.dir, 300_000);
    let echo = echo_server().await;

    // dead-after stays 60 s: the far sfs leaves at once because this one
    // tells it as it stops (SIGTERM).
    let mut a = local(&cable, echo, &peer, "");
    let port = a.listen_port().await;
    let log = link_up(&a, &console, Duration::from_secs(60)).await;
    assert!(log.contains("uploading sfs"), "progress shown:\n{log}");
    assert!(!log.contains("has this sfs already"));
    echo_through(port).await;
    console.holds_exactly(&peer);
    sigterm(&mut a).await;
    console_is_back(&cable, &console).await;
    let far = std::fs::read_to_string(console.home.join(".cache/sfs/sfs.log")).unwrap();
    assert!(
        far.contains("the bootstrapping sfs stopped"),
        "far log:\n{far}"
    );

    // Killed outright this time: the far sfs leaves dead-after (3 s) later.
    let t0 = Instant::now();
    let a = local(&cable, echo, &peer, ",dead-after=3");
    let port = a.listen_port().await;
    let log = link_up(&a, &console, Duration::from_secs(30)).await;
    eprintln!("cached run: link up after {:?}", t0.elapsed());
    assert!(log.contains("has this sfs already"), "cached:\n{log}");
    assert!(!log.contains("uploading sfs ("), "no upload:\n{log}");
    echo_then_stop(a, port, &cable, &console).await;
}

#[tokio::test]
async fn an_interrupted_upload_is_never_run_and_the_next_run_completes() {
    if !have("python3") || !have("bash") {
        return missing_tool("python3 and bash", "apt-get install python3 bash");
    }
    let cable = Cable::start("boot-cut", BAUD).await;
    let console = Console::bash(&cable);
    // ~1 MB of noise: about 11 s at 921600, cut at a third.
    let peer = peer_script(&cable.dir, 1_000_000);
    let echo = echo_server().await;
    let a = local(&cable, echo, &peer, ",dead-after=3");
    // Cut after the first chunk (a quarter): the second is on its way.
    a.wait_log("to the far side:  2", Duration::from_secs(60))
        .await;
    a.stop().await;
    assert!(
        console.installed().is_empty(),
        "nothing installed from a cut upload"
    );

    let a = local(&cable, echo, &peer, ",dead-after=3");
    let port = a.listen_port().await;
    link_up(&a, &console, Duration::from_secs(90)).await;
    echo_through(port).await;
    console.holds_exactly(&peer);
}

#[tokio::test]
async fn a_login_prompt_stops_with_one_line_and_nothing_typed() {
    if !have("python3") {
        return missing_tool("python3", "apt-get install python3");
    }
    let cable = Cable::start("boot-login", BAUD).await;
    let (typed, password) = (cable.dir.join("typed"), cable.dir.join("password"));
    let getty = format!(
        "while :; do printf 'board login: '; read u || exit; echo \"$u\" >> '{}'; \
         printf 'Password: '; read p || exit; echo \"$p\" >> '{}'; echo 'Login incorrect'; done",
        typed.display(),
        password.display()
    );
    let _console = Console::start(&cable, &["sh", "-c", &getty], None);
    let echo = echo_server().await;
    let peer = peer_script(&cable.dir, 10);
    let mut a = local(&cable, echo, &peer, ",dead-after=3");
    let status = tokio::time::timeout(Duration::from_secs(30), a.child.wait())
        .await
        .expect("sfs stops")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let log = a.log_text();
    assert!(log.contains("login prompt: log in on it"), "{log}");
    // Ctrl-U and Enter woke it; no user name, no command, and no password.
    let typed = std::fs::read_to_string(&typed).unwrap_or_default();
    assert!(
        typed.chars().all(|c| c.is_control()),
        "typed as a user name: {typed:?}"
    );
    assert!(!password.exists(), "something was typed at Password:");
}

/// A far side with neither gzip nor base64 (nor dd): the upload goes raw.
#[tokio::test]
async fn a_far_side_without_gzip_or_base64_gets_it_raw() {
    if !have("python3") || !have("bash") {
        return missing_tool("python3 and bash", "apt-get install python3 bash");
    }
    let cable = Cable::start("boot-nogzip", BAUD).await;
    let bin_dir = cable.dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    for t in [
        "stty",
        "head",
        "sha256sum",
        "tty",
        "uname",
        "mkdir",
        "cat",
        "chmod",
        "mv",
        "rm",
    ] {
        std::os::unix::fs::symlink(which(t), bin_dir.join(t)).unwrap();
    }
    let bash = which("bash");
    let console = Console::start(
        &cable,
        &[bash.as_str(), "--norc", "--noprofile", "-i"],
        Some(&bin_dir),
    );
    let peer = peer_script(&cable.dir, 100_000);
    let echo = echo_server().await;
    let a = local(&cable, echo, &peer, ",dead-after=3");
    let port = a.listen_port().await;
    let log = link_up(&a, &console, Duration::from_secs(60)).await;
    assert!(log.contains("has: head sha256sum tty"), "{log}");
    echo_through(port).await;
    assert_eq!(console.installed().len(), 1);
    a.stop().await;
    console_is_back(&cable, &console).await;
}

/// busybox `sh`, whose head, gzip and sha256sum exist only as applets.
#[tokio::test]
async fn busybox_sh_with_applets_only() {
    if !have("python3") || !have("busybox") {
        return missing_tool("python3 and busybox", "apt-get install python3 busybox");
    }
    let cable = Cable::start("boot-busybox", BAUD).await;
    let bb_dir = cable.dir.join("bb");
    std::fs::create_dir_all(&bb_dir).unwrap();
    let busybox = which("busybox");
    let busybox = busybox.as_str();
    for t in [
        "busybox", "stty", "tty", "uname", "mkdir", "cat", "chmod", "mv", "rm",
    ] {
        std::os::unix::fs::symlink(busybox, bb_dir.join(t)).unwrap();
    }
    let console = Console::start(&cable, &[busybox, "sh", "-i"], Some(&bb_dir));
    let peer = peer_script(&cable.dir, 100_000);
    let echo = echo_server().await;
    let a = local(&cable, echo, &peer, ",dead-after=3");
    let port = a.listen_port().await;
    let log = link_up(&a, &console, Duration::from_secs(60)).await;
    assert!(log.contains("busybox-head"), "{log}");
    assert!(log.contains("busybox-gzip"), "{log}");
    echo_through(port).await;
    assert_eq!(console.installed().len(), 1);
    a.stop().await;
    console_is_back(&cable, &console).await;
}

/// `--status` shows the upload as it goes (and `--stats-json` records it);
/// Ctrl-C in the middle puts the console back: settings restored, nothing
/// left of the partial upload, and sfs says so and exits 1.
#[tokio::test]
async fn status_shows_the_upload_and_ctrl_c_puts_the_console_back() {
    if !have("python3") || !have("bash") || !util::tmux::have_tmux() {
        return missing_tool(
            "python3, bash and tmux",
            "apt-get install python3 bash tmux",
        );
    }
    let cable = Cable::start("boot-status", BAUD).await;
    let console = Console::bash(&cable);
    // ~1 MB of noise: about 11 s of upload at 921600.
    let peer = peer_script(&cable.dir, 1_000_000);
    let echo = echo_server().await;
    let json = cable.dir.join("stats.jsonl");
    let tmux = util::tmux::Tmux::start("boot-status", 120, 30).expect("tmux starts a session");
    let cmd = format!(
        "{} --status --stats-json {} --stats-interval 0.5 TCP-LISTEN:0,fork \
         SERIAL-MUX:{},b{BAUD},bootstrap=TCP:127.0.0.1:{echo},peer-binary={}; \
         echo \"sfs-exit\"\"ed-$?\"",
        bin().display(),
        json.display(),
        cable.a.display(),
        peer.display()
    );
    tmux.send(&[&cmd, "Enter"]);
    let screen = tmux
        .wait_for("the upload's progress in the view", |s| {
            s.contains("link bootstrapping") && s.contains("uploading") && s.contains("uploaded ")
        })
        .await;
    println!("status screen during the upload:\n{screen}");
    assert!(screen.contains("putting sfs on the far side"), "{screen}");
    // Half way or so: Ctrl-C.
    let mid = tmux
        .wait_for("a quarter uploaded", |s| {
            s.lines().any(|l| {
                l.split_whitespace()
                    .filter_map(|w| w.strip_suffix('%')?.parse::<u32>().ok())
                    .any(|p| (25..90).contains(&p))
            })
        })
        .await;
    println!("{mid}");
    tmux.send(&["C-c"]);
    let after = tmux
        .wait_for("the shell back after Ctrl-C", |s| s.contains("sfs-exited-"))
        .await;
    assert!(after.contains("sfs-exited-1"), "{after}");
    assert!(
        after.contains("stopped; the console is a shell again with its settings"),
        "{after}"
    );
    console_is_back(&cable, &console).await;
    assert!(console.installed().is_empty(), "nothing installed");
    let left: Vec<String> = std::fs::read_dir(console.home.join(".cache/sfs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("c.") || n == "n")
        .collect();
    assert!(left.is_empty(), "partial upload left: {left:?}");

    // What --stats-json saw: the bootstrap's steps, the upload growing.
    let text = std::fs::read_to_string(&json).unwrap();
    let mut uploaded = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for l in v["links"].as_array().unwrap() {
            if l["state"] == "bootstrapping" {
                let b = &l["bootstrap"];
                if b["step"] == "uploading" {
                    assert!(b["upload_bytes"].as_u64().unwrap() > 100_000, "{b}");
                    uploaded.push(b["uploaded_bytes"].as_u64().unwrap());
                }
            }
        }
    }
    assert!(uploaded.len() >= 3, "{text}");
    assert!(uploaded.windows(2).all(|w| w[0] <= w[1]), "{uploaded:?}");
    assert!(uploaded.last() > uploaded.first(), "{uploaded:?}");
}

/// A far shell that is not POSIX (tcsh) is named at once with what to do,
/// and the console is left as it was (nothing beyond the first `echo`).
#[tokio::test]
async fn a_csh_console_is_refused_with_one_line() {
    if !have("python3") || !have("tcsh") {
        return missing_tool("python3 and tcsh", "apt-get install python3 tcsh");
    }
    let cable = Cable::start("boot-tcsh", BAUD).await;
    let console = Console::start(&cable, &["tcsh", "-i"], None);
    let echo = echo_server().await;
    let peer = peer_script(&cable.dir, 10);
    let mut a = local(&cable, echo, &peer, "");
    let status = tokio::time::timeout(Duration::from_secs(60), a.child.wait())
        .await
        .expect("sfs stops")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let log = a.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("no POSIX shell answered"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("Illegal variable name"), "{line}");
    assert!(line.contains("type sh"), "{line}");
    assert!(console.installed().is_empty());
    // The terminal was never set up: its settings are as they were.
    console_is_back(&cable, &console).await;
}

/// dash, Debian's /bin/sh (no line editing, no `[[`, `command -v` as POSIX
/// says), with the system's tools.
#[tokio::test]
async fn dash_as_the_far_shell() {
    if !have("python3") || !have("dash") {
        return missing_tool("python3 and dash", "apt-get install python3 dash");
    }
    let cable = Cable::start("boot-dash", BAUD).await;
    let dash = which("dash");
    let console = Console::start(&cable, &[dash.as_str(), "-i"], None);
    let peer = peer_script(&cable.dir, 100_000);
    let echo = echo_server().await;
    let a = local(&cable, echo, &peer, ",dead-after=3");
    let port = a.listen_port().await;
    let log = link_up(&a, &console, Duration::from_secs(60)).await;
    // Found by dash's own `command -v`, not busybox's.
    assert!(log.contains("has: head dd gzip sha256sum"), "{log}");
    assert!(log.contains("uploading sfs"), "{log}");
    echo_through(port).await;
    console.holds_exactly(&peer);
    a.stop().await;
    console_is_back(&cable, &console).await;
}

/// The issue's own command: `bootstrap=TCP:…:22` to an sshd, then ssh
/// through the listener: a command's exit status, then a file down from
/// start to end while another session is half way through sending one up,
/// each checked byte for byte; SIGTERM gives the console back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_through_a_bootstrapped_link() {
    let sshd_bin = PrivateSshd::binary();
    if !have("python3") || !have("bash") || !have("ssh") || sshd_bin.is_none() {
        return missing_tool(
            "python3, bash, ssh and sshd",
            "apt-get install python3 bash openssh-client openssh-server",
        );
    }
    let sshd = PrivateSshd::start(&sshd_bin.unwrap()).expect("sshd starts");
    let cable = Cable::start("boot-ssh", BAUD).await;
    let console = Console::bash(&cable);
    let peer = peer_script(&cable.dir, 100_000);
    let mut a = local(&cable, sshd.port, &peer, "");
    let port = a.listen_port().await.to_string();
    link_up(&a, &console, Duration::from_secs(60)).await;

    let dest = format!("{}@127.0.0.1", PrivateSshd::user());
    let ssh_args = |command: &str| -> Vec<String> {
        let mut v = sshd.client_opts();
        v.extend(["-p".into(), port.clone(), dest.clone(), command.into()]);
        v
    };
    let out = run_ssh(&ssh_args("true")).await;
    assert!(
        out.status.success(),
        "ssh true: {:?} {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        a.log_text()
    );
    let out = run_ssh(&ssh_args("echo hello-$((40+2)); exit 3")).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello-42\n");
    assert_eq!(out.status.code(), Some(3));

    // Two sessions at once: 200 kB of noise up (`cat > file`), and while
    // that session is open half way, another 200 kB down (`cat file`) from
    // start to end; ssh's data does not compress.
    let work = cable.dir.join("ssh");
    std::fs::create_dir_all(&work).unwrap();
    let up_data = pattern(200_000, 11);
    let up_dst = work.join("up.far");
    let down_src = work.join("down");
    std::fs::write(&down_src, pattern(200_000, 12)).unwrap();
    let mut up = Command::new("ssh")
        .args(ssh_args(&format!("cat > '{}'", up_dst.display())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = up.stdin.take().unwrap();
    let t0 = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(60),
        stdin.write_all(&up_data[..100_000]),
    )
    .await
    .expect("first half up within 60 s")
    .unwrap();
    let down = run_ssh(&ssh_args(&format!("cat '{}'", down_src.display()))).await;
    assert!(
        down.status.success(),
        "download: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        down.stdout == std::fs::read(&down_src).unwrap(),
        "the file read down differs ({} bytes)",
        down.stdout.len()
    );
    stdin.write_all(&up_data[100_000..]).await.unwrap();
    drop(stdin);
    let up = tokio::time::timeout(Duration::from_secs(60), up.wait_with_output())
        .await
        .expect("upload ends within 60 s")
        .unwrap();
    eprintln!(
        "200 kB up with 200 kB down in its middle: {:?}",
        t0.elapsed()
    );
    assert!(
        up.status.success(),
        "upload: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        std::fs::read(&up_dst).unwrap() == up_data,
        "the file sent up differs"
    );

    sigterm(&mut a).await;
    console_is_back(&cable, &console).await;
    let far = std::fs::read_to_string(console.home.join(".cache/sfs/sfs.log")).unwrap();
    assert!(
        far.contains("the bootstrapping sfs stopped"),
        "far log:\n{far}"
    );
}

/// Bit errors on the way to the far side during the upload: the chunk they
/// hit is caught by its checksum and sent again, and what is installed and
/// run is the peer byte for byte. The noise is seeded and one-way (the typed
/// bytes; the console's answers come back clean), so the same bits of the
/// same bytes flip each run: here one lands in the first (256 KiB) chunk's
/// data, none in a command. 5e-7 is about one flipped bit per 250 kB.
#[tokio::test]
async fn bit_errors_in_the_upload_are_caught_and_the_chunk_sent_again() {
    if !have("python3") || !have("bash") {
        return missing_tool("python3 and bash", "apt-get install python3 bash");
    }
    let cable = Cable::start_each("boot-noisy", BAUD, ",ber=5e-7,seed=4", "").await;
    let console = Console::bash(&cable);
    let peer = peer_script(&cable.dir, 300_000);
    let echo = echo_server().await;
    let a = local(&cable, echo, &peer, ",dead-after=3");
    let port = a.listen_port().await;
    let log = link_up(&a, &console, Duration::from_secs(60)).await;
    assert!(
        log.contains("a chunk's checksum differs; again"),
        "no chunk was sent again:\n{log}"
    );
    console.holds_exactly(&peer);
    echo_then_stop(a, port, &cable, &console).await;
}

/// A far sfs that exits as soon as it starts (here: a peer that is not sfs
/// at all) is reported with what the shell said, at once, and the console is
/// a shell again; sfs does not wait for a link that cannot come.
#[tokio::test]
async fn a_far_sfs_that_exits_at_once_is_reported() {
    if !have("python3") || !have("bash") {
        return missing_tool("python3 and bash", "apt-get install python3 bash");
    }
    let cable = Cable::start("boot-exits", BAUD).await;
    let console = Console::bash(&cable);
    let peer = cable.dir.join("not-sfs");
    std::fs::write(&peer, "#!/bin/sh\necho 'not an sfs' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&peer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let echo = echo_server().await;
    let mut a = local(&cable, echo, &peer, "");
    let status = tokio::time::timeout(Duration::from_secs(60), a.child.wait())
        .await
        .expect("sfs stops instead of waiting for a link")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let log = a.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("exited as soon as it started"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("exit 3") && line.contains("not an sfs"),
        "{line}"
    );
    console_is_back(&cable, &console).await;
}

/// A stop waits for the console to confirm its restore; a second signal
/// does not wait: sfs exits at once, saying so.
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    if !have("python3") || !have("bash") {
        return missing_tool("python3 and bash", "apt-get install python3 bash");
    }
    let cable = Cable::start("boot-twice", BAUD).await;
    let console = Console::bash(&cable);
    let peer = peer_script(&cable.dir, 1_000_000);
    let echo = echo_server().await;
    let mut a = local(&cable, echo, &peer, "");
    a.wait_log("to the far side:", Duration::from_secs(60))
        .await;
    // The far side stops answering: the restore will not be confirmed.
    console.freeze(true);
    let pid = nix::unistd::Pid::from_raw(a.child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    a.wait_log("putting the console back", Duration::from_secs(10))
        .await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), a.child.wait())
        .await
        .expect("sfs exits on the second signal")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    // Not the restore's own end ("did not confirm"), which would come 5 s
    // and more later from the frozen console.
    let log = a.log_text();
    assert!(log.contains("stopped by a signal while starting"), "{log}");
    assert!(!log.contains("did not confirm"), "{log}");
    console.freeze(false);
}
