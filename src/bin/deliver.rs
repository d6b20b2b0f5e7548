//! NAME
//!     deliver — the local delivery agent
//!
//! SYNOPSIS
//!     deliver [-f sender] [-T arrival] [-Q queue-id] [-q] [-C user:uid:gid] recipient... < message
//!
//! DESCRIPTION
//!     Resolves each recipient (virtusertable, aliases, users, ~/.forward)
//!     and delivers to every final target: mbox (/var/mail/USER) or
//!     Maildir, |programs and /files, as their owners.  Remote targets are
//!     reported for the queue to send.  Like mail.local, run by the queue
//!     runner; usable by hand.
//!
//! PRIVILEGES
//!     Run as root, forks a child per target that becomes the target's
//!     user before touching any of its files.  Run as anyone else,
//!     delivers as itself.
//!
//! EXIT STATUS
//!     0 delivered, 75 deferred, 67 user unknown, other sysexits codes.

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::deliver::main(args));
}
