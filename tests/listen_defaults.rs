//! Where listeners listen without `bind=`: in front of SERIAL-MUX on loopback
//! (as `ssh -L`), elsewhere on every address (as socat); the bound address is
//! logged at -v.
#![allow(clippy::disallowed_methods)] // measurements and test set-up read the clock

mod util;

use std::time::Duration;
use util::*;

async fn log_after_start(args: &[String], want: &str) -> String {
    let p = Sfs::start(args);
    for _ in 0..100 {
        if p.log_text().contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.log_text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_facing_serial_mux_listen_on_loopback_unless_bind_says_otherwise() {
    let cable = Cable::start("listen", 115_200).await;
    let mux = format!("SERIAL-MUX:{},b115200", cable.a.display());
    let port = free_port();
    let log = log_after_start(
        &[format!("TCP-LISTEN:{port},fork"), mux.clone()],
        "listening on",
    )
    .await;
    assert!(
        log.contains(&format!(
            "TCP-LISTEN: listening on 127.0.0.1:{port} (this machine only"
        )),
        "{log}"
    );
    let port = free_port();
    let log = log_after_start(
        &[format!("SOCKS5-LISTEN:{port}"), mux.clone()],
        "listening on",
    )
    .await;
    assert!(
        log.contains(&format!("SOCKS5-LISTEN: listening on 127.0.0.1:{port}")),
        "{log}"
    );
    // Deliberately open to the network.
    let port = free_port();
    let log = log_after_start(
        &[format!("TCP-LISTEN:{port},fork,bind=0.0.0.0"), mux],
        "listening on",
    )
    .await;
    assert!(
        log.contains(&format!("TCP-LISTEN: listening on 0.0.0.0:{port}\n"))
            || log.contains(&format!("TCP-LISTEN: listening on 0.0.0.0:{port}\r\n")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_listeners_keep_socats_all_addresses_default() {
    let port = free_port();
    let log = log_after_start(
        &[format!("TCP-LISTEN:{port},fork"), "TCP:127.0.0.1:9".into()],
        "listening on",
    )
    .await;
    assert!(
        log.contains(&format!("TCP-LISTEN: listening on 0.0.0.0:{port}")),
        "{log}"
    );
}
