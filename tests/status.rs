//! `--status`, as a person sees it: sfs runs in a tmux pane (a real terminal,
//! 120×30), a transfer goes through it, and the screen is read back.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock
#![cfg(unix)]

mod util;

use std::time::Duration;
use util::tmux::{have_tmux, Tmux};
use util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_view_shows_the_link_and_a_channel_and_restores_the_terminal() {
    if !have_tmux() {
        return missing_tool("tmux", "apt-get install tmux");
    }
    let cable = Cable::start("status", 115_200).await;
    let echo = echo_server().await;
    let _b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200", cable.b.display()),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let tmux = Tmux::start("status", 120, 30).expect("tmux starts a session");
    let cmd = format!(
        "{} -v --status TCP-LISTEN:0,fork,bind=127.0.0.1 SERIAL-MUX:{},b115200; echo \"sfs-exit\"\"ed-$?\"",
        bin().display(),
        cable.a.display()
    );
    tmux.send(&[&cmd, "Enter"]);
    tmux.wait_for("link up", |s| s.contains("link up")).await;
    // The port sfs bound: its -v line, printed before the view came up.
    let under = tmux.screen_under_view();
    let port: u16 = under
        .split("listening on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no listening port under the view:\n{under}"));

    // A transfer through it, kept open so that its channel is listed.
    let s = echo_kept_open(port, 20_000, 11).await;
    let screen = tmux
        .wait_for("a channel row with its bytes", |s| {
            s.lines()
                .any(|l| l.contains("(default)") && l.contains("20.0 kB") && l.contains("open"))
        })
        .await;
    assert!(screen.contains("channels (1)"), "{screen}");
    assert!(screen.contains("115200 baud"), "{screen}");
    assert!(screen.contains("tcp 127.0.0.1:"), "{screen}");
    println!("status screen at 120x30:\n{screen}");

    // A smaller terminal: redrawn to fit, nothing left over from the larger one.
    tmux.resize(90, 24);
    let small = tmux
        .wait_for("a redraw at 90 columns", |s| {
            // The link's box closes at the new right edge.
            s.lines()
                .any(|l| l.starts_with('┌') && l.ends_with('┐') && l.chars().count() == 90)
                && s.contains("link up")
                && s.contains("channels (1)")
        })
        .await;
    println!("status screen at 90x24:\n{small}");

    // Ctrl-C stops sfs; the shell's screen comes back with the exit status.
    drop(s);
    tmux.send(&["C-c"]);
    let after = tmux
        .wait_for("the shell back after Ctrl-C", |s| s.contains("sfs-exited-"))
        .await;
    assert!(!after.contains("channels ("), "view left behind:\n{after}");
    assert!(after.contains("sfs-exited-0"), "{after}");
}

#[tokio::test]
async fn status_without_a_terminal_says_so_and_carries_on() {
    // stderr is a file here, not a terminal.
    let mut sfs = Sfs::start(&[
        "--status".to_string(),
        "TCP-LISTEN:0,bind=127.0.0.1".to_string(),
        "TCP:127.0.0.1:9".to_string(),
    ]);
    // It runs: the port it reports is listening.
    let port = sfs.listen_port().await;
    let _ = connect_retry(port, Duration::from_secs(5)).await;
    let _ = sfs.child.start_kill();
    let _ = sfs.child.wait().await;
    let err = sfs.log_text();
    assert!(
        err.contains("--status needs a terminal"),
        "no notice:\n{err}"
    );
    assert!(
        !err.contains('\x1b'),
        "escape codes in piped output:\n{err:?}"
    );
}
