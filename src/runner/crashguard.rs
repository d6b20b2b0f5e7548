//! The crash guard: a job that crashes the queue runner (a parser bug, a
//! runaway allocation) must not be retried in a tight loop.  After three
//! attempts that crashed the runner it is set aside as `QfID` (sendmail's
//! "lost" control file) and reported.
//!
//! ## Crashed, or killed?
//!
//! Only a crash counts: a fatal signal the runner raised itself (SIGSEGV,
//! SIGBUS, SIGILL, SIGFPE, SIGABRT — a runaway allocation ends in SIGABRT
//! because the runner's data size is limited, see `runner_memory_limit`)
//! or a panic inside an attempt.  A runner *killed* from outside (SIGKILL
//! by an admin or the OOM killer, a power failure) says nothing about the
//! jobs it was working on: they are simply retried, so random kills never
//! set an innocent message aside.
//!
//! ## On disk
//!
//! | file | written by | content |
//! |------|------------|---------|
//! | `.running/PID.N` | one runner process, for its lifetime, `flock`ed | a 32-byte status slot (`running` or `crashed`), then one 32-byte slot per worker: the id it is working on, or blanks |
//! | `xfID` | the sweep, for a job a dead runner was working on | `crashes N\n` (crashes counted), then `interrupted\n` |
//!
//! A worker writes the job's id into its slot before an attempt and blanks
//! it afterwards: one `pwrite` each, no file created per job.  The fatal
//! signal handlers ([`arm`]) write `crashed` into the status slot (one
//! `pwrite`, async-signal-safe) and let the signal take its course.  A
//! journal whose lock nobody holds belongs to a runner that died; a sweep
//! ([`sweep`]) marks every id still in it `interrupted` (its next attempt
//! first looks for copies the dead one may already have put in mailboxes,
//! so the retry delivers no duplicate), counts a crash for each when its
//! status says `crashed`, and removes it.
//!
//! ## When the sweep runs
//!
//! Every runner sweeps right after it has locked a job, before it decides
//! how to attempt it.  The order of events makes that enough: a runner
//! killed mid-attempt loses its journal lock at once, while its delivery
//! child (if any) keeps the job's lock until it has written its copy; so
//! whoever locks the job next finds the dead journal still there.  The
//! journals live in a directory of their own, `.running/`, so that this
//! sweep reads a handful of names, not a queue of 100,000 jobs.  A sweep
//! that finds a journal locked although its runner's process is gone
//! waits for that lock: another runner is sweeping it this instant, and
//! its marks must be on disk before we read them.  A panic inside one
//! attempt is counted at once ([`count_crash`]).  Neither is `fsync`ed:
//! they count process deaths, not power failures.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::queue::{Queue, QueueId};

/// Bytes per worker slot (an id is 14–18 characters).
const SLOT: usize = 32;

/// The directory of the journals, in the queue's control directory.
pub const JOURNAL_DIR: &str = ".running";

/// Prefix of the journal names an older version kept in the queue
/// directory itself (still swept, so none is left behind).
const LEGACY_PREFIX: &str = ".running.";

/// An attempt count after which a job is set aside.
pub const MAX_CRASHES: u32 = 3;

/// The status slot's texts.
const RUNNING: &[u8; SLOT] = b"running                        \n";
const CRASHED: &[u8; SLOT] = b"crashed                        \n";

/// The journal the fatal-signal handlers mark (-1: none).
static ARMED_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

const FATAL: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

extern "C" fn on_fatal_signal(sig: i32) {
    let fd = ARMED_FD.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: pwrite, sigaction and raise are async-signal-safe; the
    // buffer is static and `act` a valid struct.  With the default action
    // back, the raised signal ends the process as it would have ended.
    unsafe {
        if fd >= 0 {
            libc::pwrite(fd, CRASHED.as_ptr().cast(), SLOT, 0);
        }
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &act, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Mark `journal` as crashed if this process dies of a fatal signal.
pub fn arm(journal: &Journal) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    ARMED_FD.store(
        journal.file.as_raw_fd(),
        std::sync::atomic::Ordering::SeqCst,
    );
    INSTALL.call_once(|| {
        for sig in FATAL {
            // SAFETY: installing a handler with a valid sigaction;
            // SA_ONSTACK uses the alternate stack Rust gives every thread
            // (a stack overflow has no stack left); SA_NODEFER lets the
            // handler's own raise() through.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_fatal_signal as extern "C" fn(i32) as usize;
                act.sa_flags = libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(sig, &act, std::ptr::null_mut());
            }
        }
    });
}

/// This process's journal of attempts under way.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Create and lock a journal in `queue_dir`'s journal directory.
    pub fn create(queue_dir: &Path) -> io::Result<Journal> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = queue_dir.join(JOURNAL_DIR);
        let path = dir.join(format!("{}.{n}", std::process::id()));
        // The directory goes when its last runner ends (see Drop); one
        // that ends between our mkdir and our open makes us try again.
        let mut tries = 0;
        let file = loop {
            match fs::DirBuilder::new().mode(0o750).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(f) => break f,
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 10 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        // SAFETY: plain flock on a valid descriptor; held until we close.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        file.write_all_at(RUNNING, 0)?;
        Ok(Journal { file, path })
    }

    /// Worker `slot` is starting an attempt at `id`.
    pub fn begin(&self, slot: usize, id: &QueueId) {
        let mut buf = [b' '; SLOT];
        let b = id.as_str().as_bytes();
        buf[..b.len().min(SLOT - 1)].copy_from_slice(&b[..b.len().min(SLOT - 1)]);
        buf[SLOT - 1] = b'\n';
        let _ = self.file.write_all_at(&buf, ((slot + 1) * SLOT) as u64);
    }

    /// Worker `slot`'s attempt has ended (however it ended).
    pub fn end(&self, slot: usize) {
        let mut buf = [b' '; SLOT];
        buf[SLOT - 1] = b'\n';
        let _ = self.file.write_all_at(&buf, ((slot + 1) * SLOT) as u64);
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = ARMED_FD.compare_exchange(
            self.file.as_raw_fd(),
            -1,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
        let _ = fs::remove_file(&self.path);
        // The last runner leaves no empty directory behind (fails while
        // other journals are there).
        if let Some(dir) = self.path.parent() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The ids in a journal's worker slots.  Read slot by slot, not line by
/// line: a slot no worker wrote yet is a hole of NUL bytes without a
/// newline, which would glue itself to the next slot's id.
fn journal_ids(journal: &[u8]) -> impl Iterator<Item = QueueId> + '_ {
    journal.chunks(SLOT).skip(1).filter_map(|slot| {
        let text = std::str::from_utf8(slot).ok()?;
        QueueId::parse(text.trim_matches(|c: char| c == '\0' || c.is_ascii_whitespace()))
    })
}

/// What `xfID` says: crashes counted, and whether an attempt was cut short
/// (the runner died during it).
pub fn state(queue: &Queue, id: &QueueId) -> (u32, bool) {
    let text = fs::read_to_string(queue.path("xf", id)).unwrap_or_default();
    let crashes = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("crashes ")?.parse().ok())
        .unwrap_or(0);
    (crashes, text.lines().any(|l| l.trim() == "interrupted"))
}

fn write_xf(queue: &Queue, id: &QueueId, crashes: u32, interrupted: bool) {
    let Ok(mut f) = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(queue.path("xf", id))
    else {
        return;
    };
    let mut text = format!("crashes {crashes}\n");
    if interrupted {
        text.push_str("interrupted\n");
    }
    let _ = f.write_all(text.as_bytes());
}

/// How many attempts at `id` crashed the runner so far.
pub fn crashes(queue: &Queue, id: &QueueId) -> u32 {
    state(queue, id).0
}

/// Count one more crashed attempt at `id` (an interrupted one).
pub fn count_crash(queue: &Queue, id: &QueueId) {
    let (n, _) = state(queue, id);
    write_xf(queue, id, n + 1, true);
}

/// An attempt at `id` was cut short by a runner killed from outside.
fn mark_interrupted(queue: &Queue, id: &QueueId) {
    let (n, _) = state(queue, id);
    write_xf(queue, id, n, true);
}

/// Forget the crashes of a job that is gone or whose attempt ended.
pub fn clear(queue: &Queue, id: &QueueId) {
    let _ = fs::remove_file(queue.path("xf", id));
}

/// Sweep the journals of runners that died: count a crash for every job
/// named in the journal of a runner that crashed, mark those of a runner
/// killed from outside interrupted, and remove the journals.  Reads the
/// journal directory, and among `legacy_names` (the queue directory's
/// names, when the caller has listed it) the journals an older version
/// kept there.  Returns the jobs marked.
pub fn sweep<'a>(queue: &Queue, legacy_names: impl Iterator<Item = &'a str>) -> Vec<QueueId> {
    let mut marked = Vec::new();
    let dir = queue.control_dir().join(JOURNAL_DIR);
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let pid = name.split('.').next().and_then(|p| p.parse().ok());
            sweep_one(queue, &dir.join(name), pid, &mut marked);
        }
    }
    for name in legacy_names.filter(|n| n.starts_with(LEGACY_PREFIX)) {
        let pid = name[LEGACY_PREFIX.len()..]
            .split('.')
            .next()
            .and_then(|p| p.parse().ok());
        sweep_one(queue, &queue.control_dir().join(name), pid, &mut marked);
    }
    marked
}

/// Is process `pid` gone?
fn process_gone(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) != 0 && *libc::__errno_location() == libc::ESRCH }
}

/// Sweep one journal if its runner is dead (see [`sweep`]).
fn sweep_one(queue: &Queue, path: &Path, pid: Option<i32>, marked: &mut Vec<QueueId>) {
    let Ok(mut f) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    else {
        return;
    };
    // SAFETY: plain flock on a valid descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        // Its runner is alive -- or gone, and another runner is sweeping
        // this journal right now: wait for that sweep's marks.
        match pid {
            Some(pid) if pid > 0 && process_gone(pid) => {
                // SAFETY: as above, blocking; the sweeper holds it briefly.
                unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            }
            _ => return,
        }
    }
    let mut journal = Vec::new();
    let _ = f.read_to_end(&mut journal);
    let crashed = journal.starts_with(b"crashed");
    // A journal another sweep already handled (and removed) is marked
    // again: the same marks, unless it counted crashes, which must count
    // once.
    let already_swept = !path.exists();
    for id in journal_ids(&journal) {
        if already_swept {
            if !crashed {
                mark_interrupted(queue, &id);
            }
            marked.push(id);
        } else if crashed {
            crate::log::warning(
                Some(id.as_str()),
                "the queue runner crashed while delivering this message",
            );
            count_crash(queue, &id);
            marked.push(id);
        } else {
            crate::log::notice(
                Some(id.as_str()),
                "a queue runner was killed while delivering this message; retrying",
            );
            mark_interrupted(queue, &id);
            marked.push(id);
        }
    }
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_runners_jobs_count_a_crash_each_a_killed_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("mr-crashguard-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let q = Queue::new(&dir);
        let a = QueueId::parse("6AL5Krcl005170").unwrap();
        let b = QueueId::parse("6AL5Krcl005171").unwrap();
        let j = Journal::create(&dir).unwrap();
        j.begin(0, &a);
        j.begin(3, &b);
        j.end(3);
        // A worker whose slot lies past slots never written (NUL holes).
        let c = QueueId::parse("6AL5Krcl005172").unwrap();
        j.begin(5, &c);
        let name = j.path.file_name().unwrap().to_str().unwrap().to_string();
        // Alive: nothing counted.
        sweep(&q, std::iter::once(name.as_str()));
        assert_eq!(crashes(&q, &a), 0);
        // Killed: a copy of its journal nobody locks; retried, not counted.
        fs::copy(&j.path, dir.join(".running.1.0")).unwrap();
        sweep(&q, std::iter::once(".running.1.0"));
        assert_eq!((crashes(&q, &a), crashes(&q, &b)), (0, 0));
        assert!(state(&q, &a).1 && !state(&q, &b).1 && state(&q, &c).1);
        // The status slot is not an id.
        assert!(!dir.join("xfrunning").exists());
        assert!(!dir.join(".running.1.0").exists());
        // Crashed: the status slot says so (what the signal handler writes).
        j.file.write_all_at(CRASHED, 0).unwrap();
        fs::copy(&j.path, dir.join(".running.1.1")).unwrap();
        sweep(&q, std::iter::once(".running.1.1"));
        assert_eq!((crashes(&q, &a), crashes(&q, &b)), (1, 0));
        assert!(state(&q, &a).1);
        assert!(!dir.join(".running.1.1").exists());
        count_crash(&q, &a);
        assert_eq!(crashes(&q, &a), 2);
        clear(&q, &a);
        assert_eq!(crashes(&q, &a), 0);
        drop(j);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A process id that belonged to a process now gone.
    fn dead_pid() -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_killed_runners_journal_is_found_by_the_next_sweep_even_while_another_sweeps_it() {
        let dir = std::env::temp_dir().join(format!("mr-crashguard-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let q = Queue::new(&dir);
        let a = QueueId::parse("6AL5Krcl005170").unwrap();
        let j = Journal::create(&dir).unwrap();
        j.begin(0, &a);
        // A live runner's journal: nothing to do.
        assert!(sweep(&q, std::iter::empty()).is_empty());
        // A runner killed: its journal, unlocked, under a dead pid.
        let journals = dir.join(JOURNAL_DIR);
        let dead = journals.join(format!("{}.0", dead_pid()));
        fs::copy(&j.path, &dead).unwrap();
        assert_eq!(sweep(&q, std::iter::empty()), vec![a.clone()]);
        assert!(state(&q, &a).1, "marked interrupted");
        assert!(!dead.exists());
        clear(&q, &a);
        // Another runner is sweeping it this instant (holds its lock, then
        // marks and removes it): the sweep waits and sees the mark.
        fs::copy(&j.path, &dead).unwrap();
        let held = File::open(&dead).unwrap();
        // SAFETY: plain flock on a valid descriptor.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let (q2, a2, dead2) = (q.clone(), a.clone(), dead.clone());
        let other = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            mark_interrupted(&q2, &a2);
            fs::remove_file(&dead2).unwrap();
            drop(held);
        });
        let t = std::time::Instant::now();
        assert_eq!(sweep(&q, std::iter::empty()), vec![a.clone()]);
        assert!(t.elapsed() >= std::time::Duration::from_millis(90));
        assert!(state(&q, &a).1);
        other.join().unwrap();
        drop(j);
        let _ = fs::remove_dir_all(&dir);
    }
}
