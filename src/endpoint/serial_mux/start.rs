//! Starting a driver: the station's settings from the address's options,
//! a fresh link epoch, the device opened and the driver task spawned.

use super::driver::Driver;
use super::status::{LinkWatch, RateSample};
use super::MuxHandle;
use crate::address::{Duplex, LineSettings, SerialMux};
use crate::error::{Error, Result};
use crate::station::{Compression, Station, StationConfig};
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::info;

fn random_epoch() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    (h.finish() as u32).max(1)
}

/// The station's settings from the address's options.
fn station_config(addr: &SerialMux) -> Result<StationConfig> {
    let mut cfg = StationConfig::for_byte_rate(addr.line.byte_rate(), addr.device.clone());
    if let Some(k) = addr.keepalive {
        cfg.link.keepalive = k;
    }
    if let Some(d) = addr.dead_after {
        cfg.link.dead_after = d;
    }
    if let Some(w) = addr.window {
        cfg.mux.window = w;
    }
    if let Some(m) = addr.max_channels {
        cfg.mux.max_channels = m;
    }
    if let Some(path) = &addr.secret_file {
        let secret = crate::link::crypto::read_secret_file(path)
            .map_err(|e| Error::Usage(format!("SERIAL-MUX:{}: {e}", addr.device)))?;
        // The core draws no randomness itself: its ephemeral keys come from this.
        let seed = zeroize::Zeroizing::new(
            crate::link::crypto::os_random()
                .map_err(|e| Error::Usage(format!("SERIAL-MUX:{}: {e}", addr.device)))?,
        );
        // Nor does it read a clock: its handshakes carry this wall-clock time
        // (advanced by the link's own time) so that the peer can tell a
        // replayed handshake from a new one. The station is created right after.
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        cfg.link.key = Some(crate::link::crypto::KeyConfig {
            secret,
            seed: *seed,
            clock,
        });
    }
    // Link features to offer (bit set, docs/link-protocol.md §10; default
    // RESUME | LARGE_FRAMES; 0 = plain wire v1), for measurements.
    if let Some(bits) = std::env::var("SFS_LINK_FEATURES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        cfg.link.features = crate::link::Features(bits);
    }
    if let Duplex::Half {
        turnaround,
        max_turn,
    } = addr.duplex
    {
        cfg.link = cfg.link.clone().half_duplex(turnaround, max_turn);
    }
    cfg.compress = match addr.compress {
        None => Compression::UnlessKeyed,
        Some(true) => Compression::On,
        Some(false) => Compression::Off,
    };
    cfg.validate()
        .map_err(|e| Error::Usage(format!("SERIAL-MUX:{}: {e}", addr.device)))?;
    Ok(cfg)
}

/// Opens the device, in RS-485 mode if `rs485` (at every reopen too: the mode
/// does not outlive the descriptor on every driver).
pub(super) fn open_device(
    device: &str,
    line: &LineSettings,
    rs485: bool,
) -> Result<tokio_serial::SerialStream> {
    let port = crate::endpoint::serial::open_port(device, line)?;
    if rs485 {
        enable_rs485(&port).map_err(|e| {
            Error::Runtime(format!(
                "SERIAL-MUX:{device}: rs485: the device's driver has no RS-485 mode ({e}); \
                 drop rs485 if the adapter switches direction by itself"
            ))
        })?;
    }
    Ok(port)
}

#[cfg(unix)]
fn enable_rs485(port: &tokio_serial::SerialStream) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    crate::os::rs485::enable_rs485(port.as_raw_fd())
}

#[cfg(not(unix))]
fn enable_rs485(_: &tokio_serial::SerialStream) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "RS-485 mode through the driver exists on Linux only",
    ))
}

pub(super) async fn start(
    addr: &SerialMux,
    peer_gone: &std::sync::Arc<tokio::sync::Notify>,
    booting: &super::bootstrap::BootList,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<MuxHandle> {
    let cfg = station_config(addr)?;
    let mut port = open_device(&addr.device, &addr.line, addr.rs485)?;
    if let Some(far) = &addr.boot.bootstrap {
        super::bootstrap::bootstrap(&mut port, addr, far, booting, stopping).await?;
    }
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let epoch = random_epoch();
    info!(
        "SERIAL-MUX:{} open at {} baud ({} bytes/s), link epoch {epoch:08x}{}",
        addr.device,
        addr.line.baud,
        addr.line.byte_rate(),
        if cfg.link.key.is_some() {
            ", keyed (secret-file): authenticated and encrypted"
        } else {
            ""
        },
    );
    if let Some(t) = &cfg.link.turns {
        info!(
            "SERIAL-MUX:{}: half duplex: turnaround {:?}, longest turn {:?}{}",
            addr.device,
            t.turnaround,
            t.max_turn,
            if addr.rs485 {
                ", RS-485 mode (RTS)"
            } else {
                ""
            }
        );
    }
    let now = Instant::now();
    let mut station = Station::new(cfg, epoch, now);
    if addr.boot.exit_with_peer {
        // Offered so that the bootstrapping sfs's goodbye reaches the driver.
        station.listen(super::bootstrap::EXIT_SERVICE);
    }
    let max_payload = station.link_stats().max_payload;
    let driver = Driver {
        station,
        rate: RateSample {
            at: now,
            acked: 0,
            delivered: 0,
            tx: 0.0,
            rx: 0.0,
        },
        watch: LinkWatch {
            checked: now,
            max_payload,
            retransmitted: 0,
        },
        device: addr.device.clone(),
        line: addr.line,
        rs485: addr.rs485,
        opens: HashMap::new(),
        chans: HashMap::new(),
        services: HashMap::new(),
        cmd_tx: cmd_tx.clone(),
        peer_gone: addr.boot.exit_with_peer.then(|| peer_gone.clone()),
    };
    tokio::spawn(driver.run(port, cmd_rx));
    Ok(MuxHandle {
        cmd: cmd_tx,
        device: addr.device.as_str().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{parse_address, Address};
    use crate::link::Features;

    fn config(opts: &str) -> StationConfig {
        match parse_address(&format!("SERIAL-MUX:/dev/null{opts}")) {
            Ok(Address::SerialMux(a)) => station_config(&a).unwrap(),
            other => panic!("{opts}: {other:?}"),
        }
    }

    /// Compression is what this side offers in CAPS; the session compresses
    /// only if both ends offer it, so a keyed end that does not offer it keeps
    /// both directions uncompressed.
    #[test]
    fn a_keyed_link_compresses_only_when_told_to() {
        let dir = std::env::temp_dir().join(format!("sfs-compress-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k");
        crate::link::crypto::generate_secret_file(&key).unwrap();
        let k = format!(",secret-file={}", key.display());
        for (opts, on) in [
            (String::new(), true),
            (",compress=off".into(), false),
            (",compress=on".into(), true),
            (k.clone(), false),
            (format!("{k},compress=on"), true),
            (format!("{k},compress=off"), false),
        ] {
            let c = config(&opts);
            assert_eq!(c.mux_config().compress, on, "{opts}");
            for codec in [Features::COMPRESS_LZ4, Features::COMPRESS_DEFLATE] {
                assert_eq!(c.link_config().features.contains(codec), on, "{opts}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn duplex_half_takes_turns_and_offers_pass() {
        let c = config(",duplex=half,turnaround=4,max-turn=80");
        let t = c.link.turns.expect("turns");
        assert_eq!(t.turnaround, std::time::Duration::from_millis(4));
        assert_eq!(t.max_turn, std::time::Duration::from_millis(80));
        assert!(c.link_config().features.contains(Features::HALF_DUPLEX));
        assert!(config("").link.turns.is_none());
        assert!(!config("")
            .link_config()
            .features
            .contains(Features::HALF_DUPLEX));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn rs485_on_a_pty_is_a_one_line_error() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
        let path = path.to_str().expect("utf-8 path");
        let line = LineSettings::default();
        let e = open_device(path, &line, true).expect_err("a pty has no RS-485 mode");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "SERIAL-MUX:{path}: rs485: the device's driver has no RS-485 mode"
            )) && !msg.contains('\n'),
            "{msg}"
        );
        assert_eq!(e.exit_code(), 1);
        // Without rs485 the same pty opens.
        assert!(open_device(path, &line, false).is_ok());
    }
}
