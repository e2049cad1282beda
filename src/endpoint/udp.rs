//! UDP endpoints: `UDP-LISTEN` (near side: one connection per client address,
//! ended after an idle time) and `UDP` (far side: a connected socket). A
//! datagram travels through the byte stream as `len u16` + bytes, so
//! boundaries survive; a datagram over `max-datagram` is dropped with a log
//! line, and one that finds its connection's queue full is dropped and
//! counted: never truncated, never merged.

use super::Conn;
use crate::address::{UdpConnect, UdpListen};
use crate::error::{describe_io, Error, Result};
use bytes::{Buf, BytesMut};
use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{lookup_host, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Datagrams queued per client before new ones are dropped.
const PEER_QUEUE: usize = 32;
/// Clients served at once; datagrams from further ones are dropped. With the
/// queue above this bounds what local senders (or spoofed source addresses)
/// can make sfs hold: 256 × 32 × max-datagram (12 MiB at the default 1472).
const MAX_PEERS: usize = 256;
/// Largest datagram sfs reads at all.
const RECV_BUFFER: usize = 65_536;

/// Counters of one UDP connection, shared by its halves.
#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
}

/// The near side: a bound socket handing out one [`Conn`] per client address.
pub struct Listener {
    new_peers: mpsc::Receiver<Conn>,
    local: SocketAddr,
}

impl Listener {
    /// Binds (without `bind=`, to loopback: UDP-LISTEN always faces
    /// SERIAL-MUX) and starts the receive task.
    pub async fn bind(addr: &UdpListen) -> Result<Self> {
        let ip: IpAddr = match &addr.bind {
            Some(b) => lookup_host((b.as_str(), addr.port))
                .await
                .ok()
                .and_then(|mut a| a.next())
                .map(|a| a.ip())
                .ok_or_else(|| Error::Runtime(format!("cannot resolve bind address {b}")))?,
            None => crate::address::default_listen_ip(crate::address::Family::Any, true),
        };
        let sa = SocketAddr::new(ip, addr.port);
        let fail = |e: io::Error| {
            Error::Runtime(format!("cannot listen on udp {sa}: {}", describe_io(&e)))
        };
        let domain = if sa.is_ipv4() {
            socket2::Domain::IPV4
        } else {
            socket2::Domain::IPV6
        };
        let s = socket2::Socket::new(domain, socket2::Type::DGRAM, None).map_err(fail)?;
        s.set_reuse_address(addr.reuseaddr).map_err(fail)?;
        s.set_nonblocking(true).map_err(fail)?;
        s.bind(&sa.into()).map_err(fail)?;
        let sock = UdpSocket::from_std(s.into()).map_err(fail)?;
        let local = sock.local_addr().map_err(fail)?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(receive(Arc::new(sock), tx, addr.clone()));
        Ok(Listener {
            new_peers: rx,
            local,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next new client, or `None` when the socket failed.
    pub async fn accept(&mut self) -> Option<Conn> {
        self.new_peers.recv().await
    }
}

struct Peer {
    queue: mpsc::Sender<Vec<u8>>,
    counters: Arc<Counters>,
}

/// Reads the socket and routes each datagram to its client's connection.
async fn receive(sock: Arc<UdpSocket>, new_peers: mpsc::Sender<Conn>, cfg: UdpListen) {
    let mut peers: HashMap<SocketAddr, Peer> = HashMap::new();
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable from an earlier send shows up here on
                // some systems; it concerns one peer, not the socket.
                debug!("udp receive: {}", describe_io(&e));
                continue;
            }
        };
        if n > cfg.max_datagram {
            warn!(
                "udp {from}: {n}-byte datagram over max-datagram={} dropped",
                cfg.max_datagram
            );
            continue;
        }
        peers.retain(|_, p| !p.queue.is_closed());
        if !peers.contains_key(&from) {
            if peers.len() >= MAX_PEERS {
                debug!("udp {from}: {MAX_PEERS} clients already served; datagram dropped");
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let counters = Arc::new(Counters::default());
            let conn = peer_conn(sock.clone(), from, rx, counters.clone(), &cfg);
            if new_peers.send(conn).await.is_err() {
                return;
            }
            peers.insert(
                from,
                Peer {
                    queue: tx,
                    counters,
                },
            );
        }
        let p = &peers[&from];
        if p.queue.try_send(buf[..n].to_vec()).is_err() {
            let d = p.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            debug!("udp {from}: queue full, datagram dropped ({d} so far)");
        }
    }
}

fn peer_conn(
    sock: Arc<UdpSocket>,
    peer: SocketAddr,
    rx: mpsc::Receiver<Vec<u8>>,
    counters: Arc<Counters>,
    cfg: &UdpListen,
) -> Conn {
    let reader = FrameReader {
        source: Source::Queue(rx),
        idle: cfg.idle_timeout,
        timer: None,
        out: BytesMut::new(),
        counters: counters.clone(),
        peer,
    };
    let writer = FrameWriter {
        sock,
        peer: Some(peer),
        split: DatagramSplitter::new(cfg.max_datagram),
    };
    Conn::new(reader, writer, format!("udp {peer}"))
}

/// The far side: a socket connected to `UDP:HOST:PORT`.
pub async fn connect(addr: &UdpConnect) -> io::Result<Conn> {
    let target = lookup_host((addr.host.as_str(), addr.port))
        .await?
        .next()
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address")
        })?;
    let local: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = Arc::new(UdpSocket::bind(local).await?);
    sock.connect(target).await?;
    let reader = FrameReader {
        source: Source::Socket(sock.clone(), vec![0u8; RECV_BUFFER], addr.max_datagram),
        idle: addr.idle_timeout,
        timer: None,
        out: BytesMut::new(),
        counters: Arc::new(Counters::default()),
        peer: target,
    };
    let writer = FrameWriter {
        sock,
        peer: None,
        split: DatagramSplitter::new(addr.max_datagram),
    };
    Ok(Conn::new(reader, writer, format!("udp {target}")))
}

enum Source {
    /// Near side: datagrams routed by the receive task.
    Queue(mpsc::Receiver<Vec<u8>>),
    /// Far side: the connected socket, a receive buffer, the size limit.
    Socket(Arc<UdpSocket>, Vec<u8>, usize),
}

/// Yields datagrams as `len u16` + bytes; end of stream after `idle` without one.
struct FrameReader {
    source: Source,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    out: BytesMut,
    counters: Arc<Counters>,
    peer: SocketAddr,
}

impl AsyncRead for FrameReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.out.is_empty() {
            let got = match &mut this.source {
                Source::Queue(rx) => match rx.poll_recv(cx) {
                    Poll::Ready(d) => Poll::Ready(d),
                    Poll::Pending => Poll::Pending,
                },
                Source::Socket(sock, rbuf, max) => {
                    let mut rb = ReadBuf::new(rbuf);
                    match sock.poll_recv(cx, &mut rb) {
                        Poll::Ready(Ok(())) => {
                            let n = rb.filled().len();
                            if n > *max {
                                warn!(
                                    "udp {}: {n}-byte datagram over max-datagram={max} dropped",
                                    this.peer
                                );
                                continue;
                            }
                            Poll::Ready(Some(rb.filled().to_vec()))
                        }
                        // ICMP errors (port unreachable) concern earlier sends:
                        // UDP carries on.
                        Poll::Ready(Err(e)) => {
                            debug!("udp {}: {}", this.peer, describe_io(&e));
                            continue;
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
            };
            match got {
                Poll::Ready(Some(d)) => {
                    this.timer = None;
                    this.out.extend_from_slice(&(d.len() as u16).to_be_bytes());
                    this.out.extend_from_slice(&d);
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    let idle = this.idle;
                    let t = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    ready!(t.as_mut().poll(cx));
                    // Later datagrams from this client start a new connection
                    // instead of waiting in a queue nobody reads.
                    if let Source::Queue(rx) = &mut this.source {
                        rx.close();
                    }
                    let d = this.counters.dropped.load(Ordering::Relaxed);
                    info!(
                        "udp {}: idle for {} s, done ({d} datagrams dropped)",
                        this.peer,
                        idle.as_secs()
                    );
                    return Poll::Ready(Ok(()));
                }
            }
        }
        let n = buf.remaining().min(this.out.len());
        buf.put_slice(&this.out[..n]);
        this.out.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Splits the `len u16` + bytes stream (what `FrameReader` produces at the
/// other end) back into datagrams, however the stream is cut: sans-IO, so
/// the fuzz target `udp_frames` drives exactly what `FrameWriter` runs.
#[derive(Debug)]
pub struct DatagramSplitter {
    /// Largest datagram accepted (`max-datagram`).
    max: usize,
    /// The current datagram: its length prefix, then the bytes so far.
    acc: BytesMut,
}

/// A length prefix announced a datagram over `max-datagram`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverMax {
    /// The announced length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

impl std::fmt::Display for OverMax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peer sent a {}-byte datagram, over max-datagram={}",
            self.len, self.max
        )
    }
}

impl DatagramSplitter {
    /// A splitter for datagrams of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        DatagramSplitter {
            max,
            acc: BytesMut::new(),
        }
    }

    /// The announced length of the current datagram, once its prefix is in.
    fn announced(&self) -> Option<usize> {
        (self.acc.len() >= 2).then(|| usize::from(u16::from_be_bytes([self.acc[0], self.acc[1]])))
    }

    /// Bytes still missing from the current datagram once its length is
    /// known (`None` while the prefix is incomplete).
    pub fn body_remaining(&self) -> Option<usize> {
        self.announced().map(|n| 2 + n - self.acc.len())
    }

    /// Takes bytes of `buf` up to the end of the length prefix or of the
    /// current datagram, never beyond; returns how many. An error leaves the
    /// splitter unusable (the stream is broken).
    pub fn take(&mut self, buf: &[u8]) -> std::result::Result<usize, OverMax> {
        let k = match self.body_remaining() {
            None => {
                let k = (2 - self.acc.len()).min(buf.len());
                self.acc.extend_from_slice(&buf[..k]);
                if let Some(n) = self.announced().filter(|&n| n > self.max) {
                    return Err(OverMax {
                        len: n,
                        max: self.max,
                    });
                }
                k
            }
            Some(rest) => {
                let k = rest.min(buf.len());
                self.acc.extend_from_slice(&buf[..k]);
                k
            }
        };
        Ok(k)
    }

    /// The datagram, once complete (an empty one too); call
    /// [`DatagramSplitter::clear`] after using it.
    pub fn datagram(&self) -> Option<&[u8]> {
        (self.body_remaining() == Some(0)).then(|| &self.acc[2..])
    }

    /// Forgets the complete datagram.
    pub fn clear(&mut self) {
        self.acc.clear();
    }
}

/// Takes the `len u16` + bytes stream and sends each datagram whole.
struct FrameWriter {
    sock: Arc<UdpSocket>,
    /// `None`: the socket is connected.
    peer: Option<SocketAddr>,
    split: DatagramSplitter,
}

impl FrameWriter {
    /// Sends the complete datagram, then forgets it.
    fn send(&mut self) {
        let Some(d) = self.split.datagram() else {
            return;
        };
        let r = match self.peer {
            Some(p) => self.sock.try_send_to(d, p),
            None => self.sock.try_send(d),
        };
        // A send error (no route, port unreachable, a full socket buffer
        // right after it said ready) loses this datagram, as UDP would.
        if let Err(e) = r {
            debug!("udp send: {}", describe_io(&e));
        }
        self.split.clear();
    }
}

impl AsyncWrite for FrameWriter {
    /// Takes bytes up to the end of the current datagram at most; the call
    /// that completes one waits until the socket can send and sends it, so
    /// no datagram waits for a later write.
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this
            .split
            .body_remaining()
            .is_some_and(|rest| rest <= buf.len())
        {
            ready!(this.sock.poll_send_ready(cx))?;
        }
        let k = this
            .split
            .take(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        this.send();
        Poll::Ready(Ok(k))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// UDP-LISTEN always faces SERIAL-MUX: loopback unless bind= says otherwise.
    #[tokio::test]
    async fn udp_listen_binds_loopback_by_default() {
        let at = |text: &str| {
            let Ok(crate::address::Address::UdpListen(u)) = crate::address::parse_address(text)
            else {
                panic!("{text}");
            };
            u
        };
        let free = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap().port()
        };
        let l = Listener::bind(&at(&format!("UDP-LISTEN:{}", free())))
            .await
            .unwrap();
        assert!(l.local_addr().ip().is_loopback(), "{}", l.local_addr());
        let l = Listener::bind(&at(&format!("UDP-LISTEN:{},bind=0.0.0.0", free())))
            .await
            .unwrap();
        assert!(l.local_addr().ip().is_unspecified(), "{}", l.local_addr());
    }

    /// The splitter gives back every datagram from any cut of the stream,
    /// and stops at a prefix over the limit.
    #[test]
    fn splitter_takes_any_chunking() {
        let datagrams: Vec<Vec<u8>> = vec![vec![1; 5], Vec::new(), vec![2; 100], vec![3]];
        let mut stream = Vec::new();
        for d in &datagrams {
            stream.extend_from_slice(&(d.len() as u16).to_be_bytes());
            stream.extend_from_slice(d);
        }
        for chunk in 1..=stream.len() {
            let mut sp = DatagramSplitter::new(100);
            let mut got = Vec::new();
            for mut c in stream.chunks(chunk) {
                while !c.is_empty() {
                    let k = sp.take(c).unwrap();
                    assert!(k > 0);
                    c = &c[k..];
                    if let Some(d) = sp.datagram() {
                        got.push(d.to_vec());
                        sp.clear();
                    }
                }
            }
            assert_eq!(got, datagrams, "chunks of {chunk}");
        }
        let mut sp = DatagramSplitter::new(100);
        assert_eq!(sp.take(&[0]), Ok(1));
        assert_eq!(sp.take(&[101, 0]), Err(OverMax { len: 101, max: 100 }));
    }

    /// Frames written in awkward pieces leave as whole datagrams, in order;
    /// a frame over the limit is an error, not a truncated datagram.
    #[tokio::test]
    async fn writer_sends_whole_datagrams_from_any_chunking() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        tx.connect(rx.local_addr().unwrap()).await.unwrap();
        let mut w = FrameWriter {
            sock: tx,
            peer: None,
            split: DatagramSplitter::new(100),
        };
        let datagrams: Vec<Vec<u8>> =
            vec![b"a".to_vec(), vec![7; 100], Vec::new(), b"xyz".to_vec()];
        let mut stream = Vec::new();
        for d in &datagrams {
            stream.extend_from_slice(&(d.len() as u16).to_be_bytes());
            stream.extend_from_slice(d);
        }
        for chunk in stream.chunks(3) {
            w.write_all(chunk).await.unwrap();
        }
        let mut buf = [0u8; 200];
        for d in &datagrams {
            let n = rx.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &d[..]);
        }
        assert!(w.write_all(&[0, 101]).await.is_err(), "over max-datagram");
    }
}
