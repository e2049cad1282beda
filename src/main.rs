//! The `sfs` command: parses the command line and starts the bridge.

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use sfs::address::Address;
use std::process::ExitCode;
use std::time::Duration;

/// socket forward serial: carry many TCP connections over one serial line.
#[derive(Parser, Debug)]
#[command(
    name = "sfs",
    version,
    about,
    long_about = None,
    override_usage = "sfs [OPTIONS] ADDRESS1 ADDRESS2 [ADDRESS1 ADDRESS2]...\n       \
                      sfs --demo | --list-ports | --gen-secret FILE | --help-addresses",
    // `sfs` alone shows the short help (exit 2), not a bare usage error.
    arg_required_else_help = true
)]
struct Cli {
    /// More logging: -v info, -vv debug, -vvv trace
    ///
    /// More logging: -v info, -vv debug, -vvv trace. RUST_LOG (e.g.
    /// RUST_LOG=sfs=debug) overrides it.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// Only errors
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Try sfs on a built-in virtual cable (no hardware)
    ///
    /// A virtual serial cable with a little noise, sfs on both ends, several
    /// connections through it, and a short report.
    #[arg(long, conflicts_with = "addresses")]
    demo: bool,
    /// Print link statistics every SECS seconds
    ///
    /// Each serial link's statistics (the line SIGUSR1 prints), every SECS
    /// seconds, e.g. 60 or 0.5.
    #[arg(long, value_name = "SECS", value_parser = parse_interval)]
    stats_interval: Option<Duration>,
    /// Write statistics as JSON lines to FILE
    ///
    /// One JSON object per line every --stats-interval (default 5 s) and at
    /// exit, instead of the text lines; schema in docs/stats-schema.md.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<std::path::PathBuf>,
    /// Show a live view of links and channels
    ///
    /// A live view of the links and channels, drawn on the terminal (stderr).
    #[arg(long)]
    status: bool,
    /// List serial ports and their USB identities
    #[arg(long, exclusive = true)]
    list_ports: bool,
    /// Describe every address type and option
    #[arg(long, exclusive = true)]
    help_addresses: bool,
    /// Print a completion script (bash, zsh, fish, ...)
    ///
    /// Print a completion script for SHELL, then exit.
    #[arg(
        long,
        value_name = "SHELL",
        exclusive = true,
        hide_possible_values = true
    )]
    completions: Option<clap_complete::Shell>,
    /// Write a new key file for secret-file=
    ///
    /// 32 random bytes in base64, mode 600; FILE must not exist. Give both
    /// ends a copy as SERIAL-MUX secret-file=FILE.
    #[arg(long, value_name = "FILE", exclusive = true)]
    gen_secret: Option<std::path::PathBuf>,
    /// Address pairs: ADDRESS1 ADDRESS2 [ADDRESS1 ADDRESS2 ...]
    #[arg(value_name = "ADDRESS", required_unless_present_any = ["demo", "list_ports", "help_addresses", "completions", "gen_secret"])]
    addresses: Vec<String>,
}

const EXAMPLES: &str = "\
Examples:
  sfs TCP-LISTEN:2222,fork SERIAL-MUX:/dev/ttyUSB0,b500000   host A: its port 2222...
  sfs SERIAL-MUX:/dev/ttyUSB0,b500000 TCP:localhost:22        ...is host B's sshd
  sfs STDIO SERIAL-MUX:COM3,b115200               a terminal (far end: EXEC:\"sh -i\")
  sfs PTY,link=/tmp/ttyA,b115200 PTY,link=/tmp/ttyB,b115200   a virtual serial cable
  sfs --demo                                      try it all without hardware";

const MORE: &str = "\
sfs --help: every flag and each type's options; sfs --help-addresses: every option
described; man sfs (or man -l man/sfs.1): roles, the protocol, exit codes.";

/// Columns for help text: the terminal's width (COLUMNS when it is not a
/// terminal), at most 100 for readability, 80 when unknown.
fn help_width() -> usize {
    let width = crossterm::terminal::size()
        .ok()
        .map(|(w, _)| usize::from(w))
        .filter(|&w| w > 0)
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
        .unwrap_or(80);
    width.clamp(40, 100)
}

fn main() -> ExitCode {
    let width = help_width();
    let matches = Cli::command()
        .term_width(width)
        .after_help(format!(
            "{}\n{EXAMPLES}\n\n{MORE}",
            sfs::address::type_summaries()
        ))
        .after_long_help(format!(
            "{}\n{EXAMPLES}\n\n{MORE}",
            sfs::address::help_overview(width)
        ))
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if cli.help_addresses {
        print!("{}", sfs::address::address_reference(width));
        return ExitCode::SUCCESS;
    }
    if let Some(shell) = cli.completions {
        clap_complete::generate(shell, &mut Cli::command(), "sfs", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &cli.gen_secret {
        return match sfs::link::crypto::generate_secret_file(path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sfs: {e}");
                ExitCode::from(1)
            }
        };
    }
    if cli.list_ports {
        print!("{}", sfs::endpoint::serial::list_ports());
        return ExitCode::SUCCESS;
    }
    init_logging(cli.verbose, cli.quiet, cli.status);
    // One thread: sfs moves at most a few hundred KB/s, and hand-offs between
    // tasks on one thread cost no cross-thread wake-ups (about half the CPU time
    // of a multi-threaded runtime at 3 Mbaud).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&sfs::error::Error::io("cannot start the runtime", e)),
    };
    if cli.demo {
        return demo(&runtime, cli.verbose > 0);
    }
    if cli.addresses.len() % 2 != 0 {
        eprintln!(
            "sfs: addresses come in pairs (ADDRESS1 ADDRESS2 ...); got {}",
            cli.addresses.len()
        );
        return ExitCode::from(2);
    }
    let mut parsed = Vec::new();
    for a in &cli.addresses {
        match a.parse::<Address>() {
            Ok(addr) => {
                if let Err(e) = sfs::os::supported(&addr) {
                    return fail(&e);
                }
                parsed.push(addr)
            }
            Err(e) => {
                eprintln!("sfs: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut pairs = Vec::new();
    let mut it = parsed.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        pairs.push((a, b));
    }
    if cli.stats_json.as_deref() == Some(std::path::Path::new("-"))
        && cli
            .addresses
            .iter()
            .any(|a| a == "-" || a.eq_ignore_ascii_case("STDIO"))
    {
        eprintln!("sfs: --stats-json - would mix statistics into STDIO's stream; name a file");
        return ExitCode::from(2);
    }
    let opts = sfs::app::RunOptions {
        stats_interval: cli.stats_interval,
        stats_json: cli.stats_json,
        status: cli.status,
    };
    let result = runtime.block_on(sfs::app::run_with(pairs, opts));
    // Do not wait for blocking stdin reads to finish.
    runtime.shutdown_background();
    match result {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(status)) => ExitCode::from(status_code(status)),
        Err(e) => fail(&e),
    }
}

/// The exit code for a remote program's status, as ssh and the shell report
/// it: its own code, or 128 + the signal that killed it.
fn status_code(status: sfs::endpoint::ExitStatus) -> u8 {
    use sfs::endpoint::ExitStatus;
    match status {
        ExitStatus::Code(c) => (c & 0xff) as u8,
        ExitStatus::Signal(s) => (128 + (s & 0x7f)) as u8,
    }
}

#[cfg(unix)]
fn demo(runtime: &tokio::runtime::Runtime, verbose: bool) -> ExitCode {
    match runtime.block_on(sfs::demo::run(verbose)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// The demonstration runs sfs over a virtual cable of two pseudo-terminals.
#[cfg(not(unix))]
fn demo(_: &tokio::runtime::Runtime, _verbose: bool) -> ExitCode {
    fail(&sfs::error::Error::Usage(
        "--demo needs pseudo-terminals and is not available on this platform".to_string(),
    ))
}

/// `--stats-interval`: a positive number of seconds (fractions allowed).
fn parse_interval(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if (0.001..=1e9).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err("expected a number of seconds, at least 0.001".to_string()),
    }
}

fn fail(e: &sfs::error::Error) -> ExitCode {
    eprintln!("sfs: {e}");
    ExitCode::from(e.exit_code() as u8)
}

fn init_logging(verbose: u8, quiet: bool, status: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("sfs={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Through the status view's log pane while it is up.
        .with_writer(|| sfs::status::LogWriter)
        // No colour codes into log files, nor into consoles that would print
        // them raw, nor into the status view's pane.
        .with_ansi(!status && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
