//! Value parsers for parameters and options: each returns the value or the
//! reason it is not one; the caller adds what and where.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::lex::is_keyword_char;
use super::parse::*;
use super::resolve::Param;
use super::types::*;

/// A decimal integer in `min..=max` (digits only).
pub(super) fn uint(s: &str, min: u64, max: u64) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a whole number from {min} to {max}"));
    }
    match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be from {min} to {max}")),
    }
}

/// A byte count with an optional `k`/`K` (1024) or `M` (1024²) suffix.
pub(super) fn bytes(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let range = || format!("must be from {min} to {max} bytes");
    uint(digits, 0, u64::MAX)
        .map_err(|_| format!("expected a byte count like 4096 or 8k, from {min} to {max}"))?
        .checked_mul(unit)
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(range)
}

/// A finite, non-negative float (`1e-5` allowed).
pub(super) fn float(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number >= 0".to_string()),
        Err(_) => Err("expected a number like 0.5 or 1e-5".to_string()),
    }
}

/// A probability in `[0, 1)`.
pub(super) fn probability(s: &str) -> Result<f64, String> {
    match float(s)? {
        v if v < 1.0 => Ok(v),
        _ => Err("must be at least 0 and below 1".to_string()),
    }
}

/// A non-negative duration in units of `unit` nanoseconds (`SECONDS` or
/// `MILLIS`). Plain decimals are converted exactly (digits beyond a nanosecond
/// are dropped), so a printed duration parses back to the same value;
/// scientific notation goes through `f64`.
pub(super) fn duration(s: &str, unit: u128) -> Result<Duration, String> {
    let too_large = || "too large".to_string();
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
    unit_name: &str,
) -> Result<Duration, String> {
    if d > max {
        Err(format!(
            "must be at most {} {unit_name}",
            format_duration(max, unit)
        ))
    } else {
        Ok(d)
    }
}

/// A number of seconds, at most [`MAX_SECONDS`].
pub(super) fn seconds(s: &str) -> Result<Duration, String> {
    at_most(
        duration(s, SECONDS)?,
        MAX_SECONDS,
        SECONDS,
        "seconds (one day)",
    )
}

/// A positive number of seconds, at most [`MAX_SECONDS`].
pub(super) fn positive_seconds(s: &str) -> Result<Duration, String> {
    match seconds(s)? {
        Duration::ZERO => Err("must be more than 0 seconds".to_string()),
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
pub(super) fn port(s: &str, min: u16) -> Result<u16, String> {
    uint(s, u64::from(min), 65_535)
        .map(|n| n as u16)
        .map_err(|_| format!("expected a port number from {min} to 65535"))
}

/// A host: name, IPv4 literal, or IPv6 literal (bracketed in parameters; with or
/// without brackets in `bind=`). Returned without brackets.
pub(super) fn host(s: &str, bracketed: bool) -> Result<String, String> {
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
            Err("expected an IPv6 address inside [ ]".to_string())
        };
    }
    if s.parse::<Ipv4Addr>().is_ok() {
        return Ok(s.to_string());
    }
    if s.is_empty() {
        return Err("the host is empty".to_string());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("not a valid IPv4 address".to_string());
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        Ok(s.to_string())
    } else {
        Err("expected a host name, an IPv4 address or [IPv6]".to_string())
    }
}

/// Checks an IP literal against the family a keyword asked for.
pub(super) fn check_family(host: &str, family: Family) -> Result<(), String> {
    let v6 = host.contains(':');
    let v4 = host.parse::<Ipv4Addr>().is_ok();
    match family {
        Family::V4 if v6 => Err("an IPv6 address, but the type asks for IPv4".to_string()),
        Family::V6 if v4 => Err("an IPv4 address, but the type asks for IPv6".to_string()),
        _ => Ok(()),
    }
}

pub(super) fn path_text(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        Err("the path is empty".to_string())
    } else {
        Ok(PathBuf::from(s))
    }
}

pub(super) fn path(p: &Param) -> Result<PathBuf, String> {
    path_text(&p.literal())
}

pub(super) fn device(p: &Param) -> Result<String, String> {
    let d = p.literal();
    if d.is_empty() {
        Err("the device is empty".to_string())
    } else if let Some(id) = UsbId::from_device(&d) {
        // Checked now, so a typo is a usage error rather than a missing port.
        id.map(|id| id.to_string())
    } else {
        Ok(d)
    }
}

/// `[A-Za-z0-9_.-]{1,32}`; `default` is the empty (default) service.
pub(super) fn service(s: &str) -> Result<String, String> {
    if s.len() > 32
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err("expected 1 to 32 of A-Z a-z 0-9 _ . -".to_string());
    }
    Ok(if s == "default" {
        String::new()
    } else {
        s.to_string()
    })
}
