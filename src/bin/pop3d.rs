//! NAME
//!     pop3d — the POP3 server, started by inetd or systemd per connection
//!
//! SYNOPSIS
//!     /usr/libexec/mailroom/pop3d [--tls] [-C config]
//!
//! DESCRIPTION
//!     Serves one POP3 session (RFC 1939) on descriptors 0 and 1, the socket
//!     inetd or a systemd socket unit with Accept=yes passes.  Port 110 offers
//!     STLS when the certificate exists (tls_cert and tls_key in
//!     mailroom.conf(5)); port 995 runs `pop3d --tls`, implicit TLS
//!     (`mailroom setup services` turns both on).  CAPA,
//!     TOP, UIDL, USER/PASS, AUTH PLAIN and LOGIN, APOP for virtual accounts
//!     with a clear-text secret, and the RFC 2449 response codes are
//!     supported.
//!
//!     Logins are a system user (bob), or an address (info@example.com, also
//!     written info%example.com or info/example.com) that logs into the
//!     mailbox delivery would put its mail in, or a virtual account of
//!     /etc/mail/passwd.  Root and accounts below pop3_first_uid are refused.
//!     Every failure gets the same reply after the same work, then a pause
//!     that doubles; pop3_max_auth_failures close the connection.
//!
//!     mbox sessions hold a lock so that a second session gets [IN-USE];
//!     delivery goes on meanwhile.  Nothing changes unless the client says
//!     QUIT; then the mailbox is compacted in place, keeping mail that arrived
//!     during the session.  Each login records its address for
//!     POP-before-SMTP (pop_before_smtp_window).
//!
//! OPTIONS
//!     --tls
//!         Implicit TLS from the first byte (port 995).
//!     -C config
//!         Read another configuration file.
//!
//! EXIT STATUS
//!     0 after any session; a sysexits(3) code for a bad command line or
//!     configuration (logged: pop3d never writes to descriptor 2, which may be
//!     the client's socket).
//!
//! FILES
//!     /var/mail/USER, ~/Maildir/
//!         The mailboxes, as delivery writes them.
//!     /var/mail/.USER.pop3-index
//!         A cache of an mbox's offsets and UIDLs; deleting it costs a rescan.
//!     /var/spool/mailroom/pop-before-smtp
//!         The addresses that logged in lately.
//!     /var/lib/mailroom/empty
//!         Where the network process is shut in.
//!
//! PRIVILEGES
//!     Started as root.  The dialogue before login runs as pop3_user (nobody)
//!     shut in an empty directory; a short-lived root child checks passwords;
//!     after login the session runs as the mailbox's owner.
//!
//! SEE ALSO
//!     mailroom.conf(5), mailroom-log(5), sendmail(8), inetd(8), systemd.socket(5)

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::pop3d::main(args));
}
