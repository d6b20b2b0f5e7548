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
  echo "compat: SKIPPED (needs root for its private namespaces)"
  exit 0
fi
# Real sendmail 8, unpacked privately (needs the network once; .ci/run
# does it before the tests).
export SM_ORACLE=${SM_ORACLE:-/opt/sm-oracle}
if [ ! -x "$SM_ORACLE/bin/sendmail.real" ]; then
  echo "compat: building the sendmail 8 oracle in $SM_ORACLE"
  bash compat/oracle/setup.sh >/dev/null
fi
exec unshare --mount --net --uts --fork -- \
  bash compat/lib/sandbox.sh /usr/bin/python3 -m unittest discover -s compat -p 'test_*.py' -v "$@"
