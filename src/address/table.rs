//! The one table of address types and the one table of options (socat's
//! `xioopen.c` / `xioopts.h` style). The parser validates against these tables, and
//! `--help` ([`help_text`]) and the man page ([`man_address_section`]) are generated
//! from them, so the three never drift apart.

use std::fmt::Write as _;

/// A family of options; an address type accepts exactly the options of its groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionGroup {
    /// Listening sockets: `fork`, `max-children`, `backlog`.
    Listen,
    /// TCP listening sockets: `bind`, `reuseaddr`.
    TcpListen,
    /// Unix listening sockets: `unlink-early`.
    UnixListen,
    /// TCP connecting sockets: `connect-timeout`.
    TcpConnect,
    /// Serial line settings: baud, character size, parity, stop bits, RTS/CTS, and
    /// the socat compatibility no-ops.
    Line,
    /// Software flow control (`xonxoff`); kept apart because SERIAL-MUX carries
    /// binary data and cannot use it.
    SoftFlow,
    /// The multiplexed link: `service`, `window`, `max-channels`, `keepalive`,
    /// `dead-after`.
    Mux,
    /// Putting sfs on a far serial console: `bootstrap`, `peer-binary`,
    /// `peer-dir`, and the far side's `exit-with-peer`.
    Bootstrap,
    /// Pseudo-terminals: `link`.
    Pty,
    /// Seeded line impairments of a PTY end: `ber`, `drop`, `burst`, ...
    Impair,
    /// Whether both directions share one medium (`duplex`): PTY and SERIAL-MUX.
    Duplex,
    /// Turn-taking on a half-duplex SERIAL-MUX: `turnaround`, `max-turn`, `rs485`.
    Turns,
    /// The far end of a SOCKS5 tunnel: `allow`.
    SocksDial,
    /// UDP over a channel: `max-datagram`, `idle-timeout`.
    Udp,
}

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A flag: `fork`; `fork=1` and `fork=0` are accepted too.
    Flag,
    /// The value is written right after the name, socat style: `b115200`, `cs8`.
    /// The string names the value (`baud`).
    Attached(&'static str),
    /// `name=VALUE`; the string is the placeholder shown in help (`SECONDS`).
    Value(&'static str),
    /// `name=WORD`, one of the listed words (case-insensitive).
    Choice(&'static [&'static str]),
    /// Accepted for socat compatibility and ignored. Only the listed spellings of
    /// the value are accepted; `""` stands for the bare name.
    Ignored(&'static [&'static str]),
}

/// One entry of the options table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// Canonical (lower-case) name; for [`ValueKind::Attached`] the prefix (`b`).
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// The group the option belongs to.
    pub group: OptionGroup,
    /// How the value is written.
    pub value: ValueKind,
    /// One-line description.
    pub help: &'static str,
}

impl OptionSpec {
    /// The name as listed in error messages: `fork`, `b<baud>`.
    pub fn display_name(&self) -> String {
        match self.value {
            ValueKind::Attached(what) => format!("{}<{}>", self.name, what),
            _ => self.name.to_string(),
        }
    }

    /// How the option is written, for help: `backlog=N`, `parity=none|even|odd`.
    pub fn usage(&self) -> String {
        match self.value {
            ValueKind::Flag => self.name.to_string(),
            ValueKind::Attached(what) => format!("{}<{}>", self.name, what),
            ValueKind::Value(meta) => format!("{}={}", self.name, meta),
            ValueKind::Choice(words) => format!("{}={}", self.name, words.join("|")),
            ValueKind::Ignored(values) => match values.iter().find(|v| !v.is_empty()) {
                Some(v) if !values.contains(&"") => format!("{}={}", self.name, v),
                _ => self.name.to_string(),
            },
        }
    }
}

/// One entry of the address type table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressType {
    /// Canonical (upper-case) keyword, as [`Address::keyword`](super::Address::keyword)
    /// returns it.
    pub name: &'static str,
    /// Other accepted keywords (`TCP-L`, `TCP4-LISTEN`, `-`).
    pub aliases: &'static [&'static str],
    /// Syntax of the parameters: `TCP:HOST:PORT`. The parser derives the number and
    /// names of the parameters from it.
    pub syntax: &'static str,
    /// Option groups this type accepts.
    pub groups: &'static [OptionGroup],
    /// What it is, in a few words, for the one-line list in `sfs -h`.
    pub summary: &'static str,
    /// Description for help and the man page.
    pub help: &'static str,
}

impl AddressType {
    /// Names of the positional parameters, from [`syntax`](Self::syntax):
    /// `["HOST", "PORT"]` for `TCP:HOST:PORT`.
    pub fn params(&self) -> impl Iterator<Item = &'static str> {
        self.syntax.split(':').skip(1).map(|p| p.trim_matches('"'))
    }

    /// Whether `option` may be given to this type.
    pub fn accepts(&self, option: &OptionSpec) -> bool {
        self.groups.contains(&option.group)
    }

    /// The options this type accepts, in table order.
    pub fn options(&self) -> impl Iterator<Item = &'static OptionSpec> + '_ {
        OPTIONS.iter().filter(move |o| self.accepts(o))
    }

    /// Looks up a type by keyword or alias, case-insensitively.
    pub fn lookup(keyword: &str) -> Option<&'static AddressType> {
        ADDRESS_TYPES.iter().find(|t| {
            t.name.eq_ignore_ascii_case(keyword)
                || t.aliases.iter().any(|a| a.eq_ignore_ascii_case(keyword))
        })
    }
}

/// Every address type, in the order help and error messages list them.
pub static ADDRESS_TYPES: &[AddressType] = &[
    AddressType {
        name: "TCP-LISTEN",
        aliases: &["TCP-L", "TCP4-LISTEN", "TCP4-L", "TCP6-LISTEN", "TCP6-L"],
        syntax: "TCP-LISTEN:PORT",
        groups: &[OptionGroup::Listen, OptionGroup::TcpListen],
        summary: "accept TCP connections (with fork: many)",
        help: "Listen for TCP connections on PORT (0: any free port). \
               TCP4-LISTEN and TCP6-LISTEN restrict the address family.",
    },
    AddressType {
        name: "TCP",
        aliases: &[
            "TCP-CONNECT",
            "TCP4",
            "TCP4-CONNECT",
            "TCP6",
            "TCP6-CONNECT",
        ],
        syntax: "TCP:HOST:PORT",
        groups: &[OptionGroup::TcpConnect],
        summary: "connect to a TCP server",
        help: "Connect to PORT (1-65535) on HOST: a host name, an IPv4 address or an \
               IPv6 address in brackets ([::1]). TCP4 and TCP6 restrict the family.",
    },
    AddressType {
        name: "UNIX-LISTEN",
        aliases: &["UNIX-L"],
        syntax: "UNIX-LISTEN:PATH",
        groups: &[OptionGroup::Listen, OptionGroup::UnixListen],
        summary: "accept Unix socket connections",
        help: "Listen for connections on the Unix socket PATH.",
    },
    AddressType {
        name: "UNIX-CONNECT",
        aliases: &["UNIX"],
        syntax: "UNIX-CONNECT:PATH",
        groups: &[],
        summary: "connect to a Unix socket",
        help: "Connect to the Unix socket PATH.",
    },
    AddressType {
        name: "STDIO",
        aliases: &["-"],
        syntax: "STDIO",
        groups: &[],
        summary: "this terminal, or the pipes sfs runs in",
        help: "Standard input and output (also written -).",
    },
    AddressType {
        name: "EXEC",
        aliases: &[],
        syntax: "EXEC:\"COMMAND\"",
        groups: &[],
        summary: "a program's standard input and output",
        help: "Run COMMAND (split into words, honouring quotes; no shell) and talk to \
               its standard input and output. Quote commands with spaces or colons. \
               On Windows the first word is the program and the rest its command line as written.",
    },
    AddressType {
        name: "SERIAL",
        aliases: &[],
        syntax: "SERIAL:DEVICE",
        groups: &[OptionGroup::Line, OptionGroup::SoftFlow],
        summary: "a serial port as one raw byte stream (socat-like)",
        help: "The serial device DEVICE (/dev/ttyUSB0, COM3, \\\\.\\COM12), raw bytes \
               as they are. DEVICE may be usb=VID:PID[:SERIAL] (hex, as sfs --list-ports \
               shows): the adapter with that USB identity, wherever it is plugged in.",
    },
    AddressType {
        name: "SERIAL-MUX",
        aliases: &[],
        syntax: "SERIAL-MUX:DEVICE",
        groups: &[
            OptionGroup::Line,
            OptionGroup::Mux,
            OptionGroup::Duplex,
            OptionGroup::Turns,
            OptionGroup::Bootstrap,
        ],
        summary: "many connections over one serial port; sfs at both ends",
        help: "A reliable link over the serial device DEVICE carrying many connections \
               at once (framing, CRC, retransmission, per-channel flow control). DEVICE \
               may be usb=VID:PID[:SERIAL], looked up again at each reopen, so a \
               replugged adapter is found under its new name.",
    },
    AddressType {
        name: "PTY",
        aliases: &[],
        syntax: "PTY",
        groups: &[
            OptionGroup::Pty,
            OptionGroup::Line,
            OptionGroup::SoftFlow,
            OptionGroup::Impair,
            OptionGroup::Duplex,
        ],
        summary: "a pseudo-terminal; two PTYs make a virtual serial cable",
        help: "A new pseudo-terminal; joined with another PTY it forms a virtual serial \
               cable paced at the line settings, with seeded impairments on the bytes \
               leaving this end.",
    },
    AddressType {
        name: "SOCKS5-LISTEN",
        aliases: &["SOCKS5-L"],
        syntax: "SOCKS5-LISTEN:PORT",
        groups: &[OptionGroup::Listen, OptionGroup::TcpListen],
        summary: "a SOCKS5 server: clients name destinations (ssh -D)",
        help: "A SOCKS5 server (RFC 1928, CONNECT, no authentication) on PORT, facing \
               SERIAL-MUX: each request opens a channel carrying its destination (an \
               IPv4 or IPv6 address or a host name, resolved by the far side), and the \
               client gets the far side's answer as the SOCKS reply. Always serves \
               concurrently (fork is implied).",
    },
    AddressType {
        name: "SOCKS5-DIAL",
        aliases: &[],
        syntax: "SOCKS5-DIAL",
        groups: &[OptionGroup::TcpConnect, OptionGroup::SocksDial],
        summary: "the far side of SOCKS5-LISTEN: dials what allow= permits",
        help: "Facing SERIAL-MUX: dials the destination that each channel from a \
               SOCKS5-LISTEN peer carries, if allow= permits it; every other \
               destination is refused (the client gets reply 0x02). Without allow= \
               nothing is allowed.",
    },
    AddressType {
        name: "UDP-LISTEN",
        aliases: &["UDP-L"],
        syntax: "UDP-LISTEN:PORT",
        groups: &[OptionGroup::TcpListen, OptionGroup::Udp],
        summary: "receive UDP datagrams; one channel per client",
        help: "Receive UDP datagrams on PORT, facing SERIAL-MUX: each client address gets \
               its own channel (ended after idle-timeout), datagrams travel whole \
               (length-prefixed) and replies go back to the client. Datagrams that find \
               the channel congested are dropped and counted, never truncated or merged.",
    },
    AddressType {
        name: "UDP",
        aliases: &["UDP-CONNECT"],
        syntax: "UDP:HOST:PORT",
        groups: &[OptionGroup::Udp],
        summary: "send a channel's datagrams to a UDP server",
        help: "Facing SERIAL-MUX: send each channel's datagrams to PORT on HOST from a \
               socket of its own, and its replies back.",
    },
];

/// Every option, in the order help and error messages list them.
pub static OPTIONS: &[OptionSpec] = &[
    // Listeners.
    OptionSpec {
        name: "fork",
        aliases: &[],
        group: OptionGroup::Listen,
        value: ValueKind::Flag,
        help: "Serve every connection concurrently and keep listening (without it: \
               serve one connection, then exit).",
    },
    OptionSpec {
        name: "bind",
        aliases: &[],
        group: OptionGroup::TcpListen,
        value: ValueKind::Value("ADDR"),
        help: "Listen on this local address only. Default: loopback (127.0.0.1, ::1 for \
               the IPv6-only spellings) when the other address is SERIAL-MUX, as ssh -L \
               does; all addresses otherwise. bind=0.0.0.0 or bind=[::] opens a tunnel \
               to the network.",
    },
    OptionSpec {
        name: "reuseaddr",
        aliases: &[],
        group: OptionGroup::TcpListen,
        value: ValueKind::Flag,
        help: "Set SO_REUSEADDR; on by default, reuseaddr=0 turns it off.",
    },
    OptionSpec {
        name: "max-children",
        aliases: &[],
        group: OptionGroup::Listen,
        value: ValueKind::Value("N"),
        help: "With fork: serve at most N connections at once, 1 to 1000000; others wait.",
    },
    OptionSpec {
        name: "backlog",
        aliases: &[],
        group: OptionGroup::Listen,
        value: ValueKind::Value("N"),
        help: "listen(2) backlog (default 1024, not socat's 5: a browser opens dozens of connections at once).",
    },
    OptionSpec {
        name: "unlink-early",
        aliases: &[],
        group: OptionGroup::UnixListen,
        value: ValueKind::Flag,
        help: "Remove a stale socket file before binding.",
    },
    // Connectors.
    OptionSpec {
        name: "connect-timeout",
        aliases: &[],
        group: OptionGroup::TcpConnect,
        value: ValueKind::Value("SECONDS"),
        help: "Give up connecting after SECONDS (fractions allowed), at most 86400 (one day).",
    },
    OptionSpec {
        name: "allow",
        aliases: &[],
        group: OptionGroup::SocksDial,
        value: ValueKind::Value("RULES"),
        help: "Destinations that may be dialed: HOST:PORTS rules separated by ';'. HOST is \
               * (any), a name, *.domain (any name below it), an IPv4 address or range \
               (10.0.0.0/8), or an IPv6 one in brackets ([fd00::]/8); PORTS is N, N-M or *. \
               Example: allow=10.0.0.0/8:22;*.lan:80-443;localhost:8080.",
    },
    OptionSpec {
        name: "max-datagram",
        aliases: &[],
        group: OptionGroup::Udp,
        value: ValueKind::Value("BYTES"),
        help: "Largest datagram carried, 1 to 65507 (default 1472); larger ones are dropped \
               with a log line.",
    },
    OptionSpec {
        name: "idle-timeout",
        aliases: &[],
        group: OptionGroup::Udp,
        value: ValueKind::Value("SECONDS"),
        help: "End a UDP connection after SECONDS without a datagram (default 60).",
    },
    // Line settings.
    OptionSpec {
        name: "b",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Attached("baud"),
        help: "Baud rate, socat style: b115200; any positive rate (default 115200).",
    },
    OptionSpec {
        name: "baud",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Value("N"),
        help: "Baud rate (same as bN).",
    },
    OptionSpec {
        name: "ispeed",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Value("N"),
        help: "Input baud rate; sfs runs both directions at one rate, so it must equal \
               ospeed.",
    },
    OptionSpec {
        name: "ospeed",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Value("N"),
        help: "Output baud rate; must equal ispeed.",
    },
    OptionSpec {
        name: "cs",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Attached("bits"),
        help: "Character size cs5, cs6, cs7 or cs8 (default cs8).",
    },
    OptionSpec {
        name: "parity",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Choice(&["none", "even", "odd"]),
        help: "Parity (default none).",
    },
    OptionSpec {
        name: "parenb",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Flag,
        help: "socat: enable parity, even unless parodd.",
    },
    OptionSpec {
        name: "parodd",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Flag,
        help: "socat: with parenb, odd parity.",
    },
    OptionSpec {
        name: "stopbits",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Choice(&["1", "2"]),
        help: "Stop bits (default 1).",
    },
    OptionSpec {
        name: "cstopb",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Flag,
        help: "socat: two stop bits.",
    },
    OptionSpec {
        name: "crtscts",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Flag,
        help: "RTS/CTS hardware flow control.",
    },
    OptionSpec {
        name: "xonxoff",
        aliases: &[],
        group: OptionGroup::SoftFlow,
        value: ValueKind::Flag,
        help: "XON/XOFF software flow control (not with SERIAL-MUX: binary data).",
    },
    OptionSpec {
        name: "raw",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Ignored(&[""]),
        help: "socat compatibility, ignored (sfs always uses raw mode).",
    },
    OptionSpec {
        name: "rawer",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Ignored(&[""]),
        help: "socat compatibility, ignored (sfs always uses raw mode).",
    },
    OptionSpec {
        name: "echo",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Ignored(&["0"]),
        help: "socat compatibility, ignored (echo is always off).",
    },
    OptionSpec {
        name: "clocal",
        aliases: &[],
        group: OptionGroup::Line,
        value: ValueKind::Ignored(&["", "1"]),
        help: "socat compatibility, ignored (modem control lines are always ignored).",
    },
    // The multiplexed link.
    OptionSpec {
        name: "service",
        aliases: &[],
        group: OptionGroup::Mux,
        value: ValueKind::Value("NAME"),
        help: "Service offered (dialing side) or asked for (listening side), \
               [A-Za-z0-9_.-], at most 32 characters; bridges sharing a device differ \
               by service (default: \"default\").",
    },
    OptionSpec {
        name: "window",
        aliases: &[],
        group: OptionGroup::Mux,
        value: ValueKind::Value("BYTES"),
        help: "Per-channel receive window, 256 to 16M; suffixes k and M (x1024) \
               (default: derived from the baud rate).",
    },
    OptionSpec {
        name: "max-channels",
        aliases: &[],
        group: OptionGroup::Mux,
        value: ValueKind::Value("N"),
        help: "Channels open at once, 1 to 32768 (default 256).",
    },
    OptionSpec {
        name: "keepalive",
        aliases: &[],
        group: OptionGroup::Mux,
        value: ValueKind::Value("SECONDS"),
        help: "Idle time before a keepalive probe, at most 86400 (default 1).",
    },
    OptionSpec {
        name: "dead-after",
        aliases: &[],
        group: OptionGroup::Mux,
        value: ValueKind::Value("SECONDS"),
        help: "Silence after which the peer is declared gone and all channels reset; \
               must exceed keepalive, at most 86400 (default 60).",
    },
    OptionSpec {
        name: "secret-file",
        aliases: &[],
        group: OptionGroup::Mux,
        value: ValueKind::Value("PATH"),
        help: "Pre-shared key file (32 bytes, base64; make one with sfs --gen-secret \
               PATH, mode 600): authenticate and encrypt the link; both ends need the \
               same key (see SECURITY).",
    },
    OptionSpec {
        name: "compress",
        aliases: &[],
        group: OptionGroup::Mux,
        value: ValueKind::Choice(&["on", "off"]),
        help: "Compress channel data (deflate with the channel's last 32 KiB as memory, \
               LZ4 towards an older sfs; record by record, only what shrinks) when \
               the peer supports it; text moves at several times the line rate \
               (default on, but off with secret-file=: compressed sizes show \
               through the encryption; see SECURITY).",
    },
    // Half duplex (issue 21).
    OptionSpec {
        name: "duplex",
        aliases: &[],
        group: OptionGroup::Duplex,
        value: ValueKind::Choice(&["full", "half"]),
        help: "half: one shared medium (RS-485 pair, radio channel) where only one side \
               may transmit at a time. On SERIAL-MUX the ends take turns (both ends \
               need it); on a PTY cable bytes of the two directions that overlap in \
               time are garbled (default full).",
    },
    OptionSpec {
        name: "turnaround",
        aliases: &[],
        group: OptionGroup::Turns,
        value: ValueKind::Value("MS"),
        help: "duplex=half: time the far radio or transceiver needs to switch from \
               sending to receiving; this end waits as long before it answers, at most \
               1000 (default 2).",
    },
    OptionSpec {
        name: "max-turn",
        aliases: &[],
        group: OptionGroup::Turns,
        value: ValueKind::Value("MS"),
        help: "duplex=half: longest turn this end keeps the medium before it passes \
               it, so the far end's keystrokes wait at most about this long, 10 to \
               10000 (default 150).",
    },
    OptionSpec {
        name: "rs485",
        aliases: &[],
        group: OptionGroup::Turns,
        value: ValueKind::Flag,
        help: "Linux: let the driver drive RTS around each transmission (TIOCSRS485), \
               for RS-485 adapters that need it; a device without RS-485 support is an \
               error.",
    },
    // Putting sfs on a far serial console.
    OptionSpec {
        name: "bootstrap",
        aliases: &[],
        group: OptionGroup::Bootstrap,
        value: ValueKind::Value("ADDRESS"),
        help: "DEVICE is a far console with a shell at its prompt: upload sfs there \
               (unless cached), start it on that console with ADDRESS as its other address, \
               then run the link (see BOOTSTRAP).",
    },
    OptionSpec {
        name: "peer-binary",
        aliases: &[],
        group: OptionGroup::Bootstrap,
        value: ValueKind::Value("PATH"),
        help: "With bootstrap=: the static sfs to upload (default: searched, see BOOTSTRAP).",
    },
    OptionSpec {
        name: "peer-dir",
        aliases: &[],
        group: OptionGroup::Bootstrap,
        value: ValueKind::Value("DIR"),
        help: "With bootstrap=: the far directory for the copy (default ~/.cache/sfs, \
               else /tmp/sfs).",
    },
    OptionSpec {
        name: "exit-with-peer",
        aliases: &[],
        group: OptionGroup::Bootstrap,
        value: ValueKind::Flag,
        help: "Exit when the link's session ends (peer silent past dead-after); what a \
               bootstrapped far sfs runs with.",
    },
    // Pseudo-terminals.
    OptionSpec {
        name: "link",
        aliases: &[],
        group: OptionGroup::Pty,
        value: ValueKind::Value("PATH"),
        help: "Publish the slave side as a symlink at PATH (removed on exit).",
    },
    // Impairments.
    OptionSpec {
        name: "ber",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("X"),
        help: "Bit error rate, 0 <= X < 1 (1e-5 style allowed).",
    },
    OptionSpec {
        name: "drop",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("X"),
        help: "Per-byte drop probability, 0 <= X < 1.",
    },
    OptionSpec {
        name: "insert",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("X"),
        help: "Per-byte probability of inserting a garbage byte, 0 <= X < 1.",
    },
    OptionSpec {
        name: "burst",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("RATE:LEN"),
        help: "RATE noise bursts per second (at most 1000), each corrupting LEN byte \
               times (1 to 1000000).",
    },
    OptionSpec {
        name: "outage",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("START:DUR"),
        help: "Line dead from START seconds for DUR seconds (each at most 86400).",
    },
    OptionSpec {
        name: "latency",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("MS"),
        help: "One-way latency in milliseconds, at most 10000, added after serialisation.",
    },
    OptionSpec {
        name: "seed",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("N"),
        help: "Seed of the impairments' random generator (default 1).",
    },
    OptionSpec {
        name: "fifo",
        aliases: &[],
        group: OptionGroup::Impair,
        value: ValueKind::Value("BYTES"),
        help: "Device queue size, 1 to 1M; suffixes k and M (default 4096).",
    },
];

/// Looks up an option by the name as written (case-insensitive). Returns the spec
/// and, for [`ValueKind::Attached`] options, the attached value (`"115200"` for
/// `b115200`; empty for a bare `b`).
pub fn lookup_option(written: &str) -> Option<(&'static OptionSpec, Option<&str>)> {
    if let Some(spec) = OPTIONS.iter().find(|o| {
        !matches!(o.value, ValueKind::Attached(_))
            && (o.name.eq_ignore_ascii_case(written)
                || o.aliases.iter().any(|a| a.eq_ignore_ascii_case(written)))
    }) {
        return Some((spec, None));
    }
    OPTIONS.iter().find_map(|o| {
        if !matches!(o.value, ValueKind::Attached(_)) {
            return None;
        }
        let n = o.name.len();
        let head = written.get(..n)?;
        let rest = &written[n..];
        (head.eq_ignore_ascii_case(o.name) && rest.bytes().all(|b| b.is_ascii_digit()))
            .then_some((o, Some(rest)))
    })
}

/// The grammar line every help text starts its address part with.
const GRAMMAR: &str = "ADDRESS: TYPE[:PARAM[:PARAM]][,OPTION[=VALUE]]...  (types and options are \
                       case-insensitive; quote params with \"...\")";

/// Fills `text` into lines of at most `width` columns (words longer than the
/// room stay whole): the first line after `first`, the rest after `rest`.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::from(first);
    let mut col = first.chars().count();
    let mut fresh = true;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if !fresh && col + 1 + len > width {
            out.push('\n');
            out.push_str(rest);
            col = rest.chars().count();
            fresh = true;
        }
        if !fresh {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
        fresh = false;
    }
    out.push('\n');
    out
}

/// One line per address type, for `sfs -h`: its syntax and what it is.
pub fn type_summaries() -> String {
    let width = ADDRESS_TYPES
        .iter()
        .map(|t| t.syntax.len())
        .max()
        .unwrap_or(0);
    let mut out = String::from("Address types:\n");
    for t in ADDRESS_TYPES {
        let _ = writeln!(out, "  {:width$}  {}", t.syntax, t.summary);
    }
    out
}

/// The address types with what each is and the options it takes, filled to
/// `width` columns: the address part of `sfs --help`.
pub fn help_overview(width: usize) -> String {
    let mut out = wrap(GRAMMAR, width, "", "  ");
    out.push_str("\nAddress types (sfs --help-addresses describes every option):\n");
    for t in ADDRESS_TYPES {
        out.push_str(&wrap(
            &format!("{} - {}", t.syntax, t.summary),
            width,
            "  ",
            "      ",
        ));
        let opts: Vec<String> = t.options().map(|o| o.usage()).collect();
        if !opts.is_empty() {
            out.push_str(&wrap(
                &format!("options: {}", opts.join(", ")),
                width,
                "      ",
                "        ",
            ));
        }
    }
    out
}

/// Every address type with its aliases and description, and every option it
/// takes with its description, filled to `width` columns: `sfs
/// --help-addresses`, the same text the man page's ADDRESS TYPES section has.
pub fn address_reference(width: usize) -> String {
    let mut out = wrap(GRAMMAR, width, "", "  ");
    for t in ADDRESS_TYPES {
        out.push('\n');
        let mut head = t.syntax.to_string();
        if !t.aliases.is_empty() {
            let _ = write!(head, "  (also {})", t.aliases.join(", "));
        }
        out.push_str(&wrap(&head, width, "", "    "));
        out.push_str(&wrap(t.help, width, "    ", "    "));
        for o in t.options() {
            out.push_str(&wrap(o.usage().as_str(), width, "    ", "      "));
            out.push_str(&wrap(o.help, width, "        ", "        "));
        }
    }
    out
}

/// [`address_reference`] at 80 columns.
pub fn help_text() -> String {
    address_reference(80)
}

/// Escapes text for roff: backslashes, hyphens and leading control characters.
fn roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c => out.push(c),
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// The body of the man page's ADDRESS TYPES section, in roff: a `.TP` entry per
/// type with its syntax in bold, its aliases and description, and a nested `.TP`
/// entry per accepted option. The caller writes the `.SH "ADDRESS TYPES"` line.
pub fn man_address_section() -> String {
    let mut out = String::new();
    for t in ADDRESS_TYPES {
        let _ = writeln!(out, ".TP\n.B {}", roff(t.syntax));
        let _ = writeln!(out, "{}", roff(t.help));
        if !t.aliases.is_empty() {
            let _ = writeln!(out, "Also spelled {}.", roff(&t.aliases.join(", ")));
        }
        let opts: Vec<&OptionSpec> = t.options().collect();
        if opts.is_empty() {
            out.push_str("No options.\n");
            continue;
        }
        out.push_str("Options:\n.RS\n");
        for o in opts {
            let _ = writeln!(out, ".TP\n.B {}\n{}", roff(&o.usage()), roff(o.help));
        }
        out.push_str(".RE\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for t in ADDRESS_TYPES {
            for n in std::iter::once(&t.name).chain(t.aliases) {
                assert!(seen.insert(n.to_ascii_uppercase()), "duplicate type {n}");
            }
        }
        let mut seen = HashSet::new();
        for o in OPTIONS {
            for n in std::iter::once(&o.name).chain(o.aliases) {
                assert!(seen.insert(n.to_ascii_lowercase()), "duplicate option {n}");
            }
        }
    }

    #[test]
    fn every_group_is_used() {
        for o in OPTIONS {
            assert!(
                ADDRESS_TYPES.iter().any(|t| t.accepts(o)),
                "option {} belongs to no type",
                o.name
            );
        }
    }

    #[test]
    fn params_from_syntax() {
        let p = |n| AddressType::lookup(n).unwrap().params().collect::<Vec<_>>();
        assert_eq!(p("tcp"), ["HOST", "PORT"]);
        assert_eq!(p("tcp-l"), ["PORT"]);
        assert_eq!(p("exec"), ["COMMAND"]);
        assert!(p("pty").is_empty());
        assert!(p("-").is_empty());
    }

    #[test]
    fn option_lookup() {
        assert_eq!(lookup_option("FORK").unwrap().0.name, "fork");
        let (spec, v) = lookup_option("b9600").unwrap();
        assert_eq!((spec.name, v), ("b", Some("9600")));
        assert_eq!(lookup_option("B9600").unwrap().1, Some("9600"));
        assert_eq!(lookup_option("cs8").unwrap().0.name, "cs");
        assert_eq!(lookup_option("b").unwrap().1, Some(""));
        assert_eq!(lookup_option("baud").unwrap().0.name, "baud");
        assert_eq!(lookup_option("backlog").unwrap().0.name, "backlog");
        assert!(lookup_option("bx").is_none());
        assert!(lookup_option("forkk").is_none());
        assert!(lookup_option("é").is_none());
    }

    #[test]
    fn wrapped_help_fits_its_width() {
        for text in [help_overview(60), address_reference(60), type_summaries()] {
            for line in text.lines() {
                // A single word longer than the room may stand alone.
                assert!(
                    line.chars().count() <= 80 || !line.trim().contains(' '),
                    "{line}"
                );
            }
        }
        for line in help_overview(60)
            .lines()
            .chain(address_reference(60).lines())
        {
            assert!(
                line.chars().count() <= 60 || !line.trim().contains(' '),
                "{line}"
            );
        }
        assert_eq!(wrap("a b c", 3, "", " "), "a b\n c\n");
    }

    #[test]
    fn help_lists_everything() {
        let h = help_text();
        for t in ADDRESS_TYPES {
            assert!(h.contains(t.syntax), "{}", t.name);
        }
        for o in OPTIONS {
            assert!(h.contains(&o.usage()), "{}", o.name);
        }
        let o = help_overview(200);
        assert!(o.contains("options: fork, bind=ADDR, reuseaddr, max-children=N, backlog=N"));
        for t in ADDRESS_TYPES {
            assert!(o.contains(t.syntax) && o.contains(t.summary), "{}", t.name);
            assert!(type_summaries().contains(t.summary), "{}", t.name);
        }
    }

    #[test]
    fn man_section_has_every_type_and_option() {
        let m = man_address_section();
        for t in ADDRESS_TYPES {
            assert!(
                m.contains(&format!(".TP\n.B {}\n", roff(t.syntax))),
                "{}",
                t.name
            );
        }
        for o in OPTIONS {
            assert!(
                m.contains(&format!(".B {}\n", roff(&o.usage()))),
                "{}",
                o.name
            );
        }
        assert!(m.contains(".B TCP\\-LISTEN:PORT\n"));
        assert!(m.contains("\\e\\e.\\eCOM12"));
        // SERIAL-MUX does not offer xonxoff.
        let mux = m.split(".B SERIAL\\-MUX").nth(1).unwrap();
        let mux = mux.split("\n.TP\n.B PTY").next().unwrap();
        assert!(!mux.contains("xonxoff\n"));
        assert!(mux.contains(".B crtscts\n"));
        for line in m.lines() {
            assert!(!line.starts_with('\'') && !line.is_empty());
        }
    }
}
