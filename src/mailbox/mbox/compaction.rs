//! Compacting an mbox in place (POP3's `QUIT` removes deleted messages):
//! the kept parts of the file move down over what is removed, front to
//! back in one pass, then the file is cut and `fdatasync`ed once.  The
//! file itself is never replaced (other programs hold it open).  A
//! compactor killed at any instant leaves what whoever takes the mailbox
//! next needs to finish the move exactly ([`finish`], run by
//! [`super::recovery`]): all the deleted messages go, never some of them.
//!
//! ## Why one forward pass can be resumed
//!
//! Every kept byte moves to a lower offset, and in file order, so a write
//! never touches a byte not yet read, except its own source when a chunk
//! is longer than the gap (the bytes removed before it): a kill in the
//! middle of that write leaves an unknown part of the chunk's source
//! overwritten.  Such a chunk is first saved to the journal, and that is
//! noted; whoever resumes writes the journal in place again.  A chunk no
//! longer than the gap overwrites nothing it reads: writing it again is
//! harmless.  The progress is noted after every chunk, so at most the
//! last chunk is written twice.  Nothing of this needs an `fsync`: a
//! killed process's writes are all in the page cache, in order, for the
//! next process to see.
//!
//! ## The side file `.NAME.compact`
//!
//! Beside the mbox, mode 0600, made by the compactor under the mailbox
//! locks; integers little-endian:
//!
//! ```text
//! offset  size  the plan, written once before anything moves
//!      0     8  magic "MRCOMPA1" (a change of layout changes the magic)
//!      8     8  st_dev of the mbox
//!     16     8  st_ino of the mbox
//!     24     8  SIZE: the mbox's size when planned (nothing beyond moves)
//!     32     8  START: where the first kept byte goes (the first removed
//!               message's `From ` line)
//!     40     8  COUNT: the number of segments
//!     48     8  FNV-1a 64 of bytes 0..48 and of the segments
//!     56     8  zero
//!     64    40  progress slot 0 \  the slot whose checksum is right and
//!    104    40  progress slot 1 /  whose SEQ is higher is the progress
//!    144  16×COUNT  the segments: FROM, TO, the kept ranges [FROM, TO) in
//!               file order; they go to START, one after the other, and
//!               the mbox ends after the last (its final length)
//!      J     …  the journal, J = 144 + 16×COUNT rounded up to 4096
//!
//! offset  size  a progress slot
//!      0     8  SEQ: 1 for the first, one more each time (slot SEQ mod 2)
//!      8     8  SEG: the segment being moved
//!     16     8  DONE: its bytes already in place
//!     24     8  SAVED: 0, or how many of its bytes from DONE on were
//!               saved at J (their destination is being written)
//!     32     8  FNV-1a 64 of bytes 0..32
//! ```
//!
//! Two slots written in turn: a kill in the middle of one leaves the
//! other, one step older, and every step can be redone from the step
//! before (the journal is only reused after the note that its chunk is
//! in place).
//!
//! ## Crash order
//!
//! | step | if killed here, the next locker |
//! |------|---------------------------------|
//! | 1. create the side file; write the plan and slot 1 (SEQ 1, nothing moved) | finds no note: nothing changed; it removes the leftover |
//! | 2. note `compact DEV INO` in the dotlock ([`Note::Compact`]) | finishes the plan from the progress |
//! | 3. each chunk: (if longer than the gap: save it at J, note SAVED) write it in place, note DONE | as above: replays the journal if SAVED, then moves on |
//! | 4. cut the mbox to its final length, `fdatasync` it | cuts it again, syncs it |
//! | 5. remove the side file | finds no side file: nothing to do |
//! | 6. remove the dotlock | — |
//!
//! Only after step 5 does POP3 answer `+OK`.  Whoever finishes a killed
//! compaction first copies the note into its own dotlock, so a kill
//! during the recovery leaves the same work to the next one.  An I/O
//! error after step 2 leaves the dotlock, note and all, in place (the
//! next locker finishes once this process is gone).  Where the journal
//! cannot be written (a full disk), chunks are cut to the gap instead.
//! A finder leaves the mbox as it is, and removes the side file, when
//! the plan is not whole and sane, is about another file, or the mbox's
//! size is neither SIZE nor, everything moved, its final length (another
//! program wrote it meanwhile).
//!
//! What this does not cover is a power failure: nothing but the final
//! `fdatasync` orders what reaches the disk, so a power cut during steps
//! 3-4 can leave the mbox from START on partly moved, partly not.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::mailbox::lock::{self, Note};

/// Bytes moved at a time, and so the journal's size: 500 MB move as fast
/// as with 1 MiB (a quarter slower with 256 KiB), and pop3d stays small.
const CHUNK: usize = 512 << 10;

const MAGIC: &[u8; 8] = b"MRCOMPA1";
const SLOTS_AT: u64 = 64;
const SLOT: usize = 40;
const SEGMENTS_AT: u64 = SLOTS_AT + 2 * SLOT as u64;
/// More segments than this is no plan of ours (one per deleted message).
const MAX_SEGMENTS: u64 = 1 << 26;

/// The side file of the mbox at `mbox` (`.NAME.compact` beside it).
pub fn side_file(mbox: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(mbox.file_name().unwrap_or_default());
    name.push(".compact");
    mbox.with_file_name(name)
}

/// What stays of an mbox from `start` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub dev: u64,
    pub ino: u64,
    /// The mbox's size when planned.
    pub size: u64,
    /// Where the first kept byte goes.
    pub start: u64,
    /// The kept ranges `[from, to)` from `start` on, in file order; they
    /// go to `start`, one after the other.
    pub segments: Vec<(u64, u64)>,
}

impl Plan {
    /// The mbox's length once compacted.
    pub fn final_len(&self) -> u64 {
        self.start + self.segments.iter().map(|(f, t)| t - f).sum::<u64>()
    }

    fn journal_at(&self) -> u64 {
        (SEGMENTS_AT + 16 * self.segments.len() as u64).next_multiple_of(4096)
    }

    /// Ranges in order, each moving down, within the file.
    fn is_sane(&self) -> bool {
        let mut dest = self.start;
        let mut prev_end = self.start;
        for &(from, to) in &self.segments {
            if from < prev_end || to < from || from < dest || to > self.size {
                return false;
            }
            dest += to - from;
            prev_end = to;
        }
        true
    }

    fn checksum(head: &[u8], segments: &[u8]) -> u64 {
        fnv64_from(fnv64(head), segments)
    }

    /// The side file's first bytes: the plan, and slot 1 saying nothing
    /// moved yet.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEGMENTS_AT as usize + 16 * self.segments.len());
        out.extend_from_slice(MAGIC);
        for v in [
            self.dev,
            self.ino,
            self.size,
            self.start,
            self.segments.len() as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut segs = Vec::with_capacity(16 * self.segments.len());
        for &(from, to) in &self.segments {
            segs.extend_from_slice(&from.to_le_bytes());
            segs.extend_from_slice(&to.to_le_bytes());
        }
        let sum = Plan::checksum(&out, &segs);
        out.extend_from_slice(&sum.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&[0; SLOT]);
        out.extend_from_slice(&Progress::FIRST.encode());
        out.extend_from_slice(&segs);
        out
    }

    /// The plan and progress in the side file `side`, if it holds a whole,
    /// sane one.
    fn read(side: &File) -> io::Result<Option<(Plan, Progress)>> {
        let len = side.metadata()?.len();
        let mut head = [0u8; SEGMENTS_AT as usize];
        if len < SEGMENTS_AT {
            return Ok(None);
        }
        side.read_exact_at(&mut head, 0)?;
        let word = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap_or_default());
        let count = word(40);
        if &head[..8] != MAGIC || count > MAX_SEGMENTS || len < SEGMENTS_AT + 16 * count {
            return Ok(None);
        }
        let mut segs = vec![0u8; 16 * count as usize];
        side.read_exact_at(&mut segs, SEGMENTS_AT)?;
        if Plan::checksum(&head[..48], &segs) != word(48) {
            return Ok(None);
        }
        let plan = Plan {
            dev: word(8),
            ino: word(16),
            size: word(24),
            start: word(32),
            segments: segs
                .chunks_exact(16)
                .map(|s| {
                    let w =
                        |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or_default());
                    (w(0), w(8))
                })
                .collect(),
        };
        let slots = &head[SLOTS_AT as usize..];
        let progress = [&slots[..SLOT], &slots[SLOT..2 * SLOT]]
            .into_iter()
            .filter_map(Progress::decode)
            .max_by_key(|p| p.seq);
        Ok(match progress {
            Some(p) if plan.is_sane() && p.fits(&plan) => Some((plan, p)),
            _ => None,
        })
    }
}

/// How far the move got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    seq: u64,
    seg: u64,
    done: u64,
    saved: u64,
}

impl Progress {
    const FIRST: Progress = Progress {
        seq: 1,
        seg: 0,
        done: 0,
        saved: 0,
    };

    fn encode(&self) -> [u8; SLOT] {
        let mut s = [0u8; SLOT];
        for (i, v) in [self.seq, self.seg, self.done, self.saved]
            .into_iter()
            .enumerate()
        {
            s[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        let sum = fnv64(&s[..32]);
        s[32..].copy_from_slice(&sum.to_le_bytes());
        s
    }

    fn decode(s: &[u8]) -> Option<Progress> {
        let w = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or_default());
        (s.len() == SLOT && w(0) > 0 && fnv64(&s[..32]) == w(32)).then(|| Progress {
            seq: w(0),
            seg: w(8),
            done: w(16),
            saved: w(24),
        })
    }

    /// Whether it points into `plan`.
    fn fits(&self, plan: &Plan) -> bool {
        match plan.segments.get(self.seg as usize) {
            Some(&(from, to)) => self.done <= to - from && self.saved <= to - from - self.done,
            None => self.seg == plan.segments.len() as u64 && self.done == 0 && self.saved == 0,
        }
    }

    /// Whether everything is in place (what is left is the cut).
    fn is_end(&self, plan: &Plan) -> bool {
        let rest = &plan.segments[(self.seg as usize).min(plan.segments.len())..];
        self.saved == 0
            && rest
                .iter()
                .enumerate()
                .all(|(k, &(from, to))| to - from == if k == 0 { self.done } else { 0 })
    }
}

const FNV64_START: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv64_from(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn fnv64(bytes: &[u8]) -> u64 {
    fnv64_from(FNV64_START, bytes)
}

/// Carry out `plan` on the mbox `file` at `path`, under the write lock
/// `held`, which has a dotlock.  The mbox is synced when this returns
/// `Ok`.  On an error before anything moved, the mbox is unchanged; after,
/// `held`'s dotlock is left for whoever comes next to finish the move.
pub fn compact(file: &File, path: &Path, held: &lock::Held, plan: &Plan) -> io::Result<()> {
    let side_path = side_file(path);
    // A leftover is the side file of a compactor killed before its note:
    // never used; ours now.
    let _ = std::fs::remove_file(&side_path);
    let side = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&side_path)?;
    let planned = write_at(&side, &plan.encode(), 0).and_then(|()| {
        step(|| {
            held.note(Note::Compact {
                dev: plan.dev,
                ino: plan.ino,
            })
        })
    });
    if let Err(e) = planned {
        let _ = std::fs::remove_file(&side_path);
        return Err(e);
    }
    // From here on the plan is in force.
    let moved = Mover::new(file, &side, plan)
        .run(Progress::FIRST)
        .and_then(|()| cut_and_sync(file, plan.final_len()))
        .and_then(|()| step(|| std::fs::remove_file(&side_path)));
    if moved.is_err() {
        held.leave_for_recovery();
    }
    moved
}

/// Finish the compaction of the mbox at `path` (now `opened`) that a
/// dead holder's dotlock noted.  Returns what was done.
pub fn finish(path: &Path, opened: &Metadata) -> io::Result<Option<String>> {
    let side_path = side_file(path);
    let side = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&side_path)
    {
        Ok(f) => f,
        // Removed at the end: the compaction had finished.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let left_alone = |why: &str| -> io::Result<Option<String>> {
        step(|| std::fs::remove_file(&side_path))?;
        Ok(Some(format!(
            "did not finish the compaction a killed POP3 session began: {why}"
        )))
    };
    let Some((plan, progress)) = Plan::read(&side)? else {
        return left_alone("its side file holds no plan");
    };
    if plan.dev != opened.dev() || plan.ino != opened.ino() {
        return left_alone("its plan is about another file");
    }
    let len = opened.len();
    let final_len = plan.final_len();
    if len != plan.size && !(len == final_len && progress.is_end(&plan)) {
        return left_alone("the mailbox changed since");
    }
    // Positioned writes need a descriptor without O_APPEND (an
    // appender's has it, and Linux then ignores the offset).
    let target = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let m = target.metadata()?;
    if m.dev() != plan.dev || m.ino() != plan.ino {
        return left_alone("its plan is about another file");
    }
    Mover::new(&target, &side, &plan).run(progress)?;
    cut_and_sync(&target, final_len)?;
    step(|| std::fs::remove_file(&side_path))?;
    Ok(Some(
        "finished the compaction a killed POP3 session left half-done".to_string(),
    ))
}

fn cut_and_sync(file: &File, len: u64) -> io::Result<()> {
    step(|| file.set_len(len))?;
    step(|| file.sync_data())
}

/// Moves the segments of a plan, noting its progress in the side file.
struct Mover<'a> {
    mbox: &'a File,
    side: &'a File,
    plan: &'a Plan,
    journal_at: u64,
    /// False once a write to the journal failed (a full disk): then no
    /// chunk is longer than its gap.
    journal: bool,
    seq: u64,
    chunk: usize,
    buf: Vec<u8>,
}

impl<'a> Mover<'a> {
    fn new(mbox: &'a File, side: &'a File, plan: &'a Plan) -> Mover<'a> {
        Mover {
            mbox,
            side,
            plan,
            journal_at: plan.journal_at(),
            journal: true,
            seq: 0,
            chunk: chunk_size(),
            buf: Vec::new(),
        }
    }

    /// Note the progress in the next slot.
    fn note(&mut self, seg: usize, done: u64, saved: u64) -> io::Result<()> {
        self.seq += 1;
        let p = Progress {
            seq: self.seq,
            seg: seg as u64,
            done,
            saved,
        };
        write_at(
            self.side,
            &p.encode(),
            SLOTS_AT + (self.seq % 2) * SLOT as u64,
        )
    }

    /// Move everything from `p` on.
    fn run(&mut self, p: Progress) -> io::Result<()> {
        self.seq = p.seq;
        let mut dest = self.plan.start;
        let segments = &self.plan.segments;
        for (i, &(from, to)) in segments.iter().enumerate().skip(p.seg as usize) {
            if i == p.seg as usize {
                dest = self.plan.start + segments[..i].iter().map(|(f, t)| t - f).sum::<u64>();
            }
            let len = to - from;
            let gap = from - dest;
            let mut done = if i == p.seg as usize { p.done } else { 0 };
            if i == p.seg as usize && p.saved > 0 {
                // Killed while writing a saved chunk in place: again.
                let n = p.saved as usize;
                self.fill(n);
                self.side
                    .read_exact_at(&mut self.buf[..n], self.journal_at)?;
                write_at(self.mbox, &self.buf[..n], dest + done)?;
                done += p.saved;
                self.note(i, done, 0)?;
            }
            while done < len && gap > 0 {
                let mut n = (len - done).min(self.chunk as u64);
                if !self.journal {
                    n = n.min(gap);
                }
                let n = n as usize;
                self.fill(n);
                self.mbox.read_exact_at(&mut self.buf[..n], from + done)?;
                if n as u64 > gap {
                    if write_at(self.side, &self.buf[..n], self.journal_at).is_err() {
                        self.journal = false;
                        continue;
                    }
                    self.note(i, done, n as u64)?;
                }
                write_at(self.mbox, &self.buf[..n], dest + done)?;
                done += n as u64;
                self.note(i, done, 0)?;
            }
            dest += len;
        }
        Ok(())
    }

    fn fill(&mut self, n: usize) {
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
    }
}

/// Write `buf` at `at`: one change to the files.
fn write_at(f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    #[cfg(any(test, feature = "fuzzing"))]
    if let Some(part) = kill_switch::fires(buf.len()) {
        let _ = f.write_all_at(&buf[..part], at);
        kill_switch::die();
    }
    f.write_all_at(buf, at)
}

/// One indivisible change to the files.
fn step<T>(change: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    #[cfg(any(test, feature = "fuzzing"))]
    if let Some(part) = kill_switch::fires(1) {
        if part == 1 {
            let _ = change();
        }
        kill_switch::die();
    }
    change()
}

#[cfg(not(any(test, feature = "fuzzing")))]
fn chunk_size() -> usize {
    CHUNK
}

#[cfg(any(test, feature = "fuzzing"))]
fn chunk_size() -> usize {
    match kill_switch::CHUNK.load(std::sync::atomic::Ordering::Relaxed) {
        0 => CHUNK,
        n => n,
    }
}

/// For the tests (`tests/compaction_killed.rs`; release builds have no
/// such feature): a compaction that stops dead, as a `kill -9` would stop
/// it, in the middle of its Nth change to the files (in a forked child:
/// nothing after runs, no destructor, no cleanup).
#[cfg(any(test, feature = "fuzzing"))]
pub mod kill_switch {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// The exit status of a process stopped by the switch.
    pub const KILLED: i32 = 77;

    /// Bytes moved at a time (0: the real size).
    pub static CHUNK: AtomicUsize = AtomicUsize::new(0);
    /// The change to stop in (1 for the first; 0 for none).
    static AT: AtomicU64 = AtomicU64::new(0);
    static SEEN: AtomicU64 = AtomicU64::new(0);
    static PART: AtomicU64 = AtomicU64::new(0);

    /// How much of the fatal change is made before the process dies.
    #[derive(Debug, Clone, Copy)]
    pub enum Part {
        Nothing,
        /// A part of it (of a write: `1 + seed % (len - 1)` bytes).
        Some(u64),
        All,
    }

    /// Stop in change number `at` (counted from now), after `part` of it.
    pub fn arm(at: u64, part: Part) {
        SEEN.store(0, Ordering::Relaxed);
        PART.store(
            match part {
                Part::Nothing => 0,
                Part::Some(seed) => 1 + seed.min(u64::MAX - 2),
                Part::All => u64::MAX,
            },
            Ordering::Relaxed,
        );
        AT.store(at, Ordering::Relaxed);
    }

    /// Before a change of `len` parts: how many to make before dying, if
    /// this is the fatal one.
    pub(super) fn fires(len: usize) -> Option<usize> {
        let at = AT.load(Ordering::Relaxed);
        if at == 0 || SEEN.fetch_add(1, Ordering::Relaxed) + 1 != at {
            return None;
        }
        Some(match PART.load(Ordering::Relaxed) {
            0 => 0,
            u64::MAX => len,
            _ if len < 2 => 0,
            seed => 1 + ((seed - 1) % (len as u64 - 1)) as usize,
        })
    }

    pub(super) fn die() -> ! {
        // SAFETY: _exit ends the process at once, as a kill would.
        unsafe { libc::_exit(KILLED) }
    }

    /// Held by the tests that fork, one at a time: a child holds copies
    /// of every descriptor open at the fork (another test's locked mbox)
    /// until it closes them.  (They have a test program of their own, so
    /// no other test's files are open.)
    pub static FORKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        FORKING.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` in a forked child holding only the descriptors `keep`
    /// (and 0-2); it exits with what `f` returns, 101 if it panicked.
    pub fn in_child(keep: &[i32], f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` and exits.
        match unsafe { libc::fork() } {
            0 => {
                crate::privs::mark_forked_child();
                crate::privs::close_other_descriptors(keep);
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                // SAFETY: ends the child without running the parent's
                // destructors or the test harness.
                unsafe { libc::_exit(code.unwrap_or(101)) }
            }
            pid => pid,
        }
    }

    /// Wait for the child `pid`: its exit status, or minus its signal.
    pub fn wait(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFSIGNALED(status) {
            -libc::WTERMSIG(status)
        } else {
            libc::WEXITSTATUS(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_for(text: &[u8], start: u64, segments: Vec<(u64, u64)>) -> Plan {
        Plan {
            dev: 1,
            ino: 2,
            size: text.len() as u64,
            start,
            segments,
        }
    }

    /// What `plan` leaves of `text`.
    fn expected(text: &[u8], plan: &Plan) -> Vec<u8> {
        let mut out = text[..plan.start as usize].to_vec();
        for &(f, t) in &plan.segments {
            out.extend_from_slice(&text[f as usize..t as usize]);
        }
        out
    }

    fn files(name: &str, text: &[u8]) -> (std::path::PathBuf, File, File) {
        let d = std::env::temp_dir().join(format!("mr-compaction-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("mbox"), text).unwrap();
        let rw = |p: std::path::PathBuf| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .unwrap()
        };
        (d.clone(), rw(d.join("mbox")), rw(d.join("side")))
    }

    #[test]
    fn plans_read_back_as_written_and_damage_is_no_plan() {
        let text = vec![b'x'; 1000];
        let plan = plan_for(&text, 10, vec![(50, 60), (70, 900), (950, 1000)]);
        let (d, _, side) = files("plan", &text);
        side.write_all_at(&plan.encode(), 0).unwrap();
        assert_eq!(
            Plan::read(&side).unwrap(),
            Some((plan.clone(), Progress::FIRST))
        );
        assert_eq!(plan.final_len(), 10 + 10 + 830 + 50);
        // The newer slot wins; a torn one does not count.
        let mut m = Mover::new(&side, &side, &plan);
        m.seq = 1;
        m.note(1, 20, 0).unwrap();
        let newer = Progress {
            seq: 2,
            seg: 1,
            done: 20,
            saved: 0,
        };
        assert_eq!(Plan::read(&side).unwrap().unwrap().1, newer);
        side.write_all_at(&[0xff; 3], SLOTS_AT + 8).unwrap();
        assert_eq!(Plan::read(&side).unwrap().unwrap().1, Progress::FIRST);
        side.write_all_at(&[0xff; 3], SLOTS_AT + SLOT as u64 + 8)
            .unwrap();
        assert_eq!(Plan::read(&side).unwrap(), None);
        // Any byte of the plan changed: no plan.
        for at in [0u64, 9, 30, 45, 50, SEGMENTS_AT + 3, SEGMENTS_AT + 40] {
            side.write_all_at(&plan.encode(), 0).unwrap();
            let mut b = [0u8];
            side.read_exact_at(&mut b, at).unwrap();
            side.write_all_at(&[b[0] ^ 1], at).unwrap();
            assert_eq!(Plan::read(&side).unwrap(), None, "{at}");
        }
        side.set_len(SEGMENTS_AT + 8).unwrap();
        assert_eq!(Plan::read(&side).unwrap(), None);
        // Ranges out of order, or moving up, are no plan of ours.
        for segments in [vec![(60, 70), (50, 55)], vec![(5, 20)], vec![(50, 2000)]] {
            let bad = plan_for(&text, 10, segments);
            side.write_all_at(&bad.encode(), 0).unwrap();
            assert_eq!(Plan::read(&side).unwrap(), None);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn moves_with_and_without_the_journal_come_to_the_same() {
        let text: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let plans = [
            // A small gap: chunks longer than the gap, journaled.
            plan_for(&text, 100, vec![(130, 20_000)]),
            // Gaps growing past the chunk.
            plan_for(&text, 0, vec![(10, 500), (600, 5000), (9000, 19_000)]),
            // Everything removed.
            plan_for(&text, 0, vec![]),
            plan_for(&text, 19_990, vec![(20_000, 20_000)]),
        ];
        for (k, plan) in plans.iter().enumerate() {
            for journal in [true, false] {
                let (d, mbox, side) = files(&format!("move{k}{journal}"), &text);
                side.write_all_at(&plan.encode(), 0).unwrap();
                let mut m = Mover::new(&mbox, &side, plan);
                m.chunk = 1024;
                m.journal = journal;
                m.run(Progress::FIRST).unwrap();
                mbox.set_len(plan.final_len()).unwrap();
                assert_eq!(
                    std::fs::read(d.join("mbox")).unwrap(),
                    expected(&text, plan)
                );
                let (_, p) = Plan::read(&side).unwrap().unwrap();
                assert!(p.is_end(plan), "{p:?}");
                std::fs::remove_dir_all(&d).unwrap();
            }
        }
    }
}
