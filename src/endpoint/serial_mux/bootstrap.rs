//! `bootstrap=`: runs the sans-IO [`Bootstrap`] conversation over the freshly
//! opened device before the station takes it, finds the sfs binary for the
//! far architecture, and reports its progress: a line on stderr, and a
//! [`Booting`] entry in the hub that `--status`, `--stats-json` and SIGUSR1
//! show until the link exists. Told to stop part way, it lets the machine
//! put the console back before it returns.
//!
//! Where the far sfs comes from, for `uname -m` ARCH (x86_64, aarch64, armv7,
//! armv6), first found wins:
//! 1. `peer-binary=PATH`;
//! 2. `$SFS_PEER_DIR/sfs-ARCH-linux`;
//! 3. `DIR/../lib/sfs/sfs-ARCH-linux`, DIR being where the running sfs is
//!    (`/usr/lib/sfs/` for a packaged `/usr/bin/sfs`);
//! 4. `/usr/lib/sfs/sfs-ARCH-linux`;
//! 5. the running sfs itself, when it is built for ARCH and statically linked.

use crate::address::SerialMux;
use crate::bootstrap::{Bootstrap, Config, Event, PeerImage, Status, Step};
use crate::error::{Error, Result};
use crate::stats::{BootstrapSnapshot, LinkSnapshot};
use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::info;

/// The service a bootstrapping sfs opens as it stops: the far sfs
/// (`exit-with-peer`) exits at once instead of `dead-after` later. The far
/// side offers no such service, so the open is refused: an sfs without
/// `exit-with-peer`, or an older one, is not affected.
pub(super) const EXIT_SERVICE: &str = "sfs-bootstrap-exit";

/// How long a stopping sfs waits for the far side to hear [`EXIT_SERVICE`].
pub(super) const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Bootstraps in progress, by device, for the hub's snapshots.
pub(super) type BootList = Arc<Mutex<BTreeMap<String, Booting>>>;

/// One bootstrap's progress, as `--status` shows it before the link exists.
#[derive(Debug, Clone)]
pub(super) struct Booting {
    baud: u32,
    line_bytes_per_s: u32,
    started: Instant,
    status: Status,
    upload: Option<UploadClock>,
}

/// When the upload began, and its rate at the last verified chunk.
#[derive(Debug, Clone, Copy)]
struct UploadClock {
    started: Instant,
    verified_at: Instant,
    rate: f64,
}

impl Booting {
    fn new(addr: &SerialMux, status: Status, now: Instant) -> Self {
        Booting {
            baud: addr.line.baud,
            line_bytes_per_s: addr.line.byte_rate(),
            started: now,
            status,
            upload: None,
        }
    }

    /// Takes the machine's status; the rate is measured at each verified
    /// chunk, so that it does not sag while the next one is on its way.
    fn update(&mut self, status: Status, now: Instant) {
        if status.step == Step::Uploading && self.upload.is_none() {
            self.upload = Some(UploadClock {
                started: now,
                verified_at: now,
                rate: 0.0,
            });
        }
        if let Some(u) = &mut self.upload {
            if status.uploaded != self.status.uploaded {
                u.verified_at = now;
                let secs = now.duration_since(u.started).as_secs_f64().max(0.001);
                u.rate = status.uploaded as f64 / secs;
            }
        }
        self.status = status;
    }

    /// The figures at `now`.
    pub(super) fn progress(&self, now: Instant) -> BootstrapSnapshot {
        let st = &self.status;
        let (rate, eta) = match &self.upload {
            Some(u) if u.rate > 0.0 => {
                let left = st.upload_len.saturating_sub(st.uploaded) as f64 / u.rate;
                let since = now.duration_since(u.verified_at).as_secs_f64();
                (u.rate, Some((left - since).max(0.0)))
            }
            _ => (0.0, None),
        };
        BootstrapSnapshot {
            step: st.step.as_str(),
            far_arch: st.arch.clone(),
            upload_bytes: st.upload_len as u64,
            uploaded_bytes: st.uploaded as u64,
            upload_bytes_per_s: rate,
            upload_eta_s: eta,
            elapsed_s: now.duration_since(self.started).as_secs_f64(),
        }
    }

    pub(super) fn snapshot(&self, device: &str, now: Instant) -> LinkSnapshot {
        LinkSnapshot::bootstrapping(device, self.baud, self.line_bytes_per_s, self.progress(now))
    }
}

/// A bootstrap's entry in the hub's list, removed when the bootstrap ends.
struct Listed<'a> {
    list: &'a BootList,
    device: &'a str,
}

impl Listed<'_> {
    fn update(&self, status: Status) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = list.get_mut(self.device) {
            b.update(status, Instant::now());
        }
    }

    fn progress(&self) -> Option<BootstrapSnapshot> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.get(self.device).map(|b| b.progress(Instant::now()))
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.remove(self.device);
    }
}

/// Talks the far shell into running sfs; returns once it was started (or
/// found running), the device ready for the station. When `stopping` turns
/// true (a signal) the console is put back and an error returned.
pub(super) async fn bootstrap(
    port: &mut tokio_serial::SerialStream,
    addr: &SerialMux,
    far_address: &str,
    list: &BootList,
    mut stopping: watch::Receiver<bool>,
) -> Result<()> {
    let fail =
        |what: String| Error::Runtime(format!("SERIAL-MUX:{}: bootstrap: {what}", addr.device));
    if addr.secret_file.is_some() {
        return Err(Error::Usage(format!(
            "SERIAL-MUX:{}: bootstrap= cannot take secret-file= (the key would have to be typed \
             on the console); start the far sfs by hand for a keyed link",
            addr.device
        )));
    }
    let cfg = Config {
        nonce: nonce(),
        byte_rate: addr.line.byte_rate(),
        peer_dir: addr.boot.peer_dir.clone(),
        far_mux_options: far_mux_options(addr),
        far_address: far_address.to_string(),
    };
    info!(
        "SERIAL-MUX:{}: bootstrap: looking for a shell on the console",
        addr.device
    );
    // Whatever the device holds from before is not an answer.
    let _ = tokio_serial::SerialPort::clear(port, tokio_serial::ClearBuffer::Input);
    let mut boot = Bootstrap::new(cfg, Instant::now());
    let listed = Listed {
        list,
        device: &addr.device,
    };
    list.lock().unwrap_or_else(|e| e.into_inner()).insert(
        addr.device.clone(),
        Booting::new(addr, boot.status(), Instant::now()),
    );
    let mut progress = ProgressLine::new();
    let mut told = false;
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(bytes) = boot.poll_transmit() {
            AsyncWriteExt::write_all(port, &bytes)
                .await
                .map_err(|e| fail(crate::error::describe_io(&e)))?;
        }
        listed.update(boot.status());
        // An event may queue more to type (provide_peer): back to the top
        // before waiting.
        if let Some(ev) = boot.poll_event() {
            match ev {
                Event::Probed { arch, tools } => info!(
                    "SERIAL-MUX:{}: bootstrap: far side is {arch}, has: {tools}",
                    addr.device
                ),
                Event::NeedPeer { arch } => {
                    let image = peer_image(&arch, addr).map_err(&fail)?;
                    boot.provide_peer(Instant::now(), image);
                }
                Event::Cached => info!(
                    "SERIAL-MUX:{}: bootstrap: the far side has this sfs already",
                    addr.device
                ),
                Event::Progress { .. } => {
                    if let Some(p) = listed.progress() {
                        progress.show(&p);
                    }
                }
                Event::Retrying(why) => {
                    info!("SERIAL-MUX:{}: bootstrap: {why}; again", addr.device)
                }
                Event::Started | Event::PeerRunning => {
                    progress.end();
                    AsyncWriteExt::flush(port)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    info!(
                        "SERIAL-MUX:{}: bootstrap: far sfs {}; starting the link",
                        addr.device,
                        if ev == Event::Started {
                            "started"
                        } else {
                            "already running"
                        }
                    );
                    return Ok(());
                }
                Event::Failed(e) => {
                    progress.end();
                    return Err(fail(e.to_string()));
                }
            }
            continue;
        }
        let wake = boot
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = AsyncReadExt::read(port, &mut buf) => match r {
                Ok(0) => return Err(fail("the device closed".into())),
                Ok(n) => {
                    tracing::trace!("bootstrap: console: {:?}", String::from_utf8_lossy(&buf[..n]));
                    boot.handle_input(Instant::now(), &buf[..n]);
                }
                Err(e) => return Err(fail(crate::error::describe_io(&e))),
            },
            () = tokio::time::sleep_until(wake) => boot.handle_timeout(Instant::now()),
            // Told once: the machine then finishes by itself.
            r = stopping.wait_for(|&s| s), if !told => {
                told = true;
                if r.is_ok() {
                    info!("SERIAL-MUX:{}: bootstrap: stopping; putting the console back", addr.device);
                    boot.abort(Instant::now());
                }
            }
        }
    }
}

/// The far SERIAL-MUX's options: the same line rate and link timing, the same
/// service, and `exit-with-peer`.
fn far_mux_options(addr: &SerialMux) -> String {
    use std::fmt::Write as _;
    let mut s = format!(",b{},exit-with-peer", addr.line.baud);
    if !addr.service.is_empty() {
        let _ = write!(s, ",service={}", addr.service);
    }
    if let Some(k) = addr.keepalive {
        let _ = write!(s, ",keepalive={}", k.as_secs_f64());
    }
    if let Some(d) = addr.dead_after {
        let _ = write!(s, ",dead-after={}", d.as_secs_f64());
    }
    if addr.compress == Some(false) {
        s.push_str(",compress=off");
    }
    s
}

fn nonce() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// `uname -m` as the release names its binaries.
fn release_arch(uname: &str) -> Option<&'static str> {
    Some(match uname {
        "x86_64" | "amd64" => "x86_64",
        "aarch64" | "arm64" => "aarch64",
        "armv7l" | "armv7" | "armv8l" => "armv7",
        "armv6l" | "armv6" => "armv6",
        _ => return None,
    })
}

/// The sfs for `uname`, read and compressed.
fn peer_image(uname: &str, addr: &SerialMux) -> std::result::Result<PeerImage, String> {
    let path = find_peer(uname, addr)?;
    let binary = std::fs::read(&path).map_err(|e| {
        format!(
            "cannot read {}: {}",
            path.display(),
            crate::error::describe_io(&e)
        )
    })?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&binary)
        .map_err(|e| format!("compressing {}: {e}", path.display()))?;
    let gzip = gz
        .finish()
        .map_err(|e| format!("compressing {}: {e}", path.display()))?;
    info!(
        "bootstrap: uploading {} if needed ({} bytes, {} compressed)",
        path.display(),
        binary.len(),
        gzip.len()
    );
    Ok(PeerImage { binary, gzip })
}

/// The search order of this module's documentation.
fn find_peer(uname: &str, addr: &SerialMux) -> std::result::Result<PathBuf, String> {
    if let Some(p) = &addr.boot.peer_binary {
        return Ok(p.clone());
    }
    let Some(arch) = release_arch(uname) else {
        return Err(format!(
            "no sfs is built for the far architecture '{uname}'; build one and give it as peer-binary="
        ));
    };
    let name = format!("sfs-{arch}-linux");
    let mut tried = Vec::new();
    if let Some(d) = std::env::var_os("SFS_PEER_DIR") {
        tried.push(Path::new(&d).join(&name));
    }
    let exe = std::env::current_exe().ok();
    if let Some(dir) = exe.as_ref().and_then(|e| e.parent()) {
        tried.push(dir.join("../lib/sfs").join(&name));
    }
    tried.push(Path::new("/usr/lib/sfs").join(&name));
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    if let Some(exe) = exe {
        if release_arch(std::env::consts::ARCH) == Some(arch) && is_static(&exe) {
            return Ok(exe);
        }
    }
    Err(format!(
        "no sfs for {arch} found (tried {}, and this sfs is not a static {arch} build): \
         give one as peer-binary=PATH",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Whether the ELF file at `path` is statically linked (has no program
/// interpreter). 64- and 32-bit, little-endian.
fn is_static(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    elf_has_no_interpreter(&data).unwrap_or(false)
}

fn elf_has_no_interpreter(d: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if d.get(..4)? != b"\x7fELF" || *d.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(d.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(d.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(d.get(o..o + 8)?.try_into().ok()?));
    let (phoff, phentsize, phnum) = match d.get(4)? {
        2 => (u64_at(0x20)? as usize, u16_at(0x36)?, u16_at(0x38)?),
        1 => (u32_at(0x1c)? as usize, u16_at(0x2a)?, u16_at(0x2c)?),
        _ => return None,
    };
    for i in 0..usize::from(phnum) {
        if u32_at(phoff + i * usize::from(phentsize))? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

/// The upload's progress line on stderr (rewritten in place on a terminal,
/// every 10 % otherwise).
struct ProgressLine {
    shown: u64,
    open: bool,
}

impl ProgressLine {
    fn new() -> Self {
        ProgressLine {
            shown: 0,
            open: false,
        }
    }

    fn show(&mut self, p: &BootstrapSnapshot) {
        // The view shows the same figures; a line would scribble over it.
        if crate::status::view_is_up() {
            return;
        }
        let pct = p.uploaded_bytes * 100 / p.upload_bytes.max(1);
        let line = format!(
            "sfs: uploading sfs ({}) to the far side: {pct:3}% of {} kB, {:.1} kB/s, {:.0} s left",
            p.far_arch.as_deref().unwrap_or("?"),
            p.upload_bytes / 1000,
            p.upload_bytes_per_s / 1000.0,
            p.upload_eta_s.unwrap_or(0.0)
        );
        let mut err = std::io::stderr();
        if err.is_terminal() {
            let _ = write!(err, "\r{line}\x1b[K");
            self.open = true;
        } else if pct >= self.shown + 10 || p.uploaded_bytes == p.upload_bytes {
            self.shown = pct;
            let _ = writeln!(err, "{line}");
        }
    }

    fn end(&mut self) {
        if self.open {
            let _ = writeln!(std::io::stderr());
            self.open = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_binaries_are_told_apart() {
        // The running test binary is dynamically linked on glibc hosts;
        // /bin/sh has an interpreter everywhere this runs.
        assert!(!is_static(Path::new("/bin/sh")));
        assert_eq!(elf_has_no_interpreter(b"not an elf"), None);
        assert_eq!(release_arch("armv7l"), Some("armv7"));
        assert_eq!(release_arch("mips"), None);
    }
}
