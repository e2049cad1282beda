//! Keyed-link building blocks: the pre-shared secret and its key file, the
//! deterministic handshake RNG, the sealed-frame format and its replay window.
//!
//! The handshake and the session rules that use them live in
//! [`handshake`](super::handshake). Sealed frame (kind 7), before COBS:
//!
//! ```text
//! byte 0      0x70
//! ctr         u32 BE: low 32 bits of the sender's 64-bit frame counter
//! ciphertext  ChaCha20-Poly1305(inner frame without its CRC), 16-byte tag last
//! ```
//!
//! The AEAD nonce is the full 64-bit counter, reconstructed by the receiver from
//! the low 32 bits and the highest counter it accepted (as QUIC does with packet
//! numbers); every transmission — retransmissions included — takes the next
//! counter value, so a nonce never carries two plaintexts. The tag replaces the
//! CRC: it catches line noise as well as forgery.

use std::fmt;
use std::sync::Mutex;

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::StatelessTransportState;

/// Key length in bytes (the Noise PSK size).
pub const SECRET_LEN: usize = 32;
/// Sealed-frame header: kind byte and truncated counter.
pub const SEAL_HEADER: usize = 1 + 4;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Raw bytes a sealed frame adds to the plain frame it carries (header + tag − CRC).
pub const SEAL_OVERHEAD: usize = SEAL_HEADER + TAG_LEN - super::frame::CRC_LEN;
/// Frame kind of sealed frames.
pub const KIND_SEALED: u8 = 7;
/// Frames remembered behind the newest one by the replay window.
pub const REPLAY_WINDOW: u64 = 128;

/// The pre-shared secret (32 bytes). Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; SECRET_LEN]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What a keyed link needs: the secret, and a seed for its ephemeral keys (the
/// core draws no OS randomness; the driver seeds it from the OS, the simulator
/// from its own seed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyConfig {
    /// The pre-shared secret.
    pub secret: Secret,
    /// Seed of the handshake RNG; mixed with the link epoch, so a restarted
    /// link with a new epoch draws new keys even from the same seed.
    pub seed: [u8; 32],
    /// The wall clock (time since the UNIX epoch) at the `now` the link is
    /// created with. Handshakes carry it, advanced by the link's own time, so
    /// the peer can tell a replayed one from a new one; it must not go back
    /// between runs (a peer whose clock did is heard only once the other side
    /// initiates itself, at the latest after its `dead_after`). The core reads
    /// no clock: the driver passes the system time, the simulator its own.
    pub clock: std::time::Duration,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Decodes standard base64 (padding optional, no whitespace inside).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for ch in s.bytes() {
        let v = B64.iter().position(|&b| b == ch)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be padding zeros, and a lone 6-bit group is not base64.
    (bits < 6 && acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// Parses the contents of a key file: one line, the 32-byte secret in standard
/// base64 (what `head -c 32 /dev/urandom | base64`, `wg genkey` and
/// `sfs --gen-secret` produce); blank lines and `#` comments are allowed.
pub fn parse_secret(text: &str) -> Result<Secret, String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or("it is empty")?;
    if lines.next().is_some() {
        return Err("it has more than one key line".into());
    }
    let bytes = base64_decode(line).ok_or("it is not base64 (expected 32 bytes in base64)")?;
    let key: [u8; SECRET_LEN] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "it holds {} bytes, a secret is {SECRET_LEN} (make one with `sfs --gen-secret FILE`)",
            bytes.len()
        )
    })?;
    if key.iter().all(|&b| b == key[0]) {
        return Err("it is not random (all bytes equal)".into());
    }
    Ok(Secret(key))
}

/// Reads a key file, refusing one that group or others may read or write (on
/// Unix; like ssh does with private keys). The error is one line.
pub fn read_secret_file(path: &std::path::Path) -> Result<Secret, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("secret-file {shown}: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "secret-file {shown}: permissions {mode:04o} are too open (group or others \
                 may access it); run: chmod 600 {shown}"
            ));
        }
    }
    if meta.len() > 4096 {
        return Err(format!("secret-file {shown}: too large for a key file"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("secret-file {shown}: {e}"))?;
    parse_secret(&text).map_err(|e| format!("secret-file {shown}: {e}"))
}

/// 32 bytes of OS randomness (for the driver's seed and `--gen-secret`).
pub fn os_random() -> Result<[u8; 32], String> {
    let mut b = [0u8; 32];
    DefaultResolver
        .resolve_rng()
        .ok_or("no OS random number generator")?
        .try_fill_bytes(&mut b)
        .map_err(|e| format!("OS random number generator: {e}"))?;
    Ok(b)
}

/// Writes a new random secret to `path` (which must not exist), readable by the
/// owner only.
pub fn generate_secret_file(path: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    let key = os_random()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| format!("--gen-secret {}: {e}", path.display()))?;
    writeln!(f, "{}", base64_encode(&key))
        .map_err(|e| format!("--gen-secret {}: {e}", path.display()))
}

/// A ChaCha20 keystream used as a CSPRNG: deterministic from its key, so the
/// simulator replays exactly, and as strong as the seed the driver gives it.
pub struct SeededRng {
    cipher: Box<dyn Cipher>,
    block: u64,
}

impl SeededRng {
    /// The RNG for `seed` mixed with `salt` (BLAKE2s).
    pub fn new(seed: &[u8; 32], salt: &[u8]) -> Self {
        let mut h = hash();
        h.input(b"sfs handshake rng");
        h.input(seed);
        h.input(salt);
        let mut key = [0u8; 32];
        h.result(&mut key);
        let mut cipher = DefaultResolver
            .resolve_cipher(&CipherChoice::ChaChaPoly)
            .expect("snow built with ChaCha20-Poly1305");
        cipher.set(&key);
        SeededRng { cipher, block: 0 }
    }

    /// A child RNG keyed by 32 bytes from this one.
    pub fn fork(&mut self) -> SeededRng {
        let mut k = [0u8; 32];
        self.fill(&mut k);
        SeededRng::new(&k, b"fork")
    }

    fn fill(&mut self, dest: &mut [u8]) {
        let zeros = [0u8; 64];
        let mut out = [0u8; 64 + TAG_LEN];
        for chunk in dest.chunks_mut(64) {
            // Each call uses a fresh nonce; the ciphertext of zeros is the keystream.
            self.cipher
                .encrypt(self.block, &[], &zeros[..chunk.len()], &mut out);
            self.block += 1;
            chunk.copy_from_slice(&out[..chunk.len()]);
        }
    }
}

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.fill(dest);
        Ok(())
    }
}

fn hash() -> Box<dyn Hash> {
    DefaultResolver
        .resolve_hash(&HashChoice::Blake2s)
        .expect("snow built with BLAKE2s")
}

/// snow's pure-Rust primitives with our RNG in place of the OS one.
pub struct Resolver(Mutex<Option<SeededRng>>);

impl Resolver {
    /// A resolver handing out `rng` (once: one handshake).
    pub fn new(rng: SeededRng) -> Self {
        Resolver(Mutex::new(Some(rng)))
    }
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let rng = self.0.lock().ok()?.take()?;
        Some(Box::new(rng))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// Sliding replay window over 64-bit counters (RFC 6479 style, 128 frames).
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// Highest accepted counter + 1 (0: none yet).
    top: u64,
    /// Bit i: counter `top - 1 - i` accepted.
    bits: u128,
}

impl ReplayWindow {
    /// The full counter nearest to the next expected one with these low 32 bits.
    pub fn expand(&self, low: u32) -> u64 {
        const WIN: u64 = 1 << 32;
        let expected = self.top;
        let cand = (expected & !(WIN - 1)) | u64::from(low);
        if cand + WIN / 2 <= expected && cand < u64::MAX - WIN {
            cand + WIN
        } else if cand > expected + WIN / 2 && cand >= WIN {
            cand - WIN
        } else {
            cand
        }
    }

    /// Counter `n` has not been accepted and is not too old to tell.
    pub fn fresh(&self, n: u64) -> bool {
        if n >= self.top {
            return true;
        }
        let d = self.top - 1 - n;
        d < REPLAY_WINDOW && self.bits & (1 << d) == 0
    }

    /// Records `n` as accepted (after it authenticated).
    pub fn accept(&mut self, n: u64) {
        if n >= self.top {
            let shift = n + 1 - self.top;
            self.bits = if shift >= 128 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.top = n + 1;
        } else {
            self.bits |= 1 << (self.top - 1 - n);
        }
    }
}

/// Why a sealed frame was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Too short or not a sealed frame.
    Malformed,
    /// The tag does not verify under this session's keys (noise, another
    /// session, forgery).
    Auth,
    /// Authentic but already received (or older than the window): a replay.
    Replay,
}

/// One session's transport keys, send counter and replay window.
pub struct Transport {
    st: StatelessTransportState,
    next: u64,
    window: ReplayWindow,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("next", &self.next)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Wraps a finished handshake's transport state.
    pub fn new(st: StatelessTransportState) -> Self {
        Transport {
            st,
            next: 0,
            window: ReplayWindow::default(),
        }
    }

    /// Counter the next sealed frame will use.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// Replaces `raw` (an inner frame *with* its CRC trailer, which is dropped)
    /// by the sealed frame. Every call takes a new counter.
    pub fn seal(&mut self, raw: &mut Vec<u8>, scratch: &mut Vec<u8>) {
        let body_len = raw.len() - super::frame::CRC_LEN;
        let n = self.next;
        self.next += 1;
        scratch.clear();
        scratch.push(KIND_SEALED << 4);
        scratch.extend_from_slice(&(n as u32).to_be_bytes());
        let start = scratch.len();
        scratch.resize(start + body_len + TAG_LEN, 0);
        let len = self
            .st
            .write_message(n, &raw[..body_len], &mut scratch[start..])
            .expect("sealed frame fits the Noise message limit");
        scratch.truncate(start + len);
        std::mem::swap(raw, scratch);
    }

    /// Opens sealed frame `raw` into `out` (the inner frame without CRC).
    pub fn open(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<u64, OpenError> {
        if raw.len() < SEAL_HEADER + TAG_LEN || raw[0] != KIND_SEALED << 4 {
            return Err(OpenError::Malformed);
        }
        let low = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
        let n = self.window.expand(low);
        let ct = &raw[SEAL_HEADER..];
        out.clear();
        out.resize(ct.len(), 0);
        // Authenticate before judging freshness, so a forged counter cannot make
        // us report a replay; accept only afterwards.
        let len = self
            .st
            .read_message(n, ct, out)
            .map_err(|_| OpenError::Auth)?;
        out.truncate(len);
        if !self.window.fresh(n) {
            return Err(OpenError::Replay);
        }
        self.window.accept(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_key_file_text() {
        for n in 0..40 {
            let d: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&d)).as_deref(), Some(&d[..]));
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(base64_decode("Zm9vYg=="), Some(b"foob".to_vec()));
        assert_eq!(base64_decode("Zm9vYh=="), None); // stray low bits
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9v!"), None);
        let key: Vec<u8> = (1..=32).collect();
        let text = format!("# sfs key\n\n{}\n", base64_encode(&key));
        assert_eq!(parse_secret(&text).unwrap().0.to_vec(), key);
        assert!(parse_secret("").unwrap_err().contains("empty"));
        assert!(parse_secret("not base64!").unwrap_err().contains("base64"));
        assert!(parse_secret(&base64_encode(&key[..16]))
            .unwrap_err()
            .contains("16 bytes"));
        assert!(parse_secret(&base64_encode(&[7u8; 32]))
            .unwrap_err()
            .contains("not random"));
        let two = format!("{0}\n{0}\n", base64_encode(&key));
        assert!(parse_secret(&two).unwrap_err().contains("more than one"));
    }

    #[test]
    fn replay_window() {
        let mut w = ReplayWindow::default();
        assert!(w.fresh(0));
        w.accept(0);
        assert!(!w.fresh(0));
        w.accept(5);
        assert!(w.fresh(3) && !w.fresh(5) && w.fresh(6));
        w.accept(3);
        assert!(!w.fresh(3));
        w.accept(200);
        assert!(!w.fresh(5) && !w.fresh(72), "older than the window");
        assert!(w.fresh(73) && w.fresh(199) && !w.fresh(200));
        // Counter reconstruction across the 32-bit wrap.
        let mut w = ReplayWindow::default();
        w.accept((1 << 32) - 2);
        assert_eq!(w.expand(u32::MAX), (1 << 32) - 1);
        assert_eq!(w.expand(3), (1 << 32) + 3);
        assert_eq!(w.expand(u32::MAX - 10), (1 << 32) - 11);
    }

    #[test]
    fn rng_is_deterministic_and_salted() {
        let mut a = [0u8; 100];
        let mut b = [0u8; 100];
        SeededRng::new(&[1; 32], b"x").fill(&mut a);
        SeededRng::new(&[1; 32], b"x").fill(&mut b);
        assert_eq!(a, b);
        SeededRng::new(&[1; 32], b"y").fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a[..64], a[36..]);
    }
}
