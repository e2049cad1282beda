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

use crate::address::{Address, ListenOptions};
use crate::endpoint::serial_mux::{Incoming, MuxHandle, MuxHub, PendingChannel};
use crate::endpoint::{exec, pty, serial, stdio, tcp, unix, Conn};
use crate::error::{describe_io, Error, Result};
use std::io;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// Copies both ways between two connections until both directions reach EOF.
/// Returns the bytes carried a→b and b→a; on an error both are aborted.
pub async fn splice(a: Conn, b: Conn) -> io::Result<(u64, u64)> {
    let Conn {
        reader: mut ar,
        writer: mut aw,
        abort: a_abort,
        label: a_label,
    } = a;
    let Conn {
        reader: mut br,
        writer: mut bw,
        abort: b_abort,
        label: b_label,
    } = b;
    // Declared after the halves, so dropped before them: if this future is
    // cancelled mid-copy (sfs stopped by a signal), both sides are aborted before
    // any half is closed normally, and neither peer reads a clean end of file.
    let mut guard = AbortGuard(vec![a_abort, b_abort]);
    let ab = async {
        let n = tokio::io::copy(&mut ar, &mut bw).await?;
        bw.shutdown().await?;
        io::Result::Ok(n)
    };
    let ba = async {
        let n = tokio::io::copy(&mut br, &mut aw).await?;
        aw.shutdown().await?;
        io::Result::Ok(n)
    };
    tokio::pin!(ab, ba);
    let (mut n_ab, mut n_ba) = (None, None);
    let result = loop {
        tokio::select! {
            r = &mut ab, if n_ab.is_none() => match r {
                Ok(n) => n_ab = Some(n),
                Err(e) => break Err(e),
            },
            r = &mut ba, if n_ba.is_none() => match r {
                Ok(n) => n_ba = Some(n),
                Err(e) => break Err(e),
            },
        }
        if let (Some(x), Some(y)) = (n_ab, n_ba) {
            break Ok((x, y));
        }
    };
    match &result {
        Ok((x, y)) => {
            debug!("{a_label} <-> {b_label}: done, {x} and {y} bytes");
            guard.disarm();
        }
        Err(e) => {
            info!("{a_label} <-> {b_label}: aborted: {}", describe_io(e));
            guard.fire();
        }
    }
    result
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
    async fn dial(&self) -> io::Result<Conn> {
        match self {
            Dialer::Mux { handle, addr } => handle.open_channel(&addr.service).await,
            Dialer::Address(a) => match &**a {
                Address::TcpConnect(t) => tcp::connect(t).await,
                Address::UnixConnect(u) => unix::connect(u).await,
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
}

/// One incoming connection: ready now, or a mux channel waiting for our dial.
enum Arrival {
    Ready(Conn),
    Pending(PendingChannel),
}

impl Source {
    async fn next(&mut self) -> Option<io::Result<Arrival>> {
        match self {
            Source::Tcp(l, _) => Some(l.accept().await.map(Arrival::Ready)),
            Source::Unix(l, _) => Some(l.accept().await.map(Arrival::Ready)),
            Source::Mux(i) => i.next().await.map(|p| Ok(Arrival::Pending(p))),
        }
    }

    /// (fork, max-children): mux channels are always served concurrently.
    fn policy(&self) -> (bool, Option<usize>) {
        match self {
            Source::Tcp(_, o) | Source::Unix(_, o) => (o.fork, o.max_children),
            Source::Mux(_) => (true, None),
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
        Address::TcpConnect(_) | Address::UnixConnect(_) | Address::Exec(_)
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

async fn source(a: &Address, hub: &MuxHub) -> Result<Source> {
    Ok(match a {
        Address::TcpListen(t) => Source::Tcp(tcp::Listener::bind(t).await?, t.listen.clone()),
        Address::UnixListen(u) => Source::Unix(unix::Listener::bind(u)?, u.listen.clone()),
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
    if let (Address::Pty(p1), Address::Pty(p2)) = (&a1, &a2) {
        return Ok(Plan::Cable(p1.clone(), p2.clone()));
    }
    let mux_serves_1 = matches!(a1, Address::SerialMux(_)) && !a2.is_listener();
    let mux_serves_2 = matches!(a2, Address::SerialMux(_)) && is_dialing(&a1);
    Ok(if a1.is_listener() || mux_serves_1 {
        Plan::Serve(source(&a1, hub).await?, dialer(a2, hub).await?)
    } else if a2.is_listener() || mux_serves_2 {
        Plan::Serve(source(&a2, hub).await?, dialer(a1, hub).await?)
    } else {
        Plan::Once(dialer(a1, hub).await?, dialer(a2, hub).await?)
    })
}

/// Runs every address pair of the command line until all are done (a forking
/// listener or a serving SERIAL-MUX never is) or a signal arrives.
pub async fn run(pairs: Vec<(Address, Address)>) -> Result<()> {
    run_with(pairs, RunOptions::default()).await
}

/// Process-wide settings of [`run_with`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print the link statistics (as on SIGUSR1) this often (`--stats-interval`).
    pub stats_interval: Option<std::time::Duration>,
}

/// [`run`] with process-wide settings.
pub async fn run_with(pairs: Vec<(Address, Address)>, opts: RunOptions) -> Result<()> {
    let hub = MuxHub::new();
    let mut plans = Vec::new();
    for (a1, a2) in pairs {
        plans.push(plan(a1, a2, &hub).await?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for p in plans {
        tasks.spawn(execute(p));
    }
    let mut first_err = None;
    let shutdown = crate::os::shutdown_signal();
    tokio::pin!(shutdown);
    let mut stats_requests = crate::os::StatsRequests::new(opts.stats_interval);
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Some(Err(join)) => {
                    first_err.get_or_insert(Error::Runtime(format!("internal error: {join}")));
                }
            },
            _ = &mut shutdown => {
                info!("signal received, closing");
                tasks.abort_all();
                break;
            }
            _ = stats_requests.recv() => {
                // Statistics on request (SIGUSR1, like dd(1)) or every
                // --stats-interval: one line per serial link.
                for line in hub.stats().await {
                    eprintln!("sfs: {line}");
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
    // Let the mux drivers flush what they were sending (EOFs, resets) briefly.
    hub.shutdown().await;
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn execute(plan: Plan) -> Result<()> {
    match plan {
        Plan::Cable(p1, p2) => crate::cable::run(p1, p2).await,
        Plan::Once(d1, d2) => {
            let c1 = d1.dial().await.map_err(|e| dial_error(&d1, &e))?;
            let c2 = match d2.dial().await {
                Ok(c) => c,
                Err(e) => {
                    c1.abort();
                    return Err(dial_error(&d2, &e));
                }
            };
            splice(c1, c2)
                .await
                .map(|_| ())
                .map_err(|e| Error::Runtime(format!("connection aborted: {}", describe_io(&e))))
        }
        Plan::Serve(mut src, dial) => {
            let (fork, max_children) = src.policy();
            let limit = Arc::new(Semaphore::new(
                max_children.unwrap_or(Semaphore::MAX_PERMITS),
            ));
            let mut running = tokio::task::JoinSet::new();
            loop {
                let permit = limit
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let arrival = tokio::select! {
                    a = src.next() => a,
                    // Reap finished connections while waiting.
                    Some(_) = running.join_next(), if !running.is_empty() => continue,
                };
                let arrival = match arrival {
                    None => break,
                    Some(Ok(a)) => a,
                    Some(Err(e)) => {
                        warn!("accept failed: {}", describe_io(&e));
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
                    return task.await;
                }
            }
            while running.join_next().await.is_some() {}
            Ok(())
        }
    }
}

/// Dials for one arrival and bridges them; a failed dial closes (or refuses)
/// only this arrival.
async fn serve_one(arrival: Arrival, dial: Dialer) -> Result<()> {
    let outcome = dial.dial().await;
    match (arrival, outcome) {
        (Arrival::Ready(c), Ok(d)) => bridge_logged(c, d).await,
        (Arrival::Pending(p), Ok(d)) => bridge_logged(p.accept(), d).await,
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
    }
}

async fn bridge_logged(a: Conn, b: Conn) -> Result<()> {
    info!("bridging {} <-> {}", a.label, b.label);
    splice(a, b)
        .await
        .map(|_| ())
        .map_err(|e| Error::Runtime(format!("connection aborted: {}", describe_io(&e))))
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
