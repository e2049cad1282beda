//! Errors that reach the command line: one readable line each, and the exit code
//! that goes with it (2 for usage errors, 1 for runtime failures).

use std::fmt;

/// A failure the program reports on one line before exiting.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The command line is wrong (bad address, bad combination): exit code 2.
    Usage(String),
    /// Something failed at run time (device missing, port in use, peer refused): exit code 1.
    Runtime(String),
}

impl Error {
    /// A runtime error from a context and an I/O error: `cannot open X: reason`.
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        Error::Runtime(format!("{context}: {}", describe_io(&err)))
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// An I/O error as a short human sentence, without Rust's `(os error N)` suffix.
pub fn describe_io(err: &std::io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Result alias for the command-line layer.
pub type Result<T> = std::result::Result<T, Error>;
