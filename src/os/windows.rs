//! Windows: Ctrl-C, Ctrl-Break and closing the console stop sfs; statistics come
//! from `--stats-interval` only; `EXEC` runs a Windows command line; `PTY` and
//! the Unix-domain socket addresses do not exist.

use crate::address::Address;
use crate::error::{Error, Result};
use std::io;
use tokio::process::Command;
use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};

/// Ctrl-C, Ctrl-Break and console close, listened to for the whole run. A
/// handler that cannot be installed (no console) simply never fires.
pub struct StopSignals {
    c: Option<tokio::signal::windows::CtrlC>,
    b: Option<tokio::signal::windows::CtrlBreak>,
    x: Option<tokio::signal::windows::CtrlClose>,
}

// Installing signal handlers is an action, not a default value.
#[allow(clippy::new_without_default)]
impl StopSignals {
    /// Installs the handlers.
    pub fn new() -> Self {
        StopSignals {
            c: ctrl_c().ok(),
            b: ctrl_break().ok(),
            x: ctrl_close().ok(),
        }
    }

    /// The next stop request.
    pub async fn recv(&mut self) {
        tokio::select! {
            Some(_) = async { self.c.as_mut()?.recv().await } => {}
            Some(_) = async { self.b.as_mut()?.recv().await } => {}
            Some(_) = async { self.x.as_mut()?.recv().await } => {}
            else => std::future::pending::<()>().await,
        }
    }
}

/// Windows has no SIGUSR1: statistics on request come from `--stats-interval`.
pub struct StatsSignal;

impl StatsSignal {
    pub fn new() -> Self {
        StatsSignal
    }

    pub async fn recv(&mut self) {
        std::future::pending().await
    }
}

/// Rejects the address types that cannot exist on Windows (a usage error, exit 2).
pub fn supported(a: &Address) -> Result<()> {
    let why = match a {
        Address::Pty(_) => {
            "PTY is not available on Windows (it has no pseudo-terminals); \
             use a COM port, e.g. SERIAL-MUX:COM3"
        }
        Address::UnixListen(_) | Address::UnixConnect(_) => {
            "Unix-domain sockets (UNIX-LISTEN, UNIX-CONNECT) are not available on Windows; \
             use TCP on 127.0.0.1"
        }
        _ => return Ok(()),
    };
    Err(Error::Usage(why.to_string()))
}

/// The command for `EXEC:"line"` and the program's name (for logs): the first
/// word (or double-quoted string) names the program, the rest is its command
/// line as written, since Windows programs split their arguments themselves.
pub fn command(line: &str) -> io::Result<(Command, String)> {
    let (program, rest) = super::split_program(line)?;
    let mut cmd = Command::new(program);
    if !rest.is_empty() {
        cmd.raw_arg(rest);
    }
    Ok((cmd, program.to_string()))
}
