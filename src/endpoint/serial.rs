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
///
/// A device written `usb=VID:PID[:SERIAL]` is looked up among the ports now,
/// on every call, so a reopen finds a replugged adapter under its new name.
pub fn open_port(device: &str, line: &LineSettings) -> Result<SerialStream> {
    let resolved = resolve(device)?;
    let device = resolved.as_str();
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
            "cannot open {device}: no such device ({LIST_PORTS})"
        )));
    }
    let mut port = tokio_serial::new(native_name(device), line.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow)
        .open_native_async()
        .map_err(|e| Error::Runtime(format!("cannot open {device}: {}", open_failure(&e, line))))?;
    settle(device, &mut port, line, flow)?;
    Ok(port)
}

/// Where a user whose device is not there finds the ones that are.
const LIST_PORTS: &str = "sfs --list-ports shows the serial ports here";

/// The name to hand to tokio-serial. On Windows it must be the bare `COM12`:
/// serialport and mio-serial put `\\.\` in front themselves (which `COM10` and
/// above need), and mio-serial does so even when it is already there.
fn native_name(device: &str) -> &str {
    if cfg!(windows) {
        for prefix in [r"\\.\", "//./"] {
            if let Some(bare) = device.strip_prefix(prefix) {
                return bare;
            }
        }
    }
    device
}

/// Why an open failed, in words a user can act on.
fn open_failure(e: &tokio_serial::Error, line: &LineSettings) -> String {
    if e.description.contains("exclusive lock") {
        return "device is busy (another program has it open)".to_string();
    }
    if cfg!(windows) {
        // serialport reports a missing port and one held by another program
        // (Windows opens COM ports exclusively) as NoDevice; anything else comes
        // from configuring the opened port, i.e. the driver refused a setting.
        if e.kind == tokio_serial::ErrorKind::NoDevice {
            if e.description.contains("denied") {
                return format!("{} (is another program using the port?)", e.description);
            }
            return format!("no such port ({}; {LIST_PORTS})", e.description);
        }
        return format!(
            "the driver refused the line settings ({}): {}",
            describe_line(line),
            e.description
        );
    }
    e.description.clone()
}

/// `115200 8N1 rts/cts`: the settings as a terminal program would list them.
fn describe_line(line: &LineSettings) -> String {
    let parity = match line.parity {
        Parity::None => 'N',
        Parity::Even => 'E',
        Parity::Odd => 'O',
    };
    let flow = match line.flow {
        FlowControl::None => "",
        FlowControl::Hardware => " rts/cts",
        FlowControl::Software => " xon/xoff",
    };
    format!(
        "baud {} {}{}{}{flow}",
        line.baud, line.data_bits, parity, line.stop_bits
    )
}

/// Two fixes for Windows, after the port is open:
///
/// - mio-serial reopens the port for overlapped I/O and re-applies the settings
///   it read back from the first handle, and serialport reads "RTS on" as
///   hardware flow control: under Wine a port opened without flow control came
///   out with RTS/CTS (seen in Wine's trace), which on an adapter without a CTS
///   wire would hold every write. The flow control asked for is set once more.
/// - Drivers may accept a rate they cannot make and store another (a CH340 table
///   without 500000, say): the rate is read back, and a line whose two ends would
///   disagree is refused. Within 2 % is what UARTs tolerate anyway.
#[cfg(windows)]
fn settle(
    device: &str,
    port: &mut SerialStream,
    line: &LineSettings,
    flow: tokio_serial::FlowControl,
) -> Result<()> {
    use tokio_serial::SerialPort;
    port.set_flow_control(flow).map_err(|e| {
        Error::Runtime(format!(
            "cannot open {device}: the driver refused the line settings ({}): {}",
            describe_line(line),
            e.description
        ))
    })?;
    let want = line.baud;
    match port.baud_rate() {
        Ok(got) if got.abs_diff(want) as u64 * 50 > want as u64 => Err(Error::Runtime(format!(
            "cannot open {device}: the driver set baud {got} instead of {want}"
        ))),
        _ => Ok(()),
    }
}

/// Nothing to fix on Unix: serialport configures the descriptor it keeps, and
/// the rate set through termios2 is taken as given.
#[cfg(not(windows))]
fn settle(
    _: &str,
    _: &mut SerialStream,
    _: &LineSettings,
    _: tokio_serial::FlowControl,
) -> Result<()> {
    Ok(())
}

/// Opens `SERIAL:DEVICE` as a plain byte stream.
pub fn open(addr: &Serial) -> Result<Conn> {
    let port = open_port(&addr.device, &addr.line)?;
    let (r, w) = tokio::io::split(port);
    Ok(Conn::new(
        device_reader(r),
        w,
        format!("serial {}", addr.device),
    ))
}

/// The read half of a serial device as sfs reads it (on Windows, past Wine's
/// spurious read timeouts; see `SkipTimeouts`).
pub(crate) fn device_reader<R: tokio::io::AsyncRead + Unpin + Send>(
    r: R,
) -> impl tokio::io::AsyncRead + Unpin + Send {
    #[cfg(windows)]
    let r = SkipTimeouts(r);
    r
}

/// Wine ends a pending COM read with a timeout error (and no data) when a write
/// is queued on the port while nothing arrives (its read-interval timer starts
/// without a byte received). No data is lost: the read is simply made again.
#[cfg(windows)]
struct SkipTimeouts<R>(R);

#[cfg(windows)]
impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for SkipTimeouts<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            match std::task::ready!(std::pin::Pin::new(&mut self.0).poll_read(cx, buf)) {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                r => return std::task::Poll::Ready(r),
            }
        }
    }
}

/// The path of `device`: itself, or the port whose USB identity it names.
pub fn resolve(device: &str) -> Result<String> {
    use tokio_serial::SerialPortType;
    let id = match crate::address::UsbId::from_device(device) {
        None => return Ok(device.to_string()),
        Some(Ok(id)) => id,
        Some(Err(e)) => return Err(Error::Usage(e.to_string())),
    };
    let ports = tokio_serial::available_ports()
        .map_err(|e| Error::Runtime(format!("cannot list serial ports to find {id}: {e}")))?;
    let found: Vec<String> = ports
        .into_iter()
        .filter(|p| match &p.port_type {
            SerialPortType::UsbPort(u) => {
                u.vid == id.vid
                    && u.pid == id.pid
                    && id
                        .serial
                        .as_ref()
                        .is_none_or(|s| u.serial_number.as_deref() == Some(s.as_str()))
            }
            _ => false,
        })
        .map(|p| p.port_name)
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Runtime(format!(
            "no serial adapter {id} is plugged in (sfs --list-ports shows what is)"
        ))),
        many => Err(Error::Usage(format!(
            "{} adapters match {id} ({}); add the serial number: usb=VID:PID:SERIAL",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// `sfs --list-ports`: one line per serial port the system reports, with its
/// USB identity where it has one (what `usb=VID:PID[:SERIAL]` matches), and a
/// plain line when there is none to show.
pub fn list_ports() -> String {
    use std::fmt::Write;
    use tokio_serial::SerialPortType;
    let mut ports = match tokio_serial::available_ports() {
        Ok(p) => p,
        Err(e) => return format!("cannot list serial ports: {e}\n"),
    };
    ports.sort_by(|a, b| a.port_name.cmp(&b.port_name));
    let mut out = String::new();
    for p in &ports {
        let _ = match &p.port_type {
            SerialPortType::UsbPort(u) => writeln!(
                out,
                "{}  usb={:04x}:{:04x}{}  {}",
                p.port_name,
                u.vid,
                u.pid,
                u.serial_number
                    .as_deref()
                    .map(|s| format!(":{s}"))
                    .unwrap_or_default(),
                [u.manufacturer.as_deref(), u.product.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            SerialPortType::PciPort => {
                writeln!(out, "{}  (PCI or built-in, no USB identity)", p.port_name)
            }
            SerialPortType::BluetoothPort => {
                writeln!(out, "{}  (Bluetooth, no USB identity)", p.port_name)
            }
            SerialPortType::Unknown => writeln!(out, "{}  (no USB identity known)", p.port_name),
        };
    }
    let plain = ports
        .iter()
        .filter(|p| !matches!(p.port_type, SerialPortType::UsbPort(_)))
        .count();
    // Pseudo-terminals (the virtual cable) are not ports to the system.
    let tail = " (pseudo-terminals such as the virtual cable's ends are never listed): name them by path\n";
    if ports.is_empty() {
        out.push_str("no serial ports found");
        out.push_str(tail);
    } else if plain > 0 {
        out.push_str("ports without a USB identity");
        out.push_str(tail);
    }
    out
}
#[cfg(test)]
mod tests {
    use super::describe_line;
    use crate::address::{FlowControl, LineSettings, Parity};

    #[test]
    fn line_settings_read_like_a_terminal_programs() {
        let line = LineSettings {
            baud: 500_000,
            data_bits: 7,
            parity: Parity::Even,
            stop_bits: 2,
            flow: FlowControl::Hardware,
        };
        assert_eq!(describe_line(&line), "baud 500000 7E2 rts/cts");
    }
}
