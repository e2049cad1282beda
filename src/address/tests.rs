//! Grammar tests: every type and option, valid and invalid; error messages and
//! caret positions; Display round trips; property tests.

use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;

use super::table::lookup_option;
use super::*;

#[track_caller]
fn ok(s: &str) -> Address {
    match parse_address(s) {
        Ok(a) => {
            let shown = a.to_string();
            assert_eq!(
                parse_address(&shown).as_ref(),
                Ok(&a),
                "{s:?} printed as {shown:?} does not parse back"
            );
            a
        }
        Err(e) => panic!("{s:?} should parse:\n{e}"),
    }
}

#[track_caller]
fn err(s: &str) -> AddressError {
    match parse_address(s) {
        Ok(a) => panic!("{s:?} should not parse, got {a:?}"),
        Err(e) => e,
    }
}

/// Asserts the error's caret position and that its message contains `part`.
#[track_caller]
fn err_at(s: &str, pos: usize, part: &str) {
    let e = err(s);
    assert!(
        e.message().contains(part),
        "{s:?}: message {:?} lacks {part:?}",
        e.message()
    );
    assert_eq!(e.position(), pos, "{s:?}: caret\n{e}");
}

#[track_caller]
fn canonical(s: &str, expect: &str) {
    assert_eq!(ok(s).to_string(), expect, "{s:?}");
}

fn tcp_listen(s: &str) -> TcpListen {
    match ok(s) {
        Address::TcpListen(a) => a,
        other => panic!("{s}: {other:?}"),
    }
}

fn tcp(s: &str) -> TcpConnect {
    match ok(s) {
        Address::TcpConnect(a) => a,
        other => panic!("{s}: {other:?}"),
    }
}

fn serial(s: &str) -> Serial {
    match ok(s) {
        Address::Serial(a) => a,
        other => panic!("{s}: {other:?}"),
    }
}

fn line(opts: &str) -> LineSettings {
    serial(&format!("SERIAL:/dev/ttyS0{opts}")).line
}

fn mux(s: &str) -> SerialMux {
    match ok(s) {
        Address::SerialMux(a) => a,
        other => panic!("{s}: {other:?}"),
    }
}

fn pty(s: &str) -> Pty {
    match ok(s) {
        Address::Pty(a) => a,
        other => panic!("{s}: {other:?}"),
    }
}

// --- Errors as the user sees them ------------------------------------------

#[test]
fn unknown_option_renders_with_caret() {
    assert_eq!(
        err("TCP-LISTEN:2222,forkk").to_string(),
        "invalid address: unknown option 'forkk' for TCP-LISTEN; valid: fork, bind, \
         reuseaddr, max-children, backlog\n  TCP-LISTEN:2222,forkk\n                  ^"
    );
}

#[test]
fn unknown_type_lists_known_and_suggests() {
    let e = err("TPC:host:22");
    assert_eq!(
        e.message(),
        "unknown address type 'TPC'; known: TCP-LISTEN, TCP, UNIX-LISTEN, UNIX-CONNECT, \
         STDIO, EXEC, SERIAL, SERIAL-MUX, PTY, SOCKS5-LISTEN, SOCKS5-DIAL, UDP-LISTEN, UDP; \
         did you mean 'TCP'?"
    );
    assert_eq!(e.position(), 0);
    assert!(err("tcp-lsiten:1")
        .message()
        .ends_with("did you mean 'TCP-LISTEN'?"));
    assert!(err("SERAIL-MUX:x")
        .message()
        .ends_with("did you mean 'SERIAL-MUX'?"));
    assert!(!err("FOOBAR:1").message().contains("did you mean"));
    assert!(!err("Q").message().contains("did you mean"));
}

#[test]
fn missing_parameters() {
    assert_eq!(
        err("TCP-LISTEN").message(),
        "TCP-LISTEN needs a port: TCP-LISTEN:PORT"
    );
    err_at(
        "TCP-LISTEN,fork",
        10,
        "TCP-LISTEN needs a port: TCP-LISTEN:PORT",
    );
    err_at("TCP", 3, "TCP needs a host and a port: TCP:HOST:PORT");
    err_at(
        "TCP:localhost,connect-timeout=1",
        13,
        "TCP needs a port: TCP:HOST:PORT",
    );
    err_at(
        "UNIX-LISTEN",
        11,
        "UNIX-LISTEN needs a path: UNIX-LISTEN:PATH",
    );
    err_at("UNIX", 4, "UNIX-CONNECT needs a path");
    err_at("EXEC", 4, "EXEC needs a command: EXEC:\"COMMAND\"");
    err_at("SERIAL,b9600", 6, "SERIAL needs a device: SERIAL:DEVICE");
    err_at("SERIAL-MUX", 10, "SERIAL-MUX needs a device");
}

#[test]
fn too_many_parameters() {
    err_at("TCP-LISTEN:1:2", 12, "TCP-LISTEN takes 1 parameter");
    err_at("TCP:a:1:2", 7, "TCP takes 2 parameters");
    err_at("STDIO:x", 5, "STDIO takes no parameters");
    err_at("-:x", 1, "STDIO takes no parameters");
    err_at("PTY:/tmp/x", 3, "PTY takes no parameters");
    err_at("EXEC:ssh host:22", 13, "quote it if it contains ':'");
    err_at(
        "UNIX-CONNECT:/tmp/a:b",
        19,
        "UNIX-CONNECT takes 1 parameter",
    );
    err_at("TCP-LISTEN:2222:", 15, "takes 1 parameter");
}

#[test]
fn lexical_errors() {
    err_at("", 0, "empty address");
    err_at(",fork", 0, "expected an address type");
    err_at("/dev/ttyUSB0", 0, "expected an address type");
    err_at("TCP LISTEN:1", 3, "unexpected ' ' after address type 'TCP'");
    err_at("TCP-LISTEN:2222,", 16, "empty option");
    err_at("TCP-LISTEN:2222,,fork", 16, "empty option");
    err_at(
        "TCP-LISTEN:2222,fork!",
        20,
        "unexpected '!' after option name 'fork'",
    );
    err_at("TCP-LISTEN:2222,=1", 16, "expected an option name");
    err_at("TCP-LISTEN:2222,fork:1", 20, "unexpected ':'");
    err_at("EXEC:\"sh -i", 5, "unterminated quote");
    err_at("EXEC:\"sh -i\\\"", 5, "unterminated quote");
    err_at("PTY,link=\"/tmp/x", 9, "unterminated quote");
    err_at("TCP:[::1:22", 4, "unterminated '['");
    err_at("TCP:[::1]x:22", 9, "unexpected 'x' after ']'");
}

#[test]
fn caret_is_under_the_character_even_after_non_ascii() {
    let e = err("UNIX-LISTEN:/tmp/ü,forkk");
    assert_eq!(e.position(), 20);
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "  UNIX-LISTEN:/tmp/ü,forkk");
    assert_eq!(lines[2], format!("{}^", " ".repeat(2 + 19)));
}

#[test]
fn error_is_std_error() {
    let e: Box<dyn std::error::Error> = Box::new(err("X"));
    assert!(e
        .to_string()
        .starts_with("invalid address: unknown address type 'X'"));
}

// --- TCP-LISTEN ---------------------------------------------------------------

#[test]
fn tcp_listen_defaults() {
    let a = tcp_listen("TCP-LISTEN:2222");
    assert_eq!(
        a,
        TcpListen {
            port: 2222,
            family: Family::Any,
            bind: None,
            reuseaddr: true,
            listen: ListenOptions {
                fork: false,
                max_children: None,
                backlog: 1024
            }
        }
    );
    assert!(ok("TCP-LISTEN:2222").is_listener());
    assert_eq!(tcp_listen("TCP-LISTEN:0").port, 0);
    assert_eq!(tcp_listen("TCP-LISTEN:65535").port, 65535);
}

#[test]
fn tcp_listen_spellings_and_family() {
    assert_eq!(tcp_listen("tcp-l:1").family, Family::Any);
    assert_eq!(tcp_listen("Tcp-Listen:1").family, Family::Any);
    assert_eq!(tcp_listen("TCP4-LISTEN:1").family, Family::V4);
    assert_eq!(tcp_listen("tcp4-l:1").family, Family::V4);
    assert_eq!(tcp_listen("TCP6-LISTEN:1").family, Family::V6);
    assert_eq!(tcp_listen("TCP6-L:1").family, Family::V6);
}

#[test]
fn tcp_listen_options() {
    let a = tcp_listen("TCP-LISTEN:2222,fork,bind=127.0.0.1,reuseaddr=0,max-children=4,backlog=64");
    assert!(a.listen.fork);
    assert_eq!(a.bind.as_deref(), Some("127.0.0.1"));
    assert!(!a.reuseaddr);
    assert_eq!(a.listen.max_children, Some(4));
    assert_eq!(a.listen.backlog, 64);
    assert!(tcp_listen("TCP-LISTEN:1,reuseaddr").reuseaddr);
    assert!(tcp_listen("TCP-LISTEN:1,reuseaddr=1").reuseaddr);
    assert!(!tcp_listen("TCP-LISTEN:1,fork=0").listen.fork);
    assert!(tcp_listen("TCP-LISTEN:1,FORK").listen.fork);
    assert_eq!(tcp_listen("TCP-LISTEN:1,backlog=0").listen.backlog, 0);
    assert_eq!(
        tcp_listen("TCP-LISTEN:1,bind=[::1]").bind.as_deref(),
        Some("::1")
    );
    assert_eq!(
        tcp_listen("TCP6-LISTEN:1,bind=::").bind.as_deref(),
        Some("::")
    );
    assert_eq!(
        tcp_listen("TCP-LISTEN:1,bind=localhost").bind.as_deref(),
        Some("localhost")
    );
}

#[test]
fn tcp_listen_invalid() {
    err_at(
        "TCP-LISTEN:65536",
        11,
        "invalid port '65536': expected a port number from 0 to 65535",
    );
    err_at("TCP-LISTEN:http", 11, "invalid port 'http'");
    err_at("TCP-LISTEN:-1", 11, "invalid port");
    err_at("TCP-LISTEN:+22", 11, "invalid port");
    err_at("TCP-LISTEN:", 11, "invalid port ''");
    err_at("TCP-LISTEN:1,fork,fork", 18, "option 'fork' given twice");
    err_at("TCP-LISTEN:1,fork,FORK=1", 18, "option 'fork' given twice");
    err_at(
        "TCP-LISTEN:1,fork=2",
        18,
        "option 'fork' takes no value, or =0 or =1",
    );
    err_at(
        "TCP-LISTEN:1,max-children=4",
        13,
        "option 'max-children' needs 'fork'",
    );
    err_at(
        "TCP-LISTEN:1,fork,max-children=0",
        31,
        "invalid value '0' for max-children",
    );
    err_at(
        "TCP-LISTEN:1,backlog",
        20,
        "option 'backlog' needs a value: backlog=N",
    );
    err_at(
        "TCP-LISTEN:1,backlog=",
        21,
        "option 'backlog' needs a value",
    );
    err_at(
        "TCP-LISTEN:1,backlog=x",
        21,
        "invalid value 'x' for backlog",
    );
    err_at("TCP-LISTEN:1,bind=", 18, "needs a value");
    err_at("TCP-LISTEN:1,bind=a b", 18, "invalid value 'a b' for bind");
    err_at("TCP-LISTEN:1,bind=[::x]", 18, "IPv6");
    err_at("TCP6-LISTEN:1,bind=127.0.0.1", 19, "asks for IPv6");
    err_at("TCP4-LISTEN:1,bind=::1", 19, "asks for IPv4");
    err_at(
        "TCP-LISTEN:1,connect-timeout=1",
        13,
        "option 'connect-timeout' is not valid for TCP-LISTEN; valid: fork, bind, \
         reuseaddr, max-children, backlog",
    );
    err_at("TCP-LISTEN:1,unlink-early", 13, "not valid for TCP-LISTEN");
    err_at("TCP-LISTEN:1,b9600", 13, "not valid for TCP-LISTEN");
}

// --- TCP ----------------------------------------------------------------------

#[test]
fn tcp_connect() {
    let a = tcp("TCP:example.com:22");
    assert_eq!(
        a,
        TcpConnect {
            host: "example.com".into(),
            port: 22,
            family: Family::Any,
            connect_timeout: None
        }
    );
    assert!(!ok("TCP:a:1").is_listener());
    assert_eq!(tcp("TCP:10.0.0.1:80").host, "10.0.0.1");
    assert_eq!(tcp("TCP:[::1]:22").host, "::1");
    assert_eq!(tcp("TCP:[fe80::1%eth0]:22").host, "fe80::1%eth0");
    assert_eq!(tcp("tcp-connect:h:1").family, Family::Any);
    assert_eq!(tcp("TCP4:h:1").family, Family::V4);
    assert_eq!(tcp("TCP6:[::1]:1").family, Family::V6);
    assert_eq!(tcp("TCP6-CONNECT:h:1").family, Family::V6);
    assert_eq!(
        tcp("TCP:h:1,connect-timeout=2.5").connect_timeout,
        Some(Duration::from_millis(2500))
    );
    assert_eq!(
        tcp("TCP:h:1,connect-timeout=1e-3").connect_timeout,
        Some(Duration::from_millis(1))
    );
    assert_eq!(
        tcp("TCP:h:1,connect-timeout=.5").connect_timeout,
        Some(Duration::from_millis(500))
    );
    assert_eq!(tcp("TCP:h:65535").port, 65535);
    assert_eq!(tcp("TCP:my_host-1.lan:1").host, "my_host-1.lan");
}

#[test]
fn tcp_connect_invalid() {
    err_at(
        "TCP:h:0",
        6,
        "invalid port '0': expected a port number from 1 to 65535",
    );
    err_at("TCP:h:65536", 6, "invalid port");
    err_at("TCP::22", 4, "invalid host '': the host is empty");
    err_at("TCP:::1:22", 5, "TCP takes 2 parameters");
    err_at("TCP:[localhost]:22", 4, "invalid host '[localhost]'");
    err_at("TCP:ho st:22", 4, "invalid host 'ho st'");
    err_at("TCP:999.1.1.1:22", 4, "not a valid IPv4 address");
    err_at("TCP4:[::1]:22", 5, "asks for IPv4");
    err_at("TCP6:127.0.0.1:22", 5, "asks for IPv6");
    err_at(
        "TCP:h:1,connect-timeout=0",
        24,
        "must be more than 0 seconds",
    );
    err_at("TCP:h:1,connect-timeout=-1", 24, "invalid value '-1'");
    err_at("TCP:h:1,connect-timeout=inf", 24, "finite");
    err_at("TCP:h:1,connect-timeout=1s", 24, "invalid value '1s'");
    err_at("TCP:h:1,connect-timeout=1e30", 24, "too large");
    err_at(
        "TCP:h:1,fork",
        8,
        "option 'fork' is not valid for TCP; valid: connect-timeout",
    );
}

// --- UNIX ---------------------------------------------------------------------

#[test]
fn unix() {
    assert_eq!(
        ok("UNIX-LISTEN:/tmp/s,fork,max-children=2,backlog=1,unlink-early"),
        Address::UnixListen(UnixListen {
            path: PathBuf::from("/tmp/s"),
            unlink_early: true,
            listen: ListenOptions {
                fork: true,
                max_children: Some(2),
                backlog: 1
            }
        })
    );
    assert!(ok("unix-l:/tmp/s").is_listener());
    assert_eq!(
        ok("UNIX-CONNECT:/tmp/s"),
        Address::UnixConnect(UnixConnect {
            path: "/tmp/s".into()
        })
    );
    assert_eq!(ok("unix:/tmp/s"), ok("UNIX-CONNECT:/tmp/s"));
    assert_eq!(
        ok("UNIX:\"/tmp/a:b,c\""),
        Address::UnixConnect(UnixConnect {
            path: "/tmp/a:b,c".into()
        })
    );
    assert_eq!(
        ok("UNIX:[x]"),
        Address::UnixConnect(UnixConnect { path: "[x]".into() })
    );
}

#[test]
fn unix_invalid() {
    err_at(
        "UNIX-CONNECT:/tmp/s,fork",
        20,
        "UNIX-CONNECT takes no options",
    );
    err_at("UNIX-LISTEN:\"\"", 12, "invalid path '': the path is empty");
    err_at(
        "UNIX-LISTEN:/s,bind=x",
        15,
        "option 'bind' is not valid for UNIX-LISTEN; valid: fork, max-children, backlog, unlink-early",
    );
    err_at("UNIX-LISTEN:/s,reuseaddr", 15, "not valid for UNIX-LISTEN");
}

// --- STDIO and EXEC -------------------------------------------------------------

#[test]
fn stdio() {
    assert_eq!(ok("STDIO"), Address::Stdio);
    assert_eq!(ok("stdio"), Address::Stdio);
    assert_eq!(ok("-"), Address::Stdio);
    assert_eq!(Address::Stdio.keyword(), "STDIO");
    err_at("-,fork", 2, "STDIO takes no options");
    err_at("STDIO,b9600", 6, "STDIO takes no options");
    err_at("--", 0, "unknown address type '--'");
}

#[test]
fn exec() {
    let cmd = |s| match ok(s) {
        Address::Exec(e) => e.command,
        other => panic!("{other:?}"),
    };
    assert_eq!(cmd("EXEC:\"ssh -p 22 host\""), "ssh -p 22 host");
    assert_eq!(cmd("exec:cat"), "cat");
    assert_eq!(cmd("EXEC:sh -i"), "sh -i");
    assert_eq!(cmd(r#"EXEC:"echo \"hi\" \\ \n""#), r#"echo "hi" \ \n"#);
    assert_eq!(cmd(r#"EXEC:"a:b,c""#), "a:b,c");
    assert_eq!(cmd(r#"EXEC:sh" -c 'x'""#), "sh -c 'x'");
    assert_eq!(cmd("EXEC:[x]"), "[x]");
    err_at("EXEC:\"\"", 5, "the command is empty");
    err_at("EXEC:\"  \"", 5, "the command is empty");
    err_at("EXEC:", 5, "the command is empty");
    err_at("EXEC:cat,fork", 9, "EXEC takes no options");
}

// --- SERIAL and line options ------------------------------------------------------

#[test]
fn serial_devices() {
    assert_eq!(
        serial("SERIAL:/dev/ttyUSB0"),
        Serial {
            device: "/dev/ttyUSB0".into(),
            line: LineSettings::default()
        }
    );
    assert_eq!(serial("serial:COM3").device, "COM3");
    assert_eq!(serial(r"SERIAL:\\.\COM12").device, r"\\.\COM12");
    assert_eq!(serial(r#"SERIAL:"\\\\.\\COM12""#).device, r"\\.\COM12");
    assert_eq!(serial(r"SERIAL:\\.\COM12,b9600").line.baud, 9600);
    assert_eq!(ok(r"SERIAL:\\.\COM12").to_string(), r"SERIAL:\\.\COM12");
    err_at("SERIAL:", 7, "the device is empty");
}

#[test]
fn baud() {
    assert_eq!(line("").baud, 115_200);
    assert_eq!(line(",b9600").baud, 9600);
    assert_eq!(line(",B500000").baud, 500_000);
    assert_eq!(line(",b12345").baud, 12_345);
    assert_eq!(line(",baud=6000000").baud, 6_000_000);
    assert_eq!(line(",ispeed=9600").baud, 9600);
    assert_eq!(line(",ospeed=9600").baud, 9600);
    assert_eq!(line(",ispeed=9600,ospeed=9600").baud, 9600);
    assert_eq!(line(",b9600,baud=9600").baud, 9600);
    let s = "SERIAL:x,";
    err_at(
        "SERIAL:x,ispeed=9600,ospeed=19200",
        21,
        "differ: sfs runs both directions at one baud rate",
    );
    err_at(
        "SERIAL:x,b9600,baud=115200",
        15,
        "option 'baud=115200' conflicts with 'b9600'",
    );
    err_at(
        "SERIAL:x,baud=115200,b9600",
        21,
        "option 'b9600' conflicts with 'baud=115200'",
    );
    err_at(
        "SERIAL:x,b9600,b115200",
        15,
        "option 'b115200' conflicts with 'b9600'",
    );
    err_at("SERIAL:x,b9600,B9600", 15, "option 'b<baud>' given twice");
    err_at("SERIAL:x,baud=1,baud=1", 16, "option 'baud' given twice");
    err_at("SERIAL:x,b0", s.len() + 1, "invalid value in 'b0'");
    err_at(
        "SERIAL:x,b",
        s.len() + 1,
        "option 'b' needs a baud: b<baud>",
    );
    err_at("SERIAL:x,b9600=1", s.len() + 5, "takes no '=' value");
    err_at("SERIAL:x,baud=0", s.len() + 5, "invalid value '0' for baud");
    err_at(
        "SERIAL:x,baud=fast",
        s.len() + 5,
        "invalid value 'fast' for baud",
    );
    err_at(
        "SERIAL:x,b99999999999",
        s.len() + 1,
        "invalid value in 'b99999999999'",
    );
    err_at(
        "SERIAL:x,b9600x",
        s.len(),
        "unknown option 'b9600x' for SERIAL",
    );
}

#[test]
fn character_parity_stop_bits_flow() {
    for (opt, bits) in [(",cs5", 5), (",cs6", 6), (",CS7", 7), (",cs8", 8), ("", 8)] {
        assert_eq!(line(opt).data_bits, bits);
    }
    err_at("SERIAL:x,cs9", 11, "invalid value in 'cs9'");
    err_at("SERIAL:x,cs4", 11, "invalid value in 'cs4'");
    err_at("SERIAL:x,cs", 11, "needs a bits");
    err_at("SERIAL:x,cs7,cs8", 13, "option 'cs8' conflicts with 'cs7'");

    assert_eq!(line("").parity, Parity::None);
    assert_eq!(line(",parity=even").parity, Parity::Even);
    assert_eq!(line(",parity=ODD").parity, Parity::Odd);
    assert_eq!(line(",parity=none").parity, Parity::None);
    assert_eq!(line(",parenb").parity, Parity::Even);
    assert_eq!(line(",parenb,parodd").parity, Parity::Odd);
    assert_eq!(line(",parodd,parenb").parity, Parity::Odd);
    assert_eq!(line(",parenb=0").parity, Parity::None);
    assert_eq!(line(",parenb,parodd=0").parity, Parity::Even);
    assert_eq!(line(",parity=even,parenb").parity, Parity::Even);
    assert_eq!(line(",parity=odd,parenb,parodd").parity, Parity::Odd);
    err_at(
        "SERIAL:x,parity=none,parenb",
        21,
        "option 'parenb' conflicts with 'parity=none'",
    );
    err_at(
        "SERIAL:x,parenb,parity=odd",
        16,
        "option 'parity=odd' conflicts with 'parenb'",
    );
    err_at(
        "SERIAL:x,parity=even,parenb,parodd",
        28,
        "option 'parodd' conflicts with 'parity=even'",
    );
    err_at("SERIAL:x,parodd", 9, "option 'parodd' needs 'parenb'");
    err_at("SERIAL:x,parity=odd,parodd", 20, "needs 'parenb'");
    err_at(
        "SERIAL:x,parity=mark",
        16,
        "option 'parity' needs one of: parity=none|even|odd",
    );
    err_at("SERIAL:x,parity", 15, "needs one of");

    assert_eq!(line("").stop_bits, 1);
    assert_eq!(line(",stopbits=2").stop_bits, 2);
    assert_eq!(line(",stopbits=1").stop_bits, 1);
    assert_eq!(line(",cstopb").stop_bits, 2);
    assert_eq!(line(",cstopb=0").stop_bits, 1);
    assert_eq!(line(",stopbits=2,cstopb").stop_bits, 2);
    err_at(
        "SERIAL:x,stopbits=1,cstopb",
        20,
        "option 'cstopb' conflicts with 'stopbits=1'",
    );
    err_at("SERIAL:x,stopbits=3", 18, "needs one of: stopbits=1|2");

    assert_eq!(line("").flow, FlowControl::None);
    assert_eq!(line(",crtscts").flow, FlowControl::Hardware);
    assert_eq!(line(",xonxoff").flow, FlowControl::Software);
    assert_eq!(line(",crtscts=0,xonxoff").flow, FlowControl::Software);
    err_at(
        "SERIAL:x,crtscts,xonxoff",
        17,
        "option 'xonxoff' conflicts with 'crtscts'",
    );
}

#[test]
fn socat_compatibility_noops() {
    assert_eq!(line(",raw,rawer,echo=0,clocal"), LineSettings::default());
    assert_eq!(line(",clocal=1,b9600,RAWER").baud, 9600);
    canonical(
        "SERIAL:/dev/ttyS0,b9600,raw,echo=0,clocal=1",
        "SERIAL:/dev/ttyS0,b9600",
    );
    err_at(
        "SERIAL:x,echo",
        9,
        "option 'echo' is not supported; only 'echo=0' is accepted",
    );
    err_at("SERIAL:x,echo=1", 14, "only 'echo=0'");
    err_at("SERIAL:x,raw=0", 13, "only 'raw'");
    err_at("SERIAL:x,clocal=0", 16, "only 'clocal'");
}

#[test]
fn serial_rejects_other_groups() {
    err_at("SERIAL:x,service=a", 9, "option 'service' is not valid for SERIAL; valid: b<baud>, baud, ispeed, ospeed, cs<bits>, parity, parenb, parodd, stopbits, cstopb, crtscts, xonxoff, raw, rawer, echo, clocal");
    err_at("SERIAL:x,ber=0.1", 9, "not valid for SERIAL");
    err_at("SERIAL:x,link=/tmp/x", 9, "not valid for SERIAL");
    err_at("SERIAL:x,fork", 9, "not valid for SERIAL");
    err_at("SERIAL:x,bogus", 9, "unknown option 'bogus' for SERIAL");
}

#[test]
fn line_settings_rates() {
    let l = line(",b9600");
    assert_eq!(l.bits_per_char(), 10);
    assert_eq!(l.byte_rate(), 960);
    assert_eq!(line(",cs7,parenb,cstopb").bits_per_char(), 11);
}

// --- SERIAL-MUX -----------------------------------------------------------------

#[test]
fn serial_mux() {
    assert_eq!(
        mux("SERIAL-MUX:/dev/ttyUSB0"),
        SerialMux {
            device: "/dev/ttyUSB0".into(),
            line: LineSettings::default(),
            service: String::new(),
            window: None,
            max_channels: None,
            keepalive: None,
            dead_after: None,
            secret_file: None,
            compress: None,
            duplex: Duplex::Full,
            rs485: false,
            boot: Default::default(),
        }
    );
    assert_eq!(mux("SERIAL-MUX:x,compress=off").compress, Some(false));
    assert_eq!(mux("SERIAL-MUX:x,compress=ON").compress, Some(true));
    err_at(
        "SERIAL-MUX:x,compress=zstd",
        22,
        "option 'compress' needs one of: compress=on|off",
    );
    let m = mux("serial-mux:COM3,b500000,crtscts,service=ssh-2.v_1,window=8k,max-channels=16,keepalive=0.5,dead-after=30");
    assert_eq!(m.device, "COM3");
    assert_eq!(m.line.baud, 500_000);
    assert_eq!(m.line.flow, FlowControl::Hardware);
    assert_eq!(m.service, "ssh-2.v_1");
    assert_eq!(m.window, Some(8192));
    assert_eq!(m.max_channels, Some(16));
    assert_eq!(m.keepalive, Some(Duration::from_millis(500)));
    assert_eq!(m.dead_after, Some(Duration::from_secs(30)));
    assert_eq!(mux("SERIAL-MUX:x,service=default").service, "");
    let k = mux("SERIAL-MUX:/dev/ttyS0,secret-file=/etc/sfs/link.key");
    assert_eq!(k.secret_file, Some("/etc/sfs/link.key".into()));
    assert_eq!(
        crate::address::Address::SerialMux(k).to_string(),
        "SERIAL-MUX:/dev/ttyS0,secret-file=/etc/sfs/link.key"
    );
    assert_eq!(mux("SERIAL-MUX:x,service=Default").service, "Default");
    assert_eq!(
        mux(&format!("SERIAL-MUX:x,service={}", "a".repeat(32)))
            .service
            .len(),
        32
    );
    assert_eq!(mux("SERIAL-MUX:x,window=256").window, Some(256));
    assert_eq!(mux("SERIAL-MUX:x,window=8K").window, Some(8192));
    assert_eq!(mux("SERIAL-MUX:x,window=16M").window, Some(16 << 20));
    assert_eq!(mux("SERIAL-MUX:x,window=16384k").window, Some(16 << 20));
    assert_eq!(
        mux("SERIAL-MUX:x,max-channels=32768").max_channels,
        Some(32768)
    );
    assert_eq!(
        mux("SERIAL-MUX:x,keepalive=59").keepalive,
        Some(Duration::from_secs(59))
    );
    assert_eq!(
        mux("SERIAL-MUX:x,dead-after=1.5").dead_after,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        mux("SERIAL-MUX:x,cs7,parity=even,stopbits=2")
            .line
            .bits_per_char(),
        11
    );
}

#[test]
fn serial_mux_invalid() {
    err_at(
        "SERIAL-MUX:x,xonxoff",
        13,
        "not valid for SERIAL-MUX: its link protocol is binary",
    );
    err_at("SERIAL-MUX:x,service=", 21, "needs a value");
    err_at(
        "SERIAL-MUX:x,service=a b",
        21,
        "invalid value 'a b' for service",
    );
    err_at("SERIAL-MUX:x,service=a/b", 21, "expected 1 to 32 of");
    let long = format!("SERIAL-MUX:x,service={}", "a".repeat(33));
    err_at(&long, 21, "expected 1 to 32");
    err_at(
        "SERIAL-MUX:x,window=255",
        20,
        "must be from 256 to 16777216 bytes",
    );
    err_at(
        "SERIAL-MUX:x,window=17M",
        20,
        "must be from 256 to 16777216",
    );
    err_at("SERIAL-MUX:x,window=8q", 20, "expected a byte count");
    err_at("SERIAL-MUX:x,window=k", 20, "expected a byte count");
    err_at(
        "SERIAL-MUX:x,window=99999999999999999999k",
        20,
        "expected a byte count",
    );
    err_at(
        "SERIAL-MUX:x,window=18446744073709551615k",
        20,
        "must be from",
    );
    err_at("SERIAL-MUX:x,max-channels=0", 26, "must be from 1 to 32768");
    err_at(
        "SERIAL-MUX:x,max-channels=32769",
        26,
        "must be from 1 to 32768",
    );
    err_at("SERIAL-MUX:x,keepalive=0", 23, "more than 0");
    err_at(
        "SERIAL-MUX:x,keepalive=2,dead-after=2",
        25,
        "dead-after (2) must exceed keepalive (2)",
    );
    err_at(
        "SERIAL-MUX:x,dead-after=1,keepalive=2",
        13,
        "dead-after (1) must exceed keepalive (2)",
    );
    err_at(
        "SERIAL-MUX:x,keepalive=120",
        13,
        "dead-after (60 by default) must exceed keepalive (120)",
    );
    err_at(
        "SERIAL-MUX:x,dead-after=0.5",
        13,
        "dead-after (0.5) must exceed keepalive (1 by default)",
    );
    err_at("SERIAL-MUX:x,link=/tmp/a", 13, "not valid for SERIAL-MUX");
    err_at("SERIAL-MUX:x,drop=0.1", 13, "not valid for SERIAL-MUX");
    err_at("SERIAL-MUX:x,parity=none,parenb", 25, "conflicts");
}

// --- PTY ------------------------------------------------------------------------

#[test]
fn pty_valid() {
    assert_eq!(
        pty("PTY"),
        Pty {
            link: None,
            line: LineSettings::default(),
            impair: Impairments::default()
        }
    );
    assert_eq!(Impairments::default().seed, 1);
    let p = pty("pty,link=/tmp/ttyV0,b9600,cs7,parenb,crtscts,ber=1e-5,drop=0.001,insert=0.5,burst=2.5:8,outage=10:2.5,latency=5,seed=42,fifo=4k");
    assert_eq!(p.link, Some(PathBuf::from("/tmp/ttyV0")));
    assert_eq!(p.line.baud, 9600);
    assert_eq!(p.line.data_bits, 7);
    assert_eq!(p.line.parity, Parity::Even);
    assert_eq!(p.line.flow, FlowControl::Hardware);
    assert_eq!(p.impair.ber, 1e-5);
    assert_eq!(p.impair.drop, 0.001);
    assert_eq!(p.impair.insert, 0.5);
    assert_eq!(p.impair.burst, Some((2.5, 8)));
    assert_eq!(
        p.impair.outage,
        Some((Duration::from_secs(10), Duration::from_millis(2500)))
    );
    assert_eq!(p.impair.latency, Duration::from_millis(5));
    assert_eq!(p.impair.seed, 42);
    assert_eq!(p.impair.fifo, Some(4096));
    assert_eq!(pty("PTY,xonxoff").line.flow, FlowControl::Software);
    assert_eq!(
        pty("PTY,latency=0.25").impair.latency,
        Duration::from_micros(250)
    );
    assert_eq!(
        pty("PTY,latency=2.5e1").impair.latency,
        Duration::from_millis(25)
    );
    assert_eq!(pty("PTY,ber=0").impair.ber, 0.0);
    assert_eq!(pty("PTY,ber=0.999").impair.ber, 0.999);
    assert_eq!(pty("PTY,BER=1E-3").impair.ber, 1e-3);
    assert_eq!(pty("PTY,seed=0").impair.seed, 0);
    assert_eq!(pty("PTY,seed=18446744073709551615").impair.seed, u64::MAX);
    assert_eq!(
        pty("PTY,outage=0:1").impair.outage,
        Some((Duration::ZERO, Duration::from_secs(1)))
    );
    assert_eq!(pty("PTY,fifo=100").impair.fifo, Some(100));
    assert_eq!(
        pty("PTY,link=\"/tmp/a,b\"").link,
        Some(PathBuf::from("/tmp/a,b"))
    );
    assert_eq!(
        pty("PTY,link=/tmp/a:b").link,
        Some(PathBuf::from("/tmp/a:b"))
    );
}

#[test]
fn pty_invalid() {
    err_at(
        "PTY,ber=1",
        8,
        "invalid value '1' for ber: must be at least 0 and below 1",
    );
    err_at("PTY,ber=-0.1", 8, "invalid value '-0.1' for ber");
    err_at("PTY,drop=nan", 9, "finite");
    err_at("PTY,insert=x", 11, "expected a number");
    err_at("PTY,burst=2", 10, "expected RATE:LEN");
    err_at("PTY,burst=0:8", 10, "RATE must be positive");
    err_at("PTY,burst=2:0", 10, "LEN must be from");
    err_at("PTY,burst=2:x", 10, "LEN expected a whole number");
    err_at("PTY,outage=5", 11, "expected START:DUR");
    err_at("PTY,outage=5:0", 11, "DUR must be more than 0");
    err_at("PTY,outage=x:1", 11, "START expected a number");
    err_at("PTY,latency=-1", 12, "invalid value '-1' for latency");
    err_at("PTY,seed=-1", 9, "invalid value '-1' for seed");
    err_at("PTY,seed=18446744073709551616", 9, "invalid value");
    err_at("PTY,fifo=0", 9, "must be from 1 to");
    err_at("PTY,link=", 9, "needs a value");
    err_at("PTY,link=\"\"", 9, "option 'link' needs a value");
    err_at("PTY,ber=0.1,ber=0.2", 12, "option 'ber' given twice");
    err_at("PTY,service=x", 4, "not valid for PTY");
    err_at(
        "PTY,fork",
        4,
        "option 'fork' is not valid for PTY; valid: b<baud>",
    );
    err_at("PTY,crtscts,xonxoff", 12, "conflicts with 'crtscts'");
}

// --- Display --------------------------------------------------------------------

#[test]
fn canonical_forms() {
    canonical("tcp-l:2222,FORK", "TCP-LISTEN:2222,fork");
    canonical(
        "TCP-LISTEN:2222,fork,reuseaddr=1,backlog=1024",
        "TCP-LISTEN:2222,fork",
    );
    canonical(
        "TCP-LISTEN:2222,backlog=9,max-children=3,fork,reuseaddr=0,bind=::1",
        "TCP-LISTEN:2222,fork,bind=[::1],reuseaddr=0,max-children=3,backlog=9",
    );
    canonical("tcp4-l:80", "TCP4-LISTEN:80");
    canonical("TCP6-LISTEN:80", "TCP6-LISTEN:80");
    canonical("TCP:[::1]:22", "TCP:[::1]:22");
    canonical(
        "tcp-connect:Host:22,connect-timeout=2.50",
        "TCP:Host:22,connect-timeout=2.5",
    );
    canonical(
        "TCP4:1.2.3.4:22,connect-timeout=1e-3",
        "TCP4:1.2.3.4:22,connect-timeout=0.001",
    );
    canonical("TCP6:[::1]:22", "TCP6:[::1]:22");
    canonical("EXEC:\"sh -i\"", "EXEC:\"sh -i\"");
    canonical("exec:cat", "EXEC:\"cat\"");
    canonical(r#"EXEC:"a \"b\" \\c""#, r#"EXEC:"a \"b\" \\c""#);
    canonical("-", "STDIO");
    canonical("unix:/tmp/s", "UNIX-CONNECT:/tmp/s");
    canonical("UNIX-CONNECT:\"/tmp/a b\"", "UNIX-CONNECT:\"/tmp/a b\"");
    canonical("UNIX-CONNECT:\"[x\"", "UNIX-CONNECT:\"[x\"");
    canonical(
        "UNIX-LISTEN:/s,unlink-early,backlog=2,fork",
        "UNIX-LISTEN:/s,fork,backlog=2,unlink-early",
    );
    canonical(
        "SERIAL-MUX:/dev/ttyUSB0,b500000",
        "SERIAL-MUX:/dev/ttyUSB0,b500000",
    );
    canonical(
        "SERIAL-MUX:/dev/ttyUSB0,baud=115200",
        "SERIAL-MUX:/dev/ttyUSB0",
    );
    canonical(
        "SERIAL-MUX:COM3,window=8192,service=ssh,dead-after=120,keepalive=2,max-channels=8",
        "SERIAL-MUX:COM3,service=ssh,window=8k,max-channels=8,keepalive=2,dead-after=120",
    );
    canonical("SERIAL-MUX:COM3,window=1000", "SERIAL-MUX:COM3,window=1000");
    canonical(
        "SERIAL-MUX:COM3,Compress=Off,window=1000",
        "SERIAL-MUX:COM3,window=1000,compress=off",
    );
    canonical(
        "SERIAL:COM3,crtscts,cstopb,parenb,parodd,cs7,ispeed=9600",
        "SERIAL:COM3,b9600,cs7,parity=odd,stopbits=2,crtscts",
    );
    canonical(r"SERIAL:\\.\COM12,xonxoff", r"SERIAL:\\.\COM12,xonxoff");
    canonical("PTY,seed=1,latency=0,ber=0", "PTY");
    canonical(
        "PTY,fifo=4096,seed=7,latency=1.5,outage=0.5:2,burst=1:4,insert=0.25,drop=0.5,ber=1e-5,b9600,link=/tmp/v",
        "PTY,link=/tmp/v,b9600,ber=0.00001,drop=0.5,insert=0.25,burst=1:4,outage=0.5:2,latency=1.5,seed=7,fifo=4k",
    );
    canonical("PTY,link=\"/tmp/a b\"", "PTY,link=\"/tmp/a b\"");
}

#[test]
fn round_trip_list() {
    for s in [
        "TCP-LISTEN:0",
        "TCP-LISTEN:2222,fork,max-children=1",
        "TCP-LISTEN:2222,bind=0.0.0.0",
        "TCP-LISTEN:1,bind=[fe80::1%lo]",
        "TCP6-LISTEN:2222,bind=::",
        "TCP:localhost:1",
        "TCP:[2001:db8::1]:443,connect-timeout=0.000000001",
        "TCP:[fe80::1%eth0]:22",
        "TCP:h:1,connect-timeout=1.0000000009",
        "UNIX-LISTEN:\"/tmp/with,comma\",fork",
        "UNIX-CONNECT:\"a\\\"quote\"",
        "UNIX-CONNECT:\"\\\\\"",
        "EXEC:\"ssh -o ProxyCommand=none host:22\"",
        "EXEC:\"\\\\\\\\server\\\\share\"",
        "STDIO",
        "SERIAL:/dev/ttyUSB0,b1,cs5,parity=even",
        "SERIAL:COM3,b4294967295",
        "SERIAL-MUX:/dev/ttyACM0,crtscts,window=16M,max-channels=32768",
        "SERIAL-MUX:x,service=a.b-c_d,keepalive=0.001,dead-after=0.002",
        "PTY,ber=0.1,drop=0.2,insert=0.30000000000000004",
        "PTY,burst=1e-300:1000000",
        "PTY,burst=1000:1",
        "PTY,outage=86400:86400",
        "PTY,latency=0.000001",
        "PTY,link=/tmp/ü",
        "PTY,fifo=1048576",
    ] {
        ok(s);
    }
}

#[test]
fn display_of_hand_built_values() {
    let a = Address::TcpConnect(TcpConnect {
        host: "::1".into(),
        port: 22,
        family: Family::Any,
        connect_timeout: Some(Duration::from_nanos(1_500_000_001)),
    });
    assert_eq!(a.to_string(), "TCP:[::1]:22,connect-timeout=1.500000001");
    assert_eq!(parse_address(&a.to_string()), Ok(a));
    let a = Address::Exec(Exec {
        command: "printf \"%s\\n\" x".into(),
    });
    assert_eq!(parse_address(&a.to_string()), Ok(a));
    let p = Address::Pty(Pty {
        link: Some("/tmp/x y,z".into()),
        line: LineSettings {
            baud: 300,
            ..Default::default()
        },
        impair: Impairments {
            latency: Duration::from_nanos(1),
            ..Default::default()
        },
    });
    assert_eq!(
        p.to_string(),
        "PTY,link=\"/tmp/x y,z\",b300,latency=0.000001"
    );
    assert_eq!(parse_address(&p.to_string()), Ok(p));
}

// --- Properties -----------------------------------------------------------------

/// Valid addresses to mutate.
const SEEDS: &[&str] = &[
    "TCP-LISTEN:2222,fork,bind=[::1],reuseaddr=0,max-children=3,backlog=9",
    "TCP:[::1]:22,connect-timeout=2.5",
    "TCP4:example.com:80",
    "UNIX-LISTEN:/tmp/s,fork,unlink-early",
    "UNIX:\"/tmp/a:b\"",
    "-",
    "EXEC:\"ssh -p 22 \\\"host\\\"\"",
    "SERIAL:\\\\.\\COM12,b9600,cs7,parenb,parodd,cstopb,crtscts,raw,echo=0",
    "SERIAL-MUX:/dev/ttyUSB0,b500000,service=ssh,window=8k,max-channels=16,keepalive=1,dead-after=30",
    "PTY,link=/tmp/v0,b9600,ber=1e-5,drop=0.01,insert=0.001,burst=2:8,outage=1:2,latency=5,seed=7,fifo=4k",
];

/// Pieces the mutations splice in.
const PIECES: &[&str] = &[
    ":", ",", "=", "\"", "\\", "[", "]", "-", "0", "1", "e", "k", "M", ".", " ", "é", "\n", "fork",
    "b9600", "xonxoff", "parenb", "cs8", "TCP", "::1", "1e-5", "65536", ":1",
];

fn mutation() -> impl Strategy<Value = String> {
    (
        0..SEEDS.len(),
        prop::collection::vec(
            (any::<prop::sample::Index>(), 0..3u8, 0..PIECES.len()),
            1..4,
        ),
    )
        .prop_map(|(seed, edits)| {
            let mut s = SEEDS[seed].to_string();
            for (at, kind, piece) in edits {
                let bounds: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
                let i = bounds[at.index(bounds.len())];
                match kind {
                    0 => s.insert_str(i, PIECES[piece]),
                    1 => {
                        if let Some(c) = s[i..].chars().next() {
                            s.replace_range(i..i + c.len_utf8(), "");
                        }
                    }
                    _ => {
                        if let Some(c) = s[i..].chars().next() {
                            s.replace_range(i..i + c.len_utf8(), PIECES[piece]);
                        }
                    }
                }
            }
            s
        })
}

/// Option tokens for [`assembled`].
const TOKENS: &[&str] = &[
    "fork",
    "fork=0",
    "bind=127.0.0.1",
    "bind=[::1]",
    "reuseaddr=0",
    "max-children=2",
    "backlog=1",
    "unlink-early",
    "connect-timeout=0.5",
    "b9600",
    "baud=9600",
    "ispeed=9600",
    "ospeed=4800",
    "cs7",
    "parity=odd",
    "parenb",
    "parodd",
    "stopbits=2",
    "cstopb",
    "crtscts",
    "xonxoff",
    "raw",
    "rawer",
    "echo=0",
    "clocal",
    "service=ssh",
    "window=8k",
    "max-channels=9",
    "keepalive=0.5",
    "dead-after=3",
    "link=/tmp/v",
    "ber=1e-6",
    "drop=0.125",
    "insert=0.1",
    "burst=3:2",
    "outage=1:1",
    "latency=2.5",
    "seed=9",
    "fifo=100",
];

/// Random combinations of a type (any spelling), fitting parameters and option
/// tokens of the type's groups (which may still repeat or conflict).
fn assembled() -> impl Strategy<Value = String> {
    (
        0..ADDRESS_TYPES.len(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    )
        .prop_map(|(t, spelling, param, opts)| {
            let t = &ADDRESS_TYPES[t];
            let names: Vec<&str> = std::iter::once(t.name)
                .chain(t.aliases.iter().copied())
                .collect();
            let params: &[&str] = match t.name {
                "TCP-LISTEN" => &[":2222", ":0"],
                "TCP" => &[":localhost:22", ":[::1]:22", ":1.2.3.4:1"],
                "UNIX-LISTEN" | "UNIX-CONNECT" => &[":/tmp/s", ":\"/a b\""],
                "EXEC" => &[":\"sh -i\"", ":cat"],
                "SERIAL" | "SERIAL-MUX" => &[":COM3", ":\\\\.\\COM12", ":/dev/ttyUSB0"],
                _ => &[""],
            };
            let tokens: Vec<&str> = TOKENS
                .iter()
                .copied()
                .filter(|tok| {
                    let name = tok.split('=').next().unwrap_or_default();
                    lookup_option(name).is_some_and(|(spec, _)| t.accepts(spec))
                })
                .collect();
            let mut s = format!("{}{}", spelling.get(&names), param.get(params));
            if !tokens.is_empty() {
                for o in opts {
                    s.push(',');
                    s.push_str(o.get::<&str>(&tokens));
                }
            }
            s
        })
}

fn check(s: &str) -> Result<(), TestCaseError> {
    if let Ok(a) = parse_address(s) {
        let shown = a.to_string();
        prop_assert_eq!(parse_address(&shown), Ok(a), "{:?} -> {:?}", s, shown);
    } else if let Err(e) = parse_address(s) {
        // Rendering never panics and the caret stays inside the address.
        prop_assert!(e.position() <= s.len());
        prop_assert!(e.to_string().starts_with("invalid address: "));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_strings_never_panic(s in "\\PC{0,40}") {
        check(&s)?;
    }

    #[test]
    fn random_grammar_strings_never_panic(s in "[A-Za-z0-9:,=\"\\\\\\[\\]. -]{0,40}") {
        check(&s)?;
    }

    #[test]
    fn mutations_never_panic_and_round_trip(s in mutation()) {
        check(&s)?;
    }

    #[test]
    fn assembled_addresses_round_trip(s in assembled()) {
        check(&s)?;
    }

    #[test]
    fn floats_round_trip(ber in 0.0f64..1.0, rate in 1e-300f64..1000.0, ms in 0u64..=10_000_000_000) {
        let a = Address::Pty(Pty {
            link: None,
            line: LineSettings::default(),
            impair: Impairments {
                ber,
                burst: Some((rate, 1)),
                latency: Duration::from_nanos(ms),
                ..Default::default()
            },
        });
        prop_assert_eq!(parse_address(&a.to_string()), Ok(a));
    }

    #[test]
    fn strings_round_trip(path in "\\PC{1,20}", cmd in "\\PC{1,20}") {
        let a = Address::UnixConnect(UnixConnect { path: path.clone().into() });
        prop_assert_eq!(parse_address(&a.to_string()), Ok(a));
        let a = Address::Pty(Pty { link: Some(path.into()), line: LineSettings::default(), impair: Impairments::default() });
        prop_assert_eq!(parse_address(&a.to_string()), Ok(a));
        if !cmd.trim().is_empty() {
            let a = Address::Exec(Exec { command: cmd });
            prop_assert_eq!(parse_address(&a.to_string()), Ok(a));
        }
    }
}

// --- Ranges checked at parse time -------------------------------------------------

/// Where the value of the first `name=` in `s` starts.
fn value_pos(s: &str, name: &str) -> usize {
    s.find(&format!("{name}=")).expect("option present") + name.len() + 1
}

/// Every numeric and duration option is either safe whatever its value or
/// range-checked by the parser (with the caret on the value): nothing that
/// passes the parser overflows `Instant + Duration`, sizes an allocation or
/// a loop by a typo, or fails later without a caret.
#[test]
fn option_values_out_of_range_are_rejected_at_parse_time() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "TCP:h:1,connect-timeout=86400.001",
            "connect-timeout",
            "at most 86400 seconds",
        ),
        (
            "TCP:h:1,connect-timeout=1e19",
            "connect-timeout",
            "at most 86400 seconds",
        ),
        (
            "TCP-LISTEN:1,fork,max-children=1000001",
            "max-children",
            "must be from 1 to 1000000",
        ),
        (
            "SERIAL-MUX:x,max-channels=40000",
            "max-channels",
            "must be from 1 to 32768",
        ),
        (
            "SERIAL-MUX:x,dead-after=1e19",
            "dead-after",
            "at most 86400 seconds",
        ),
        (
            "SERIAL-MUX:x,dead-after=86401",
            "dead-after",
            "at most 86400 seconds",
        ),
        (
            "SERIAL-MUX:x,keepalive=1e19",
            "keepalive",
            "at most 86400 seconds",
        ),
        (
            "SERIAL-MUX:x,window=16385k",
            "window",
            "must be from 256 to 16777216",
        ),
        ("PTY,latency=1e19", "latency", "at most 10000 ms"),
        ("PTY,latency=10000.001", "latency", "at most 10000 ms"),
        ("PTY,burst=1001:1", "burst", "RATE must be at most 1000"),
        ("PTY,burst=1e300:1", "burst", "RATE must be at most 1000"),
        (
            "PTY,burst=1:1000001",
            "burst",
            "LEN must be from 1 to 1000000",
        ),
        (
            "PTY,outage=86401:1",
            "outage",
            "START must be at most 86400 seconds",
        ),
        (
            "PTY,outage=1e19:1",
            "outage",
            "START must be at most 86400 seconds",
        ),
        (
            "PTY,outage=1:86401",
            "outage",
            "DUR must be at most 86400 seconds",
        ),
        ("PTY,fifo=1025k", "fifo", "must be from 1 to 1048576"),
        ("PTY,ber=1", "ber", "below 1"),
        ("PTY,drop=1.5", "drop", "below 1"),
        ("PTY,insert=1", "insert", "below 1"),
        ("PTY,cs9", "cs", "must be from 5 to 8"),
        ("SERIAL:x,b0", "b", "must be from 1 to 4294967295"),
        (
            "SERIAL:x,baud=4294967296",
            "baud",
            "must be from 1 to 4294967295",
        ),
        (
            "TCP-LISTEN:1,backlog=2147483648",
            "backlog",
            "must be from 0 to 2147483647",
        ),
        ("PTY,seed=18446744073709551616", "seed", "must be from 0 to"),
    ];
    for &(s, name, why) in cases {
        let at = if name == "b" || name == "cs" {
            s.rfind(',').unwrap() + 1 + name.len()
        } else {
            value_pos(s, name)
        };
        err_at(s, at, why);
    }
    // The limits themselves are accepted.
    for s in [
        "TCP:h:1,connect-timeout=86400",
        "TCP-LISTEN:1,fork,max-children=1000000",
        "SERIAL-MUX:x,max-channels=32768,keepalive=86399.5,dead-after=86400",
        "PTY,latency=10000,burst=1000:1000000,outage=86400:86400,fifo=1M,ber=0.999",
    ] {
        ok(s);
    }
    // The accepted extremes fit what the consumers check or compute.
    let m = mux("SERIAL-MUX:x,max-channels=32768,window=16M");
    let mut cfg = crate::mux::MuxConfig::for_byte_rate(11_520);
    cfg.max_channels = m.max_channels.unwrap();
    cfg.window = m.window.unwrap();
    assert_eq!(cfg.validate(), Ok(()));
    assert_eq!(super::parse::MAX_SECONDS, Duration::from_secs(86_400));
}

#[test]
fn socks5_and_udp_addresses() {
    canonical(
        "socks5-l:1080,bind=127.0.0.1",
        "SOCKS5-LISTEN:1080,bind=127.0.0.1",
    );
    canonical(
        "SOCKS5-LISTEN:1080,fork,backlog=9",
        "SOCKS5-LISTEN:1080,backlog=9",
    );
    canonical(
        "SOCKS5-LISTEN:1080,max-children=3",
        "SOCKS5-LISTEN:1080,max-children=3",
    );
    match ok("SOCKS5-LISTEN:1080") {
        Address::Socks5Listen(t) => assert!(t.listen.fork, "fork is implied"),
        other => panic!("{other:?}"),
    }
    err_at(
        "SOCKS5-LISTEN:1080,fork=0",
        19,
        "always serves concurrently",
    );
    canonical("SOCKS5-DIAL", "SOCKS5-DIAL");
    canonical(
        "socks5-dial,allow=10.0.0.0/8:22;*.LAN:80-443,connect-timeout=3",
        "SOCKS5-DIAL,connect-timeout=3,allow=10.0.0.0/8:22;*.lan:80-443",
    );
    canonical(
        "SOCKS5-DIAL,allow=\"[fd00::]/8:443; localhost:*\"",
        "SOCKS5-DIAL,allow=[fd00::]/8:443;localhost:*",
    );
    match ok("SOCKS5-DIAL") {
        Address::Socks5Dial(d) => assert!(d.allow.rules.is_empty(), "no allow= denies all"),
        other => panic!("{other:?}"),
    }
    err_at("SOCKS5-DIAL,allow=10.0.0.0/33:1", 18, "prefix length");
    err_at("SOCKS5-DIAL:x", 11, "parameter");
    canonical("udp-l:5353", "UDP-LISTEN:5353");
    canonical(
        "UDP-LISTEN:5353,bind=::1,max-datagram=512,idle-timeout=2.5",
        "UDP-LISTEN:5353,bind=[::1],max-datagram=512,idle-timeout=2.5",
    );
    canonical("UDP:[::1]:53,max-datagram=1472", "UDP:[::1]:53");
    err_at("UDP:h:53,max-datagram=70000", 22, "max-datagram");
    assert!(ok("UDP-LISTEN:1").is_listener() && !ok("UDP:h:1").is_listener());
}

#[test]
fn half_duplex_options() {
    let m = mux("SERIAL-MUX:/dev/ttyUSB0,b115200,duplex=half,turnaround=3.5,max-turn=200,rs485");
    assert_eq!(
        m.duplex,
        Duplex::Half {
            turnaround: Some(Duration::from_micros(3500)),
            max_turn: Some(Duration::from_millis(200)),
        }
    );
    assert!(m.rs485);
    assert_eq!(
        mux("SERIAL-MUX:x,duplex=half").duplex,
        Duplex::Half {
            turnaround: None,
            max_turn: None
        }
    );
    assert_eq!(mux("SERIAL-MUX:x,duplex=full").duplex, Duplex::Full);
    assert!(mux("SERIAL-MUX:x,rs485").rs485);
    canonical(
        "SERIAL-MUX:x,duplex=half,max-turn=50,turnaround=1",
        "SERIAL-MUX:x,duplex=half,turnaround=1,max-turn=50",
    );
    err_at(
        "SERIAL-MUX:x,turnaround=2",
        13,
        "turnaround needs duplex=half",
    );
    err_at(
        "SERIAL-MUX:x,duplex=half,max-turn=5",
        34,
        "must be at least 10 ms",
    );
    err_at("SERIAL-MUX:x,duplex=half,turnaround=2000", 36, "at most");
    err_at("SERIAL-MUX:x,duplex=quarter", 20, "duplex");
    err_at("SERIAL:x,duplex=half", 9, "not valid for SERIAL");
    assert!(pty("PTY,duplex=half").impair.half_duplex);
    assert!(!pty("PTY").impair.half_duplex);
    canonical("PTY,duplex=half,b9600", "PTY,b9600,duplex=half");
    err_at("PTY,turnaround=2", 4, "not valid for PTY");
}

// --- bootstrap= ------------------------------------------------------------------

#[test]
fn bootstrap_options() {
    let m = mux(
        "SERIAL-MUX:/dev/ttyUSB0,b115200,bootstrap=\"SOCKS5-DIAL,allow=*:22\",peer-dir=~/x,peer-binary=/opt/sfs",
    );
    assert_eq!(m.boot.bootstrap.as_deref(), Some("SOCKS5-DIAL,allow=*:22"));
    assert_eq!(m.boot.peer_dir.as_deref(), Some("~/x"));
    assert_eq!(m.boot.peer_binary, Some(PathBuf::from("/opt/sfs")));
    assert!(!m.boot.exit_with_peer);
    assert!(
        mux("SERIAL-MUX:/dev/ttyS0,exit-with-peer")
            .boot
            .exit_with_peer
    );
    assert!(err("SERIAL-MUX:x,peer-dir=/tmp")
        .to_string()
        .contains("option 'peer-dir' needs 'bootstrap='"));
    assert!(err("SERIAL-MUX:x,bootstrap=NOPE:1")
        .to_string()
        .contains("not an address sfs understands"));
}
