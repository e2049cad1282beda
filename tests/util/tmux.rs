//! A detached tmux session: a real terminal whose screen the tests read back
//! (the `--status` view, a bootstrap's progress).

use std::process::Command;
use std::time::{Duration, Instant};

/// A detached tmux session, killed on drop.
pub struct Tmux {
    name: String,
}

impl Tmux {
    pub fn start(tag: &str, width: u16, height: u16) -> Option<Tmux> {
        let name = format!("sfs-{tag}-{}", std::process::id());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            // A plain shell, so the pane's content is only what sfs draws.
            .args(["env", "PS1=$ ", "sh"])
            .status()
            .ok()?
            .success();
        ok.then_some(Tmux { name })
    }

    pub fn send(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux send-keys");
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The normal screen beneath the view (which is on the alternate
    /// screen): what sfs printed before the view came up.
    pub fn screen_under_view(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-a", "-q", "-J", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn resize(&self, width: u16, height: u16) {
        let _ = Command::new("tmux")
            .args(["resize-window", "-t", &self.name])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .status();
    }

    /// Waits until the screen satisfies `ok`; returns the last screen.
    pub async fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "screen never showed {what}:\n{s}"
            );
            // Polling period of the screen, not synchronisation.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

pub fn have_tmux() -> bool {
    Command::new("tmux").arg("-V").output().is_ok()
}
