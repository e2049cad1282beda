//! The roles of an address pair: which side accepts connections (a
//! [`Source`]) and which is dialed for each of them (a [`Dialer`]), or two
//! `PTY`s forming a cable, or two ends opened once (see the module docs of
//! [`crate::bridge`]).

use crate::address::{Address, ListenOptions};
use crate::endpoint::serial_mux::{Incoming, MuxHandle, MuxHub, PendingChannel};
use crate::endpoint::{exec, pty, serial, stdio, tcp, udp, unix, Conn};
use crate::error::{Error, Result};
use std::io;
use std::sync::Arc;
use tracing::info;

/// A way to make a connection on demand.
#[derive(Clone)]
pub(crate) enum Dialer {
    Address(Arc<Address>),
    Mux {
        handle: MuxHandle,
        addr: Arc<crate::address::SerialMux>,
    },
}

impl Dialer {
    /// A new connection; `for_endpoint` names the connection it will be
    /// bridged to (a channel records it for statistics).
    pub(crate) async fn dial(&self, for_endpoint: Option<&str>) -> io::Result<Conn> {
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

    pub(crate) fn describe(&self) -> String {
        match self {
            Dialer::Mux { addr, .. } => format!("SERIAL-MUX:{}", addr.device),
            Dialer::Address(a) => a.to_string(),
        }
    }
}

pub(crate) fn to_io(e: Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Something that hands out incoming connections.
pub(crate) enum Source {
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
pub(crate) enum Arrival {
    Ready(Conn),
    Pending(PendingChannel),
    Socks(tokio::net::TcpStream, std::net::SocketAddr),
}

impl Source {
    pub(crate) async fn next(&mut self) -> Option<io::Result<Arrival>> {
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
    pub(crate) fn policy(&self) -> (bool, Option<usize>) {
        match self {
            Source::Tcp(_, o) | Source::Unix(_, o) | Source::Socks(_, o) => {
                (o.fork, o.max_children)
            }
            Source::Mux(_) | Source::Udp(_) => (true, None),
        }
    }
}

/// What one address pair does.
// One per address pair, made once at start: the variants' sizes do not matter
// (they differ most on Windows, where `Pty` is a stand-in).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Plan {
    Serve(Source, Dialer),
    Once(Dialer, Dialer),
    Cable(crate::address::Pty, crate::address::Pty),
}

/// True for addresses that make a fresh connection each time they are used.
pub(crate) fn is_dialing(a: &Address) -> bool {
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
pub(crate) async fn dialer(a: Address, hub: &MuxHub) -> Result<Dialer> {
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
pub(crate) async fn source(a: &Address, other: &Address, hub: &MuxHub) -> Result<Source> {
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
pub(crate) async fn plan(a1: Address, a2: Address, hub: &MuxHub) -> Result<Plan> {
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
