//! `PTY`: a new pseudo-terminal. The program on the other side of the bridge
//! talks to its master; the slave (a tty device like `/dev/pts/7`) is published at
//! `link=PATH` for other programs to open, and the link is removed on exit.
//!
//! The slave starts in raw mode (no echo, no line editing) and sfs keeps its own
//! descriptor of it open, so programs may open and close the device at will
//! without the master seeing a hang-up — as with a real serial port.

use super::Conn;
use crate::address::Pty;
use crate::error::{describe_io, Error, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A pseudo-terminal owned by sfs.
pub struct PtyDevice {
    master: Arc<AsyncFd<File>>,
    _slave: OwnedFd,
    slave_path: PathBuf,
    link: Option<PathBuf>,
}

impl PtyDevice {
    /// Creates the pty, sets the slave raw, and publishes the symlink.
    pub fn create(addr: &Pty) -> Result<Self> {
        let fail = |what: &str, e: nix::Error| {
            Error::Runtime(format!("cannot create pty: {what}: {}", e.desc()))
        };
        let pair = nix::pty::openpty(None, None).map_err(|e| fail("openpty", e))?;
        let mut t = tcgetattr(&pair.slave).map_err(|e| fail("tcgetattr", e))?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t).map_err(|e| fail("tcsetattr", e))?;
        let slave_path = nix::unistd::ttyname(&pair.slave).map_err(|e| fail("ttyname", e))?;
        fcntl(&pair.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| fail("fcntl", e))?;
        // `AsyncFd::new` is deprecated in favour of the unsafe `register`; here the
        // File owns its descriptor and AsyncFd owns the File, so nothing can close
        // the fd behind the reactor's back.
        #[allow(deprecated)]
        let master = AsyncFd::new(File::from(pair.master))
            .map_err(|e| Error::Runtime(format!("cannot create pty: {}", describe_io(&e))))?;
        if let Some(link) = &addr.link {
            publish_link(&slave_path, link)?;
        }
        Ok(PtyDevice {
            master: Arc::new(master),
            _slave: pair.slave,
            slave_path,
            link: addr.link.clone(),
        })
    }

    /// The slave device path (`/dev/pts/N`).
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Reads whatever the slave's program wrote (waits until something is there).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|inner| inner.get_ref().read(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes toward the slave's program, waiting while its input queue is full.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|inner| inner.get_ref().write(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// This pty as a plain byte stream for the bridge.
    pub fn into_conn(self) -> Conn {
        let label = format!("pty {}", self.slave_path.display());
        // The device (slave fd, link) lives as long as either half.
        let keep = Arc::new(self);
        Conn::new(Holder { dev: keep.clone() }, Holder { dev: keep }, label)
    }
}

impl Drop for PtyDevice {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            let _ = std::fs::remove_file(link);
        }
    }
}

fn publish_link(target: &Path, link: &Path) -> Result<()> {
    // Replace a stale symlink, but never a regular file or directory.
    if let Ok(md) = std::fs::symlink_metadata(link) {
        if md.file_type().is_symlink() {
            let _ = std::fs::remove_file(link);
        } else {
            return Err(Error::Runtime(format!(
                "cannot create link {}: a file is in the way",
                link.display()
            )));
        }
    }
    std::os::unix::fs::symlink(target, link).map_err(|e| {
        Error::Runtime(format!(
            "cannot create link {}: {}",
            link.display(),
            describe_io(&e)
        ))
    })
}

struct Holder {
    dev: Arc<PtyDevice>,
}

impl AsyncRead for Holder {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.dev.master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|inner| inner.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: no slave open; cannot happen while we hold the slave.
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Holder {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.dev.master.poll_write_ready(cx))?;
            match guard.try_io(|inner| inner.get_ref().write(buf)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A tty has no half-close; EOF from the other side is simply not forwarded.
        Poll::Ready(Ok(()))
    }
}
