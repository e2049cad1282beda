//! `secret-file=` end to end: two real sfs processes over the virtual cable.
//! The same key carries a transfer intact; a different key carries nothing and
//! both logs say why; key files that others may read are refused.
#![allow(clippy::disallowed_methods)] // test set-up reads the clock

mod util;

use std::path::{Path, PathBuf};
use std::time::Duration;
use util::*;

fn gen_secret(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let out = std::process::Command::new(bin())
        .arg("--gen-secret")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out);
    p
}

/// `TCP-LISTEN → SERIAL-MUX(a)` and `SERIAL-MUX(b) → echo server`, with keys.
#[cfg(unix)] // over the virtual cable (ptys)
async fn pair(cable: &Cable, key_a: &Path, key_b: &Path) -> (Sfs, Sfs, u16) {
    pair_with(cable, key_a, key_b, "").await
}

/// [`pair`] with more SERIAL-MUX options (`opts` starts with a comma) on both ends.
#[cfg(unix)] // over the virtual cable (ptys)
async fn pair_with(cable: &Cable, key_a: &Path, key_b: &Path, opts: &str) -> (Sfs, Sfs, u16) {
    let echo = echo_server().await;
    let a = Sfs::start(&[
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!(
            "SERIAL-MUX:{},b115200,secret-file={}{opts}",
            cable.a.display(),
            key_a.display()
        ),
    ]);
    let b = Sfs::start(&[
        format!(
            "SERIAL-MUX:{},b115200,secret-file={}{opts}",
            cable.b.display(),
            key_b.display()
        ),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    let port = a.listen_port().await;
    (a, b, port)
}

/// The features line each end logs once the session's CAPS are exchanged.
#[cfg(unix)] // over the virtual cable (ptys)
async fn features_in_use(a: &Sfs, b: &Sfs) -> [String; 2] {
    let limit = Duration::from_secs(20);
    let mut lines = Vec::new();
    for end in [a, b] {
        let log = end.wait_log("link features in use:", limit).await;
        let line = log
            .lines()
            .find(|l| l.contains("link features in use:"))
            .expect("wait_log saw it")
            .to_owned();
        lines.push(line);
    }
    [lines[0].clone(), lines[1].clone()]
}

/// Compressed frame lengths show through the encryption (CRIME, BREACH), so a
/// keyed link leaves LZ4 out unless compress=on says otherwise, as ssh does.
#[cfg(unix)] // over the virtual cable (ptys)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_link_compresses_only_with_compress_on() {
    for (opts, lz4) in [("", false), (",compress=on", true)] {
        let cable = Cable::start("secret-compress", 115_200).await;
        let key = gen_secret(&cable.dir, "k");
        let (a, b, port) = pair_with(&cable, &key, &key, opts).await;
        // Text that LZ4 shrinks well goes through intact either way.
        let data: Vec<u8> = b"the quick brown fox jumps over the lazy dog\n"
            .iter()
            .copied()
            .cycle()
            .take(20_000)
            .collect();
        let s = connect_retry(port, Duration::from_secs(5)).await;
        let back = tokio::time::timeout(Duration::from_secs(30), roundtrip_all(s, &data))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{opts}: in time\nA:\n{}\nB:\n{}",
                    a.log_text(),
                    b.log_text()
                )
            });
        assert!(back == data, "{opts}: echo differs");
        for line in features_in_use(&a, &b).await {
            let features = line.rsplit("in use:").next().unwrap();
            assert_eq!(features.contains("lz4"), lz4, "{opts:?}: {line}");
        }
    }
}

#[cfg(unix)] // over the virtual cable (ptys)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_secret_carries_a_transfer_intact() {
    let cable = Cable::start_with("secret-ok", 115_200, ",ber=1e-5").await;
    let key = gen_secret(&cable.dir, "k");
    let (a, b, port) = pair(&cable, &key, &key).await;
    let data = pattern(60_000, 12);
    let s = connect_retry(port, Duration::from_secs(5)).await;
    let back = tokio::time::timeout(Duration::from_secs(60), roundtrip_all(s, &data))
        .await
        .unwrap_or_else(|_| panic!("in time\nA:\n{}\nB:\n{}", a.log_text(), b.log_text()));
    assert!(
        back == data,
        "echo differs ({} of {} bytes)",
        back.len(),
        data.len()
    );
    for log in [a.log_text(), b.log_text()] {
        assert!(log.contains("keyed (secret-file)"), "{log}");
        assert!(log.contains("link up"), "{log}");
        assert!(!log.contains("does not know our secret"), "{log}");
    }
}

#[cfg(unix)] // over the virtual cable (ptys)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_secrets_carry_nothing_and_both_logs_say_so() {
    let cable = Cable::start("secret-bad", 115_200).await;
    let (ka, kb) = (gen_secret(&cable.dir, "ka"), gen_secret(&cable.dir, "kb"));
    let (a, b, port) = pair(&cable, &ka, &kb).await;
    let s = connect_retry(port, Duration::from_secs(5)).await;
    let r = tokio::time::timeout(
        Duration::from_secs(4),
        try_roundtrip_all(s, b"hello, is anybody there?"),
    )
    .await;
    // Either still waiting for the link, or refused: never an echo.
    if let Ok(Ok(back)) = &r {
        assert!(back.is_empty(), "data passed: {back:?}");
    }
    for (who, sfs) in [("A", &a), ("B", &b)] {
        let log = sfs
            .wait_log("does not know our secret", Duration::from_secs(10))
            .await;
        let log = format!("{who}:\n{log}");
        assert!(!log.contains("link up"), "{log}");
        // Once per attempt series, not once per retry.
        assert!(
            log.matches("does not know our secret").count() <= 2,
            "{log}"
        );
    }
}

#[cfg(unix)] // over the virtual cable (ptys)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_and_unkeyed_ends_are_both_told() {
    let cable = Cable::start("secret-none", 115_200).await;
    let key = gen_secret(&cable.dir, "k");
    let echo = echo_server().await;
    let a = Sfs::start(&[
        "TCP-LISTEN:0,fork,bind=127.0.0.1".to_string(),
        format!(
            "SERIAL-MUX:{},b115200,secret-file={}",
            cable.a.display(),
            key.display()
        ),
    ]);
    let b = Sfs::start(&[
        format!("SERIAL-MUX:{},b115200", cable.b.display()),
        format!("TCP:127.0.0.1:{echo}"),
    ]);
    // Both ends say why, each in its own words; neither brings the link up.
    let la = a
        .wait_log("unkeyed protocol", Duration::from_secs(10))
        .await;
    let lb = b
        .wait_log("requires a shared secret", Duration::from_secs(10))
        .await;
    assert!(
        !la.contains("link up") && !lb.contains("link up"),
        "A:\n{la}\nB:\n{lb}"
    );
}

#[test]
fn key_files_others_may_read_or_garbled_are_refused() {
    let dir = temp_dir("secret-perm");
    let key = gen_secret(&dir, "k");
    let run = |k: &Path| {
        std::process::Command::new(bin())
            .arg(format!("SERIAL-MUX:/dev/null,secret-file={}", k.display()))
            .arg("TCP:127.0.0.1:9")
            .output()
            .unwrap()
    };
    // Made by --gen-secret: owner-only, 32 bytes of base64 on one line.
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 44, "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = run(&key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("too open") && err.contains("chmod 600"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // --gen-secret does not overwrite.
    let again = std::process::Command::new(bin())
        .arg("--gen-secret")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    for (content, word) in [
        ("c2hvcnQ=\n", "a secret is 32"),
        ("this is not a key\n", "not base64"),
        ("", "empty"),
    ] {
        std::fs::write(&key, content).unwrap();
        let out = run(&key);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(word), "{content:?}: {err}");
    }
    let out = run(&dir.join("missing"));
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
