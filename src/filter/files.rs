//! Where a mailbox's rules come from, in the order they run:
//!
//! 1. the built-in rules: the DMARC rule (mail the SMTP server
//!    quarantined goes to `spam_folder`), then the spam rule (thresholds
//!    and folder in mailroom.conf);
//! 2. `/etc/mail/filter` — the administrator's rules for every mailbox;
//! 3. `/etc/mail/filters/LOGIN` — the administrator's rules for one
//!    mailbox (LOGIN as in `/etc/mail/passwd` or the system user name): the
//!    place for virtual accounts and for system users without a home,
//!    such as those `mailroom mailbox add` creates;
//! 4. `~/.mailroom-filter` — the user's own rules (system users whose
//!    home exists), read with the user's privileges only.
//!
//! Files 2 and 3 must belong to root, file 4 to the user or root, and
//! none may be group- or world-writable; a file that fails this is
//! ignored with a log line.  A file that does not parse stops filtering
//! for the message: it goes to the inbox, and the error (`FILE:LINE:
//! what`) is logged — a broken rule never loses mail.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{MAX_FILE, ParseError, Rules};
use crate::accounts::Account;
use crate::config::Config;

/// What could be loaded for one mailbox.
pub enum Loaded {
    Rules(Vec<Rules>),
    /// A file did not parse: filter nothing.
    Broken(ParseError),
}

/// The rule files of `account`, the built-in rules first; unsafe files
/// are skipped and logged (with `qid`).
pub fn load(cfg: &Config, account: &Account, qid: Option<&str>) -> Loaded {
    let mut sets = vec![
        super::quarantine_rule(&cfg.spam_folder),
        super::spam_rules(
            cfg.spam_folder_score,
            cfg.spam_discard_score,
            &cfg.spam_folder,
        ),
    ];
    let mut files: Vec<(PathBuf, u32, u32)> = vec![(cfg.paths.etc_mail("filter"), 0, 0)];
    let login = account.login.to_ascii_lowercase();
    if !login.is_empty() && !login.contains('/') && !login.starts_with('.') {
        files.push((cfg.paths.etc_mail("filters").join(&login), 0, 0));
    }
    if !account.is_virtual {
        let home = cfg.paths.resolve(&account.owner.home);
        if home.is_dir() {
            files.push((
                home.join(".mailroom-filter"),
                account.owner.uid,
                account.owner.gid,
            ));
        }
    }
    for (path, uid, gid) in files {
        match read(&path, uid, gid) {
            Ok(None) => {}
            Ok(Some(text)) => match super::parse(&path.display().to_string(), &text) {
                Ok(rules) => sets.push(rules),
                Err(e) => return Loaded::Broken(e),
            },
            Err(why) => {
                crate::log::warning(qid, &format!("filter: {}: ignored ({why})", path.display()))
            }
        }
    }
    Loaded::Rules(sets)
}

/// A rule file's text, read as `uid`/`gid` ([`crate::privs::read_file_as`]);
/// `None` when there is none; `Err` when it must be ignored.
fn read(path: &Path, uid: u32, gid: u32) -> Result<Option<String>, String> {
    // Most users have no rule file: a stat saves the reading child.  (What
    // the stat may tell root — that a name exists — is no secret.)
    if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    let (bytes, meta) = match crate::privs::read_file_as(path, uid, gid, MAX_FILE as usize + 1) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
        Err(e) => return Err(crate::exit::io_reason(&e)),
    };
    let me = nix::unistd::geteuid().as_raw();
    let owner_ok = meta.uid() == uid || meta.uid() == 0 || (me != 0 && meta.uid() == me);
    if !owner_ok {
        return Err(format!("owned by uid {}, not {uid} or root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err("group or world writable".to_string());
    }
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
