//! The conversation against a scripted far console: a small fake shell that
//! answers the commands bootstrap types the way sh would (markers, tool list,
//! `head -c` reading the chunk, checksums), with faults to inject.
#![allow(clippy::disallowed_methods)] // a start time for the virtual clock

use super::*;
use std::collections::BTreeMap;
use std::io::Read as _;

/// A fake far console.
struct FakeShell {
    login: bool,
    dead: bool,
    /// A csh or fish: `$((…))` is an error.
    not_posix: bool,
    /// `gzip -dc` fails (as a busybox applet run with the wrong argv[0]).
    broken_gzip: bool,
    /// The uploaded sfs exits as soon as it starts.
    peer_fails: bool,
    /// The uploaded sfs neither sends a frame nor exits.
    peer_silent: bool,
    /// The ready marker of this chunk is lost on its way back (once).
    mute_ready: Option<usize>,
    /// Every try of this chunk loses bytes.
    dead_chunk: Option<usize>,
    /// Chunks longer than this arrive with a flipped byte (a noisy line).
    noisy_over: Option<usize>,
    tools: &'static str,
    /// Files by name (chunks `c.NNNNN`, the installed copy).
    files: BTreeMap<String, Vec<u8>>,
    /// `head -c` reading: bytes still wanted, file, and the end marker.
    reading: Option<(usize, String, String)>,
    /// Faults: flip a byte of this chunk (once); drop bytes of this chunk (once).
    corrupt_chunk: Option<usize>,
    lose_chunk: Option<usize>,
    started: Option<String>,
    /// The saved settings were restored (the restore after a stop).
    restored: bool,
    /// Every command line typed (not the chunk data).
    typed: Vec<String>,
}

impl FakeShell {
    fn new(tools: &'static str) -> Self {
        FakeShell {
            login: false,
            dead: false,
            not_posix: false,
            broken_gzip: false,
            peer_fails: false,
            peer_silent: false,
            mute_ready: None,
            dead_chunk: None,
            noisy_over: None,
            tools,
            files: BTreeMap::new(),
            reading: None,
            corrupt_chunk: None,
            lose_chunk: None,
            started: None,
            restored: false,
            typed: Vec::new(),
        }
    }

    fn sum(&self, data: &[u8]) -> String {
        if self.tools.contains("sha256sum") {
            format!("{}  -\n", SumKind::Sha256.digest(data))
        } else {
            format!("{}  -\n", SumKind::Md5.digest(data))
        }
    }

    /// Bytes typed in, console output back.
    fn type_in(&mut self, mut bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.dead {
            return out;
        }
        while !bytes.is_empty() {
            if let Some((want, file, end)) = self.reading.take() {
                let n = want.min(bytes.len());
                self.files
                    .entry(file.clone())
                    .or_default()
                    .extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if want > n {
                    self.reading = Some((want - n, file, end));
                } else {
                    let data = self.files[&file].clone();
                    out.extend_from_slice(self.sum(&data).as_bytes());
                    out.extend_from_slice(format!("{end}\n").as_bytes());
                }
                continue;
            }
            let line_end = bytes
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(bytes.len());
            let line = String::from_utf8_lossy(&bytes[..line_end]).into_owned();
            bytes = &bytes[(line_end + 1).min(bytes.len())..];
            self.command(&line, &mut out);
        }
        out
    }

    fn command(&mut self, line: &str, out: &mut Vec<u8>) {
        let line = line.trim_start_matches('\x15');
        if self.login {
            out.extend_from_slice(b"\r\nboard login: ");
            return;
        }
        if line.trim().is_empty() {
            out.extend_from_slice(b"$ ");
            return;
        }
        self.typed.push(line.to_string());
        if line.contains("$((") && self.not_posix {
            out.extend_from_slice(b"Illegal variable name.\r\n> ");
            return;
        }
        let line = &line.replace("$((", "").replace("))", "");
        let markers: Vec<String> = line
            .match_indices("echo SFS''_")
            .map(|(i, _)| {
                let rest = &line[i + "echo SFS''_".len()..];
                let end = rest.find([';', ' ', '\n']).unwrap_or(rest.len());
                format!("SFS_{}", &rest[..end])
            })
            .collect();
        let mut say = |s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(b'\n');
        };
        if line.contains("SERIAL-MUX:") {
            self.started = Some(line.to_string());
            say(&markers[0]);
            if self.peer_fails {
                // The far sfs exits at once; the shell reports it.
                say(&markers[1]);
                say("exit 2");
                say("sfs: invalid address ',b115200': unexpected ')'");
                say(&markers[2]);
            } else if !self.peer_silent {
                // The far sfs's first frame.
                out.extend_from_slice(b"\x12\x34\x56\x00");
            }
        } else if line.contains("stty \"$SFS_TTY\"") {
            self.files.retain(|k, _| !k.starts_with("c.") && k != "n");
            self.restored = true;
            say(&markers[0]);
        } else if line.contains("for t in") {
            say(&markers[0]);
            say(self.tools);
            say("aarch64");
            say(&markers[1]);
        } else if line.contains("SFS_F=") {
            say(&markers[0]);
            let name = line
                .split("$SFS_D/")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            if let Some(f) = self.files.get(name) {
                let s = self.sum(f);
                say(s.trim_end());
            }
            say(&markers[1]);
        } else if let Some(i) = line.find("> \"$SFS_D\"/c.") {
            let file = line[i + 13..].split(';').next().unwrap().trim().to_string();
            let len: usize = line
                .split(" -c ")
                .nth(1)
                .or_else(|| line.split("count=").nth(1))
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            if line.starts_with("rm -f") {
                self.files.retain(|k, _| !k.starts_with("c."));
            }
            self.files.insert(format!("c.{file}"), Vec::new());
            let index: usize = file.parse().unwrap();
            if self.mute_ready == Some(index) {
                self.mute_ready = None;
            } else {
                say(&markers[0]);
            }
            let mut want = len;
            if self.lose_chunk == Some(index) || self.dead_chunk == Some(index) {
                self.lose_chunk = None;
                want += 100; // as if 100 bytes were lost on the line
            }
            self.reading = Some((want, format!("c.{file}"), markers[1].clone()));
            if self.corrupt_chunk == Some(index) || self.noisy_over.is_some_and(|n| len > n) {
                self.corrupt_chunk = None;
                // the first byte arrives flipped
                self.files.get_mut(&format!("c.{file}")).unwrap().push(0xff);
                self.reading.as_mut().unwrap().0 -= 1;
            }
        } else if line.contains("cat \"$SFS_D\"/c.*") {
            let joined: Vec<u8> = self
                .files
                .iter()
                .filter(|(k, _)| k.starts_with("c."))
                .flat_map(|(_, v)| v.clone())
                .collect();
            say(&markers[0]);
            let unpacked = if self.broken_gzip {
                say("-dc: applet not found");
                Vec::new()
            } else if line.contains("gzip -dc") {
                let mut d = flate2::read::GzDecoder::new(&joined[..]);
                let mut v = Vec::new();
                d.read_to_end(&mut v).map(|_| v).unwrap_or_default()
            } else {
                joined
            };
            let s = self.sum(&unpacked);
            self.files.insert("n".into(), unpacked);
            say(s.trim_end());
            say(&markers[1]);
        } else if line.starts_with("mv -f") {
            let n = self.files.remove("n").unwrap();
            let name = format!("sfs-{}", &SumKind::Sha256.digest(&n)[..16]);
            self.files.insert(name, n);
            self.files.retain(|k, _| !k.starts_with("c."));
            say(&markers[0]);
        } else if line.contains("stty raw") || line.starts_with("echo SFS''_") {
            say(&markers[0]);
        }
    }
}

const TOOLS: &str = "head dd gzip sha256sum md5sum base64 tty";

fn cfg() -> Config {
    Config {
        nonce: 0xfeed,
        byte_rate: 11520,
        peer_dir: None,
        far_mux_options: ",b115200,exit-with-peer".into(),
        far_address: "TCP:localhost:22".into(),
    }
}

fn image() -> PeerImage {
    // 150 kB of noise and 50 kB of text: five chunks at 115200, compressed.
    let mut x = 0x2545_f491_u32;
    let mut binary: Vec<u8> = (0..150_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    binary.extend(b"static text ".iter().cycle().take(50_000));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &binary).unwrap();
    PeerImage {
        binary,
        gzip: gz.finish().unwrap(),
    }
}

/// Runs the conversation against `shell` on virtual time; returns the events.
fn converse(shell: &mut FakeShell) -> Vec<Event> {
    converse_stopping(shell, |_| false)
}

/// [`converse`], calling [`Bootstrap::abort`] the first time `stop` holds
/// after something was typed (before the shell's answer is read).
fn converse_stopping(shell: &mut FakeShell, stop: impl Fn(&Bootstrap) -> bool) -> Vec<Event> {
    let mut stopped = false;
    let mut now = Instant::now();
    let start = now;
    let mut b = Bootstrap::new(cfg(), now);
    let mut events = Vec::new();
    while !b.is_finished() {
        assert!(now - start < Duration::from_secs(3600), "no progress");
        let mut moved = false;
        while let Some(bytes) = b.poll_transmit() {
            // Typing takes line time.
            now += Duration::from_secs_f64(bytes.len() as f64 / 11520.0);
            let reply = shell.type_in(&bytes);
            if !stopped && stop(&b) {
                stopped = true;
                b.abort(now);
            }
            if !reply.is_empty() {
                b.handle_input(now, &reply);
            }
            moved = true;
        }
        while let Some(e) = b.poll_event() {
            if let Event::NeedPeer { .. } = e {
                b.provide_peer(now, image());
                moved = true;
            }
            events.push(e);
        }
        if !moved {
            match b.poll_timeout() {
                Some(t) => {
                    now = now.max(t);
                    b.handle_timeout(now);
                }
                None => break,
            }
        }
    }
    while let Some(bytes) = b.poll_transmit() {
        shell.type_in(&bytes);
    }
    events.extend(std::iter::from_fn(|| b.poll_event()));
    events
}

/// Nothing typed changed the terminal's settings.
fn assert_terminal_untouched(shell: &FakeShell) {
    assert!(
        !shell.typed.iter().any(|c| c.contains("stty")),
        "{:?}",
        shell.typed
    );
}

fn installed(shell: &FakeShell) -> Option<&Vec<u8>> {
    shell
        .files
        .iter()
        .find(|(k, _)| k.starts_with("sfs-"))
        .map(|(_, v)| v)
}

#[test]
fn first_run_uploads_compressed_verifies_and_starts() {
    let mut shell = FakeShell::new(TOOLS);
    let events = converse(&mut shell);
    assert_eq!(events.last(), Some(&Event::Started), "{events:?}");
    assert_eq!(installed(&shell), Some(&image().binary));
    let total = image().gzip.len();
    assert!(events.contains(&Event::Progress { done: total, total }));
    let run = shell.started.expect("far sfs started");
    assert!(
        run.contains(
            "; \"$SFS_F\" -v SERIAL-MUX:\"$(tty)\"',b115200,exit-with-peer' 'TCP:localhost:22'"
        ),
        "{run}"
    );
    assert!(shell
        .typed
        .iter()
        .any(|c| c.contains("stty raw -echo -ixon")));
}

#[test]
fn cached_run_skips_the_upload() {
    let mut shell = FakeShell::new(TOOLS);
    converse(&mut shell);
    shell.typed.clear();
    shell.started = None;
    let events = converse(&mut shell);
    assert!(events.contains(&Event::Cached), "{events:?}");
    assert_eq!(events.last(), Some(&Event::Started));
    assert!(!shell.typed.iter().any(|c| c.contains("head -c")));
}

#[test]
fn a_corrupt_chunk_is_sent_again() {
    let mut shell = FakeShell::new(TOOLS);
    shell.corrupt_chunk = Some(1);
    let events = converse(&mut shell);
    assert!(events.contains(&Event::Retrying("a chunk's checksum differs")));
    assert_eq!(events.last(), Some(&Event::Started));
    assert_eq!(installed(&shell), Some(&image().binary));
}

#[test]
fn a_chunk_with_lost_bytes_is_flushed_and_sent_again() {
    let mut shell = FakeShell::new(TOOLS);
    shell.lose_chunk = Some(2);
    let events = converse(&mut shell);
    assert!(
        events.contains(&Event::Retrying("a chunk did not arrive whole")),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&Event::Started));
    assert_eq!(installed(&shell), Some(&image().binary));
}

#[test]
fn an_interrupted_upload_is_finished_off_and_never_run() {
    // An earlier run stopped in the middle of a chunk: `head` still reads.
    let mut shell = FakeShell::new(TOOLS);
    shell.reading = Some((5000, "c.00003".into(), "SFS_old_9".into()));
    shell.files.insert("c.00003".into(), vec![1; 10]);
    let events = converse(&mut shell);
    assert_eq!(events.last(), Some(&Event::Started), "{events:?}");
    assert_eq!(installed(&shell), Some(&image().binary));
}

#[test]
fn without_gzip_or_head_it_sends_raw_through_dd() {
    let mut shell = FakeShell::new("dd md5sum tty");
    let events = converse(&mut shell);
    assert_eq!(events.last(), Some(&Event::Started), "{events:?}");
    assert!(shell.typed.iter().any(|c| c.contains("dd bs=1 count=")));
    assert!(!shell.typed.iter().any(|c| c.contains("gzip -dc")));
    assert_eq!(installed(&shell), Some(&image().binary));
}

#[test]
fn busybox_applets_are_called_through_busybox() {
    let mut shell = FakeShell::new("busybox-head busybox-gzip busybox-sha256sum busybox-tty");
    let events = converse(&mut shell);
    assert!(shell.typed.iter().any(|c| c.contains("busybox head -c")));
    assert!(shell.typed.iter().any(|c| c.contains("busybox gzip -dc")));
    // the fake recognises the commands regardless of the busybox prefix
    assert_eq!(events.last(), Some(&Event::Started), "{events:?}");
}

#[test]
fn a_login_prompt_stops_without_typing_anything_more() {
    let mut shell = FakeShell::new(TOOLS);
    shell.login = true;
    let events = converse(&mut shell);
    assert_eq!(events.last(), Some(&Event::Failed(BootError::LoginPrompt)));
    assert!(shell.typed.is_empty(), "{:?}", shell.typed);
    assert!(BootError::LoginPrompt.to_string().contains("log in"));
}

#[test]
fn a_silent_console_is_undrivable() {
    let mut shell = FakeShell::new(TOOLS);
    shell.dead = true;
    let events = converse(&mut shell);
    assert!(matches!(
        events.last(),
        Some(Event::Failed(BootError::Undrivable { .. }))
    ));
}

#[test]
fn a_shell_that_is_not_posix_is_named_at_once() {
    let mut shell = FakeShell::new(TOOLS);
    shell.not_posix = true;
    let events = converse(&mut shell);
    match events.last() {
        Some(Event::Failed(e @ BootError::Undrivable { heard })) => {
            assert!(heard.contains("Illegal variable name"), "{heard}");
            assert!(e.to_string().contains("type sh"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_terminal_untouched(&shell);
}

#[test]
fn an_unpack_that_fails_there_is_named_not_blamed_on_the_line() {
    let mut shell = FakeShell::new(TOOLS);
    shell.broken_gzip = true;
    let events = converse(&mut shell);
    match events.last() {
        Some(Event::Failed(e @ BootError::UnpackFailed { said })) => {
            assert!(said.contains("applet not found"), "{said}");
            assert!(
                e.to_string().contains("check that cat and gzip work"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Once: the chunks were each verified, so they are not sent again.
    let chunks = shell.typed.iter().filter(|c| c.contains("head -c")).count();
    assert_eq!(
        chunks,
        image().gzip.len().div_ceil(11520 * 3).max(1),
        "{chunks}"
    );
    assert_eq!(installed(&shell), None);
    assert!(shell.started.is_none());
}

#[test]
fn a_far_sfs_that_exits_at_once_is_reported_not_waited_for() {
    let mut shell = FakeShell::new(TOOLS);
    shell.peer_fails = true;
    let events = converse(&mut shell);
    match events.last() {
        Some(Event::Failed(e @ BootError::PeerExited { said })) => {
            assert!(said.contains("exit 2"), "{said}");
            assert!(said.contains("invalid address"), "{said}");
            assert!(
                e.to_string().contains("exited as soon as it started"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!events.contains(&Event::Started));
}

/// On a line that spoils long chunks, chunks get shorter until they arrive
/// whole, and longer again after: the upload completes, intact.
#[test]
fn chunks_shrink_on_a_noisy_line_until_they_arrive() {
    let mut shell = FakeShell::new(TOOLS);
    shell.noisy_over = Some(10_000);
    let events = converse(&mut shell);
    assert_eq!(events.last(), Some(&Event::Started), "{events:?}");
    assert_eq!(installed(&shell), Some(&image().binary));
    let lens: Vec<usize> = shell
        .typed
        .iter()
        .filter_map(|c| c.split("head -c ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    // 3 s of line time first, halved twice to pass; never below the floor.
    assert_eq!(&lens[..3], &[34_560, 17_280, 8_640], "{lens:?}");
    assert!(lens
        .iter()
        .all(|&l| l >= 4096 || l == *lens.last().unwrap()));
    assert!(events.contains(&Event::Retrying("a chunk's checksum differs")));
}

#[test]
fn a_far_sfs_that_never_sends_a_frame_is_given_up_on() {
    let mut shell = FakeShell::new(TOOLS);
    shell.peer_silent = true;
    let events = converse(&mut shell);
    assert_eq!(
        events.last(),
        Some(&Event::Failed(BootError::NoReply(
            "starting sfs: no frames came from it"
        ))),
        "{events:?}"
    );
    assert!(!events.contains(&Event::Started));
}

#[test]
fn a_lost_ready_marker_does_not_leave_head_reading() {
    let mut shell = FakeShell::new(TOOLS);
    shell.mute_ready = Some(1);
    let events = converse(&mut shell);
    assert_eq!(events.last(), Some(&Event::Started), "{events:?}");
    assert_eq!(installed(&shell), Some(&image().binary));
}

#[test]
fn filler_ends_a_head_and_makes_few_prompts() {
    let f = script::filler(2000);
    assert_eq!(f.len(), 2000);
    assert_eq!(f.iter().filter(|&&b| b == b'\n').count(), 4);
    assert_eq!(f.last(), Some(&b'\n'));
    assert!(f.iter().all(|&b| b == b' ' || b == b'\n'));
    assert_eq!(script::filler(0), Vec::<u8>::new());
}

/// A failure once the terminal was made raw puts the console back first:
/// settings restored, no `head` left reading, no chunks left over.
#[test]
fn a_failure_after_setup_puts_the_console_back() {
    let mut shell = FakeShell::new("head gzip tty");
    let events = converse(&mut shell);
    assert_eq!(
        events.last(),
        Some(&Event::Failed(BootError::MissingTool(
            "sha256sum or md5sum"
        )))
    );
    assert!(shell.restored, "{:?}", shell.typed);
    // A chunk that never arrives whole, however short.
    let mut shell = FakeShell::new(TOOLS);
    shell.dead_chunk = Some(1);
    let events = converse(&mut shell);
    assert!(
        matches!(
            events.last(),
            Some(Event::Failed(BootError::Corrupt { .. }))
        ),
        "{events:?}"
    );
    assert!(shell.restored);
    assert!(shell.reading.is_none(), "head still reads");
    assert!(!shell.files.keys().any(|k| k.starts_with("c.")));
}

#[test]
fn a_missing_checksum_tool_is_named() {
    let mut shell = FakeShell::new("head gzip tty");
    let events = converse(&mut shell);
    assert_eq!(
        events.last(),
        Some(&Event::Failed(BootError::MissingTool(
            "sha256sum or md5sum"
        )))
    );
}

#[test]
fn sfs_frames_mean_a_peer_is_running() {
    let t0 = Instant::now();
    let mut b = Bootstrap::new(cfg(), t0);
    let frames = [0x11, 0, 0x22, 0x33, 0, 0x44, 0];
    // Stale bytes heard while waking are not taken for a peer...
    b.handle_input(t0, &frames);
    assert_eq!(b.poll_event(), None);
    b.handle_timeout(t0 + WAKE_LISTEN);
    // ...frames answering our keys are.
    b.handle_input(t0 + WAKE_LISTEN, &frames);
    assert_eq!(b.poll_event(), Some(Event::PeerRunning));
    assert!(b.is_finished());
}

#[test]
fn markers_are_whole_and_the_echoed_command_is_not_one() {
    assert_eq!(find_marker(b"SFS_0000feed_12\n", "SFS_0000feed_1"), None);
    assert_eq!(
        find_marker(b"xSFS_0000feed_1\r\n", "SFS_0000feed_1"),
        Some(1)
    );
    assert_eq!(
        find_marker(b"echo SFS''_0000feed_1\r\n", "SFS_0000feed_1"),
        None
    );
}

/// Stopped at each point of an upload, the console is left as it was found:
/// no `head` still reading, no chunks, nothing installed, settings restored.
#[test]
fn a_stop_mid_upload_puts_the_console_back() {
    type Point = fn(&Bootstrap) -> bool;
    let points: [(&str, Point); 4] = [
        // The chunk command typed, its data not yet: newlines stand in for it.
        ("chunk command typed", |b| {
            matches!(b.phase, Phase::ChunkReady { index: 2, .. })
        }),
        ("chunk data typed", |b| {
            matches!(b.phase, Phase::ChunkSum { index: 1 })
        }),
        ("probing", |b| b.phase == Phase::Setup),
        ("unpacking", |b| b.phase == Phase::Assemble),
    ];
    for (what, point) in points {
        let mut shell = FakeShell::new(TOOLS);
        let events = converse_stopping(&mut shell, point);
        assert_eq!(
            events.last(),
            Some(&Event::Failed(BootError::Stopped(ConsoleLeft::Restored))),
            "{what}: {events:?}"
        );
        assert!(shell.restored, "{what}");
        assert!(shell.reading.is_none(), "{what}: head still reads");
        assert!(shell.started.is_none(), "{what}");
        assert_eq!(installed(&shell), None, "{what}");
        assert!(
            !shell.files.keys().any(|k| k.starts_with("c.") || k == "n"),
            "{what}: {:?}",
            shell.files.keys()
        );
        // The restore is the last thing typed.
        assert!(shell.typed.last().unwrap().contains("stty \"$SFS_TTY\""));
    }
}

#[test]
fn a_stop_before_the_console_changed_types_nothing_more() {
    let mut shell = FakeShell::new(TOOLS);
    let events = converse_stopping(&mut shell, |b| matches!(b.phase, Phase::Hello { .. }));
    assert_eq!(
        events.last(),
        Some(&Event::Failed(BootError::Stopped(ConsoleLeft::Untouched)))
    );
    assert_terminal_untouched(&shell);
}

#[test]
fn a_stop_unanswered_says_so() {
    let mut shell = FakeShell::new(TOOLS);
    let events = converse_stopping(&mut shell, |b| {
        matches!(b.phase, Phase::ChunkSum { index: 0 })
    });
    assert_eq!(
        events.last(),
        Some(&Event::Failed(BootError::Stopped(ConsoleLeft::Restored)))
    );
    // The same stop on a console that went silent ends at the deadline.
    let t0 = Instant::now();
    let mut b = Bootstrap::new(cfg(), t0);
    b.handle_timeout(t0 + WAKE_LISTEN);
    while b.poll_transmit().is_some() {}
    // As if the terminal was set up and then the far side stopped answering.
    b.phase = Phase::Probe;
    b.abort(t0 + WAKE_LISTEN);
    let restore = String::from_utf8(b.poll_transmit().unwrap()).unwrap();
    assert!(restore.contains("stty \"$SFS_TTY\""), "{restore}");
    let deadline = b.poll_timeout().expect("waits for the shell");
    b.handle_timeout(deadline);
    assert_eq!(
        b.poll_event(),
        Some(Event::Failed(BootError::Stopped(ConsoleLeft::Unconfirmed)))
    );
    assert!(BootError::Stopped(ConsoleLeft::Unconfirmed)
        .to_string()
        .contains("stty sane"));
}

#[test]
fn status_follows_the_upload() {
    let mut shell = FakeShell::new(TOOLS);
    let t0 = Instant::now();
    let mut b = Bootstrap::new(cfg(), t0);
    assert_eq!(b.status().step, Step::FindingShell);
    let mut seen = Vec::new();
    let mut now = t0;
    while !b.is_finished() {
        let mut moved = false;
        while let Some(bytes) = b.poll_transmit() {
            now += Duration::from_secs_f64(bytes.len() as f64 / 11520.0);
            let reply = shell.type_in(&bytes);
            b.handle_input(now, &reply);
            let st = b.status();
            if seen.last().map(|s: &Status| (s.step, s.uploaded)) != Some((st.step, st.uploaded)) {
                seen.push(st);
            }
            moved = true;
        }
        while let Some(e) = b.poll_event() {
            if let Event::NeedPeer { .. } = e {
                b.provide_peer(now, image());
                moved = true;
            }
        }
        if !moved {
            let t = b.poll_timeout().expect("a deadline");
            now = now.max(t);
            b.handle_timeout(now);
        }
    }
    let steps: Vec<Step> = seen.iter().map(|s| s.step).collect();
    for want in [
        Step::Probing,
        Step::CheckingCache,
        Step::Uploading,
        Step::Verifying,
        Step::Done,
    ] {
        assert!(steps.contains(&want), "{want:?} in {steps:?}");
    }
    let total = image().gzip.len();
    let uploads: Vec<usize> = seen
        .iter()
        .filter(|s| s.step == Step::Uploading)
        .map(|s| s.uploaded)
        .collect();
    assert!(uploads.windows(2).all(|w| w[0] <= w[1]), "{uploads:?}");
    assert!(uploads.len() >= 3, "{uploads:?}");
    let last = seen.last().unwrap();
    assert_eq!((last.uploaded, last.upload_len), (total, total));
    assert_eq!(last.arch.as_deref(), Some("aarch64"));
}
