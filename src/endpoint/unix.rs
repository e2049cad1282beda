//! Unix-domain socket endpoints: `UNIX-LISTEN` and `UNIX-CONNECT`.

use super::Conn;
use crate::address::{UnixConnect, UnixListen};
use crate::error::{describe_io, Error, Result};
use std::io;
use std::path::PathBuf;

/// A bound Unix listener; removes its socket file when dropped.
pub struct Listener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Binds the socket path (removing a stale file first with `unlink-early`).
    pub fn bind(addr: &UnixListen) -> Result<Self> {
        if addr.unlink_early {
            let _ = std::fs::remove_file(&addr.path);
        }
        let inner = tokio::net::UnixListener::bind(&addr.path).map_err(|e| {
            Error::Runtime(format!(
                "cannot listen on {}: {}",
                addr.path.display(),
                describe_io(&e)
            ))
        })?;
        Ok(Listener {
            inner,
            path: addr.path.clone(),
        })
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Conn> {
        let (s, _) = self.inner.accept().await?;
        let (r, w) = s.into_split();
        Ok(Conn::new(r, w, format!("unix {}", self.path.display())))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Connects to a Unix socket.
pub async fn connect(addr: &UnixConnect) -> io::Result<Conn> {
    let s = tokio::net::UnixStream::connect(&addr.path).await?;
    let (r, w) = s.into_split();
    Ok(Conn::new(r, w, format!("unix {}", addr.path.display())))
}
