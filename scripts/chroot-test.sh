#!/usr/bin/env bash
# chroot-test.sh - checks scripts/chroot.sh without root, network or a real chroot: mount,
# umount, mountpoint, debootstrap and chroot are stand-ins that record what they were asked
# (chroot runs its command on this machine), and each function's effect is compared with
# what release.sh and windows-e2e.sh rely on. Run by .ci/run; exits non-zero on a mismatch.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/bin"
export STUB_LOG=$T/log STUB_MOUNTS=$T/mounts
: >"$STUB_LOG"
: >"$STUB_MOUNTS"
stub() { printf '#!/usr/bin/env bash\n%s\n' "$2" >"$T/bin/$1"; chmod +x "$T/bin/$1"; }
stub mount 'echo "mount $*" >>"$STUB_LOG"; echo "${!#}" >>"$STUB_MOUNTS"'
stub umount 'echo "umount $*" >>"$STUB_LOG"; grep -vxF "$1" "$STUB_MOUNTS" >"$STUB_MOUNTS.new" || true; mv "$STUB_MOUNTS.new" "$STUB_MOUNTS"'
stub mountpoint 'grep -qxF "${!#}" "$STUB_MOUNTS"'
stub debootstrap 'echo "debootstrap $*" >>"$STUB_LOG"; mkdir -p "$3/usr/bin" "$3/etc"; printf "#!/bin/sh\n" >"$3/usr/bin/apt-get"; chmod +x "$3/usr/bin/apt-get"'
stub chroot 'echo "chroot $1" >>"$STUB_LOG"; shift; exec "$@"'
PATH=$T/bin:$PATH

FAILED=0
expect() { # expect WHAT GOT WANT
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAILED: $1: got '$2', want '$3'" >&2; FAILED=1; fi
}
die() { echo "die: $*" >&2; exit 1; }
say() { :; }
MIRROR=http://mirror.invalid/debian
# shellcheck source=scripts/chroot.sh
. "$HERE/chroot.sh"

R=$T/root
root_bootstrap "$R" trixie
expect "debootstrap makes a minimal root" "$(grep debootstrap "$STUB_LOG")" \
  "debootstrap --variant=minbase trixie $R $MIRROR"
root_bootstrap "$R" trixie
expect "an existing root is kept" "$(grep -c debootstrap "$STUB_LOG")" 1

export OUTSIDE=leaked
got=$(root_run "$R" PATH="/opt/zig/bin:$ROOT_PATH" FOO=1 'echo "$HOME|$PATH|$LANG|$FOO|${OUTSIDE-unset}"')
expect "a clean environment, overridable" "$got" "/root|/opt/zig/bin:$ROOT_PATH|C.UTF-8|1|unset"
expect "proc, dev and dev/pts are bound once" "$(sort "$STUB_MOUNTS" | tr '\n' ' ')" "$R/dev $R/dev/pts $R/proc "
root_run "$R" true
expect "no second mount" "$(grep -c '^mount' "$STUB_LOG")" 3
expect "resolv.conf is copied in" "$([ -f "$R/etc/resolv.conf" ] || [ ! -f /etc/resolv.conf ] && echo yes)" yes
expect "root_run returns the command's status" "$(root_run "$R" 'exit 3' && echo 0 || echo $?)" 3

root_exec "$R" 'exec sleep 30' &
pid=$!
sleep 0.3
expect "in the background, the pid is the command's own" "$(ps -o comm= -p "$pid")" sleep
kill "$pid"; wait "$pid" 2>/dev/null || true

mkdir -p "$R/build/sfs/src" "$R/build/sfs/target/keep"
touch "$R/build/sfs/src/stale_module.rs"
root_sync_crate "$R" "$HERE/.."
expect "the crate is copied without target/ and .git" \
  "$([ -f "$R/build/sfs/Cargo.toml" ] && [ ! -e "$R/build/sfs/.git" ] && echo yes)" yes
expect "a file the crate no longer has is gone, the build cache stays" \
  "$([ ! -e "$R/build/sfs/src/stale_module.rs" ] && [ -d "$R/build/sfs/target/keep" ] && echo yes)" yes

root_remove "$R"
expect "everything is unmounted" "$(wc -l <"$STUB_MOUNTS")" 0
expect "the root is removed" "$([ -e "$R" ] && echo present || echo gone)" gone

[ "$FAILED" = 0 ] && echo "chroot-test: all passed"
exit "$FAILED"
