//! `rs485` on SERIAL-MUX: asks the serial driver to drive RTS around every
//! transmission (Linux `TIOCSRS485`), as RS-485 adapters without automatic
//! direction control need: RTS enables the line driver while bytes go out and
//! releases the pair for the far end afterwards.
//!
//! The one `unsafe` block of sfs: an `ioctl` with a pointer to a
//! `struct serial_rs485` (neither nix nor libc wraps this request). The
//! struct is laid out as in `<linux/serial.h>` and lives for the call only.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::io::RawFd;

/// `struct serial_rs485` of `<linux/serial.h>` (32 bytes).
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Default)]
struct SerialRs485 {
    flags: u32,
    delay_rts_before_send: u32,
    delay_rts_after_send: u32,
    padding: [u32; 5],
}

#[cfg(target_os = "linux")]
const SER_RS485_ENABLED: u32 = 1 << 0;
#[cfg(target_os = "linux")]
const SER_RS485_RTS_ON_SEND: u32 = 1 << 1;

/// Enables RS-485 mode on the open serial device `fd`: RTS high while
/// sending, low after. Fails where the driver has no RS-485 support (a
/// pseudo-terminal, most USB adapters, any system but Linux).
#[cfg(target_os = "linux")]
pub fn enable_rs485(fd: RawFd) -> io::Result<()> {
    let mut conf = SerialRs485 {
        flags: SER_RS485_ENABLED | SER_RS485_RTS_ON_SEND,
        ..SerialRs485::default()
    };
    // SAFETY: `fd` is an open descriptor owned by the caller for the whole
    // call; TIOCSRS485 reads (and may update) exactly one `serial_rs485`,
    // which `conf` is, with the kernel's layout (#[repr(C)], 8 × u32).
    let r = unsafe { libc::ioctl(fd, libc::TIOCSRS485 as _, &mut conf as *mut SerialRs485) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// RS-485 mode through the driver exists on Linux only.
#[cfg(not(target_os = "linux"))]
pub fn enable_rs485(_fd: RawFd) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "RS-485 mode through the driver (TIOCSRS485) exists on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    #[test]
    fn a_pseudo_terminal_refuses_rs485_mode() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let e = enable_rs485(pty.slave.as_raw_fd()).expect_err("a pty has no RS-485 mode");
        // ENOTTY ("Inappropriate ioctl for device") on Linux.
        assert!(
            e.raw_os_error() == Some(libc::ENOTTY) || e.kind() == io::ErrorKind::Unsupported,
            "{e}"
        );
    }
}
