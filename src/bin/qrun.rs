//! NAME
//!     qrun — the queue runner
//!
//! SYNOPSIS
//!     qrun [-q | -q30m | -qf | -qI<id> | -qR<domain> | -qS<sender>] [-v] [--periodic]
//!
//! DESCRIPTION
//!     Delivers what is in /var/spool/mqueue: local recipients through the
//!     local delivery agent, remote ones by SMTP (mailertable, smarthost or
//!     MX), with retries, delay warnings and bounces.  Started detached by
//!     sendmail for each new message, by `sendmail -q` for everything, and
//!     by a timer or cron line with --periodic (which respects retry times).
//!
//! PRIVILEGES
//!     Installed set-uid root, executable only by group mqueue (that is, by
//!     the set-group-id sendmail and root).  Started that way it ignores
//!     its caller's environment and configuration overrides and becomes
//!     fully root; each local delivery then runs as its mailbox owner.
//!
//! EXIT STATUS
//!     0, or a sysexits code when the configuration cannot be read.

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(mailroom::cli::qrun::main(args));
}
