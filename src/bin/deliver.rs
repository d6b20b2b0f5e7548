//! NAME
//!     deliver — the local delivery agent
//!
//! SYNOPSIS
//!     /usr/libexec/mailroom/deliver [-f sender] [-T arrival] [-Q queue-id] [-q] [-C user:uid:gid] recipient ... < message
//!
//! DESCRIPTION
//!     Reads one message on standard input and delivers it to each recipient
//!     as the queue runner does: the virtusertable, then /etc/mail/aliases,
//!     then users and their ~/.forward; each final target is a mailbox
//!     (/var/mail/USER in mbox format, or ~/Maildir/), a folder chosen by the
//!     filter rules (mailroom-filter(5)), a |program or a /file.  Remote
//!     targets are reported, not sent.  Like mail.local, it is usable from a
//!     procmail-style setup or by hand.
//!
//!     mbox files are locked with fcntl(2) and a dotlock, as Debian's policy
//!     asks, so mutt, Dovecot and pop3d can read them meanwhile; a write that
//!     fails leaves the mbox exactly as it was.
//!
//! OPTIONS
//!     -f sender
//!         The envelope sender (Return-Path:).
//!     -T arrival
//!         When the message arrived (seconds since the epoch), for the From_
//!         line and quota timing.
//!     -Q queue-id
//!         The queue id to log the deliveries under.
//!     -q
//!         Print one result line per recipient (ok, defer or fail, the
//!         status code and the reason) instead of only exiting with the
//!         worst outcome.
//!     -C user:uid:gid
//!         The controlling user of the recipients that follow (a queue
//!         file's C record): programs and files they name run as that
//!         user, as for an :include: file's owner.
//!
//! EXIT STATUS
//!     0 delivered, 75 deferred (try again later), 67 user unknown, other
//!     sysexits(3) codes.
//!
//! PRIVILEGES
//!     Run as root, it forks a child per target that becomes the target's
//!     owner before touching any of its files.  Run as anyone else, it
//!     delivers as itself.
//!
//! SEE ALSO
//!     qrun(8), mailroom-filter(5), mailroom.conf(5), mailroom-log(5)

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::deliver::main(args));
}
