//! An open device: a reader task feeding the driver a bounded queue, and a
//! writer task taking one batch at a time (a device that stops taking bytes
//! pauses the line, never the driver).

use bytes::{Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Device input for the driver, tagged with the generation of the device it
/// came from (a reopened device is a new generation).
pub(super) type Input = (u64, io::Result<Bytes>);
/// A finished write (the batch's buffer comes back for reuse), tagged likewise.
pub(super) type Written = (u64, io::Result<Vec<u8>>);

/// An open device: the tasks that read and write it.
pub(super) struct Port {
    pub(super) generation: u64,
    pub(super) batches: mpsc::Sender<Vec<u8>>,
    pub(super) reader: tokio::task::JoinHandle<()>,
    pub(super) writer: tokio::task::JoinHandle<()>,
}

impl Port {
    pub(super) fn start(
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
