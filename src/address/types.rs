//! Typed addresses: what the grammar produces and what endpoints consume.
//!
//! Every value here prints back (via `Display`, implemented in `display.rs`) to an
//! address string that parses to an equal value.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One parsed address expression, e.g. `TCP-LISTEN:2222,fork`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Address {
    /// `TCP-LISTEN:PORT` (also `TCP4-LISTEN`, `TCP6-LISTEN`).
    TcpListen(TcpListen),
    /// `TCP:HOST:PORT` (also `TCP-CONNECT`, `TCP4`, `TCP6`).
    TcpConnect(TcpConnect),
    /// `UNIX-LISTEN:PATH`.
    UnixListen(UnixListen),
    /// `UNIX-CONNECT:PATH` (also `UNIX`).
    UnixConnect(UnixConnect),
    /// `STDIO` or `-`.
    Stdio,
    /// `EXEC:"command args"`.
    Exec(Exec),
    /// `SERIAL:DEVICE`: the raw device, bytes as they are.
    Serial(Serial),
    /// `SERIAL-MUX:DEVICE`: the reliable multiplexed link over the device.
    SerialMux(SerialMux),
    /// `PTY`: a new pseudo-terminal whose slave is published at `link`.
    Pty(Pty),
    /// `SOCKS5-LISTEN:PORT`: a SOCKS5 server; each request becomes a channel
    /// that carries its destination (always serves concurrently).
    Socks5Listen(TcpListen),
    /// `SOCKS5-DIAL,allow=RULES`: dials the destination each channel carries,
    /// if the allow-list permits it.
    Socks5Dial(Socks5Dial),
    /// `UDP-LISTEN:PORT`: one connection per client address, datagrams kept whole.
    UdpListen(UdpListen),
    /// `UDP:HOST:PORT`: a socket connected to HOST:PORT.
    UdpConnect(UdpConnect),
}

/// Default `max-datagram`: an Ethernet MTU minus IPv4 and UDP headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1472;
/// Default `idle-timeout` of a UDP connection.
pub const DEFAULT_UDP_IDLE: Duration = Duration::from_secs(60);

/// `UDP-LISTEN:PORT[,bind=ADDR][,reuseaddr][,max-datagram=BYTES][,idle-timeout=SECONDS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpListen {
    /// Port to receive on.
    pub port: u16,
    /// `bind=ADDR`: local address; default loopback (it always faces
    /// SERIAL-MUX; see [`default_listen_ip`]).
    pub bind: Option<String>,
    /// `reuseaddr`: SO_REUSEADDR, on by default.
    pub reuseaddr: bool,
    /// `max-datagram=BYTES`: larger datagrams are dropped with a log line.
    pub max_datagram: usize,
    /// `idle-timeout=SECONDS`: a client's connection ends after this long
    /// without a datagram either way.
    pub idle_timeout: Duration,
}

/// `UDP:HOST:PORT[,max-datagram=BYTES][,idle-timeout=SECONDS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConnect {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `max-datagram=BYTES`.
    pub max_datagram: usize,
    /// `idle-timeout=SECONDS`.
    pub idle_timeout: Duration,
}

/// `SOCKS5-DIAL[,allow=RULES][,connect-timeout=SECONDS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks5Dial {
    /// `allow=RULES`: destinations that may be dialed; empty denies all.
    pub allow: crate::allow::AllowList,
    /// `connect-timeout=SECONDS`, default 10 s.
    pub connect_timeout: Option<Duration>,
}

/// IP address family restriction (`TCP4`/`TCP6` spellings, `pf=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Either family (plain `TCP`, `TCP-LISTEN`).
    #[default]
    Any,
    /// IPv4 only (`TCP4`).
    V4,
    /// IPv6 only (`TCP6`).
    V6,
}

/// Where a TCP/UDP/SOCKS5 listener binds without `bind=`.
///
/// In front of a SERIAL-MUX a listener forwards into a tunnel that may end at a
/// shell on the far machine, so it follows `ssh -L`: loopback only
/// (`127.0.0.1`, or `::1` for the IPv6-only spellings); `bind=0.0.0.0` or
/// `bind=[::]` opens it to the network deliberately. Elsewhere socat's
/// default holds (every address): `TCP-LISTEN SERIAL` is ser2net-style remote
/// access to a device, meant to be reached from other machines.
pub fn default_listen_ip(family: Family, facing_mux: bool) -> std::net::IpAddr {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match (family, facing_mux) {
        (Family::V6, true) => Ipv6Addr::LOCALHOST.into(),
        (_, true) => Ipv4Addr::LOCALHOST.into(),
        (Family::V6, false) => Ipv6Addr::UNSPECIFIED.into(),
        (_, false) => Ipv4Addr::UNSPECIFIED.into(),
    }
}

/// Options shared by listening addresses (TCP-LISTEN, UNIX-LISTEN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenOptions {
    /// `fork`: serve every accepted connection concurrently and keep listening.
    /// Without it the listener serves one connection and the program exits.
    pub fork: bool,
    /// `max-children=N`: with `fork`, at most N connections at once (others wait).
    pub max_children: Option<usize>,
    /// `backlog=N`: listen(2) backlog. Default 1024, not socat's 5: a burst of
    /// connections (a browser loading a page) must queue, not be dropped.
    pub backlog: u32,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            fork: false,
            max_children: None,
            backlog: 1024,
        }
    }
}

/// `TCP-LISTEN:PORT[,fork][,bind=ADDR][,reuseaddr[=0|1]][,max-children=N][,backlog=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpListen {
    /// Port to listen on (0 = any free port).
    pub port: u16,
    /// Address family (`TCP4-LISTEN`, `TCP6-LISTEN`).
    pub family: Family,
    /// `bind=ADDR`: local address to listen on; default loopback in front
    /// of SERIAL-MUX, all addresses elsewhere ([`default_listen_ip`]).
    pub bind: Option<String>,
    /// `reuseaddr`: SO_REUSEADDR, on by default (socat 1.8 behaviour).
    pub reuseaddr: bool,
    /// Listener options.
    pub listen: ListenOptions,
}

/// `TCP:HOST:PORT[,connect-timeout=SECONDS][,bind=ADDR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConnect {
    /// Host name, IPv4 literal, or IPv6 literal (without brackets).
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Address family (`TCP4`, `TCP6`).
    pub family: Family,
    /// `connect-timeout=SECONDS` (fractions allowed).
    pub connect_timeout: Option<Duration>,
}

/// `UNIX-LISTEN:PATH[,fork][,max-children=N][,backlog=N][,unlink-early]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListen {
    /// Socket path.
    pub path: PathBuf,
    /// `unlink-early`: remove a stale socket file before binding.
    pub unlink_early: bool,
    /// Listener options.
    pub listen: ListenOptions,
}

/// `UNIX-CONNECT:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixConnect {
    /// Socket path.
    pub path: PathBuf,
}

/// `EXEC:"command args"` (the command is split on whitespace, honouring quotes,
/// and run directly, not through a shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// The command line as given (without the outer quotes).
    pub command: String,
}

/// Parity setting of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parity {
    /// No parity bit (default).
    #[default]
    None,
    /// Even parity (`parity=even`, socat `parenb`).
    Even,
    /// Odd parity (`parity=odd`, socat `parenb,parodd`).
    Odd,
}

/// Flow control of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowControl {
    /// None (default).
    #[default]
    None,
    /// RTS/CTS (`crtscts`).
    Hardware,
    /// XON/XOFF (`xonxoff`). Not usable under SERIAL-MUX (binary data).
    Software,
}

/// Line settings shared by SERIAL, SERIAL-MUX and PTY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    /// Baud rate (`b115200` or `baud=115200`), default 115200.
    pub baud: u32,
    /// Data bits 5..=8 (`cs8`), default 8.
    pub data_bits: u8,
    /// Parity (`parity=`, `parenb`, `parodd`), default none.
    pub parity: Parity,
    /// Stop bits 1 or 2 (`stopbits=`, `cstopb`), default 1.
    pub stop_bits: u8,
    /// Flow control (`crtscts`, `xonxoff`), default none.
    pub flow: FlowControl,
}

impl Default for LineSettings {
    fn default() -> Self {
        LineSettings {
            baud: 115_200,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow: FlowControl::None,
        }
    }
}

impl LineSettings {
    /// Bits on the wire per character: start + data + parity + stop (8N1 = 10).
    pub fn bits_per_char(&self) -> u32 {
        1 + u32::from(self.data_bits)
            + u32::from(self.parity != Parity::None)
            + u32::from(self.stop_bits)
    }

    /// Characters (bytes) per second the line carries.
    pub fn byte_rate(&self) -> u32 {
        (self.baud / self.bits_per_char()).max(1)
    }
}

/// `SERIAL:DEVICE[,LINE OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial {
    /// Device path: `/dev/ttyUSB0`, `COM3`, `\\.\COM12`.
    pub device: String,
    /// Line settings.
    pub line: LineSettings,
}

/// `SERIAL-MUX:DEVICE[,LINE OPTIONS][,service=NAME][,window=BYTES][,max-channels=N][,keepalive=SECONDS][,dead-after=SECONDS][,compress=on|off]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialMux {
    /// Device path.
    pub device: String,
    /// Line settings.
    pub line: LineSettings,
    /// `service=NAME`: which service this bridge offers (dialing side) or asks for
    /// (listening side). Several bridges on one command line may share a device
    /// with different services. Default: the empty name ("default").
    pub service: String,
    /// `window=BYTES`: per-channel receive window; default derived from the baud.
    pub window: Option<u32>,
    /// `max-channels=N`: channels open at once, default 256.
    pub max_channels: Option<u32>,
    /// `keepalive=SECONDS`: idle time before a keepalive probe, default 1 s.
    pub keepalive: Option<Duration>,
    /// `dead-after=SECONDS`: silence after which the peer is declared gone and all
    /// channels are reset, default 60 s (rides out line outages shorter than that).
    pub dead_after: Option<Duration>,
    /// `secret-file=PATH`: pre-shared key; the link is then authenticated and
    /// encrypted (see the man page's SECURITY section). Read when the device opens.
    pub secret_file: Option<PathBuf>,
    /// `compress=on|off`: compress channel data (LZ4, per record, only what
    /// shrinks) when the peer supports it. Unset (`None`): on without
    /// `secret-file=`, off with it (compressed sizes leak through encryption).
    pub compress: Option<bool>,
    /// `duplex=half` and its `turnaround=`/`max-turn=`: take turns on a shared medium.
    pub duplex: Duplex,
    /// `rs485`: the driver toggles RTS around transmissions (Linux TIOCSRS485).
    pub rs485: bool,
    /// `bootstrap=` and its options.
    pub boot: BootOptions,
}

/// `duplex=full|half` of a SERIAL-MUX end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplex {
    /// Both directions at once (a null-modem cable): the default.
    #[default]
    Full,
    /// One shared medium: the ends take turns.
    Half {
        /// `turnaround=MS`: the far end's switch from sending to receiving.
        turnaround: Option<Duration>,
        /// `max-turn=MS`: longest turn before passing it.
        max_turn: Option<Duration>,
    },
}

/// `bootstrap=ADDRESS[,peer-binary=PATH][,peer-dir=DIR]` and the far side's
/// `exit-with-peer` (see [`crate::bootstrap`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootOptions {
    /// The far side's address, as written (checked to parse).
    pub bootstrap: Option<String>,
    /// `peer-binary=PATH`: the sfs to upload.
    pub peer_binary: Option<PathBuf>,
    /// `peer-dir=DIR`: where the far copy lives.
    pub peer_dir: Option<String>,
    /// `exit-with-peer`: exit when the link's session ends.
    pub exit_with_peer: bool,
}

/// Seeded impairments a PTY end applies to the bytes its program writes, on their
/// way to the other end of a virtual cable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairments {
    /// `ber=X`: independent bit error rate.
    pub ber: f64,
    /// `drop=X`: per-byte drop probability.
    pub drop: f64,
    /// `insert=X`: per-byte probability of inserting a random garbage byte.
    pub insert: f64,
    /// `burst=RATE:LEN`: RATE noise bursts per second, each corrupting LEN byte times.
    pub burst: Option<(f64, u32)>,
    /// `outage=START:DUR`: line dead from START seconds for DUR seconds.
    pub outage: Option<(Duration, Duration)>,
    /// `latency=MS`: one-way latency added after serialisation (milliseconds).
    pub latency: Duration,
    /// `seed=N`: RNG seed for the impairments (default 1).
    pub seed: u64,
    /// `fifo=BYTES`: device queue size, default 4096.
    pub fifo: Option<usize>,
    /// `duplex=half` (on either end): both directions share one medium, bytes
    /// overlapping in time are garbled ([`crate::line::half`]).
    pub half_duplex: bool,
}

impl Default for Impairments {
    /// A clean line: no errors, drops, bursts, outages or latency; seed 1 as
    /// documented on [`Impairments::seed`].
    fn default() -> Self {
        Impairments {
            ber: 0.0,
            drop: 0.0,
            insert: 0.0,
            burst: None,
            outage: None,
            latency: Duration::ZERO,
            seed: 1,
            fifo: None,
            half_duplex: false,
        }
    }
}

/// `PTY[,link=PATH][,LINE OPTIONS][,IMPAIRMENTS]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pty {
    /// `link=PATH`: symlink to publish the slave side at (removed on exit).
    pub link: Option<PathBuf>,
    /// Line settings: the pace of bytes leaving this end (used when two PTYs are
    /// joined into a virtual cable).
    pub line: LineSettings,
    /// Impairments applied to bytes leaving this end.
    pub impair: Impairments,
}

impl Address {
    /// True for addresses that wait for connections (TCP-LISTEN, UNIX-LISTEN).
    pub fn is_listener(&self) -> bool {
        matches!(
            self,
            Address::TcpListen(_)
                | Address::UnixListen(_)
                | Address::Socks5Listen(_)
                | Address::UdpListen(_)
        )
    }

    /// The canonical (upper-case) type keyword of this address.
    pub fn keyword(&self) -> &'static str {
        match self {
            Address::TcpListen(_) => "TCP-LISTEN",
            Address::TcpConnect(_) => "TCP",
            Address::UnixListen(_) => "UNIX-LISTEN",
            Address::UnixConnect(_) => "UNIX-CONNECT",
            Address::Stdio => "STDIO",
            Address::Exec(_) => "EXEC",
            Address::Serial(_) => "SERIAL",
            Address::SerialMux(_) => "SERIAL-MUX",
            Address::Pty(_) => "PTY",
            Address::Socks5Listen(_) => "SOCKS5-LISTEN",
            Address::Socks5Dial(_) => "SOCKS5-DIAL",
            Address::UdpListen(_) => "UDP-LISTEN",
            Address::UdpConnect(_) => "UDP",
        }
    }
}

/// A serial adapter named by its USB identity instead of a path:
/// `usb=VID:PID[:SERIAL]` (hex ids, as `sfs --list-ports` prints them). It is
/// looked up each time the device is opened, so a replugged adapter is found
/// under its new name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbId {
    /// USB vendor id.
    pub vid: u16,
    /// USB product id.
    pub pid: u16,
    /// The adapter's serial number, when several share VID:PID.
    pub serial: Option<String>,
}

impl UsbId {
    /// `None` when `device` is a path; otherwise the parsed identity or why it
    /// is not one.
    pub fn from_device(device: &str) -> Option<Result<UsbId, super::ValueError>> {
        let rest = device
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("usb="))
            .map(|_| &device[4..])?;
        let bad = || super::ValueError::UsbId(device.to_string());
        let mut parts = rest.splitn(3, ':');
        let hex = |s: Option<&str>| {
            s.filter(|s| (1..=4).contains(&s.len()))
                .and_then(|s| u16::from_str_radix(s, 16).ok())
        };
        let (Some(vid), Some(pid)) = (hex(parts.next()), hex(parts.next())) else {
            return Some(Err(bad()));
        };
        let serial = match parts.next() {
            Some("") => return Some(Err(bad())),
            s => s.map(str::to_string),
        };
        Some(Ok(UsbId { vid, pid, serial }))
    }
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "usb={:04x}:{:04x}", self.vid, self.pid)?;
        match &self.serial {
            Some(s) => write!(f, ":{s}"),
            None => Ok(()),
        }
    }
}
