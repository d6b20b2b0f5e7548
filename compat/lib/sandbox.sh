#!/bin/bash
# Runs inside fresh mount/net/uts namespaces (see run-all.sh): gives /etc,
# /usr and /var copy-on-write layers and /home, /run, /tmp fresh tmpfs, so
# everything below happens only here (the checkout stays visible wherever
# it is); brings up loopback; installs mailroom at its default paths with
# "make install"; then runs the command given.
set -euo pipefail
mount --make-rprivate /

# The checkout (run-all.sh starts here from its top) and cargo's own
# directories may lie under a directory replaced below by a fresh tmpfs: a
# clone in /tmp, a home under /home.  Each is opened now and bound back at
# its own path afterwards, so "make install" and the scenarios find them
# wherever they are (and write into the real ones, as they do elsewhere).
fresh="/tmp /home /run"
keep_paths=() keep_fds=()
for p in "$PWD" "${CARGO_HOME:-${HOME:-/root}/.cargo}" "${RUSTUP_HOME:-${HOME:-/root}/.rustup}" "${CARGO_TARGET_DIR:-}"; do
  [ -n "$p" ] && [ -d "$p" ] || continue
  p=$(realpath "$p")
  for f in $fresh; do
    case "$p/" in
      "$f"/*)
        exec {fd}<"$p"
        keep_paths+=("$p") keep_fds+=("$fd")
        ;;
    esac
  done
done
keep_visible() {
  local i
  for i in "${!keep_paths[@]}"; do
    case "${keep_paths[$i]}/" in
      "$1"/*)
        mkdir -p "${keep_paths[$i]}"
        # -c: the kernel, not mount(8), resolves the descriptor's link.
        mount -c --bind "/proc/self/fd/${keep_fds[$i]}" "${keep_paths[$i]}"
        ;;
    esac
  done
}

mount -t tmpfs tmpfs /tmp
W=$(mktemp -d /tmp/compat.XXXXXX)
keep_visible /tmp
for d in etc usr var; do
  mkdir -p "$W/$d.up" "$W/$d.work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/$d.up,workdir=$W/$d.work" "/$d"
done
mount -t tmpfs tmpfs /home
keep_visible /home
mount -t tmpfs tmpfs /run
keep_visible /run
for fd in "${keep_fds[@]}"; do exec {fd}<&-; done
mkdir -p /run/lock
hostname mx.example.test
echo mx.example.test > /etc/mailname
ip link set lo up
if ! make install PREFIX=/usr > "$W/install.log" 2>&1; then
  cat "$W/install.log" >&2
  exit 1
fi
export COMPAT_WORK="$W"
exec "$@"
