//! Changing the configuration safely: every change an admin makes (the
//! `mailroom` commands; a web panel the same way) is a [`Change`] — a set
//! of whole new file contents committed together, so that an interrupted
//! command (even `kill -9`) leaves either the old files or the new ones,
//! never a mix, and two changes at once never lose either.
//!
//! ## How a change is committed
//!
//! 1. `flock` on `/etc/mail/.mailroom.lock` (held for the whole change:
//!    changes are made one at a time; readers never take it).
//! 2. Each new file is written beside its target as `.NAME.mailroom-new`,
//!    with the target's owner and mode, and `fsync`ed.
//! 3. The journal `/etc/mail/.mailroom-journal` is written, `fsync`ed, and
//!    the directory `fsync`ed: from this instant the change is decided.
//!    One line a target, its absolute path; a line `-PATH` is a file the
//!    change removes.
//! 4. Each new file is renamed over its target (each removed file goes);
//!    the directories are `fsync`ed; compiled indexes (`NAME.mrdb`,
//!    [`crate::table::index`]) are rebuilt the same way; the journal is
//!    removed.
//!
//! A crash before step 3 leaves the old files (the stray `.mailroom-new`
//! files are removed by the next change); a crash after it is rolled
//! forward by [`recover`], which every change and every process that may
//! rebuild indexes (delivery, the queue runner: [`recover_if_idle`]) runs
//! first.
//!
//! While a change is being staged, readers can see the files as it will
//! leave them: a [`Change`] is a [`Staging`] for
//! [`crate::table::Source::Text`].
//!
//! Files are edited as text, line by line, by the editors of their formats
//! ([`crate::table::makemap`], [`crate::table::class`],
//! [`crate::aliases`]): comments, blank lines and the order of untouched
//! lines stay as the admin wrote them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::exit::{ExitCode, Failure, io_reason};
use crate::table::source::Staging;
use crate::table::syntax_of;

const LOCK: &str = ".mailroom.lock";
const JOURNAL: &str = ".mailroom-journal";
/// The journal's mark for a file the change removes (targets are
/// absolute paths, so it cannot start one).
const REMOVE: &str = "-";

/// The temporary name of `path`'s next content.
fn staged(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.mailroom-new"))
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a change reports when it cannot `what` (read, write, ...) the
/// file `path`.
pub fn failure(what: &str, path: &Path, e: &io::Error) -> Failure {
    let code = match e.kind() {
        io::ErrorKind::PermissionDenied => ExitCode::NoPerm,
        _ => ExitCode::CantCreat,
    };
    Failure::new(
        code,
        format!("cannot {what} {}: {}", path.display(), io_reason(e)),
    )
    .hint(if code == ExitCode::NoPerm {
        "run mailroom as root"
    } else {
        "nothing was changed; fix the problem and run the command again"
    })
}

/// Finish a change a crash interrupted after it was decided (see the
/// module text).  Cheap when there is nothing to do: one `stat`.
pub fn recover(cfg: &Config) -> io::Result<()> {
    let dir = cfg.paths.etc_mail("");
    let journal = dir.join(JOURNAL);
    let text = match fs::read_to_string(&journal) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let targets: Vec<PathBuf> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(REMOVE))
        .map(PathBuf::from)
        .collect();
    let removed: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.strip_prefix(REMOVE))
        .map(PathBuf::from)
        .collect();
    for t in &targets {
        let s = staged(t);
        if s.exists() {
            fs::rename(&s, t)?;
        }
    }
    for t in &removed {
        match fs::remove_file(t) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let all: Vec<PathBuf> = targets.iter().chain(&removed).cloned().collect();
    for d in parent_dirs(&dir, &all) {
        fsync_dir(&d)?;
    }
    for t in &targets {
        if let Some(syntax) = syntax_of(t) {
            crate::table::build(t, syntax)?;
        }
    }
    fs::remove_file(&journal)?;
    fsync_dir(&dir)
}

/// For readers that may write `/etc/mail` (delivery, the queue runner):
/// finish an interrupted change if there is one and no admin command is
/// at work (it would finish it itself).
pub fn recover_if_idle(cfg: &Config) {
    let dir = cfg.paths.etc_mail("");
    if !dir.join(JOURNAL).exists() {
        return;
    }
    let Ok(lock) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(LOCK))
    else {
        return;
    };
    // SAFETY: flock on a valid descriptor; released when `lock` closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        let _ = recover(cfg);
    }
}

/// One change in the making.
pub struct Change {
    dir: PathBuf,
    _lock: File,
    /// Target → new content, in the order first set.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Files the change removes.
    removed: Vec<PathBuf>,
}

impl Change {
    /// Take the admin lock (waiting for another admin command to finish)
    /// and finish any interrupted change.
    pub fn begin(cfg: &Config) -> Result<Change, Failure> {
        let dir = cfg.paths.etc_mail("");
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(|e| failure("open", &lock_path, &e))?;
        // SAFETY: flock on a valid descriptor; released when `lock` closes.
        while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(failure("lock", &lock_path, &e));
            }
        }
        recover(cfg).map_err(|e| failure("finish the interrupted change in", &dir, &e))?;
        // Leftovers of a change that never got decided.
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.starts_with('.') && n.ends_with(".mailroom-new") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        // ... and beside the system's account files (`mailroom mailbox`).
        for f in ["/etc/passwd", "/etc/shadow"] {
            let _ = fs::remove_file(staged(&cfg.paths.resolve(f)));
        }
        Ok(Change {
            dir,
            _lock: lock,
            files: Vec::new(),
            removed: Vec::new(),
        })
    }

    /// The text of `path` as this change will leave it (pending content,
    /// else what is on disk; empty when missing).
    pub fn text(&self, path: &Path) -> Result<String, Failure> {
        if let Some((_, c)) = self.files.iter().find(|(p, _)| p == path) {
            return Ok(String::from_utf8_lossy(c).into_owned());
        }
        match fs::read(path) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(failure("read", path, &e)),
        }
    }

    /// Remove `path` (a file no index is built from).
    pub fn remove(&mut self, path: &Path) {
        self.files.retain(|(p, _)| p != path);
        if !self.removed.iter().any(|p| p == path) {
            self.removed.push(path.to_path_buf());
        }
    }

    /// Set `path`'s new content.
    pub fn set(&mut self, path: &Path, content: String) {
        self.removed.retain(|p| p != path);
        match self.files.iter_mut().find(|(p, _)| p == path) {
            Some(entry) => entry.1 = content.into_bytes(),
            None => self.files.push((path.to_path_buf(), content.into_bytes())),
        }
    }

    /// Whether anything would change.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.removed.is_empty()
    }

    /// Commit every file at once (see the module text).
    pub fn commit(mut self) -> Result<(), Failure> {
        // Unchanged files are left alone (their mtime, their index).
        self.files
            .retain(|(p, c)| fs::read(p).map(|old| old != *c).unwrap_or(true));
        self.removed.retain(|p| p.symlink_metadata().is_ok());
        if self.files.is_empty() && self.removed.is_empty() {
            return Ok(());
        }
        for (path, content) in &self.files {
            let tmp = staged(path);
            let old = fs::metadata(path).ok();
            let mode = old
                .as_ref()
                .map_or(default_mode(path), |m| m.mode() & 0o7777);
            let _ = fs::remove_file(&tmp);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(|e| failure("write", &tmp, &e))?;
            if let Some(m) = &old {
                let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
                // fchown may clear set-id bits; the mode is set again.
                let _ = f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode));
            }
            f.write_all(content)
                .and_then(|()| f.sync_all())
                .map_err(|e| failure("write", &tmp, &e))?;
        }
        let journal = self.dir.join(JOURNAL);
        let mut list: String = self
            .files
            .iter()
            .map(|(p, _)| format!("{}\n", p.display()))
            .collect();
        for p in &self.removed {
            list.push_str(&format!("{REMOVE}{}\n", p.display()));
        }
        {
            let tmp = self.dir.join(format!("{JOURNAL}.tmp"));
            let mut f = File::create(&tmp).map_err(|e| failure("write", &tmp, &e))?;
            f.write_all(list.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| failure("write", &tmp, &e))?;
            fs::rename(&tmp, &journal).map_err(|e| failure("write", &journal, &e))?;
            fsync_dir(&self.dir).map_err(|e| failure("sync", &self.dir, &e))?;
        }
        // Decided: from here a crash is rolled forward.
        for (path, _) in &self.files {
            fs::rename(staged(path), path).map_err(|e| failure("replace", path, &e))?;
        }
        for path in &self.removed {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(failure("remove", path, &e));
                }
                _ => {}
            }
        }
        // /etc/mail, and /etc when /etc/passwd or /etc/shadow changed: the
        // renames must be durable before the journal goes.
        let targets: Vec<PathBuf> = self
            .files
            .iter()
            .map(|(p, _)| p.clone())
            .chain(self.removed.iter().cloned())
            .collect();
        for d in parent_dirs(&self.dir, &targets) {
            fsync_dir(&d).map_err(|e| failure("sync", &d, &e))?;
        }
        for (path, _) in &self.files {
            if let Some(syntax) = syntax_of(path) {
                crate::table::build(path, syntax).map_err(|e| failure("index", path, &e))?;
            }
        }
        fs::remove_file(&journal).map_err(|e| failure("remove", &journal, &e))?;
        fsync_dir(&self.dir).map_err(|e| failure("sync", &self.dir, &e))
    }
}

/// `dir` and every other directory the targets live in.
fn parent_dirs(dir: &Path, targets: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for t in targets {
        if let Some(p) = t.parent()
            && !out.iter().any(|d| d == p)
        {
            out.push(p.to_path_buf());
        }
    }
    out
}

fn default_mode(path: &Path) -> u32 {
    match path.file_name().and_then(|n| n.to_str()) {
        Some("passwd" | "shadow") => 0o600,
        // Private keys (DKIM): root alone reads them.
        Some(n) if n.ends_with(".key") => 0o600,
        _ => 0o644,
    }
}

impl Staging for Change {
    fn staged(&self, path: &Path) -> Option<Option<&[u8]>> {
        if self.removed.iter().any(|p| p == path) {
            return Some(None);
        }
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| Some(c.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_removes_files_and_recovery_finishes_a_removal() {
        let root = std::env::temp_dir().join(format!("mailroom-edit-rm-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("etc/mail/autoreply")).unwrap();
        let cfg = Config::defaults(crate::config::Paths::under(&root));
        let a = root.join("etc/mail/autoreply/a@x");
        let b = root.join("etc/mail/autoreply/b@x");
        fs::write(&a, "Subject: a\n").unwrap();
        let mut c = Change::begin(&cfg).unwrap();
        c.remove(&a);
        c.set(&b, "Subject: b\n".into());
        c.commit().unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read_to_string(&b).unwrap(), "Subject: b\n");
        // A decided removal interrupted before the file went.
        fs::write(
            root.join("etc/mail").join(JOURNAL),
            format!("{REMOVE}{}\n", b.display()),
        )
        .unwrap();
        recover(&cfg).unwrap();
        assert!(!b.exists());
        assert!(!root.join("etc/mail").join(JOURNAL).exists());
        let _ = fs::remove_dir_all(&root);
    }

    // While staged, a change is what readers of its source see; the disk
    // is untouched until the commit.
    #[test]
    fn readers_see_what_a_change_stages() {
        use crate::table::{Source, Syntax};
        let root = std::env::temp_dir().join(format!("mailroom-change-src-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("etc/mail")).unwrap();
        let cfg = Config::defaults(crate::config::Paths::under(&root));
        let vut = cfg.paths.etc_mail("virtusertable");
        fs::write(&vut, "a@x.example old\n").unwrap();
        let gone = cfg.paths.etc_mail("access");
        fs::write(&gone, "x REJECT\n").unwrap();
        let mut c = Change::begin(&cfg).unwrap();
        c.set(&vut, "a@x.example new\n".into());
        c.remove(&gone);
        let s = Source::Text(&c);
        let t = s.table(&vut, Syntax::Makemap, false);
        assert_eq!(t.get("a@x.example").unwrap().value, "new");
        assert!(s.read(&gone).unwrap().is_none());
        assert_eq!(fs::read_to_string(&vut).unwrap(), "a@x.example old\n");
        drop(c);
        let _ = fs::remove_dir_all(&root);
    }
}
