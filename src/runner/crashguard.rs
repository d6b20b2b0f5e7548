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
//! | `.running.PID.N` | one runner process, for its lifetime, `flock`ed | a 32-byte status slot (`running` or `crashed`), then one 32-byte slot per worker: the id it is working on, or blanks |
//! | `xfID` | the sweep, for a job a dead runner was working on | `crashes N\n` (crashes counted), then `interrupted\n` |
//!
//! A worker writes the job's id into its slot before an attempt and blanks
//! it afterwards: one `pwrite` each, no file created per job.  The fatal
//! signal handlers ([`arm`]) write `crashed` into the status slot (one
//! `pwrite`, async-signal-safe) and let the signal take its course.  A
//! journal whose lock nobody holds belongs to a runner that died; the next
//! full queue pass ([`sweep`]) marks every id still in it `interrupted`
//! (its next attempt first looks for copies the dead one may already have
//! put in mailboxes, so the retry delivers no duplicate), counts a crash
//! for each when its status says `crashed`, and removes it.  A panic inside one
//! attempt is counted at once ([`count_crash`]).  Neither is `fsync`ed:
//! they count process deaths, not power failures.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::queue::{Queue, QueueId};

/// Bytes per worker slot (an id is 14–18 characters).
const SLOT: usize = 32;

/// Prefix of journal names.
const PREFIX: &str = ".running.";

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
    /// Create and lock a journal in `queue_dir`.
    pub fn create(queue_dir: &Path) -> io::Result<Journal> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = queue_dir.join(format!("{PREFIX}{}.{n}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
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

/// Count a crash for every job named in the journals of runners that
/// crashed; remove the journals of every runner that died (crashed or
/// killed).  `names` are the queue directory's file names.  Returns the
/// jobs marked (crashed or interrupted).
pub fn sweep<'a>(queue: &Queue, names: impl Iterator<Item = &'a str>) -> Vec<QueueId> {
    let mut counted = Vec::new();
    for name in names.filter(|n| n.starts_with(PREFIX)) {
        let path = queue.control_dir().join(name);
        let Ok(mut f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        // SAFETY: plain flock on a valid descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue; // its runner is alive
        }
        let mut journal = Vec::new();
        let _ = f.read_to_end(&mut journal);
        let crashed = journal.starts_with(b"crashed");
        for id in journal_ids(&journal) {
            if crashed {
                crate::log::warning(
                    Some(id.as_str()),
                    "the queue runner crashed while delivering this message",
                );
                count_crash(queue, &id);
                counted.push(id);
            } else {
                crate::log::notice(
                    Some(id.as_str()),
                    "a queue runner was killed while delivering this message; retrying",
                );
                mark_interrupted(queue, &id);
                counted.push(id);
            }
        }
        let _ = fs::remove_file(&path);
    }
    counted
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
}
