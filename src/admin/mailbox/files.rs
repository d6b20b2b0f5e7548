//! The mailbox files: the empty mbox a new mailbox gets (owner the user,
//! group `mail`, 0660), and removing a mailbox's mail with it.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::plan::{Plan, PlanKind};
use crate::accounts::MailboxPath;
use crate::config::Config;
use crate::exit::io_reason;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Create the empty mbox `path` (owner `uid`, group `gid`, 0660), or take
/// over one that is already there.  True when created.
pub fn create_mbox(path: &Path, uid: u32, gid: u32) -> io::Result<bool> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o660)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let (f, created) = match created {
        Ok(f) => (f, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)?,
            false,
        ),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    // A hard link to another file would hand that file to the new owner.
    if !created && m.nlink() != 1 {
        return Err(io::Error::other(
            "it has other hard links; move it away and run the command again",
        ));
    }
    if is_root() {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    }
    if created || is_root() {
        f.set_permissions(fs::Permissions::from_mode(0o660))?;
    }
    Ok(created)
}

/// Create the mailbox of a committed plan; a line for the output.
pub fn create_mailbox(cfg: &Config, plan: &Plan, mail_gid: u32) -> Result<String, String> {
    let (path, uid, gid) = match &plan.kind {
        PlanKind::System { user, uid, .. } => (cfg.mail_spool.join(user), *uid, mail_gid),
        PlanKind::Virtual { mailbox, owner, .. } => {
            if let Some(dir) = mailbox.parent()
                && !dir.exists()
            {
                fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {}", dir.display(), io_reason(&e)))?;
                if is_root() {
                    let _ = std::os::unix::fs::chown(dir, Some(owner.0), Some(mail_gid));
                }
                // Set-group-id: what is made inside (Dovecot's folder
                // directory and indexes) is group mail like the mailbox,
                // which Dovecot insists on and vmail, not in group mail,
                // could not otherwise give it.
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o2770));
            }
            (mailbox.clone(), owner.0, mail_gid)
        }
    };
    match create_mbox(&path, uid, gid) {
        Ok(true) => Ok(format!("{}", path.display())),
        Ok(false) => Ok(format!(
            "{} (already there: kept, {} bytes)",
            path.display(),
            fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        )),
        Err(e) => Err(format!(
            "cannot create the mailbox {}: {}",
            path.display(),
            io_reason(&e)
        )),
    }
}

/// Remove a mailbox file or Maildir, if it lies where mailboxes live.
pub(super) fn remove_mailbox(cfg: &Config, mailbox: &MailboxPath) -> Option<String> {
    let (path, dir) = match mailbox {
        MailboxPath::Mbox(p) => (p, false),
        MailboxPath::Maildir(p) => (p, true),
    };
    if !(path.starts_with(&cfg.mail_spool) || path.starts_with(&cfg.virtual_mailbox_base)) {
        return Some(format!(
            "left {} (not under {} or {})",
            path.display(),
            cfg.mail_spool.display(),
            cfg.virtual_mailbox_base.display()
        ));
    }
    let r = if dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => {
            let lock = PathBuf::from(format!("{}.lock", path.display()));
            let _ = fs::remove_file(lock);
            Some(format!("removed {}", path.display()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(format!(
            "cannot remove {}: {}",
            path.display(),
            io_reason(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_creation() {
        let dir = std::env::temp_dir().join(format!("mailroom-mbox-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("u");
        let me = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        assert!(create_mbox(&p, me, gid).unwrap());
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o660);
        assert_eq!(m.len(), 0);
        fs::write(&p, "From x\n").unwrap();
        assert!(!create_mbox(&p, me, gid).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"From x\n");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("l")).unwrap();
        assert!(create_mbox(&dir.join("l"), me, gid).is_err());
        fs::write(dir.join("target"), "x").unwrap();
        fs::hard_link(dir.join("target"), dir.join("h")).unwrap();
        assert!(create_mbox(&dir.join("h"), me, gid).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
