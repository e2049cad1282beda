//! Canonical printing: every [`Address`] prints as an address string that parses
//! back to an equal value. Defaults are omitted; keywords are upper case, options
//! lower case, in table order; floats use Rust's shortest round-trip form and
//! durations are printed exactly.

use std::fmt::{self, Display, Formatter, Write as _};
use std::path::Path;

use super::parse::{MILLIS, SECONDS};
use super::types::*;
use super::values::format_duration;

/// Writes `text` inside double quotes, escaping `"` and `\`.
fn write_quoted(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        if c == '"' || c == '\\' {
            f.write_char('\\')?;
        }
        f.write_char(c)?;
    }
    f.write_char('"')
}

/// A parameter: bare when that parses back the same, quoted otherwise.
fn write_param(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    if text.is_empty()
        || text.starts_with('[')
        || text.contains([':', ',', '"'])
        || text.contains(char::is_whitespace)
    {
        write_quoted(f, text)
    } else {
        f.write_str(text)
    }
}

/// An option value: bare unless it holds `,` or `"` (or spaces, for legibility).
fn write_value(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    if text.is_empty() || text.contains([',', '"']) || text.contains(char::is_whitespace) {
        write_quoted(f, text)
    } else {
        f.write_str(text)
    }
}

fn path_text(p: &Path) -> std::borrow::Cow<'_, str> {
    p.to_string_lossy()
}

/// A host, IPv6 literals in brackets.
fn write_host(f: &mut Formatter<'_>, host: &str) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]")
    } else {
        write_param(f, host)
    }
}

/// A byte count, as `8k` when a whole number of KiB.
fn write_bytes(f: &mut Formatter<'_>, n: u64) -> fmt::Result {
    if n != 0 && n % 1024 == 0 {
        write!(f, "{}k", n / 1024)
    } else {
        write!(f, "{n}")
    }
}

fn write_listen(f: &mut Formatter<'_>, l: &ListenOptions, between: &str) -> fmt::Result {
    // `between` holds the type-specific options that sit between fork and
    // max-children in table order (TCP-LISTEN's bind and reuseaddr).
    if l.fork {
        f.write_str(",fork")?;
    }
    f.write_str(between)?;
    if let Some(n) = l.max_children {
        write!(f, ",max-children={n}")?;
    }
    if l.backlog != ListenOptions::default().backlog {
        write!(f, ",backlog={}", l.backlog)?;
    }
    Ok(())
}

fn write_udp(f: &mut Formatter<'_>, max: usize, idle: std::time::Duration) -> fmt::Result {
    if max != DEFAULT_MAX_DATAGRAM {
        write!(f, ",max-datagram={max}")?;
    }
    if idle != DEFAULT_UDP_IDLE {
        write!(f, ",idle-timeout={}", format_duration(idle, SECONDS))?;
    }
    Ok(())
}

impl Display for LineSettings {
    /// The line options that differ from the defaults, each preceded by a comma:
    /// `,b9600,cs7,parity=even,stopbits=2,crtscts`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let d = LineSettings::default();
        if self.baud != d.baud {
            write!(f, ",b{}", self.baud)?;
        }
        if self.data_bits != d.data_bits {
            write!(f, ",cs{}", self.data_bits)?;
        }
        match self.parity {
            Parity::None => {}
            Parity::Even => f.write_str(",parity=even")?,
            Parity::Odd => f.write_str(",parity=odd")?,
        }
        if self.stop_bits != d.stop_bits {
            write!(f, ",stopbits={}", self.stop_bits)?;
        }
        match self.flow {
            FlowControl::None => {}
            FlowControl::Hardware => f.write_str(",crtscts")?,
            FlowControl::Software => f.write_str(",xonxoff")?,
        }
        Ok(())
    }
}

impl Display for Impairments {
    /// The impairment options that differ from the defaults, each preceded by a
    /// comma: `,ber=0.00001,burst=2:8,latency=5`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let d = Impairments::default();
        if self.ber != d.ber {
            write!(f, ",ber={}", self.ber)?;
        }
        if self.drop != d.drop {
            write!(f, ",drop={}", self.drop)?;
        }
        if self.insert != d.insert {
            write!(f, ",insert={}", self.insert)?;
        }
        if let Some((rate, len)) = self.burst {
            write!(f, ",burst={rate}:{len}")?;
        }
        if let Some((start, dur)) = self.outage {
            write!(
                f,
                ",outage={}:{}",
                format_duration(start, SECONDS),
                format_duration(dur, SECONDS)
            )?;
        }
        if self.latency != d.latency {
            write!(f, ",latency={}", format_duration(self.latency, MILLIS))?;
        }
        if self.seed != d.seed {
            write!(f, ",seed={}", self.seed)?;
        }
        if let Some(n) = self.fifo {
            f.write_str(",fifo=")?;
            write_bytes(f, n as u64)?;
        }
        if self.half_duplex {
            f.write_str(",duplex=half")?;
        }
        Ok(())
    }
}

impl Display for Address {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Address::TcpListen(a) | Address::Socks5Listen(a) => {
                let keyword = match (self, a.family) {
                    (Address::Socks5Listen(_), _) => "SOCKS5-LISTEN",
                    (_, Family::Any) => "TCP-LISTEN",
                    (_, Family::V4) => "TCP4-LISTEN",
                    (_, Family::V6) => "TCP6-LISTEN",
                };
                write!(f, "{keyword}:{}", a.port)?;
                let mut between = String::new();
                if let Some(bind) = &a.bind {
                    if bind.contains(':') {
                        let _ = write!(between, ",bind=[{bind}]");
                    } else {
                        let _ = write!(between, ",bind={bind}");
                    }
                }
                if !a.reuseaddr {
                    between.push_str(",reuseaddr=0");
                }
                let mut listen = a.listen.clone();
                if matches!(self, Address::Socks5Listen(_)) {
                    listen.fork = false; // implied, not written
                }
                write_listen(f, &listen, &between)
            }
            Address::UdpListen(a) => {
                write!(f, "UDP-LISTEN:{}", a.port)?;
                if let Some(bind) = &a.bind {
                    if bind.contains(':') {
                        write!(f, ",bind=[{bind}]")?;
                    } else {
                        write!(f, ",bind={bind}")?;
                    }
                }
                if !a.reuseaddr {
                    f.write_str(",reuseaddr=0")?;
                }
                write_udp(f, a.max_datagram, a.idle_timeout)
            }
            Address::UdpConnect(a) => {
                f.write_str("UDP:")?;
                write_host(f, &a.host)?;
                write!(f, ":{}", a.port)?;
                write_udp(f, a.max_datagram, a.idle_timeout)
            }
            Address::Socks5Dial(a) => {
                f.write_str("SOCKS5-DIAL")?;
                if let Some(t) = a.connect_timeout {
                    write!(f, ",connect-timeout={}", format_duration(t, SECONDS))?;
                }
                if !a.allow.rules.is_empty() {
                    f.write_str(",allow=")?;
                    write_value(f, &a.allow.to_string())?;
                }
                Ok(())
            }
            Address::TcpConnect(a) => {
                let keyword = match a.family {
                    Family::Any => "TCP",
                    Family::V4 => "TCP4",
                    Family::V6 => "TCP6",
                };
                write!(f, "{keyword}:")?;
                write_host(f, &a.host)?;
                write!(f, ":{}", a.port)?;
                if let Some(t) = a.connect_timeout {
                    write!(f, ",connect-timeout={}", format_duration(t, SECONDS))?;
                }
                Ok(())
            }
            Address::UnixListen(a) => {
                f.write_str("UNIX-LISTEN:")?;
                write_param(f, &path_text(&a.path))?;
                write_listen(f, &a.listen, "")?;
                if a.unlink_early {
                    f.write_str(",unlink-early")?;
                }
                Ok(())
            }
            Address::UnixConnect(a) => {
                f.write_str("UNIX-CONNECT:")?;
                write_param(f, &path_text(&a.path))
            }
            Address::Stdio => f.write_str("STDIO"),
            Address::Exec(a) => {
                f.write_str("EXEC:")?;
                write_quoted(f, &a.command)
            }
            Address::Serial(a) => {
                f.write_str("SERIAL:")?;
                write_param(f, &a.device)?;
                write!(f, "{}", a.line)
            }
            Address::SerialMux(a) => {
                f.write_str("SERIAL-MUX:")?;
                write_param(f, &a.device)?;
                write!(f, "{}", a.line)?;
                if !a.service.is_empty() {
                    f.write_str(",service=")?;
                    write_value(f, &a.service)?;
                }
                if let Some(w) = a.window {
                    f.write_str(",window=")?;
                    write_bytes(f, u64::from(w))?;
                }
                if let Some(n) = a.max_channels {
                    write!(f, ",max-channels={n}")?;
                }
                if let Some(k) = a.keepalive {
                    write!(f, ",keepalive={}", format_duration(k, SECONDS))?;
                }
                if let Some(d) = a.dead_after {
                    write!(f, ",dead-after={}", format_duration(d, SECONDS))?;
                }
                if let Some(p) = &a.secret_file {
                    f.write_str(",secret-file=")?;
                    write_value(f, &path_text(p))?;
                }
                if let Some(c) = a.compress {
                    f.write_str(if c { ",compress=on" } else { ",compress=off" })?;
                }
                if let Duplex::Half {
                    turnaround,
                    max_turn,
                } = a.duplex
                {
                    f.write_str(",duplex=half")?;
                    if let Some(t) = turnaround {
                        write!(f, ",turnaround={}", format_duration(t, MILLIS))?;
                    }
                    if let Some(t) = max_turn {
                        write!(f, ",max-turn={}", format_duration(t, MILLIS))?;
                    }
                }
                if a.rs485 {
                    f.write_str(",rs485")?;
                }
                if let Some(b) = &a.boot.bootstrap {
                    f.write_str(",bootstrap=")?;
                    write_value(f, b)?;
                }
                if let Some(p) = &a.boot.peer_binary {
                    f.write_str(",peer-binary=")?;
                    write_value(f, &path_text(p))?;
                }
                if let Some(d) = &a.boot.peer_dir {
                    f.write_str(",peer-dir=")?;
                    write_value(f, d)?;
                }
                if a.boot.exit_with_peer {
                    f.write_str(",exit-with-peer")?;
                }
                Ok(())
            }
            Address::Pty(a) => {
                f.write_str("PTY")?;
                if let Some(link) = &a.link {
                    f.write_str(",link=")?;
                    write_value(f, &path_text(link))?;
                }
                write!(f, "{}{}", a.line, a.impair)
            }
        }
    }
}
