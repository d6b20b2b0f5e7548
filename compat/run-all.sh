#!/bin/bash
# The compat suite: the *installed* mailroom against real outside programs
# (PHP, real sendmail 8 as the judge, ...), run inside private mount,
# network and UTS namespaces so that mailroom is installed at its default
# paths (/usr/sbin/sendmail, /var/spool/mqueue, /etc/mail) without touching
# the host's mail setup.  Needs root.
#
#   compat/run-all.sh                 every scenario
#   compat/run-all.sh -k php          scenarios whose name matches "php"
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  if python3 -c 'import sys; sys.path.insert(0, "compat"); import mr; sys.exit(not mr.under_ci())'; then
    echo "compat: needs root for its private namespaces, and CI is set: failing (.ci/run runs as root)" >&2
    exit 1
  fi
  echo "compat: SKIPPED (needs root for its private namespaces; run 'sudo make test')"
  [ -z "${MAILROOM_SKIP_LOG:-}" ] || echo "compat (the whole suite): needs root" >> "$MAILROOM_SKIP_LOG"
  exit 0
fi
# Real sendmail 8, unpacked privately (needs the network once; .ci/run
# does it before the tests).
export SM_ORACLE=${SM_ORACLE:-/opt/sm-oracle}
if [ ! -x "$SM_ORACLE/bin/sendmail.real" ]; then
  echo "compat: building the sendmail 8 oracle in $SM_ORACLE"
  bash compat/oracle/setup.sh >/dev/null
fi
# Skipped scenarios are listed in MAILROOM_SKIP_LOG (make test's summary),
# written through a descriptor opened here: the file may be out of the
# sandbox's sight.
if [ -n "${MAILROOM_SKIP_LOG:-}" ]; then
  exec {skips}>>"$MAILROOM_SKIP_LOG"
  export MAILROOM_SKIP_FD=$skips
fi
exec unshare --mount --net --uts --fork -- \
  bash compat/lib/sandbox.sh /usr/bin/python3 compat/lib/run.py "$@"
