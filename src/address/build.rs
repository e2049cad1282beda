//! The builders: one per address type, turning a resolved [`Ctx`] into a
//! typed [`Address`], with every value parsed and range-checked.

use std::time::Duration;

use super::error::AddressError;
use super::parse::*;
use super::resolve::{Ctx, Opt};
use super::types::*;
use super::values::*;
// The link's defaults, for checking `dead-after` against `keepalive`.
use crate::link::{DEFAULT_DEAD_AFTER, DEFAULT_KEEPALIVE};

impl<'a> Ctx<'a> {
    pub(super) fn build(&self) -> Result<Address, AddressError> {
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
                    .value("allow", |v| {
                        crate::allow::AllowList::parse(v).map_err(ValueError::Allow)
                    })?
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
                        Err(ValueError::Form("the command is empty"))
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

    pub(super) fn max_datagram(&self) -> Result<usize, AddressError> {
        Ok(self
            .value("max-datagram", |v| uint(v, 1, 65_507).map(|n| n as usize))?
            .unwrap_or(DEFAULT_MAX_DATAGRAM))
    }

    pub(super) fn idle_timeout(&self) -> Result<Duration, AddressError> {
        Ok(self
            .value("idle-timeout", positive_seconds)?
            .unwrap_or(DEFAULT_UDP_IDLE))
    }

    pub(super) fn listen(&self) -> Result<ListenOptions, AddressError> {
        self.listen_with(false)
    }

    /// Listener options; `implied_fork` for listeners that always fork.
    pub(super) fn listen_with(&self, implied_fork: bool) -> Result<ListenOptions, AddressError> {
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
    pub(super) fn in_order<'s>(
        &'s self,
        names: &'s [&str],
    ) -> impl Iterator<Item = &'s Opt<'a>> + 's {
        self.opts
            .iter()
            .filter(move |o| names.contains(&o.spec.name))
    }

    pub(super) fn line(&self) -> Result<LineSettings, AddressError> {
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

    pub(super) fn serial_mux(&self) -> Result<Address, AddressError> {
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
        let duplex = self.duplex()?;
        let rs485 = self.flag("rs485").unwrap_or(false);
        let boot = self.boot_options()?;
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
            duplex,
            rs485,
            boot,
        }))
    }

    /// `duplex=half` with its `turnaround=` and `max-turn=` (which mean nothing
    /// on a full-duplex line, so they are refused there).
    fn duplex(&self) -> Result<Duplex, AddressError> {
        let turnaround = self.value("turnaround", |v| {
            duration(v, MILLIS).and_then(|d| at_most(d, Duration::from_secs(1), MILLIS, "ms"))
        })?;
        let max_turn = self.value("max-turn", |v| {
            duration(v, MILLIS)
                .and_then(|d| at_most(d, Duration::from_secs(10), MILLIS, "ms"))
                .and_then(|d| {
                    if d < Duration::from_millis(10) {
                        Err(ValueError::Form("must be at least 10 ms"))
                    } else {
                        Ok(d)
                    }
                })
        })?;
        if self.opt("duplex").is_some_and(|o| o.value == "half") {
            return Ok(Duplex::Half {
                turnaround,
                max_turn,
            });
        }
        match self.opt("turnaround").or(self.opt("max-turn")) {
            Some(o) => Err(self.err(o.pos, format!("{} needs duplex=half", o.spec.name))),
            None => Ok(Duplex::Full),
        }
    }

    fn boot_options(&self) -> Result<BootOptions, AddressError> {
        let bootstrap = self.value("bootstrap", |v| match super::parse_address(v) {
            Ok(_) => Ok(v.to_string()),
            Err(_) => Err(ValueError::Form("not an address sfs understands")),
        })?;
        let boot = BootOptions {
            bootstrap,
            peer_binary: self.value("peer-binary", path_text)?,
            peer_dir: self.value("peer-dir", |v| path_text(v).map(|_| v.to_string()))?,
            exit_with_peer: self.flag("exit-with-peer").unwrap_or(false),
        };
        if boot.bootstrap.is_none() {
            for name in ["peer-binary", "peer-dir"] {
                if let Some(o) = self.opt(name) {
                    return Err(self.err(o.pos, format!("option '{name}' needs 'bootstrap='")));
                }
            }
        }
        Ok(boot)
    }

    pub(super) fn impairments(&self) -> Result<Impairments, AddressError> {
        let d = Impairments::default();
        Ok(Impairments {
            ber: self.value("ber", probability)?.unwrap_or(d.ber),
            drop: self.value("drop", probability)?.unwrap_or(d.drop),
            insert: self.value("insert", probability)?.unwrap_or(d.insert),
            burst: self.value("burst", |v| {
                let (rate, len) = v
                    .split_once(':')
                    .ok_or(ValueError::Form("expected RATE:LEN"))?;
                let rate = float(rate)
                    .and_then(|r| {
                        if r <= 0.0 {
                            Err(ValueError::Form("must be positive"))
                        } else if r > MAX_BURST_RATE {
                            Err(ValueError::RateAbove(MAX_BURST_RATE))
                        } else {
                            Ok(r)
                        }
                    })
                    .map_err(ValueError::of("RATE"))?;
                let len = uint(len, 1, MAX_BURST_LEN).map_err(ValueError::of("LEN"))?;
                Ok((rate, len as u32))
            })?,
            outage: self.value("outage", |v| {
                let (start, dur) = v
                    .split_once(':')
                    .ok_or(ValueError::Form("expected START:DUR"))?;
                let start = seconds(start).map_err(ValueError::of("START"))?;
                let dur = positive_seconds(dur).map_err(ValueError::of("DUR"))?;
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
            half_duplex: self.opt("duplex").is_some_and(|o| o.value == "half"),
        })
    }
}
