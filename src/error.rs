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

/// A setting the protocol core cannot run with (`validate` of the link, mux
/// and station settings). The address parser keeps values in range, so a
/// user meets this only through a bug; it reads as one line all the same.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `setting` is `value`, outside `min..=max`.
    OutOfRange {
        /// Which setting.
        setting: &'static str,
        /// Its value.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// Settings that do not fit together: what must hold.
    Inconsistent(&'static str),
}

impl ConfigError {
    /// `Ok` when `value` is in `min..=max`, else the error naming `setting`.
    pub fn check(
        setting: &'static str,
        value: u64,
        min: u64,
        max: u64,
    ) -> std::result::Result<(), ConfigError> {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange {
                setting,
                value,
                min,
                max,
            })
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange {
                setting,
                value,
                min,
                max,
            } => write!(f, "{setting} is {value}, not from {min} to {max}"),
            ConfigError::Inconsistent(what) => write!(f, "settings do not fit: {what}"),
        }
    }
}

impl std::error::Error for ConfigError {}
