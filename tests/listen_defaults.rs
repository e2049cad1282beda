//! Where listeners listen without `bind=`: in front of SERIAL-MUX on loopback
//! (as `ssh -L`), elsewhere on every address (as socat); the bound address is
//! logged at -v.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock

mod util;

use util::*;

/// Starts sfs with a port-0 listener; returns the port it reports and its log.
async fn start_and_report(args: &[String]) -> (u16, String) {
    let p = Sfs::start(args);
    let port = p.listen_port().await;
    (port, p.log_text())
}

#[cfg(unix)] // over the virtual cable (ptys)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_facing_serial_mux_listen_on_loopback_unless_bind_says_otherwise() {
    let cable = Cable::start("listen", 115_200).await;
    let mux = format!("SERIAL-MUX:{},b115200", cable.a.display());
    let (port, log) = start_and_report(&["TCP-LISTEN:0,fork".to_string(), mux.clone()]).await;
    assert!(
        log.contains(&format!(
            "TCP-LISTEN: listening on 127.0.0.1:{port} (this machine only"
        )),
        "{log}"
    );
    let (port, log) = start_and_report(&["SOCKS5-LISTEN:0".to_string(), mux.clone()]).await;
    assert!(
        log.contains(&format!("SOCKS5-LISTEN: listening on 127.0.0.1:{port}")),
        "{log}"
    );
    // Deliberately open to the network.
    let (port, log) = start_and_report(&["TCP-LISTEN:0,fork,bind=0.0.0.0".to_string(), mux]).await;
    assert!(
        log.contains(&format!("TCP-LISTEN: listening on 0.0.0.0:{port}\n"))
            || log.contains(&format!("TCP-LISTEN: listening on 0.0.0.0:{port}\r\n")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_listeners_keep_socats_all_addresses_default() {
    let (port, log) =
        start_and_report(&["TCP-LISTEN:0,fork".to_string(), "TCP:127.0.0.1:9".into()]).await;
    assert!(
        log.contains(&format!("TCP-LISTEN: listening on 0.0.0.0:{port}")),
        "{log}"
    );
}
