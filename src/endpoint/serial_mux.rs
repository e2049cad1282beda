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
//! - reopens a lost device every 500 ms, keeping the link and channels.
//!
//! A channel reaches the bridge as a [`Conn`]: its reader yields the peer's
//! bytes and reports them consumed only when the bridge comes back for more
//! (so they were written on), its writer has a small byte budget, and its
//! `confirmed` future resolves when the station reports the channel closed
//! (the peer took every byte) or fails when it was cut.
#![allow(clippy::disallowed_methods)] // a driver: it reads the clock and hands time to the sans-IO core

use super::{Conn, StatusSlot};
use crate::address::SerialMux;
use crate::error::{Error, Result};
use crate::mux::{ChannelId, ExitStatus, RefuseReason, Target};
use crate::station::{OpenError, OpenId, Station, StationConfig, StationEvent};
use crate::stats::{sanitize, ChannelSnapshot, ChannelState, Direction, LinkSnapshot, LinkState};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// How often a lost device is opened again.
const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// Bytes a channel's writer may hand to the driver beyond what the station
/// passed on to the mux: enough to keep the mux's buffer topped up.
const WRITER_BUDGET: usize = 4096;
/// Chunks of device input queued for the driver before the reader waits.
const INPUT_QUEUE: usize = 64;
/// Most bytes handed to the device writer at once.
const WRITE_BATCH: usize = 8192;

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
        self.snapshots()
            .await
            .iter()
            .map(LinkSnapshot::text_line)
            .collect()
    }

    /// A snapshot of every running driver, sorted by device.
    pub async fn snapshots(&self) -> Vec<LinkSnapshot> {
        let mut out = Vec::new();
        for h in self.handles().await {
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
        for h in self.handles().await {
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

/// What the driver tells a channel's reader.
enum Inbound {
    Data(Bytes),
    Eof(Option<ExitStatus>),
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
    confirmed: oneshot::Receiver<io::Result<()>>,
    label: String,
}

impl ConnParts {
    fn into_conn(self) -> Conn {
        let received_status = StatusSlot::default();
        let pass_status = StatusSlot::default();
        let reader = ChannelReader {
            ch: self.ch,
            cmd: self.cmd.clone(),
            rx: self.rx,
            cur: Bytes::new(),
            unreported: 0,
            end: ReadEnd::Open,
            status: received_status.clone(),
        };
        let writer = ChannelWriter {
            ch: self.ch,
            cmd: self.cmd.clone(),
            shared: self.write,
            status: pass_status.clone(),
            shut: false,
        };
        let (ch, cmd) = (self.ch, self.cmd);
        let confirmed = self.confirmed;
        let mut conn = Conn::new(reader, writer, self.label).with_abort(move || {
            let _ = cmd.send(Cmd::Reset { ch });
        });
        conn.exit_status = Some(received_status);
        conn.pass_status = Some(pass_status);
        conn.confirmed = Some(Box::pin(async move {
            confirmed.await.unwrap_or_else(|_| Err(driver_gone()))
        }));
        conn
    }
}

/// How far a channel reader has come.
enum ReadEnd {
    Open,
    Eof,
    Reset(String),
}

struct ChannelReader {
    ch: ChannelId,
    cmd: mpsc::UnboundedSender<Cmd>,
    rx: mpsc::UnboundedReceiver<Inbound>,
    cur: Bytes,
    /// Bytes handed out whose consumption is not reported yet: they count as
    /// consumed when the bridge comes back for more (it wrote them on) or
    /// drops the reader.
    unreported: usize,
    end: ReadEnd,
    status: StatusSlot,
}

impl ChannelReader {
    fn report_consumed(&mut self) {
        if self.unreported > 0 {
            let _ = self.cmd.send(Cmd::Consumed {
                ch: self.ch,
                n: std::mem::take(&mut self.unreported),
            });
        }
    }
}

impl AsyncRead for ChannelReader {
    /// Copies as many queued chunks as fit: one write downstream instead of
    /// one per link frame.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.report_consumed();
        let mut copied = 0;
        let result = loop {
            if !self.cur.is_empty() {
                let n = self.cur.len().min(buf.remaining());
                buf.put_slice(&self.cur.split_to(n));
                copied += n;
                if buf.remaining() == 0 {
                    break Poll::Ready(Ok(()));
                }
                continue;
            }
            match &self.end {
                ReadEnd::Eof => break Poll::Ready(Ok(())),
                // Data that arrived before the reset is handed over first.
                ReadEnd::Reset(_) if copied > 0 => break Poll::Ready(Ok(())),
                ReadEnd::Reset(why) => {
                    break Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        why.clone(),
                    )))
                }
                ReadEnd::Open => {}
            }
            match self.rx.poll_recv(cx) {
                Poll::Pending if copied > 0 => break Poll::Ready(Ok(())),
                Poll::Pending => break Poll::Pending,
                Poll::Ready(Some(Inbound::Data(b))) => self.cur = b,
                Poll::Ready(Some(Inbound::Eof(status))) => {
                    *self.status.lock().expect("status lock") = status;
                    self.end = ReadEnd::Eof;
                }
                Poll::Ready(Some(Inbound::Reset(why))) => self.end = ReadEnd::Reset(why),
                Poll::Ready(None) if copied > 0 => break Poll::Ready(Ok(())),
                Poll::Ready(None) => break Poll::Ready(Err(driver_gone())),
            }
        };
        self.unreported += copied;
        result
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.report_consumed();
    }
}

struct ChannelWriter {
    ch: ChannelId,
    cmd: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Mutex<WriteShared>>,
    /// An exit status to send with the end of stream (set by the bridge).
    status: StatusSlot,
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
            let status = self.status.lock().expect("status lock").take();
            let _ = self.cmd.send(Cmd::Eof {
                ch: self.ch,
                status,
            });
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

/// The driver's side of one channel's [`Conn`], with its accounting.
struct ChanLink {
    to_app: mpsc::UnboundedSender<Inbound>,
    write: Arc<Mutex<WriteShared>>,
    confirmed: oneshot::Sender<io::Result<()>>,
    service: String,
    direction: Direction,
    endpoint: Option<String>,
    opened: Instant,
    bytes_in: u64,
    bytes_out: u64,
    local_done: bool,
    peer_done: bool,
}

impl ChanLink {
    /// The channel is gone: both halves fail, and `confirmed` says why.
    fn cut(self, why: &str, unconfirmed: u64) {
        // The reason may come from the peer, and ends up in logs.
        let why = sanitize(why);
        let why = if unconfirmed > 0 {
            format!("{why}; {unconfirmed} bytes not confirmed by the peer")
        } else {
            why
        };
        let _ = self.to_app.send(Inbound::Reset(why.clone()));
        let mut s = self.write.lock().expect("writer state lock");
        s.dead = Some(why.clone());
        if let Some(w) = s.waker.take() {
            w.wake();
        }
        drop(s);
        let _ = self
            .confirmed
            .send(Err(io::Error::new(io::ErrorKind::ConnectionReset, why)));
    }
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

/// The station's settings from the address's options.
fn station_config(addr: &SerialMux) -> Result<StationConfig> {
    let mut cfg = StationConfig::for_byte_rate(addr.line.byte_rate(), addr.device.clone());
    if let Some(k) = addr.keepalive {
        cfg.link.keepalive = k;
    }
    if let Some(d) = addr.dead_after {
        cfg.link.dead_after = d;
    }
    if let Some(w) = addr.window {
        cfg.mux.window = w;
    }
    if let Some(m) = addr.max_channels {
        cfg.mux.max_channels = m;
    }
    if let Some(path) = &addr.secret_file {
        let secret = crate::link::crypto::read_secret_file(path)
            .map_err(|e| Error::Usage(format!("SERIAL-MUX:{}: {e}", addr.device)))?;
        // The core draws no randomness itself: its ephemeral keys come from this.
        let seed = crate::link::crypto::os_random()
            .map_err(|e| Error::Usage(format!("SERIAL-MUX:{}: {e}", addr.device)))?;
        cfg.link.key = Some(crate::link::crypto::KeyConfig { secret, seed });
    }
    // Link features to offer (bit set, docs/link-protocol.md §10; default
    // RESUME | LARGE_FRAMES; 0 = plain wire v1), for measurements.
    if let Some(bits) = std::env::var("SFS_LINK_FEATURES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        cfg.link.features = crate::link::Features(bits);
    }
    if let Some(c) = addr.compress {
        cfg.mux.compress = c;
    }
    // Offered in the link's CAPS: the peer then sends DATA_LZ4 records only if
    // it has them too; a peer built before CAPS never sees the difference.
    // compress= alone decides (SFS_LINK_FEATURES with bit 2 and compress=off
    // would invite records this mux refuses).
    let lz4 = crate::link::Features::COMPRESS_LZ4;
    cfg.link.features = if cfg.mux.compress {
        cfg.link.features.union(lz4)
    } else {
        crate::link::Features(cfg.link.features.0 & !lz4.0)
    };
    cfg.validate()
        .map_err(|e| Error::Usage(format!("SERIAL-MUX:{}: {e}", addr.device)))?;
    Ok(cfg)
}

fn start(addr: &SerialMux) -> Result<MuxHandle> {
    let cfg = station_config(addr)?;
    let port = crate::endpoint::serial::open_port(&addr.device, &addr.line)?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let epoch = random_epoch();
    info!(
        "SERIAL-MUX:{} open at {} baud ({} bytes/s), link epoch {epoch:08x}{}",
        addr.device,
        addr.line.baud,
        addr.line.byte_rate(),
        if cfg.link.key.is_some() {
            ", keyed (secret-file): authenticated and encrypted"
        } else {
            ""
        }
    );
    let now = Instant::now();
    let station = Station::new(cfg, epoch, now);
    let max_payload = station.link_stats().max_payload;
    let driver = Driver {
        station,
        device_lost: false,
        peer_epoch: None,
        up_since: None,
        rate: RateSample {
            at: now,
            acked: 0,
            delivered: 0,
            tx: 0.0,
            rx: 0.0,
        },
        watch: LinkWatch {
            checked: now,
            max_payload,
            retransmitted: 0,
        },
        device: addr.device.clone(),
        line: addr.line,
        opens: HashMap::new(),
        chans: HashMap::new(),
        services: HashMap::new(),
        cmd_tx: cmd_tx.clone(),
    };
    tokio::spawn(driver.run(port, cmd_rx));
    Ok(MuxHandle {
        cmd: cmd_tx,
        device: addr.device.as_str().into(),
    })
}

/// Device input for the driver, tagged with the generation of the device it
/// came from (a reopened device is a new generation).
type Input = (u64, io::Result<Bytes>);
/// A finished write (the batch's buffer comes back for reuse), tagged likewise.
type Written = (u64, io::Result<Vec<u8>>);

/// An open device: the tasks that read and write it.
struct Port {
    generation: u64,
    batches: mpsc::Sender<Vec<u8>>,
    /// The writer task has a batch; the next one waits for it to finish.
    writing: bool,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Port {
    fn start(
        port: tokio_serial::SerialStream,
        generation: u64,
        input: mpsc::Sender<Input>,
        written: mpsc::UnboundedSender<Written>,
    ) -> Port {
        let (rd, mut wr) = tokio::io::split(port);
        let mut rd = crate::endpoint::serial::device_reader(rd);
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(4096);
            loop {
                buf.reserve(4096);
                let r = match rd.read_buf(&mut buf).await {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "device closed",
                    )),
                    Ok(_) => Ok(buf.split().freeze()),
                    Err(e) => Err(e),
                };
                let failed = r.is_err();
                if input.send((generation, r)).await.is_err() || failed {
                    return;
                }
            }
        });
        let (batches, mut batch_rx) = mpsc::channel::<Vec<u8>>(1);
        let writer = tokio::spawn(async move {
            while let Some(batch) = batch_rx.recv().await {
                let r = wr.write_all(&batch).await.map(|()| batch);
                let failed = r.is_err();
                if written.send((generation, r)).is_err() || failed {
                    return;
                }
            }
        });
        Port {
            generation,
            batches,
            writing: false,
            reader,
            writer,
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// The device: open, or lost and waiting to be reopened.
enum Device {
    Open(Port),
    Lost { reopen_at: Instant },
}

struct Driver {
    station: Station,
    device: String,
    line: crate::address::LineSettings,
    opens: HashMap<OpenId, PendingOpen>,
    chans: HashMap<ChannelId, ChanLink>,
    services: HashMap<String, mpsc::UnboundedSender<PendingChannel>>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    /// The device failed and waits to be reopened.
    device_lost: bool,
    /// The peer's epoch of the current or last session.
    peer_epoch: Option<u32>,
    /// When the current session came up.
    up_since: Option<Instant>,
    /// The last goodput sample, and the rates it gave.
    rate: RateSample,
    /// What `-vv` logging last saw of the link (frame size, retransmissions).
    watch: LinkWatch,
}

/// An open waiting for the station's answer.
struct PendingOpen {
    reply: oneshot::Sender<io::Result<Conn>>,
    service: String,
    endpoint: Option<String>,
}

/// Goodput is the change of the acknowledged and delivered payload counters
/// over at least [`RATE_WINDOW`]: snapshots asked for more often (the status
/// view) see the last full window's rates rather than noise.
struct RateSample {
    at: Instant,
    acked: u64,
    delivered: u64,
    tx: f64,
    rx: f64,
}

const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Link facts last logged at debug level, to log only their changes.
struct LinkWatch {
    checked: Instant,
    max_payload: usize,
    retransmitted: u64,
}

/// Retransmissions within one check that make a burst worth a debug line.
const RETRANSMIT_BURST: u64 = 4;
/// How often the driver compares the link's counters for `-vv` logging.
const WATCH_EVERY: Duration = Duration::from_millis(250);

impl Driver {
    async fn run(
        mut self,
        port: tokio_serial::SerialStream,
        mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let (input_tx, mut input_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
        let (written_tx, mut written_rx) = mpsc::unbounded_channel::<Written>();
        let mut generation = 0;
        let mut device = Device::Open(Port::start(
            port,
            generation,
            input_tx.clone(),
            written_tx.clone(),
        ));
        let mut closing: Option<oneshot::Sender<()>> = None;
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        loop {
            let now = Instant::now();
            if self.station.poll_timeout().is_some_and(|t| t <= now) {
                self.station.handle_timeout(now);
            }
            if let Device::Lost { reopen_at } = device {
                if reopen_at <= now {
                    device = match crate::endpoint::serial::open_port(&self.device, &self.line) {
                        Ok(p) => {
                            warn!("SERIAL-MUX:{}: device is back", self.device);
                            self.device_lost = false;
                            generation += 1;
                            self.station.device_reopened();
                            Device::Open(Port::start(
                                p,
                                generation,
                                input_tx.clone(),
                                written_tx.clone(),
                            ))
                        }
                        Err(_) => Device::Lost {
                            reopen_at: now + REOPEN_EVERY,
                        },
                    };
                }
            }
            // Hand the writer a batch of frames when it is idle; the station's
            // pacer keeps a batch to a few milliseconds of line time.
            if let Device::Open(port) = &mut device {
                if !port.writing {
                    batch.clear();
                    while batch.len() < WRITE_BATCH
                        && self.station.poll_transmit(Instant::now(), &mut batch) > 0
                    {
                    }
                    if !batch.is_empty() {
                        port.writing = port.batches.try_send(std::mem::take(&mut batch)).is_ok();
                    }
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
            let reopen_at = match device {
                Device::Lost { reopen_at } => Some(reopen_at),
                Device::Open(_) => None,
            };
            let wake = self
                .station
                .poll_timeout()
                .into_iter()
                .chain(reopen_at)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                Some((g, r)) = written_rx.recv() => {
                    if let Device::Open(port) = &mut device {
                        if port.generation == g {
                            match r {
                                Ok(buf) => {
                                    batch = buf;
                                    port.writing = false;
                                }
                                Err(e) => device = self.device_lost(&e),
                            }
                        }
                    }
                }
                Some(first) = input_rx.recv() => {
                    // Everything that arrived meanwhile, in one turn.
                    let mut next = Some(first);
                    while let Some((g, r)) = next.take() {
                        let Device::Open(port) = &device else { break };
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

    fn device_lost(&mut self, e: &io::Error) -> Device {
        self.device_lost = true;
        warn!(
            "SERIAL-MUX:{}: device failed ({}); channels are kept while sfs reopens it (up to dead-after)",
            self.device,
            crate::error::describe_io(e)
        );
        Device::Lost {
            reopen_at: Instant::now() + REOPEN_EVERY,
        }
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
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.bytes_out += data.len() as u64;
                }
                self.station.write(ch, data)
            }
            Cmd::Eof { ch, status } => {
                if let Some(c) = self.chans.get_mut(&ch) {
                    c.local_done = true;
                }
                self.station.shutdown_write(ch, status)
            }
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
            budget: WRITER_BUDGET,
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
                local_done: false,
                peer_done: false,
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
                    self.peer_epoch = Some(peer_epoch);
                    self.up_since = Some(Instant::now());
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
                    self.up_since = None;
                    warn!(
                        "SERIAL-MUX:{}: session ended ({}); its channels were reset",
                        self.device,
                        sanitize(&reason)
                    );
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
                        c.peer_done = true;
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
                        debug!("channel {ch} reset: {}", sanitize(&reason));
                        c.cut(&reason, unconfirmed);
                    }
                }
            }
        }
    }

    /// The link and its channels now. Goodput rates are refreshed when the
    /// last sample is at least [`RATE_WINDOW`] old.
    fn snapshot(&mut self) -> LinkSnapshot {
        let now = Instant::now();
        let l = self.station.link_stats();
        let m = self.station.mux_stats();
        let s = self.station.stats();
        let r = &mut self.rate;
        let dt = now.duration_since(r.at);
        if dt >= RATE_WINDOW {
            let secs = dt.as_secs_f64();
            r.tx = l.payload_bytes_acked.saturating_sub(r.acked) as f64 / secs;
            r.rx = l.payload_bytes_delivered.saturating_sub(r.delivered) as f64 / secs;
            r.at = now;
            r.acked = l.payload_bytes_acked;
            r.delivered = l.payload_bytes_delivered;
        }
        let mut channels: Vec<ChannelSnapshot> = self
            .chans
            .iter()
            .map(|(&ch, c)| ChannelSnapshot {
                id: ch.0,
                name: ch.to_string(),
                service: sanitize(&c.service),
                direction: c.direction,
                endpoint: c.endpoint.clone(),
                bytes_out: c.bytes_out,
                bytes_in: c.bytes_in,
                state: ChannelState::from_ends(c.local_done, c.peer_done),
                age_s: now.duration_since(c.opened).as_secs_f64(),
                queue_bytes: self.station.queued(ch),
            })
            .collect();
        channels.sort_by_key(|c| c.id);
        let state = if self.device_lost {
            LinkState::DeviceLost
        } else if self.station.is_up() {
            LinkState::Up
        } else {
            LinkState::Down
        };
        LinkSnapshot {
            device: self.device.clone(),
            state,
            epoch: format!("{:08x}", self.station.epoch()),
            peer_epoch: self.peer_epoch.map(|e| format!("{e:08x}")),
            link_uptime_s: self
                .up_since
                .map_or(0.0, |t| now.duration_since(t).as_secs_f64()),
            sessions: l.sessions,
            baud: self.line.baud,
            line_bytes_per_s: self.line.byte_rate(),
            goodput_tx_bytes_per_s: self.rate.tx,
            goodput_rx_bytes_per_s: self.rate.rx,
            frames_sent: l.frames_sent,
            frames_received: l.frames_received,
            retransmissions: l.frames_retransmitted,
            crc_failures: l.crc_failures,
            malformed: l.malformed,
            line_bytes_sent: l.bytes_sent,
            payload_bytes_sent: l.payload_bytes_sent,
            payload_bytes_acked: l.payload_bytes_acked,
            payload_bytes_received: l.payload_bytes_delivered,
            srtt_ms: l.srtt.map(|d| d.as_secs_f64() * 1000.0),
            frame_payload: l.max_payload,
            error_rate: l.error_rate,
            queue_bytes: channels.iter().map(|c| c.queue_bytes).sum(),
            opens_waiting: s.waiting,
            channels_opened: m.opened_total,
            channels_served: m.incoming_total,
            channels_refused: m.refused_total,
            channels_reset: m.resets_sent + m.resets_received,
            channels,
        }
    }

    /// `-vv`: logs changes of the frame size and bursts of retransmissions,
    /// checked every [`WATCH_EVERY`] (link events come as station events).
    fn watch_link(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.watch.checked) < WATCH_EVERY {
            return;
        }
        let l = self.station.link_stats();
        let w = &mut self.watch;
        w.checked = now;
        if l.max_payload != w.max_payload {
            debug!(
                "SERIAL-MUX:{}: frame payload {} -> {} B (error rate {:.1e}/byte)",
                self.device, w.max_payload, l.max_payload, l.error_rate
            );
            w.max_payload = l.max_payload;
        }
        let burst = l.frames_retransmitted.saturating_sub(w.retransmitted);
        if burst >= RETRANSMIT_BURST {
            debug!(
                "SERIAL-MUX:{}: {burst} frames retransmitted in {} ms ({} CRC failures so far)",
                self.device,
                WATCH_EVERY.as_millis(),
                l.crc_failures
            );
        }
        w.retransmitted = l.frames_retransmitted;
    }
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
