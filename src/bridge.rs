//! The bridge: decides, for each pair of addresses on the command line, which one
//! accepts connections and which one is dialed for each of them, then copies bytes
//! both ways.
//!
//! Roles, in socat's spirit:
//! - a listening address (`TCP-LISTEN`, `UNIX-LISTEN`) accepts; the other address
//!   is dialed once per accepted connection (`fork`: concurrently, forever;
//!   without `fork`: one connection, then the bridge ends);
//! - a `SERIAL-MUX` address serves channels opened by the peer when it is ADDRESS1
//!   or faces a dialing address (`TCP`, `UNIX-CONNECT`, `EXEC`): each channel is
//!   one dial of the other address, concurrently, for as long as sfs runs;
//!   otherwise it is dialed (each dial opens a channel to the peer);
//! - two `PTY` addresses form a virtual serial cable (see [`crate::cable`]);
//! - anything else is opened once on each side and bridged once.
//!
//! Copying keeps half-close: EOF on one side shuts down the writing half of the
//! other, and the bridge of a connection ends when both directions are done. An
//! error on either side (reset, broken pipe) aborts both, so a cut stream never
//! looks complete (TCP peers get a RST).

#![allow(clippy::disallowed_methods)] // a driver: it reads the clock for the stop deadline

use crate::address::{Address, ListenOptions};
use crate::endpoint::serial_mux::{Incoming, MuxHandle, MuxHub, PendingChannel};
use crate::endpoint::{
    exec, pty, serial, socks, stdio, tcp, udp, unix, Conn, ExitStatus, Reader, StatusSlot, Writer,
};
use crate::error::{describe_io, Error, Result};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

/// What a finished bridge of two connections carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spliced {
    /// Bytes carried a→b.
    pub a_to_b: u64,
    /// Bytes carried b→a.
    pub b_to_a: u64,
    /// The exit status either stream ended with (a program's, or one a
    /// channel's peer sent).
    pub status: Option<ExitStatus>,
}

/// Copies `from` into `to` until end of file, then passes on the exit status
/// the stream ended with, if any, and shuts `to` down. The next read starts
/// only once the previous bytes were written, so a reader that counts a read
/// as consumed when it is asked for more (a channel) counts delivered bytes.
async fn copy_stream(
    from: &mut Reader,
    to: &mut Writer,
    ended_with: Option<&StatusSlot>,
    pass_to: Option<&StatusSlot>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
    if let (Some(src), Some(dst)) = (ended_with, pass_to) {
        let status = *src.lock().expect("status lock");
        *dst.lock().expect("status lock") = status;
    }
    to.shutdown().await?;
    Ok(total)
}

/// Bytes one direction of a bridge reads at a time.
const COPY_BUFFER: usize = 16 * 1024;

/// Copies both ways between two connections until both directions reach EOF
/// and each far end that confirms delivery (a channel) has confirmed it. On an
/// error both are aborted, so neither peer reads a clean end of a cut stream.
pub async fn splice(a: Conn, b: Conn) -> io::Result<Spliced> {
    let Conn {
        reader: mut ar,
        writer: mut aw,
        abort: a_abort,
        label: a_label,
        exit_status: a_status,
        pass_status: a_pass,
        confirmed: a_confirmed,
    } = a;
    let Conn {
        reader: mut br,
        writer: mut bw,
        abort: b_abort,
        label: b_label,
        exit_status: b_status,
        pass_status: b_pass,
        confirmed: b_confirmed,
    } = b;
    // Declared after the halves, so dropped before them: if this future is
    // cancelled mid-copy (sfs stopped by a signal), both sides are aborted before
    // any half is closed normally, and neither peer reads a clean end of file.
    let mut guard = AbortGuard(vec![a_abort, b_abort]);
    let ab = copy_stream(&mut ar, &mut bw, a_status.as_ref(), b_pass.as_ref());
    let ba = copy_stream(&mut br, &mut aw, b_status.as_ref(), a_pass.as_ref());
    let result = async {
        let (x, y) = tokio::try_join!(ab, ba)?;
        for confirmation in [a_confirmed, b_confirmed].into_iter().flatten() {
            confirmation.await?;
        }
        io::Result::Ok((x, y))
    }
    .await;
    match result {
        Ok((x, y)) => {
            debug!("{a_label} <-> {b_label}: done, {x} and {y} bytes");
            guard.disarm();
            let read =
                |s: &Option<StatusSlot>| s.as_ref().and_then(|s| *s.lock().expect("status lock"));
            Ok(Spliced {
                a_to_b: x,
                b_to_a: y,
                status: read(&a_status).or(read(&b_status)),
            })
        }
        Err(e) => {
            info!("{a_label} <-> {b_label}: aborted: {}", describe_io(&e));
            guard.fire();
            Err(e)
        }
    }
}

/// Abort actions that run when dropped unless disarmed.
struct AbortGuard(Vec<Option<Box<dyn FnOnce() + Send>>>);

impl AbortGuard {
    fn fire(&mut self) {
        for f in self.0.drain(..).flatten() {
            f();
        }
    }

    fn disarm(&mut self) {
        self.0.clear();
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        self.fire();
    }
}

/// A way to make a connection on demand.
#[derive(Clone)]
enum Dialer {
    Address(Arc<Address>),
    Mux {
        handle: MuxHandle,
        addr: Arc<crate::address::SerialMux>,
    },
}

impl Dialer {
    /// A new connection; `for_endpoint` names the connection it will be
    /// bridged to (a channel records it for statistics).
    async fn dial(&self, for_endpoint: Option<&str>) -> io::Result<Conn> {
        match self {
            Dialer::Mux { handle, addr } => handle.open_channel(&addr.service, for_endpoint).await,
            Dialer::Address(a) => match &**a {
                Address::TcpConnect(t) => tcp::connect(t).await,
                Address::UnixConnect(u) => unix::connect(u).await,
                Address::UdpConnect(u) => udp::connect(u).await,
                Address::Exec(e) => exec::spawn(&e.command),
                Address::Stdio => Ok(stdio::open()),
                Address::Serial(s) => serial::open(s).map_err(to_io),
                Address::Pty(p) => Ok(pty::PtyDevice::create(p).map_err(to_io)?.into_conn()),
                other => Err(io::Error::other(format!(
                    "{} cannot be dialed",
                    other.keyword()
                ))),
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Dialer::Mux { addr, .. } => format!("SERIAL-MUX:{}", addr.device),
            Dialer::Address(a) => a.to_string(),
        }
    }
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Something that hands out incoming connections.
enum Source {
    Tcp(tcp::Listener, ListenOptions),
    Unix(unix::Listener, ListenOptions),
    Mux(Incoming),
    /// SOCKS5-LISTEN: the handshake runs per connection, in its own task.
    Socks(tcp::Listener, ListenOptions),
    /// UDP-LISTEN: each new client address arrives as a connection.
    Udp(udp::Listener),
}

/// One incoming connection: ready now, a mux channel waiting for our dial,
/// or a SOCKS5 client whose destination is still to be read.
enum Arrival {
    Ready(Conn),
    Pending(PendingChannel),
    Socks(tokio::net::TcpStream, std::net::SocketAddr),
}

impl Source {
    async fn next(&mut self) -> Option<io::Result<Arrival>> {
        match self {
            Source::Tcp(l, _) => Some(l.accept().await.map(Arrival::Ready)),
            Source::Unix(l, _) => Some(l.accept().await.map(Arrival::Ready)),
            Source::Mux(i) => i.next().await.map(|p| Ok(Arrival::Pending(p))),
            Source::Udp(l) => l.accept().await.map(|c| Ok(Arrival::Ready(c))),
            Source::Socks(l, _) => Some(
                l.accept_stream()
                    .await
                    .map(|(s, peer)| Arrival::Socks(s, peer)),
            ),
        }
    }

    /// (fork, max-children): mux channels are always served concurrently.
    fn policy(&self) -> (bool, Option<usize>) {
        match self {
            Source::Tcp(_, o) | Source::Unix(_, o) | Source::Socks(_, o) => {
                (o.fork, o.max_children)
            }
            Source::Mux(_) | Source::Udp(_) => (true, None),
        }
    }
}

/// What one address pair does.
enum Plan {
    Serve(Source, Dialer),
    Once(Dialer, Dialer),
    Cable(crate::address::Pty, crate::address::Pty),
}

/// True for addresses that make a fresh connection each time they are used.
fn is_dialing(a: &Address) -> bool {
    matches!(
        a,
        Address::TcpConnect(_)
            | Address::UnixConnect(_)
            | Address::Exec(_)
            | Address::Socks5Dial(_)
    )
}

/// A dialer for `a`. A SERIAL-MUX device is opened now, so that a missing
/// device is reported at start and the link handshake runs before the first
/// connection arrives.
async fn dialer(a: Address, hub: &MuxHub) -> Result<Dialer> {
    Ok(match a {
        Address::SerialMux(m) => Dialer::Mux {
            handle: hub.get(&m).await?,
            addr: Arc::new(m),
        },
        other => Dialer::Address(Arc::new(other)),
    })
}

/// The accepting side of a pair; `other` is the address it feeds (a listener
/// facing SERIAL-MUX binds loopback unless `bind=` says otherwise).
async fn source(a: &Address, other: &Address, hub: &MuxHub) -> Result<Source> {
    let facing_mux = matches!(other, Address::SerialMux(_));
    let bound = |kind: &str, at: io::Result<std::net::SocketAddr>| {
        if let Ok(at) = at {
            let scope = if at.ip().is_loopback() {
                " (this machine only; bind= to open it to the network)"
            } else {
                ""
            };
            info!("{kind}: listening on {at}{scope}");
        }
    };
    Ok(match a {
        Address::TcpListen(t) => {
            let l = tcp::Listener::bind(t, facing_mux).await?;
            bound(a.keyword(), l.local_addr());
            Source::Tcp(l, t.listen.clone())
        }
        Address::UnixListen(u) => Source::Unix(unix::Listener::bind(u)?, u.listen.clone()),
        Address::UdpListen(u) => {
            let l = udp::Listener::bind(u).await?;
            bound(a.keyword(), Ok(l.local_addr()));
            Source::Udp(l)
        }
        Address::Socks5Listen(t) => {
            let l = tcp::Listener::bind(t, facing_mux).await?;
            bound(a.keyword(), l.local_addr());
            Source::Socks(l, t.listen.clone())
        }
        Address::SerialMux(m) => Source::Mux(hub.get(m).await?.listen(&m.service)?),
        other => {
            return Err(Error::Usage(format!(
                "{} cannot accept connections",
                other.keyword()
            )))
        }
    })
}

/// Decides the roles of one address pair and binds what must be bound now (so
/// that "port in use" is reported before anything runs).
async fn plan(a1: Address, a2: Address, hub: &MuxHub) -> Result<Plan> {
    if a1.is_listener() && a2.is_listener() {
        return Err(Error::Usage(format!(
            "both {} and {} wait for connections; one address must dial",
            a1.keyword(),
            a2.keyword()
        )));
    }
    // The SOCKS5 ends only make sense across a line: the destination travels
    // in the channel open.
    for (a, other) in [(&a1, &a2), (&a2, &a1)] {
        if matches!(
            a,
            Address::Socks5Listen(_)
                | Address::Socks5Dial(_)
                | Address::UdpListen(_)
                | Address::UdpConnect(_)
        ) && !matches!(other, Address::SerialMux(_))
        {
            return Err(Error::Usage(format!(
                "{} works only facing SERIAL-MUX, not {}",
                a.keyword(),
                other.keyword()
            )));
        }
    }
    if let (Address::Pty(p1), Address::Pty(p2)) = (&a1, &a2) {
        return Ok(Plan::Cable(p1.clone(), p2.clone()));
    }
    let mux_serves_1 = matches!(a1, Address::SerialMux(_)) && !a2.is_listener();
    let mux_serves_2 = matches!(a2, Address::SerialMux(_)) && is_dialing(&a1);
    Ok(if a1.is_listener() || mux_serves_1 {
        Plan::Serve(source(&a1, &a2, hub).await?, dialer(a2, hub).await?)
    } else if a2.is_listener() || mux_serves_2 {
        Plan::Serve(source(&a2, &a1, hub).await?, dialer(a1, hub).await?)
    } else {
        Plan::Once(dialer(a1, hub).await?, dialer(a2, hub).await?)
    })
}

/// How long connections may go on finishing by themselves after SIGINT or
/// SIGTERM before they are reset.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Runs every address pair of the command line until all are done (a forking
/// listener or a serving SERIAL-MUX never is) or a signal stops them. Returns
/// the exit status a one-shot stream ended with (a remote program's, carried
/// over SERIAL-MUX), for sfs to exit with.
///
/// On SIGINT or SIGTERM (Ctrl-C, Ctrl-Break on Windows), listeners stop
/// accepting and every connection gets [`STOP_GRACE`] to finish by itself;
/// what is still running then is reset, never closed as if complete. A second
/// signal resets at once.
pub async fn run(pairs: Vec<(Address, Address)>) -> Result<Option<ExitStatus>> {
    run_with(pairs, RunOptions::default()).await
}

/// Process-wide settings of [`run_with`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print the link statistics (as on SIGUSR1) this often (`--stats-interval`);
    /// with `stats_json`, the period of its reports.
    pub stats_interval: Option<std::time::Duration>,
    /// Write a JSON report (see [`crate::stats::Report`]) every
    /// `stats_interval` and at exit to this file, or stdout for `-`.
    pub stats_json: Option<std::path::PathBuf>,
    /// Show the live status view on stderr (`--status`).
    pub status: bool,
}

/// `--stats-json` without `--stats-interval`: a report this often.
pub const DEFAULT_JSON_INTERVAL: Duration = Duration::from_secs(5);

/// Where `--stats-json` reports go, one JSON object per line.
struct JsonSink {
    out: Box<dyn std::io::Write + Send>,
    path: String,
    started: std::time::Instant,
}

impl JsonSink {
    fn open(path: &std::path::Path) -> Result<Self> {
        let out: Box<dyn std::io::Write + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::File::create(path).map_err(|e| {
                Error::io(
                    format!("cannot create --stats-json file {}", path.display()),
                    e,
                )
            })?)
        };
        Ok(JsonSink {
            out,
            path: path.display().to_string(),
            started: std::time::Instant::now(),
        })
    }

    /// Writes one report line; a failed write is logged, not fatal (statistics
    /// must not stop the connections).
    fn write(
        &mut self,
        reason: crate::stats::ReportReason,
        links: Vec<crate::stats::LinkSnapshot>,
    ) {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let report =
            crate::stats::Report::new(reason, time_ms, self.started.elapsed().as_secs_f64(), links);
        let r = serde_json::to_writer(&mut self.out, &report)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        if let Err(e) = r {
            warn!("--stats-json {}: {}", self.path, describe_io(&e));
        }
    }
}

/// [`run`] with process-wide settings.
pub async fn run_with(
    pairs: Vec<(Address, Address)>,
    opts: RunOptions,
) -> Result<Option<ExitStatus>> {
    let mut json = match &opts.stats_json {
        Some(p) => Some(JsonSink::open(p)?),
        None => None,
    };
    let interval = match (opts.stats_interval, &json) {
        (None, Some(_)) => Some(DEFAULT_JSON_INTERVAL),
        (i, _) => i,
    };
    let hub = MuxHub::new();
    let mut plans = Vec::new();
    for (a1, a2) in pairs {
        plans.push(plan(a1, a2, &hub).await?);
    }
    let (stop_tx, stop_rx) = watch::channel(Stop::Running);
    let mut tasks = tokio::task::JoinSet::new();
    for p in plans {
        tasks.spawn(execute(p, stop_rx.clone()));
    }
    let mut first_err = None;
    let mut status = None;
    let mut signals = 0;
    let mut stop_signals = crate::os::StopSignals::new();
    let mut stats_requests = crate::os::StatsRequests::new(interval);
    // The view comes up once the addresses are bound (so errors print plainly).
    let mut view = if opts.status {
        crate::status::StatusView::start()
    } else {
        None
    };
    let mut redraw = tokio::time::interval(crate::status::REFRESH);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok(Ok(s))) => status = status.or(s),
                Some(Ok(Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Some(Err(join)) if join.is_cancelled() => {}
                Some(Err(join)) => {
                    first_err.get_or_insert(Error::Runtime(format!("internal error: {join}")));
                }
            },
            _ = stop_signals.recv() => {
                signals += 1;
                if signals == 1 {
                    info!("signal received: finishing connections (up to {} s), then resetting the rest", STOP_GRACE.as_secs());
                    let _ = stop_tx.send(Stop::Draining(tokio::time::Instant::now() + STOP_GRACE));
                } else {
                    info!("second signal: resetting every connection");
                    tasks.abort_all();
                }
            }
            tick = stats_requests.recv() => {
                // Statistics on request (SIGUSR1, like dd(1)) or every
                // --stats-interval: one line per serial link, or with
                // --stats-json one JSON report per tick. The view shows them
                // already, so no text lines over it.
                let links = hub.snapshots().await;
                match &mut json {
                    Some(j) if tick => j.write(crate::stats::ReportReason::Interval, links),
                    _ if view.is_some() => {}
                    _ => {
                        for l in &links {
                            eprintln!("sfs: {}", l.text_line());
                        }
                    }
                }
            }
            _ = redraw.tick(), if view.is_some() => {
                let links = hub.snapshots().await;
                if let Some(v) = &mut view {
                    v.draw(&links);
                }
            }
        }
        if first_err.is_some() {
            tasks.abort_all();
            break;
        }
    }
    // Wait for the aborted tasks to be dropped, so that what they own is torn down
    // in order (the cable prints its statistics, pty links are removed).
    while tasks.join_next().await.is_some() {}
    if let Some(j) = &mut json {
        j.write(crate::stats::ReportReason::Exit, hub.snapshots().await);
    }
    // The terminal is restored before the last log lines.
    drop(view);
    // Every connection has ended: the drivers flush the last closes and resets.
    hub.shutdown(Duration::ZERO).await;
    match first_err {
        Some(e) => Err(e),
        None => Ok(status),
    }
}

/// What the bridge asks of running plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Running,
    /// Accept nothing new; finish by the deadline, then reset what is left.
    Draining(tokio::time::Instant),
}

/// Resolves at the deadline of a stop request.
async fn stop_deadline(mut stop: watch::Receiver<Stop>) {
    loop {
        let state = *stop.borrow_and_update();
        if let Stop::Draining(deadline) = state {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Resolves when a stop is requested.
async fn stop_requested(mut stop: watch::Receiver<Stop>) {
    let requested = stop.wait_for(|s| *s != Stop::Running).await.is_ok();
    if !requested {
        std::future::pending::<()>().await
    }
}

async fn execute(plan: Plan, stop: watch::Receiver<Stop>) -> Result<Option<ExitStatus>> {
    match plan {
        Plan::Cable(p1, p2) => {
            tokio::select! {
                r = crate::cable::run(p1, p2) => r.map(|()| None),
                _ = stop_requested(stop) => Ok(None),
            }
        }
        Plan::Once(d1, d2) => {
            let c1 = d1.dial(None).await.map_err(|e| dial_error(&d1, &e))?;
            let c2 = match d2.dial(Some(&c1.label)).await {
                Ok(c) => c,
                Err(e) => {
                    c1.abort();
                    return Err(dial_error(&d2, &e));
                }
            };
            tokio::select! {
                r = splice(c1, c2) => r
                    .map(|s| s.status)
                    .map_err(|e| Error::Runtime(format!("connection aborted: {}", describe_io(&e)))),
                _ = stop_deadline(stop) => Err(Error::Runtime(
                    "stopped by a signal before the transfer finished; the connection was reset".into(),
                )),
            }
        }
        Plan::Serve(mut src, dial) => {
            let (fork, max_children) = src.policy();
            let limit = Arc::new(Semaphore::new(
                max_children.unwrap_or(Semaphore::MAX_PERMITS),
            ));
            let mut running = tokio::task::JoinSet::new();
            loop {
                let permit = tokio::select! {
                    p = limit.clone().acquire_owned() => p.expect("semaphore never closed"),
                    _ = stop_requested(stop.clone()) => break,
                };
                let arrival = tokio::select! {
                    a = src.next() => a,
                    // Reap finished connections while waiting.
                    Some(_) = running.join_next(), if !running.is_empty() => continue,
                    _ = stop_requested(stop.clone()) => break,
                };
                let arrival = match arrival {
                    None => break,
                    Some(Ok(a)) => a,
                    Some(Err(e)) => {
                        warn!("accept failed: {}", describe_io(&e));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let dial = dial.clone();
                let task = async move {
                    let _permit = permit;
                    serve_one(arrival, dial).await
                };
                if fork {
                    // Each connection's failure is logged; the listener keeps serving.
                    running.spawn(async move {
                        if let Err(e) = task.await {
                            debug!("{e}");
                        }
                    });
                } else {
                    return tokio::select! {
                        r = task => r.map(|()| None),
                        _ = stop_deadline(stop) => Ok(None),
                    };
                }
            }
            // Stopping (or the source ended): running connections finish, until
            // the stop deadline resets them (dropping the set aborts them).
            drop(src);
            tokio::select! {
                _ = async { while running.join_next().await.is_some() {} } => {}
                _ = stop_deadline(stop) => {
                    if !running.is_empty() {
                        info!("resetting {} connection(s) still open", running.len());
                    }
                }
            }
            Ok(None)
        }
    }
}

/// Dials for one arrival and bridges them; a failed dial closes (or refuses)
/// only this arrival.
async fn serve_one(arrival: Arrival, dial: Dialer) -> Result<()> {
    let arrival = match (arrival, &dial) {
        (Arrival::Socks(stream, peer), Dialer::Mux { handle, addr }) => {
            return match socks::serve_client(stream, peer, handle, &addr.service).await {
                Ok((a, b)) => bridge_logged(a, b).await,
                Err(e) => Err(Error::Runtime(format!("socks {peer}: {}", describe_io(&e)))),
            };
        }
        (Arrival::Pending(p), Dialer::Address(a)) if matches!(**a, Address::Socks5Dial(_)) => {
            let Address::Socks5Dial(cfg) = &**a else {
                unreachable!("matched above")
            };
            return match socks::serve_channel(p, cfg).await {
                Ok((a, b)) => bridge_logged(a, b).await,
                Err(e) => Err(Error::Runtime(format!("socks: {}", describe_io(&e)))),
            };
        }
        (Arrival::Socks(..), _) => {
            return Err(Error::Runtime(
                "internal: SOCKS5 client without a line".into(),
            ))
        }
        (a, _) => a,
    };
    let outcome = match &arrival {
        Arrival::Ready(c) => dial.dial(Some(&c.label)).await,
        Arrival::Pending(_) | Arrival::Socks(..) => dial.dial(None).await,
    };
    match (arrival, outcome) {
        (Arrival::Ready(c), Ok(d)) => bridge_logged(c, d).await,
        (Arrival::Pending(p), Ok(d)) => {
            let label = d.label.clone();
            bridge_logged(p.accept(&label), d).await
        }
        (Arrival::Ready(c), Err(e)) => {
            let err = dial_error(&dial, &e);
            warn!("{err}: closing {}", c.label);
            drop(c);
            Err(err)
        }
        (Arrival::Pending(p), Err(e)) => {
            let err = dial_error(&dial, &e);
            warn!("{err}: refusing the channel");
            p.refuse(&e);
            Err(err)
        }
        (Arrival::Socks(..), _) => unreachable!("served above"),
    }
}

/// Bridges one served connection, logging (`-v`) its opening and its end with
/// the bytes each way, inside a span naming both ends.
async fn bridge_logged(a: Conn, b: Conn) -> Result<()> {
    use tracing::Instrument;
    let span = tracing::info_span!("conn", a = %a.label, b = %b.label);
    async move {
        info!("opened {} <-> {}", a.label, b.label);
        let started = tokio::time::Instant::now();
        let (al, bl) = (a.label.clone(), b.label.clone());
        match splice(a, b).await {
            Ok(s) => {
                info!(
                    "closed {al} <-> {bl}: {} bytes ->, {} bytes <-, {:.1} s",
                    s.a_to_b,
                    s.b_to_a,
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Err(e) => Err(Error::Runtime(format!(
                "connection aborted: {}",
                describe_io(&e)
            ))),
        }
    }
    .instrument(span)
    .await
}

fn dial_error(d: &Dialer, e: &io::Error) -> Error {
    match d {
        Dialer::Address(a) if !is_dialing(a) => Error::Runtime(describe_io(e)),
        _ => Error::Runtime(format!(
            "cannot connect to {}: {}",
            d.describe(),
            describe_io(e)
        )),
    }
}
