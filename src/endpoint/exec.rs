//! `EXEC:"command args"`: a child process whose stdin/stdout are the stream.
//!
//! The command is split into words like a shell would (single and double quotes,
//! backslash escapes) and run directly, without a shell. Its stderr is inherited.
//! On Windows the command line is passed on as written (see [`crate::os`]).

use super::Conn;
use std::io;
use std::process::Stdio;

/// Splits a command line into words: whitespace separates, quotes group,
/// backslash escapes the next character (outside single quotes).
pub fn split_words(s: &str) -> io::Result<Vec<String>> {
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

/// Spawns the command; abort kills it.
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
    let kill = crate::os::reap_in_background(child);
    Ok(Conn::new(stdout, stdin, format!("exec {program}")).with_abort(kill))
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
