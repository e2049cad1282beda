//! `SERIAL-MUX:DEVICE`: the tokio driver of a [`Station`], the sans-IO end of a
//! SERIAL-MUX line. It only moves bytes: between the device and the station,
//! and between the station's channels and the bridge's [`Conn`]s. Every
//! decision about the line (what to send when, which opens wait, what a
//! service refusal says, how a close drains) is the station's.
//!
//! One driver task per device (several address pairs naming the same device
//! share it, see [`MuxHub`]). The task:
//! - reads the device continuously (a reader task with a bounded queue);
//! - writes through a writer task, so a device that stops taking bytes (a line
//!   held by CTS, a full adapter) pauses the line but never the driver: timers,
//!   `dead-after`, input and commands go on;
//! - reopens a lost device when the station says so (every 500 ms), keeping
//!   the link and channels.
//!
//! A channel reaches the bridge as a [`Conn`]: its reader yields the peer's
//! bytes and reports them consumed only when the bridge comes back for more
//! (so they were written on), its writer has a small byte budget, and its
//! `confirmed` future resolves when the station reports the channel closed
//! (the peer took every byte) or fails when it was cut.
//!
//! # Layout
//! - this file: the handles the bridge holds ([`MuxHub`], [`MuxHandle`],
//!   [`Incoming`], [`PendingChannel`]), the commands they send the driver,
//!   and how a failed open reads as an `io::Error`;
//! - `start`: the station's settings from the address, opening the device
//!   and spawning the driver;
//! - `port`: the tasks that read and write an open device;
//! - `driver`: the driver task's loop (device, commands, timers) and the
//!   station's events handed to the channels;
//! - `channel`: a channel's [`Conn`] halves and the driver's side of them;
//! - `status`: snapshots for `--status` and the `-vv` link watch.
#![allow(clippy::disallowed_methods)] // a driver: it reads the clock and hands time to the sans-IO core

use super::Conn;
use crate::address::SerialMux;
use crate::error::{Error, Result};
use crate::mux::{ChannelId, ExitStatus, RefuseReason, Target};
use crate::station::OpenError;
use crate::stats::LinkSnapshot;
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod bootstrap;
mod channel;
mod driver;
mod port;
mod start;
mod status;

use channel::ConnParts;
use start::start;

/// Process-wide registry of mux drivers, one per device.
#[derive(Clone)]
pub struct MuxHub {
    running: Arc<std::sync::Mutex<HashMap<String, (SerialMux, MuxHandle)>>>,
    /// Held while a driver starts, so that a device is opened (and
    /// bootstrapped) once however many addresses name it.
    starting: Arc<tokio::sync::Mutex<()>>,
    /// `bootstrap=` conversations in progress: what the snapshots show
    /// before their links exist.
    booting: bootstrap::BootList,
    /// Turns true when sfs stops: a bootstrap in progress puts its console
    /// back and fails.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Told when a link with `exit-with-peer` ended its session.
    peer_gone: Arc<tokio::sync::Notify>,
}

impl Default for MuxHub {
    fn default() -> Self {
        MuxHub {
            running: Arc::default(),
            starting: Arc::default(),
            booting: Arc::default(),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            peer_gone: Arc::default(),
        }
    }
}

impl MuxHub {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The driver for `addr.device`, starting it on first use. Addresses sharing
    /// a device must agree on its line and link settings.
    pub async fn get(&self, addr: &SerialMux) -> Result<MuxHandle> {
        let _one_start_at_a_time = self.starting.lock().await;
        if let Some(h) = self.running_for(addr)? {
            return Ok(h);
        }
        let h = start(
            addr,
            &self.peer_gone,
            &self.booting,
            self.stopping.subscribe(),
        )
        .await?;
        self.lock_running()
            .insert(addr.device.clone(), (addr.clone(), h.clone()));
        Ok(h)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, (SerialMux, MuxHandle)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The driver already running for `addr.device`, if its options agree.
    fn running_for(&self, addr: &SerialMux) -> Result<Option<MuxHandle>> {
        let map = self.lock_running();
        let Some((first, h)) = map.get(&addr.device) else {
            return Ok(None);
        };
        let same = SerialMux {
            service: addr.service.clone(),
            ..first.clone()
        };
        if &same != addr {
            return Err(Error::Usage(format!(
                "SERIAL-MUX:{} is given with different options ({} vs {}); only service= may differ",
                addr.device,
                crate::address::Address::SerialMux(first.clone()),
                crate::address::Address::SerialMux(addr.clone())
            )));
        }
        Ok(Some(h.clone()))
    }

    /// Whether a `bootstrap=` conversation is going on (the status view then
    /// comes up before the addresses are all ready, to show it).
    pub fn is_bootstrapping(&self) -> bool {
        !self
            .booting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// sfs is stopping before its addresses were ready: a bootstrap in
    /// progress puts its console back, then fails.
    pub fn stop_starting(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves when a link with `exit-with-peer` lost its peer: the process
    /// should exit.
    pub async fn peer_gone(&self) {
        self.peer_gone.notified().await
    }

    /// Handles of every running driver.
    fn handles(&self) -> Vec<MuxHandle> {
        self.lock_running()
            .values()
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// One statistics line per running driver.
    pub async fn stats(&self) -> Vec<String> {
        self.snapshots()
            .await
            .iter()
            .map(LinkSnapshot::text_line)
            .collect()
    }

    /// A snapshot of every running driver and every bootstrap in progress,
    /// sorted by device.
    pub async fn snapshots(&self) -> Vec<LinkSnapshot> {
        let now = std::time::Instant::now();
        let mut out: Vec<LinkSnapshot> = self
            .booting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(device, b)| b.snapshot(device, now))
            .collect();
        for h in self.handles() {
            if let Some(s) = h.snapshot().await {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.device.cmp(&b.device));
        out
    }

    /// Closes every driver: channels still open get `grace` to finish cleanly,
    /// then are reset; returns once the resets were flushed to the peer.
    pub async fn shutdown(&self, grace: Duration) {
        // A far sfs started by bootstrap= is told to exit (and its console
        // comes back) now, not dead-after later; its refusal is the receipt.
        let bootstrapped: Vec<MuxHandle> = self
            .lock_running()
            .values()
            .filter(|(a, _)| a.boot.bootstrap.is_some())
            .map(|(_, h)| h.clone())
            .collect();
        for h in bootstrapped {
            let bye = h.open_channel(bootstrap::EXIT_SERVICE, None);
            let _ = tokio::time::timeout(bootstrap::EXIT_WAIT, bye).await;
        }
        for h in self.handles() {
            let (tx, rx) = oneshot::channel();
            if h.cmd.send(Cmd::Close { grace, done: tx }).is_ok() {
                let _ = rx.await;
            }
        }
    }
}

/// A handle on one running mux driver.
#[derive(Clone)]
pub struct MuxHandle {
    cmd: mpsc::UnboundedSender<Cmd>,
    device: Arc<str>,
}

impl MuxHandle {
    /// Opens a channel to the peer's `service` and waits until it is accepted
    /// (while the link is down or every channel is busy, the station makes it
    /// wait). A refusal is an error of kind `ConnectionRefused`.
    ///
    /// `endpoint` names the local end the channel will be bridged to, for
    /// statistics and logs.
    pub async fn open_channel(&self, service: &str, endpoint: Option<&str>) -> io::Result<Conn> {
        self.open_channel_to(service, None, endpoint).await
    }

    /// [`MuxHandle::open_channel`] asking the peer to connect to `target`
    /// (an OPEN_TO). A refusal's reason is in the error: [`refuse_reason`].
    pub async fn open_channel_to(
        &self,
        service: &str,
        target: Option<Target>,
        endpoint: Option<&str>,
    ) -> io::Result<Conn> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Open {
                service: service.to_string(),
                target,
                endpoint: endpoint.map(str::to_string),
                reply: tx,
            })
            .map_err(|_| driver_gone())?;
        rx.await.map_err(|_| driver_gone())?
    }

    /// Offers `service`: channels the peer opens for it arrive on the returned
    /// [`Incoming`].
    pub fn listen(&self, service: &str) -> Result<Incoming> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.cmd
            .send(Cmd::Listen {
                service: service.to_string(),
                queue: tx,
            })
            .map_err(|_| Error::Runtime(format!("SERIAL-MUX:{} stopped", self.device)))?;
        Ok(Incoming { rx })
    }

    /// A snapshot of the driver's counters, as text.
    pub async fn stats(&self) -> Option<String> {
        Some(self.snapshot().await?.text_line())
    }

    /// A snapshot of the link and its channels.
    pub async fn snapshot(&self) -> Option<LinkSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::Stats { reply: tx }).ok()?;
        rx.await.ok()
    }
}

fn driver_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "serial mux driver stopped")
}

/// Channels opened by the peer for one service. Unbounded, because the
/// station's channel limit already bounds how many can be pending.
pub struct Incoming {
    rx: mpsc::UnboundedReceiver<PendingChannel>,
}

impl Incoming {
    /// The next channel, or `None` when the driver has stopped.
    pub async fn next(&mut self) -> Option<PendingChannel> {
        self.rx.recv().await
    }
}

/// A channel the peer opened, waiting for us to accept (after dialing our target)
/// or refuse it.
pub struct PendingChannel {
    ch: ChannelId,
    target: Option<Target>,
    cmd: mpsc::UnboundedSender<Cmd>,
    parts: Option<ConnParts>,
}

impl PendingChannel {
    /// The destination the peer asked for (an OPEN_TO), if any.
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// Refuses the channel with an explicit reason and detail.
    pub fn refuse_with(mut self, reason: RefuseReason, detail: &str) {
        self.parts = None;
        let _ = self.cmd.send(Cmd::Refuse {
            ch: self.ch,
            reason,
            detail: detail.to_string(),
        });
    }

    /// Accepts the channel and returns it as a connection; `endpoint` names
    /// the local end it is bridged to, for statistics and logs.
    pub fn accept(mut self, endpoint: &str) -> Conn {
        let _ = self.cmd.send(Cmd::Accept {
            ch: self.ch,
            endpoint: endpoint.to_string(),
        });
        self.parts
            .take()
            .expect("parts present until accept")
            .into_conn()
    }

    /// Refuses the channel; the reason travels to the peer.
    pub fn refuse(mut self, why: &io::Error) {
        self.parts = None;
        let reason = match why.kind() {
            io::ErrorKind::ConnectionRefused => RefuseReason::ConnectionRefused,
            io::ErrorKind::NotFound
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::AddrNotAvailable => RefuseReason::NoRoute,
            io::ErrorKind::PermissionDenied => RefuseReason::NotAllowed,
            io::ErrorKind::TimedOut => RefuseReason::TimedOut,
            _ => RefuseReason::Other,
        };
        let detail = crate::error::describe_io(why);
        let _ = self.cmd.send(Cmd::Refuse {
            ch: self.ch,
            reason,
            detail,
        });
    }
}

impl Drop for PendingChannel {
    fn drop(&mut self) {
        if self.parts.is_some() {
            let _ = self.cmd.send(Cmd::Refuse {
                ch: self.ch,
                reason: RefuseReason::Other,
                detail: "dropped".into(),
            });
        }
    }
}

/// Requests from channel halves and the bridge to the driver.
enum Cmd {
    Open {
        service: String,
        target: Option<Target>,
        endpoint: Option<String>,
        reply: oneshot::Sender<io::Result<Conn>>,
    },
    Listen {
        service: String,
        queue: mpsc::UnboundedSender<PendingChannel>,
    },
    Accept {
        ch: ChannelId,
        endpoint: String,
    },
    Refuse {
        ch: ChannelId,
        reason: RefuseReason,
        detail: String,
    },
    Data {
        ch: ChannelId,
        data: Bytes,
    },
    Eof {
        ch: ChannelId,
        status: Option<ExitStatus>,
    },
    Reset {
        ch: ChannelId,
    },
    Consumed {
        ch: ChannelId,
        n: usize,
    },
    Stats {
        reply: oneshot::Sender<LinkSnapshot>,
    },
    Close {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

/// An open's failure as the error the dialer reports.
/// Why the peer refused an open, as carried inside the `io::Error` of
/// [`MuxHandle::open_channel_to`].
#[derive(Debug)]
struct Refused {
    reason: RefuseReason,
    text: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Refused {}

/// The peer's reason when `e` is the refusal of an open.
pub fn refuse_reason(e: &io::Error) -> Option<RefuseReason> {
    e.get_ref()?.downcast_ref::<Refused>().map(|r| r.reason)
}

fn open_error(e: &OpenError) -> io::Error {
    if let OpenError::Refused { reason, .. } = e {
        return io::Error::new(
            io::ErrorKind::ConnectionRefused,
            Refused {
                reason: *reason,
                text: e.to_string(),
            },
        );
    }
    let kind = match e {
        OpenError::Refused { .. } => io::ErrorKind::ConnectionRefused,
        OpenError::LinkDown(_) | OpenError::ChannelsBusy(_) => io::ErrorKind::TimedOut,
        OpenError::Reset(_) => io::ErrorKind::ConnectionReset,
        OpenError::QueueFull(_) | OpenError::Closing | OpenError::Invalid(_) => {
            io::ErrorKind::Other
        }
    };
    io::Error::new(kind, e.to_string())
}
