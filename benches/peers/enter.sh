#!/bin/bash
# make bench-peers: mailroom against the programs a VPS owner would
# install instead -- dma 0.13, Postfix 3.7 and Dovecot 2.3 from Debian 12 --
# measured on this machine in the same run (issue 20).
#
#   benches/peers/enter.sh [SECTION...] [--rounds N]     (as root)
#
# Sections: submission, drain, flush, pop3, smtpd (default: all); see
# benches/peers/run.py.  Nothing on the host changes.  This script:
#
#   1. makes a scratch directory on a disk-backed file system, the one
#      holding /var when it can (never a tmpfs: fsync must cost what it
#      costs on a real queue);
#   2. enters private mount, UTS and PID namespaces and lays copy-on-write
#      overlays over /etc, /usr and /var (their writable layers in the
#      scratch directory) and fresh tmpfs over /run and /tmp;
#   3. installs the peers with apt-get *inside* the overlays (host network,
#      no service started: policy-rc.d says no): postfix, dovecot-pop3d and openbsd-inetd (which starts mailroom's pop3d and SMTP server)
#      as packages; dma, which conflicts with Postfix as every Debian MTA
#      does, unpacked from its .deb beside it.  Postfix's sendmail is moved
#      to /usr/sbin/sendmail.postfix, dma stays /usr/sbin/dma;
#   4. installs mailroom at its default paths with "make install
#      PREFIX=/usr" from MAILROOM_CHECKOUT (default: the checkout holding
#      this script), so /usr/sbin/sendmail is mailroom's;
#   5. enters a private network namespace (only lo) and runs
#      benches/peers/run.py with the arguments given.
#
# The whole sandbox runs in a cgroup of its own (cgroup v2, no controller:
# only its CPU count, read by the sections).  Ending the PID namespace ends
# every daemon; the scratch directory and the cgroup are removed at the
# end.  The downloaded .debs (and package lists, when the
# host's were stale) are kept for the next run in BENCH_PEERS_CACHE
# (default: target/bench-peers of this checkout).
#
# Knobs (environment): MAILROOM_CHECKOUT, BENCH_PEERS_DIR (where the
# scratch directory goes), BENCH_PEERS_CACHE, BENCH_PEERS_TRACE (set: set -x),
# BENCH_PEERS_COMMAND (a shell command to run in the sandbox instead of
# run.py, e.g. "bash -i" to look around).
set -euo pipefail
[ -z "${BENCH_PEERS_TRACE:-}" ] || set -x

SELF=$(readlink -f "$0")
HERE=$(dirname "$SELF")
REPO=$(cd "$HERE/../.." && pwd -P)

case "${BENCH_PEERS_STAGE:-}" in
"")
  # ---- on the host.
  if [ "$(id -u)" != 0 ]; then
    echo "bench-peers: needs root (private namespaces, apt-get inside overlays); run 'sudo make bench-peers'" >&2
    exit 1
  fi
  CHECKOUT=$(cd "${MAILROOM_CHECKOUT:-$REPO}" && pwd -P)
  if [ ! -f "$CHECKOUT/Makefile" ] || [ ! -f "$CHECKOUT/Cargo.toml" ]; then
    echo "bench-peers: $CHECKOUT is not a mailroom checkout (MAILROOM_CHECKOUT)" >&2
    exit 1
  fi
  CACHE=${BENCH_PEERS_CACHE:-$REPO/target/bench-peers}
  mkdir -p "$CACHE"
  CACHE=$(cd "$CACHE" && pwd -P)
  # The scratch directory: an overlay's writable layer may not lie inside
  # its lower layer, so not under /var itself; the first directory on
  # /var's device that is no tmpfs, else the first that is no tmpfs.
  if [ -n "${BENCH_PEERS_DIR:-}" ]; then
    base=$BENCH_PEERS_DIR
  else
    base=
    for d in /tmp /root /srv /home /opt /; do
      [ -d "$d" ] && [ "$(stat -f -c %T "$d")" != tmpfs ] || continue
      if [ "$(stat -c %d "$d")" = "$(stat -c %d /var)" ]; then
        base=$d
        break
      fi
      [ -n "$base" ] || base=$d
    done
    [ -n "$base" ] || base=/tmp
  fi
  W=$(mktemp -d "$base/bench-peers.XXXXXX")
  trap 'rm -rf "$W"' EXIT
  # The scratch disk's device, for the sections' count of disk flushes
  # (inside, /var is an overlay with a device number of its own).
  export BENCH_PEERS_DEVICE
  BENCH_PEERS_DEVICE=$(stat -c '%Hd:%Ld' "$W")
  # A cgroup of its own (cgroup v2, a child of this shell's: no
  # controller, only its CPU count), so the CPU of every process in the
  # sandbox is counted, even of those whose parent ignores SIGCHLD and so
  # never collects their times (dma's delivery processes).  Removed at the
  # end; without it the sections count what /proc can still show.
  BENCH_PEERS_CGROUP=
  cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
  here_cg=$(sed -n 's/^0:://p' /proc/self/cgroup)
  if [ -n "$cg2" ] && [ -n "$here_cg" ] && mkdir "$cg2${here_cg%/}/bench-peers.$$" 2> /dev/null; then
    BENCH_PEERS_CGROUP=$cg2${here_cg%/}/bench-peers.$$
  fi
  trap 'rm -rf "$W"; [ -z "$BENCH_PEERS_CGROUP" ] || rmdir "$BENCH_PEERS_CGROUP"' EXIT
  export BENCH_PEERS_STAGE=setup BENCH_PEERS_SCRATCH=$W BENCH_PEERS_CHECKOUT=$CHECKOUT \
    BENCH_PEERS_CACHE=$CACHE BENCH_PEERS_REPO=$REPO BENCH_PEERS_CGROUP
  status=0
  (
    [ -z "$BENCH_PEERS_CGROUP" ] || echo "$BASHPID" > "$BENCH_PEERS_CGROUP/cgroup.procs"
    exec unshare --mount --uts --pid --fork --mount-proc -- bash "$SELF" "$@"
  ) || status=$?
  exit "$status"
  ;;

setup)
  # ---- private mount, UTS and PID namespaces (this shell is PID 1 and
  # reaps every daemon's orphans); still the host's network, for apt.
  W=$BENCH_PEERS_SCRATCH
  mount --make-rprivate /

  # Directories this needs that may lie under /tmp or /run, which get
  # fresh tmpfs below (a checkout in /tmp, cargo's own): opened now and
  # bound back at their own paths afterwards (as compat/lib/sandbox.sh).
  fresh="/tmp /run"
  keep_paths=() keep_fds=()
  for p in "$BENCH_PEERS_REPO" "$BENCH_PEERS_CHECKOUT" "$BENCH_PEERS_CACHE" \
    "${CARGO_HOME:-${HOME:-/root}/.cargo}" "${RUSTUP_HOME:-${HOME:-/root}/.rustup}" "${CARGO_TARGET_DIR:-}"; do
    [ -n "$p" ] && [ -d "$p" ] || continue
    p=$(realpath "$p")
    for f in $fresh; do
      case "$p/" in
        "$f"/*)
          exec {fd}< "$p"
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
          mount -c --bind "/proc/self/fd/${keep_fds[$i]}" "${keep_paths[$i]}"
          ;;
      esac
    done
  }

  fstype=$(stat -f -c %T "$W")
  for d in etc usr var; do
    mkdir -p "$W/$d.up" "$W/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/$d.up,workdir=$W/$d.work" "/$d"
  done
  mount -t tmpfs tmpfs /run
  keep_visible /run
  mount -t tmpfs tmpfs /tmp
  keep_visible /tmp
  for fd in "${keep_fds[@]}"; do exec {fd}<&-; done
  mkdir -p /run/lock /run/bench-peers
  L=/run/bench-peers
  hostname bench.example
  echo bench.example > /etc/mailname

  # ---- the peers, from Debian's archive, into the overlays only.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  debs=$BENCH_PEERS_CACHE/archives
  mkdir -p "$debs/partial"
  apt=(apt-get -y -q -o "Dir::Cache::Archives=$debs")
  # Package lists fetched by an earlier run, if newer than the host's.
  if [ -f "$BENCH_PEERS_CACHE/lists/fetched" ] \
    && [ "$BENCH_PEERS_CACHE/lists/fetched" -nt /var/lib/apt/lists ]; then
    cp -a "$BENCH_PEERS_CACHE/lists/." /var/lib/apt/lists/
  fi
  install_peers() {
    "${apt[@]}" install --no-install-recommends postfix dovecot-pop3d openbsd-inetd \
      && { ls "$debs"/dma_*.deb > /dev/null 2>&1 || (cd "$debs" && apt-get download -q dma); }
  }
  echo "bench-peers: installing postfix, dovecot-pop3d, openbsd-inetd and dma inside the overlays ($L/apt.log)"
  if ! install_peers > "$L/apt.log" 2>&1; then
    # The host's package lists may be stale or missing: fetch fresh ones
    # (into the overlay, like everything else here) and keep them for the
    # next run.
    { apt-get update -q && install_peers; } >> "$L/apt.log" 2>&1 || {
      cat "$L/apt.log" >&2
      exit 1
    }
    rm -rf "$BENCH_PEERS_CACHE/lists"
    mkdir -p "$BENCH_PEERS_CACHE/lists"
    cp -a /var/lib/apt/lists/. "$BENCH_PEERS_CACHE/lists/"
    rm -rf "$BENCH_PEERS_CACHE/lists/partial" "$BENCH_PEERS_CACHE/lists/lock"
    touch "$BENCH_PEERS_CACHE/lists/fetched"
  fi
  # Postfix's sendmail steps aside for mailroom's, under the name Postfix
  # itself is told to use (sendmail_path).
  mv /usr/sbin/sendmail /usr/sbin/sendmail.postfix
  # dma: its files as its package lays them out (modes included: dma
  # set-group-id mail, dma-mbox-create set-user-id root), without its
  # sendmail/mailq/newaliases links and without the package database.
  echo "bench-peers: peers installed ($SECONDS s)"
  deb=$(ls -t "$debs"/dma_*.deb | head -1)
  mkdir -p "$L/dma"
  dpkg-deb -x "$deb" "$L/dma"
  install -D -m 2755 -o root -g mail "$L/dma/usr/sbin/dma" /usr/sbin/dma
  install -D -m 4754 -o root -g mail "$L/dma/usr/lib/dma/dma-mbox-create" /usr/lib/dma/dma-mbox-create
  install -D -m 0644 "$L/dma/usr/share/dma/dma.conf" /etc/dma/dma.conf
  install -D -m 0640 -o root -g mail "$L/dma/etc/dma/auth.conf" /etc/dma/auth.conf
  install -d -m 2770 -o root -g mail /var/spool/dma
  dma_version=$(dpkg-deb -f "$deb" Version)

  # ---- mailroom at its default paths (a no-op build when the checkout's
  # release binaries are up to date).
  echo "bench-peers: make install PREFIX=/usr from $BENCH_PEERS_CHECKOUT ($L/install.log)"
  if ! make -C "$BENCH_PEERS_CHECKOUT" install PREFIX=/usr > "$L/install.log" 2>&1; then
    cat "$L/install.log" >&2
    exit 1
  fi
  echo "bench-peers: mailroom installed ($SECONDS s)"
  mailroom_version=$(git -C "$BENCH_PEERS_CHECKOUT" describe --always --dirty 2> /dev/null || echo "?")
  {
    echo "mailroom $mailroom_version ($BENCH_PEERS_CHECKOUT)"
    echo "dma $dma_version"
    echo "postfix $(dpkg-query -W -f '${Version}' postfix)"
    echo "dovecot $(dpkg-query -W -f '${Version}' dovecot-core)"
    echo "disk $fstype ($W)"
  } > "$L/versions"
  # ---- only lo from here on; bash stays PID 1 (the reaper), Python runs
  # the sections.
  export BENCH_PEERS_STAGE=measure
  exec unshare --net -- bash "$SELF" "$@"
  ;;

measure)
  ip link set lo up
  cd "$BENCH_PEERS_REPO"
  status=0
  if [ -n "${BENCH_PEERS_COMMAND:-}" ]; then
    bash -c "$BENCH_PEERS_COMMAND" || status=$?
  else
    /usr/bin/python3 "$HERE/run.py" "$@" || status=$?
  fi
  exit "$status"
  ;;

*)
  echo "bench-peers: unknown stage $BENCH_PEERS_STAGE" >&2
  exit 2
  ;;
esac
