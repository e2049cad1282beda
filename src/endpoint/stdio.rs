//! `STDIO` / `-`: the process's standard input and output.

use super::Conn;

/// Standard input as the reader, standard output as the writer.
pub fn open() -> Conn {
    Conn::new(tokio::io::stdin(), tokio::io::stdout(), "stdio")
}
