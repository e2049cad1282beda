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
    let words = split_words(line)?;
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..]);
    Ok((cmd, words[0].clone()))
}

/// Splits a command line into words: whitespace separates, quotes group,
/// backslash escapes the next character (outside single quotes).
fn split_words(s: &str) -> io::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                let n = chars.next().ok_or_else(|| bad("trailing backslash"))?;
                cur.push(n);
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(bad("unterminated quote"));
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err(bad("empty command"));
    }
    Ok(words)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("EXEC command: {what}"))
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_words("sh -c 'echo a b'").unwrap(),
            ["sh", "-c", "echo a b"]
        );
        assert_eq!(split_words(r#"a "b c" d\ e"#).unwrap(), ["a", "b c", "d e"]);
        assert_eq!(split_words("  x  ").unwrap(), ["x"]);
        assert_eq!(split_words("''").unwrap(), [""]);
        assert!(split_words("'open").is_err());
        assert!(split_words("   ").is_err());
    }
}
