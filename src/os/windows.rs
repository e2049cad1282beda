//! Windows: Ctrl-C, Ctrl-Break and closing the console stop sfs; statistics come
//! from `--stats-interval` only; `EXEC` runs a Windows command line; `PTY` and
//! the Unix-domain socket addresses do not exist.

use crate::address::Address;
use crate::error::{Error, Result};
use std::io;
use tokio::process::{Child, Command};
use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};

/// Resolves on the first Ctrl-C, Ctrl-Break or console close. A handler that
/// cannot be installed (no console) simply never fires.
pub async fn shutdown_signal() {
    let mut c = ctrl_c().ok();
    let mut b = ctrl_break().ok();
    let mut x = ctrl_close().ok();
    tokio::select! {
        Some(_) = async { c.as_mut()?.recv().await } => {}
        Some(_) = async { b.as_mut()?.recv().await } => {}
        Some(_) = async { x.as_mut()?.recv().await } => {}
        else => std::future::pending::<()>().await,
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

/// Reaps the child in the background and returns the action that kills it.
///
/// Killing by process id would need `OpenProcess` (unsafe FFI, and racy once the
/// id is reused); instead the reaper task owns the child and kills it on request.
pub fn reap_in_background(mut child: Child) -> impl FnOnce() + Send + 'static {
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = child.wait() => {}
            Ok(()) = killed => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    });
    move || {
        let _ = kill.send(());
    }
}
