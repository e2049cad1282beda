//! Address expressions: `TYPE[:PARAM[:PARAM]][,OPTION[=VALUE]]...`, parsed with nom
//! into typed [`Address`] values (see `types.rs`); the table of address types feeds
//! the parser, `--help` and the man page.

mod types;

pub use types::*;
