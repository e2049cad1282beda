//! The lexer (nom): splits `TYPE[:PARAM[:PARAM]][,OPTION[=VALUE]]...` into a
//! keyword, parameters and options, undoing quotes (`"..."` with `\\"` and
//! `\\\\` escapes) and IPv6 brackets (`[::1]`), and remembering where each
//! piece starts so that errors can point at it.

use nom::branch::alt;
use nom::bytes::complete::{is_not, take_till, take_while1};
use nom::character::complete::{char, one_of};
use nom::combinator::{cut, map, opt};
use nom::error::{ErrorKind, ParseError};
use nom::multi::{fold_many0, many0};
use nom::sequence::preceded;
use nom::IResult;

use super::error::AddressError;

/// A lexer error: where (the remaining input) and, for the errors we raise
/// ourselves, why.
#[derive(Debug)]
pub(super) struct LexError<'a> {
    pub(super) at: &'a str,
    pub(super) message: Option<String>,
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
pub(super) fn fail<'a, T>(at: &'a str, message: impl Into<String>) -> PResult<'a, T> {
    Err(nom::Err::Failure(LexError {
        at,
        message: Some(message.into()),
    }))
}

/// A parameter as written; positions are lengths of the remaining input (turned
/// into offsets once the whole input is known).
#[derive(Debug)]
pub(super) struct RawParam {
    pub(super) text: String,
    pub(super) bracketed: bool,
    pub(super) at: usize,
}

#[derive(Debug)]
pub(super) struct RawOption<'a> {
    pub(super) name: &'a str,
    pub(super) at: usize,
    /// The value after `=` (unquoted) and where it starts.
    pub(super) value: Option<(String, usize)>,
    /// The option as written, `baud=9600`.
    pub(super) text: &'a str,
}

#[derive(Debug)]
pub(super) struct RawAddress<'a> {
    pub(super) keyword: &'a str,
    pub(super) params: Vec<RawParam>,
    /// Offset just past the parameters (where a missing one would go).
    pub(super) params_end: usize,
    pub(super) options: Vec<RawOption<'a>>,
}

pub(super) fn is_keyword_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// `"..."`: `\"` and `\\` are escapes, any other backslash is literal.
pub(super) fn quoted(i: &str) -> PResult<'_, String> {
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
pub(super) fn text<'a>(stop: &'static str) -> impl FnMut(&'a str) -> PResult<'a, String> {
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
pub(super) fn param(i: &str) -> PResult<'_, RawParam> {
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
pub(super) fn option(i: &str) -> PResult<'_, RawOption<'_>> {
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
pub(super) fn value(i: &str) -> PResult<'_, (String, usize)> {
    let at = i.len();
    let (rest, t) = text(",\"")(i)?;
    Ok((rest, (t, at)))
}

pub(super) fn lex(input: &str) -> Result<RawAddress<'_>, AddressError> {
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
