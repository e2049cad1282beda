//! Resolution against the tables: the keyword names a type (or the error
//! suggests the nearest one), each option is looked up, checked against the
//! type's option groups, for repeats and for conflicts, and parameters are
//! counted. [`Ctx`] holds the result, which `build.rs` turns into an address.

use super::error::AddressError;
use super::lex::RawAddress;
use super::table::{lookup_option, AddressType, OptionSpec, ValueKind, ADDRESS_TYPES};
use super::values::ValueError;

/// Optimal string alignment distance (edit distance with transpositions).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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

pub(super) fn unknown_type(keyword: &str) -> String {
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
pub(super) struct Opt<'a> {
    pub(super) spec: &'static OptionSpec,
    /// As written: `baud=9600`, `B9600`.
    pub(super) text: &'a str,
    /// Offset of the name.
    pub(super) pos: usize,
    /// The value (attached digits, text after `=`, or the lower-cased choice).
    pub(super) value: String,
    /// Offset of the value.
    pub(super) value_pos: usize,
    /// For flags: on or off.
    pub(super) on: bool,
}

/// A resolved parameter.
#[derive(Debug)]
pub(super) struct Param {
    pub(super) text: String,
    pub(super) bracketed: bool,
    pub(super) pos: usize,
}

impl Param {
    /// The text with its brackets, for parameters where brackets mean nothing.
    pub(super) fn literal(&self) -> String {
        if self.bracketed {
            format!("[{}]", self.text)
        } else {
            self.text.clone()
        }
    }
}

pub(super) struct Ctx<'a> {
    pub(super) input: &'a str,
    pub(super) ty: &'static AddressType,
    pub(super) keyword: &'a str,
    pub(super) params: Vec<Param>,
    pub(super) opts: Vec<Opt<'a>>,
}

pub(super) fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
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

    pub(super) fn err(&self, pos: usize, message: impl Into<String>) -> AddressError {
        AddressError::new(self.input, pos, message)
    }

    pub(super) fn opt(&self, name: &str) -> Option<&Opt<'a>> {
        self.opts.iter().find(|o| o.spec.name == name)
    }

    pub(super) fn flag(&self, name: &str) -> Option<bool> {
        self.opt(name).map(|o| o.on)
    }

    /// Parses option `name`'s value with `f`, pointing at the value on failure.
    pub(super) fn value<T>(
        &self,
        name: &str,
        f: impl FnOnce(&str) -> Result<T, ValueError>,
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
    pub(super) fn later<'o>(&self, a: &'o Opt<'a>, b: &'o Opt<'a>) -> (&'o Opt<'a>, &'o Opt<'a>) {
        if a.pos > b.pos {
            (a, b)
        } else {
            (b, a)
        }
    }

    pub(super) fn conflict(&self, a: &Opt, b: &Opt) -> AddressError {
        let (late, early) = self.later(a, b);
        self.err(
            late.pos,
            format!("option '{}' conflicts with '{}'", late.text, early.text),
        )
    }

    pub(super) fn param_value<T>(
        &self,
        index: usize,
        f: impl FnOnce(&Param) -> Result<T, ValueError>,
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
}
