//! The `bootstrap=` conversation (`sfs::bootstrap::Bootstrap`) against a
//! console that answers as the input script says: raw bytes (garbage, a
//! login prompt, stale markers, NULs), the markers of the last command typed
//! (with a correct or a wrong checksum between them), time running to the
//! next deadline, the peer image arriving, a stop. Must never panic, must
//! end (every step either types, waits for a deadline or is over), and types
//! a bounded amount for each step.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sfs::bootstrap::{Bootstrap, Config, Event, PeerImage};

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The markers a command line makes the shell print, in order.
fn markers(typed: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = typed;
    while let Some(i) = rest.find("echo SFS''_") {
        rest = &rest[i + "echo SFS''_".len()..];
        let end = rest.find([';', ' ', '\n']).unwrap_or(rest.len());
        let word = rest[..end].replace("$((", "").replace("))", "");
        out.push(format!("SFS_{word}"));
        rest = &rest[end..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = Config {
        nonce: 0,
        byte_rate: 11_520,
        peer_dir: None,
        far_mux_options: ",b115200,exit-with-peer".into(),
        far_address: "TCP:localhost:22".into(),
    };
    let mut boot = Bootstrap::new(cfg, now);
    let binary: Vec<u8> = (0..40_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let image = PeerImage {
        gzip: binary[..20_000].to_vec(),
        binary: binary.clone(),
    };
    let mut last_command = String::new();
    let mut last_data: Vec<u8> = Vec::new();
    let mut ops = data.iter().copied();
    let mut steps = 0;
    while let Some(op) = ops.next() {
        steps += 1;
        if steps > 400 || boot.is_finished() {
            break;
        }
        let mut typed = 0;
        while let Some(t) = boot.poll_transmit() {
            typed += t.len();
            match std::str::from_utf8(&t) {
                Ok(s) if s.contains("echo SFS''_") => last_command = s.to_string(),
                _ => last_data = t,
            }
        }
        // A chunk, newlines to end a stray `head`, or one command line.
        assert!(typed <= 300_000, "typed {typed} bytes in one step");
        while let Some(ev) = boot.poll_event() {
            if let Event::NeedPeer { .. } = ev {
                if op & 0x80 != 0 {
                    boot.provide_peer(now, image.clone());
                }
            }
        }
        match op % 6 {
            // Raw console bytes from the script.
            0 => {
                let n = usize::from(ops.next().unwrap_or(0));
                let bytes: Vec<u8> = ops.by_ref().take(n).collect();
                boot.handle_input(now, &bytes);
            }
            // The command's markers, a correct checksum of the last data typed
            // (a chunk) between them.
            1 | 2 => {
                let m = markers(&last_command);
                let mut reply = String::new();
                for (i, mk) in m.iter().enumerate() {
                    if i > 0 {
                        let sum = if op % 6 == 1 {
                            sha256_hex(&last_data)
                        } else {
                            sha256_hex(&binary)
                        };
                        reply.push_str(&format!("{sum}  -\n"));
                        reply.push_str("head dd gzip sha256sum tty\naarch64\n");
                    }
                    reply.push_str(mk);
                    reply.push('\n');
                }
                boot.handle_input(now, reply.as_bytes());
            }
            // Time runs to the next deadline (or a little).
            3 => {
                now = boot
                    .poll_timeout()
                    .unwrap_or(now + Duration::from_millis(u64::from(op)));
                boot.handle_timeout(now);
            }
            4 => {
                if op & 0x40 != 0 {
                    boot.abort(now);
                }
            }
            _ => now += Duration::from_millis(u64::from(op) * 10),
        }
        let _ = boot.status();
    }
});
