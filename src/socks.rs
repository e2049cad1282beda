//! SOCKS5 (RFC 1928) server side, sans-IO: parse a client's greeting and
//! CONNECT request from bytes, build the replies, and map why a channel open
//! failed onto a reply code. Hand-written: the subset sfs needs is small.
//!
//! Parsers take the bytes received so far and return `Ok(None)` while more
//! are needed, so the driver reads until they decide; malformed input is an
//! error, never a panic.

use crate::mux::{RefuseReason, Target};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Protocol version byte.
pub const VERSION: u8 = 5;
/// Method: no authentication.
pub const METHOD_NONE: u8 = 0x00;
/// Method: username/password (RFC 1929).
pub const METHOD_USERPASS: u8 = 0x02;
/// Method reply: no acceptable method.
pub const METHOD_UNACCEPTABLE: u8 = 0xff;
/// Longest greeting + request a client can send (bounds the read buffer).
pub const MAX_HANDSHAKE: usize = 2 + 255 + 4 + 1 + 255 + 2;

/// Reply codes (RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// Succeeded.
    Succeeded = 0x00,
    /// General SOCKS server failure.
    GeneralFailure = 0x01,
    /// Connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// Network unreachable.
    NetworkUnreachable = 0x03,
    /// Host unreachable.
    HostUnreachable = 0x04,
    /// Connection refused.
    ConnectionRefused = 0x05,
    /// TTL expired.
    TtlExpired = 0x06,
    /// Command not supported.
    CommandNotSupported = 0x07,
    /// Address type not supported.
    AddressTypeNotSupported = 0x08,
}

impl Reply {
    /// The reply for a far-side refusal.
    pub fn for_refusal(reason: RefuseReason) -> Self {
        match reason {
            RefuseReason::NotAllowed => Reply::NotAllowed,
            RefuseReason::ConnectionRefused => Reply::ConnectionRefused,
            RefuseReason::NoRoute | RefuseReason::NameNotFound => Reply::HostUnreachable,
            RefuseReason::TimedOut => Reply::TtlExpired,
            RefuseReason::TooManyChannels | RefuseReason::Other => Reply::GeneralFailure,
        }
    }

    /// The 10-byte reply; the bound address is not meaningful through a
    /// tunnel, so it is 0.0.0.0:0 (clients ignore it for CONNECT).
    pub fn encode(self) -> [u8; 10] {
        [VERSION, self as u8, 0, 1, 0, 0, 0, 0, 0, 0]
    }
}

/// Why a client's bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksError {
    /// Not SOCKS version 5 (or RFC 1929 version 1).
    Version(u8),
    /// A greeting offering no methods.
    NoMethods,
    /// A command other than CONNECT (the reply to send is 0x07).
    Command(u8),
    /// An address type other than 1, 3, 4 (the reply to send is 0x08).
    AddressType(u8),
    /// A reserved byte that is not zero, an empty or non-UTF-8 name, port 0.
    Malformed(&'static str),
}

impl std::fmt::Display for SocksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocksError::Version(v) => write!(f, "not a SOCKS5 client (version byte {v:#04x})"),
            SocksError::NoMethods => f.write_str("greeting offers no authentication method"),
            SocksError::Command(c) => write!(f, "command {c:#04x} not supported (only CONNECT)"),
            SocksError::AddressType(a) => write!(f, "address type {a:#04x} not supported"),
            SocksError::Malformed(w) => write!(f, "malformed request: {w}"),
        }
    }
}

impl std::error::Error for SocksError {}

impl SocksError {
    /// The reply a client gets before the connection is closed, if one fits.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            SocksError::Command(_) => Some(Reply::CommandNotSupported),
            SocksError::AddressType(_) => Some(Reply::AddressTypeNotSupported),
            SocksError::Malformed(_) => Some(Reply::GeneralFailure),
            SocksError::Version(_) | SocksError::NoMethods => None,
        }
    }
}

/// A parse result: `None` until enough bytes arrived, then the value and how
/// many bytes it took.
pub type Parsed<T> = Result<Option<(T, usize)>, SocksError>;

/// Parses the greeting `VER NMETHODS METHODS…`; yields the offered methods.
pub fn parse_greeting(b: &[u8]) -> Parsed<Vec<u8>> {
    let Some(&ver) = b.first() else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    let Some(&n) = b.get(1) else {
        return Ok(None);
    };
    if n == 0 {
        return Err(SocksError::NoMethods);
    }
    let end = 2 + usize::from(n);
    Ok(b.get(2..end).map(|m| (m.to_vec(), end)))
}

/// Parses an RFC 1929 `VER ULEN UNAME PLEN PASSWD`; yields (user, password).
pub fn parse_userpass(b: &[u8]) -> Parsed<(Vec<u8>, Vec<u8>)> {
    let Some(&ver) = b.first() else {
        return Ok(None);
    };
    if ver != 1 {
        return Err(SocksError::Version(ver));
    }
    let Some(&ulen) = b.get(1) else {
        return Ok(None);
    };
    let u_end = 2 + usize::from(ulen);
    let Some(&plen) = b.get(u_end) else {
        return Ok(None);
    };
    let end = u_end + 1 + usize::from(plen);
    if b.len() < end {
        return Ok(None);
    }
    Ok(Some((
        (b[2..u_end].to_vec(), b[u_end + 1..end].to_vec()),
        end,
    )))
}

/// Parses `VER CMD RSV ATYP DST.ADDR DST.PORT`; yields the CONNECT target
/// (IPv4 and IPv6 addresses as text, names as given).
pub fn parse_request(b: &[u8]) -> Parsed<Target> {
    if b.len() < 5 {
        // Check what is there already, so garbage is rejected early.
        if let Some(&v) = b.first().filter(|&&v| v != VERSION) {
            return Err(SocksError::Version(v));
        }
        return Ok(None);
    }
    let (ver, cmd, rsv, atyp) = (b[0], b[1], b[2], b[3]);
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    if rsv != 0 {
        return Err(SocksError::Malformed("reserved byte not zero"));
    }
    let (host, at) = match atyp {
        1 => {
            let Some(a) = b.get(4..8) else {
                return Ok(None);
            };
            (Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(), 8)
        }
        3 => {
            let n = usize::from(b[4]);
            let Some(name) = b.get(5..5 + n) else {
                return Ok(None);
            };
            if n == 0 {
                return Err(SocksError::Malformed("empty host name"));
            }
            let name = std::str::from_utf8(name)
                .map_err(|_| SocksError::Malformed("host name not UTF-8"))?;
            if name.bytes().any(|c| c.is_ascii_control()) {
                return Err(SocksError::Malformed("control character in host name"));
            }
            (name.to_string(), 5 + n)
        }
        4 => {
            let Some(a) = b.get(4..20) else {
                return Ok(None);
            };
            let a: [u8; 16] = a.try_into().expect("16 bytes");
            (Ipv6Addr::from(a).to_string(), 20)
        }
        other => return Err(SocksError::AddressType(other)),
    };
    let Some(p) = b.get(at..at + 2) else {
        return Ok(None);
    };
    // The command is judged once the request is complete, so that the
    // connection is closed after the whole request was read.
    if cmd != 1 {
        return Err(SocksError::Command(cmd));
    }
    let port = u16::from_be_bytes([p[0], p[1]]);
    if port == 0 {
        return Err(SocksError::Malformed("port 0"));
    }
    Ok(Some((Target { host, port }, at + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(host: &str, port: u16) -> Target {
        Target {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn greeting() {
        assert_eq!(parse_greeting(&[]), Ok(None));
        assert_eq!(parse_greeting(&[5]), Ok(None));
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(None));
        assert_eq!(parse_greeting(&[5, 2, 0, 2, 9]), Ok(Some((vec![0, 2], 4))));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(SocksError::Version(4)));
        assert_eq!(parse_greeting(&[5, 0]), Err(SocksError::NoMethods));
        // An HTTP client talking to the SOCKS port.
        assert!(parse_greeting(b"GET / HTTP/1.1\r\n").is_err());
    }

    #[test]
    fn requests_of_every_address_type() {
        let v4 = [5, 1, 0, 1, 10, 0, 0, 1, 0, 22];
        assert_eq!(parse_request(&v4), Ok(Some((t("10.0.0.1", 22), 10))));
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[1, 187]);
        assert_eq!(parse_request(&v6), Ok(Some((t("2001:db8::1", 443), 22))));
        let mut name = vec![5, 1, 0, 3, 9];
        name.extend_from_slice(b"localhost");
        name.extend_from_slice(&[0x1f, 0x90]);
        assert_eq!(parse_request(&name), Ok(Some((t("localhost", 8080), 16))));
        // Every prefix asks for more.
        for full in [&v4[..], &v6[..], &name[..]] {
            for n in 0..full.len() {
                assert_eq!(parse_request(&full[..n]), Ok(None), "prefix {n}");
            }
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        let e = |b: &[u8]| parse_request(b).unwrap_err();
        assert_eq!(e(&[4, 1, 0, 1, 1, 2, 3, 4, 0, 1]), SocksError::Version(4));
        assert_eq!(e(&[4]), SocksError::Version(4));
        assert_eq!(e(&[5, 2, 0, 1, 1, 2, 3, 4, 0, 1]), SocksError::Command(2));
        assert_eq!(
            e(&[5, 3, 0, 1, 1, 2, 3, 4, 0, 1]).reply(),
            Some(Reply::CommandNotSupported)
        );
        assert_eq!(e(&[5, 1, 0, 9, 0]), SocksError::AddressType(9));
        assert!(matches!(
            e(&[5, 1, 1, 1, 1, 2, 3, 4, 0, 1]),
            SocksError::Malformed(_)
        ));
        assert!(matches!(
            e(&[5, 1, 0, 3, 0, 0, 1]),
            SocksError::Malformed(_)
        ));
        assert!(matches!(
            e(&[5, 1, 0, 3, 1, 0xff, 0, 1]),
            SocksError::Malformed(_)
        ));
        assert!(matches!(
            e(&[5, 1, 0, 3, 1, b'\n', 0, 1]),
            SocksError::Malformed(_)
        ));
        assert!(matches!(
            e(&[5, 1, 0, 1, 1, 2, 3, 4, 0, 0]),
            SocksError::Malformed(_)
        ));
    }

    #[test]
    fn userpass() {
        assert_eq!(parse_userpass(&[1, 1, b'u']), Ok(None));
        assert_eq!(
            parse_userpass(&[1, 1, b'u', 2, b'p', b'w']),
            Ok(Some(((b"u".to_vec(), b"pw".to_vec()), 6)))
        );
        assert_eq!(parse_userpass(&[5, 0, 0]), Err(SocksError::Version(5)));
    }

    #[test]
    fn refusals_map_to_reply_codes() {
        assert_eq!(
            Reply::for_refusal(RefuseReason::NotAllowed).encode()[1],
            0x02
        );
        assert_eq!(Reply::for_refusal(RefuseReason::NoRoute).encode()[1], 0x04);
        assert_eq!(
            Reply::for_refusal(RefuseReason::NameNotFound).encode()[1],
            0x04
        );
        assert_eq!(
            Reply::for_refusal(RefuseReason::ConnectionRefused).encode()[1],
            0x05
        );
        assert_eq!(Reply::for_refusal(RefuseReason::TimedOut).encode()[1], 0x06);
        assert_eq!(Reply::for_refusal(RefuseReason::Other).encode()[1], 0x01);
        assert_eq!(Reply::Succeeded.encode(), [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_greeting(&b);
            let _ = parse_userpass(&b);
            if let Ok(Some((_, n))) = parse_request(&b) {
                prop_assert!(n <= b.len());
            }
        }
    }
}
