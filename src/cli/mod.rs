//! Command-line front ends that are more than argument parsing.
//!
//! * [`checkpassword`] — the login check for Dovecot (checkpassword
//!   interface), set-uid root.
//! * [`deliver`] — the local delivery agent's front end.
//! * [`panel`] — the web control panel's front end (CGI or its own
//!   TLS port).
//! * [`panel_helper`] — the panel's root side, set-uid root: one
//!   request, one answer.
//! * [`pop3d`] — the POP3 server's front end.
//! * [`qrun`] — the queue runner's front end.
//! * [`sendmail_args`] — sendmail's argv, parsed getopt-style.
//! * [`sendmail`] — the `sendmail`/`mailq`/`newaliases` command.
//! * [`submit`] — `sendmail -t`/`-bm`: argv and standard input into a
//!   request at the queue's door.

pub mod checkpassword;
pub mod deliver;
pub mod panel;
pub mod panel_helper;
pub mod pop3d;
pub mod qrun;
pub mod sendmail;
pub mod sendmail_args;
pub mod submit;
