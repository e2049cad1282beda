//! The exact commands bootstrap types on the far shell, and how their replies
//! are read. Every command is POSIX sh; the man page's BOOTSTRAP section lists
//! them (keep the two in step).
//!
//! Markers: a command ends with `echo SFS''_NONCE_SEQ`; the shell prints
//! `SFS_NONCE_SEQ`, which the echoed command line (while the terminal still
//! echoes) never contains, because of the `''`. NONCE is per run and SEQ per
//! command, so output left over from an interrupted run never matches.

use std::fmt::Write as _;

/// The tools bootstrap looks for, in the order the probe lists them.
pub(super) const TOOLS: &[&str] = &["head", "dd", "gzip", "sha256sum", "md5sum", "base64", "tty"];

/// `SFS_NONCE_SEQ`, as the shell prints it.
pub(super) fn marker(nonce: u32, seq: u32) -> String {
    format!("SFS_{nonce:08x}_{seq}")
}

/// The command that prints [`marker`].
pub(super) fn echo_marker(nonce: u32, seq: u32) -> String {
    format!("echo SFS''_{nonce:08x}_{seq}")
}

/// The first command: prints [`marker`] only where `$((…))` expands, so only
/// in a POSIX shell.
pub(super) fn hello(nonce: u32, seq: u32) -> String {
    format!("echo SFS''_{nonce:08x}_$(({seq}))")
}

/// `s` as one single-quoted sh word.
pub(super) fn sh_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A directory as a sh word: `~/x` becomes `"$HOME"/'x'`.
pub(super) fn sh_dir(dir: &str) -> String {
    match dir.strip_prefix("~/") {
        Some(rest) => format!("\"$HOME\"/{}", sh_quote(rest)),
        None if dir == "~" => "\"$HOME\"".into(),
        None => sh_quote(dir),
    }
}

/// Saves the terminal's settings once (an interrupted run left the first
/// ones in `SFS_TTY`) and makes the terminal a clean 8-bit pipe: no echo, no
/// line editing, no signal or flow-control characters, no output processing.
pub(super) fn setup(ok: &str) -> String {
    format!(
        "[ -n \"$SFS_TTY\" ] || SFS_TTY=$(stty -g); \
         stty raw -echo -ixon -ixoff -iexten -isig -icanon -opost cs8 -parenb -istrip && {ok}\n"
    )
}

/// Lists the tools found (`busybox-NAME` when only busybox has it), then the
/// architecture.
pub(super) fn probe(begin: &str, end: &str) -> String {
    format!(
        "{begin}; for t in {}; do if command -v $t >/dev/null 2>&1; then printf '%s ' $t; \
         elif busybox $t --help >/dev/null 2>&1; then printf 'busybox-%s ' $t; fi; done; \
         echo; uname -m; {end}\n",
        TOOLS.join(" ")
    )
}

/// Picks the directory (`peer-dir=` or the default, falling back to
/// /tmp/sfs) and prints the checksum of a cached copy, if there is one.
pub(super) fn prepare(dir: Option<&str>, name: &str, sum: &str, begin: &str, end: &str) -> String {
    let mut s = String::new();
    match dir {
        Some(d) => {
            let _ = write!(s, "SFS_D={}; mkdir -p \"$SFS_D\"", sh_dir(d));
        }
        None => s.push_str(
            "SFS_D=\"${HOME:-/tmp}/.cache/sfs\"; mkdir -p \"$SFS_D\" 2>/dev/null || \
             { SFS_D=/tmp/sfs; mkdir -p \"$SFS_D\"; }",
        ),
    }
    let _ = writeln!(
        s,
        " && SFS_F=\"$SFS_D/{name}\" && {begin}; [ -x \"$SFS_F\" ] && {sum} < \"$SFS_F\"; {end}"
    );
    s
}

/// The file of chunk `index` (zero-padded, so `c.*` lists them in order).
fn chunk_file(index: usize) -> String {
    format!("\"$SFS_D\"/c.{index:05}")
}

/// Receives chunk `index` (`len` bytes) into its own file and prints its
/// checksum; the first chunk removes chunks left by an earlier run. A retry
/// overwrites the file, so a chunk is never counted twice.
pub(super) fn chunk(
    index: usize,
    reader: &Reader,
    len: usize,
    sum: &str,
    ready: &str,
    end: &str,
) -> String {
    let file = chunk_file(index);
    let clean = if index == 0 {
        "rm -f \"$SFS_D\"/c.* && "
    } else {
        ""
    };
    let read = match reader {
        Reader::Head(h) => format!("{h} -c {len}"),
        Reader::Dd(d) => format!("{d} bs=1 count={len} 2>/dev/null"),
    };
    format!("{clean}{ready}; {read} > {file}; {sum} < {file}; {end}\n")
}

/// Joins the chunks, unpacks them into `$SFS_D/n` and prints its checksum;
/// what the tools complain of (on the terminal) is part of the reply.
pub(super) fn assemble(gunzip: Option<&str>, sum: &str, begin: &str, end: &str) -> String {
    let unpack = match gunzip {
        Some(g) => format!("cat \"$SFS_D\"/c.* | {g} -dc > \"$SFS_D/n\""),
        None => "cat \"$SFS_D\"/c.* > \"$SFS_D/n\"".into(),
    };
    format!("{begin}; {unpack}; chmod 755 \"$SFS_D/n\"; {sum} < \"$SFS_D/n\"; {end}\n")
}

/// Puts the verified copy in place under its checksum's name.
pub(super) fn install(ok: &str) -> String {
    format!("mv -f \"$SFS_D/n\" \"$SFS_F\" && rm -f \"$SFS_D\"/c.* && {ok}\n")
}

/// Runs the far sfs on this very terminal; when it exits the terminal gets
/// its saved settings back and the shell is as it was. The marker comes first:
/// once it is printed the shell has taken the whole line, so the link's first
/// frames cannot land in its line editor (where a ^C in a frame would cancel it).
/// After the far sfs exits, the shell reports its status and the end of its
/// log between the `exited` markers: at once, that says why it did not start.
pub(super) fn run(mux_options: &str, address: &str, started: &str, exited: (&str, &str)) -> String {
    format!(
        "{started}; \"$SFS_F\" -v SERIAL-MUX:\"$(tty)\"{} {} 2>\"$SFS_D/sfs.log\"; SFS_X=$?; \
         stty \"$SFS_TTY\"; {}; echo \"exit $SFS_X\"; tail -n 3 \"$SFS_D/sfs.log\"; {}; \
         unset SFS_TTY SFS_D SFS_F SFS_X\n",
        sh_quote(mux_options),
        sh_quote(address),
        exited.0,
        exited.1
    )
}

/// `n` bytes to end a `head -c` that may still be reading, harmless to a
/// shell if none is: spaces with a line end every 512 bytes and at the end
/// (a line end alone would make the shell print a prompt per byte, far more
/// output than input).
pub(super) fn filler(n: usize) -> Vec<u8> {
    let mut v = vec![b' '; n];
    for i in (511..n).step_by(512) {
        v[i] = b'\n';
    }
    if let Some(last) = v.last_mut() {
        *last = b'\n';
    }
    v
}

/// After a stop part way: removes the partial upload and gives the terminal
/// its saved settings back (each only if that step was reached).
pub(super) fn restore(ok: &str) -> String {
    format!(
        "[ -n \"$SFS_D\" ] && rm -f \"$SFS_D\"/c.* \"$SFS_D/n\"; \
         [ -n \"$SFS_TTY\" ] && stty \"$SFS_TTY\"; unset SFS_TTY SFS_D SFS_F; {ok}\n"
    )
}

/// How the far side reads a fixed number of bytes from the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reader {
    /// `head -c N` (or `busybox head`).
    Head(String),
    /// `dd bs=1 count=N`, slower but everywhere.
    Dd(String),
}

/// Which checksum tool the far side has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SumKind {
    Sha256,
    Md5,
}

impl SumKind {
    /// Hex digest of `data`, as the tool prints it.
    pub(super) fn digest(self, data: &[u8]) -> String {
        use sha2::Digest as _;
        let bytes: Vec<u8> = match self {
            SumKind::Sha256 => sha2::Sha256::digest(data).to_vec(),
            SumKind::Md5 => md5::Md5::digest(data).to_vec(),
        };
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Hex digits in a digest.
    pub(super) fn hex_len(self) -> usize {
        match self {
            SumKind::Sha256 => 64,
            SumKind::Md5 => 32,
        }
    }
}

/// The first word of `text` that looks like a digest of `kind`.
pub(super) fn find_digest(text: &str, kind: SumKind) -> Option<&str> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == kind.hex_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(
            sh_quote("EXEC:\"sh -c 'x'\""),
            "'EXEC:\"sh -c '\\''x'\\''\"'"
        );
        assert_eq!(sh_dir("~/.sfs"), "\"$HOME\"/'.sfs'");
        assert_eq!(sh_dir("/opt/x y"), "'/opt/x y'");
    }

    #[test]
    fn digests_match_the_tools() {
        // printf abc | sha256sum ; printf abc | md5sum
        assert_eq!(
            SumKind::Sha256.digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            SumKind::Md5.digest(b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        let text = "x\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n";
        assert_eq!(
            find_digest(text, SumKind::Sha256),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(find_digest(text, SumKind::Md5), None);
    }
}
