//! NAME
//!     qrun — the queue runner
//!
//! SYNOPSIS
//!     /usr/libexec/mailroom/qrun [-q | -q30m | -qf | -qI<id> | -qR<domain> | -qS<sender>] [-v] [--periodic]
//!
//! DESCRIPTION
//!     Delivers what is in /var/spool/mqueue: local recipients through the
//!     local delivery agent, deliver(8); remote ones by SMTP, routed at every
//!     attempt through /etc/mail/mailertable, else the smarthost, else the
//!     domain's MX records.  One SMTP transaction per destination carries all
//!     its recipients; each recipient gets its own outcome.
//!
//!     sendmail(8) starts qrun detached for each new message (-qI<id>);
//!     `sendmail -q` runs it over the whole queue.  The periodic run that
//!     retries deferred mail, sends delay warnings and bounces what has waited
//!     too long is `qrun -q --periodic`, started every five minutes by the
//!     systemd timer mailroom-qrun.timer or by /etc/cron.d/mailroom, both
//!     installed by `make install`.
//!
//!     Jobs are locked with flock(2), so any number of runners never deliver a
//!     message twice.  After each attempt the control file is rewritten with
//!     every recipient's status, in sendmail 8's format.  Retries back off
//!     from queue_retry_min to queue_retry_max; after queue_warn the sender
//!     gets one delay warning; after queue_return what is left is bounced in
//!     one RFC 3464 report.  A message whose delivery crashed the runner
//!     three times is set aside as QfID.
//!
//! OPTIONS
//!     -q
//!         One pass over the queue, ignoring retry times.
//!     --periodic
//!         Only messages whose retry time has come (what the timer and cron
//!         run).
//!     -q30m
//!         Keep running: one pass every interval (s, m, h, d).
//!     -qf
//!         In the foreground; with -v, say what happens to each recipient.
//!     -qI<id>, -qR<domain>, -qS<sender>
//!         Only messages whose queue id, a recipient's domain or the sender
//!         contains the text; `!` negates.
//!
//! EXIT STATUS
//!     0, or a sysexits(3) code when the configuration cannot be read.
//!
//! FILES
//!     /var/spool/mqueue
//!         The queue.
//!     /etc/mail/mailertable, /etc/mail/source-addresses, /etc/mail/dkim
//!         Routes, the outbound address of each sender domain, DKIM keys.
//!     /etc/cron.d/mailroom, mailroom-qrun.timer
//!         The periodic run.
//!
//! PRIVILEGES
//!     Installed set-user-id root, executable only by group mqueue (that is,
//!     by the set-group-id sendmail and root).  Started that way it ignores
//!     its caller's environment and configuration overrides and becomes fully
//!     root; each local delivery then runs in a child switched to the
//!     mailbox's owner.
//!
//! SEE ALSO
//!     sendmail(8), deliver(8), mailroom.conf(5), mailroom-log(5)

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::qrun::main(args));
}
