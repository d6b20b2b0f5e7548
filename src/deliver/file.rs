//! `/file` targets of aliases, `:include:` files and `.forward`: appended
//! in mbox format, as their controlling user, with the mbox locks;
//! `/dev/null` discards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Request;
use super::as_user::{as_user, switches_users};
use crate::config::Config;
use crate::mailbox::{Failure, mbox};
use crate::resolve::Owner;

/// Append to a `/file` named in an alias, include or `.forward`.
pub(super) fn to_file(
    cfg: &Config,
    path: &Path,
    owner: &Owner,
    sender: &str,
    prepend: &[u8],
    req: &Request<'_>,
) -> Result<(), Failure> {
    let msg = req.message;
    // "/dev/null" discards, as in sendmail and Postfix.
    if path == Path::new("/dev/null") {
        return Ok(());
    }
    let path: PathBuf = cfg.paths.resolve(path);
    let lock_timeout = Duration::from_secs(cfg.mailbox_lock_timeout);
    // localtime(3) before the fork (see as_user).
    let from = mbox::from_line(sender, crate::date::now());
    as_user(
        &req.child_keeps(),
        switches_users(cfg),
        (&owner.name, owner.uid, owner.gid),
        &[],
        Some(&path),
        |in_process| {
            mbox::append(
                &path,
                &mbox::Append {
                    from_line: &from,
                    prepend,
                    message: msg,
                    quota: 0,
                    lock_timeout,
                    owner: None,
                    create_mode: 0o600,
                    in_process_turn: in_process,
                    already: None,
                },
            )
            .map(|_| ())
        },
    )
}
