//! Stand-ins for the Unix-only modules (pseudo-terminals, the virtual cable,
//! Unix-domain sockets) where they cannot exist, with the same signatures, so
//! the bridge compiles unchanged. `supported()` rejects these addresses before
//! the bridge runs; the errors here are a second line of defence.

use crate::error::Error;

fn unavailable(what: &str) -> Error {
    Error::Usage(format!("{what} is not available on this platform"))
}

/// `PTY`: no pseudo-terminals here.
pub mod pty {
    use crate::address::Pty;
    use crate::endpoint::Conn;
    use crate::error::Result;

    /// Never constructed: [`PtyDevice::create`] always fails.
    pub enum PtyDevice {}

    impl PtyDevice {
        /// Always fails: there are no pseudo-terminals.
        pub fn create(_: &Pty) -> Result<Self> {
            Err(super::unavailable("PTY"))
        }

        /// Unreachable (no value exists).
        pub fn into_conn(self) -> Conn {
            match self {}
        }
    }
}

/// The virtual cable needs two pseudo-terminals.
pub mod cable {
    use crate::address::Pty;
    use crate::error::Result;

    /// Always fails: there are no pseudo-terminals.
    pub async fn run(_: Pty, _: Pty) -> Result<()> {
        Err(super::unavailable("PTY (the virtual serial cable)"))
    }
}

/// `UNIX-LISTEN` / `UNIX-CONNECT`: tokio has no Unix-domain sockets here.
pub mod unix {
    use crate::address::{UnixConnect, UnixListen};
    use crate::endpoint::Conn;
    use crate::error::Result;
    use std::io;

    /// Never constructed: [`Listener::bind`] always fails. (A struct rather than
    /// an empty enum, so that the bridge's enums keep their layout.)
    pub struct Listener {
        _private: (),
    }

    impl Listener {
        /// Always fails: no Unix-domain sockets.
        pub fn bind(_: &UnixListen) -> Result<Self> {
            Err(super::unavailable("UNIX-LISTEN"))
        }

        /// Unreachable (no listener exists).
        pub async fn accept(&self) -> io::Result<Conn> {
            Err(unsupported())
        }
    }

    /// Always fails: no Unix-domain sockets.
    pub async fn connect(_: &UnixConnect) -> io::Result<Conn> {
        Err(unsupported())
    }

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "Unix-domain sockets are not available on this platform",
        )
    }
}
