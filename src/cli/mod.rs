//! Command-line front ends that are more than argument parsing.
//!
//! * [`sendmail_args`] — sendmail's argv, parsed getopt-style.
//! * [`sendmail`] — the `sendmail`/`mailq`/`newaliases` command.

pub mod sendmail;
pub mod sendmail_args;
