//! Endpoints: thin tokio drivers, one file per address type. Each produces
//! [`Conn`]s — a byte stream split into halves plus a way to abort it — which the
//! bridge copies between.

pub mod exec;
#[cfg(unix)]
pub mod pty;
#[cfg(not(unix))]
pub use crate::os::unsupported::pty;
pub mod serial;
pub mod serial_mux;
pub mod socks;
pub mod stdio;
pub mod tcp;
pub mod udp;
#[cfg(unix)]
pub mod unix;
#[cfg(not(unix))]
pub use crate::os::unsupported::unix;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};

pub use crate::mux::ExitStatus;

/// The read half of a connection.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
/// The write half of a connection.
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// Where an exit status is left for the other side of the bridge.
pub type StatusSlot = Arc<Mutex<Option<ExitStatus>>>;

/// Resolves once the far end confirmed it took the whole stream.
pub type Confirmation = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// One bidirectional byte stream, ready to bridge.
pub struct Conn {
    /// Bytes from the endpoint.
    pub reader: Reader,
    /// Bytes to the endpoint; `shutdown` sends EOF.
    pub writer: Writer,
    /// Ends the stream abnormally, so that the far end sees an error (TCP RST,
    /// channel reset, child killed) rather than a clean EOF. Runs at most once.
    pub abort: Option<Box<dyn FnOnce() + Send>>,
    /// Human-readable description for logs (`tcp 127.0.0.1:5000`).
    pub label: String,
    /// Filled before the reader's end of file when the stream ended with a
    /// program's exit status (EXEC's child; a channel whose peer sent one).
    pub exit_status: Option<StatusSlot>,
    /// Read by the writer at shutdown: a status to pass on with the end of
    /// stream (a channel carries it to the peer).
    pub pass_status: Option<StatusSlot>,
    /// For endpoints whose writes are only final once the far end confirms them
    /// (a channel: the peer took every byte and closed cleanly); the bridge
    /// awaits it before calling the connection complete.
    pub confirmed: Option<Confirmation>,
}

impl Conn {
    /// A connection from two halves, with no special abort action.
    pub fn new(
        reader: impl AsyncRead + Send + 'static,
        writer: impl AsyncWrite + Send + 'static,
        label: impl Into<String>,
    ) -> Self {
        Conn {
            reader: Box::pin(reader),
            writer: Box::pin(writer),
            abort: None,
            label: label.into(),
            exit_status: None,
            pass_status: None,
            confirmed: None,
        }
    }

    /// Attaches the action that makes the far end see an abnormal close.
    pub fn with_abort(mut self, abort: impl FnOnce() + Send + 'static) -> Self {
        self.abort = Some(Box::new(abort));
        self
    }

    /// Aborts the connection (see [`Conn::abort`]) and drops it.
    pub fn abort(mut self) {
        if let Some(f) = self.abort.take() {
            f();
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("label", &self.label).finish()
    }
}
