//! A channel as the bridge sees it: a [`Conn`] whose reader yields the
//! peer's bytes (reporting them consumed once written on) and whose writer
//! spends a byte budget the station refills; and [`ChanLink`], the driver's
//! side of the same channel.

use super::{driver_gone, Cmd};
use crate::endpoint::{Conn, StatusSlot};
use crate::mux::{ChannelId, ExitStatus};
use crate::stats::{sanitize, Direction};
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

/// What the driver tells a channel's reader.
pub(super) enum Inbound {
    Data(Bytes),
    Eof(Option<ExitStatus>),
    Reset(String),
}

/// State shared by a channel's writer and the driver: the writer's byte budget.
pub(super) struct WriteShared {
    pub(super) budget: usize,
    pub(super) waker: Option<Waker>,
    pub(super) dead: Option<String>,
}

/// The pieces a channel's [`Conn`] is made of, created with the channel.
pub(super) struct ConnParts {
    pub(super) ch: ChannelId,
    pub(super) cmd: mpsc::UnboundedSender<Cmd>,
    pub(super) rx: mpsc::UnboundedReceiver<Inbound>,
    pub(super) write: Arc<Mutex<WriteShared>>,
    pub(super) confirmed: oneshot::Receiver<io::Result<()>>,
    pub(super) label: String,
}

impl ConnParts {
    pub(super) fn into_conn(self) -> Conn {
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
pub(super) struct ChanLink {
    pub(super) to_app: mpsc::UnboundedSender<Inbound>,
    pub(super) write: Arc<Mutex<WriteShared>>,
    pub(super) confirmed: oneshot::Sender<io::Result<()>>,
    pub(super) service: String,
    pub(super) direction: Direction,
    pub(super) endpoint: Option<String>,
    pub(super) opened: Instant,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
}

impl ChanLink {
    /// The channel is gone: both halves fail, and `confirmed` says why.
    pub(super) fn cut(self, why: &str, unconfirmed: u64) {
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
