#!/bin/bash
# Runs inside fresh mount/net/uts namespaces (see run-all.sh): gives /etc,
# /usr and /var copy-on-write layers and /home, /run, /tmp fresh tmpfs, so
# everything below happens only here; brings up loopback; installs mailroom
# at its default paths with "make install"; then runs the command given.
set -euo pipefail
mount --make-rprivate /
mount -t tmpfs tmpfs /tmp
W=$(mktemp -d /tmp/compat.XXXXXX)
for d in etc usr var; do
  mkdir -p "$W/$d.up" "$W/$d.work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/$d.up,workdir=$W/$d.work" "/$d"
done
mount -t tmpfs tmpfs /home
mount -t tmpfs tmpfs /run
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
