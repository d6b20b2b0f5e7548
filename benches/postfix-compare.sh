#!/bin/bash
# Postfix's figures for benches/bench.rs, measured on this machine:
#
#   sudo bash benches/postfix-compare.sh          the "remote" section
#                                                 (issue 4; about 4 minutes)
#   sudo bash benches/postfix-compare.sh smtpd    the "smtp" section
#                                                 (issue 6; about 1 minute)
#
# remote: messages/s for Postfix's smtp client to flush 10,000 queued 2 KB
# messages to an SMTP sink on loopback, with 1 and with 50 destination
# domains; prints, e.g.
#   postfix smtp, 1 domain: N messages/s
#   postfix smtp, 50 domains: N messages/s
#
# smtpd: messages/s accepted by Postfix's smtpd on 127.0.0.1:25 from the
# smtp section's own clients (the bench binary in its client-only mode,
# MAILROOM_BENCH_SMTP_TARGET): 8 parallel clients, 2 KB messages to a
# local user, one message per connection and 10 per connection; prints the
# bench's lines for each of POSTFIX_COMPARE_RUNS runs.
#
# Nothing on the host changes: everything runs in private mount, UTS, PID
# and network namespaces, with copy-on-write overlays over /etc, /usr and
# /var (like compat/lib/sandbox.sh), so Postfix is installed with apt-get
# *inside* those overlays only (apt-get update there too if the package is
# not in the host's lists).  The overlays' writable layers live in a
# temporary directory that is removed at the end; ending the PID namespace
# ends every Postfix process and the sink.
#
# What "remote" measures, to match remote_flush() in benches/bench.rs:
#   - the same 2 KB message (message_2k()), one recipient each,
#     rcpt$i@dest$((i % D)).example, queued by 8 concurrent submitters with
#     Postfix's own sendmail(1) while delivery is held (header_checks HOLD);
#   - the sink is Postfix's smtp-sink ("smtp-sink -c :PORT 100": PIPELINING,
#     answers 250 to everything, counts DATA), not the bench's own Rust
#     sink, which lives inside bench.rs;
#   - routing by transport map, the counterpart of the bench's mailertable.
#     Postfix queues per next hop, so each domain gets its own next hop,
#     dest$d.example -> smtp:[127.0.0.$((d+1))]:PORT (the whole of 127/8 is
#     on lo; the sink listens on every address): one destination for 1
#     domain, 50 separate destinations (own concurrency window, own cached
#     connections) for 50 domains, as with 50 MXes;
#   - Postfix's defaults otherwise, except default_process_limit = 100 (so up
#     to 100 smtp processes), no DNS, no TLS, no local delivery, logging to
#     a file through postlogd (the bench's mailroom logs too);
#   - timed: from "postsuper -H ALL; postqueue -f" until the queue is empty
#     (polled every 20 ms); the rate is 10,000 / that time.  Postfix is
#     restarted before each case, so each starts from its slow-start window.
#
# What "smtpd" measures, to match smtp() in benches/bench.rs:
#   - the clients are the bench's own (same code, same message, same
#     timing): 8 threads, each connecting, waiting for the 220, EHLO, then
#     MAIL/RCPT/DATA pipelined, message_2k(), QUIT; 4 s per case after a
#     0.5 s warm-up;
#   - Postfix as Debian installs it: master starts smtpd on demand and
#     reuses each process for up to 100 connections; no postscreen, so no
#     greet pause (compare with mailroom's "smtp_greet_pause = 0" lines);
#     listening on 127.0.0.1:25 (inet_interfaces = loopback-only) in the
#     private network namespace;
#   - the recipient bob@bench.example is a local user, which smtpd checks
#     against passwd and aliases (its default local_recipient_maps);
#   - every message is put on hold by header_checks, so nothing is
#     delivered and only acceptance is measured (mailroom: delivery_mode =
#     queue); Postfix's cleanup fsyncs each queue file before smtpd answers
#     250, as mailroom does;
#   - after each run the hold queue is checked against what the clients
#     were told was accepted, then emptied; Postfix is restarted per run;
#   - the bench binary: POSTFIX_COMPARE_BENCH, or the newest
#     target/release/deps/bench-* (build it first with
#     "cargo bench --bench bench --no-run").
#
# Both modes: the queue (the overlay's upper layer) is on the file system
# holding POSTFIX_COMPARE_DIR (default /tmp; the bench's queue is in
# /var/tmp); the script prints which file system that is.
#
# Knobs (environment): POSTFIX_COMPARE_MESSAGES (10000),
# POSTFIX_COMPARE_DOMAINS ("1 50"), POSTFIX_COMPARE_DIR (/tmp),
# POSTFIX_COMPARE_PORT (2525), POSTFIX_COMPARE_RUNS (smtpd: 3),
# POSTFIX_COMPARE_BENCH (smtpd), POSTFIX_COMPARE_TRACE (set: trace with
# set -x).
set -euo pipefail
[ -z "${POSTFIX_COMPARE_TRACE:-}" ] || set -x

N=${POSTFIX_COMPARE_MESSAGES:-10000}
DOMAINS=${POSTFIX_COMPARE_DOMAINS:-"1 50"}
PORT=${POSTFIX_COMPARE_PORT:-2525}
RUNS=${POSTFIX_COMPARE_RUNS:-3}
export N DOMAINS PORT RUNS
SELF=$(readlink -f "$0")

case "${1:-}" in
"" | remote | smtpd)
  # ---- on the host: make the scratch directory and enter the namespaces.
  MODE=${1:-remote}
  if [ "$(id -u)" != 0 ]; then
    echo "postfix-compare: needs root (for its private namespaces)" >&2
    exit 1
  fi
  if [ "$MODE" = smtpd ]; then
    BENCH=${POSTFIX_COMPARE_BENCH:-}
    if [ -z "$BENCH" ]; then
      for f in $(ls -t "$(dirname "$SELF")"/../target/release/deps/bench-* 2> /dev/null); do
        case "$f" in *.d) continue ;; esac
        if [ -x "$f" ]; then
          BENCH=$(readlink -f "$f")
          break
        fi
      done
    fi
    if [ -z "$BENCH" ] || [ ! -x "$BENCH" ]; then
      echo "postfix-compare: no bench binary: run 'cargo bench --bench bench --no-run'" \
        "first (or set POSTFIX_COMPARE_BENCH)" >&2
      exit 1
    fi
    export BENCH
  fi
  W=$(mktemp -d "${POSTFIX_COMPARE_DIR:-/tmp}/postfix-compare.XXXXXX")
  trap 'rm -rf "$W"' EXIT
  unshare --mount --uts --pid --fork --mount-proc -- bash "$SELF" --setup "$W" "$MODE"
  exit
  ;;

--setup)
  # ---- private mount/UTS/PID namespaces, host network (for apt).
  W=$2
  MODE=$3
  fstype=$(stat -f -c %T "$W")
  mount --make-rprivate /
  for d in etc usr var; do
    mkdir -p "$W/$d.up" "$W/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$W/$d.up,workdir=$W/$d.work" "/$d"
  done
  if [ "$MODE" = smtpd ]; then
    # A private copy of the clients (into the /usr overlay), out of
    # reach of /tmp's fresh tmpfs and of rebuilds.
    export BENCH_FROM=$BENCH
    cp "$BENCH" /usr/local/bin/mailroom-bench
    BENCH=/usr/local/bin/mailroom-bench
  fi
  mount -t tmpfs tmpfs /run
  mkdir -p /run/lock
  mount -t tmpfs tmpfs /tmp
  hostname bench.example
  echo bench.example > /etc/mailname
  # Install Postfix into the overlays: no service start, no debconf setup
  # (this script writes main.cf itself).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends postfix > /run/apt.log 2>&1; then
    { apt-get update -q && apt-get install -y -q --no-install-recommends postfix; } >> /run/apt.log 2>&1 \
      || { cat /run/apt.log >&2; exit 1; }
  fi
  echo "postfix-compare: Postfix $(postconf -dh mail_version)" \
    "($(dpkg-query -W -f '${Version}' postfix)), queue on $fstype ($W), $(nproc) CPUs"
  # Continue in a private network namespace: only lo, nothing of the host's.
  exec unshare --net -- bash "$SELF" --measure "$MODE"
  ;;

--measure)
  MODE=$2
  ;;

*)
  echo "usage: $0 [remote | smtpd]" >&2
  exit 2
  ;;
esac

# ---- in all the namespaces: configure Postfix, then measure each case.
ip link set lo up
S=/run/pfc
mkdir -p "$S"
Q=/var/spool/postfix

if [ "$MODE" = smtpd ]; then
  # ---- smtpd: Postfix takes mail for a local user on 127.0.0.1:25 from
  # the bench's clients; every message is held (acceptance only).
  cat > /etc/postfix/main.cf <<EOF
compatibility_level = 3.6
myhostname = bench.example
mydomain = bench.example
myorigin = bench.example
mydestination = bench.example, localhost
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
maillog_file = /var/log/postfix.log
header_checks = regexp:/etc/postfix/hold
EOF
  postconf -F '*/*/chroot = n'
  postconf -M postlog/unix-dgram > /dev/null \
    || postconf -M 'postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd'
  echo '/^Subject:/ HOLD held for the benchmark' > /etc/postfix/hold
  echo 'postmaster: root' > /etc/aliases
  newaliases
  getent passwd bob > /dev/null || useradd -M -d /home/bob -s /bin/sh bob
  listening() { awk '$2 == "0100007F:0019" && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp; }
  echo "postfix-compare: smtpd on 127.0.0.1:25; clients: $BENCH_FROM"
  for ((run = 1; run <= RUNS; run++)); do
    rm -f /var/log/postfix.log
    postfix start > /dev/null 2>&1
    for _ in $(seq 100); do
      listening && break
      sleep 0.1
    done
    if ! listening; then
      echo "postfix-compare: smtpd does not listen on 127.0.0.1:25" >&2
      exit 1
    fi
    sleep 1
    echo "run $run of $RUNS:"
    MAILROOM_BENCH_SMTP_TARGET=127.0.0.1:25 MAILROOM_BENCH_SMTP_RCPT=bob@bench.example \
      "$BENCH" smtp | tee "$S/client.out"
    accepted=$(sed -n 's/^  accepted in all: \([0-9]*\).*/\1/p' "$S/client.out")
    sleep 0.5
    held=$(find "$Q/hold" -type f | wc -l)
    if [ "$held" != "${accepted:-}" ]; then
      echo "postfix-compare: warning: $held messages held; the clients were told ${accepted:-?}" >&2
      tail -5 /var/log/postfix.log >&2
    fi
    postfix stop > /dev/null 2>&1
    # Stopped: the queue files can simply go.
    find "$Q"/{maildrop,incoming,active,deferred,hold} -type f -delete
    sync
    sleep 1
  done
  exit 0
fi

cat > /etc/postfix/main.cf <<EOF
compatibility_level = 3.6
myhostname = bench.example
mydomain = bench.example
myorigin = bench.example
mydestination =
local_recipient_maps =
local_transport = error:no local delivery in this benchmark
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
default_process_limit = 100
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
biff = no
maillog_file = /var/log/postfix.log
transport_maps = hash:/etc/postfix/transport
header_checks = regexp:/etc/postfix/hold
EOF
# Debian's master.cf chroots most services; the chroot would need copies of
# /etc files and changes nothing here, so run every service unchrooted.
postconf -F '*/*/chroot = n'
postconf -M postlog/unix-dgram > /dev/null \
  || postconf -M 'postlog/unix-dgram = postlog unix-dgram n - n - 1 postlogd'
# While queueing, cleanup puts every message on hold.
echo '/^Subject:/ HOLD held for the benchmark' > /etc/postfix/hold

# message_2k() of benches/bench.rs: these headers, then Lorem lines, CRLF,
# cut at 2048 bytes.
{
  printf 'To: info@example.com\r\nSubject: Contact form\r\nFrom: web@example.com\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n'
  for _ in $(seq 30); do
    printf 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n'
  done
} > "$S/msg"
truncate -s 2048 "$S/msg"

queue_count() { find "$Q"/{maildrop,incoming,active,deferred,hold} -type f 2> /dev/null | wc -l; }
queue_empty() { [ -z "$(find "$Q"/{maildrop,incoming,active,deferred,hold} -type f -print -quit 2> /dev/null)" ]; }
now() { date +%s.%N; }

# The sink: every address of lo (so 127.0.0.x all reach it), backlog 100.
# (It must drop root: -u postfix.)
smtp-sink -u postfix -c ":$PORT" 100 > "$S/sink.out" 2>&1 &
SINK=$!
sleep 0.5
if ! kill -0 "$SINK" 2> /dev/null; then
  echo "postfix-compare: smtp-sink did not start:" >&2
  cat "$S/sink.out" >&2
  exit 1
fi

for D in $DOMAINS; do
  : > "$S/transport"
  for ((d = 0; d < D; d++)); do
    echo "dest$d.example smtp:[127.0.0.$((d + 1))]:$PORT" >> "$S/transport"
  done
  cp "$S/transport" /etc/postfix/transport
  postmap /etc/postfix/transport
  postconf -e 'header_checks = regexp:/etc/postfix/hold'
  rm -f /var/log/postfix.log
  postfix start > /dev/null 2>&1

  # Queue N messages, 8 submitters at a time (like fill_queue()).
  pids=()
  for ((w = 0; w < 8; w++)); do
    (
      for ((i = w; i < N; i += 8)); do
        /usr/sbin/sendmail -i -f bench@bench.example "rcpt$i@dest$((i % D)).example" < "$S/msg"
      done
    ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  for _ in $(seq 600); do
    [ "$(find "$Q/hold" -type f | wc -l)" -ge "$N" ] && break
    sleep 0.1
  done
  held=$(find "$Q/hold" -type f | wc -l)
  if [ "$held" != "$N" ]; then
    echo "postfix-compare: only $held of $N messages reached the hold queue" >&2
    tail -20 /var/log/postfix.log >&2
    exit 1
  fi
  # Stop holding new mail (none arrives), and restart so qmgr starts afresh.
  postconf -e 'header_checks ='
  postfix stop > /dev/null 2>&1
  sleep 1
  postfix start > /dev/null 2>&1
  sleep 1
  before=$(grep -ao '[0-9]*' "$S/sink.out" | tail -1 || true)

  # The measurement: release everything and flush until the queue is empty.
  t0=$(now)
  postsuper -H ALL > /dev/null 2>&1
  postqueue -f
  deadline=$(($(date +%s) + 900))
  until queue_empty; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "postfix-compare: queue not empty after 900 s ($(queue_count) left)" >&2
      exit 1
    fi
    sleep 0.02
  done
  t1=$(now)

  sleep 1
  sent=$(grep -c 'status=sent' /var/log/postfix.log || true)
  after=$(grep -ao '[0-9]*' "$S/sink.out" | tail -1 || true)
  got=$(( ${after:-0} - ${before:-0} ))
  procs=$(grep -o 'postfix/smtp\[[0-9]*\]' /var/log/postfix.log | sort -u | wc -l)
  secs=$(awk "BEGIN { print $t1 - $t0 }")
  rate=$(awk "BEGIN { print $N / $secs }")
  if [ "$D" = 1 ]; then what="1 domain"; else what="$D domains"; fi
  printf 'postfix smtp, %s: %.0f messages/s  (%.2f s; %s sent per the log, the sink counted %s; %s smtp process ids)\n' \
    "$what" "$rate" "$secs" "$sent" "$got" "$procs"
  [ "$sent" = "$N" ] || echo "postfix-compare: warning: $sent of $N logged as sent" >&2
  postfix stop > /dev/null 2>&1
  sleep 1
done
kill "$SINK" 2> /dev/null || true
