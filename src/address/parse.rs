//! The grammar: `TYPE[:PARAM[:PARAM]][,OPTION[=VALUE]]...`, in three stages:
//! the nom lexer (`lex.rs`) splits the text into a keyword, parameters and
//! options, remembering where each piece starts; resolution (`resolve.rs`)
//! checks them against the tables ([`ADDRESS_TYPES`](super::ADDRESS_TYPES),
//! [`OPTIONS`](super::OPTIONS)): options outside the type's groups, repeats and
//! conflicts; a builder per type (`build.rs`, with the value parsers of
//! `values.rs`) turns the pieces into a typed [`Address`]. Here: the entry
//! point and the limits every stage checks against.

use std::str::FromStr;
use std::time::Duration;

use super::error::AddressError;
use super::lex::lex;
use super::resolve::{unknown_type, Ctx};
use super::table::AddressType;
use super::types::*;

/// Nanoseconds per second, the unit of `SECONDS` values.
pub(super) const SECONDS: u128 = 1_000_000_000;
/// Nanoseconds per millisecond, the unit of `latency=MS`.
pub(super) const MILLIS: u128 = 1_000_000;

// Ranges checked at parse time, so that a value that passes the parser is
// safe everywhere later (no `Instant + Duration` overflow, no allocation or
// busy loop sized by a typo) and a bad one gets the usual caret.

/// Longest `SECONDS` value of any option (connect-timeout, keepalive,
/// dead-after, outage START and DUR): one day.
pub(super) const MAX_SECONDS: Duration = Duration::from_secs(86_400);
/// Longest PTY `latency=MS`: 10 seconds.
pub(super) const MAX_LATENCY: Duration = Duration::from_secs(10);
/// Most `max-children` (well below tokio's semaphore limit on 32-bit targets).
pub(super) const MAX_CHILDREN: u64 = 1_000_000;
/// Most `max-channels`: the multiplexer's limit (`MuxConfig::validate`).
pub(super) const MAX_CHANNELS: u64 = 32_768;
/// Most noise bursts per second (`burst=RATE:LEN`).
pub(super) const MAX_BURST_RATE: f64 = 1000.0;
/// Longest noise burst in byte times (`burst=RATE:LEN`).
pub(super) const MAX_BURST_LEN: u64 = 1_000_000;
/// Largest PTY device queue (`fifo=BYTES`): 1 MiB.
pub(super) const MAX_FIFO: u64 = 1 << 20;

/// Parses an address expression such as `TCP-LISTEN:2222,fork`.
pub fn parse_address(input: &str) -> Result<Address, AddressError> {
    let raw = lex(input)?;
    let ty = AddressType::lookup(raw.keyword)
        .ok_or_else(|| AddressError::new(input, 0, unknown_type(raw.keyword)))?;
    let ctx = Ctx::new(input, ty, raw)?;
    ctx.build()
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_address(s)
    }
}
