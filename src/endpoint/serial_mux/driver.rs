//! The driver task: one loop over device input, finished writes, commands
//! from the handles and the station's next deadline. It hands bytes and time
//! to the station and the station's events to the channels.

use super::channel::{ChanLink, ConnParts, Inbound, WriteShared};
use super::port::{Input, Port, Written};
use super::status::{LinkWatch, RateSample};
use super::{open_error, Cmd, PendingChannel};
use crate::endpoint::Conn;
use crate::mux::ChannelId;
use crate::station::{OpenId, Station, StationEvent};
use crate::stats::{sanitize, Direction};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Chunks of device input queued for the driver before the reader waits.
const INPUT_QUEUE: usize = 64;

pub(super) struct Driver {
    pub(super) station: Station,
    pub(super) device: String,
    pub(super) line: crate::address::LineSettings,
    /// `rs485`: the driver toggles RTS around transmissions (set at each open).
    pub(super) rs485: bool,
    pub(super) opens: HashMap<OpenId, PendingOpen>,
    pub(super) chans: HashMap<ChannelId, ChanLink>,
    pub(super) services: HashMap<String, mpsc::UnboundedSender<PendingChannel>>,
    pub(super) cmd_tx: mpsc::UnboundedSender<Cmd>,
    /// The last goodput sample, and the rates it gave.
    pub(super) rate: RateSample,
    /// What `-vv` logging last saw of the link (frame size, retransmissions).
    pub(super) watch: LinkWatch,
    /// `exit-with-peer`: told when the session ends.
    pub(super) peer_gone: Option<Arc<tokio::sync::Notify>>,
}

/// An open waiting for the station's answer.
pub(super) struct PendingOpen {
    reply: oneshot::Sender<io::Result<Conn>>,
    service: String,
    endpoint: Option<String>,
}

impl Driver {
    pub(super) async fn run(
        mut self,
        port: tokio_serial::SerialStream,
        mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let (input_tx, mut input_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
        let (written_tx, mut written_rx) = mpsc::unbounded_channel::<Written>();
        let mut generation = 0;
        // `None` while the station says the device is lost.
        let mut device = Some(Port::start(
            port,
            generation,
            input_tx.clone(),
            written_tx.clone(),
        ));
        let mut closing: Option<oneshot::Sender<()>> = None;
        let mut batch = Vec::new();
        loop {
            let now = Instant::now();
            if self.station.poll_timeout().is_some_and(|t| t <= now) {
                self.station.handle_timeout(now);
            }
            if self.station.poll_reopen(now) {
                match super::start::open_device(&self.device, &self.line, self.rs485) {
                    Ok(p) => {
                        warn!("SERIAL-MUX:{}: device is back", self.device);
                        generation += 1;
                        self.station.handle_device_reopened();
                        device = Some(Port::start(
                            p,
                            generation,
                            input_tx.clone(),
                            written_tx.clone(),
                        ));
                    }
                    Err(_) => self.station.handle_reopen_failed(now),
                }
            }
            // The station hands out a batch only when none is in flight.
            if let Some(port) = &device {
                batch.clear();
                if self.station.poll_write(Instant::now(), &mut batch) > 0 {
                    // Capacity 1 and one batch at a time: this never fails
                    // while the writer task lives; if it died, its error
                    // arrives on `written_rx`.
                    let _ = port.batches.try_send(std::mem::take(&mut batch));
                }
            }
            self.dispatch_events();
            self.watch_link();
            if self.station.is_closed() {
                info!("{}", self.snapshot().text_line());
                if let Some(done) = closing.take() {
                    let _ = done.send(());
                }
                return;
            }
            let wake = self
                .station
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                Some((g, r)) = written_rx.recv() => {
                    if device.as_ref().is_some_and(|p| p.generation == g) {
                        match r {
                            Ok(buf) => {
                                batch = buf;
                                self.station.handle_write_done();
                            }
                            Err(e) => device = self.device_lost(&e),
                        }
                    }
                }
                Some(first) = input_rx.recv() => {
                    // Everything that arrived meanwhile, in one turn.
                    let mut next = Some(first);
                    while let Some((g, r)) = next.take() {
                        let Some(port) = &device else { break };
                        if port.generation == g {
                            match r {
                                Ok(bytes) => self.station.handle_input(Instant::now(), &bytes),
                                Err(e) => {
                                    device = self.device_lost(&e);
                                    break;
                                }
                            }
                        }
                        next = input_rx.try_recv().ok();
                    }
                }
                cmd = cmd_rx.recv() => match cmd {
                    Some(c) => {
                        self.command(c, &mut closing);
                        while let Ok(c) = cmd_rx.try_recv() {
                            self.command(c, &mut closing);
                        }
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
        }
    }

    /// The device failed: the station waits for it; the port is dropped.
    fn device_lost(&mut self, e: &io::Error) -> Option<Port> {
        warn!(
            "SERIAL-MUX:{}: device failed ({}); channels are kept while sfs reopens it (up to dead-after)",
            self.device,
            crate::error::describe_io(e)
        );
        self.station.handle_device_lost(Instant::now());
        None
    }

    fn command(&mut self, cmd: Cmd, closing: &mut Option<oneshot::Sender<()>>) {
        let now = Instant::now();
        match cmd {
            Cmd::Open {
                service,
                target,
                endpoint,
                reply,
            } => {
                let open = self.station.open_to(now, &service, target);
                self.opens.insert(
                    open,
                    PendingOpen {
                        reply,
                        service,
                        endpoint,
                    },
                );
            }
            Cmd::Listen { service, queue } => {
                self.station.listen(&service);
                self.services.insert(service, queue);
            }
            Cmd::Accept { ch, endpoint } => {
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.endpoint = Some(endpoint);
                }
                self.station.accept(ch)
            }
            Cmd::Refuse { ch, reason, detail } => {
                self.chans.remove(&ch);
                self.station.refuse(ch, reason, &detail);
            }
            Cmd::Data { ch, data } => {
                let len = data.len();
                // The writer keeps to the room the station gave it, so all of
                // it is taken; anything else is a driver bug worth a line.
                let taken = self.station.write(ch, data);
                if taken < len && self.chans.contains_key(&ch) {
                    debug!(
                        "channel {ch}: {} of {len} bytes beyond the write budget",
                        len - taken
                    );
                }
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.bytes_out += taken as u64;
                }
            }
            Cmd::Eof { ch, status } => self.station.shutdown_write(ch, status),
            Cmd::Reset { ch } => {
                if let Some(link) = self.chans.remove(&ch) {
                    self.station.reset(ch, "reset by application");
                    link.cut("reset locally", 0);
                }
            }
            Cmd::Consumed { ch, n } => self.station.consumed(ch, n),
            Cmd::Stats { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Cmd::Close { grace, done } => {
                self.station.close(now, grace);
                *closing = Some(done);
            }
        }
    }

    /// Makes the channel's [`Conn`] parts and remembers the driver's side.
    fn new_chan(
        &mut self,
        ch: ChannelId,
        service: String,
        direction: Direction,
        endpoint: Option<String>,
    ) -> ConnParts {
        let (to_app, rx) = mpsc::unbounded_channel();
        let (confirmed_tx, confirmed_rx) = oneshot::channel();
        let write = Arc::new(Mutex::new(WriteShared {
            budget: self.station.write_room(ch),
            waker: None,
            dead: None,
        }));
        self.chans.insert(
            ch,
            ChanLink {
                to_app,
                write: write.clone(),
                confirmed: confirmed_tx,
                service,
                direction,
                endpoint,
                opened: Instant::now(),
                bytes_in: 0,
                bytes_out: 0,
            },
        );
        ConnParts {
            ch,
            cmd: self.cmd_tx.clone(),
            rx,
            write,
            confirmed: confirmed_rx,
            label: format!("channel {ch} ({})", self.device),
        }
    }

    fn dispatch_events(&mut self) {
        while let Some(ev) = self.station.poll_event() {
            match ev {
                StationEvent::LinkUp { peer_epoch } => {
                    info!(
                        "SERIAL-MUX:{}: link up (peer epoch {peer_epoch:08x})",
                        self.device
                    );
                }
                StationEvent::PeerFeatures { features } => {
                    info!(
                        "SERIAL-MUX:{}: link features in use: {features}",
                        self.device
                    );
                }
                StationEvent::LinkDown { reason } => {
                    warn!(
                        "SERIAL-MUX:{}: session ended ({}); its channels were reset",
                        self.device, reason
                    );
                    if let Some(gone) = &self.peer_gone {
                        gone.notify_one();
                    }
                }
                StationEvent::Opened { open, ch } => {
                    let Some(p) = self.opens.remove(&open) else {
                        self.station.reset(ch, "opener gone");
                        continue;
                    };
                    let reply = p.reply;
                    let conn = self
                        .new_chan(ch, p.service, Direction::Outbound, p.endpoint)
                        .into_conn();
                    if let Err(Ok(conn)) = reply.send(Ok(conn)) {
                        // The opener went away meanwhile.
                        conn.abort();
                    }
                }
                StationEvent::OpenFailed { open, error } => {
                    if let Some(p) = self.opens.remove(&open) {
                        debug!(
                            "open of '{}' failed: {}",
                            sanitize(&p.service),
                            sanitize(&error.to_string())
                        );
                        let _ = p.reply.send(Err(open_error(&error)));
                    }
                }
                StationEvent::Incoming {
                    ch,
                    service,
                    target,
                } => {
                    debug!(
                        "SERIAL-MUX:{}: peer opens channel {ch} for '{}'",
                        self.device,
                        sanitize(&service)
                    );
                    if service == super::bootstrap::EXIT_SERVICE {
                        if let Some(gone) = &self.peer_gone {
                            info!("SERIAL-MUX:{}: the bootstrapping sfs stopped", self.device);
                            gone.notify_one();
                        }
                    }
                    let parts = self.new_chan(ch, service.clone(), Direction::Inbound, None);
                    let pending = PendingChannel {
                        ch,
                        target,
                        cmd: self.cmd_tx.clone(),
                        parts: Some(parts),
                    };
                    let delivered = self
                        .services
                        .get(&service)
                        .is_some_and(|q| q.send(pending).is_ok());
                    if !delivered {
                        // The server stopped; the dropped PendingChannel refuses it.
                        self.chans.remove(&ch);
                    }
                }
                StationEvent::Readable { ch } => {
                    while let Some(b) = self.station.read(ch, 16 * 1024) {
                        if let Some(c) = self.chans.get_mut(&ch) {
                            c.bytes_in += b.len() as u64;
                            let _ = c.to_app.send(Inbound::Data(b));
                        }
                    }
                }
                StationEvent::ReadClosed { ch, status } => {
                    if let Some(c) = self.chans.get_mut(&ch) {
                        let _ = c.to_app.send(Inbound::Eof(status));
                    }
                }
                StationEvent::Sent { ch, bytes } => {
                    if let Some(c) = self.chans.get(&ch) {
                        let mut s = c.write.lock().expect("writer state lock");
                        s.budget += bytes;
                        if let Some(w) = s.waker.take() {
                            w.wake();
                        }
                    }
                }
                StationEvent::Closed { ch } => {
                    if let Some(c) = self.chans.remove(&ch) {
                        let _ = c.confirmed.send(Ok(()));
                    }
                }
                StationEvent::Reset {
                    ch,
                    reason,
                    unconfirmed,
                } => {
                    if let Some(c) = self.chans.remove(&ch) {
                        // `cut` sanitises: a reset's reason may hold the peer's words.
                        let reason = reason.to_string();
                        debug!("channel {ch} reset: {}", sanitize(&reason));
                        c.cut(&reason, unconfirmed);
                    }
                }
            }
        }
    }
}
