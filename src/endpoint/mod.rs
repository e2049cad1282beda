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
pub mod stdio;
pub mod tcp;
#[cfg(unix)]
pub mod unix;
#[cfg(not(unix))]
pub use crate::os::unsupported::unix;

use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// The read half of a connection.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
/// The write half of a connection.
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

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
