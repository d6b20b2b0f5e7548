//! NAME
//!     sendmail, mailq, newaliases — submit mail, list the queue, check the aliases
//!
//! SYNOPSIS
//!     sendmail [-t] [-i] [-f sender] [-F name] [-od{b,i,q}] [flags] [--] [recipient ...]
//!     mailq [-v]        (sendmail -bp)
//!     newaliases        (sendmail -bi)
//!
//! DESCRIPTION
//!     Reads a message on standard input and queues it in /var/spool/mqueue
//!     (sendmail 8's format), returning as soon as it is safely on disk; the
//!     queue runner delivers it.  Acts on the name it is called by.
//!
//! PRIVILEGES
//!     Installed set-group-id `mqueue`, the only group that may write the
//!     queue.  With -C, -oQ or MAILROOM_ROOT the privilege is dropped before
//!     anything is read; otherwise the environment is replaced.
//!
//! EXIT STATUS
//!     sysexits(3): 0 queued, 64 usage, 65 data, 67 no such user, 73 cannot
//!     create queue files, 75 try again later.  See src/exit.rs.

fn main() {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::sendmail::run(argv));
}
