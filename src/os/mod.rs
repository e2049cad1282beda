//! Platform differences in one place, so that the drivers call one function
//! instead of growing `cfg`s of their own: the stop signals, the statistics
//! request, the `EXEC` command line, and which addresses exist.
//!
//! Unix has everything sfs offers. Windows has TCP, STDIO, EXEC and the serial
//! addresses on `COMn` ports; it has no pseudo-terminals (so no `PTY`, no virtual
//! cable, no `--demo`) and tokio has no Unix-domain sockets there. Ctrl-C and
//! Ctrl-Break stand in for SIGINT/SIGTERM; `--stats-interval` for SIGUSR1.

#[cfg(unix)]
pub mod rs485;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;
#[cfg(not(unix))]
pub mod unsupported;

pub use imp::{command, supported, StopSignals};

use std::io;
use std::time::Duration;

/// Fires whenever statistics should be printed: on SIGUSR1 (Unix) and every
/// `--stats-interval` (any platform).
pub struct StatsRequests {
    signal: imp::StatsSignal,
    tick: Option<tokio::time::Interval>,
}

impl StatsRequests {
    /// Listens for the platform's request signal, plus a timer when `every` is set.
    pub fn new(every: Option<Duration>) -> Self {
        let tick = every.map(|d| {
            // The first report comes after one period, not at start, and a late
            // tick is not made up for: these are snapshots, not samples.
            let mut t = tokio::time::interval(d);
            t.reset();
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        StatsRequests {
            signal: imp::StatsSignal::new(),
            tick,
        }
    }

    /// Waits for the next request: `true` for a timer tick, `false` for the signal.
    pub async fn recv(&mut self) -> bool {
        let tick = async {
            match &mut self.tick {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.signal.recv() => false,
            _ = tick => true,
        }
    }
}

/// Splits a Windows command line into the program and the rest, which is passed
/// to the program untouched (Windows programs parse their own command lines).
/// The program may be double-quoted (`"C:\Program Files\x\x.exe" -a`);
/// backslashes are literal, as in Windows paths.
#[cfg_attr(unix, allow(dead_code))]
fn split_program(line: &str) -> io::Result<(&str, &str)> {
    let bad =
        |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("EXEC command: {what}"));
    let line = line.trim_start();
    let (program, rest) = match line.strip_prefix('"') {
        Some(q) => {
            let end = q.find('"').ok_or_else(|| bad("unterminated quote"))?;
            (&q[..end], &q[end + 1..])
        }
        None => match line.find(char::is_whitespace) {
            Some(i) => line.split_at(i),
            None => (line, ""),
        },
    };
    if program.is_empty() {
        return Err(bad("empty command"));
    }
    Ok((program, rest.trim()))
}

#[cfg(test)]
mod tests {
    use super::split_program;

    #[test]
    fn windows_command_lines_keep_backslashes_and_arguments() {
        assert_eq!(
            split_program(r"cmd /c dir C:\Users").unwrap(),
            ("cmd", r"/c dir C:\Users")
        );
        assert_eq!(
            split_program(r#""C:\Program Files\Git\bin\bash.exe" -c "echo a""#).unwrap(),
            (r"C:\Program Files\Git\bin\bash.exe", r#"-c "echo a""#)
        );
        assert_eq!(split_program("  sshd.exe  ").unwrap(), ("sshd.exe", ""));
        assert!(split_program("\"open").is_err());
        assert!(split_program("   ").is_err());
        assert!(split_program("\"\" x").is_err());
    }

    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // measures virtual time
    async fn stats_interval_fires_after_each_period() {
        tokio::time::pause();
        let mut s = super::StatsRequests::new(Some(std::time::Duration::from_secs(5)));
        let start = tokio::time::Instant::now();
        s.recv().await;
        assert_eq!(start.elapsed().as_secs(), 5);
        s.recv().await;
        assert_eq!(start.elapsed().as_secs(), 10);
    }
}
