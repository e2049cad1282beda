//! Unix: SIGINT/SIGTERM stop sfs, SIGUSR1 asks for statistics, `EXEC` words are
//! split like a shell would.

use crate::address::Address;
use crate::error::Result;
use std::io;
use tokio::process::Command;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM, listened to for the whole run (a second one matters).
pub struct StopSignals {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

// Installing signal handlers is an action, not a default value.
#[allow(clippy::new_without_default)]
impl StopSignals {
    /// Installs the handlers.
    pub fn new() -> Self {
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// The next SIGINT or SIGTERM; never, where neither could be installed.
    pub async fn recv(&mut self) {
        tokio::select! {
            Some(_) = async { self.interrupt.as_mut()?.recv().await } => {}
            Some(_) = async { self.terminate.as_mut()?.recv().await } => {}
            else => std::future::pending::<()>().await,
        }
    }
}

/// SIGUSR1, or nothing where the signal cannot be installed.
pub struct StatsSignal(Option<Signal>);

impl StatsSignal {
    pub fn new() -> Self {
        StatsSignal(signal(SignalKind::user_defined1()).ok())
    }

    pub async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Every address type exists on Unix.
pub fn supported(_: &Address) -> Result<()> {
    Ok(())
}

/// The command for `EXEC:"line"` and the program's name (for logs).
pub fn command(line: &str) -> io::Result<(Command, String)> {
    let words = crate::endpoint::exec::split_words(line)?;
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    Ok((cmd, words[0].clone()))
}
