//! `EXEC:"command args"`: a child process whose stdin/stdout are the stream.
//!
//! The command is split into words like a shell would (single and double quotes,
//! backslash escapes) and run directly, without a shell. Its stderr is inherited.
//! End of input closes its stdin; the end of its output carries its exit status.
//! On Windows the command line is passed on as written (see [`crate::os`]).

use super::{Conn, ExitStatus, StatusSlot};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::oneshot;
use tracing::debug;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("EXEC command: {what}"))
}

/// Spawns the command. The stream is its stdout and stdin; when its stdout ends,
/// the end of stream waits for the child to exit and carries its exit status
/// ([`Conn::exit_status`]). Abort kills it.
pub fn spawn(command: &str) -> io::Result<Conn> {
    let (mut cmd, program) = crate::os::command(command)?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run {program}: {}", crate::error::describe_io(&e)),
            )
        })?;
    let stdin = child.stdin.take().ok_or_else(|| bad("no stdin pipe"))?;
    let stdout = child.stdout.take().ok_or_else(|| bad("no stdout pipe"))?;
    let (exit_tx, exit_rx) = oneshot::channel();
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    // Reap the child in the background so it never lingers as a zombie; an
    // abort kills it first.
    tokio::spawn(async move {
        let status = tokio::select! {
            st = child.wait() => st,
            Ok(()) = kill_rx => {
                let _ = child.start_kill();
                child.wait().await
            }
        };
        let _ = exit_tx.send(status);
    });
    let status = StatusSlot::default();
    let reader = ChildOutput {
        stdout,
        exit: Some(exit_rx),
        status: status.clone(),
    };
    let writer = ChildInput::Open(stdin);
    let mut conn = Conn::new(reader, writer, format!("exec {program}")).with_abort(move || {
        let _ = kill_tx.send(());
    });
    conn.exit_status = Some(status);
    Ok(conn)
}

/// How a child ended, as it travels.
fn exit_status(st: &std::process::ExitStatus) -> ExitStatus {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = st.signal() {
            return ExitStatus::Signal(sig as u32);
        }
    }
    ExitStatus::Code(st.code().unwrap_or(-1) as u32)
}

/// The child's stdout; its end of file comes once the child has exited, with
/// the status in the slot.
struct ChildOutput {
    stdout: ChildStdout,
    exit: Option<oneshot::Receiver<io::Result<std::process::ExitStatus>>>,
    status: StatusSlot,
}

impl AsyncRead for ChildOutput {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.exit.is_some() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut self.stdout).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
        }
        // Stdout ended: the stream ends when the child has, with its status.
        if let Some(exit) = self.exit.as_mut() {
            let waited = ready!(Pin::new(exit).poll(cx));
            self.exit = None;
            if let Ok(Ok(st)) = waited {
                *self.status.lock().expect("status lock") = Some(exit_status(&st));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The child's stdin. Shutdown closes the pipe, so the child reads end of file.
/// Once the child stops reading (it closed stdin or exited), further input is
/// discarded, as sshd does: what the child made of it shows in its exit status.
enum ChildInput {
    Open(ChildStdin),
    Closed,
}

impl AsyncWrite for ChildInput {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let ChildInput::Open(stdin) = &mut *self else {
            return Poll::Ready(Ok(buf.len()));
        };
        match ready!(Pin::new(stdin).poll_write(cx, buf)) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                debug!("the program no longer reads its input; discarding the rest");
                *self = ChildInput::Closed;
                Poll::Ready(Ok(buf.len()))
            }
            r => Poll::Ready(r),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self {
            ChildInput::Open(stdin) => match ready!(Pin::new(stdin).poll_flush(cx)) {
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Poll::Ready(Ok(())),
                r => Poll::Ready(r),
            },
            ChildInput::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        // Dropping the handle closes the pipe; tokio's shutdown of ChildStdin
        // does not.
        *self = ChildInput::Closed;
        Poll::Ready(Ok(()))
    }
}
