//! `SERIAL-MUX:DEVICE`: the tokio driver that owns a serial port, a
//! [`Link`](crate::link::Link) and a [`Mux`](crate::mux::Mux), and turns mux
//! channels into [`Conn`]s for the bridge.
//!
//! One driver task per device (several address pairs naming the same device share
//! it, see [`MuxHub`]). The task:
//! - reads the port continuously (a helper task), so the device never overruns;
//! - paces its writes with a [`Pacer`](crate::link::pacer::Pacer): at most a few
//!   milliseconds of bytes sit below it in the OS and device queues, so that the
//!   mux scheduler's priorities (a keystroke ahead of bulk) stay effective;
//! - re-arms one timer from `Link::poll_timeout`.
//!
//! Channels reach the bridge as [`Conn`]s whose reader yields the peer's bytes
//! (returning credit as the bridge consumes them) and whose writer is bounded, so
//! a stalled connection stops only its own channel. A reset channel (peer reset,
//! peer restarted, link lost) makes both halves fail with `ConnectionReset`, which
//! the bridge turns into a TCP RST.
#![allow(clippy::disallowed_methods)] // a driver: it reads the clock and hands time to the sans-IO core

use super::Conn;
use crate::address::SerialMux;
use crate::error::{Error, Result};
use crate::link::pacer::Pacer;
use crate::link::{Link, LinkConfig, LinkEvent};
use crate::mux::{ChannelId, Mux, MuxConfig, MuxEvent, RefuseReason};
use bytes::{Buf, Bytes};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// How often a lost device is opened again.
const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// How long an open waits for the link to come up before it is refused.
const OPEN_WAIT: Duration = Duration::from_secs(5);
/// Bytes a channel's writer may hand to the driver beyond the mux's own buffer.
const WRITER_BUDGET: usize = 4096;

/// Process-wide registry of mux drivers, one per device.
#[derive(Clone, Default)]
pub struct MuxHub {
    inner: Arc<tokio::sync::Mutex<HashMap<String, (SerialMux, MuxHandle)>>>,
}

impl MuxHub {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The driver for `addr.device`, starting it on first use. Addresses sharing
    /// a device must agree on its line and link settings.
    pub async fn get(&self, addr: &SerialMux) -> Result<MuxHandle> {
        let mut map = self.inner.lock().await;
        if let Some((first, h)) = map.get(&addr.device) {
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
            return Ok(h.clone());
        }
        let h = start(addr)?;
        map.insert(addr.device.clone(), (addr.clone(), h.clone()));
        Ok(h)
    }

    /// Handles of every running driver.
    async fn handles(&self) -> Vec<MuxHandle> {
        self.inner
            .lock()
            .await
            .values()
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// One statistics line per running driver.
    pub async fn stats(&self) -> Vec<String> {
        let handles = self.handles().await;
        let mut out = Vec::new();
        for h in handles {
            if let Some(line) = h.stats().await {
                out.push(line);
            }
        }
        out
    }

    /// Asks every driver to flush and stop, waiting briefly.
    pub async fn shutdown(&self) {
        let handles = self.handles().await;
        for h in handles {
            let (tx, rx) = oneshot::channel();
            if h.cmd.send(Cmd::Shutdown { done: tx }).is_ok() {
                let _ = tokio::time::timeout(Duration::from_millis(500), rx).await;
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
    /// Opens a channel to the peer's `service` and waits until it is accepted.
    /// A refusal is an error of kind `ConnectionRefused` carrying the reason.
    pub async fn open_channel(&self, service: &str) -> io::Result<Conn> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Open {
                service: service.to_string(),
                reply: tx,
            })
            .map_err(|_| driver_gone())?;
        rx.await.map_err(|_| driver_gone())?
    }

    /// Registers this process as the server of `service`: channels the peer opens
    /// for it arrive on the returned [`Incoming`].
    pub fn listen(&self, service: &str) -> Result<Incoming> {
        let (tx, rx) = mpsc::channel(64);
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
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::Stats { reply: tx }).ok()?;
        rx.await.ok()
    }
}

fn driver_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "serial mux driver stopped")
}

/// Channels opened by the peer for one service.
pub struct Incoming {
    rx: mpsc::Receiver<PendingChannel>,
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
    cmd: mpsc::UnboundedSender<Cmd>,
    parts: Option<ConnParts>,
}

impl PendingChannel {
    /// Accepts the channel and returns it as a connection.
    pub fn accept(mut self) -> Conn {
        let _ = self.cmd.send(Cmd::Accept { ch: self.ch });
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
        reply: oneshot::Sender<io::Result<Conn>>,
    },
    Listen {
        service: String,
        queue: mpsc::Sender<PendingChannel>,
    },
    Accept {
        ch: ChannelId,
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
    },
    Reset {
        ch: ChannelId,
    },
    Consumed {
        ch: ChannelId,
        n: usize,
    },
    Stats {
        reply: oneshot::Sender<String>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// What the driver tells a channel's reader.
enum Inbound {
    Data(Bytes),
    Eof,
    Reset(String),
}

/// State shared by a channel's writer and the driver: the writer's byte budget.
struct WriteShared {
    budget: usize,
    waker: Option<Waker>,
    dead: Option<String>,
}

/// The pieces a channel's [`Conn`] is made of, created with the channel.
struct ConnParts {
    ch: ChannelId,
    cmd: mpsc::UnboundedSender<Cmd>,
    rx: mpsc::UnboundedReceiver<Inbound>,
    write: Arc<Mutex<WriteShared>>,
    label: String,
}

impl ConnParts {
    fn into_conn(self) -> Conn {
        let reader = ChannelReader {
            ch: self.ch,
            cmd: self.cmd.clone(),
            rx: self.rx,
            cur: Bytes::new(),
            eof: false,
            reset: None,
        };
        let writer = ChannelWriter {
            ch: self.ch,
            cmd: self.cmd.clone(),
            shared: self.write,
            shut: false,
        };
        let (ch, cmd) = (self.ch, self.cmd);
        Conn::new(reader, writer, self.label).with_abort(move || {
            let _ = cmd.send(Cmd::Reset { ch });
        })
    }
}

struct ChannelReader {
    ch: ChannelId,
    cmd: mpsc::UnboundedSender<Cmd>,
    rx: mpsc::UnboundedReceiver<Inbound>,
    cur: Bytes,
    eof: bool,
    /// The channel was reset; reported once the data before it is read.
    reset: Option<String>,
}

impl AsyncRead for ChannelReader {
    /// Copies as many queued chunks as fit (one write downstream instead of one
    /// per link frame) and returns their credit in one command.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut copied = 0;
        let result = loop {
            if !self.cur.is_empty() {
                let n = self.cur.len().min(buf.remaining());
                buf.put_slice(&self.cur[..n]);
                self.cur.advance(n);
                copied += n;
                if buf.remaining() == 0 {
                    break Poll::Ready(Ok(()));
                }
                continue;
            }
            if self.eof {
                break Poll::Ready(Ok(()));
            }
            if let Some(why) = &self.reset {
                // Data that arrived before the reset is handed over first.
                break if copied > 0 {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        why.clone(),
                    )))
                };
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending if copied > 0 => break Poll::Ready(Ok(())),
                Poll::Pending => break Poll::Pending,
                Poll::Ready(Some(Inbound::Data(b))) => self.cur = b,
                Poll::Ready(Some(Inbound::Eof)) => self.eof = true,
                Poll::Ready(Some(Inbound::Reset(why))) => self.reset = Some(why),
                Poll::Ready(None) if copied > 0 => break Poll::Ready(Ok(())),
                Poll::Ready(None) => break Poll::Ready(Err(driver_gone())),
            }
        };
        if copied > 0 {
            let _ = self.cmd.send(Cmd::Consumed {
                ch: self.ch,
                n: copied,
            });
        }
        result
    }
}

struct ChannelWriter {
    ch: ChannelId,
    cmd: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Mutex<WriteShared>>,
    shut: bool,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut s = self.shared.lock().expect("writer state lock");
        if let Some(why) = &s.dead {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                why.clone(),
            )));
        }
        if s.budget == 0 {
            s.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = s.budget.min(buf.len());
        s.budget -= n;
        drop(s);
        if self
            .cmd
            .send(Cmd::Data {
                ch: self.ch,
                data: Bytes::copy_from_slice(&buf[..n]),
            })
            .is_err()
        {
            return Poll::Ready(Err(driver_gone()));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut {
            self.shut = true;
            let _ = self.cmd.send(Cmd::Eof { ch: self.ch });
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ChannelWriter {
    /// A writer dropped before `shutdown` did not finish its stream: the peer
    /// must see a reset, not an end of file.
    fn drop(&mut self) {
        if !self.shut {
            let _ = self.cmd.send(Cmd::Reset { ch: self.ch });
        }
    }
}

/// The driver's view of one channel.
struct Chan {
    to_app: mpsc::UnboundedSender<Inbound>,
    write: Arc<Mutex<WriteShared>>,
    /// Bytes the writer handed over that the mux has not taken yet.
    pending: VecDeque<Bytes>,
    /// The writer shut down: send EOF once `pending` is drained.
    eof_pending: bool,
    /// Our open, waiting for Accepted/Refused, with the conn to hand out.
    opening: Option<(oneshot::Sender<io::Result<Conn>>, ConnParts)>,
}

/// An open waiting for the link to come up.
struct WaitingOpen {
    service: String,
    reply: oneshot::Sender<io::Result<Conn>>,
    deadline: Instant,
}

fn random_epoch() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    (h.finish() as u32).max(1)
}

fn start(addr: &SerialMux) -> Result<MuxHandle> {
    let port = crate::endpoint::serial::open_port(&addr.device, &addr.line)?;
    let byte_rate = addr.line.byte_rate();
    let mut lcfg = LinkConfig::for_byte_rate(byte_rate);
    if let Some(k) = addr.keepalive {
        lcfg.keepalive = k;
    }
    if let Some(d) = addr.dead_after {
        lcfg.dead_after = d;
    }
    let usage = |e: String| Error::Usage(format!("SERIAL-MUX:{}: {e}", addr.device));
    lcfg.validate().map_err(usage)?;
    let mut mcfg = MuxConfig::for_byte_rate(byte_rate);
    if let Some(w) = addr.window {
        mcfg.window = w;
    }
    if let Some(m) = addr.max_channels {
        mcfg.max_channels = m;
    }
    mcfg.validate().map_err(usage)?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let now = Instant::now();
    let epoch = random_epoch();
    let driver = Driver {
        device: addr.device.clone(),
        line: addr.line,
        link: Link::new(lcfg.clone(), epoch, now),
        mux: Mux::new(mcfg),
        pacer: Pacer::new(byte_rate, lcfg.pacing_target),
        chans: HashMap::new(),
        services: HashMap::new(),
        waiting: Vec::new(),
        cmd_tx: cmd_tx.clone(),
        was_up: false,
    };
    info!(
        "SERIAL-MUX:{} open at {} baud ({} bytes/s), link epoch {epoch:08x}",
        addr.device, addr.line.baud, byte_rate
    );
    tokio::spawn(driver.run(port, cmd_rx));
    Ok(MuxHandle {
        cmd: cmd_tx,
        device: addr.device.as_str().into(),
    })
}

/// An open device: its write half and the task that reads it.
struct Port {
    wr: tokio::io::WriteHalf<tokio_serial::SerialStream>,
    reader: tokio::task::JoinHandle<()>,
}

impl Port {
    /// Splits the device and starts reading it continuously, so the device
    /// never overruns; reads go to `tx` tagged with `generation`.
    fn start(
        port: tokio_serial::SerialStream,
        generation: u64,
        tx: mpsc::UnboundedSender<(u64, io::Result<Bytes>)>,
    ) -> Port {
        let (mut rd, wr) = tokio::io::split(port);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let r = match rd.read(&mut buf).await {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "device closed",
                    )),
                    Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                    Err(e) => Err(e),
                };
                let failed = r.is_err();
                if tx.send((generation, r)).is_err() || failed {
                    return;
                }
            }
        });
        Port { wr, reader }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Driver {
    device: String,
    line: crate::address::LineSettings,
    link: Link,
    mux: Mux,
    pacer: Pacer,
    chans: HashMap<ChannelId, Chan>,
    services: HashMap<String, mpsc::Sender<PendingChannel>>,
    waiting: Vec<WaitingOpen>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    was_up: bool,
}

impl Driver {
    async fn run(
        mut self,
        port: tokio_serial::SerialStream,
        mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let (in_tx, mut in_rx) = mpsc::unbounded_channel::<(u64, io::Result<Bytes>)>();
        let mut generation = 0u64;
        let mut port = Some(Port::start(port, generation, in_tx.clone()));
        // While the device is gone (a USB adapter unplugged), the link and every
        // channel stay as they are, as during a line outage; sfs tries to open
        // the device again every REOPEN_EVERY until it is back.
        let mut reopen_at: Option<Instant> = None;
        let mut out = Vec::with_capacity(1024);
        let mut shutdown: Option<(oneshot::Sender<()>, Instant)> = None;
        loop {
            let now = Instant::now();
            if self.link.poll_timeout().is_some_and(|t| t <= now) {
                self.link.handle_timeout(now);
            }
            self.process_events(now);
            self.expire_waiting(now);
            if port.is_none() && reopen_at.is_some_and(|t| t <= now) {
                match crate::endpoint::serial::open_port(&self.device, &self.line) {
                    Ok(p) => {
                        warn!("SERIAL-MUX:{}: device is back", self.device);
                        generation += 1;
                        port = Some(Port::start(p, generation, in_tx.clone()));
                        self.pacer =
                            Pacer::new(self.line.byte_rate(), self.link.config().pacing_target);
                        reopen_at = None;
                    }
                    Err(_) => reopen_at = Some(now + REOPEN_EVERY),
                }
            }
            // Transmit as long as the pacer allows and the link has frames.
            let mut paced = false;
            while let Some(p) = port.as_mut() {
                let now = Instant::now();
                if !self.pacer.writable(now) {
                    paced = true;
                    break;
                }
                // Choose what to send only now that it can go out at once: a
                // payload loaded earlier would make a later keystroke wait for it.
                self.feed_link();
                out.clear();
                let n = self.link.poll_transmit(now, &mut out);
                if n == 0 {
                    break;
                }
                if let Err(e) = p.wr.write_all(&out).await {
                    self.device_lost(&e);
                    port = None;
                    reopen_at = Some(Instant::now() + REOPEN_EVERY);
                    break;
                }
                self.pacer.on_written(Instant::now(), n);
            }
            if let Some((done, until)) = shutdown.take() {
                if !self.mux.has_pending() || Instant::now() >= until {
                    info!("{}", self.stats_line());
                    let _ = done.send(());
                    return;
                }
                shutdown = Some((done, until));
            }
            let now = Instant::now();
            let mut deadline = self.link.poll_timeout();
            if paced {
                deadline = min_opt(deadline, self.pacer.next_writable(now));
            }
            deadline = min_opt(deadline, self.waiting.iter().map(|w| w.deadline).min());
            deadline = min_opt(deadline, reopen_at);
            if shutdown.is_some() {
                deadline = min_opt(deadline, Some(now + Duration::from_millis(10)));
            }
            let sleep_until = deadline.unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                biased;
                input = in_rx.recv() => match input {
                    Some((g, Ok(bytes))) if g == generation => {
                        self.link.handle_input(Instant::now(), &bytes);
                        while let Ok((g, Ok(more))) = in_rx.try_recv() {
                            if g == generation {
                                self.link.handle_input(Instant::now(), &more);
                            }
                        }
                    }
                    Some((g, Err(e))) if g == generation && port.is_some() => {
                        self.device_lost(&e);
                        port = None;
                        reopen_at = Some(Instant::now() + REOPEN_EVERY);
                    }
                    Some(_) => {} // from a reader of a device we already closed
                    None => return,
                },
                cmd = cmd_rx.recv() => match cmd {
                    Some(Cmd::Shutdown { done }) => {
                        shutdown = Some((done, Instant::now() + Duration::from_millis(300)));
                    }
                    Some(c) => {
                        self.command(c, Instant::now());
                        while let Ok(c) = cmd_rx.try_recv() {
                            if let Cmd::Shutdown { done } = c {
                                shutdown = Some((done, Instant::now() + Duration::from_millis(300)));
                            } else {
                                self.command(c, Instant::now());
                            }
                        }
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_until)) => {
                    self.expire_waiting(Instant::now());
                }
            }
        }
    }

    fn device_lost(&mut self, e: &io::Error) {
        warn!(
            "SERIAL-MUX:{}: device failed ({}); channels are kept while sfs reopens it (up to dead-after)",
            self.device,
            crate::error::describe_io(e)
        );
    }

    /// Moves mux payloads into the link while it has room, as late as possible.
    fn feed_link(&mut self) {
        while self.link.can_send() {
            match self.mux.poll_payload(self.link.max_payload()) {
                Some(p) => {
                    if self.link.send(p).is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        // The mux may have taken queued writer bytes; hand budget back.
        self.process_mux_events();
    }

    fn process_events(&mut self, now: Instant) {
        while let Some(ev) = self.link.poll_event() {
            match ev {
                LinkEvent::Up { .. } => {
                    if !self.was_up {
                        info!("SERIAL-MUX:{}: link up", self.device);
                    }
                    self.was_up = true;
                    for w in std::mem::take(&mut self.waiting) {
                        self.open_now(w.service, w.reply);
                    }
                }
                LinkEvent::Delivered(p) => {
                    if let Err(e) = self.mux.handle_payload(&p) {
                        warn!("SERIAL-MUX:{}: bad mux data from peer: {e}", self.device);
                    }
                }
                LinkEvent::PeerRestarted => {
                    warn!(
                        "SERIAL-MUX:{}: peer restarted; resetting its channels",
                        self.device
                    );
                    self.mux.handle_session_reset("peer restarted");
                }
                LinkEvent::PeerLost => {
                    warn!(
                        "SERIAL-MUX:{}: peer silent too long; resetting channels",
                        self.device
                    );
                    self.was_up = false;
                    self.mux.handle_session_reset("serial link lost");
                }
                LinkEvent::ProtocolMismatch(why) => {
                    error!("SERIAL-MUX:{}: {why}", self.device);
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        let _ = now;
        self.process_mux_events();
    }

    fn process_mux_events(&mut self) {
        while let Some(ev) = self.mux.poll_event() {
            match ev {
                MuxEvent::Incoming { ch, service } => self.incoming(ch, service),
                MuxEvent::Accepted { ch } => {
                    if let Some(c) = self.chans.get_mut(&ch) {
                        if let Some((reply, parts)) = c.opening.take() {
                            if let Err(Ok(conn)) = reply.send(Ok(parts.into_conn())) {
                                // The opener went away meanwhile.
                                conn.abort();
                            }
                        }
                    }
                }
                MuxEvent::Refused { ch, reason, detail } => {
                    if let Some(mut c) = self.chans.remove(&ch) {
                        if let Some((reply, _)) = c.opening.take() {
                            let msg = if detail.is_empty() {
                                format!("refused by peer: {reason}")
                            } else {
                                format!("refused by peer: {reason} ({detail})")
                            };
                            let _ = reply
                                .send(Err(io::Error::new(io::ErrorKind::ConnectionRefused, msg)));
                        }
                    }
                }
                MuxEvent::Readable { ch } => {
                    while let Some(b) = self.mux.read(ch, 16 * 1024) {
                        if let Some(c) = self.chans.get(&ch) {
                            let _ = c.to_app.send(Inbound::Data(b));
                        }
                    }
                }
                MuxEvent::ReadClosed { ch } => {
                    if let Some(c) = self.chans.get(&ch) {
                        let _ = c.to_app.send(Inbound::Eof);
                    }
                }
                MuxEvent::SendSpace { ch } => self.flush_pending(ch),
                MuxEvent::Reset { ch, reason, .. } => {
                    if let Some(c) = self.chans.remove(&ch) {
                        debug!("channel {ch} reset: {reason}");
                        kill(c, &reason);
                    }
                }
                MuxEvent::Closed { ch } => {
                    self.chans.remove(&ch);
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    fn incoming(&mut self, ch: ChannelId, service: String) {
        let Some(queue) = self.services.get(&service) else {
            info!(
                "SERIAL-MUX:{}: peer asked for service '{service}', which this side does not offer",
                self.device
            );
            self.mux.refuse(
                ch,
                RefuseReason::NotAllowed,
                &format!("no service '{service}' here"),
            );
            return;
        };
        let (chan, parts) = self.new_chan(ch, format!("channel {ch} ({})", self.device));
        let pending = PendingChannel {
            ch,
            cmd: self.cmd_tx.clone(),
            parts: Some(parts),
        };
        match queue.try_send(pending) {
            Ok(()) => {
                self.chans.insert(ch, chan);
            }
            Err(e) => {
                // The parts go with the failed send; refuse explicitly.
                let mut p = e.into_inner();
                p.parts = None;
                self.mux
                    .refuse(ch, RefuseReason::TooManyChannels, "server busy");
            }
        }
    }

    fn new_chan(&self, ch: ChannelId, label: String) -> (Chan, ConnParts) {
        let (tx, rx) = mpsc::unbounded_channel();
        let write = Arc::new(Mutex::new(WriteShared {
            budget: WRITER_BUDGET,
            waker: None,
            dead: None,
        }));
        let parts = ConnParts {
            ch,
            cmd: self.cmd_tx.clone(),
            rx,
            write: write.clone(),
            label,
        };
        (
            Chan {
                to_app: tx,
                write,
                pending: VecDeque::new(),
                eof_pending: false,
                opening: None,
            },
            parts,
        )
    }

    fn open_now(&mut self, service: String, reply: oneshot::Sender<io::Result<Conn>>) {
        match self.mux.open(&service) {
            Ok(ch) => {
                let (mut chan, parts) =
                    self.new_chan(ch, format!("channel {ch} ({})", self.device));
                chan.opening = Some((reply, parts));
                self.chans.insert(ch, chan);
            }
            Err(e) => {
                let _ = reply.send(Err(io::Error::other(format!("cannot open a channel: {e}"))));
            }
        }
    }

    fn expire_waiting(&mut self, now: Instant) {
        let device = self.device.clone();
        let (expired, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.waiting = keep;
        for w in expired {
            let _ = w.reply.send(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no sfs peer answering on {device} (link down)"),
            )));
        }
    }

    fn command(&mut self, cmd: Cmd, now: Instant) {
        match cmd {
            Cmd::Open { service, reply } => {
                if self.link.is_up() {
                    self.open_now(service, reply);
                } else {
                    self.waiting.push(WaitingOpen {
                        service,
                        reply,
                        deadline: now + OPEN_WAIT,
                    });
                }
            }
            Cmd::Listen { service, queue } => {
                self.services.insert(service, queue);
            }
            Cmd::Accept { ch } => self.mux.accept(ch),
            Cmd::Refuse { ch, reason, detail } => {
                self.chans.remove(&ch);
                self.mux.refuse(ch, reason, &detail);
            }
            Cmd::Data { ch, data } => {
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.pending.push_back(data);
                    self.flush_pending(ch);
                }
            }
            Cmd::Eof { ch } => {
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.eof_pending = true;
                    self.flush_pending(ch);
                }
            }
            Cmd::Reset { ch } => {
                if let Some(c) = self.chans.remove(&ch) {
                    self.mux.reset(ch, "reset by application");
                    kill(c, "reset locally");
                }
            }
            Cmd::Consumed { ch, n } => self.mux.consumed(ch, n),
            Cmd::Stats { reply } => {
                let _ = reply.send(self.stats_line());
            }
            Cmd::Shutdown { .. } => {}
        }
    }

    fn flush_pending(&mut self, ch: ChannelId) {
        let Some(c) = self.chans.get_mut(&ch) else {
            return;
        };
        let mut freed = 0;
        while let Some(front) = c.pending.front_mut() {
            let n = self.mux.send(ch, front);
            if n == 0 {
                break;
            }
            freed += n;
            front.advance(n);
            if front.is_empty() {
                c.pending.pop_front();
            }
        }
        if c.pending.is_empty() && c.eof_pending {
            c.eof_pending = false;
            self.mux.close_write(ch);
        }
        if freed > 0 {
            let mut s = c.write.lock().expect("writer state lock");
            s.budget += freed;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    fn stats_line(&self) -> String {
        let l = self.link.stats();
        let m = self.mux.stats();
        format!(
            "SERIAL-MUX:{}: link {}, {} sessions; sent {} frames ({} retransmitted, {} line bytes, {} payload), \
             received {} frames ({} payload bytes, {} CRC failures, {} malformed); srtt {}, frame payload {} B, \
             error rate {:.1e}/byte; channels {} open, {} opened, {} served, {} refused, {} reset",
            self.device,
            if self.link.is_up() { "up" } else { "down" },
            l.sessions,
            l.frames_sent,
            l.frames_retransmitted,
            l.bytes_sent,
            l.payload_bytes_sent,
            l.frames_received,
            l.payload_bytes_delivered,
            l.crc_failures,
            l.malformed,
            l.srtt.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0)).unwrap_or_else(|| "-".into()),
            l.max_payload,
            l.error_rate,
            m.channels_open,
            m.opened_total,
            m.incoming_total,
            m.refused_total,
            m.resets_sent + m.resets_received,
        )
    }
}

/// Tells both halves of a channel's connection that it is gone.
fn kill(mut c: Chan, why: &str) {
    let _ = c.to_app.send(Inbound::Reset(why.to_string()));
    let mut s = c.write.lock().expect("writer state lock");
    s.dead = Some(why.to_string());
    if let Some(w) = s.waker.take() {
        w.wake();
    }
    drop(s);
    if let Some((reply, _)) = c.opening.take() {
        let _ = reply.send(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            why.to_string(),
        )));
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
