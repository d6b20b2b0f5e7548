//! Appending safely: one writer puts one or more entries at the end of an
//! mbox under the mailbox locks, with one `fsync`.
//!
//! 1. `open(O_APPEND|O_NOFOLLOW)`, created `0660` if missing (group `mail`
//!    from the setgid spool); refuse anything but a regular file with one
//!    link owned by the mailbox owner.
//! 2. Lock ([`crate::mailbox::lock`]); check the path still names the file
//!    opened.
//! 3. Finish or undo what a killed writer left ([`recover`]), then note
//!    the size in the dotlock ([`Note::Append`]): should this writer be
//!    killed mid-append, whoever finds its dotlock stale cuts the file
//!    back to that size.  If the file does not end with an empty line (a
//!    foreign MUA), add the missing newlines first.
//! 4. Write.  On any failure, truncate back to the noted size, so the
//!    mailbox is exactly as it was.
//! 5. Unlock, then `fsync` (a new file's directory too) before reporting
//!    success.  Should the sync fail, what was written is withdrawn if
//!    nobody has appended since, and the delivery is reported as failed
//!    either way (at worst the retry duplicates it; it is never lost).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use super::recovery::recover;
use super::redelivery::holds_copy;
use super::{Append, separator_needed, write_entry};
use crate::mailbox::Failure;
use crate::mailbox::lock::{self, Kind, LockError, Note};

/// Where a batch goes, and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target<'a> {
    pub path: &'a Path,
    pub owner: Option<u32>,
    pub create_mode: u32,
    pub lock_timeout: Duration,
}

/// One message of a batch.
pub(super) enum Item<'a> {
    /// Rendered (`From ` line to the closing empty line), with its quota.
    Bytes(Vec<u8>, u64),
    /// Streamed from the message file while the locks are held.
    Stream(&'a Append<'a>),
}

/// Append `items` under one lock and one `fsync`; one result each.  A
/// write error undoes the whole batch (each message is retried); a
/// message over quota is refused alone.
pub(super) fn write_batch(t: &Target<'_>, items: Vec<Item<'_>>) -> Vec<Result<u64, Failure>> {
    let what = t.path.display().to_string();
    let n = items.len();
    let all = |f: Failure| vec![Err(f); n];
    let (file, created) = match open_mailbox_new(t.path, t.owner, t.create_mode) {
        Ok(x) => x,
        Err(f) => return all(f.with_what(&what)),
    };
    let (held, orig) = match lock_for_append(&file, t.path, t.lock_timeout, &what) {
        Ok(x) => x,
        Err(f) => return all(f),
    };
    let write_failed = |e: &io::Error| Failure::from_io(&format!("{what}: write failed"), e);
    let mut results = Vec::with_capacity(n);
    let mut end = orig;
    let written: io::Result<()> = (|| {
        // A new From_ line is only recognised after an empty line.
        let mut pad = separator_needed(&file, orig)?;
        let mut w = BufWriter::with_capacity(64 * 1024, &file);
        for item in &items {
            let (len, quota) = match item {
                Item::Bytes(b, q) => (b.len() as u64, *q),
                Item::Stream(a) => (
                    a.from_line.len() as u64 + a.prepend.len() as u64 + a.message.len() + 2,
                    a.quota,
                ),
            };
            let len = len + pad.len() as u64;
            if let Item::Stream(a) = item
                && let Some(copy) = &a.already
                && holds_copy(&file, orig, a)?
            {
                crate::log::notice(
                    None,
                    &format!(
                        "{what}: already holds {} from an interrupted attempt",
                        copy.id
                    ),
                );
                results.push(Ok(0));
                continue;
            }
            if quota > 0 && end + len > quota {
                results.push(Err(Failure::over_quota(end, len, quota)));
                continue;
            }
            w.write_all(pad)?;
            let mut this = pad.len() as u64;
            pad = b"";
            match item {
                Item::Bytes(b, _) => {
                    w.write_all(b)?;
                    this += b.len() as u64;
                }
                Item::Stream(a) => this += write_entry(&mut w, a)?,
            }
            end += this;
            results.push(Ok(this));
        }
        w.flush()
    })();
    if let Err(e) = written {
        // Leave the mailbox exactly as it was.
        let _ = file.set_len(orig);
        let _ = file.sync_all();
        return all(write_failed(&e));
    }
    drop(held);
    if end == orig {
        return results; // nothing written (all over quota)
    }
    let synced = file.sync_data().and_then(|()| match created {
        true => sync_parent(t.path),
        false => Ok(()),
    });
    if let Err(e) = synced {
        // Withdraw the batch if it is still the last thing in the file.
        if let Ok((_held, len)) = lock_for_append(&file, t.path, t.lock_timeout, &what)
            && len == end
        {
            let _ = file.set_len(orig);
            let _ = file.sync_all();
        }
        return all(write_failed(&e));
    }
    results
}

/// Take the mailbox locks and check the path still names the file opened;
/// returns the locks and the file's size.
fn lock_for_append(
    file: &File,
    path: &Path,
    timeout: Duration,
    what: &str,
) -> Result<(lock::Held, u64), Failure> {
    let held = match lock::lock(file, path, Kind::Write, timeout) {
        Ok(h) => h,
        Err(LockError::Busy) => {
            return Err(Failure::temp(
                "4.2.0",
                format!("{what}: mailbox is locked by another program; will retry"),
            ));
        }
        Err(LockError::Io(e)) => return Err(Failure::from_io(&format!("{what}: cannot lock"), &e)),
    };
    let opened = file.metadata().map_err(|e| Failure::from_io(what, &e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now)
            if now.ino() == opened.ino() && now.dev() == opened.dev() && opened.nlink() == 1 => {}
        _ => {
            return Err(Failure::temp(
                "4.2.0",
                format!("{what}: mailbox changed while it was being locked; will retry"),
            ));
        }
    }
    let len = match recover(file, path, &held) {
        Ok(Some(repair)) => {
            crate::log::notice(None, &format!("{what}: {repair}"));
            file.metadata()
                .map_err(|e| Failure::from_io(what, &e))?
                .len()
        }
        Ok(None) => opened.len(),
        Err(e) => return Err(Failure::from_io(&format!("{what}: cannot repair"), &e)),
    };
    held.note(Note::Append {
        start: len,
        dev: opened.dev(),
        ino: opened.ino(),
    })
    .map_err(|e| Failure::from_io(&format!("{what}: cannot lock"), &e))?;
    Ok((held, len))
}

/// `fsync` the directory holding `path`, so a new file's name is durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// Open (or create) a mailbox for appending, refusing symlinks, hard links,
/// non-regular files and files of the wrong owner.
pub fn open_mailbox(path: &Path, owner: Option<u32>, create_mode: u32) -> Result<File, Failure> {
    open_mailbox_new(path, owner, create_mode).map(|(f, _)| f)
}

/// [`open_mailbox`], also telling whether this call created the file.
fn open_mailbox_new(
    path: &Path,
    owner: Option<u32>,
    create_mode: u32,
) -> Result<(File, bool), Failure> {
    let mut created = false;
    let open = |create: bool| {
        let mut o = OpenOptions::new();
        o.read(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK);
        if create {
            o.create_new(true).mode(create_mode);
        }
        o.open(path)
    };
    let file = match open(false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
            Ok(f) => {
                // The mode asked for, whatever the umask.
                use std::os::unix::fs::PermissionsExt;
                let _ = f.set_permissions(std::fs::Permissions::from_mode(create_mode));
                created = true;
                f
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                open(false).map_err(|e| Failure::from_io("", &e))?
            }
            Err(e) => return Err(Failure::from_io("cannot create the mailbox", &e)),
        },
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Failure::perm(
                "5.2.0",
                "the mailbox is a symbolic link; refusing to deliver",
            ));
        }
        Err(e) => return Err(Failure::from_io("cannot open the mailbox", &e)),
    };
    let m = file.metadata().map_err(|e| Failure::from_io("", &e))?;
    if !m.is_file() {
        return Err(Failure::perm(
            "5.2.0",
            "the mailbox is not a regular file; refusing to deliver",
        ));
    }
    if m.nlink() != 1 {
        return Err(Failure::perm(
            "5.2.0",
            "the mailbox has more than one hard link; refusing to deliver",
        ));
    }
    if let Some(uid) = owner
        && m.uid() != uid
    {
        return Err(Failure::perm(
            "5.2.0",
            format!(
                "the mailbox belongs to uid {}, not to its user (uid {uid}); refusing to deliver",
                m.uid()
            ),
        ));
    }
    Ok((file, created))
}

impl Failure {
    fn with_what(mut self, what: &str) -> Failure {
        if !self.text.starts_with(what) {
            self.text = format!("{what}: {}", self.text);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn quota_refuses_and_leaves_the_file_alone() {
        let d = tmp("quota");
        let p = d.join("bob");
        append_to(&p, b"Subject: s\n\nbody\n", 200).unwrap();
        let before = std::fs::read(&p).unwrap();
        let e = append_to(&p, &[b'x'; 300], 200).unwrap_err();
        assert!(e.over_quota);
        assert_eq!(std::fs::read(&p).unwrap(), before);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlinks_and_hard_links_are_refused() {
        let d = tmp("links");
        std::fs::write(d.join("victim"), "").unwrap();
        std::os::unix::fs::symlink(d.join("victim"), d.join("sym")).unwrap();
        std::fs::hard_link(d.join("victim"), d.join("hard")).unwrap();
        assert!(
            append_to(&d.join("sym"), b"x\n", 0)
                .unwrap_err()
                .text
                .contains("symbolic link")
        );
        assert!(
            append_to(&d.join("hard"), b"x\n", 0)
                .unwrap_err()
                .text
                .contains("hard link")
        );
        assert_eq!(std::fs::read(d.join("victim")).unwrap(), b"");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
