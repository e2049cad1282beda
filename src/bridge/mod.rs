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
//!
//! - `plan.rs`: the roles of a pair (which side accepts, which is dialed);
//! - `splice.rs`: copying two connections into each other with half-close;
//! - here: running the plans, serving each arrival, stopping on request.
//!   The process around it (signals, statistics, the status view) is
//!   [`crate::app`].

#![allow(clippy::disallowed_methods)] // a driver: it reads the clock for the stop deadline

mod plan;
mod splice;

pub(crate) use plan::plan;
use plan::{is_dialing, Arrival, Dialer, Plan};
pub use splice::{splice, Spliced};

use crate::address::Address;
use crate::endpoint::{socks, Conn, ExitStatus};
use crate::error::{describe_io, Error, Result};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

/// How long connections may go on finishing by themselves after SIGINT or
/// SIGTERM before they are reset.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// What the bridge asks of running plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
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

pub(crate) async fn execute(plan: Plan, stop: watch::Receiver<Stop>) -> Result<Option<ExitStatus>> {
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
