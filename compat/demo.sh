#!/bin/bash
# make demo: install mailroom into a throwaway private root and run the
# stack end to end, printing what happens: submission the way PHP and cron
# do it, the queue as sendmail 8 writes it, the queue runner delivering
# through virtusertable and aliases into an mbox and a Maildir, a remote
# message deferred with its reason, a PHP framework speaking SMTP to
# sendmail -bs, POP3, the admin's view of the queue, and the web panel
# run as CGI.
# Works as any user; touches nothing outside the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "${1:-}" != --installed ]; then
  D=$(mktemp -d "${TMPDIR:-/tmp}/mailroom-demo.XXXXXX")
  trap 'rm -rf "$D"' EXIT
  step "install into $D (make install DESTDIR=...)"
  make -s install DESTDIR="$D" >/dev/null
  find "$D" -path "$D/usr/*" \( -type f -o -type l \) | sed "s#^$D##" | sort
  if [ "$(id -u)" = 0 ]; then
    # The stack refuses to serve root's mail over POP3 and would switch
    # users as root: run the demo as nobody, in its private root.
    chown -R 65534:65534 "$D"
    setpriv --reuid=65534 --regid=65534 --clear-groups bash "$0" --installed "$D"
    exit
  fi
  set -- --installed "$D"
fi
D=$2
export MAILROOM_ROOT="$D"

# A private root: mailroom reads $D/etc/passwd for its users and, not
# being root, delivers everything as the user running the demo.
uid=$(id -u)
gid=$(id -g)
cat > "$D/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/bin/sh
alice:x:$uid:$gid:Alice Admin:/home/alice:/bin/sh
bob:x:$uid:$gid:Bob Sales:/home/bob:/bin/sh
www-data:x:$uid:$gid:www-data:/var/www:/usr/sbin/nologin
PASSWD
# alice's POP3 password is "secret" (a SHA-512 crypt hash, as chpasswd writes).
echo 'alice:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1:19000:0:99999:7:::' > "$D/etc/shadow"
mkdir -p "$D/home/alice" "$D/home/bob/Maildir/new" "$D/home/bob/Maildir/cur" \
  "$D/home/bob/Maildir/tmp" "$D/var/log"
cat > "$D/etc/mail/mailroom.conf" <<CONF
hostname = demo.example.com
log = /var/log/mail.log
probe_interfaces = no
pop3_first_uid = 0
CONF
printf 'example.com\nshop.example\n' > "$D/etc/mail/local-host-names"
cat > "$D/etc/mail/aliases" <<ALIASES
postmaster: alice
root: alice
sales: alice, bob
ALIASES
cat > "$D/etc/mail/virtusertable" <<VIRT
info@example.com     bob
@shop.example        alice
VIRT
# Mail for anywhere else goes to a smarthost that is down right now.
echo ".  smtp:[127.0.0.1]:9" > "$D/etc/mail/mailertable"

step "the sendmail files: local-host-names, aliases, virtusertable, mailertable"
for f in local-host-names aliases virtusertable mailertable; do
  echo "--- /etc/mail/$f"; cat "$D/etc/mail/$f"
done

step "newaliases"
"$D/usr/bin/newaliases"

step "sendmail -bv: where would mail go?"
"$D/usr/sbin/sendmail" -bv info@example.com sales anything@shop.example customer@gmail.example || true

step "a PHP contact form: sendmail -t -i (CRLF line ends, as PHP 8 writes); -odq: queue only"
printf 'To: info@example.com\r\nSubject: Contact form\r\nFrom: web@example.com\r\n\r\nHello from the website.\r\n.\r\nA lone dot above is kept with -i.\r\n' \
  | "$D/usr/sbin/sendmail" -odq -t -i
echo "exit status: $?"

step "a quote for sales and a customer elsewhere, queued only"
printf 'Subject: quote #12\n\nPlease find the quote.\n' \
  | "$D/usr/sbin/sendmail" -odq -f sales@example.com sales customer@gmail.example
echo "exit status: $?"

step "mailq (sendmail 8's layout)"
"$D/usr/bin/mailq"

step "the control file of the first message (sendmail 8's qf format)"
first=$(ls "$D/var/spool/mqueue" | grep '^qf' | sort | head -1)
cat "$D/var/spool/mqueue/$first"

step "sendmail -qf -v: the queue runner delivers what it can"
"$D/usr/sbin/sendmail" -qf -v || true

step "bob's Maildir (info@example.com, sales) and alice's mbox (sales)"
find "$D/home/bob/Maildir" -type f | sed "s#^$D##"
echo "--- /var/mail/alice:"
cat "$D/var/mail/alice"

step "a cron job: sendmail -FCronDaemon -i -odi -oem -oi -t -f root (delivered before it returns)"
printf 'To: root\nSubject: Cron <root@demo> backup\n\nbackup finished\n' \
  | "$D/usr/sbin/sendmail" -FCronDaemon -i -odi -oem -oi -t -f root
echo "exit status: $?"
echo "messages in alice's mbox now: $(grep -c '^From ' "$D/var/mail/alice")"

step "Symfony Mailer's way: sendmail -bs, SMTP on a pipe (one unknown recipient is refused in the dialogue)"
printf 'EHLO shop.example.com\r\nMAIL FROM:<shop@example.com>\r\nRCPT TO:<info@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\nSubject: order 1042\r\n\r\nA new order.\r\n.\r\nQUIT\r\n' \
  | "$D/usr/sbin/sendmail" -bs -odi | tr -d '\r'
echo "files in bob's Maildir now: $(find "$D/home/bob/Maildir" -type f -path '*/new/*' | wc -l)"

step "the customer's copy waits for the smarthost: mailq, mailroom queue"
"$D/usr/bin/mailq"
"$D/usr/sbin/mailroom" queue list

step "alice fetches her mail over POP3 (pop3d on a pipe, the way inetd runs it on a socket)"
printf 'CAPA\r\nUSER alice@example.com\r\nPASS secret\r\nSTAT\r\nUIDL\r\nTOP 1 0\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n' \
  | "$D/usr/libexec/mailroom/pop3d" | tr -d '\r'
echo "messages in alice's mbox after QUIT: $(grep -c '^From ' "$D/var/mail/alice")"

step "the admin, as a control panel would: a new domain, a mailbox, an alias, a forward with a copy"
M="$D/usr/sbin/mailroom"
"$M" domain add shop.example
echo 'hunter22' | "$M" mailbox add info@shop.example --password-stdin
"$M" alias add orders@shop.example info@shop.example
"$M" forward set info@shop.example boss@mobile.example --keep-copy
"$M" mailbox list
"$M" explain orders@shop.example
"$M" check; echo "mailroom check: exit $?"
echo "--- /etc/mail/virtusertable now:"; cat "$D/etc/mail/virtusertable"

step "the domain's owner in the web panel (the panel run as CGI, the way Apache or nginx run it)"
# postmaster@shop.example is the domain's admin in the panel.  Each request
# is one run of the panel program; it asks the root helper for everything.
echo 'pm-secret-1' | "$M" mailbox add postmaster@shop.example --password-stdin >/dev/null
cgi() { # METHOD PATH COOKIES [FORM BODY]: the response's head and body
  local body=${4:-}
  env GATEWAY_INTERFACE=CGI/1.1 SERVER_PROTOCOL=HTTP/1.1 REQUEST_METHOD="$1" \
    SCRIPT_NAME=/mail PATH_INFO="$2" HTTP_COOKIE="$3" REMOTE_ADDR=127.0.0.1 \
    HTTP_HOST=demo.example.com HTTPS=on \
    CONTENT_TYPE=application/x-www-form-urlencoded CONTENT_LENGTH=${#body} \
    MAILROOM_PANEL_HELPER="$D/usr/libexec/mailroom/panel-helper" \
    "$D/usr/libexec/mailroom/panel" <<<"$body"
}
cookie() { sed -n "s/^Set-Cookie: \($1=[^;]*\).*/\1/p" | head -1; }
csrf() { grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//'; }
page=$(cgi GET / "")
pre=$(cookie __Host-mailroom-pre <<<"$page")
echo "GET /mail/: $(head -1 <<<"$page"), the login form, and a pre-login token cookie"
reply=$(cgi POST /login "$pre" "csrf=$(csrf <<<"$page")&name=postmaster%40shop.example&password=pm-secret-1")
session=$(cookie __Host-mailroom <<<"$reply")
echo "POST /mail/login: $(grep -E '^(Status|Location):' <<<"$reply" | tr '\n' ' ')(a new session cookie)"
page=$(cgi GET /d/shop.example "$session")
echo "GET /mail/d/shop.example: mailboxes shown: $(grep -o 'href="/mail/d/shop.example/m/[^"]*"' <<<"$page" | sed 's#.*/m/##; s/"$//' | sort -u | tr '\n' ' ')"
reply=$(cgi POST /do/mailbox.add "$session" "csrf=$(csrf <<<"$page")&seen=none&address=sales%40shop.example&password=sales-pw-22&quota=50M")
echo "POST /mail/do/mailbox.add sales@shop.example: $(grep -E '^(Status|Location):' <<<"$reply" | tr '\n' ' ')"
reply=$(cgi POST /do/mailbox.add "$session" "address=x%40shop.example&password=x")
echo "the same without the form's CSRF token: $(grep -E '^Status:' <<<"$reply")"
echo "--- mailroom mailbox list, after the panel's change:"
"$M" mailbox list

step "the log (sendmail's format)"
cat "$D/var/log/mail.log"
