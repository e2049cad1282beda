//! `SERIAL:DEVICE`: the raw serial device, configured from the line options
//! (through tokio-serial, which works on real devices and on pseudo-terminals).

use super::Conn;
use crate::address::{FlowControl, LineSettings, Parity, Serial};
use crate::error::{Error, Result};
use tokio_serial::{DataBits, SerialPortBuilderExt, SerialStream, StopBits};

/// Opens and configures a serial device.
///
/// tokio-serial takes an exclusive lock on the device, so a second program on the
/// same port gets "device is busy". On a pseudo-terminal any baud is accepted.
pub fn open_port(device: &str, line: &LineSettings) -> Result<SerialStream> {
    let data_bits = match line.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let parity = match line.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = if line.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let flow = match line.flow {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
        FlowControl::Software => tokio_serial::FlowControl::Software,
    };
    if !std::path::Path::new(device).exists() && cfg!(unix) {
        return Err(Error::Runtime(format!(
            "cannot open {device}: No such file or directory"
        )));
    }
    tokio_serial::new(device, line.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow)
        .open_native_async()
        .map_err(|e| {
            let why = if e.description.contains("exclusive lock") {
                "device is busy (another program has it open)".to_string()
            } else {
                e.description.clone()
            };
            Error::Runtime(format!("cannot open {device}: {why}"))
        })
}

/// Opens `SERIAL:DEVICE` as a plain byte stream.
pub fn open(addr: &Serial) -> Result<Conn> {
    let port = open_port(&addr.device, &addr.line)?;
    let (r, w) = tokio::io::split(port);
    Ok(Conn::new(r, w, format!("serial {}", addr.device)))
}
