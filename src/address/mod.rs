//! Address expressions: `TYPE[:PARAM[:PARAM]][,OPTION[=VALUE]]...`, parsed with nom
//! into typed [`Address`] values (see `types.rs`); the table of address types feeds
//! the parser, `--help` and the man page.
//!
//! - `types.rs`: the typed addresses.
//! - [`table`]: the address type and option tables, [`help_text`] and
//!   [`man_address_section`].
//! - `parse.rs`: [`parse_address`] and `FromStr`, over `lex.rs` (the nom
//!   lexer), `resolve.rs` (checks against the tables), `build.rs` (a builder
//!   per type) and `values.rs` (value parsers).
//! - `display.rs`: canonical printing; `parse(display(a)) == a`.
//! - `error.rs`: [`AddressError`], pointing at the offending character.
//!
//! ```
//! use sfs::address::{parse_address, Address};
//! let a: Address = "tcp-l:2222,FORK".parse().unwrap();
//! assert_eq!(a.to_string(), "TCP-LISTEN:2222,fork");
//! assert!(parse_address("TPC:host:22").is_err());
//! ```

mod build;
mod display;
mod error;
mod lex;
mod parse;
mod resolve;
pub mod table;
mod types;
mod values;

#[cfg(test)]
mod tests;

pub use error::AddressError;
pub use parse::parse_address;
pub use table::{
    address_reference, help_overview, help_text, man_address_section, type_summaries, wrap,
    AddressType, OptionGroup, OptionSpec, ValueKind, ADDRESS_TYPES, OPTIONS,
};
pub use types::*;
pub use values::ValueError;
