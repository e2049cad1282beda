//! TCP endpoints: `TCP-LISTEN` (accepting) and `TCP` (dialing).

use super::Conn;
use crate::address::{default_listen_ip, Family, TcpConnect, TcpListen};
use crate::error::{describe_io, Error, Result};
use socket2::SockRef;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{lookup_host, TcpSocket, TcpStream};

/// A bound TCP listener.
pub struct Listener {
    inner: tokio::net::TcpListener,
}

impl Listener {
    /// Binds as the address says — without `bind=`, to loopback when
    /// `facing_mux` (see [`default_listen_ip`]); errors read like `cannot
    /// listen on 0.0.0.0:22: Address in use`.
    pub async fn bind(addr: &TcpListen, facing_mux: bool) -> Result<Self> {
        let ip: IpAddr = match &addr.bind {
            Some(b) => resolve(b, addr.port, addr.family)
                .await
                .map_err(|e| Error::Runtime(format!("cannot resolve bind address {b}: {e}")))?
                .ip(),
            None => default_listen_ip(addr.family, facing_mux),
        };
        let sa = SocketAddr::new(ip, addr.port);
        let fail =
            |e: io::Error| Error::Runtime(format!("cannot listen on {sa}: {}", describe_io(&e)));
        let socket = if sa.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(fail)?;
        socket.set_reuseaddr(addr.reuseaddr).map_err(fail)?;
        socket.bind(sa).map_err(fail)?;
        let inner = socket.listen(addr.listen.backlog.max(1)).map_err(fail)?;
        Ok(Listener { inner })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Waits for the next connection, as a raw stream (for a protocol spoken
    /// before bridging, such as SOCKS5).
    pub async fn accept_stream(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.inner.accept().await
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Conn> {
        let (stream, peer) = self.inner.accept().await?;
        Ok(from_stream(stream, format!("tcp {peer}")))
    }
}

async fn resolve(host: &str, port: u16, family: Family) -> io::Result<SocketAddr> {
    let addrs = lookup_host((host, port)).await?;
    let mut first = None;
    for a in addrs {
        let ok = match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        };
        if ok {
            first = Some(a);
            break;
        }
    }
    first.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no address of the requested family",
        )
    })
}

/// Dials `TCP:HOST:PORT`, trying each resolved address in turn.
pub async fn connect(addr: &TcpConnect) -> io::Result<Conn> {
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address");
        for sa in lookup_host((addr.host.as_str(), addr.port)).await? {
            let ok = match addr.family {
                Family::Any => true,
                Family::V4 => sa.is_ipv4(),
                Family::V6 => sa.is_ipv6(),
            };
            if !ok {
                continue;
            }
            match TcpStream::connect(sa).await {
                Ok(s) => return Ok(from_stream(s, format!("tcp {sa}"))),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match addr.connect_timeout {
        Some(t) => tokio::time::timeout(t, attempt)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))),
        None => attempt.await,
    }
}

/// Kernel send buffer for sockets sfs writes to. The far side of a serial line
/// delivers a few KiB to a few hundred KiB per second; the default autotuned
/// buffer (up to 4 MiB) would swallow seconds of a stalled reader's data before
/// the channel's flow control noticed, and hold that much of a dead connection.
const SEND_BUFFER: u32 = 64 * 1024;

/// Wraps a connected stream: TCP_NODELAY on, a bounded send buffer, abort =
/// close with RST.
///
/// The halves share the stream instead of using `into_split`, whose write half
/// sends FIN when dropped: an aborted connection must reach its peer as a reset
/// only, or the peer would read a clean end of file first.
pub fn from_stream(stream: TcpStream, label: String) -> Conn {
    let _ = stream.set_nodelay(true);
    let _ = set_send_buffer(&stream, SEND_BUFFER);
    let stream = Arc::new(stream);
    let for_abort = stream.clone();
    Conn::new(TcpRead(stream.clone()), TcpWrite(stream), label).with_abort(move || {
        // SO_LINGER with a zero timeout: the last close sends RST, not FIN.
        let _ = SockRef::from(&*for_abort).set_linger(Some(Duration::ZERO));
    })
}

/// The read half of a shared TCP stream.
struct TcpRead(Arc<TcpStream>);

impl AsyncRead for TcpRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The write half of a shared TCP stream; `shutdown` sends FIN.
struct TcpWrite(Arc<TcpStream>);

impl AsyncWrite for TcpWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = SockRef::from(&*self.0).shutdown(Shutdown::Write);
        Poll::Ready(match r {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
            _ => Ok(()),
        })
    }
}

fn set_send_buffer(stream: &TcpStream, bytes: u32) -> io::Result<()> {
    SockRef::from(stream).set_send_buffer_size(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{parse_address, Address};

    async fn bound(text: &str, facing_mux: bool) -> SocketAddr {
        let Ok(Address::TcpListen(t) | Address::Socks5Listen(t)) = parse_address(text) else {
            panic!("{text} is not a TCP listener");
        };
        Listener::bind(&t, facing_mux)
            .await
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// In front of SERIAL-MUX a listener is local unless bind= says otherwise
    /// (ssh -L); elsewhere it listens on every address (socat).
    #[tokio::test]
    async fn listening_defaults_follow_ssh_in_front_of_a_tunnel() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(bound("TCP-LISTEN:0", true).await.ip(), ip("127.0.0.1"));
        assert_eq!(bound("SOCKS5-LISTEN:0", true).await.ip(), ip("127.0.0.1"));
        assert_eq!(bound("TCP-LISTEN:0", false).await.ip(), ip("0.0.0.0"));
        assert_eq!(
            bound("TCP-LISTEN:0,bind=0.0.0.0", true).await.ip(),
            ip("0.0.0.0")
        );
        assert_eq!(
            bound("TCP-LISTEN:0,bind=127.0.0.1", false).await.ip(),
            ip("127.0.0.1")
        );
        // IPv6 may be missing in a container: only when ::1 can be bound.
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            assert_eq!(bound("TCP6-LISTEN:0", true).await.ip(), ip("::1"));
            assert_eq!(bound("TCP6-LISTEN:0", false).await.ip(), ip("::"));
        }
    }
}
