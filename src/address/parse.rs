//! The grammar: `TYPE[:PARAM[:PARAM]][,OPTION[=VALUE]]...`.
//!
//! Two stages. A nom lexer splits the text into a keyword, parameters and options,
//! undoing quotes (`"..."` with `\"` and `\\` escapes) and IPv6 brackets
//! (`[::1]`), and remembering where each piece starts. Then the tables
//! ([`ADDRESS_TYPES`], [`OPTIONS`](super::OPTIONS)) resolve the keyword and the options, reject
//! options outside the type's groups, repeats and conflicts, and a builder per type
//! turns the pieces into a typed [`Address`].

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use nom::branch::alt;
use nom::bytes::complete::{is_not, take_till, take_while1};
use nom::character::complete::{char, one_of};
use nom::combinator::{cut, map, opt};
use nom::error::{ErrorKind, ParseError};
use nom::multi::{fold_many0, many0};
use nom::sequence::preceded;
use nom::IResult;

use super::error::AddressError;
use super::table::{lookup_option, AddressType, OptionSpec, ValueKind, ADDRESS_TYPES};
use super::types::*;

// The link's defaults, for checking `dead-after` against `keepalive`.
use crate::link::{DEFAULT_DEAD_AFTER, DEFAULT_KEEPALIVE};
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

// ---------------------------------------------------------------------------
// Lexer (nom).

/// A lexer error: where (the remaining input) and, for the errors we raise
/// ourselves, why.
#[derive(Debug)]
struct LexError<'a> {
    at: &'a str,
    message: Option<String>,
}

impl<'a> ParseError<&'a str> for LexError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        LexError {
            at: input,
            message: None,
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, T> = IResult<&'a str, T, LexError<'a>>;

/// An unrecoverable lexer error at `at`.
fn fail<'a, T>(at: &'a str, message: impl Into<String>) -> PResult<'a, T> {
    Err(nom::Err::Failure(LexError {
        at,
        message: Some(message.into()),
    }))
}

/// A parameter as written; positions are lengths of the remaining input (turned
/// into offsets once the whole input is known).
#[derive(Debug)]
struct RawParam {
    text: String,
    bracketed: bool,
    at: usize,
}

#[derive(Debug)]
struct RawOption<'a> {
    name: &'a str,
    at: usize,
    /// The value after `=` (unquoted) and where it starts.
    value: Option<(String, usize)>,
    /// The option as written, `baud=9600`.
    text: &'a str,
}

#[derive(Debug)]
struct RawAddress<'a> {
    keyword: &'a str,
    params: Vec<RawParam>,
    /// Offset just past the parameters (where a missing one would go).
    params_end: usize,
    options: Vec<RawOption<'a>>,
}

fn is_keyword_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// `"..."`: `\"` and `\\` are escapes, any other backslash is literal.
fn quoted(i: &str) -> PResult<'_, String> {
    let (body, _) = char('"')(i)?;
    let piece = alt((
        map(is_not("\"\\"), str::to_string),
        map(preceded(char('\\'), one_of("\"\\")), String::from),
        map(char('\\'), String::from),
    ));
    let (rest, text) = fold_many0(piece, String::new, |mut acc, p| {
        acc.push_str(&p);
        acc
    })(body)?;
    match char::<_, LexError>('"')(rest) {
        Ok((rest, _)) => Ok((rest, text)),
        Err(_) => fail(i, "unterminated quote"),
    }
}

/// A run of quoted and bare pieces; bare pieces stop at any of `stop`.
fn text<'a>(stop: &'static str) -> impl FnMut(&'a str) -> PResult<'a, String> {
    fold_many0(
        alt((quoted, map(is_not(stop), str::to_string))),
        String::new,
        |mut acc, piece| {
            acc.push_str(&piece);
            acc
        },
    )
}

/// One parameter (after its `:`): `[IPv6]`, or quoted and bare pieces up to the
/// next `:` or `,`. Backslashes outside quotes are literal (`\\.\COM12`).
fn param(i: &str) -> PResult<'_, RawParam> {
    let at = i.len();
    if let Some(after) = i.strip_prefix('[') {
        let (rest, inner) = take_till(|c| c == ']')(after)?;
        let Some(rest) = rest.strip_prefix(']') else {
            return fail(i, "unterminated '['");
        };
        if let Some(c) = rest.chars().next().filter(|&c| c != ':' && c != ',') {
            return fail(rest, format!("unexpected '{c}' after ']'"));
        }
        let text = inner.to_string();
        return Ok((
            rest,
            RawParam {
                text,
                bracketed: true,
                at,
            },
        ));
    }
    let (rest, text) = text(":,\"")(i)?;
    Ok((
        rest,
        RawParam {
            text,
            bracketed: false,
            at,
        },
    ))
}

/// One option (after its `,`): `NAME[=VALUE]`, the value running to the next `,`
/// (quotes group).
fn option(i: &str) -> PResult<'_, RawOption<'_>> {
    let at = i.len();
    let (rest, name) = match take_while1::<_, _, LexError>(is_keyword_char)(i) {
        Ok(r) => r,
        Err(_) => {
            return match i.chars().next() {
                None | Some(',') => fail(i, "empty option"),
                Some(c) => fail(i, format!("unexpected '{c}': expected an option name")),
            }
        }
    };
    let (rest, value) = opt(preceded(char('='), value))(rest)?;
    if let Some(c) = rest.chars().next().filter(|&c| c != ',') {
        return fail(rest, format!("unexpected '{c}' after option name '{name}'"));
    }
    let text = &i[..i.len() - rest.len()];
    Ok((
        rest,
        RawOption {
            name,
            at,
            value,
            text,
        },
    ))
}

/// An option value and the length of the input where it starts.
fn value(i: &str) -> PResult<'_, (String, usize)> {
    let at = i.len();
    let (rest, t) = text(",\"")(i)?;
    Ok((rest, (t, at)))
}

fn lex(input: &str) -> Result<RawAddress<'_>, AddressError> {
    let to_error = |e: nom::Err<LexError>| match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => AddressError::new(
            input,
            input.len() - e.at.len(),
            e.message.unwrap_or_else(|| "syntax error".to_string()),
        ),
        nom::Err::Incomplete(_) => AddressError::new(input, input.len(), "incomplete address"),
    };
    let (rest, keyword) = match take_while1::<_, _, LexError>(is_keyword_char)(input) {
        Ok(r) => r,
        Err(_) => {
            let message = match input.chars().next() {
                None => "empty address; expected TYPE[:PARAM...][,OPTION...]".to_string(),
                Some(c) => format!("unexpected '{c}': expected an address type"),
            };
            return Err(AddressError::new(input, 0, message));
        }
    };
    if let Some(c) = rest.chars().next().filter(|&c| c != ':' && c != ',') {
        return Err(AddressError::new(
            input,
            input.len() - rest.len(),
            format!("unexpected '{c}' after address type '{keyword}'"),
        ));
    }
    let (rest, mut params) = many0(preceded(char(':'), param))(rest).map_err(to_error)?;
    let params_end = input.len() - rest.len();
    let (rest, mut options) = many0(preceded(char(','), cut(option)))(rest).map_err(to_error)?;
    if let Some(c) = rest.chars().next() {
        return Err(AddressError::new(
            input,
            input.len() - rest.len(),
            format!("unexpected '{c}'"),
        ));
    }
    // Lengths of remaining input -> offsets.
    for p in &mut params {
        p.at = input.len() - p.at;
    }
    for o in &mut options {
        o.at = input.len() - o.at;
        if let Some((_, at)) = &mut o.value {
            *at = input.len() - *at;
        }
    }
    Ok(RawAddress {
        keyword,
        params,
        params_end,
        options,
    })
}

// ---------------------------------------------------------------------------
// Keyword and option resolution against the tables.

/// Optimal string alignment distance (edit distance with transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn unknown_type(keyword: &str) -> String {
    let known: Vec<&str> = ADDRESS_TYPES.iter().map(|t| t.name).collect();
    let mut message = format!(
        "unknown address type '{keyword}'; known: {}",
        known.join(", ")
    );
    let upper = keyword.to_ascii_uppercase();
    let best = ADDRESS_TYPES
        .iter()
        .flat_map(|t| std::iter::once(&t.name).chain(t.aliases))
        .filter(|n| n.len() > 1)
        .map(|n| (edit_distance(&upper, n), *n))
        .filter(|&(d, n)| d <= 2 && d < n.len() && d < upper.len())
        .min_by_key(|&(d, _)| d);
    if let Some((_, name)) = best {
        message.push_str(&format!("; did you mean '{name}'?"));
    }
    message
}

/// A resolved option.
#[derive(Debug)]
struct Opt<'a> {
    spec: &'static OptionSpec,
    /// As written: `baud=9600`, `B9600`.
    text: &'a str,
    /// Offset of the name.
    pos: usize,
    /// The value (attached digits, text after `=`, or the lower-cased choice).
    value: String,
    /// Offset of the value.
    value_pos: usize,
    /// For flags: on or off.
    on: bool,
}

/// A resolved parameter.
#[derive(Debug)]
struct Param {
    text: String,
    bracketed: bool,
    pos: usize,
}

impl Param {
    /// The text with its brackets, for parameters where brackets mean nothing.
    fn literal(&self) -> String {
        if self.bracketed {
            format!("[{}]", self.text)
        } else {
            self.text.clone()
        }
    }
}

struct Ctx<'a> {
    input: &'a str,
    ty: &'static AddressType,
    keyword: &'a str,
    params: Vec<Param>,
    opts: Vec<Opt<'a>>,
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl<'a> Ctx<'a> {
    fn new(
        input: &'a str,
        ty: &'static AddressType,
        mut raw: RawAddress<'a>,
    ) -> Result<Self, AddressError> {
        let err = |pos, msg: String| AddressError::new(input, pos, msg);
        // A serial device named by USB identity, `usb=VID:PID[:SERIAL]`, is one
        // parameter although it has colons (it is never a path).
        if matches!(ty.name, "SERIAL" | "SERIAL-MUX")
            && raw.params.len() > 1
            && raw.params.len() <= 3
            && raw.params[0].text.to_ascii_lowercase().starts_with("usb=")
            && raw.params.iter().all(|p| !p.bracketed)
        {
            let rest: Vec<String> = raw.params.drain(1..).map(|p| p.text).collect();
            raw.params[0].text = format!("{}:{}", raw.params[0].text, rest.join(":"));
        }
        // Parameters: exactly as many as the syntax names.
        let names: Vec<&str> = ty.params().collect();
        if raw.params.len() < names.len() {
            let missing: Vec<String> = names[raw.params.len()..]
                .iter()
                .map(|n| {
                    let n = n.to_ascii_lowercase();
                    format!("{} {n}", article(&n))
                })
                .collect();
            return Err(err(
                raw.params_end,
                format!("{} needs {}: {}", ty.name, missing.join(" and "), ty.syntax),
            ));
        }
        if let Some(extra) = raw.params.get(names.len()) {
            let message = match names.len() {
                0 => format!("{} takes no parameters", ty.name),
                1 => format!(
                    "{} takes 1 parameter ({}); quote it if it contains ':'",
                    ty.name, ty.syntax
                ),
                n => format!(
                    "{} takes {n} parameters ({}); quote one if it contains ':'",
                    ty.name, ty.syntax
                ),
            };
            return Err(err(extra.at - 1, message));
        }
        let params = raw
            .params
            .into_iter()
            .map(|p| Param {
                text: p.text,
                bracketed: p.bracketed,
                pos: p.at,
            })
            .collect();

        // Options: known, in the type's groups, given once, with a value of the
        // right shape.
        let valid = || {
            ty.options()
                .map(|o| o.display_name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut opts: Vec<Opt> = Vec::new();
        for o in raw.options {
            if ty.groups.is_empty() {
                return Err(err(o.at, format!("{} takes no options", ty.name)));
            }
            let Some((spec, attached)) = lookup_option(o.name) else {
                return Err(err(
                    o.at,
                    format!(
                        "unknown option '{}' for {}; valid: {}",
                        o.name,
                        ty.name,
                        valid()
                    ),
                ));
            };
            if !ty.accepts(spec) {
                let message = if ty.name == "SERIAL-MUX" && spec.name == "xonxoff" {
                    "option 'xonxoff' is not valid for SERIAL-MUX: its link protocol is \
                     binary and XON/XOFF would eat data bytes; use crtscts"
                        .to_string()
                } else {
                    format!(
                        "option '{}' is not valid for {}; valid: {}",
                        o.name,
                        ty.name,
                        valid()
                    )
                };
                return Err(err(o.at, message));
            }
            if let Some(prev) = opts.iter().find(|p| std::ptr::eq(p.spec, spec)) {
                let message = if matches!(spec.value, ValueKind::Attached(_))
                    && !prev.text.eq_ignore_ascii_case(o.text)
                {
                    format!("option '{}' conflicts with '{}'", o.text, prev.text)
                } else {
                    format!("option '{}' given twice", spec.display_name())
                };
                return Err(err(o.at, message));
            }
            let mut opt = Opt {
                spec,
                text: o.text,
                pos: o.at,
                value: String::new(),
                value_pos: o.at + o.name.len(),
                on: true,
            };
            let name = spec.display_name();
            match (spec.value, o.value) {
                (ValueKind::Flag, None) => {}
                (ValueKind::Flag, Some((v, at))) => match v.as_str() {
                    "1" => {}
                    "0" => opt.on = false,
                    _ => {
                        return Err(err(
                            at,
                            format!("option '{name}' takes no value, or =0 or =1"),
                        ))
                    }
                },
                (ValueKind::Attached(what), None) => {
                    let digits = attached.unwrap_or_default();
                    if digits.is_empty() {
                        return Err(err(
                            opt.value_pos,
                            format!("option '{}' needs a {what}: {name}", o.name),
                        ));
                    }
                    opt.value = digits.to_string();
                    opt.value_pos = o.at + spec.name.len();
                }
                (ValueKind::Attached(_), Some((_, at))) => {
                    return Err(err(at - 1, format!("option '{name}' takes no '=' value")))
                }
                (ValueKind::Value(meta), None) => {
                    return Err(err(
                        opt.value_pos,
                        format!("option '{name}' needs a value: {name}={meta}"),
                    ))
                }
                (ValueKind::Value(meta), Some((v, at))) => {
                    if v.is_empty() {
                        return Err(err(
                            at,
                            format!("option '{name}' needs a value: {name}={meta}"),
                        ));
                    }
                    opt.value = v;
                    opt.value_pos = at;
                }
                (ValueKind::Choice(words), v) => {
                    let (v, at) = v.unwrap_or_default();
                    let lower = v.to_ascii_lowercase();
                    if !words.contains(&lower.as_str()) {
                        return Err(err(
                            if v.is_empty() { opt.value_pos } else { at },
                            format!("option '{name}' needs one of: {}", spec.usage()),
                        ));
                    }
                    opt.value = lower;
                    opt.value_pos = at;
                }
                (ValueKind::Ignored(allowed), v) => {
                    let given = v.as_ref().map_or("", |(v, _)| v.as_str());
                    if !allowed.contains(&given) {
                        return Err(err(
                            v.map_or(o.at, |(_, at)| at),
                            format!(
                                "option '{}' is not supported; only '{}' is accepted \
                                 (and ignored, for socat compatibility)",
                                o.text,
                                spec.usage()
                            ),
                        ));
                    }
                }
            }
            opts.push(opt);
        }
        Ok(Ctx {
            input,
            ty,
            keyword: raw.keyword,
            params,
            opts,
        })
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> AddressError {
        AddressError::new(self.input, pos, message)
    }

    fn opt(&self, name: &str) -> Option<&Opt<'a>> {
        self.opts.iter().find(|o| o.spec.name == name)
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.opt(name).map(|o| o.on)
    }

    /// Parses option `name`'s value with `f`, pointing at the value on failure.
    fn value<T>(
        &self,
        name: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, AddressError> {
        let Some(o) = self.opt(name) else {
            return Ok(None);
        };
        f(&o.value).map(Some).map_err(|why| {
            let message = if matches!(o.spec.value, ValueKind::Attached(_)) {
                format!("invalid value in '{}': {why}", o.text)
            } else {
                format!("invalid value '{}' for {}: {why}", o.value, o.spec.name)
            };
            self.err(o.value_pos, message)
        })
    }

    /// The later (in the input) of two options, and the earlier.
    fn later<'o>(&self, a: &'o Opt<'a>, b: &'o Opt<'a>) -> (&'o Opt<'a>, &'o Opt<'a>) {
        if a.pos > b.pos {
            (a, b)
        } else {
            (b, a)
        }
    }

    fn conflict(&self, a: &Opt, b: &Opt) -> AddressError {
        let (late, early) = self.later(a, b);
        self.err(
            late.pos,
            format!("option '{}' conflicts with '{}'", late.text, early.text),
        )
    }

    fn param_value<T>(
        &self,
        index: usize,
        f: impl FnOnce(&Param) -> Result<T, String>,
    ) -> Result<T, AddressError> {
        let p = &self.params[index];
        let what = self
            .ty
            .params()
            .nth(index)
            .unwrap_or("parameter")
            .to_ascii_lowercase();
        f(p).map_err(|why| self.err(p.pos, format!("invalid {what} '{}': {why}", p.literal())))
    }

    fn build(&self) -> Result<Address, AddressError> {
        let family = {
            let k = self.keyword.to_ascii_uppercase();
            if k.starts_with("TCP4") {
                Family::V4
            } else if k.starts_with("TCP6") {
                Family::V6
            } else {
                Family::Any
            }
        };
        Ok(match self.ty.name {
            "TCP-LISTEN" => {
                let port = self.param_value(0, |p| port(&p.text, 0))?;
                let bind = self.value("bind", |v| {
                    let host = host(v, false)?;
                    check_family(&host, family)?;
                    Ok(host)
                })?;
                Address::TcpListen(TcpListen {
                    port,
                    family,
                    bind,
                    reuseaddr: self.flag("reuseaddr").unwrap_or(true),
                    listen: self.listen()?,
                })
            }
            "SOCKS5-LISTEN" => {
                if self.flag("fork") == Some(false) {
                    let o = self.opt("fork").expect("given");
                    return Err(self.err(
                        o.pos,
                        "SOCKS5-LISTEN always serves concurrently; drop 'fork=0'",
                    ));
                }
                let port = self.param_value(0, |p| port(&p.text, 0))?;
                let bind = self.value("bind", |v| host(v, false))?;
                Address::Socks5Listen(TcpListen {
                    port,
                    family: Family::Any,
                    bind,
                    reuseaddr: self.flag("reuseaddr").unwrap_or(true),
                    listen: self.listen_with(true)?,
                })
            }
            "UDP-LISTEN" => Address::UdpListen(UdpListen {
                port: self.param_value(0, |p| port(&p.text, 1))?,
                bind: self.value("bind", |v| host(v, false))?,
                reuseaddr: self.flag("reuseaddr").unwrap_or(true),
                max_datagram: self.max_datagram()?,
                idle_timeout: self.idle_timeout()?,
            }),
            "UDP" => Address::UdpConnect(UdpConnect {
                host: self.param_value(0, |p| host(&p.text, p.bracketed))?,
                port: self.param_value(1, |p| port(&p.text, 1))?,
                max_datagram: self.max_datagram()?,
                idle_timeout: self.idle_timeout()?,
            }),
            "SOCKS5-DIAL" => Address::Socks5Dial(Socks5Dial {
                allow: self
                    .value("allow", crate::allow::AllowList::parse)?
                    .unwrap_or_default(),
                connect_timeout: self.value("connect-timeout", positive_seconds)?,
            }),
            "TCP" => {
                let host = self.param_value(0, |p| {
                    let host = host(&p.text, p.bracketed)?;
                    check_family(&host, family)?;
                    Ok(host)
                })?;
                let port = self.param_value(1, |p| port(&p.text, 1))?;
                let connect_timeout = self.value("connect-timeout", positive_seconds)?;
                Address::TcpConnect(TcpConnect {
                    host,
                    port,
                    family,
                    connect_timeout,
                })
            }
            "UNIX-LISTEN" => Address::UnixListen(UnixListen {
                path: self.param_value(0, path)?,
                unlink_early: self.flag("unlink-early").unwrap_or(false),
                listen: self.listen()?,
            }),
            "UNIX-CONNECT" => Address::UnixConnect(UnixConnect {
                path: self.param_value(0, path)?,
            }),
            "STDIO" => Address::Stdio,
            "EXEC" => Address::Exec(Exec {
                command: self.param_value(0, |p| {
                    let command = p.literal();
                    if command.trim().is_empty() {
                        Err("the command is empty".to_string())
                    } else {
                        Ok(command)
                    }
                })?,
            }),
            "SERIAL" => Address::Serial(Serial {
                device: self.param_value(0, device)?,
                line: self.line()?,
            }),
            "SERIAL-MUX" => self.serial_mux()?,
            "PTY" => Address::Pty(Pty {
                link: self.value("link", path_text)?,
                line: self.line()?,
                impair: self.impairments()?,
            }),
            other => return Err(self.err(0, format!("internal: no builder for {other}"))),
        })
    }

    fn max_datagram(&self) -> Result<usize, AddressError> {
        Ok(self
            .value("max-datagram", |v| uint(v, 1, 65_507).map(|n| n as usize))?
            .unwrap_or(DEFAULT_MAX_DATAGRAM))
    }

    fn idle_timeout(&self) -> Result<Duration, AddressError> {
        Ok(self
            .value("idle-timeout", positive_seconds)?
            .unwrap_or(DEFAULT_UDP_IDLE))
    }

    fn listen(&self) -> Result<ListenOptions, AddressError> {
        self.listen_with(false)
    }

    /// Listener options; `implied_fork` for listeners that always fork.
    fn listen_with(&self, implied_fork: bool) -> Result<ListenOptions, AddressError> {
        let fork = self.flag("fork").unwrap_or(implied_fork);
        let max_children = self.value("max-children", |v| {
            uint(v, 1, MAX_CHILDREN).map(|n| n as usize)
        })?;
        if let (Some(_), false) = (max_children, fork) {
            let o = self.opt("max-children").expect("given");
            return Err(self.err(o.pos, "option 'max-children' needs 'fork'"));
        }
        let backlog = self
            .value("backlog", |v| uint(v, 0, i32::MAX as u64).map(|n| n as u32))?
            .unwrap_or(ListenOptions::default().backlog);
        Ok(ListenOptions {
            fork,
            max_children,
            backlog,
        })
    }

    /// The options of `names`, in input order.
    fn in_order<'s>(&'s self, names: &'s [&str]) -> impl Iterator<Item = &'s Opt<'a>> + 's {
        self.opts
            .iter()
            .filter(move |o| names.contains(&o.spec.name))
    }

    fn line(&self) -> Result<LineSettings, AddressError> {
        let mut line = LineSettings::default();

        // Baud: b<N>, baud=, ispeed=, ospeed= must all agree.
        let mut baud: Option<(u32, &Opt)> = None;
        for o in self.in_order(&["b", "baud", "ispeed", "ospeed"]) {
            let v = self
                .value(o.spec.name, |v| {
                    uint(v, 1, u64::from(u32::MAX)).map(|n| n as u32)
                })?
                .expect("present");
            match baud {
                Some((prev, p)) if prev != v => {
                    let names = [p.spec.name, o.spec.name];
                    if names.contains(&"ispeed") && names.contains(&"ospeed") {
                        return Err(self.err(
                            o.pos,
                            format!(
                                "'{}' and '{}' differ: sfs runs both directions at one baud rate",
                                p.text, o.text
                            ),
                        ));
                    }
                    return Err(self.conflict(p, o));
                }
                Some(_) => {}
                None => baud = Some((v, o)),
            }
        }
        if let Some((v, _)) = baud {
            line.baud = v;
        }

        if let Some(bits) = self.value("cs", |v| uint(v, 5, 8).map(|n| n as u8))? {
            line.data_bits = bits;
        }

        // Parity: parity= against socat's parenb/parodd.
        let parity_opt = self.opt("parity");
        let parenb = self.opt("parenb");
        let parodd = self.opt("parodd");
        if let Some(odd) = parodd.filter(|o| o.on) {
            if !parenb.is_some_and(|e| e.on) {
                return Err(self.err(
                    odd.pos,
                    "option 'parodd' needs 'parenb' (or write parity=odd)",
                ));
            }
        }
        let termios = parenb.map(|e| match (e.on, parodd.is_some_and(|o| o.on)) {
            (false, _) => Parity::None,
            (true, false) => Parity::Even,
            (true, true) => Parity::Odd,
        });
        let word = parity_opt.map(|o| match o.value.as_str() {
            "even" => Parity::Even,
            "odd" => Parity::Odd,
            _ => Parity::None,
        });
        if let (Some(w), Some(t), Some(p), Some(e)) = (word, termios, parity_opt, parenb) {
            if w != t {
                let socat = match parodd {
                    Some(o) if o.pos > e.pos => o,
                    _ => e,
                };
                return Err(self.conflict(p, socat));
            }
        }
        line.parity = word.or(termios).unwrap_or_default();

        // Stop bits: stopbits= against cstopb.
        let stopbits = self.opt("stopbits");
        let cstopb = self.opt("cstopb");
        let word = stopbits.map(|o| if o.value == "2" { 2 } else { 1 });
        let termios = cstopb.map(|o| if o.on { 2 } else { 1 });
        if let (Some(w), Some(t), Some(a), Some(b)) = (word, termios, stopbits, cstopb) {
            if w != t {
                return Err(self.conflict(a, b));
            }
        }
        line.stop_bits = word.or(termios).unwrap_or(1);

        // Flow control.
        let hard = self.opt("crtscts").filter(|o| o.on);
        let soft = self.opt("xonxoff").filter(|o| o.on);
        line.flow = match (hard, soft) {
            (Some(a), Some(b)) => return Err(self.conflict(a, b)),
            (Some(_), None) => FlowControl::Hardware,
            (None, Some(_)) => FlowControl::Software,
            (None, None) => FlowControl::None,
        };
        Ok(line)
    }

    fn serial_mux(&self) -> Result<Address, AddressError> {
        let device = self.param_value(0, device)?;
        let line = self.line()?;
        let service = self.value("service", service)?.unwrap_or_default();
        let window = self.value("window", |v| bytes(v, 256, 16 << 20).map(|n| n as u32))?;
        let max_channels = self.value("max-channels", |v| {
            uint(v, 1, MAX_CHANNELS).map(|n| n as u32)
        })?;
        let keepalive = self.value("keepalive", positive_seconds)?;
        let dead_after = self.value("dead-after", positive_seconds)?;
        let compress = self.opt("compress").map(|o| o.value == "on");
        let (k, d) = (
            keepalive.unwrap_or(DEFAULT_KEEPALIVE),
            dead_after.unwrap_or(DEFAULT_DEAD_AFTER),
        );
        if d <= k {
            let show = |d: Duration, given: bool| {
                let s = format_duration(d, SECONDS);
                if given {
                    s
                } else {
                    format!("{s} by default")
                }
            };
            let at = self
                .opt("dead-after")
                .or(self.opt("keepalive"))
                .expect("one is given");
            return Err(self.err(
                at.pos,
                format!(
                    "dead-after ({}) must exceed keepalive ({})",
                    show(d, dead_after.is_some()),
                    show(k, keepalive.is_some())
                ),
            ));
        }
        let secret_file = self.value("secret-file", path_text)?;
        Ok(Address::SerialMux(SerialMux {
            device,
            line,
            service,
            window,
            max_channels,
            keepalive,
            dead_after,
            secret_file,
            compress,
        }))
    }

    fn impairments(&self) -> Result<Impairments, AddressError> {
        let d = Impairments::default();
        Ok(Impairments {
            ber: self.value("ber", probability)?.unwrap_or(d.ber),
            drop: self.value("drop", probability)?.unwrap_or(d.drop),
            insert: self.value("insert", probability)?.unwrap_or(d.insert),
            burst: self.value("burst", |v| {
                let (rate, len) = v.split_once(':').ok_or("expected RATE:LEN")?;
                let rate = float(rate).and_then(|r| {
                    if r <= 0.0 {
                        Err("RATE must be positive".to_string())
                    } else if r > MAX_BURST_RATE {
                        Err(format!("RATE must be at most {MAX_BURST_RATE} per second"))
                    } else {
                        Ok(r)
                    }
                })?;
                let len = uint(len, 1, MAX_BURST_LEN).map_err(|e| format!("LEN {e}"))?;
                Ok((rate, len as u32))
            })?,
            outage: self.value("outage", |v| {
                let (start, dur) = v.split_once(':').ok_or("expected START:DUR")?;
                let start = seconds(start).map_err(|e| format!("START {e}"))?;
                let dur = positive_seconds(dur).map_err(|e| format!("DUR {e}"))?;
                Ok((start, dur))
            })?,
            latency: self
                .value("latency", |v| {
                    duration(v, MILLIS).and_then(|d| at_most(d, MAX_LATENCY, MILLIS, "ms"))
                })?
                .unwrap_or(d.latency),
            seed: self
                .value("seed", |v| uint(v, 0, u64::MAX))?
                .unwrap_or(d.seed),
            fifo: self.value("fifo", |v| bytes(v, 1, MAX_FIFO).map(|n| n as usize))?,
        })
    }
}

// ---------------------------------------------------------------------------
// Value parsers: `Err` carries the reason, the caller adds what and where.

/// A decimal integer in `min..=max` (digits only).
fn uint(s: &str, min: u64, max: u64) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a whole number from {min} to {max}"));
    }
    match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be from {min} to {max}")),
    }
}

/// A byte count with an optional `k`/`K` (1024) or `M` (1024²) suffix.
fn bytes(s: &str, min: u64, max: u64) -> Result<u64, String> {
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
fn float(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number >= 0".to_string()),
        Err(_) => Err("expected a number like 0.5 or 1e-5".to_string()),
    }
}

/// A probability in `[0, 1)`.
fn probability(s: &str) -> Result<f64, String> {
    match float(s)? {
        v if v < 1.0 => Ok(v),
        _ => Err("must be at least 0 and below 1".to_string()),
    }
}

/// A non-negative duration in units of `unit` nanoseconds (`SECONDS` or
/// `MILLIS`). Plain decimals are converted exactly (digits beyond a nanosecond
/// are dropped), so a printed duration parses back to the same value;
/// scientific notation goes through `f64`.
fn duration(s: &str, unit: u128) -> Result<Duration, String> {
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
fn at_most(d: Duration, max: Duration, unit: u128, unit_name: &str) -> Result<Duration, String> {
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
fn seconds(s: &str) -> Result<Duration, String> {
    at_most(
        duration(s, SECONDS)?,
        MAX_SECONDS,
        SECONDS,
        "seconds (one day)",
    )
}

/// A positive number of seconds, at most [`MAX_SECONDS`].
fn positive_seconds(s: &str) -> Result<Duration, String> {
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
fn port(s: &str, min: u16) -> Result<u16, String> {
    uint(s, u64::from(min), 65_535)
        .map(|n| n as u16)
        .map_err(|_| format!("expected a port number from {min} to 65535"))
}

/// A host: name, IPv4 literal, or IPv6 literal (bracketed in parameters; with or
/// without brackets in `bind=`). Returned without brackets.
fn host(s: &str, bracketed: bool) -> Result<String, String> {
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
fn check_family(host: &str, family: Family) -> Result<(), String> {
    let v6 = host.contains(':');
    let v4 = host.parse::<Ipv4Addr>().is_ok();
    match family {
        Family::V4 if v6 => Err("an IPv6 address, but the type asks for IPv4".to_string()),
        Family::V6 if v4 => Err("an IPv4 address, but the type asks for IPv6".to_string()),
        _ => Ok(()),
    }
}

fn path_text(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        Err("the path is empty".to_string())
    } else {
        Ok(PathBuf::from(s))
    }
}

fn path(p: &Param) -> Result<PathBuf, String> {
    path_text(&p.literal())
}

fn device(p: &Param) -> Result<String, String> {
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
fn service(s: &str) -> Result<String, String> {
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
