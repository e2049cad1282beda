//! Allow-lists of destinations (`SOCKS5-DIAL,allow=…`): which hosts and ports
//! the far side of a SOCKS5 tunnel may dial. Pure parsing and matching; the
//! caller resolves names.
//!
//! A list is rules separated by `;`, each `HOST:PORTS`:
//! - HOST: `*` (anything), a name (`intranet.lan`, case-insensitive), a domain
//!   pattern `*.example.org` (any name below example.org, not example.org
//!   itself), an IPv4 address or CIDR range (`10.0.0.0/8`), an IPv6 address or
//!   range in brackets (`[fd00::]/8`, `[::1]`);
//! - PORTS: `N`, `N-M`, or `*` (1-65535).
//!
//! The empty list denies everything (the safe default).

use std::fmt;
use std::net::IpAddr;

/// Which hosts a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every name and every address.
    Any,
    /// Exactly this name (lower case).
    Name(String),
    /// Any name ending in `.SUFFIX` (stored lower case, without the dot).
    Below(String),
    /// An address range: network address and prefix length.
    Net(IpAddr, u8),
}

/// One `HOST:PORTS` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Hosts.
    pub host: HostPattern,
    /// First and last port, inclusive.
    pub ports: (u16, u16),
}

/// An ordered set of rules; empty denies everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    /// The rules.
    pub rules: Vec<Rule>,
}

/// Longest allow-list text accepted, in rules (bounds the work per request).
pub const MAX_RULES: usize = 256;

/// Why an `allow=` list does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleError {
    /// More than [`MAX_RULES`] rules.
    TooMany,
    /// A rule (the text) that is wrong in the way `why` says.
    Rule {
        /// The rule as written.
        rule: String,
        /// What is wrong with it.
        why: RuleProblem,
    },
}

/// What is wrong with one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleProblem {
    /// Not `HOST:PORTS`.
    NotHostPorts,
    /// `[` without `]`.
    MissingBracket,
    /// Something other than `/LEN` after `]`.
    ExpectedLength,
    /// The text in brackets is not an IPv6 address.
    NotIpv6(String),
    /// A prefix length beyond the address's bits.
    PrefixLength {
        /// As written.
        len: String,
        /// 32 or 128.
        max: u8,
    },
    /// `/LEN` after something that is not an address.
    NotRange(String),
    /// Neither a host name, a `*.domain` pattern nor an address.
    NotHost(String),
    /// Not a port from 1 to 65535.
    Port(String),
    /// `N-M` with N above M.
    Backwards(String),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::TooMany => write!(f, "more than {MAX_RULES} rules"),
            RuleError::Rule {
                rule,
                why: RuleProblem::NotHostPorts,
            } => write!(
                f,
                "rule '{rule}' is not HOST:PORTS (write IPv6 in brackets)"
            ),
            RuleError::Rule { rule, why } => write!(f, "rule '{rule}': {why}"),
        }
    }
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleProblem::NotHostPorts => f.write_str("not HOST:PORTS"),
            RuleProblem::MissingBracket => f.write_str("missing ']'"),
            RuleProblem::ExpectedLength => f.write_str("expected /LEN after ']'"),
            RuleProblem::NotIpv6(a) => write!(f, "'{a}' is not an IPv6 address"),
            RuleProblem::PrefixLength { len, max } => {
                write!(f, "prefix length '{len}' is not from 0 to {max}")
            }
            RuleProblem::NotRange(h) => write!(f, "'{h}' is not an address range"),
            RuleProblem::NotHost(h) => {
                write!(f, "'{h}' is not a host name, *.domain pattern or address")
            }
            RuleProblem::Port(p) => write!(f, "port '{p}' is not from 1 to 65535"),
            RuleProblem::Backwards(p) => write!(f, "port range '{p}' is backwards"),
        }
    }
}

impl std::error::Error for RuleError {}

impl AllowList {
    /// Parses `RULE;RULE;…` (empty text: the empty list).
    pub fn parse(s: &str) -> Result<Self, RuleError> {
        let mut rules = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            if rules.len() == MAX_RULES {
                return Err(RuleError::TooMany);
            }
            rules.push(Rule::parse(part)?);
        }
        Ok(AllowList { rules })
    }

    /// Whether the name `host` (not an address) with `port` is allowed by a
    /// name rule (or `*`).
    pub fn allows_name(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.rules.iter().any(|r| {
            r.has_port(port)
                && match &r.host {
                    HostPattern::Any => true,
                    HostPattern::Name(n) => *n == host,
                    HostPattern::Below(sfx) => host
                        .strip_suffix(sfx.as_str())
                        .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                    HostPattern::Net(..) => false,
                }
        })
    }

    /// Whether the address `ip` with `port` is allowed by an address rule (or `*`).
    pub fn allows_addr(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        self.rules.iter().any(|r| {
            r.has_port(port)
                && match &r.host {
                    HostPattern::Any => true,
                    HostPattern::Net(net, len) => in_net(ip, *net, *len),
                    HostPattern::Name(_) | HostPattern::Below(_) => false,
                }
        })
    }

    /// Whether some rule names addresses: only then is it worth resolving a
    /// name that no name rule allows.
    pub fn has_addr_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.host, HostPattern::Net(..) | HostPattern::Any))
    }
}

impl Rule {
    fn parse(s: &str) -> Result<Self, RuleError> {
        let bad = |why| RuleError::Rule {
            rule: s.to_string(),
            why,
        };
        let (host, ports) = s
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty() && (!h.contains(':') || h.contains(']')))
            .ok_or_else(|| bad(RuleProblem::NotHostPorts))?;
        Ok(Rule {
            host: parse_host(host).map_err(bad)?,
            ports: parse_ports(ports).map_err(bad)?,
        })
    }

    fn has_port(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }
}

fn parse_host(h: &str) -> Result<HostPattern, RuleProblem> {
    if h == "*" {
        return Ok(HostPattern::Any);
    }
    // `[v6]`, `[v6]/len`, `v4`, `v4/len`.
    let (addr, len) = match h.strip_prefix('[') {
        Some(rest) => {
            let (a, tail) = rest.split_once(']').ok_or(RuleProblem::MissingBracket)?;
            let len = match tail {
                "" => None,
                t => Some(t.strip_prefix('/').ok_or(RuleProblem::ExpectedLength)?),
            };
            let ip: IpAddr = a
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| RuleProblem::NotIpv6(a.to_string()))?
                .into();
            (Some(ip), len)
        }
        None => {
            let (a, len) = match h.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (h, None),
            };
            (a.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::from), len)
        }
    };
    if let Some(ip) = addr {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(|| {
                RuleProblem::PrefixLength {
                    len: l.to_string(),
                    max,
                }
            })?,
        };
        return Ok(HostPattern::Net(canonical(ip), len));
    }
    if len.is_some() {
        return Err(RuleProblem::NotRange(h.to_string()));
    }
    let (below, name) = match h.strip_prefix("*.") {
        Some(n) => (true, n),
        None => (false, h),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(RuleProblem::NotHost(h.to_string()));
    }
    let name = name.to_ascii_lowercase();
    Ok(if below {
        HostPattern::Below(name)
    } else {
        HostPattern::Name(name)
    })
}

fn parse_ports(p: &str) -> Result<(u16, u16), RuleProblem> {
    if p == "*" {
        return Ok((1, 65535));
    }
    let one = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| RuleProblem::Port(s.to_string()))
    };
    let (a, b) = match p.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => {
            let n = one(p)?;
            (n, n)
        }
    };
    if a > b {
        return Err(RuleProblem::Backwards(p.to_string()));
    }
    Ok((a, b))
}

/// An IPv4-mapped IPv6 address is treated as the IPv4 address, so that
/// `::ffff:10.0.0.1` cannot slip past a `10.0.0.0/8`-only list or around a
/// deny-by-omission.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Name(n) => f.write_str(n)?,
            HostPattern::Below(n) => write!(f, "*.{n}")?,
            HostPattern::Net(IpAddr::V4(a), 32) => write!(f, "{a}")?,
            HostPattern::Net(IpAddr::V4(a), l) => write!(f, "{a}/{l}")?,
            HostPattern::Net(IpAddr::V6(a), 128) => write!(f, "[{a}]")?,
            HostPattern::Net(IpAddr::V6(a), l) => write!(f, "[{a}]/{l}")?,
        }
        match self.ports {
            (1, 65535) => f.write_str(":*"),
            (a, b) if a == b => write!(f, ":{a}"),
            (a, b) => write!(f, ":{a}-{b}"),
        }
    }
}

impl fmt::Display for AllowList {
    /// Rules joined by `;`, as [`AllowList::parse`] reads them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_every_form() {
        let text =
            "10.0.0.0/8:22;*.lan:80-443;localhost:*;[fd00::]/8:443;[::1]:1;192.168.1.7:8080;*:53";
        let l = AllowList::parse(text).unwrap();
        assert_eq!(l.rules.len(), 7);
        assert_eq!(l.to_string(), text);
        assert_eq!(AllowList::parse(&l.to_string()).unwrap(), l);
        assert_eq!(AllowList::parse("").unwrap().rules.len(), 0);
        assert_eq!(AllowList::parse(" a:1 ; ;b:2").unwrap().rules.len(), 2);
        assert_eq!(
            AllowList::parse("Intranet.LAN:80").unwrap().rules[0].host,
            HostPattern::Name("intranet.lan".into())
        );
    }

    #[test]
    fn rejects_bad_rules() {
        for bad in [
            "10.0.0.0/8",
            "10.0.0.0/33:1",
            ":80",
            "host:0",
            "host:70000",
            "host:443-80",
            "host:a",
            "::1:22",
            "[::1:22",
            "[zz]:1",
            "[::1]x:1",
            "bad name:1",
            "*.:1",
            "a..b:1",
            "name/8:1",
            "*foo.org:1",
        ] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_names_addresses_and_ports() {
        let l = AllowList::parse("10.0.0.0/8:22;*.lan:80-443;localhost:8000-8999;[fd00::]/8:443")
            .unwrap();
        assert!(l.allows_addr(ip("10.1.2.3"), 22));
        assert!(!l.allows_addr(ip("10.1.2.3"), 23));
        assert!(!l.allows_addr(ip("11.0.0.1"), 22));
        assert!(l.allows_addr(ip("::ffff:10.0.0.1"), 22), "mapped v4 is v4");
        assert!(l.allows_addr(ip("fd12::1"), 443));
        assert!(!l.allows_addr(ip("fe80::1"), 443));
        assert!(l.allows_name("printer.lan", 80));
        assert!(l.allows_name("a.b.LAN.", 443));
        assert!(
            !l.allows_name("lan", 80),
            "the domain itself is not below it"
        );
        assert!(!l.allows_name("evil-lan", 80));
        assert!(!l.allows_name("printer.lan", 22));
        assert!(l.allows_name("LocalHost", 8080));
        assert!(!l.allows_name("localhost", 80));
        assert!(
            !l.allows_name("10.0.0.1", 22),
            "names never match address rules"
        );
        assert!(l.has_addr_rules());
        let empty = AllowList::default();
        assert!(!empty.allows_name("localhost", 80));
        assert!(!empty.allows_addr(ip("127.0.0.1"), 80));
        let any = AllowList::parse("*:*").unwrap();
        assert!(any.allows_name("x", 1) && any.allows_addr(ip("::"), 65535));
        let zero = AllowList::parse("0.0.0.0/0:1").unwrap();
        assert!(zero.allows_addr(ip("255.1.2.3"), 1) && !zero.allows_addr(ip("::2"), 1));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "[ -~]{0,60}") {
            let _ = AllowList::parse(&s);
        }

        #[test]
        fn printed_lists_parse_back(s in "([a-z]{1,5}|\\*\\.[a-z]{1,4}|10\\.[0-9]\\.0\\.0/[0-9]|\\*):([1-9][0-9]{0,3}|\\*)") {
            let l = AllowList::parse(&s).unwrap();
            prop_assert_eq!(AllowList::parse(&l.to_string()).unwrap(), l);
        }
    }
}
