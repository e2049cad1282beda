//! `STDIO` / `-`: the process's standard input and output. End of stream
//! closes standard output, so a reader of sfs's output sees end of file even
//! while sfs still waits for the far end to confirm the other direction.

use super::Conn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncWrite, Stdout};

/// Standard input as the reader, standard output as the writer.
pub fn open() -> Conn {
    Conn::new(
        tokio::io::stdin(),
        StdoutWriter(tokio::io::stdout()),
        "stdio",
    )
}

struct StdoutWriter(Stdout);

impl AsyncWrite for StdoutWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.0).poll_flush(cx))?;
        close_stdout();
        Poll::Ready(Ok(()))
    }
}

/// Closes the pipe or file behind standard output (by pointing descriptor 1
/// at /dev/null, so later stray writes stay harmless).
#[cfg(unix)]
fn close_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdout(&null);
    }
}

#[cfg(not(unix))]
fn close_stdout() {}
