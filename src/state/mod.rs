//! `/var/spool/mailroom`: the small state files of mailroom's programs —
//! what one run of a program leaves for the next, or for another program.
//! None of it is mail: losing all of it loses no message (POP-before-SMTP
//! permits end, LOGIN-DELAY forgets, an autoreply or a quota warning may be
//! sent once more).
//!
//! The directory is `root:root 0755`, made by `make install` (if it is
//! missing, pop3d makes it `0700`, the queue runner `0750`).  Every program finds it with [`dir`]; the
//! names below are the only files in it.  Each format is documented once,
//! in the module that owns it.
//!
//! | file | what | written by (as) | read by (as) | format | mode | after a crash |
//! |---|---|---|---|---|---|---|
//! | `smtp-connections` | connection slots per client address ([`crate::smtp::server::slots`]) | never written; opened (created if missing) by `sendmail -bs`'s root process, held open by its network process for the session | the same | empty file; one byte-range lock (`F_OFD_SETLK`) per connection | `root 0600` | nothing to clean: the locks vanish with the process |
//! | `pop-before-smtp` | POP-before-SMTP permits ([`stamps`]) | pop3d's root authority, after a password check | the SMTP server's root process, before it forks the dialogue | `ADDRESS UNIX-TIME` lines | `root 0600`, root's alone (see [`stamps`]) | the old file or the new one (rename); perhaps a `.pop-before-smtp.PID` temporary, never read |
//! | `pop3-logins` | last login per account, for `LOGIN-DELAY` ([`stamps`]; only with `pop3_login_delay`) | pop3d's root authority | the same | `LOGIN UNIX-TIME` lines | `root 0600` | as `pop-before-smtp` |
//! | `.lock` | serializes the updates of the two stamp files | pop3d's root authority (`flock`) | — | empty | `root 0600` | nothing: an `flock` ends with its process |
//! | `autoreply/` | per-sender memory of the autoresponder ([`crate::autoreply`]): `ADDRESS.db`, with `.ADDRESS.lock` and, during a rewrite, `.ADDRESS.db.tmp` | the queue runner (root), after a mailbox delivery that an autoreply rule answers | the same | `SENDER UNIX-TIME` lines, one file per rule address | directory `0750`, files `0640`, root's (qrun's umask) | the old `.db` or the new one (rename); a `.tmp` left is overwritten by the next rewrite |
//! | `limits/` | the outbound sending counters per user, login, client and sender domain ([`crate::limits::counters`]): `counters` | `sendmail` (set-group-id `mqueue`) at the queue's door, and the SMTP server's unprivileged process (group `mqueue`) | the same; `mailroom queue summary` (root) | fixed-size records, see [`crate::limits::counters`] | directory `root:mqueue 2770` (made by `make install`), file `0660` | a kill holds no lock past its death; a torn record starts anew with a log line |
//! | `quota-warnings/` | per mailbox with a quota, the fullness its owner was last warned about ([`crate::quota::state`]): one file per mailbox, `.lock` | delivery (the queue runner, `deliver`; root) after each mailbox copy | the same; the SMTP server's unprivileged process (group `mqueue`) reads the allowance for its RCPT check | `level`, `generation`, `allowance`, `pending` lines, see [`crate::quota::state`] | directory `root:mqueue 2750` (made by `make install`), files `0640` | the old file or the new one (rename); a `.tmp` left is overwritten; a warning queued but not recorded is sent once more |
//! | `panel/` | the web panel's sessions and login-failure counters ([`crate::admin::panel::session`], [`crate::admin::panel::login`]): `s-HASH` per session, `f-HASH` per login name, `.lock` | `panel-helper` (set-uid root) | the same | `KEY VALUE` lines; `FAILURES TIME`, see those modules | directory `root 0700`, files `0600` | the old file or the new one (rename); a `.tmp-PID` is swept at the next login; losing it all logs everyone out |
//! | `pacing` | per-destination-domain token buckets of the queue runner ([`crate::runner::pacing`]) | the queue runner (root) | the same | see [`crate::runner::pacing`] | `root 0600` | a bucket lost or torn starts full: at worst one burst goes at the default pace |
//!
//! In a private root (`MAILROOM_ROOT`, as in tests) everything is the
//! running user's.

pub mod stamps;

use std::path::PathBuf;

use crate::config::Config;

/// Where the state files live (under a private root, if any).
pub const DIR: &str = "/var/spool/mailroom";

/// The SMTP server's connection slots.
pub const SMTP_CONNECTIONS: &str = "smtp-connections";
/// pop3d's logins by client address, for POP-before-SMTP.
pub const POP_BEFORE_SMTP: &str = "pop-before-smtp";
/// pop3d's logins by account, for `LOGIN-DELAY`.
pub const POP3_LOGINS: &str = "pop3-logins";
/// The lock of the stamp files' updates.
pub const LOCK: &str = ".lock";
/// The autoresponder's per-sender memory (a directory).
pub const AUTOREPLY: &str = "autoreply";
/// The outbound limits' counters (a directory, group `mqueue`).
pub const LIMITS: &str = "limits";
/// What each mailbox's owner was last warned about (a directory).
pub const QUOTA_WARNINGS: &str = "quota-warnings";
/// The web panel's sessions and login-failure counters (a directory).
pub const PANEL: &str = "panel";
/// The queue runner's per-destination pacing.
pub const PACING: &str = "pacing";

/// Every name in the directory (the table above).
pub const INVENTORY: &[&str] = &[
    SMTP_CONNECTIONS,
    POP_BEFORE_SMTP,
    POP3_LOGINS,
    LOCK,
    AUTOREPLY,
    LIMITS,
    QUOTA_WARNINGS,
    PANEL,
    PACING,
];

/// The directory of the state files.
pub fn dir(cfg: &Config) -> PathBuf {
    cfg.paths.resolve(DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line of README's install table that describes the directory.
    fn readme_row() -> &'static str {
        include_str!("../../README.md")
            .lines()
            .find(|l| l.starts_with(&format!("| `{DIR}`")))
            .expect("README's install table has a row for the state directory")
    }

    #[test]
    fn every_file_is_in_the_inventory_and_in_readme() {
        let table: Vec<&str> = include_str!("mod.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let named: Vec<&str> = INVENTORY
            .iter()
            .map(|n| match *n {
                AUTOREPLY => "autoreply/",
                LIMITS => "limits/",
                QUOTA_WARNINGS => "quota-warnings/",
                PANEL => "panel/",
                n => n,
            })
            .collect();
        assert_eq!(table, named);
        let row = readme_row();
        for name in named {
            assert!(row.contains(&format!("`{name}`")), "README omits {name}");
        }
    }
}
