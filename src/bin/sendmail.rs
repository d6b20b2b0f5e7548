//! NAME
//!     sendmail, mailq, newaliases — submit mail, list the queue, build the aliases index
//!
//! SYNOPSIS
//!     sendmail [-t] [-i] [-f sender] [-F name] [-od{b|i|q}] [-N dsn] [-R ret] [-V envid] [flags] [--] [recipient ...]
//!     sendmail -bs
//!     sendmail -bv address ...
//!     sendmail -q[time] [-qI<id>] [-qR<domain>] [-qS<sender>] [-v]
//!     mailq [-v]
//!     newaliases
//!
//! DESCRIPTION
//!     mailroom's sendmail(8) reads a message on standard input and queues it
//!     in /var/spool/mqueue, in sendmail 8's own queue format, returning as
//!     soon as the message is safely on disk (written and fsync'ed); the queue
//!     runner, qrun(8), delivers it.  Every flag of sendmail 8 and of
//!     Postfix's sendmail is accepted: those that mean nothing here are
//!     ignored, an unknown one is `sendmail: illegal option -- X` (exit 64).
//!     Options may follow recipients; `--` ends them.
//!
//!     The same program is mailq (sendmail -bp) and newaliases (sendmail -bi),
//!     as the name it is called by says; with -bs it is the SMTP server that
//!     inetd or a systemd socket starts for each connection.
//!
//!     Without -i, a line holding a lone dot ends the message and a leading
//!     `..` loses one dot.  CRLF line ends are stored as LF; every other byte
//!     is kept.  Date:, From: and Message-Id: are added when missing, a
//!     Received: line always; Bcc: is removed before the message is queued.
//!
//! OPTIONS
//!     -t
//!         Read recipients from the To:, Cc: and Bcc: fields (or only from
//!         Resent-To:, Resent-Cc:, Resent-Bcc: when one is present), in
//!         addition to those on the command line.  An address given twice is
//!         queued once.
//!     -i, -oi
//!         A line with a lone dot does not end the message.
//!     -f sender, -r sender
//!         Set the envelope sender.  A user who is not trusted (root, daemon,
//!         uucp, those in /etc/mail/trusted-users or trusted_users) gets an
//!         X-Authentication-Warning: field naming the change.
//!     -F name
//!         The full name for a From: field that sendmail adds.
//!     -odb, -odi, -odq
//!         After queueing: start the queue runner for the message and return
//!         (b, the default), deliver before returning (i), or only queue (q);
//!         -O DeliveryMode= says the same.  The default is delivery_mode in
//!         mailroom.conf(5).
//!     -N never|success,failure,delay
//!         DSN NOTIFY for every recipient (RFC 3461).
//!     -R full|hdrs, -V envid
//!         DSN RET and ENVID.
//!     -B 7BIT|8BITMIME
//!         The body type.
//!     -bm
//!         Submit a message (the default).
//!     -bp
//!         List the queue in sendmail 8's layout (what mailq prints); -v adds
//!         each message's priority and the reasons in full.
//!     -bP
//!         Print the number of messages in the queue.
//!     -bi
//!         Compile /etc/mail/aliases, the virtusertable and the mailertable
//!         into their indexes (what newaliases does) and report problems;
//!         -oA file names another aliases file (as a user: that user's own).
//!     -bv
//!         Say for each address where mail for it would go, in sendmail's
//!         words; `mailroom explain` shows every step.
//!     -bs
//!         Speak SMTP on standard input and output.  On a pipe (a local
//!         program such as PHP's Symfony Mailer) the client is trusted as with
//!         -t.  On a TCP socket (inetd, systemd Accept=yes) the role comes from
//!         the local port: 25 takes mail for this host's domains and refuses
//!         to relay, 587 (smtp_submission_ports) requires AUTH first;
//!         `--tls` (port 465) speaks implicit TLS in the submission role
//!         (RFC 8314); `mailroom setup services` turns the three ports on.
//!         The server starts as root, loads what it needs and talks to the
//!         network as smtp_user.
//!     -q[time]
//!         Run the queue now (every message, ignoring retry times), in the
//!         background; with a time such as -q30m, keep running one pass every
//!         interval.  -qf runs in the foreground; -qI<id>, -qR<domain>,
//!         -qS<sender> run only matching messages (! negates).
//!     -v
//!         Verbose: with -qf, say what happens to each recipient.
//!     -C file
//!         Read another configuration file.  Only root may redirect sendmail:
//!         from another user -C, -oQ, -O QueueDirectory= and MAILROOM_ROOT
//!         are ignored with a warning, and the message still goes to the real
//!         queue.
//!     -bd, -bt, -bh, -bH, -bC
//!         Not provided (there is no daemon, `mailroom explain` replaces -bt):
//!         exit 69 with a pointer to what to use instead.
//!
//! EXIT STATUS
//!     Codes of sysexits(3), as sendmail 8: 0 the message is queued, 64 bad
//!     usage or address, 65 message too large, 66 an input file cannot be
//!     opened, 67 no such user, 69 a mode not provided, 70 newaliases found
//!     errors, 73 queue files cannot be created, 75 try again later (disk full
//!     or read-only, less than min_free_space free), 77 permission denied, 78
//!     a bad value in mailroom.conf.  Every error is one line on standard
//!     error: `sendmail: what failed: why; what to do`.
//!
//! FILES
//!     /var/spool/mqueue
//!         The queue (root:mqueue 2770): qf (control) and df (data) files.
//!     /etc/mail/aliases, /etc/mail/virtusertable, /etc/mail/local-host-names
//!         Where mail goes, as sendmail 8 reads them; also mailertable,
//!         access, virtuser-domains, trusted-users.
//!     /etc/mail/mailroom.conf
//!         mailroom's own settings, all optional.
//!
//! PRIVILEGES
//!     Installed set-group-id mqueue, the only group that may write the
//!     queue; the environment is replaced before anything is read.
//!
//! SEE ALSO
//!     qrun(8), deliver(8), pop3d(8), mailroom(8), mailroom.conf(5), mailroom-log(5), aliases(5)

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::sendmail::run(argv));
}
