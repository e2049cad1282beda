//! Unix: SIGINT/SIGTERM stop sfs, SIGUSR1 asks for statistics, `EXEC` words are
//! split like a shell would and the child is killed with SIGKILL.

use crate::address::Address;
use crate::error::Result;
use std::io;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Resolves on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
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

/// Reaps the child in the background (so it never lingers as a zombie) and
/// returns the action that kills it at once.
pub fn reap_in_background(mut child: Child) -> impl FnOnce() + Send + 'static {
    let pid = child.id();
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    move || {
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
