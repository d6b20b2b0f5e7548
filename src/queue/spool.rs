//! The queue directory on disk: creating, locking, rewriting and removing
//! jobs so that a crash at any instant loses nothing and no job is worked
//! on twice.
//!
//! ## Files of one job `ID`
//!
//! | file | written by | meaning |
//! |------|------------|---------|
//! | `dfID` | submission | the body, exactly as it will be sent |
//! | `qfID` | submission, rewritten by the runner | the control file ([`super::qf`]); its existence *is* the job |
//! | `tfID` | anyone about to create or replace `qfID` | the next control file, not yet valid |
//! | `QfID` | the runner | a control file set aside because it cannot be processed ("lost") |
//! | `hfID` | the admin | a held (quarantined) control file |
//! | `lfID` | the runner, during an attempt | the mailboxes an LMTP server already accepted the message for (format and purpose: `src/deliver/lmtp.rs`); removed once `qfID` is rewritten or removed |
//!
//! If `qf/` and `df/` subdirectories exist (sendmail's optional layout),
//! control and data files live there.  The subdirectory `new/` holds the
//! express run's wake-up markers, not jobs ([`crate::runner::express`]).
//!
//! ## States and crash ordering
//!
//! A new job is made in this order; a crash between any two steps leaves
//! one of the states in the right-hand column, and the next queue run turns
//! it back into "nothing":
//!
//! | step | on disk after it | if we crash here |
//! |------|------------------|------------------|
//! | 1. create `tfID` (`O_EXCL`, then `flock`) — reserves the id | `tf` | stale `tf`: removed |
//! | 2. check no `qfID`/`dfID` exists | `tf` | as above |
//! | 3. create `dfID` (`O_EXCL`), write the body | `tf`, `df` | stale `tf` + `df`: both removed |
//! | 4. write the control records into `tfID`, `fsync` both files (at once: one journal commit) | `tf`, `df` | as above |
//! | 5. `rename(tfID, qfID)` without replacing, `fsync` the directory | `qf`, `df` | a complete job |
//!
//! If that last `fsync` fails, the job is removed again before the error
//! is reported: the caller will send the message again.  A message over
//! an outbound limit ([`crate::limits`]) takes the same steps, but step 5
//! renames `tfID` to `hfID`: a held job, as durable as any, that no runner
//! takes until the admin releases it.
//!
//! Only after step 5 does `sendmail` exit 0 (or the SMTP server answer
//! `250`).  A rewrite after a delivery attempt writes `tfID`, `fsync`s it,
//! renames it over `qfID` and `fsync`s the directory, so a reader sees the
//! old or the new control file, never a mix.  A finished job is removed
//! `qf` first, then `df` (a lone `df` is a leftover the sweep removes).
//!
//! A `tf` is "stale" when nobody holds its lock and it is older than
//! [`STALE_TEMP_AGE`] (two seconds); a live writer always holds the lock,
//! so what a killed `sendmail` left is gone after the next queue run.
//!
//! ## Locks
//!
//! Whoever works on a job holds an exclusive `flock` on its `qf` (as
//! sendmail does), taken non-blocking: a locked job is skipped, and shown
//! with `*` by `mailq`.  Readers (`mailq`, `mailroom queue`) hold a shared
//! `flock` only while they read; a would-be worker waits those out rather
//! than skip a job nobody works on.  After locking, the holder checks that the path
//! still names the inode it locked, so a job rewritten meanwhile is never
//! processed from its old version.  A delivery child the runner forks
//! keeps the locked descriptor open ([`Job::lock_fd`]): the lock lasts
//! until the child is done, even when the runner is killed first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::id::{IdGenerator, QueueId};
use super::qf::{Envelope, QfError};

/// Mode of queue files: the owner (the submitting user or root) and the
/// submission group may read them; only the queue's own programs write.
pub const FILE_MODE: u32 = 0o640;

/// A `tf` file nobody has locked for this long is a leftover of a crash.
/// Every writer locks its `tf` right after creating it, so the age only
/// covers that instant (and a creator re-checks its `tf` after locking).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(2);

/// A `df` with neither `qf` nor `tf` for this long is a leftover too.
pub const STALE_DATA_AGE: Duration = Duration::from_secs(86400);

/// One queue directory.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
    qf_dir: PathBuf,
    df_dir: PathBuf,
}

/// A job whose `qf` is locked by this process.
#[derive(Debug)]
pub struct Job {
    pub id: QueueId,
    /// The locked control file (the lock lives as long as this handle).
    file: File,
    qf_path: PathBuf,
    df_path: PathBuf,
    queue: Queue,
}

/// A message being created: `tf` reserved and locked, `df` open.
#[derive(Debug)]
pub struct Draft {
    pub id: QueueId,
    tf: File,
    df: File,
    tf_path: PathBuf,
    df_path: PathBuf,
    qf_path: PathBuf,
    queue: Queue,
    committed: bool,
}

/// Why a job could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Format(QfError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => f.write_str(&crate::exit::io_reason(e)),
            ReadError::Format(e) => write!(f, "{e}"),
        }
    }
}

impl Queue {
    /// The queue in `dir` (nothing is touched yet).
    pub fn new(dir: impl Into<PathBuf>) -> Queue {
        let dir = dir.into();
        let sub = |name: &str| {
            let p = dir.join(name);
            if p.is_dir() { p } else { dir.clone() }
        };
        Queue {
            qf_dir: sub("qf"),
            df_dir: sub("df"),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the control files live (`qf/` in sendmail's split layout).
    pub fn control_dir(&self) -> &Path {
        &self.qf_dir
    }

    /// The path of file `prefix` + `id` (`qf`, `df`, `tf`, `Qf`, `hf`, `xf`).
    pub fn path(&self, prefix: &str, id: &QueueId) -> PathBuf {
        let dir = if prefix == "df" {
            &self.df_dir
        } else {
            &self.qf_dir
        };
        dir.join(format!("{prefix}{id}"))
    }

    /// `fsync` the directories holding control and data files.
    pub fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.qf_dir)?.sync_all()?;
        if self.df_dir != self.qf_dir {
            File::open(&self.df_dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Reserve a new id and open its files (steps 1–3 of the crash table).
    pub fn create(&self, ids: &mut IdGenerator, now: i64) -> io::Result<Draft> {
        for _ in 0..3600 {
            let id = ids.next(now);
            let tf_path = self.path("tf", &id);
            let tf = match create_excl(&tf_path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            if !try_flock(&tf)? || !still_names(&tf_path, &tf) {
                // Someone else just made the same name, or a sweep took
                // the new file for a leftover; let them have it.
                continue;
            }
            let qf_path = self.path("qf", &id);
            let df_path = self.path("df", &id);
            if qf_path.symlink_metadata().is_ok() {
                let _ = fs::remove_file(&tf_path);
                continue;
            }
            let df = match create_excl(&df_path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = fs::remove_file(&tf_path);
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        continue;
                    }
                    return Err(e);
                }
            };
            return Ok(Draft {
                id,
                tf,
                df,
                tf_path,
                df_path,
                qf_path,
                queue: self.clone(),
                committed: false,
            });
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free queue id in this second",
        ))
    }

    /// The ids of all control files, in directory order (the order
    /// sendmail's `mailq` lists equal-priority jobs in).
    pub fn ids(&self) -> io::Result<Vec<QueueId>> {
        self.ids_with("qf")
    }

    /// Ids of the control files with prefix `qf` (active), `hf` (held) or
    /// `Qf` (set aside), in directory order.
    pub fn ids_with(&self, prefix: &str) -> io::Result<Vec<QueueId>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.qf_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(rest) = name.strip_prefix(prefix)
                && let Some(id) = QueueId::parse(rest)
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Hold a job: its control file becomes `hfID`, which no runner takes.
    /// False when the job is being delivered right now (or is gone).
    pub fn hold(&self, id: &QueueId) -> io::Result<bool> {
        let Some(job) = self.lock(id)? else {
            return Ok(false);
        };
        fs::rename(&job.qf_path, self.path("hf", id))?;
        self.sync_dir()?;
        Ok(true)
    }

    /// Release a held (or set-aside) job back into the queue.  Its
    /// quarantine reason goes (a queued job is not held); should a runner
    /// take the job before that rewrite, the runner drops the reason when
    /// it rewrites the job, or removes the job.
    pub fn release(&self, id: &QueueId) -> io::Result<bool> {
        for prefix in ["hf", "Qf"] {
            let p = self.path(prefix, id);
            if p.symlink_metadata().is_ok() {
                rename_noreplace(&p, &self.path("qf", id))?;
                self.sync_dir()?;
                if let Ok(Some(mut job)) = self.lock(id)
                    && let Ok(mut env) = job.envelope()
                    && env.quarantine.take().is_some()
                {
                    job.rewrite(&env)?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Read a held or set-aside job's control file.
    pub fn read_with(&self, prefix: &str, id: &QueueId) -> Result<Envelope, ReadError> {
        let bytes = fs::read(self.path(prefix, id)).map_err(ReadError::Io)?;
        Envelope::parse(&bytes).map_err(ReadError::Format)
    }

    /// Read a job's control file without locking it.
    pub fn read(&self, id: &QueueId) -> Result<Envelope, ReadError> {
        let bytes = fs::read(self.path("qf", id)).map_err(ReadError::Io)?;
        Envelope::parse(&bytes).map_err(ReadError::Format)
    }

    /// Is the job locked by someone (a runner working on it)?
    pub fn is_locked(&self, id: &QueueId) -> bool {
        match File::open(self.path("qf", id)) {
            Ok(f) => {
                // SAFETY: plain flock on a valid descriptor.
                let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
                rc != 0
            }
            Err(_) => false,
        }
    }

    /// A job's control file as it is now, and whether someone holds its
    /// lock, from one open (what `mailq` needs of each job).
    pub fn peek(&self, id: &QueueId) -> io::Result<(Vec<u8>, bool)> {
        self.peek_with("qf", id)
    }

    /// [`Queue::peek`] of a job's `prefix` file (`qf`, or `hf` for a held
    /// one).
    pub fn peek_with(&self, prefix: &str, id: &QueueId) -> io::Result<(Vec<u8>, bool)> {
        let mut f = File::open(self.path(prefix, id))?;
        // SAFETY: plain flock on a valid descriptor; a shared lock taken
        // here is released when `f` closes.
        let locked = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0;
        let mut bytes = Vec::with_capacity(1024);
        f.read_to_end(&mut bytes)?;
        Ok((bytes, locked))
    }

    /// Size of the job's data file, as `mailq` prints it.
    pub fn data_size(&self, id: &QueueId) -> Option<u64> {
        fs::metadata(self.path("df", id)).ok().map(|m| m.len())
    }

    /// Lock a job for work.  `Ok(None)` when another process holds it or
    /// it has just disappeared.
    pub fn lock(&self, id: &QueueId) -> io::Result<Option<Job>> {
        self.lock_with("qf", id)
    }

    /// Lock a job whose control file has the given prefix: `hf` to remove a
    /// held job without first releasing it (a release would let a runner
    /// send it in between).
    pub fn lock_with(&self, prefix: &str, id: &QueueId) -> io::Result<Option<Job>> {
        let qf_path = self.path(prefix, id);
        for _ in 0..5 {
            let file = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&qf_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if !try_flock(&file)? {
                return Ok(None);
            }
            // The file may have been replaced between open and lock.
            let held = file.metadata()?;
            match qf_path.symlink_metadata() {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Some(Job {
                        id: id.clone(),
                        file,
                        qf_path,
                        df_path: self.path("df", id),
                        queue: self.clone(),
                    }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Remove what crashed writers left behind: unlocked `tf` files older
    /// than [`STALE_TEMP_AGE`] (with their `df` when no `qf` exists), and
    /// `df` files without `qf` or `tf` older than [`STALE_DATA_AGE`].
    /// Returns the names removed.
    pub fn remove_stale(&self) -> io::Result<Vec<String>> {
        self.remove_stale_older_than(STALE_TEMP_AGE, STALE_DATA_AGE)
    }

    /// [`Queue::remove_stale`] with explicit ages.
    pub fn remove_stale_older_than(
        &self,
        temp_age: Duration,
        data_age: Duration,
    ) -> io::Result<Vec<String>> {
        let listing = self.listing()?;
        self.remove_stale_in(&listing, temp_age, data_age)
    }

    /// Every queue file name, from one read of the directory (or of the
    /// `qf/` and `df/` subdirectories).  A pass over a large queue reads
    /// the directory once and answers "does `qfID` exist" from memory.
    pub fn listing(&self) -> io::Result<Listing> {
        let mut names = std::collections::HashSet::new();
        let mut read = |dir: &Path| -> io::Result<()> {
            for entry in fs::read_dir(dir)? {
                if let Ok(name) = entry?.file_name().into_string() {
                    names.insert(name);
                }
            }
            Ok(())
        };
        read(&self.qf_dir)?;
        if self.df_dir != self.qf_dir {
            read(&self.df_dir)?;
        }
        Ok(Listing { names })
    }

    /// The stale sweep over a listing already read.
    pub fn remove_stale_in(
        &self,
        listing: &Listing,
        temp_age: Duration,
        data_age: Duration,
    ) -> io::Result<Vec<String>> {
        let mut removed = Vec::new();
        let now = std::time::SystemTime::now();
        let old = |path: &Path, age: Duration| {
            path.symlink_metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d >= age)
        };
        for id in listing.ids_with("tf") {
            let path = self.path("tf", &id);
            if !old(&path, temp_age) {
                continue;
            }
            let Ok(f) = File::open(&path) else { continue };
            if !try_flock(&f)? {
                continue; // a live writer
            }
            if !listing.has("qf", &id) && fs::remove_file(self.path("df", &id)).is_ok() {
                removed.push(format!("df{id}"));
            }
            if fs::remove_file(&path).is_ok() {
                removed.push(format!("tf{id}"));
            }
        }
        for id in listing.ids_with("df") {
            if ["qf", "tf", "Qf", "hf"].iter().any(|p| listing.has(p, &id)) {
                continue;
            }
            // Not in the listing may still mean "created since": ask the
            // file system before removing anything.
            if ["qf", "tf", "Qf", "hf"]
                .iter()
                .any(|p| self.path(p, &id).symlink_metadata().is_ok())
            {
                continue;
            }
            let path = self.path("df", &id);
            if old(&path, data_age) && fs::remove_file(&path).is_ok() {
                removed.push(format!("df{id}"));
            }
        }
        // An LMTP reply journal outlives its job only by a crash between
        // the job's removal and its own.
        for id in listing.ids_with("lf") {
            if ["qf", "tf", "Qf", "hf"]
                .iter()
                .any(|p| self.path(p, &id).symlink_metadata().is_ok())
            {
                continue;
            }
            let path = self.path("lf", &id);
            if old(&path, temp_age) && fs::remove_file(&path).is_ok() {
                removed.push(format!("lf{id}"));
            }
        }
        if !removed.is_empty() {
            self.sync_dir()?;
        }
        Ok(removed)
    }
}

/// The names in a queue directory at one moment ([`Queue::listing`]).
#[derive(Debug, Default)]
pub struct Listing {
    names: std::collections::HashSet<String>,
}

impl Listing {
    /// Whether `PREFIXid` was present.
    pub fn has(&self, prefix: &str, id: &QueueId) -> bool {
        self.names.contains(&format!("{prefix}{id}"))
    }

    /// Every name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The ids of files named `PREFIXid`, in no particular order.
    pub fn ids_with(&self, prefix: &str) -> Vec<QueueId> {
        self.names
            .iter()
            .filter_map(|n| n.strip_prefix(prefix).and_then(QueueId::parse))
            .collect()
    }
}

/// When a job was last tried and how often, read from the first records
/// of its control file without locking it: a queue run skips jobs whose
/// retry time has not come without opening them for writing.  `None`
/// when the file is gone or does not start as a control file does (the
/// caller then locks and reads it properly).
pub fn peek_schedule(path: &Path) -> Option<(u32, i64)> {
    let mut f = File::open(path).ok()?;
    let mut buf = [0u8; 512];
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    let (mut attempts, mut last) = (None, None);
    // sendmail and we write V, T, K, N, P first; stop at anything else.
    for line in buf[..len].split(|&b| b == b'\n') {
        let (Some(&kind), Ok(rest)) = (line.first(), std::str::from_utf8(line.get(1..)?)) else {
            break;
        };
        match kind {
            b'K' => last = rest.parse::<i64>().ok(),
            b'N' => attempts = rest.parse::<u32>().ok(),
            b'V' | b'T' | b'P' => {}
            _ => break,
        }
        if attempts.is_some() && last.is_some() {
            break;
        }
    }
    Some((attempts?, last?))
}

impl Draft {
    /// The data file, for the body to be written into.
    pub fn data(&mut self) -> &mut File {
        &mut self.df
    }

    /// Make the job real (steps 3–5): `fsync` the data, write and `fsync`
    /// the control file, rename it into place without replacing anything,
    /// `fsync` the directory.  `env.df_inode` is filled in here.
    pub fn commit(self, env: &mut Envelope) -> io::Result<QueueId> {
        let qf = self.qf_path.clone();
        self.commit_as(env, qf)
    }

    /// Commit the job held (`hfID`, sendmail's quarantine, with the
    /// reason in `env.quarantine`): durable like any job, listed by
    /// `mailq`, taken by no runner until it is released.
    pub fn commit_held(self, env: &mut Envelope) -> io::Result<QueueId> {
        let hf = self.queue.path("hf", &self.id);
        self.commit_as(env, hf)
    }

    /// Steps 4 and 5, with the control file renamed to `target`.
    fn commit_as(mut self, env: &mut Envelope, target: PathBuf) -> io::Result<QueueId> {
        self.df.flush()?;
        let m = self.df.metadata()?;
        env.df_inode = Some(format!(
            "{}/{}/{}",
            libc::major(m.dev()),
            libc::minor(m.dev()),
            m.ino()
        ));
        self.tf.write_all(&env.to_bytes())?;
        sync_both(&self.df, &self.tf)?;
        rename_noreplace(&self.tf_path, &target)?;
        if let Err(e) = self.queue.sync_dir() {
            // Not known to be on disk, and the caller hears of a failure
            // and will send again: take the job back (qf first; the drop
            // removes df), so that the retry is the only copy.  Its lock
            // is still ours, so no runner has started on it.
            let _ = fs::remove_file(&target);
            return Err(e);
        }
        self.committed = true;
        Ok(self.id.clone())
    }
}

/// `fsync` two files at once: both start writing back, then each is
/// synced, one of them from a second thread, so the file system can put
/// both in one journal commit and one cache flush rather than two in a
/// row (about a fifth of a submission's time on ext4).  Both are synced
/// when this returns `Ok`.
fn sync_both(a: &File, b: &File) -> io::Result<()> {
    for f in [a, b] {
        // SAFETY: a hint on a descriptor we own; failure changes nothing
        // (the fsyncs below are what count).
        unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    std::thread::scope(|s| {
        // No thread to be had (a process limit): one after the other.
        let Ok(other) = std::thread::Builder::new().spawn_scoped(s, || a.sync_all()) else {
            return a.sync_all().and(b.sync_all());
        };
        let mine = b.sync_all();
        let theirs = other.join().unwrap_or_else(|_| a.sync_all());
        mine.and(theirs)
    })
}

impl Drop for Draft {
    fn drop(&mut self) {
        if !self.committed {
            // df first: a lone tf is recognisably unfinished.
            let _ = fs::remove_file(&self.df_path);
            let _ = fs::remove_file(&self.tf_path);
        }
    }
}

impl Job {
    /// Read the locked control file.
    pub fn envelope(&mut self) -> Result<Envelope, ReadError> {
        use std::io::Seek;
        let mut bytes = Vec::new();
        self.file
            .seek(io::SeekFrom::Start(0))
            .map_err(ReadError::Io)?;
        self.file.read_to_end(&mut bytes).map_err(ReadError::Io)?;
        Envelope::parse(&bytes).map_err(ReadError::Format)
    }

    /// The descriptor holding the job's lock, for a child process that
    /// must keep the job locked while it works on it (the lock lasts while
    /// any process holds it open).
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    /// The path of the data file.
    pub fn data_path(&self) -> &Path {
        &self.df_path
    }

    /// Replace the control file: `tf` written, `fsync`ed, renamed over
    /// `qf`, directory `fsync`ed.  The lock moves to the new file.
    pub fn rewrite(&mut self, env: &Envelope) -> io::Result<()> {
        let tf_path = self.queue.path("tf", &self.id);
        let mut tries = 0;
        let mut tf = loop {
            match create_excl(&tf_path) {
                Ok(f) => break f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 50 => {
                    tries += 1;
                    // A crashed writer's leftover (we hold the qf lock, so
                    // nobody else may be rewriting this job): take it over
                    // once nobody holds it.
                    if let Ok(old) = File::open(&tf_path)
                        && try_flock(&old)?
                    {
                        let _ = fs::remove_file(&tf_path);
                        continue;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        };
        if !try_flock(&tf)? || !still_names(&tf_path, &tf) {
            return Err(io::Error::other(format!(
                "{}: taken away while being created",
                tf_path.display()
            )));
        }
        let result = (|| {
            tf.write_all(&env.to_bytes())?;
            tf.sync_all()?;
            fs::rename(&tf_path, &self.qf_path)?;
            self.queue.sync_dir()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tf_path);
            return result;
        }
        self.file = tf;
        // The new control file now says what the LMTP replies said.
        let _ = fs::remove_file(self.queue.path("lf", &self.id));
        Ok(())
    }

    /// The job is done: remove `qf`, then `df`.
    ///
    /// `qf` first, so a `qf` always has its `df`: a crash between the two
    /// leaves a lone `df`, which the stale sweep removes, never a control
    /// file whose body is gone (that would be set aside as lost).  The
    /// removal is not `fsync`ed: every delivery it records is already
    /// durable, so a crash that brings the job back costs a duplicate,
    /// never a loss, and a busy queue saves a directory sync per message
    /// (Postfix makes the same trade).
    pub fn finish(self) -> io::Result<()> {
        fs::remove_file(&self.qf_path)?;
        let _ = fs::remove_file(self.queue.path("lf", &self.id));
        match fs::remove_file(&self.df_path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Set the control file aside as `QfID` (sendmail's "lost" queue file)
    /// so that it is never retried in a loop.
    pub fn set_aside(self) -> io::Result<PathBuf> {
        let lost = self.queue.path("Qf", &self.id);
        fs::rename(&self.qf_path, &lost)?;
        self.queue.sync_dir()?;
        Ok(lost)
    }
}

/// Whether `path` still names the open `file` (not removed or replaced).
fn still_names(path: &Path, file: &File) -> bool {
    match (path.symlink_metadata(), file.metadata()) {
        (Ok(p), Ok(f)) => p.ino() == f.ino() && p.dev() == f.dev(),
        _ => false,
    }
}

/// Create a new queue file that must not exist yet.
fn create_excl(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Non-blocking exclusive `flock`; false when someone else works on the
/// file.  `mailq` and `mailroom queue` hold a shared lock for the instant
/// they read a control file (see [`Queue::peek`]); a job only looked at is
/// free, so those readers are waited out (up to [`PEEK_WAIT`]) instead of
/// the job being skipped: the one run `sendmail` starts for a fresh
/// message would otherwise leave it to the next periodic queue run.
fn try_flock(f: &File) -> io::Result<bool> {
    let fd = f.as_raw_fd();
    let until = std::time::Instant::now() + PEEK_WAIT;
    loop {
        // SAFETY: plain flock on a valid descriptor.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => {}
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
        // Held.  A shared lock we can join means readers only; one we
        // cannot means an exclusive holder: someone works on the job.
        // SAFETY: as above; the probe lock is dropped at once.
        let readers_only = unsafe { libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) } == 0;
        if readers_only {
            // SAFETY: as above.
            unsafe { libc::flock(fd, libc::LOCK_UN) };
        }
        if !readers_only || std::time::Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// How long [`try_flock`] waits for readers of a control file to finish.
/// A read takes microseconds; this is for a reader descheduled mid-read.
const PEEK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `rename(from, to)` that fails with `EEXIST` instead of replacing `to`
/// (renameat2 `RENAME_NOREPLACE`; where the file system lacks it, a hard
/// link plus unlink gives the same guarantee).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let f = CString::new(from.as_os_str().as_bytes())?;
    let t = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both strings are valid and NUL-terminated.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests;
