//! The express run: one queue run takes every message just queued, instead
//! of one run per message.
//!
//! Each message `sendmail` or the SMTP server queues wants delivery at
//! once, but starting a runner for each one (a process start, the
//! configuration and the tables read again) cost more than the delivery
//! itself under load.  So the job is announced in a directory instead, and
//! the runner that is already running — or about to finish — takes it.
//! No resident daemon: the express run ends once nothing has arrived for
//! `express_linger` (default 1 s), and the next message starts another.
//!
//! ## On disk: `QUEUE/new/`
//!
//! | entry | written by | meaning |
//! |-------|------------|---------|
//! | `new/ID` (empty file) | the submitter, after `qfID` is durable | "job ID wants its first attempt now" |
//! | `flock` on the directory `new/` itself | the express run, while it takes jobs | "an express run is active: it will see new entries" |
//!
//! A marker is a wake-up call, not part of the job: it is created without
//! `fsync`, and losing it (a crash, a full disk) only means the job waits
//! for the periodic run, as a job of `sendmail -odq` does.  A marker whose
//! job is gone or taken by another run is simply removed.
//!
//! ## Why no message is left waiting
//!
//! The submitter: (1) commits the job, (2) creates `new/ID`, (3) tries the
//! lock without blocking.  Held: the holder takes the job.  Free: it
//! starts `qrun --express` (a spare one, should two submitters race, finds
//! the lock held and ends).
//!
//! The express run: takes the lock (or ends: another run has it); takes
//! markers and delivers until none arrived for the linger time; unlocks;
//! and *then* looks once more.  A submitter whose (3) found the lock held
//! did its (2) before this run unlocked, so that last look sees the
//! marker; the run then takes the lock again — or, if a newer run holds
//! it, leaves the marker to that one, whose own last look is still to
//! come.  A marker created after the unlock belongs to a submitter whose
//! (3) finds the lock free and starts a run.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::queue::QueueId;

/// The announcement directory inside the queue directory.
pub const DIR: &str = "new";

/// What became of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// An express run is active and will take the job.
    Taken,
    /// None is: the caller starts one (`qrun --express`).
    StartRun,
    /// The queue has no usable announcement directory: the caller starts
    /// a run for this job alone.
    Unavailable,
}

/// The announcement directory of the queue at `queue_dir`.
pub fn dir_of(queue_dir: &Path) -> PathBuf {
    queue_dir.join(DIR)
}

/// Open `new/`, making it if missing (an older installation): mode 2770
/// under the set-group-id queue directory, so its group is the queue's.
fn open_dir(queue_dir: &Path) -> io::Result<File> {
    let dir = dir_of(queue_dir);
    let open = || {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&dir)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(0o2770).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            open()
        }
        r => r,
    }
}

/// Try the express run's lock on `dir` without waiting.
fn try_lock(dir: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

fn unlock(dir: &File) {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_UN) };
}

/// The submitter's side, steps (2) and (3), for a job already committed.
pub fn announce(queue_dir: &Path, id: &QueueId) -> Announced {
    let Ok(dir) = open_dir(queue_dir) else {
        return Announced::Unavailable;
    };
    let marker = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o660)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir_of(queue_dir).join(id.as_str()));
    if marker.is_err() {
        return Announced::Unavailable;
    }
    match try_lock(&dir) {
        Ok(false) => Announced::Taken,
        // Free: let go at once (closing `dir` does) for the run we start.
        Ok(true) => Announced::StartRun,
        Err(_) => Announced::Unavailable,
    }
}

/// The express run's view of `new/`: the lock, the markers, and a watch
/// that wakes it when one is created.
pub struct Inbox {
    path: PathBuf,
    dir: File,
    watch: Option<nix::sys::inotify::Inotify>,
    locked: bool,
}

impl Inbox {
    /// Open the queue's announcement directory and start watching it.
    /// The watch is set before the first look, so no marker created
    /// afterwards goes unnoticed.
    pub fn open(queue_dir: &Path) -> io::Result<Inbox> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let dir = open_dir(queue_dir)?;
        let path = dir_of(queue_dir);
        // Without a watch the run still works: it looks every 20 ms.
        let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|w| {
                w.add_watch(&path, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
                    .is_ok()
            });
        Ok(Inbox {
            path,
            dir,
            watch,
            locked: false,
        })
    }

    /// Take the express run's lock; false when another run holds it.
    pub fn lock(&mut self) -> io::Result<bool> {
        self.locked = try_lock(&self.dir)?;
        Ok(self.locked)
    }

    /// Let go of the lock (see the module's note on what follows).
    pub fn unlock(&mut self) {
        if self.locked {
            unlock(&self.dir);
            self.locked = false;
        }
    }

    /// Whether any marker is waiting.
    pub fn has_markers(&self) -> bool {
        std::fs::read_dir(&self.path)
            .map(|mut d| {
                d.any(|e| e.is_ok_and(|e| !e.file_name().as_encoded_bytes().starts_with(b".")))
            })
            .unwrap_or(false)
    }

    /// The jobs announced so far, oldest first, their markers removed.
    /// Names that are not queue ids are removed too (nobody else writes
    /// here).
    pub fn take(&self) -> Vec<QueueId> {
        self.drain_events();
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if std::fs::remove_file(entry.path()).is_err() {
                continue;
            }
            if let Some(id) = QueueId::parse(name) {
                ids.push(id);
            }
        }
        ids.sort();
        ids
    }

    /// Announce `ids` again (taken, then left for the next pass).
    pub fn put_back(&self, ids: &[QueueId]) {
        for id in ids {
            let _ = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o660)
                .custom_flags(libc::O_NOFOLLOW)
                .open(self.path.join(id.as_str()));
        }
    }

    /// Wait until a marker may have arrived, at most `wait`.
    pub fn wait(&self, wait: Duration) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let Some(w) = &self.watch else {
            std::thread::sleep(wait.min(Duration::from_millis(20)));
            return;
        };
        let ms = wait.as_millis().min(60_000) as u16;
        let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(ms));
    }

    /// Forget the watch's pending events: a look at the directory follows.
    fn drain_events(&self) {
        if let Some(w) = &self.watch {
            while matches!(w.read_events(), Ok(ev) if !ev.is_empty()) {}
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.unlock();
    }
}

/// What the files a run reads at its start looked like: the configuration
/// and tables in `/etc/mail` (each file's identity, size and times, and
/// the directory's, which every rename into it changes), and the system's
/// user and group files.  An express run compares it before taking more
/// jobs and starts afresh when it changed, so an admin's change (a quota
/// raised, a DKIM key added, an alias) applies to the next message even
/// while the run is busy or lingering.  Per-user files (filters,
/// `.forward`) are read at each delivery anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Vec<(u64, u64, u64, i64, i64, i64, i64)>);

impl Stamp {
    pub fn now(cfg: &crate::config::Config) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        let etc_mail = cfg.paths.resolve("/etc/mail");
        let mut paths = vec![etc_mail.clone()];
        if let Ok(d) = std::fs::read_dir(&etc_mail) {
            let mut names: Vec<PathBuf> = d.flatten().map(|e| e.path()).collect();
            names.sort();
            paths.extend(names);
        }
        for f in ["/etc/passwd", "/etc/group", "/etc/shadow"] {
            paths.push(cfg.paths.resolve(f));
        }
        Stamp(
            paths
                .iter()
                .map(|p| match std::fs::metadata(p) {
                    Ok(m) => (
                        m.dev(),
                        m.ino(),
                        m.size(),
                        m.mtime(),
                        m.mtime_nsec(),
                        m.ctime(),
                        m.ctime_nsec(),
                    ),
                    Err(_) => (0, 0, 0, 0, 0, 0, 0),
                })
                .collect(),
        )
    }
}

/// How long one express pass takes new jobs before the run starts afresh,
/// reading the configuration and the tables again (an admin's change is
/// seen within this, however busy the box).
const PASS_LIMIT: Duration = Duration::from_secs(10);

/// `qrun --express`: take the lock (or end: another run has it), deliver
/// what is announced until nothing arrives for the linger time, let go,
/// and look once more.  `load` reads the configuration (again for each
/// pass).  `pause`: a test's stretch of the instant between the run's
/// last look under the lock and letting go, where a submitter finds the
/// lock held and counts on this run.
pub fn serve(
    load: impl Fn() -> Result<crate::config::Config, crate::exit::Failure>,
    verbose: bool,
    pause: Option<Duration>,
) -> Result<(), crate::exit::Failure> {
    let cfg = load()?;
    let mut inbox = Inbox::open(&cfg.queue_dir).map_err(|e| {
        crate::exit::Failure::new(
            crate::exit::ExitCode::CantCreat,
            format!(
                "cannot open {}: {}",
                dir_of(&cfg.queue_dir).display(),
                crate::exit::io_reason(&e)
            ),
        )
    })?;
    let mut cfg = Some(cfg);
    loop {
        if !inbox.lock().unwrap_or(false) {
            return Ok(());
        }
        loop {
            let cfg = match cfg.take() {
                Some(c) => c,
                None => load()?,
            };
            let stamp = Stamp::now(&cfg);
            let settings = super::Settings::from_config(&cfg)?;
            let runner = super::Runner::new(&cfg, verbose)?;
            runner.run_express(&inbox, settings.express_linger, PASS_LIMIT, &|| {
                Stamp::now(&cfg) == stamp
            });
            if !inbox.has_markers() {
                break;
            }
        }
        if let Some(p) = pause {
            std::thread::sleep(p);
        }
        inbox.unlock();
        if !inbox.has_markers() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("mailroom-express-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn id(n: u32) -> QueueId {
        QueueId::parse(&format!("6AL5Krcl{n:06}")).unwrap()
    }

    #[test]
    fn a_submitter_starts_a_run_only_when_none_holds_the_lock() {
        let q = queue_dir("start");
        // No run: start one (and the directory is made on the way).
        assert_eq!(announce(&q, &id(1)), Announced::StartRun);
        let mut run = Inbox::open(&q).unwrap();
        assert!(run.lock().unwrap());
        // A second run finds the lock held and ends.
        let mut spare = Inbox::open(&q).unwrap();
        assert!(!spare.lock().unwrap());
        // While the run holds it, submitters count on it.
        assert_eq!(announce(&q, &id(2)), Announced::Taken);
        assert_eq!(run.take(), vec![id(1), id(2)]);
        assert!(run.take().is_empty() && !run.has_markers());
        run.unlock();
        assert_eq!(announce(&q, &id(3)), Announced::StartRun);
        std::fs::remove_dir_all(&q).unwrap();
    }

    /// The instant the protocol is about: the run has looked for the last
    /// time under the lock, a submitter announces (lock held: it counts on
    /// the run), then the run lets go.  Its look after letting go finds
    /// the job.
    #[test]
    fn a_job_announced_while_the_run_lets_go_is_seen_by_its_last_look() {
        let q = queue_dir("last-look");
        let mut run = Inbox::open(&q).unwrap();
        assert!(run.lock().unwrap());
        assert!(run.take().is_empty() && !run.has_markers());
        assert_eq!(announce(&q, &id(7)), Announced::Taken);
        run.unlock();
        assert!(run.has_markers());
        assert!(run.lock().unwrap());
        assert_eq!(run.take(), vec![id(7)]);
        std::fs::remove_dir_all(&q).unwrap();
    }

    #[test]
    fn the_watch_wakes_a_waiting_run_and_strange_names_are_dropped() {
        let q = queue_dir("watch");
        let run = Inbox::open(&q).unwrap();
        assert!(run.watch.is_some(), "inotify is available on Linux");
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            announce(&q2, &id(9))
        });
        let start = std::time::Instant::now();
        run.wait(Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        std::fs::write(dir_of(&q).join("not-an-id"), "").unwrap();
        assert_eq!(run.take(), vec![id(9)]);
        assert!(!run.has_markers());
        std::fs::remove_dir_all(&q).unwrap();
    }
}
