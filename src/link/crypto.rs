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
use zeroize::{Zeroize, Zeroizing};

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

/// The pre-shared secret (32 bytes). Its `Debug` never shows the bytes, and
/// its bytes are wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; SECRET_LEN]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// What a keyed link needs: the secret, and a seed for its ephemeral keys (the
/// core draws no OS randomness; the driver seeds it from the OS, the simulator
/// from its own seed). Both are key material: the seed and the link epoch
/// (which is logged) give every ephemeral key, so `Debug` shows neither and
/// both are wiped on drop.
#[derive(Clone, PartialEq, Eq)]
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

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("secret", &format_args!("<redacted>"))
            .field("seed", &format_args!("<redacted>"))
            .field("clock", &self.clock)
            .finish()
    }
}

impl Drop for KeyConfig {
    fn drop(&mut self) {
        // The secret wipes itself.
        self.seed.zeroize();
    }
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

/// What is wrong with a key file's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// No key line.
    Empty,
    /// More than one key line.
    SeveralLines,
    /// The line is not base64.
    NotBase64,
    /// It decodes to this many bytes, not 32.
    Length(usize),
    /// Every byte is the same.
    NotRandom,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::Empty => f.write_str("it is empty"),
            KeyProblem::SeveralLines => f.write_str("it has more than one key line"),
            KeyProblem::NotBase64 => f.write_str("it is not base64 (expected 32 bytes in base64)"),
            KeyProblem::Length(n) => write!(
                f,
                "it holds {n} bytes, a secret is {SECRET_LEN} (make one with `sfs --gen-secret FILE`)"
            ),
            KeyProblem::NotRandom => f.write_str("it is not random (all bytes equal)"),
        }
    }
}

/// Why a key file cannot be used (`secret-file=`) or made (`--gen-secret`).
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Opening, reading or creating the file failed.
    Io(std::io::Error),
    /// The path is a symbolic link (or on Windows a junction).
    Symlink,
    /// Not a regular file (a directory, FIFO, device).
    NotRegular,
    /// Another file took its place between the first look and the open.
    Replaced,
    /// Owned by `owner`, neither this user (`me`) nor root.
    Owner {
        /// The file's owner.
        owner: u32,
        /// This process's user.
        me: u32,
    },
    /// Group or others may access it (`mode`).
    TooOpen {
        /// The permission bits.
        mode: u32,
    },
    /// Larger than a key file can be.
    TooLarge,
    /// Not UTF-8 text.
    NotText,
    /// The text is not a key.
    Content(KeyProblem),
}

/// A [`KeyFileError`] with the path it concerns, and how to fix it: the one
/// line the user reads.
#[derive(Debug)]
pub struct KeyFileFailure {
    /// `secret-file` or `--gen-secret`.
    pub role: &'static str,
    /// The key file.
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub error: KeyFileError,
}

impl fmt::Display for KeyFileFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        write!(f, "{} {path}: ", self.role)?;
        match &self.error {
            KeyFileError::Io(e) => write!(f, "{e}"),
            KeyFileError::Symlink => {
                f.write_str("is a symbolic link; give the path of the key file itself")
            }
            KeyFileError::NotRegular => f.write_str("is not a regular file"),
            KeyFileError::Replaced => f.write_str("was replaced while being opened; try again"),
            KeyFileError::Owner { owner, me } => write!(
                f,
                "is owned by uid {owner}, not by this user (uid {me}) or root; run: chown {me} {path}"
            ),
            KeyFileError::TooOpen { mode } => write!(
                f,
                "permissions {mode:04o} are too open (group or others may access it); run: chmod 600 {path}"
            ),
            KeyFileError::TooLarge => f.write_str("too large for a key file"),
            KeyFileError::NotText => f.write_str("it is not text (expected base64)"),
            KeyFileError::Content(p) => p.fmt(f),
        }
    }
}

impl std::error::Error for KeyFileFailure {}

/// Parses the contents of a key file: one line, the 32-byte secret in standard
/// base64 (what `head -c 32 /dev/urandom | base64`, `wg genkey` and
/// `sfs --gen-secret` produce); blank lines and `#` comments are allowed.
pub fn parse_secret(text: &str) -> Result<Secret, KeyProblem> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or(KeyProblem::Empty)?;
    if lines.next().is_some() {
        return Err(KeyProblem::SeveralLines);
    }
    // base64_decode allocates exactly what it fills, so no copy is left behind
    // by a reallocation; this one is wiped when dropped.
    let bytes = Zeroizing::new(base64_decode(line).ok_or(KeyProblem::NotBase64)?);
    if bytes.len() != SECRET_LEN {
        return Err(KeyProblem::Length(bytes.len()));
    }
    let mut secret = Secret([0; SECRET_LEN]);
    secret.0.copy_from_slice(&bytes);
    if secret.0.iter().all(|&b| b == secret.0[0]) {
        return Err(KeyProblem::NotRandom);
    }
    Ok(secret)
}

/// Largest key file read: a key line with comments around it.
const KEY_FILE_MAX: u64 = 4096;

/// Reads a key file. The file is opened once, without following a symbolic
/// link at the last component and without waiting on a FIFO, and every check
/// is made on what was opened (so nothing can be swapped in between a check
/// and the read): a regular file, at most 4 KiB, and on Unix owned by the
/// current user or root and not readable or writable by group or others (like
/// ssh with private keys). On Windows a reparse point (symbolic link,
/// junction) is refused as well; its ACL is not checked. The error is one
/// line; the bytes read are wiped afterwards.
pub fn read_secret_file(path: &std::path::Path) -> Result<Secret, KeyFileFailure> {
    read_key(path).map_err(|error| KeyFileFailure {
        role: "secret-file",
        path: path.to_owned(),
        error,
    })
}

fn read_key(path: &std::path::Path) -> Result<Secret, KeyFileError> {
    use std::io::Read;
    // A clear refusal of a link or a special file before opening anything (a
    // FIFO would block the open); the checks that count come after the open.
    let before = std::fs::symlink_metadata(path).map_err(KeyFileError::Io)?;
    if before.file_type().is_symlink() {
        return Err(KeyFileError::Symlink);
    }
    if !before.is_file() {
        return Err(KeyFileError::NotRegular);
    }
    let file = open_key_file(path).map_err(KeyFileError::Io)?;
    let meta = file.metadata().map_err(KeyFileError::Io)?;
    check_key_file(&before, &meta)?;
    // At most one byte past the limit, into a buffer that never reallocates
    // (so no copy of the key is left behind) and is wiped when dropped.
    let mut buf = Zeroizing::new(Vec::with_capacity(KEY_FILE_MAX as usize + 1));
    file.take(KEY_FILE_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(KeyFileError::Io)?;
    if buf.len() as u64 > KEY_FILE_MAX {
        return Err(KeyFileError::TooLarge);
    }
    let text = std::str::from_utf8(&buf).map_err(|_| KeyFileError::NotText)?;
    parse_secret(text).map_err(KeyFileError::Content)
}

/// Opens `path` for reading without following a symbolic link (the last
/// component) and without blocking (a FIFO or device swapped in after the
/// first look opens at once, to be refused by [`check_key_file`]).
#[cfg(unix)]
fn open_key_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Opens `path` for reading; a reparse point (symbolic link, junction) is
/// opened itself rather than followed, to be refused by [`check_key_file`].
#[cfg(windows)]
fn open_key_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::windows::fs::OpenOptionsExt;
    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(path)
}

#[cfg(not(any(unix, windows)))]
fn open_key_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// The checks on the opened key file's own metadata (`meta`, from the handle);
/// `before` is what `path` named before the open.
fn check_key_file(
    before: &std::fs::Metadata,
    meta: &std::fs::Metadata,
) -> Result<(), KeyFileError> {
    if !meta.is_file() {
        return Err(KeyFileError::NotRegular);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
            return Err(KeyFileError::Replaced);
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(KeyFileError::Owner {
                owner: meta.uid(),
                me,
            });
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen { mode });
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x400;
        let _ = before;
        if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
            return Err(KeyFileError::Symlink);
        }
    }
    #[cfg(not(any(unix, windows)))]
    let _ = before;
    if meta.len() > KEY_FILE_MAX {
        return Err(KeyFileError::TooLarge);
    }
    Ok(())
}

/// 32 bytes of OS randomness (for the driver's seed and `--gen-secret`).
pub fn os_random() -> std::io::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    DefaultResolver
        .resolve_rng()
        .ok_or_else(|| std::io::Error::other("no OS random number generator"))?
        .try_fill_bytes(&mut b)
        .map_err(|e| std::io::Error::other(format!("OS random number generator: {e}")))?;
    Ok(b)
}

/// Writes a new random secret to `path` (which must not exist), readable by the
/// owner only.
pub fn generate_secret_file(path: &std::path::Path) -> Result<(), KeyFileFailure> {
    write_new_key(path).map_err(|error| KeyFileFailure {
        role: "--gen-secret",
        path: path.to_owned(),
        error,
    })
}

fn write_new_key(path: &std::path::Path) -> Result<(), KeyFileError> {
    use std::io::Write;
    let key = Zeroizing::new(os_random().map_err(KeyFileError::Io)?);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(KeyFileError::Io)?;
    let line = Zeroizing::new(format!("{}\n", base64_encode(&*key)));
    f.write_all(line.as_bytes()).map_err(KeyFileError::Io)
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
        let mut key = Zeroizing::new([0u8; 32]);
        h.result(&mut *key);
        let mut cipher = DefaultResolver
            .resolve_cipher(&CipherChoice::ChaChaPoly)
            .expect("snow built with ChaCha20-Poly1305");
        cipher.set(&key);
        SeededRng { cipher, block: 0 }
    }

    /// A child RNG keyed by 32 bytes from this one.
    pub fn fork(&mut self) -> SeededRng {
        let mut k = Zeroizing::new([0u8; 32]);
        self.fill(&mut *k);
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
        assert_eq!(parse_secret("").unwrap_err(), KeyProblem::Empty);
        assert_eq!(
            parse_secret("not base64!").unwrap_err(),
            KeyProblem::NotBase64
        );
        let short = parse_secret(&base64_encode(&key[..16])).unwrap_err();
        assert_eq!(short, KeyProblem::Length(16));
        assert!(short.to_string().contains("16 bytes"));
        assert_eq!(
            parse_secret(&base64_encode(&[7u8; 32])).unwrap_err(),
            KeyProblem::NotRandom
        );
        let two = format!("{0}\n{0}\n", base64_encode(&key));
        assert_eq!(parse_secret(&two).unwrap_err(), KeyProblem::SeveralLines);
    }

    /// A fresh directory for key file tests.
    fn key_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sfs-key-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn key_config_debug_shows_neither_key_nor_seed() {
        let key: [u8; 32] = std::array::from_fn(|i| 0xa0 + i as u8);
        let seed: [u8; 32] = std::array::from_fn(|i| 0x10 + i as u8);
        let kc = KeyConfig {
            secret: Secret(key),
            seed,
            clock: std::time::Duration::from_secs(1_800_000_000),
        };
        let shown = format!("{kc:?} {kc:#?} {:?}", Some(&kc));
        assert!(shown.contains("<redacted>"), "{shown}");
        for bytes in [key, seed] {
            for text in [
                format!("{bytes:?}"),
                format!("{}", bytes[0]),
                format!("{:x}", bytes[0]),
                format!("{:02x}{:02x}", bytes[0], bytes[1]),
                base64_encode(&bytes),
            ] {
                assert!(!shown.contains(&text), "{text} in {shown}");
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_behind_a_symbolic_link_is_refused() {
        let dir = key_dir("symlink");
        let key = dir.join("k");
        generate_secret_file(&key).unwrap();
        assert!(read_secret_file(&key).is_ok());
        let link = dir.join("link");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        let err = read_secret_file(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A FIFO (or any special file) is refused at once: reading one would wait
    /// for a writer, and it has no size to check.
    #[cfg(unix)]
    #[test]
    fn key_file_that_is_a_fifo_is_refused_without_waiting() {
        use nix::sys::stat::Mode;
        let dir = key_dir("fifo");
        let fifo = dir.join("k");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        // On a thread, so a read that blocks fails the test instead of hanging it.
        std::thread::spawn(move || {
            let _ = tx.send(read_secret_file(&path));
        });
        let r = rx.recv_timeout(std::time::Duration::from_secs(5));
        if r.is_err() {
            // Unblock the reader for the old behaviour, then fail.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("read_secret_file blocked on a FIFO");
        }
        let err = r.unwrap().unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_of_another_user_is_refused() {
        let dir = key_dir("owner");
        let key = dir.join("k");
        generate_secret_file(&key).unwrap();
        if !nix::unistd::geteuid().is_root() {
            // Only root can give a file away; as a user, the own file passes.
            assert!(read_secret_file(&key).is_ok());
            eprintln!("not root: cannot make a file of another user; owner refusal untested");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        std::os::unix::fs::chown(&key, Some(54_321), None).unwrap();
        let err = read_secret_file(&key).unwrap_err().to_string();
        assert!(err.contains("owned by uid 54321"), "{err}");
        std::os::unix::fs::chown(&key, Some(0), None).unwrap();
        assert!(read_secret_file(&key).is_ok(), "root's own file");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_others_may_access_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = key_dir("perm");
        let key = dir.join("k");
        generate_secret_file(&key).unwrap();
        for mode in [0o640, 0o604, 0o620, 0o602, 0o660, 0o644] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_secret_file(&key).unwrap_err().to_string();
            assert!(
                err.contains("too open") && err.contains("chmod 600"),
                "{mode:o}: {err}"
            );
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(read_secret_file(&key).is_ok(), "{mode:o}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_checks_are_made_on_the_opened_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = key_dir("fstat");
        let key = dir.join("k");
        generate_secret_file(&key).unwrap();
        let before = std::fs::symlink_metadata(&key).unwrap();
        let file = open_key_file(&key).unwrap();
        assert!(check_key_file(&before, &file.metadata().unwrap()).is_ok());
        // The file the path named when looked at is not the file opened.
        let other = dir.join("other");
        generate_secret_file(&other).unwrap();
        let swapped = std::fs::File::open(&other).unwrap().metadata().unwrap();
        let err = check_key_file(&before, &swapped).unwrap_err();
        assert!(matches!(err, KeyFileError::Replaced), "{err:?}");
        // The handle's own mode counts, whatever the path shows.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_key_file(&before, &file.metadata().unwrap()).unwrap_err();
        assert!(
            matches!(err, KeyFileError::TooOpen { mode: 0o644 }),
            "{err:?}"
        );
        // Too large, or not a regular file, on the handle.
        std::fs::write(&other, vec![b'#'; 5000]).unwrap();
        let big = std::fs::File::open(&other).unwrap().metadata().unwrap();
        let before = std::fs::symlink_metadata(&other).unwrap();
        let err = check_key_file(&before, &big).unwrap_err();
        assert!(matches!(err, KeyFileError::TooLarge), "{err:?}");
        let err = read_secret_file(&other).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
        let err = read_secret_file(&dir).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
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
