//! Mailbox locking as Debian Policy §11.6 requires, so that mutt, Dovecot,
//! procmail, `deliver` and `pop3d` can share one mbox: an `fcntl(2)` lock
//! on the open file *and* a dotlock (`NAME.lock`, created with `O_EXCL`).
//!
//! Both are taken non-blocking, `fcntl` first; if either is busy,
//! whatever was obtained is released, and the attempt is repeated after a
//! short random pause until the timeout (then the caller defers: 4.2.0
//! "mailbox busy").  Where the dotlock cannot be created for lack of
//! permission (a reader without group `mail`), the fcntl lock alone is
//! used, as popa3d and Dovecot's `dotlock_try` do.
//!
//! The `fcntl` lock is an open-file-description lock (`F_OFD_SETLK`):
//! it conflicts with other programs' classic `fcntl` locks exactly as
//! theirs do with each other, but unlike a classic lock it belongs to the
//! open file, not the process, so two threads of one queue runner exclude
//! each other too, and one thread unlocking never drops another's lock.
//! Threads of one process also take turns at an mbox in memory
//! ([`super::mbox::turn`]) rather than by polling the file locks.
//! The kernel releases the `fcntl` lock when the file is closed or the
//! process dies; a dotlock left by a dead process is cleared by the stale
//! rule below.
//!
//! ## The dotlock file
//!
//! `NAME.lock` beside the mailbox, mode 0644, never empty:
//!
//! ```text
//! PID\n     the holder's process id in decimal (liblockfile's format)
//! NOTE\n    optional, ours only: what the holder is in the middle of
//! ```
//!
//! Other programs' dotlocks hold the pid line alone, or nothing; only the
//! first line is read to tell whether the holder lives.  A dotlock is
//! stale, and removed, when the process whose pid it holds is gone
//! (liblockfile's rule) or when its file has not changed for five minutes
//! (sendmail's rule, for lockers that write no pid; a live holder of ours
//! refreshes it during long work, [`Held::touch`]).  Whoever finds a
//! dotlock stale replaces it by its own in one step (a rename, carrying
//! the dead holder's note on), still under its `fcntl` lock, and learns
//! what the dead holder had noted ([`Held::broken_note`]): the [`Note`]s
//! say who writes which, and what the finder does with it.  A finder
//! that lets go before settling it puts the dead holder's words back; one
//! that may not create the dotlock waits while such a note is there
//! rather than ignore it.

use std::cell::Cell;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A dotlock older than this (by mtime) is stale.
pub const STALE_DOTLOCK: Duration = Duration::from_secs(300);

/// Read or write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

/// What one of our mbox writers is in the middle of, on the second line
/// of its dotlock, so that whoever finds the dotlock stale (the writer was
/// killed) can finish or undo it before touching the mailbox.  DEV and INO
/// name the mbox the note is about: a note about another file (the mbox
/// was replaced meanwhile) is ignored.  [`super::mbox::recovery`] acts on
/// the notes; every appender, and pop3d at login and at `QUIT`, call it
/// as soon as they hold the locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// `append START DEV INO`: written by every mbox appender
    /// ([`super::mbox::append`]) once it holds the locks and before its
    /// first byte; START is the file's size then.  A finder cuts the file
    /// back to START: what follows is a message nobody was told was
    /// delivered (its retry delivers it again).
    Append { start: u64, dev: u64, ino: u64 },
    /// `compact DEV INO`: written by POP3's `QUIT` compaction once its
    /// plan and progress are in the side file `.NAME.compact`, before
    /// anything moves ([`super::mbox::compaction`]).  A finder finishes the
    /// move from where the side file says it got to; no side file means it
    /// had finished.
    Compact { dev: u64, ino: u64 },
    /// `compact START LEN DEV INO`: the note of mailroom's compaction
    /// before it moved in place (until December 2026): the whole kept tail
    /// (LEN bytes) was in the side file, to be copied over the mbox at
    /// START.  Never written any more; still finished, so that a QUIT
    /// killed just before an upgrade loses nothing.
    CompactCopy {
        start: u64,
        len: u64,
        dev: u64,
        ino: u64,
    },
}

impl Note {
    /// The note in a dotlock's content (its second line), if it holds one
    /// of ours.
    pub fn from_dotlock(content: &str) -> Option<Note> {
        let mut words = content.lines().nth(1)?.split_whitespace();
        let kind = words.next()?;
        let numbers: Vec<u64> = words.map_while(|w| w.parse().ok()).collect();
        match (kind, numbers.as_slice()) {
            ("append", &[start, dev, ino]) => Some(Note::Append { start, dev, ino }),
            ("compact", &[dev, ino]) => Some(Note::Compact { dev, ino }),
            ("compact", &[start, len, dev, ino]) => Some(Note::CompactCopy {
                start,
                len,
                dev,
                ino,
            }),
            _ => None,
        }
    }

    /// Whether the note is about the file `m` describes.
    pub fn is_about(&self, m: &fs::Metadata) -> bool {
        let (Note::Append { dev, ino, .. }
        | Note::Compact { dev, ino }
        | Note::CompactCopy { dev, ino, .. }) = *self;
        dev == m.dev() && ino == m.ino()
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Note::Append { start, dev, ino } => write!(f, "append {start} {dev} {ino}"),
            Note::Compact { dev, ino } => write!(f, "compact {dev} {ino}"),
            Note::CompactCopy {
                start,
                len,
                dev,
                ino,
            } => write!(f, "compact {start} {len} {dev} {ino}"),
        }
    }
}

/// Held locks; released on drop (dotlock removed, fcntl lock dropped).
#[derive(Debug)]
pub struct Held {
    fd: i32,
    /// The dotlock's name, and the file itself (kept open for notes).
    dotlock: Option<(PathBuf, File)>,
    /// What a stale dotlock removed on the way held (its holder died).
    broken: Option<String>,
    /// Leave the dotlock when dropped: its note tells the next holder
    /// what to finish.
    left: Cell<bool>,
    /// What `broken` noted has been finished, undone, or found to be about
    /// another file ([`Held::settled`]).  Until then, dropping the lock
    /// puts the dead holder's words back, so that no locker can lose them.
    settled: Cell<bool>,
}

impl Held {
    /// Write `note` into the dotlock after the pid line, for whoever finds
    /// it stale should this process die holding it.
    pub fn note(&self, note: Note) -> io::Result<()> {
        match &self.dotlock {
            Some((_, f)) => {
                f.write_all_at(format!("{}\n{note}\n", std::process::id()).as_bytes(), 0)
            }
            None => Ok(()),
        }
    }

    /// Take the note back: the dotlock holds the pid line alone again.
    pub fn clear_note(&self) -> io::Result<()> {
        match &self.dotlock {
            Some((_, f)) => {
                let pid = format!("{}\n", std::process::id());
                f.write_all_at(pid.as_bytes(), 0)?;
                f.set_len(pid.len() as u64)
            }
            None => Ok(()),
        }
    }

    /// Leave the dotlock, and its note, in place when dropped (the fcntl
    /// lock is released): work was left half done, and whoever finds the
    /// dotlock stale (once this process is gone) finishes it.
    pub fn leave_for_recovery(&self) {
        self.left.set(true);
    }

    /// What the dead holder noted is dealt with (by
    /// [`super::mbox::recovery`]): the dotlock may go when dropped.
    pub fn settled(&self) {
        self.settled.set(true);
    }

    /// The content of the stale dotlock this lock replaced, if any.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// The note the stale dotlock this lock replaced held, if any.
    pub fn broken_note(&self) -> Option<Note> {
        self.broken().and_then(Note::from_dotlock)
    }

    /// Refresh the dotlock's mtime so long operations (compacting a big
    /// mbox) are not taken for a dead holder.
    pub fn touch(&self) {
        if let Some((p, _)) = &self.dotlock {
            let now = nix::sys::time::TimeSpec::new(0, libc::UTIME_NOW);
            let _ = nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                p,
                &now,
                &now,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
    }

    /// Whether a dotlock is held too (false: fcntl only).
    pub fn has_dotlock(&self) -> bool {
        self.dotlock.is_some()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((p, f)) = &self.dotlock
            && !self.left.get()
        {
            // A locker that gave up before settling what a dead holder
            // noted (the mailbox path changed under it, an error) leaves
            // the dead holder's dotlock as it found it, for the next one.
            let unsettled = match (self.settled.get(), self.broken.as_deref()) {
                (false, Some(words)) if Note::from_dotlock(words).is_some() => Some(words),
                _ => None,
            };
            let put_back = unsettled.is_some_and(|words| {
                f.write_all_at(words.as_bytes(), 0)
                    .and_then(|()| f.set_len(words.len() as u64))
                    .is_ok()
            });
            if !put_back {
                let _ = fs::remove_file(p);
            }
        }
        let _ = fcntl_lock(self.fd, None);
    }
}

/// Why no lock was obtained.
#[derive(Debug)]
pub enum LockError {
    /// Still busy after the timeout.
    Busy,
    Io(io::Error),
}

fn fcntl_lock(fd: i32, kind: Option<Kind>) -> io::Result<bool> {
    let l_type = match kind {
        Some(Kind::Read) => libc::F_RDLCK,
        Some(Kind::Write) => libc::F_WRLCK,
        None => libc::F_UNLCK,
    };
    // SAFETY: an all-zero flock is valid; l_len 0 = the whole file, and
    // l_pid must be 0 for an OFD lock.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    loop {
        // SAFETY: fd is a valid descriptor and fl a valid struct.
        let rc = unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// The dotlock path of a mailbox.
pub fn dotlock_path(mailbox: &Path) -> PathBuf {
    let mut name = mailbox.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    mailbox.with_file_name(name)
}

enum Dot {
    /// Ours (its name and the open file); with what a stale dotlock
    /// removed on the way held.
    Got(PathBuf, File, Option<String>),
    Busy,
    /// Not permitted to create it: carry on with fcntl alone.
    NotPermitted,
}

/// Is the dotlock `content` (liblockfile's `PID\n`) that of a process
/// that no longer exists?
fn holder_is_dead(content: &str) -> bool {
    let Some(pid) = content
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
    else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    unsafe {
        libc::kill(pid, 0) != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

/// Create the dotlock holding `PID\n`, never empty (an empty dotlock
/// would look like a live holder for five minutes): the pid is written to
/// an unnamed file in the spool (`O_TMPFILE`), which is then linked to the
/// lock name — `link` fails if the lock exists, and a writer killed on the
/// way leaves nothing behind.  Where `O_TMPFILE` is not supported, a
/// private temporary name is linked instead (liblockfile's way).
fn create_dotlock(path: &Path) -> io::Result<File> {
    use std::io::Write;
    let pid = format!("{}\n", std::process::id());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let unnamed = OpenOptions::new()
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match unnamed {
        Ok(f) => {
            (&f).write_all(pid.as_bytes())?;
            let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
            match nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                proc_path.as_str(),
                nix::fcntl::AT_FDCWD,
                path,
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            ) {
                Ok(()) => return Ok(f),
                Err(nix::errno::Errno::EEXIST) => {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                // No /proc (a chroot): the named way below.
                Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
            ) =>
        {
            return Err(e);
        }
        Err(_) => {}
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = fs::remove_file(&tmp);
    let made = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|f| (&f).write_all(pid.as_bytes()).map(|()| f));
    let f = match made {
        Ok(f) => f,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked.map(|()| f)
}

/// Put our own dotlock in place of a stale one whose holder left `dead`
/// in it: our pid, and the dead holder's [`Note`] if it left one, are
/// written to `.NAME.lock.takeover` and renamed over the dotlock.  Only a
/// holder of the fcntl lock takes over, so the fixed name is never in use
/// twice; a leftover from a killed taker is replaced.
fn take_over_dotlock(path: &Path, dead: &str) -> io::Result<File> {
    use std::io::Write;
    let mut words = format!("{}\n", std::process::id());
    if let Some(note) = Note::from_dotlock(dead) {
        words.push_str(&format!("{note}\n"));
    }
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".takeover");
    let tmp = path.with_file_name(name);
    let _ = fs::remove_file(&tmp);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    match (&f)
        .write_all(words.as_bytes())
        .and_then(|()| fs::rename(&tmp, path))
    {
        Ok(()) => Ok(f),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn try_dotlock(path: &Path) -> io::Result<Dot> {
    match create_dotlock(path) {
        Ok(f) => Ok(Dot::Got(path.to_path_buf(), f, None)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let Ok(m) = fs::symlink_metadata(path) else {
                return Ok(Dot::Busy);
            };
            let content = fs::read(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let age = m
                .modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            if age < STALE_DOTLOCK && !holder_is_dead(&content) {
                return Ok(Dot::Busy);
            }
            // (A live holder refreshes its dotlock's time during long work,
            // Held::touch, so five minutes unchanged means gone or hung.)
            // Replace it only if it is still the same file, and in one
            // step (a rename over it) by our own, which carries its note
            // on: removing it first would leave an instant where a kill
            // loses what the dead holder left half done.  (We hold the
            // fcntl lock: no locker of ours can come between.)
            match fs::symlink_metadata(path) {
                Ok(again) if again.ino() == m.ino() && again.mtime() == m.mtime() => {}
                _ => return Ok(Dot::Busy),
            }
            match take_over_dotlock(path, &content) {
                Ok(f) => {
                    crate::log::notice(None, &format!("removed stale lock {}", path.display()));
                    Ok(Dot::Got(path.to_path_buf(), f, Some(content)))
                }
                Err(_) => Ok(Dot::Busy),
            }
        }
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            ) =>
        {
            Ok(without_permission(path))
        }
        Err(e) => Err(e),
    }
}

/// A locker that may not create the dotlock still respects one that is
/// there: a live holder's is busy, and so is a dead holder's of ours
/// with a note, whose work (a half append, a half compaction) this
/// locker cannot settle, nor clear once settled; it waits for a locker
/// that can.  Otherwise (no dotlock, or a stale foreign one it may not
/// remove) the fcntl lock alone, as popa3d and Dovecot's `dotlock_try`.
fn without_permission(path: &Path) -> Dot {
    let content = match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Dot::NotPermitted,
        Err(_) => return Dot::Busy,
    };
    let fresh = fs::symlink_metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < STALE_DOTLOCK);
    let alive = fresh && !holder_is_dead(&content);
    if alive || Note::from_dotlock(&content).is_some() {
        Dot::Busy
    } else {
        Dot::NotPermitted
    }
}

/// Lock the open mailbox `file` at `path`: fcntl then dotlock, retried with
/// random pauses until `timeout`.
pub fn lock(file: &File, path: &Path, kind: Kind, timeout: Duration) -> Result<Held, LockError> {
    let fd = file.as_raw_fd();
    let dot = dotlock_path(path);
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        if fcntl_lock(fd, Some(kind)).map_err(LockError::Io)? {
            match try_dotlock(&dot).map_err(LockError::Io)? {
                Dot::Got(p, f, broken) => {
                    return Ok(Held {
                        fd,
                        dotlock: Some((p, f)),
                        broken,
                        left: Cell::new(false),
                        settled: Cell::new(false),
                    });
                }
                Dot::NotPermitted => {
                    return Ok(Held {
                        fd,
                        dotlock: None,
                        broken: None,
                        left: Cell::new(false),
                        settled: Cell::new(false),
                    });
                }
                Dot::Busy => {
                    let _ = fcntl_lock(fd, None);
                }
            }
        }
        if start.elapsed() >= timeout {
            return Err(LockError::Busy);
        }
        // Another program holds it: wait 1 ms, doubling up to 256 ms,
        // each pause randomised so contenders do not march in step.
        let cap = 1u64 << attempt.min(8);
        attempt += 1;
        let pause = Duration::from_micros(
            cap * 500 + (crate::queue::id::random_u32() as u64 % (cap * 1000)),
        );
        std::thread::sleep(
            pause.min(timeout.saturating_sub(start.elapsed()) + Duration::from_millis(1)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A locker that may not create dotlocks: a live holder's dotlock, or
    /// a dead one's of ours with a note it cannot settle, keeps it
    /// waiting; no dotlock, or a dead foreign one, lets it go on with the
    /// fcntl lock alone.
    #[test]
    fn without_leave_to_create_dotlocks_a_noted_one_is_still_respected() {
        let d = std::env::temp_dir().join(format!("mr-lock-noperm-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let dot = d.join("bob.lock");
        let _ = fs::remove_file(&dot);
        assert!(matches!(without_permission(&dot), Dot::NotPermitted));
        fs::write(&dot, format!("{}\n", std::process::id())).unwrap();
        assert!(matches!(without_permission(&dot), Dot::Busy));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(&dot, format!("{dead}\n")).unwrap();
        assert!(matches!(without_permission(&dot), Dot::NotPermitted));
        fs::write(&dot, format!("{dead}\nappend 10 1 2\n")).unwrap();
        assert!(matches!(without_permission(&dot), Dot::Busy));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dotlock_and_fcntl_exclude_each_other() {
        let d = std::env::temp_dir().join(format!("mr-lock-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let mbox = d.join("bob");
        fs::write(&mbox, "").unwrap();
        let f = File::options().read(true).write(true).open(&mbox).unwrap();
        let held = lock(&f, &mbox, Kind::Write, Duration::from_secs(1)).unwrap();
        assert!(dotlock_path(&mbox).exists());
        // The dotlock keeps a second locker out (fcntl locks are per process,
        // so within one process only the dotlock can refuse).
        let f2 = File::options().read(true).write(true).open(&mbox).unwrap();
        let t = Instant::now();
        assert!(matches!(
            lock(&f2, &mbox, Kind::Write, Duration::from_millis(300)),
            Err(LockError::Busy)
        ));
        assert!(t.elapsed() >= Duration::from_millis(300));
        drop(held);
        assert!(!dotlock_path(&mbox).exists());
        let again = lock(&f2, &mbox, Kind::Write, Duration::from_secs(1)).unwrap();
        drop(again);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_dotlocks_are_broken() {
        let d = std::env::temp_dir().join(format!("mr-stale-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let mbox = d.join("eve");
        fs::write(&mbox, "").unwrap();
        let dot = dotlock_path(&mbox);
        fs::write(&dot, "0").unwrap();
        let old = nix::sys::time::TimeSpec::new(1_000_000_000, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &dot,
            &old,
            &old,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        let f = File::options().read(true).write(true).open(&mbox).unwrap();
        let held = lock(&f, &mbox, Kind::Write, Duration::from_secs(2)).unwrap();
        assert!(held.has_dotlock());
        assert_eq!(held.broken(), Some("0"));
        drop(held);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_dotlock_of_a_dead_process_is_broken_at_once_a_live_ones_is_not() {
        let d = std::env::temp_dir().join(format!("mr-deadpid-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let mbox = d.join("eve");
        fs::write(&mbox, "").unwrap();
        let dot = dotlock_path(&mbox);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(&dot, format!("{dead}\nappend 0\n")).unwrap();
        let f = File::options().read(true).write(true).open(&mbox).unwrap();
        let t = Instant::now();
        let held = lock(&f, &mbox, Kind::Write, Duration::from_secs(5)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(held.broken(), Some(format!("{dead}\nappend 0\n").as_str()));
        held.note(Note::Append {
            start: 7,
            dev: 1,
            ino: 2,
        })
        .unwrap();
        assert_eq!(
            fs::read_to_string(&dot).unwrap(),
            format!("{}\nappend 7 1 2\n", std::process::id())
        );
        held.clear_note().unwrap();
        assert_eq!(
            fs::read_to_string(&dot).unwrap(),
            format!("{}\n", std::process::id())
        );
        // Left for recovery: the fcntl lock goes, the dotlock and its note
        // stay.
        held.note(Note::Compact { dev: 1, ino: 2 }).unwrap();
        held.leave_for_recovery();
        drop(held);
        assert_eq!(
            fs::read_to_string(&dot).unwrap(),
            format!("{}\ncompact 1 2\n", std::process::id())
        );
        fs::remove_file(&dot).unwrap();
        // Our own pid (alive): busy until the timeout.
        fs::write(&dot, format!("{}\n", std::process::id())).unwrap();
        assert!(matches!(
            lock(&f, &mbox, Kind::Write, Duration::from_millis(200)),
            Err(LockError::Busy)
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn notes_read_back_as_written_and_nothing_else_is_a_note() {
        let notes = [
            Note::Append {
                start: 4096,
                dev: 2049,
                ino: 131_075,
            },
            Note::Compact {
                dev: 2049,
                ino: 131_075,
            },
        ];
        assert_eq!(notes[0].to_string(), "append 4096 2049 131075");
        assert_eq!(notes[1].to_string(), "compact 2049 131075");
        for n in notes {
            assert_eq!(Note::from_dotlock(&format!("4242\n{n}\n")), Some(n));
        }
        // The note of the older compaction (side file copied back) is
        // still read, and written the same way.
        let older = Note::CompactCopy {
            start: 10,
            len: 20,
            dev: 2049,
            ino: 131_075,
        };
        assert_eq!(older.to_string(), "compact 10 20 2049 131075");
        assert_eq!(
            Note::from_dotlock("4242\ncompact 10 20 2049 131075\n"),
            Some(older)
        );
        for foreign in [
            "",
            "4242\n",
            "0",
            "4242\nappend 0\n",
            "4242\ncompact 1 2 3\n",
            "4242\nappend x 1 2\n",
            "4242\nrewrite 1 2 3\n",
            "append 1 2 3\n",
        ] {
            assert_eq!(Note::from_dotlock(foreign), None, "{foreign:?}");
        }
        let m = fs::metadata("/").unwrap();
        let about = |dev, ino| Note::Append { start: 0, dev, ino }.is_about(&m);
        assert!(about(m.dev(), m.ino()));
        assert!(!about(m.dev(), m.ino() + 1));
    }
}
