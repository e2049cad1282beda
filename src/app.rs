//! The process around the bridges: runs every address pair of the command
//! line, stops them on SIGINT/SIGTERM (a grace period, then resets; a second
//! signal resets at once), prints statistics on request (SIGUSR1 or
//! `--stats-interval`), writes `--stats-json` reports, and draws the
//! `--status` view.
#![allow(clippy::disallowed_methods)] // the process loop reads the clock

use crate::address::Address;
use crate::bridge::{execute, plan, Stop, STOP_GRACE};
use crate::endpoint::serial_mux::MuxHub;
use crate::endpoint::ExitStatus;
use crate::error::{describe_io, Error, Result};
use std::io;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

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

/// Statistics on request (SIGUSR1, like dd(1)) or every `--stats-interval`:
/// one line per serial link, or with `--stats-json` one JSON report per
/// tick. The view shows them already, so no text lines over it.
async fn report_stats(tick: bool, hub: &MuxHub, json: &mut Option<JsonSink>, view_up: bool) {
    let links = hub.snapshots().await;
    match json {
        Some(j) if tick => j.write(crate::stats::ReportReason::Interval, links),
        _ if view_up => {}
        _ => {
            for l in &links {
                eprintln!("sfs: {}", l.text_line());
            }
        }
    }
}

/// The `--status` view over the run: it comes up at most once.
enum View {
    NotWanted,
    NotYet,
    Up(crate::status::StatusView),
    /// No terminal to draw on (said once when it was tried).
    Unavailable,
}

impl View {
    fn bring_up(&mut self) {
        if let View::NotYet = self {
            *self = match crate::status::StatusView::start() {
                Some(v) => View::Up(v),
                None => View::Unavailable,
            };
        }
    }

    fn is_up(&self) -> bool {
        matches!(self, View::Up(_))
    }

    async fn draw(&mut self, hub: &MuxHub) {
        if let View::Up(v) = self {
            v.draw(&hub.snapshots().await);
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
    let mut stop_signals = crate::os::StopSignals::new();
    let mut stats_requests = crate::os::StatsRequests::new(interval);
    let mut redraw = tokio::time::interval(crate::status::REFRESH);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The view comes up once the addresses are bound (so errors print
    // plainly), or earlier to show a bootstrap= upload.
    let mut view = if opts.status {
        View::NotYet
    } else {
        View::NotWanted
    };
    let plans = {
        let planning = async {
            let mut plans = Vec::new();
            for (a1, a2) in pairs {
                plans.push(plan(a1, a2, &hub).await?);
            }
            Ok::<_, Error>(plans)
        };
        tokio::pin!(planning);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = &mut planning => break r?,
                // Only a bootstrap takes long enough to be stopped here; it
                // puts the console back and fails, which ends the planning.
                _ = stop_signals.recv() => {
                    if stopping || !hub.is_bootstrapping() {
                        return Err(Error::Runtime("stopped by a signal while starting".into()));
                    }
                    stopping = true;
                    info!("signal received: stopping the bootstrap (a second signal exits at once)");
                    hub.stop_starting();
                }
                tick = stats_requests.recv() => {
                    report_stats(tick, &hub, &mut json, view.is_up()).await;
                }
                _ = redraw.tick(), if hub.is_bootstrapping() => {
                    view.bring_up();
                    view.draw(&hub).await;
                }
            }
        }
    };
    let (stop_tx, stop_rx) = watch::channel(Stop::Running);
    let mut tasks = tokio::task::JoinSet::new();
    for p in plans {
        tasks.spawn(execute(p, stop_rx.clone()));
    }
    let mut first_err = None;
    let mut status = None;
    let mut signals = 0;
    view.bring_up();
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
            () = hub.peer_gone() => {
                info!("the link's peer is gone: exiting (exit-with-peer)");
                tasks.abort_all();
                break;
            }
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
                report_stats(tick, &hub, &mut json, view.is_up()).await;
            }
            _ = redraw.tick(), if view.is_up() => view.draw(&hub).await,
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
