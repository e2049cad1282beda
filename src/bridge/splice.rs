//! Copying two connections into each other, both ways, keeping half-close:
//! EOF on one side shuts down the writing half of the other; an error on
//! either side aborts both, so a cut stream never looks complete.

use crate::endpoint::{Conn, ExitStatus, Reader, StatusSlot, Writer};
use crate::error::describe_io;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

/// Bytes one direction of a bridge reads at a time.
const COPY_BUFFER: usize = 16 * 1024;

/// What a finished bridge of two connections carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spliced {
    /// Bytes carried a→b.
    pub a_to_b: u64,
    /// Bytes carried b→a.
    pub b_to_a: u64,
    /// The exit status either stream ended with (a program's, or one a
    /// channel's peer sent).
    pub status: Option<ExitStatus>,
}

/// Copies `from` into `to` until end of file, then passes on the exit status
/// the stream ended with, if any, and shuts `to` down. The next read starts
/// only once the previous bytes were written, so a reader that counts a read
/// as consumed when it is asked for more (a channel) counts delivered bytes.
async fn copy_stream(
    from: &mut Reader,
    to: &mut Writer,
    ended_with: Option<&StatusSlot>,
    pass_to: Option<&StatusSlot>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    if let (Some(src), Some(dst)) = (ended_with, pass_to) {
        let status = *src.lock().expect("status lock");
        *dst.lock().expect("status lock") = status;
    }
    to.shutdown().await?;
    Ok(total)
}

/// Copies both ways between two connections until both directions reach EOF
/// and each far end that confirms delivery (a channel) has confirmed it. On an
/// error both are aborted, so neither peer reads a clean end of a cut stream.
pub async fn splice(a: Conn, b: Conn) -> io::Result<Spliced> {
    let Conn {
        reader: mut ar,
        writer: mut aw,
        abort: a_abort,
        label: a_label,
        exit_status: a_status,
        pass_status: a_pass,
        confirmed: a_confirmed,
    } = a;
    let Conn {
        reader: mut br,
        writer: mut bw,
        abort: b_abort,
        label: b_label,
        exit_status: b_status,
        pass_status: b_pass,
        confirmed: b_confirmed,
    } = b;
    // Declared after the halves, so dropped before them: if this future is
    // cancelled mid-copy (sfs stopped by a signal), both sides are aborted before
    // any half is closed normally, and neither peer reads a clean end of file.
    let mut guard = AbortGuard(vec![a_abort, b_abort]);
    let ab = copy_stream(&mut ar, &mut bw, a_status.as_ref(), b_pass.as_ref());
    let ba = copy_stream(&mut br, &mut aw, b_status.as_ref(), a_pass.as_ref());
    let result = async {
        let (x, y) = tokio::try_join!(ab, ba)?;
        for confirmation in [a_confirmed, b_confirmed].into_iter().flatten() {
            confirmation.await?;
        }
        io::Result::Ok((x, y))
    }
    .await;
    match result {
        Ok((x, y)) => {
            debug!("{a_label} <-> {b_label}: done, {x} and {y} bytes");
            guard.disarm();
            let read =
                |s: &Option<StatusSlot>| s.as_ref().and_then(|s| *s.lock().expect("status lock"));
            Ok(Spliced {
                a_to_b: x,
                b_to_a: y,
                status: read(&a_status).or(read(&b_status)),
            })
        }
        Err(e) => {
            info!("{a_label} <-> {b_label}: aborted: {}", describe_io(&e));
            guard.fire();
            Err(e)
        }
    }
}

/// Abort actions that run when dropped unless disarmed.
struct AbortGuard(Vec<Option<Box<dyn FnOnce() + Send>>>);

impl AbortGuard {
    fn fire(&mut self) {
        for f in self.0.drain(..).flatten() {
            f();
        }
    }

    fn disarm(&mut self) {
        self.0.clear();
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.fire();
    }
}
