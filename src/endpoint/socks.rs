//! SOCKS5 endpoints: `SOCKS5-LISTEN` speaks the SOCKS5 handshake with a local
//! client and opens a channel carrying its destination; `SOCKS5-DIAL` checks
//! a channel's destination against its allow-list, resolves and dials it.
//! The protocol itself is in [`crate::socks`]; this only moves bytes.

use super::serial_mux::{refuse_reason, MuxHandle, PendingChannel};
use super::{tcp, Conn};
use crate::address::Socks5Dial;
use crate::error::describe_io;
use crate::mux::{RefuseReason, Target};
use crate::socks::{self, Reply, SocksError, MAX_HANDSHAKE};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{lookup_host, TcpStream};
use tracing::{debug, info};

/// A client that has not finished its handshake by then is dropped, so idle
/// connections cannot pile up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Far side: default `connect-timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished client handshake yields: the destination, and any bytes
/// the client sent after its request (optimistic data), to pass on.
pub struct Request {
    /// The destination the client asked for.
    pub target: Target,
    /// Bytes that followed the request.
    pub early: Vec<u8>,
}

/// Reads from `s` into `buf` until `parse` decides.
async fn read_until<T>(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> socks::Parsed<T>,
) -> io::Result<Result<(T, usize), SocksError>> {
    loop {
        match parse(buf) {
            Ok(Some(v)) => return Ok(Ok(v)),
            Err(e) => return Ok(Err(e)),
            Ok(None) => {}
        }
        let mut chunk = [0u8; 512];
        let room = MAX_HANDSHAKE.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "handshake too long",
            ));
        }
        let n = s.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed during the SOCKS5 handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Runs the server side of the handshake up to (not including) the reply to
/// the request. Errors were already answered where SOCKS5 has a reply for them.
async fn handshake(s: &mut TcpStream) -> io::Result<Request> {
    let mut buf = Vec::new();
    let bad = |e: SocksError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let (methods, used) = read_until(s, &mut buf, socks::parse_greeting)
        .await?
        .map_err(bad)?;
    buf.drain(..used);
    if !methods.contains(&socks::METHOD_NONE) {
        s.write_all(&[socks::VERSION, socks::METHOD_UNACCEPTABLE])
            .await?;
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "client offers no method sfs accepts (no authentication)",
        ));
    }
    s.write_all(&[socks::VERSION, socks::METHOD_NONE]).await?;
    match read_until(s, &mut buf, socks::parse_request).await? {
        Ok((target, used)) => {
            buf.drain(..used);
            Ok(Request { target, early: buf })
        }
        Err(e) => {
            if let Some(r) = e.reply() {
                s.write_all(&r.encode()).await?;
            }
            Err(bad(e))
        }
    }
}

/// Near side: serves one SOCKS5 client. The success reply is sent only once
/// the far side accepted the channel; a refusal is sent as its reply code.
pub async fn serve_client(
    mut stream: TcpStream,
    peer: SocketAddr,
    mux: &MuxHandle,
    service: &str,
) -> io::Result<(Conn, Conn)> {
    let req = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "SOCKS5 handshake not finished in 10 s",
            ))
        }
    };
    let target = req.target;
    debug!("socks {peer}: CONNECT {target}");
    let endpoint = format!("socks {peer} -> {target}");
    match mux
        .open_channel_to(service, Some(target.clone()), Some(&endpoint))
        .await
    {
        Ok(mut ch) => {
            stream.write_all(&Reply::Succeeded.encode()).await?;
            if !req.early.is_empty() {
                ch.writer.write_all(&req.early).await?;
            }
            Ok((
                tcp::from_stream(stream, format!("socks {peer} -> {target}")),
                ch,
            ))
        }
        Err(e) => {
            let reply = match refuse_reason(&e) {
                Some(reason) => Reply::for_refusal(reason),
                None if e.kind() == io::ErrorKind::TimedOut => Reply::NetworkUnreachable,
                None => Reply::GeneralFailure,
            };
            info!(
                "socks {peer}: CONNECT {target}: {} (reply {:#04x})",
                describe_io(&e),
                reply as u8
            );
            let _ = stream.write_all(&reply.encode()).await;
            let _ = stream.shutdown().await;
            Err(e)
        }
    }
}

/// Why a destination cannot be dialed, as a refusal for the peer.
type Refusal = (RefuseReason, String);

/// The addresses of `target` that the allow-list permits, resolving names
/// here (on the far side). A name allowed by a name rule may resolve to any
/// address; otherwise each address must be allowed by an address rule.
async fn allowed_addrs(target: &Target, cfg: &Socks5Dial) -> Result<Vec<SocketAddr>, Refusal> {
    let denied = || (RefuseReason::NotAllowed, format!("{target} is not allowed"));
    let port = target.port;
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return if cfg.allow.allows_addr(ip, port) {
            Ok(vec![SocketAddr::new(ip, port)])
        } else {
            Err(denied())
        };
    }
    let by_name = cfg.allow.allows_name(&target.host, port);
    if !by_name && !cfg.allow.has_addr_rules() {
        return Err(denied());
    }
    let addrs: Vec<SocketAddr> = match lookup_host((target.host.as_str(), port)).await {
        Ok(a) => a.collect(),
        // No name rule allows it and it has no address an address rule
        // could allow: the policy answer, not a DNS one.
        Err(_) if !by_name => return Err(denied()),
        Err(e) => {
            return Err((
                RefuseReason::NameNotFound,
                format!("cannot resolve {}: {}", target.host, describe_io(&e)),
            ))
        }
    };
    if addrs.is_empty() {
        return Err((
            RefuseReason::NameNotFound,
            format!("{} has no address", target.host),
        ));
    }
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| by_name || cfg.allow.allows_addr(a.ip(), port))
        .collect();
    if allowed.is_empty() {
        return Err(denied());
    }
    Ok(allowed)
}

fn refusal_of(e: &io::Error) -> RefuseReason {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => RefuseReason::ConnectionRefused,
        io::ErrorKind::TimedOut => RefuseReason::TimedOut,
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::AddrNotAvailable => RefuseReason::NoRoute,
        io::ErrorKind::PermissionDenied => RefuseReason::NotAllowed,
        _ => RefuseReason::Other,
    }
}

/// Far side: dials the destination of one channel, or refuses it with the
/// reason the client will see as its SOCKS reply.
pub async fn serve_channel(p: PendingChannel, cfg: &Socks5Dial) -> io::Result<(Conn, Conn)> {
    let Some(target) = p.target().cloned() else {
        p.refuse_with(
            RefuseReason::NotAllowed,
            "SOCKS5-DIAL serves only SOCKS5 channels",
        );
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a channel without a destination reached SOCKS5-DIAL (peer is not SOCKS5-LISTEN)",
        ));
    };
    let addrs = match allowed_addrs(&target, cfg).await {
        Ok(a) => a,
        Err((reason, detail)) => {
            info!("socks: refusing {target}: {detail}");
            p.refuse_with(reason, &detail);
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, detail));
        }
    };
    let limit = cfg.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for sa in &addrs {
            match TcpStream::connect(sa).await {
                Ok(s) => return Ok((s, *sa)),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let dialed = tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")));
    match dialed {
        Ok((s, sa)) => {
            debug!("socks: {target} -> {sa}");
            let conn = tcp::from_stream(s, format!("tcp {sa} (socks {target})"));
            Ok((p.accept(&conn.label), conn))
        }
        Err(e) => {
            let detail = format!("{target}: {}", describe_io(&e));
            info!("socks: cannot connect to {detail}");
            p.refuse_with(refusal_of(&e), &detail);
            Err(e)
        }
    }
}
