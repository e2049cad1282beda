//! Value parsers for parameters and options: each returns the value or the
//! reason it is not one; the caller adds what and where.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use std::fmt;

use super::lex::is_keyword_char;
use super::parse::*;
use super::resolve::Param;
use super::types::*;

/// Why a parameter or option value is not accepted. The resolver says which
/// value it was and where ([`AddressError`](super::AddressError), with its
/// caret); this says why.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a whole number, or one outside `min..=max`.
    WholeNumber {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// A number outside `min..=max` (`unit` follows the range: "", " bytes").
    Range {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
        /// Unit named after the range.
        unit: &'static str,
    },
    /// Not a byte count (`4096`, `8k`, `1M`).
    ByteCount {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// Not a number at all.
    Number,
    /// Negative, infinite or NaN.
    NotFinite,
    /// Not in `[0, 1)`.
    Probability,
    /// Beyond what any duration can hold.
    TooLarge,
    /// A duration above its limit.
    AtMost {
        /// The limit.
        max: Duration,
        /// Nanoseconds per printed unit.
        unit: u128,
        /// The printed unit's name.
        unit_name: &'static str,
    },
    /// Zero where only a positive duration makes sense.
    NotPositive,
    /// Not a port number from `min` to 65535.
    Port {
        /// Smallest accepted port.
        min: u16,
    },
    /// A burst rate above the most per second.
    RateAbove(f64),
    /// The value is not of its form; the text says what was expected.
    Form(&'static str),
    /// `usb=` that is not `usb=VID:PID[:SERIAL]` with hex ids.
    UsbId(String),
    /// An `allow=` rule that does not parse.
    Allow(crate::allow::RuleError),
    /// One part of a compound value (`RATE`, `LEN`, `START`, `DUR`).
    Part {
        /// The part's name.
        name: &'static str,
        /// Why it failed.
        why: Box<ValueError>,
    },
}

impl ValueError {
    /// This error as the failure of part `name` of a compound value.
    pub(super) fn of(name: &'static str) -> impl FnOnce(ValueError) -> ValueError {
        move |why| ValueError::Part {
            name,
            why: Box::new(why),
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::WholeNumber { min, max } => {
                write!(f, "expected a whole number from {min} to {max}")
            }
            ValueError::Range { min, max, unit } => write!(f, "must be from {min} to {max}{unit}"),
            ValueError::ByteCount { min, max } => {
                write!(
                    f,
                    "expected a byte count like 4096 or 8k, from {min} to {max}"
                )
            }
            ValueError::Number => f.write_str("expected a number like 0.5 or 1e-5"),
            ValueError::NotFinite => f.write_str("must be a finite number >= 0"),
            ValueError::Probability => f.write_str("must be at least 0 and below 1"),
            ValueError::TooLarge => f.write_str("too large"),
            ValueError::AtMost {
                max,
                unit,
                unit_name,
            } => write!(
                f,
                "must be at most {} {unit_name}",
                format_duration(*max, *unit)
            ),
            ValueError::NotPositive => f.write_str("must be more than 0 seconds"),
            ValueError::Port { min } => write!(f, "expected a port number from {min} to 65535"),
            ValueError::RateAbove(max) => write!(f, "must be at most {max} per second"),
            ValueError::Form(what) => f.write_str(what),
            ValueError::UsbId(device) => write!(
                f,
                "expected usb=VID:PID[:SERIAL] with hex ids, e.g. usb=0403:6001, not '{device}'"
            ),
            ValueError::Allow(e) => e.fmt(f),
            ValueError::Part { name, why } => write!(f, "{name} {why}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// A decimal integer in `min..=max` (digits only).
pub(super) fn uint(s: &str, min: u64, max: u64) -> Result<u64, ValueError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::WholeNumber { min, max });
    }
    match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ValueError::Range { min, max, unit: "" }),
    }
}

/// A byte count with an optional `k`/`K` (1024) or `M` (1024²) suffix.
pub(super) fn bytes(s: &str, min: u64, max: u64) -> Result<u64, ValueError> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let range = || ValueError::Range {
        min,
        max,
        unit: " bytes",
    };
    uint(digits, 0, u64::MAX)
        .map_err(|_| ValueError::ByteCount { min, max })?
        .checked_mul(unit)
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(range)
}

/// A finite, non-negative float (`1e-5` allowed).
pub(super) fn float(s: &str) -> Result<f64, ValueError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err(ValueError::NotFinite),
        Err(_) => Err(ValueError::Number),
    }
}

/// A probability in `[0, 1)`.
pub(super) fn probability(s: &str) -> Result<f64, ValueError> {
    match float(s)? {
        v if v < 1.0 => Ok(v),
        _ => Err(ValueError::Probability),
    }
}

/// A non-negative duration in units of `unit` nanoseconds (`SECONDS` or
/// `MILLIS`). Plain decimals are converted exactly (digits beyond a nanosecond
/// are dropped), so a printed duration parses back to the same value;
/// scientific notation goes through `f64`.
pub(super) fn duration(s: &str, unit: u128) -> Result<Duration, ValueError> {
    let too_large = || ValueError::TooLarge;
    let plain = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|&b| b == b'.').count() <= 1
        && s != ".";
    let nanos: u128 = if plain {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| too_large())?
        };
        let places = unit.ilog10() as usize;
        let mut scaled: u128 = 0;
        for i in 0..places {
            let digit = frac.as_bytes().get(i).map_or(0, |b| b - b'0');
            scaled = scaled * 10 + u128::from(digit);
        }
        int.checked_mul(unit)
            .and_then(|n| n.checked_add(scaled))
            .ok_or_else(too_large)?
    } else {
        let v = float(s)?;
        let n = v * unit as f64;
        if n >= 1.8e28 {
            return Err(too_large());
        }
        n.round() as u128
    };
    let secs = u64::try_from(nanos / SECONDS).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (nanos % SECONDS) as u32))
}

/// `d` if it is at most `max` (printed in units of `unit` nanoseconds, named
/// `unit_name`).
pub(super) fn at_most(
    d: Duration,
    max: Duration,
    unit: u128,
    unit_name: &'static str,
) -> Result<Duration, ValueError> {
    if d > max {
        Err(ValueError::AtMost {
            max,
            unit,
            unit_name,
        })
    } else {
        Ok(d)
    }
}

/// A number of seconds, at most [`MAX_SECONDS`].
pub(super) fn seconds(s: &str) -> Result<Duration, ValueError> {
    at_most(
        duration(s, SECONDS)?,
        MAX_SECONDS,
        SECONDS,
        "seconds (one day)",
    )
}

/// A positive number of seconds, at most [`MAX_SECONDS`].
pub(super) fn positive_seconds(s: &str) -> Result<Duration, ValueError> {
    match seconds(s)? {
        Duration::ZERO => Err(ValueError::NotPositive),
        d => Ok(d),
    }
}

/// Prints a duration in units of `unit` nanoseconds, exactly, shortest form.
pub(super) fn format_duration(d: Duration, unit: u128) -> String {
    let nanos = d.as_nanos();
    let (int, frac) = (nanos / unit, nanos % unit);
    if frac == 0 {
        return int.to_string();
    }
    let places = unit.ilog10() as usize;
    let frac = format!("{frac:0places$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// A port number `min..=65535`.
pub(super) fn port(s: &str, min: u16) -> Result<u16, ValueError> {
    uint(s, u64::from(min), 65_535)
        .map(|n| n as u16)
        .map_err(|_| ValueError::Port { min })
}

/// A host: name, IPv4 literal, or IPv6 literal (bracketed in parameters; with or
/// without brackets in `bind=`). Returned without brackets.
pub(super) fn host(s: &str, bracketed: bool) -> Result<String, ValueError> {
    let inner = if bracketed {
        Some(s)
    } else if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(inner)
    } else if s.contains(':') {
        Some(s)
    } else {
        None
    };
    if let Some(v6) = inner {
        let (addr, zone) = match v6.split_once('%') {
            Some((a, z)) => (a, Some(z)),
            None => (v6, None),
        };
        let zone_ok = zone.is_none_or(|z| !z.is_empty() && z.chars().all(is_keyword_char));
        return if addr.parse::<Ipv6Addr>().is_ok() && zone_ok {
            Ok(v6.to_string())
        } else {
            Err(ValueError::Form("expected an IPv6 address inside [ ]"))
        };
    }
    if s.parse::<Ipv4Addr>().is_ok() {
        return Ok(s.to_string());
    }
    if s.is_empty() {
        return Err(ValueError::Form("the host is empty"));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(ValueError::Form("not a valid IPv4 address"));
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        Ok(s.to_string())
    } else {
        Err(ValueError::Form(
            "expected a host name, an IPv4 address or [IPv6]",
        ))
    }
}

/// Checks an IP literal against the family a keyword asked for.
pub(super) fn check_family(host: &str, family: Family) -> Result<(), ValueError> {
    let v6 = host.contains(':');
    let v4 = host.parse::<Ipv4Addr>().is_ok();
    match family {
        Family::V4 if v6 => Err(ValueError::Form(
            "an IPv6 address, but the type asks for IPv4",
        )),
        Family::V6 if v4 => Err(ValueError::Form(
            "an IPv4 address, but the type asks for IPv6",
        )),
        _ => Ok(()),
    }
}

pub(super) fn path_text(s: &str) -> Result<PathBuf, ValueError> {
    if s.is_empty() {
        Err(ValueError::Form("the path is empty"))
    } else {
        Ok(PathBuf::from(s))
    }
}

pub(super) fn path(p: &Param) -> Result<PathBuf, ValueError> {
    path_text(&p.literal())
}

pub(super) fn device(p: &Param) -> Result<String, ValueError> {
    let d = p.literal();
    if d.is_empty() {
        Err(ValueError::Form("the device is empty"))
    } else if let Some(id) = UsbId::from_device(&d) {
        // Checked now, so a typo is a usage error rather than a missing port.
        id.map(|id| id.to_string())
    } else {
        Ok(d)
    }
}

/// `[A-Za-z0-9_.-]{1,32}`; `default` is the empty (default) service.
pub(super) fn service(s: &str) -> Result<String, ValueError> {
    if s.len() > 32
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(ValueError::Form("expected 1 to 32 of A-Z a-z 0-9 _ . -"));
    }
    Ok(if s == "default" {
        String::new()
    } else {
        s.to_string()
    })
}
