//! `QUIT`'s compaction: the deleted messages leave the mbox, in place.
//!
//! The caller holds the shared write lock and has checked every
//! message's `From ` line at its offset (so a mailbox another program
//! rewrote during the session is left alone).  From the first deleted
//! message on, the kept messages and whatever was appended during the
//! session are written to the side file `.NAME.compact` (synced), the
//! dotlock notes it ([`Note::Compact`]), the side file is copied over the
//! mbox from the first deleted message on, and the mbox is cut at the end
//! of the copy and `fsync`ed before `+OK`.  A session killed before the
//! note changed nothing; one killed after it left a note that whoever
//! takes the mailbox next finishes ([`crate::mailbox::mbox::recovery`]).
//! The file is never replaced by another (other programs hold it open).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::super::{Committed, READ_BUF};
use super::scan::Msg;
use crate::mailbox::lock::{self, Note};
use crate::mailbox::mbox::recovery::{compact_side_file, copy_range};

/// What a compaction left.
pub(super) struct Compacted {
    /// The messages kept, at their new offsets.
    pub kept: Vec<Msg>,
    /// Where the last kept message's region ends (mail that arrived
    /// during the session follows, not yet indexed).
    pub indexed_end: u64,
    pub committed: Committed,
}

/// Remove `doomed` (indices into `msgs`, the messages found in the first
/// `snapshot` bytes of the mbox `file` at `path`, now `size` bytes) under
/// the write lock `held`.
pub(super) fn remove(
    file: &File,
    path: &Path,
    held: &lock::Held,
    msgs: &[Msg],
    doomed: &[usize],
    snapshot: u64,
    size: u64,
) -> io::Result<Compacted> {
    let mut is_doomed = vec![false; msgs.len()];
    for &i in doomed {
        is_doomed[i] = true;
    }
    let first = doomed.iter().copied().min().unwrap_or(0);
    // What stays from `start` on: the kept messages, then whatever
    // arrived during the session.
    let start = msgs[first].from;
    let mut segments: Vec<(u64, u64)> = Vec::new();
    let mut kept = Vec::with_capacity(msgs.len() - doomed.len());
    kept.extend_from_slice(&msgs[..first]);
    let mut committed = Committed::default();
    let mut w = start;
    for (i, &doomed_here) in is_doomed.iter().enumerate().skip(first) {
        let m = msgs[i];
        let seg_end = msgs.get(i + 1).map_or(snapshot, |n| n.from);
        if doomed_here {
            committed.deleted += 1;
            committed.deleted_bytes += m.size;
            continue;
        }
        let shift = m.from - w;
        segments.push((m.from, seg_end));
        w += seg_end - m.from;
        kept.push(Msg {
            from: m.from - shift,
            start: m.start - shift,
            end: m.end - shift,
            ..m
        });
    }
    let indexed_end = w;
    segments.push((snapshot, size));
    let tail_len = w - start + (size - snapshot);
    rewrite_tail(file, path, held, start, &segments, tail_len)?;
    Ok(Compacted {
        kept,
        indexed_end,
        committed,
    })
}

/// Replace everything from `start` on with `segments` (ranges of the
/// file, in order, `tail_len` bytes in all), under the write lock.
///
/// Crash-safe when the spool lets us write next to the mbox: the tail
/// goes to a side file first (synced), the dotlock notes it
/// ([`Note::Compact`]), and only then is the side file copied over the
/// mbox; whoever finds the dotlock stale finishes the copy
/// ([`crate::mailbox::mbox::recovery`]).  Otherwise (no dotlock, no
/// side file) the segments are copied down in place: a crash midway
/// then leaves a damaged tail.
fn rewrite_tail(
    file: &File,
    path: &Path,
    held: &lock::Held,
    start: u64,
    segments: &[(u64, u64)],
    tail_len: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    let side_path = compact_side_file(path);
    let side = if held.has_dotlock() {
        // A leftover is a side file whose writer died before its note:
        // never used; ours now.
        let _ = std::fs::remove_file(&side_path);
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&side_path)
            .ok()
    } else {
        None
    };
    let Some(side) = side else {
        let mut w = start;
        for &(from, to) in segments {
            copy_down(file, from, to, w, &mut buf)?;
            w += to - from;
        }
        file.set_len(w)?;
        return file.sync_all();
    };
    let written: io::Result<()> = (|| {
        let mut w = 0u64;
        for &(from, to) in segments {
            copy_range(file, from, &side, w, to - from)?;
            w += to - from;
        }
        side.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&side_path);
        return Err(e);
    }
    let m = file.metadata()?;
    held.touch();
    held.note(Note::Compact {
        start,
        len: tail_len,
        dev: m.dev(),
        ino: m.ino(),
    });
    copy_range(&side, 0, file, start, tail_len)?;
    file.set_len(start + tail_len)?;
    file.sync_all()?;
    std::fs::remove_file(&side_path)
}

/// Copy `[from, to)` down to `dest` (`dest <= from`), front to back.
fn copy_down(file: &File, from: u64, to: u64, dest: u64, buf: &mut [u8]) -> io::Result<()> {
    if dest == from {
        return Ok(());
    }
    let mut r = from;
    let mut w = dest;
    while r < to {
        let n = ((to - r) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], r)?;
        file.write_all_at(&buf[..n], w)?;
        r += n as u64;
        w += n as u64;
    }
    Ok(())
}

/// Signals that would stop a rewrite halfway are held until it is done.
pub(super) struct BlockSignals(libc::sigset_t);

impl BlockSignals {
    pub(super) fn new() -> BlockSignals {
        // SAFETY: plain signal-mask manipulation of this thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGALRM,
                libc::SIGPIPE,
            ] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            BlockSignals(old)
        }
    }
}

impl Drop for BlockSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
