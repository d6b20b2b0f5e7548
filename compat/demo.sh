#!/bin/bash
# make demo: install mailroom into a throwaway private root and run as much
# of the stack as exists, end to end, printing what happens.  Works as any
# user; touches nothing outside the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
D=$(mktemp -d "${TMPDIR:-/tmp}/mailroom-demo.XXXXXX")
trap 'rm -rf "$D"' EXIT
export MAILROOM_ROOT="$D"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "install into $D (make install DESTDIR=...)"
make -s install DESTDIR="$D" >/dev/null
cat > "$D/etc/mail/mailroom.conf" <<EOF
hostname = demo.example.com
log = /var/log/mail.log
EOF
mkdir -p "$D/var/log"
find "$D" -path "$D/usr/*" \( -type f -o -type l \) | sed "s#^$D##" | sort

step "a PHP contact form: sendmail -t -i (CRLF line ends, as PHP 8 writes)"
printf 'To: info@example.com\r\nSubject: Contact form\r\nFrom: web@example.com\r\n\r\nHello from the website.\r\n.\r\nA lone dot above is kept with -i.\r\n' \
  | "$D/usr/sbin/sendmail" -t -i
echo "exit status: $?"

step "a cron job: sendmail -FCronDaemon -i -odi -oem -oi -t -f root"
printf 'To: root\nSubject: Cron <root@demo> backup\n\nbackup finished\n' \
  | "$D/usr/sbin/sendmail" -FCronDaemon -i -odi -oem -oi -t -f root
echo "exit status: $?"

step "mailq"
"$D/usr/bin/mailq"

step "the control file of the first message (sendmail 8's qf format)"
first=$(ls "$D/var/spool/mqueue" | grep '^qf' | head -1)
cat "$D/var/spool/mqueue/$first"

step "the log (sendmail's format)"
cat "$D/var/log/mail.log"

step "newaliases"
"$D/usr/bin/newaliases"
