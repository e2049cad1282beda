//! `bootstrap=`: putting sfs on the far end of a serial console and starting
//! it there, as a sans-IO conversation with the far shell. Console bytes and
//! time go in ([`Bootstrap::handle_input`], [`Bootstrap::handle_timeout`]);
//! bytes to type ([`Bootstrap::poll_transmit`]), the next deadline
//! ([`Bootstrap::poll_timeout`]) and events ([`Bootstrap::poll_event`]) come
//! out. No clock, no I/O: the driver (`endpoint::serial_mux::bootstrap`) runs
//! it over the device, and the tests over scripted transcripts.
//!
//! The conversation, one step at a time, each acknowledged by a marker the
//! shell prints (see `script`):
//! 1. wake: Ctrl-U and Enter, then a moment to read what answers (a `login:`
//!    or `Password:` prompt stops here: sfs never logs in);
//! 2. hello: `echo` a marker, its number in `$((…))` so that only a POSIX
//!    shell prints it; no answer means a shell we cannot drive, or an
//!    earlier run cut off mid-upload with `head` still reading: one chunk of
//!    filler ends that, and hello is tried once more;
//! 3. setup: save `stty -g` (once) and make the terminal raw, without echo and
//!    without flow control;
//! 4. probe: the tools there are and `uname -m`; the driver then provides the
//!    sfs binary for that architecture ([`Bootstrap::provide_peer`]);
//! 5. prepare: the directory, and the checksum of a cached copy if any;
//! 6. upload (unless cached): gzip-compressed when the far side has gzip, in
//!    chunks, each read by `head -c` (or `dd`) into its own file and checked;
//!    a chunk whose checksum differs is sent again, one that never completes
//!    is ended with filler and sent again; then the chunks are joined,
//!    unpacked and the whole checked before it is moved to its final name
//!    (named after its checksum): a corrupt copy is never run;
//! 7. run: the far sfs on the console's own terminal, once the shell has
//!    taken the whole command line (a marker printed first); started once
//!    its first frame (a NUL byte) arrives, failed if the shell instead
//!    reports that it exited; when it exits the shell restores the saved
//!    settings.
//!
//! Stopped part way ([`Bootstrap::abort`], on Ctrl-C or SIGTERM), or failed
//! once the terminal was made raw, it leaves the console as it found it: a
//! `head` still reading gets its bytes, the partial upload is removed and
//! the saved settings come back.

mod error;
mod script;
#[cfg(test)]
mod tests;

pub use error::{BootError, ConsoleLeft};

use script::{Reader, SumKind};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the conversation needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Per-run random number in the markers, so that output left over from an
    /// earlier run is never taken for an answer.
    pub nonce: u32,
    /// Bytes per second of the line (deadlines of the upload).
    pub byte_rate: u32,
    /// `peer-dir=`: where the far copy lives; default `~/.cache/sfs`, else
    /// `/tmp/sfs`.
    pub peer_dir: Option<String>,
    /// The far SERIAL-MUX's options, from the first comma: `,b115200,...`.
    pub far_mux_options: String,
    /// The far side's address (`bootstrap=`), as the user wrote it.
    pub far_address: String,
}

/// The sfs to upload, for the architecture the far side reported.
#[derive(Debug, Clone)]
pub struct PeerImage {
    /// The static executable.
    pub binary: Vec<u8>,
    /// The same, gzip-compressed (sent when the far side has gzip).
    pub gzip: Vec<u8>,
}

/// What the driver and the user are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The far shell answered; its machine and tools.
    Probed {
        /// `uname -m`.
        arch: String,
        /// The tools found, as the probe listed them.
        tools: String,
    },
    /// Provide the sfs for `arch` with [`Bootstrap::provide_peer`].
    NeedPeer {
        /// `uname -m` of the far side.
        arch: String,
    },
    /// The far side has this very copy already: no upload.
    Cached,
    /// Upload progress: bytes of the (compressed) stream verified so far.
    Progress {
        /// Verified bytes.
        done: usize,
        /// Bytes in all.
        total: usize,
    },
    /// Something went wrong and is being retried.
    Retrying(&'static str),
    /// The far sfs was started: the line belongs to the link from now on.
    Started,
    /// The far side already runs sfs (its frames arrived instead of a shell).
    PeerRunning,
    /// The conversation failed.
    Failed(BootError),
}

/// The step the conversation is at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Typed Ctrl-U and Enter; listening for a moment.
    Wake,
    /// Typed an `echo` of a marker; after a flush, with what the first
    /// try heard (the likelier explanation when this one fails too).
    Hello {
        first_answer: Option<String>,
    },
    /// Typed newlines to end a `head` left by an interrupted run.
    Flush {
        first_answer: String,
    },
    Setup,
    Probe,
    /// Waiting for [`Bootstrap::provide_peer`].
    AwaitPeer,
    Prepare,
    /// Chunk command typed, waiting for its ready marker; `end` ends its
    /// checksum.
    ChunkReady {
        index: usize,
        end: String,
    },
    /// Chunk sent, waiting for its checksum.
    ChunkSum {
        index: usize,
    },
    /// After a lost chunk: newlines typed, then a marker to find the shell.
    Resync {
        index: usize,
    },
    Assemble,
    Install,
    /// The far sfs's command typed, waiting for the shell to take it.
    Run,
    /// The shell took it: waiting for the far sfs's first frames, or for the
    /// report the shell prints if it exited at once.
    Launch,
    /// The restore command typed (after a stop or a failure), waiting for
    /// its marker; then `then` is reported (a stop when `None`).
    Restoring {
        then: Option<BootError>,
    },
    Done,
}

/// Where the conversation is, as the status view names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Waking the console and asking a shell to answer.
    FindingShell,
    /// Making the terminal raw, listing tools and the architecture.
    Probing,
    /// Looking for a cached copy on the far side.
    CheckingCache,
    /// Sending chunks.
    Uploading,
    /// Unpacking, checking and installing the whole copy.
    Verifying,
    /// The far sfs's command typed.
    Starting,
    /// Stopped: putting the console back.
    Restoring,
    /// The conversation is over.
    Done,
}

impl Step {
    /// The name `--stats-json` and the status view use.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::FindingShell => "finding_shell",
            Step::Probing => "probing",
            Step::CheckingCache => "checking_cache",
            Step::Uploading => "uploading",
            Step::Verifying => "verifying",
            Step::Starting => "starting",
            Step::Restoring => "restoring",
            Step::Done => "done",
        }
    }
}

/// The conversation at one moment, for `--status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The step.
    pub step: Step,
    /// `uname -m` of the far side, once probed.
    pub arch: Option<String>,
    /// Bytes of the upload stream the far side has verified.
    pub uploaded: usize,
    /// Bytes in the upload stream (compressed when the far side has gzip);
    /// 0 until the image is known.
    pub upload_len: usize,
}

/// What the current step waits for.
#[derive(Debug, Clone)]
struct Wait {
    /// Text before this marker is not part of the reply.
    begin: Option<String>,
    /// The reply is complete at this marker; `None`: just wait for the deadline.
    end: Option<String>,
    deadline: Instant,
}

/// The far side's tools, as the bootstrap will call them.
#[derive(Debug, Clone)]
struct Tools {
    reader: Reader,
    sum: (String, SumKind),
    gunzip: Option<String>,
}

/// The upload in progress.
#[derive(Debug, Clone)]
struct Upload {
    stream: Vec<u8>,
    /// Bytes per chunk now: 3 s of line time (16–256 KiB), halved after a
    /// chunk that went wrong (down to [`MIN_CHUNK`]) so that a noisy line
    /// still gets chunks through whole, doubled back after one that arrived.
    chunk: usize,
    /// Checksum of the executable, as the far tool prints it.
    digest: String,
    /// Retries of the current chunk at [`MIN_CHUNK`].
    chunk_tries: u32,
    /// Bytes of `stream` whose chunks the far side verified.
    verified: usize,
}

/// Bytes of console output kept while waiting for a marker.
const SEEN_MAX: usize = 64 * 1024;
/// How long wake listens for a prompt.
const WAKE_LISTEN: Duration = Duration::from_millis(1200);
/// Answer time of a quick command (plus its typing time).
const QUICK: Duration = Duration::from_secs(5);
/// Answer time of a command that reads or unpacks the whole binary.
const SLOW: Duration = Duration::from_secs(60);
/// Tries of a chunk of the smallest size before giving up.
const TRIES: u32 = 3;
/// The smallest chunk a noisy line brings the upload down to.
const MIN_CHUNK: usize = 4 << 10;
/// How long the far sfs has to send its first frame once started.
const LAUNCH: Duration = Duration::from_secs(15);

/// The bootstrap conversation.
#[derive(Debug)]
pub struct Bootstrap {
    cfg: Config,
    phase: Phase,
    seq: u32,
    wait: Option<Wait>,
    seen: Vec<u8>,
    nuls: usize,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    tools: Option<Tools>,
    arch: Option<String>,
    upload: Option<Upload>,
    /// The markers around the shell's report if the far sfs exits at once.
    exit_markers: Option<(String, String)>,
    /// The time of the latest call: when a failure's restore is typed.
    now: Instant,
}

impl Bootstrap {
    /// Starts the conversation: the first keys are ready to be typed.
    pub fn new(cfg: Config, now: Instant) -> Self {
        let mut b = Bootstrap {
            cfg,
            phase: Phase::Wake,
            seq: 0,
            wait: None,
            seen: Vec::new(),
            nuls: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            tools: None,
            arch: None,
            upload: None,
            exit_markers: None,
            now,
        };
        b.type_text("\x15\n");
        b.wait = Some(Wait {
            begin: None,
            end: None,
            deadline: now + WAKE_LISTEN,
        });
        b
    }

    /// Console bytes arrived.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.is_finished() {
            return;
        }
        self.now = now;
        if self.phase == Phase::Launch && bytes.contains(&0) {
            // A shell never prints NUL: the far sfs is sending frames.
            self.finish(Event::Started);
            return;
        }
        self.seen.extend_from_slice(bytes);
        if self.seen.len() > SEEN_MAX {
            let cut = self.seen.len() - SEEN_MAX / 2;
            self.seen.drain(..cut);
        }
        if matches!(
            self.phase,
            Phase::Wake | Phase::Hello { .. } | Phase::Flush { .. }
        ) {
            // A shell never prints NUL; sfs frames end with one. Not counted
            // while waking: what arrives then may be stale, sent before we came.
            if self.phase != Phase::Wake {
                self.nuls += bytes.iter().filter(|&&b| b == 0).count();
            }
            if self.nuls >= 3 {
                self.finish(Event::PeerRunning);
                return;
            }
            if let Some(e) = self.login_prompt() {
                self.fail(e);
                return;
            }
        }
        let Some(end) = self.wait.as_ref().and_then(|w| w.end.clone()) else {
            return;
        };
        let Some(at) = find_marker(&self.seen, &end) else {
            return;
        };
        let begin = self.wait.as_ref().and_then(|w| w.begin.clone());
        let from = begin
            .and_then(|b| find_marker(&self.seen[..at], &b).map(|p| p + b.len()))
            .unwrap_or(0);
        let reply = String::from_utf8_lossy(&self.seen[from..at]).into_owned();
        self.seen.drain(..at + end.len());
        self.wait = None;
        self.on_reply(now, &reply);
    }

    /// Time passed; call at [`Bootstrap::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.wait.as_ref().is_some_and(|w| w.deadline <= now) {
            self.wait = None;
            self.on_timeout(now);
        }
    }

    /// The sfs for the architecture asked for in [`Event::NeedPeer`].
    pub fn provide_peer(&mut self, now: Instant, image: PeerImage) {
        self.now = now;
        let Some(tools) = self.tools.clone() else {
            return;
        };
        if self.phase != Phase::AwaitPeer {
            return;
        }
        let digest = tools.sum.1.digest(&image.binary);
        let stream = if tools.gunzip.is_some() {
            image.gzip
        } else {
            image.binary
        };
        let chunk = chunk_len(self.cfg.byte_rate);
        let name = format!("sfs-{}", &digest[..16]);
        self.upload = Some(Upload {
            stream,
            chunk,
            digest,
            chunk_tries: 0,
            verified: 0,
        });
        let (b, e) = (self.marker(), self.marker());
        let cmd = script::prepare(
            self.cfg.peer_dir.as_deref(),
            &name,
            &tools.sum.0,
            &b.command,
            &e.command,
        );
        self.command(now, Phase::Prepare, &cmd, Some(b.printed), e.printed, SLOW);
    }

    /// The next bytes to type on the console.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// When [`Bootstrap::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wait.as_ref().map(|w| w.deadline)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the conversation is over (started, found a peer, or failed).
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Where the conversation is and how far the upload got.
    pub fn status(&self) -> Status {
        let step = match self.phase {
            Phase::Wake | Phase::Hello { .. } | Phase::Flush { .. } => Step::FindingShell,
            Phase::Setup | Phase::Probe => Step::Probing,
            Phase::AwaitPeer | Phase::Prepare => Step::CheckingCache,
            Phase::ChunkReady { .. } | Phase::ChunkSum { .. } | Phase::Resync { .. } => {
                Step::Uploading
            }
            Phase::Assemble | Phase::Install => Step::Verifying,
            Phase::Run | Phase::Launch => Step::Starting,
            Phase::Restoring { .. } => Step::Restoring,
            Phase::Done => Step::Done,
        };
        let (uploaded, upload_len) = self
            .upload
            .as_ref()
            .map_or((0, 0), |u| (u.verified, u.stream.len()));
        Status {
            step,
            arch: self.arch.clone(),
            uploaded,
            upload_len,
        }
    }

    /// sfs is stopping: put the console back as it was found. What the shell
    /// still reads is completed first (a chunk command whose data was not
    /// typed yet gets filler in its place), then the partial upload is
    /// removed and the saved settings restored. Ends with
    /// [`BootError::Stopped`] once the shell confirms, or at the deadline.
    pub fn abort(&mut self, now: Instant) {
        self.now = now;
        match &self.phase {
            Phase::Done | Phase::Restoring { .. } => {}
            // Nothing changed yet: the terminal is as it was.
            Phase::Wake | Phase::Hello { .. } | Phase::Flush { .. } => {
                self.finish(Event::Failed(BootError::Stopped(ConsoleLeft::Untouched)))
            }
            // The shell took the line: sfs runs there by now or soon.
            Phase::Run | Phase::Launch => {
                self.finish(Event::Failed(BootError::Stopped(ConsoleLeft::PeerStarting)))
            }
            // `head` reads the chunk's length before the shell reads again.
            Phase::ChunkReady { .. } => self.restore(now, None, true),
            Phase::Setup
            | Phase::Probe
            | Phase::AwaitPeer
            | Phase::Prepare
            | Phase::ChunkSum { .. }
            | Phase::Resync { .. }
            | Phase::Assemble
            | Phase::Install => self.restore(now, None, false),
        }
    }

    /// Types the restore (after `filler` bytes to end a `head` that may
    /// still read), then reports `then`.
    fn restore(&mut self, now: Instant, then: Option<BootError>, filler: bool) {
        let mut patience = QUICK;
        if filler {
            let n = self.chunk_len();
            self.out.push_back(script::filler(n));
            patience += self.line_time(n) * 2;
        }
        let ok = self.marker();
        let cmd = script::restore(&ok.command);
        self.command(
            now,
            Phase::Restoring { then },
            &cmd,
            None,
            ok.printed,
            patience,
        );
    }

    fn on_reply(&mut self, now: Instant, reply: &str) {
        match self.phase.clone() {
            Phase::Wake | Phase::Flush { .. } => {}
            Phase::Hello { .. } => {
                let ok = self.marker();
                let cmd = script::setup(&ok.command);
                self.command(now, Phase::Setup, &cmd, None, ok.printed, QUICK);
            }
            Phase::Setup => {
                let (b, e) = (self.marker(), self.marker());
                let cmd = script::probe(&b.command, &e.command);
                self.command(now, Phase::Probe, &cmd, Some(b.printed), e.printed, QUICK);
            }
            Phase::Probe => self.on_probe(reply),
            Phase::AwaitPeer | Phase::Done => {}
            Phase::Prepare => {
                let up = self.upload.as_ref().expect("upload set in prepare");
                let kind = self.tools.as_ref().expect("tools known").sum.1;
                if script::find_digest(reply, kind) == Some(up.digest.as_str()) {
                    self.events.push_back(Event::Cached);
                    self.run(now);
                } else {
                    self.send_chunk(now, 0);
                }
            }
            Phase::ChunkReady { index, end } => {
                let up = self.upload.as_ref().expect("uploading");
                let data = up.stream[chunk_range(up)].to_vec();
                let time = self.line_time(data.len()) * 2 + Duration::from_secs(10);
                self.out.push_back(data);
                self.phase = Phase::ChunkSum { index };
                self.wait = Some(Wait {
                    begin: None,
                    end: Some(end),
                    deadline: now + time,
                });
            }
            Phase::ChunkSum { index } => self.on_chunk_sum(now, index, reply),
            Phase::Resync { index } => self.send_chunk(now, index),
            Phase::Assemble => {
                let up = self.upload.as_ref().expect("uploading");
                let kind = self.tools.as_ref().expect("tools known").sum.1;
                if script::find_digest(reply, kind) == Some(up.digest.as_str()) {
                    let ok = self.marker();
                    let cmd = script::install(&ok.command);
                    self.command(now, Phase::Install, &cmd, None, ok.printed, QUICK);
                } else {
                    // Each chunk was verified where it lies: sending them
                    // again would not change what unpacking them does.
                    let said = shell_said(reply.as_bytes());
                    self.fail(BootError::UnpackFailed { said });
                }
            }
            Phase::Install => self.run(now),
            Phase::Run => {
                // Frames (NUL bytes) mean it runs; the shell's report that
                // it exited means it did not.
                let (b, e) = self.exit_markers.clone().expect("set with the run command");
                self.phase = Phase::Launch;
                self.wait = Some(Wait {
                    begin: Some(b),
                    end: Some(e),
                    deadline: now + LAUNCH,
                });
                // What arrived with the marker may hold the first frame.
                let rest = std::mem::take(&mut self.seen);
                self.handle_input(now, &rest);
            }
            Phase::Launch => {
                let said = shell_said(reply.as_bytes());
                self.fail(BootError::PeerExited { said });
            }
            Phase::Restoring { then } => self.finish(Event::Failed(
                then.unwrap_or(BootError::Stopped(ConsoleLeft::Restored)),
            )),
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        match self.phase.clone() {
            Phase::Wake => self.hello(now, None),
            Phase::Hello { first_answer: None } => {
                // Perhaps a `head` of an interrupted run is still reading:
                // feed it its bytes (newlines are harmless to a shell).
                let n = self.chunk_len();
                self.out.push_back(script::filler(n));
                self.phase = Phase::Flush {
                    first_answer: heard_text(&self.seen),
                };
                self.wait = Some(Wait {
                    begin: None,
                    end: None,
                    deadline: now + self.line_time(n) * 2 + Duration::from_secs(1),
                });
            }
            Phase::Flush { first_answer } => self.hello(now, Some(first_answer)),
            Phase::Hello {
                first_answer: Some(first),
            } => {
                // A shell that answered the first try (with an error) says
                // more than the prompts the flush's newlines brought.
                let heard = if first.is_empty() {
                    heard_text(&self.seen)
                } else {
                    first
                };
                self.fail(BootError::Undrivable { heard });
            }
            Phase::Setup => self.fail(BootError::SetupRefused),
            Phase::Probe => self.fail(BootError::NoReply("listing its tools")),
            Phase::Prepare => self.fail(BootError::NoReply("checking for a cached copy")),
            // The ready marker may have been printed and lost on its way
            // back: `head` then reads, and would take the resync's echo.
            Phase::ChunkReady { index, .. } => {
                let seen = self.seen.clone();
                if !self.retry_chunk(&seen) {
                    return;
                }
                self.resync(now, index, true);
            }
            Phase::Resync { index } => {
                let seen = self.seen.clone();
                if !self.retry_chunk(&seen) {
                    return;
                }
                self.resync(now, index, false);
            }
            Phase::ChunkSum { index } => {
                let seen = self.seen.clone();
                if !self.retry_chunk(&seen) {
                    return;
                }
                self.events
                    .push_back(Event::Retrying("a chunk did not arrive whole"));
                self.resync(now, index, true);
            }
            Phase::Assemble => self.fail(BootError::NoReply("unpacking the upload")),
            Phase::Install => self.fail(BootError::NoReply("installing the upload")),
            Phase::Run => self.fail(BootError::NoReply("starting sfs")),
            Phase::Launch => self.fail(BootError::NoReply("starting sfs: no frames came from it")),
            Phase::Restoring { then } => self.finish(Event::Failed(
                then.unwrap_or(BootError::Stopped(ConsoleLeft::Unconfirmed)),
            )),
            Phase::AwaitPeer | Phase::Done => {}
        }
    }

    fn on_probe(&mut self, reply: &str) {
        let mut lines = reply
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty());
        let tools_line = lines.next().unwrap_or("").to_string();
        let arch = lines.next().unwrap_or("").to_string();
        let found: Vec<&str> = tools_line.split_whitespace().collect();
        // The tool's name as it is called: `head` or `busybox head`.
        let call = |t: &str| -> Option<String> {
            if found.contains(&t) {
                Some(t.to_string())
            } else if found.contains(&format!("busybox-{t}").as_str()) {
                Some(format!("busybox {t}"))
            } else {
                None
            }
        };
        self.arch = Some(arch.clone()).filter(|a| !a.is_empty());
        self.events.push_back(Event::Probed {
            arch: arch.clone(),
            tools: tools_line.clone(),
        });
        let reader = match (call("head"), call("dd")) {
            (Some(h), _) => Reader::Head(h),
            (None, Some(d)) => Reader::Dd(d),
            (None, None) => return self.fail(BootError::MissingTool("head or dd")),
        };
        let sum = match (call("sha256sum"), call("md5sum")) {
            (Some(s), _) => (s, SumKind::Sha256),
            (None, Some(m)) => (m, SumKind::Md5),
            (None, None) => return self.fail(BootError::MissingTool("sha256sum or md5sum")),
        };
        if call("tty").is_none() {
            return self.fail(BootError::MissingTool("tty"));
        }
        if arch.is_empty() {
            return self.fail(BootError::MissingTool("uname"));
        }
        self.tools = Some(Tools {
            reader,
            sum,
            gunzip: call("gzip"),
        });
        self.phase = Phase::AwaitPeer;
        self.events.push_back(Event::NeedPeer { arch });
    }

    fn on_chunk_sum(&mut self, now: Instant, index: usize, reply: &str) {
        let tools = self.tools.as_ref().expect("tools known");
        let kind = tools.sum.1;
        let max_chunk = chunk_len(self.cfg.byte_rate);
        let up = self.upload.as_mut().expect("uploading");
        let range = chunk_range(up);
        let want = kind.digest(&up.stream[range.clone()]);
        if script::find_digest(reply, kind) == Some(want.as_str()) {
            up.chunk_tries = 0;
            up.verified = range.end;
            up.chunk = (up.chunk * 2).min(max_chunk);
            let total = up.stream.len();
            self.events.push_back(Event::Progress {
                done: range.end,
                total,
            });
            if range.end >= total {
                let (b, e) = (self.marker(), self.marker());
                let t = self.tools.as_ref().expect("tools known");
                let cmd = script::assemble(t.gunzip.as_deref(), &t.sum.0, &b.command, &e.command);
                self.command(now, Phase::Assemble, &cmd, Some(b.printed), e.printed, SLOW);
            } else {
                self.send_chunk(now, index + 1);
            }
        } else if self.retry_chunk(reply.as_bytes()) {
            self.events
                .push_back(Event::Retrying("a chunk's checksum differs"));
            self.send_chunk(now, index);
        }
    }

    /// Counts a retry of the current chunk; false (and failed, with the
    /// shell's last words in `said`) when used up.
    fn retry_chunk(&mut self, said: &[u8]) -> bool {
        let up = self.upload.as_mut().expect("uploading");
        // Shorter chunks first; the tries count once they are as short as
        // they get.
        if up.chunk <= MIN_CHUNK {
            up.chunk_tries += 1;
        }
        up.chunk = (up.chunk / 2).max(MIN_CHUNK);
        if up.chunk_tries >= TRIES {
            let said = shell_said(said);
            self.fail(BootError::Corrupt { said });
            return false;
        }
        true
    }

    /// Finds the shell again after a chunk went wrong: newlines to end a
    /// `head` still reading (when `flush`), then a marker.
    fn resync(&mut self, now: Instant, index: usize, flush: bool) {
        let mut extra = Duration::ZERO;
        if flush {
            let n = self.chunk_len();
            self.out.push_back(script::filler(n));
            extra = self.line_time(n) * 2;
        }
        let ok = self.marker();
        let cmd = format!("{}\n", ok.command);
        self.command(
            now,
            Phase::Resync { index },
            &cmd,
            None,
            ok.printed,
            QUICK + extra,
        );
    }

    fn send_chunk(&mut self, now: Instant, index: usize) {
        let up = self.upload.as_ref().expect("uploading");
        let len = chunk_range(up).len();
        let t = self.tools.as_ref().expect("tools known");
        let (reader, sum) = (t.reader.clone(), t.sum.0.clone());
        let ready = self.marker();
        let end = self.marker();
        let cmd = script::chunk(index, &reader, len, &sum, &ready.command, &end.command);
        let phase = Phase::ChunkReady {
            index,
            end: end.printed,
        };
        self.command(now, phase, &cmd, None, ready.printed, QUICK);
    }

    fn hello(&mut self, now: Instant, first_answer: Option<String>) {
        // Only what answers this command counts.
        self.seen.clear();
        let ok = self.marker();
        // Only a POSIX shell expands `$((K))`: csh or fish fail here, with
        // a clear error, rather than at the next command with a wrong one.
        let cmd = format!("{}\n", script::hello(self.cfg.nonce, self.seq));
        self.command(
            now,
            Phase::Hello { first_answer },
            &cmd,
            None,
            ok.printed,
            QUICK,
        );
    }

    fn run(&mut self, now: Instant) {
        let (ok, exit_b, exit_e) = (self.marker(), self.marker(), self.marker());
        let cmd = script::run(
            &self.cfg.far_mux_options,
            &self.cfg.far_address,
            &ok.command,
            (&exit_b.command, &exit_e.command),
        );
        self.exit_markers = Some((exit_b.printed, exit_e.printed));
        self.command(now, Phase::Run, &cmd, None, ok.printed, QUICK);
    }

    /// Types `text` and waits up to `patience` (plus its typing time) for `end`.
    fn command(
        &mut self,
        now: Instant,
        phase: Phase,
        text: &str,
        begin: Option<String>,
        end: String,
        patience: Duration,
    ) {
        self.type_text(text);
        self.phase = phase;
        self.wait = Some(Wait {
            begin,
            end: Some(end),
            deadline: now + self.line_time(text.len()) + patience,
        });
    }

    fn type_text(&mut self, text: &str) {
        self.out.push_back(text.as_bytes().to_vec());
    }

    /// A fresh marker.
    fn marker(&mut self) -> Marker {
        self.seq += 1;
        Marker {
            printed: script::marker(self.cfg.nonce, self.seq),
            command: script::echo_marker(self.cfg.nonce, self.seq),
        }
    }

    fn chunk_len(&self) -> usize {
        chunk_len(self.cfg.byte_rate)
    }

    fn line_time(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / f64::from(self.cfg.byte_rate.max(1)))
    }

    fn login_prompt(&self) -> Option<BootError> {
        let tail = &self.seen[self.seen.len().saturating_sub(40)..];
        let text = String::from_utf8_lossy(tail).to_ascii_lowercase();
        let text = text.trim_end();
        ["login:", "password:", "username:"]
            .iter()
            .any(|p| text.ends_with(p))
            .then_some(BootError::LoginPrompt)
    }

    /// Ends with `e`; once the terminal may be raw (setup typed), after
    /// putting the console back as [`Bootstrap::abort`] does.
    fn fail(&mut self, e: BootError) {
        let filler = match self.phase {
            Phase::ChunkReady { .. } | Phase::ChunkSum { .. } | Phase::Resync { .. } => true,
            Phase::Setup
            | Phase::Probe
            | Phase::AwaitPeer
            | Phase::Prepare
            | Phase::Assemble
            | Phase::Install => false,
            Phase::Wake
            | Phase::Hello { .. }
            | Phase::Flush { .. }
            | Phase::Run
            | Phase::Launch
            | Phase::Restoring { .. }
            | Phase::Done => return self.finish(Event::Failed(e)),
        };
        self.restore(self.now, Some(e), filler);
    }

    fn finish(&mut self, e: Event) {
        self.events.push_back(e);
        self.phase = Phase::Done;
        self.wait = None;
    }
}

/// A marker as the shell prints it, and the command that prints it.
struct Marker {
    printed: String,
    command: String,
}

/// The largest chunk: 3 s of line time, 16–256 KiB.
fn chunk_len(byte_rate: u32) -> usize {
    (byte_rate as usize * 3).clamp(16 << 10, 256 << 10)
}

/// The bytes of the chunk being sent: the next ones after those verified
/// (chunks go one at a time, each until it arrives).
fn chunk_range(up: &Upload) -> std::ops::Range<usize> {
    let start = up.verified.min(up.stream.len());
    start..(start + up.chunk).min(up.stream.len())
}

/// Where `marker` is printed in `seen`: followed by a line end, so that
/// marker 1 is not found inside marker 12.
fn find_marker(seen: &[u8], marker: &str) -> Option<usize> {
    let m = marker.as_bytes();
    seen.windows(m.len() + 1)
        .position(|w| w.starts_with(m) && matches!(w[m.len()], b'\r' | b'\n'))
}

/// What the shell printed besides checksums (its complaints), for an error
/// message.
fn shell_said(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let words: Vec<&str> = text
        .lines()
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            !(first.len() >= 32 && first.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .collect();
    heard_text(words.join("\n").as_bytes())
}

/// The last line or so heard, printable only, for an error message.
fn heard_text(seen: &[u8]) -> String {
    let tail = &seen[seen.len().saturating_sub(60)..];
    let s: String = String::from_utf8_lossy(tail)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
