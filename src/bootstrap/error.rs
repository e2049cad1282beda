//! Why a bootstrap failed, each reason with what the user can do about it.

use std::fmt;

/// Why the bootstrap failed, each with what the user can do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootError {
    /// The console shows a login prompt.
    LoginPrompt,
    /// Nothing that answered like a POSIX shell (with what was heard).
    Undrivable {
        /// The last text heard, sanitised.
        heard: String,
    },
    /// `stty` refused to make the terminal raw.
    SetupRefused,
    /// A needed tool is missing on the far side.
    MissingTool(&'static str),
    /// A step got no answer in time.
    NoReply(&'static str),
    /// A chunk kept arriving corrupt (with what the far side last said).
    Corrupt {
        /// The shell's last words, sanitised.
        said: String,
    },
    /// Every chunk arrived intact, but joining and unpacking them there did
    /// not give the binary back: the far side's tools or disk.
    UnpackFailed {
        /// What the shell printed while unpacking, sanitised.
        said: String,
    },
    /// The far sfs exited as soon as it started (its exit status and the
    /// end of its log, as the shell printed them).
    PeerExited {
        /// The shell's report, sanitised.
        said: String,
    },
    /// sfs was told to stop ([`Bootstrap::abort`]) before the far sfs ran.
    Stopped(ConsoleLeft),
}

/// How a stopped bootstrap left the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLeft {
    /// Nothing had been changed yet.
    Untouched,
    /// The shell confirmed: settings back, partial upload removed.
    Restored,
    /// The shell did not confirm the restore in time.
    Unconfirmed,
    /// The far sfs's command was already typed: it runs, and leaves after
    /// `dead-after` without a peer.
    PeerStarting,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::LoginPrompt => f.write_str(
                "the console shows a login prompt: log in on it (e.g. with screen or picocom), \
                 leave the shell at its prompt, close the terminal program and run sfs again \
                 (sfs never types a password)",
            ),
            BootError::Undrivable { heard } => write!(
                f,
                "no POSIX shell answered on the console (last heard: \"{heard}\"): leave a sh, \
                 bash or busybox sh at its prompt there (from csh or fish: type sh) and run sfs \
                 again"
            ),
            BootError::SetupRefused => f.write_str(
                "the far shell's stty refused 'raw -echo -ixon': cannot make the console a clean \
                 line; start sfs there by hand",
            ),
            BootError::MissingTool(t) => write!(
                f,
                "the far side has no {t}: install it (or busybox) there, or copy sfs there \
                 and start it by hand"
            ),
            BootError::NoReply(step) => write!(
                f,
                "the far shell stopped answering ({step}); run sfs again (an interrupted \
                 upload is resumed safely)"
            ),
            BootError::Corrupt { said } => write!(
                f,
                "a chunk of the upload kept arriving corrupt, down to 4 KiB chunks (the far \
                 side last said: \"{said}\"): the line loses bytes, or the far directory cannot \
                 take the file (peer-dir=); try a lower baud rate"
            ),
            BootError::UnpackFailed { said } => write!(
                f,
                "every chunk arrived intact, but joining and unpacking them on the far side \
                 gave a different file (it said: \"{said}\"): check that cat and gzip work \
                 there and that the far directory has room (peer-dir=)"
            ),
            BootError::PeerExited { said } => write!(
                f,
                "the far sfs exited as soon as it started ({said}); the console is a shell \
                 again; its whole log is sfs.log in the far directory"
            ),
            BootError::Stopped(left) => f.write_str(match left {
                ConsoleLeft::Untouched => "stopped before the console was changed",
                ConsoleLeft::Restored => {
                    "stopped; the console is a shell again with its settings, and the \
                     partial upload is removed"
                }
                ConsoleLeft::Unconfirmed => {
                    "stopped; the console did not confirm that its settings are back: \
                     type 'stty sane' there if it misbehaves"
                }
                ConsoleLeft::PeerStarting => {
                    "stopped while the far sfs was starting: it leaves after dead-after \
                     without a peer, and the console is a shell again"
                }
            }),
        }
    }
}

impl std::error::Error for BootError {}
