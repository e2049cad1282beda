# chroot.sh - the Debian build roots that scripts/release.sh and scripts/windows-e2e.sh work
# in: made once with debootstrap, entered with chroot and a clean environment, removed with
# care for the bind mounts. Sourced, not run; the sourcing script defines die and say, and
# MIRROR (the Debian archive).

# PATH inside a root.
ROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Binds the machine's /proc, /dev and /dev/pts into root $1 (once) and gives it this
# machine's resolv.conf.
root_mounts() {
  local root=$1 d
  for d in proc dev dev/pts; do
    mkdir -p "$root/$d"
    mountpoint -q "$root/$d" || mount --bind "/$d" "$root/$d"
  done
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

# root_exec ROOT [NAME=VALUE ...] COMMAND: runs `bash -c COMMAND` in ROOT with a clean
# environment (HOME=/root, PATH=$ROOT_PATH, LANG=C.UTF-8, then the NAME=VALUEs, which may
# override those). It replaces the calling shell, so that started with `&` the pid is the
# command's own (sfs.exe under Wine can be signalled); root_run returns instead.
root_exec() {
  local root=$1; shift
  root_mounts "$root"
  exec chroot "$root" env -i HOME=/root PATH="$ROOT_PATH" LANG=C.UTF-8 "${@:1:$#-1}" bash -c "${!#}"
}
root_run() { (root_exec "$@"); }

# root_ready ROOT STAMP WANT: whether ROOT was set up with WANT (what it holds, recorded in
# the file ROOT/STAMP by root_mark_ready; a changed list makes it not ready); binds the
# mounts when it was.
root_ready() {
  [ "$(cat "$1/$2" 2>/dev/null)" = "$3" ] && root_mounts "$1"
}
root_mark_ready() { echo "$3" >"$1/$2"; }

# root_bootstrap ROOT SUITE: makes ROOT a minimal Debian SUITE (debootstrap, installed with
# apt-get when missing) unless it has apt-get already, and gives it this machine's own CA
# certificates (a TLS-inspecting proxy's, if there is one, is needed inside too).
root_bootstrap() {
  local root=$1 suite=$2
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  if [ ! -x "$root/usr/bin/apt-get" ]; then
    say "debootstrap $suite into $root ..."
    mkdir -p "$root"
    debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$root.debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $root.debootstrap.log"
  fi
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
}

# root_install ROOT PACKAGES: installs Debian packages (a space-separated list) in ROOT and
# trusts the CA certificates root_bootstrap copied in.
root_install() {
  local root=$1 pkgs=$2
  say "installing $pkgs into the root ..."
  root_run "$root" "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends $pkgs >/dev/null && update-ca-certificates >/dev/null 2>&1"
}

# root_sync_crate ROOT SRC: copies the crate at SRC (without target/, .git and fuzz/) to
# ROOT/build/sfs; the root's own target dir there persists between builds. Everything else
# there goes first: a file the crate no longer has (src/bridge.rs once src/bridge/ replaced
# it) would otherwise stay and break the build.
root_sync_crate() {
  mkdir -p "$1/build/sfs"
  find "$1/build/sfs" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
  tar -C "$2" --exclude=./target --exclude=./.git --exclude=./fuzz -cf - . | tar -C "$1/build/sfs" -xf -
}

# root_remove ROOT: unmounts what root_mounts bound and deletes ROOT (and its debootstrap
# log); refuses to delete anything while something is still mounted under it.
root_remove() {
  local root=$1 d
  [ -d "$root" ] || return 0
  for d in dev/pts dev proc; do
    if mountpoint -q "$root/$d"; then umount "$root/$d" || umount -l "$root/$d"; fi
  done
  for d in dev/pts dev proc; do
    mountpoint -q "$root/$d" && die "$root/$d is still mounted; not deleting"
  done
  if grep -q " $root/" /proc/mounts; then die "something is still mounted under $root; not deleting"; fi
  rm -rf --one-file-system "$root" "$root.debootstrap.log"
  say "removed $root"
}
