//! sfs — socket forward serial.
//!
//! Carries many TCP (or Unix, stdio, exec) connections between two computers that
//! share nothing but a serial line, reliably: a link layer with framing, CRC-32C and
//! selective retransmission, and a multiplexer of credit-flow-controlled channels on
//! top. Command lines follow socat: two address expressions per bridge.
//!
//! # Layout
//! - [`address`]: the address grammar (nom) and the typed addresses it produces; one
//!   table of address types feeds the parser, `--help` and the man page.
//! - [`line`](mod@line): a sans-IO model of a serial line (pacing, latency, impairments),
//!   shared by the deterministic simulations and the virtual serial cable.
//! - [`link`]: the reliable link layer, a pure state machine (no I/O, no clock).
//! - [`mux`]: the channel multiplexer on top of the link, a pure state machine.
//! - `sim`: deterministic simulation (one harness, `Pair`) of two links, or two whole [`station`]s,
//!   over a [`line`](mod@line) on simulated time; built for tests and with the `sim`
//!   feature (the link benchmark), not shipped otherwise.
//! - [`station`]: one end of a SERIAL-MUX line (link + mux + pacer + services +
//!   waiting opens + close) as one sans-IO state machine; the driver and the
//!   simulations run this same code.
//! - [`endpoint`]: thin tokio drivers, one per address type (`serial_mux`
//!   drives a [`station`]).
//! - [`cable`]: the virtual null-modem cable (two ptys joined through a [`line`](mod@line)).
//! - [`bridge`]: wires a listening endpoint to a dialing endpoint; the only place
//!   that decides how connections are served.
//! - [`app`]: the process loop around the bridges: signals, statistics,
//!   `--stats-json`, the `--status` view.
//! - [`testbed`]: real sfs processes over a virtual cable, as `--demo` runs
//!   them ([`demo`]); the tests and the benchmark build on it (their own
//!   helpers are in `tests/util/`, not shipped).
//! - [`allow`]: allow-lists of destinations for `SOCKS5-DIAL`.
//! - [`socks`]: the SOCKS5 server protocol, sans-IO (`endpoint::socks` drives it).
//! - [`stats`]: statistics snapshots of SERIAL-MUX links: the text line,
//!   `--stats-json` (a versioned schema) and the `--status` view share them.
//! - [`status`]: the `--status` terminal view (ratatui over crossterm).
//! - [`bootstrap`]: `bootstrap=`, the sans-IO conversation with a far serial
//!   console's shell that uploads and starts the far sfs.
//! - [`os`]: what differs between Unix and Windows (signals, `EXEC`, which
//!   addresses exist); the cable, `PTY`, the testbed and the demo are Unix-only.
// One documented exception: the TIOCSRS485 ioctl of `rs485` (os/rs485.rs).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod allow;
pub mod app;
pub mod bootstrap;
pub mod bridge;
#[cfg(unix)]
pub mod cable;
#[cfg(unix)]
pub mod demo;
#[cfg(not(unix))]
pub use os::unsupported::cable;
pub mod endpoint;
pub mod error;
pub mod line;
pub mod link;
pub mod mux;
pub mod os;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod socks;
pub mod station;
pub mod stats;
pub mod status;
#[cfg(unix)]
pub mod testbed;
