//! `QUIT`'s compaction: the deleted messages leave the mbox, in place.
//!
//! The caller holds the shared write lock and has checked every
//! message's `From ` line at its offset (so a mailbox another program
//! rewrote during the session is left alone).  The plan (the kept
//! messages from the first deleted one on, then whatever was appended
//! during the session) is carried out by
//! [`crate::mailbox::mbox::compaction`]: one forward move, resumable by
//! whoever takes the mailbox next should this process be killed, and one
//! `fdatasync` before `+OK`.  The file is never replaced by another
//! (other programs hold it open).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::super::Committed;
use super::scan::Msg;
use crate::mailbox::lock;
use crate::mailbox::mbox::compaction::{self, Plan};

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
    // arrived during the session; adjacent ranges as one.
    let start = msgs[first].from;
    let mut segments: Vec<(u64, u64)> = Vec::new();
    let mut keep = |from: u64, to: u64| match segments.last_mut() {
        _ if from == to => {}
        Some(last) if last.1 == from => last.1 = to,
        _ => segments.push((from, to)),
    };
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
        keep(m.from, seg_end);
        w += seg_end - m.from;
        kept.push(Msg {
            from: m.from - shift,
            start: m.start - shift,
            end: m.end - shift,
            ..m
        });
    }
    let indexed_end = w;
    keep(snapshot, size);
    let meta = file.metadata()?;
    let plan = Plan {
        dev: meta.dev(),
        ino: meta.ino(),
        size,
        start,
        segments,
    };
    compaction::compact(file, path, held, &plan)?;
    Ok(Compacted {
        kept,
        indexed_end,
        committed,
    })
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
