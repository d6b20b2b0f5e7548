//! NAME
//!     pop3d — the POP3 server, started by inetd per connection
//!
//! SYNOPSIS
//!     pop3d [--tls] [-C config]
//!
//! DESCRIPTION
//!     Serves one POP3 session on descriptors 0 and 1 (the socket inetd or
//!     a systemd socket unit with Accept=yes passes).  --tls: implicit TLS
//!     (port 995).  On port 110, STLS is offered when the certificate
//!     (tls_cert, tls_key in mailroom.conf) exists.  Mailboxes are the ones
//!     delivery writes: /var/mail/USER or ~/Maildir, and virtual accounts.
//!
//! PRIVILEGES
//!     Started as root.  The network dialogue before login runs as
//!     pop3_user (nobody) in an empty directory; after login the session
//!     runs as the mailbox's owner.  Nothing is written to descriptor 2.
//!
//! EXIT STATUS
//!     0 after any session; sysexits codes for a bad command line or
//!     configuration (logged to syslog).

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::pop3d::main(args));
}
