//! An mbox as a POP3 maildrop.
//!
//! ## Locks
//!
//! * The session holds `flock(LOCK_EX)` on the mbox for its whole life:
//!   a second POP3 session gets `[IN-USE]`; the kernel drops it when the
//!   process dies.  Delivery and other readers use `fcntl` and dotlocks,
//!   which `flock` does not touch, so mail keeps arriving meanwhile.
//! * Opening (the scan) and `QUIT` (the rewrite) take the mailbox locks
//!   every program shares ([`crate::mailbox::lock`]).
//!
//! ## The index, and where UIDLs come from
//!
//! Opening finds every message (a `From ` line at the start of the file
//! or after an empty line), its size as sent, and its UIDL: the first 16
//! hex digits of MD5 over the `From ` line (sender and delivery time), the
//! header fields no reader rewrites — the first `Received:`, every
//! `Delivered-To:`, `Message-ID:`, `Date:`, `From:`, `To:`, `Subject:`,
//! `X-Delivery-ID:` (popa3d's choice, widened) — and the size as sent.
//! `Status:`, `X-UID:` and the other fields mutt and Dovecot add are never
//! hashed, so UIDLs survive them, survive the deletion of other messages,
//! and need nothing stored.  Identical copies get `-2`, `-3`, ... after
//! the first, in file order.
//!
//! To open a large mbox fast, what a scan found is kept in
//! `.NAME.pop3-index` next to the mbox (owned by the mailbox's user; a
//! cache, safe to delete): its device, inode and size, checksums of its
//! first and last 4 KiB, and one record per message.  It is used only
//! while those still match; mail appended since is scanned from the last
//! indexed message on.  Any other change means a full scan.
//!
//! ## QUIT
//!
//! Under the shared locks, every message's `From ` line is checked at its
//! offset (so a mailbox another program rewrote during the session is left
//! alone), then the file is compacted in place: from the first deleted
//! message on, the kept messages and whatever was appended during the
//! session are written to a side file `.NAME.compact` (synced), the
//! dotlock notes it ([`Note::Compact`]), the side file is copied over the
//! mbox from the first deleted message on, the mbox is cut at the end of
//! the copy and `fsync`ed before `+OK`.  A session killed before the note
//! changed nothing; one killed after it left a note that whoever takes
//! the mailbox next finishes ([`crate::mailbox::mbox::recovery`]).  The
//! file is never replaced by another (other programs hold it open).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use super::{
    Committed, Encoder, Format, Listed, OpenError, Pieces, READ_BUF, Region, Uidl, send_region,
};
use crate::mailbox::lock::{self, Kind, LockError, Note};
use crate::wire::Wire;

/// Bytes of a `From ` line that its checksum covers.
const FROM_SUM_LEN: usize = 256;

/// One message of the file (listed or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Msg {
    /// Offset of the `From ` line.
    from: u64,
    /// Offset of the first header line.
    start: u64,
    /// End of the message (exclusive; the separating empty line follows).
    end: u64,
    /// Octets as sent.
    size: u64,
    uid: [u8; 8],
    /// Checksum of the `From ` line, to recognise the message later.
    sum: u32,
    /// Dovecot's folder-data pseudo-message: kept, never listed.
    hidden: bool,
}

/// An open mbox maildrop.
pub struct Mbox {
    path: PathBuf,
    /// `None`: there is no mailbox file (an empty maildrop).
    file: Option<File>,
    msgs: Vec<Msg>,
    /// Indices into `msgs` of the listed messages.
    visible: Vec<u32>,
    listed: Vec<Listed>,
    /// Size of the file the messages were found in.
    snapshot: u64,
    lock_timeout: Duration,
    /// The read buffer for sending messages.
    scratch: Vec<u8>,
}

impl Mbox {
    /// Open, lock for the session, and index the mbox at `path`.
    /// `owner`: the uid the file must belong to.
    pub fn open(path: &Path, owner: u32, lock_timeout: Duration) -> Result<Mbox, OpenError> {
        let what = path.display().to_string();
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Mbox {
                    path: path.to_path_buf(),
                    file: None,
                    msgs: Vec::new(),
                    visible: Vec::new(),
                    listed: Vec::new(),
                    snapshot: 0,
                    lock_timeout,
                    scratch: Vec::new(),
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(OpenError::Perm(format!("{what} is a symbolic link")));
            }
            Err(e) => return Err(OpenError::Temp(format!("{what}: {e}"))),
        };
        let m = file
            .metadata()
            .map_err(|e| OpenError::Temp(format!("{what}: {e}")))?;
        if !m.is_file() || m.nlink() != 1 || m.uid() != owner {
            return Err(OpenError::Perm(format!(
                "{what} is not a regular file of its user with one link"
            )));
        }
        // SAFETY: flock on a valid descriptor; held until the file closes.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(OpenError::InUse);
        }
        let held = match lock::lock(&file, path, Kind::Read, lock_timeout) {
            Ok(h) => h,
            Err(LockError::Busy) => {
                return Err(OpenError::Temp(format!(
                    "{what} is locked by another program"
                )));
            }
            Err(LockError::Io(e)) => return Err(OpenError::Temp(format!("{what}: {e}"))),
        };
        // A writer killed holding the locks may have left a half-written
        // append or compaction: settle it before listing anything.
        match crate::mailbox::mbox::recovery::recover(&file, path, &held) {
            Ok(Some(done)) => crate::log::notice(None, &format!("{what}: {done}")),
            Ok(None) => {}
            Err(e) => return Err(OpenError::Temp(format!("{what}: cannot repair: {e}"))),
        }
        let m = file
            .metadata()
            .map_err(|e| OpenError::Temp(format!("{what}: {e}")))?;
        let size = m.len();
        let index = index_path(path);
        let cached = read_index(&index, &file, &m);
        let scanned_from_scratch = cached.is_none();
        let (mut msgs, resume) = match cached {
            Some((mut msgs, indexed)) if indexed == size => {
                msgs.shrink_to_fit();
                (msgs, None)
            }
            Some((mut msgs, _)) => {
                // Appended since: scan again from the last indexed message.
                let from = msgs.pop().map_or(0, |m| m.from);
                (msgs, Some(from))
            }
            None => (Vec::new(), Some(0)),
        };
        if let Some(from) = resume {
            let found =
                scan(&file, from, size).map_err(|e| OpenError::Temp(format!("{what}: {e}")))?;
            msgs.extend(found);
            if scanned_from_scratch || !msgs.is_empty() {
                write_index(&index, &file, &m, &msgs, size);
            }
        }
        drop(held);
        let visible: Vec<u32> = (0..msgs.len() as u32)
            .filter(|&i| !msgs[i as usize].hidden)
            .collect();
        let listed = list(&msgs, &visible);
        Ok(Mbox {
            path: path.to_path_buf(),
            file: Some(file),
            msgs,
            visible,
            listed,
            snapshot: size,
            lock_timeout,
            scratch: Vec::new(),
        })
    }

    pub fn list(&self) -> &[Listed] {
        &self.listed
    }

    /// Check message `n` is still where it was found (another program
    /// may have rewritten the file).
    pub fn prepare(&mut self, n: usize) -> io::Result<()> {
        let (Some(file), Some(&i)) = (self.file.as_ref(), self.visible.get(n)) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such message"));
        };
        let m = self.msgs[i as usize];
        if from_sum_at(file, m.from)? != m.sum {
            return Err(io::Error::other(
                "the mailbox was changed by another program during this session",
            ));
        }
        Ok(())
    }

    pub fn send(
        &mut self,
        n: usize,
        body_lines: Option<u64>,
        wire: &mut Wire,
        deadline: &dyn Fn() -> Instant,
    ) -> io::Result<()> {
        let (Some(file), Some(&i)) = (self.file.as_ref(), self.visible.get(n)) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such message"));
        };
        let m = self.msgs[i as usize];
        send_region(
            Region {
                file,
                from: m.start,
                to: m.end,
                fmt: Format { mbox: true },
            },
            body_lines,
            wire,
            deadline,
            &mut self.scratch,
        )
    }

    /// Remove the messages marked (indices into the listed messages).
    pub fn commit(&mut self, deleted: &[bool]) -> Result<Committed, String> {
        let what = self.path.display().to_string();
        let doomed: Vec<usize> = self
            .visible
            .iter()
            .zip(deleted)
            .filter(|(_, d)| **d)
            .map(|(&i, _)| i as usize)
            .collect();
        let Some(file) = self.file.as_ref() else {
            return Ok(Committed::default());
        };
        if doomed.is_empty() {
            return Ok(Committed::default());
        }
        let held = match lock::lock(file, &self.path, Kind::Write, self.lock_timeout) {
            Ok(h) => h,
            Err(LockError::Busy) => return Err(format!("{what} is locked by another program")),
            Err(LockError::Io(e)) => return Err(format!("{what}: {e}")),
        };
        match crate::mailbox::mbox::recovery::recover(file, &self.path, &held) {
            Ok(Some(done)) => crate::log::notice(None, &format!("{what}: {done}")),
            Ok(None) => {}
            Err(e) => return Err(format!("{what}: cannot repair: {e}")),
        }
        let size = file.metadata().map_err(|e| format!("{what}: {e}"))?.len();
        if size < self.snapshot {
            return Err(format!("{what} shrank during the session; nothing deleted"));
        }
        for m in &self.msgs {
            if from_sum_at(file, m.from).map_err(|e| format!("{what}: {e}"))? != m.sum {
                return Err(format!(
                    "{what} was changed by another program during the session; nothing deleted"
                ));
            }
        }
        let mut is_doomed = vec![false; self.msgs.len()];
        for &i in &doomed {
            is_doomed[i] = true;
        }
        let first = doomed.iter().copied().min().unwrap_or(0);
        let _quiet = BlockSignals::new();
        // What stays from `start` on: the kept messages, then whatever
        // arrived during the session.
        let start = self.msgs[first].from;
        let mut segments: Vec<(u64, u64)> = Vec::new();
        let mut kept = Vec::with_capacity(self.msgs.len() - doomed.len());
        kept.extend_from_slice(&self.msgs[..first]);
        let mut committed = Committed::default();
        let mut w = start;
        for (i, &doomed_here) in is_doomed.iter().enumerate().skip(first) {
            let m = self.msgs[i];
            let seg_end = self.msgs.get(i + 1).map_or(self.snapshot, |n| n.from);
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
        segments.push((self.snapshot, size));
        let tail_len = w - start + (size - self.snapshot);
        self.rewrite_tail(file, &held, start, &segments, tail_len)
            .map_err(|e| format!("{what}: {e}"))?;
        drop(held);
        if let Ok(m) = file.metadata() {
            write_index(&index_path(&self.path), file, &m, &kept, indexed_end);
        }
        self.msgs = kept;
        Ok(committed)
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
        &self,
        file: &File,
        held: &lock::Held,
        start: u64,
        segments: &[(u64, u64)],
        tail_len: u64,
    ) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BUF];
        let side_path = crate::mailbox::mbox::recovery::compact_side_file(&self.path);
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
                crate::mailbox::mbox::recovery::copy_range(file, from, &side, w, to - from)?;
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
        crate::mailbox::mbox::recovery::copy_range(&side, 0, file, start, tail_len)?;
        file.set_len(start + tail_len)?;
        file.sync_all()?;
        std::fs::remove_file(&side_path)
    }
}

/// The listing of the visible messages.  Two copies of one message (a
/// reader's "copy to inbox", a script appending twice in one second) hash
/// alike: later ones get -2, -3, ... in file order, so UIDLs stay unique
/// (RFC 1939 §7).
fn list(msgs: &[Msg], visible: &[u32]) -> Vec<Listed> {
    let mut by_uid: Vec<u32> = (0..visible.len() as u32).collect();
    by_uid.sort_by_key(|&k| (msgs[visible[k as usize] as usize].uid, k));
    let mut copy = vec![1u32; visible.len()];
    for w in 1..by_uid.len() {
        let (a, b) = (by_uid[w - 1] as usize, by_uid[w] as usize);
        if msgs[visible[a] as usize].uid == msgs[visible[b] as usize].uid {
            copy[b] = copy[a] + 1;
        }
    }
    visible
        .iter()
        .zip(copy)
        .map(|(&i, c)| Listed {
            size: msgs[i as usize].size,
            uidl: Uidl::Hash(msgs[i as usize].uid, c),
        })
        .collect()
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
struct BlockSignals(libc::sigset_t);

impl BlockSignals {
    fn new() -> BlockSignals {
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

fn fnv32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The checksum of a `From ` line from its first bytes.
fn from_sum(line: &[u8]) -> u32 {
    let line = &line[..line.len().min(FROM_SUM_LEN)];
    let line = match memchr::memchr(b'\n', line) {
        Some(i) => &line[..i],
        None => line,
    };
    fnv32(line)
}

/// The checksum of the `From ` line at `at`, read from the file.
fn from_sum_at(file: &File, at: u64) -> io::Result<u32> {
    let mut buf = [0u8; FROM_SUM_LEN];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if !buf[..got].starts_with(b"From ") {
        return Ok(!0);
    }
    Ok(from_sum(&buf[..got]))
}

/// Header fields whose values make a message's UIDL.
fn hashed_field(name: &[u8], first_received: bool) -> bool {
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    (is("Received") && first_received)
        || is("Delivered-To")
        || is("Message-ID")
        || is("Date")
        || is("X-Delivery-ID")
        || is("From")
        || is("To")
        || is("Subject")
}

/// A message being scanned.
struct Building {
    from: u64,
    start: u64,
    in_from_line: bool,
    enc: Encoder,
    md5: Md5,
    sum: u32,
    in_header: bool,
    hashing: bool,
    seen_received: bool,
    hidden: bool,
}

impl Building {
    fn new(from: u64, first_piece: &[u8]) -> Building {
        let mut md5 = Md5::new();
        let line = first_piece.strip_suffix(b"\r").unwrap_or(first_piece);
        md5.update(line);
        md5.update(b"\n");
        Building {
            from,
            start: 0,
            in_from_line: true,
            enc: Encoder::new(Format { mbox: true }, None),
            md5,
            sum: from_sum(first_piece),
            in_header: true,
            hashing: false,
            seen_received: false,
            hidden: false,
        }
    }

    fn line(&mut self, p: &super::Piece<'_>) {
        self.enc.piece(p, None);
        if !self.in_header {
            return;
        }
        if p.first {
            let b = p.bytes;
            if b.is_empty() || b == b"\r" {
                self.in_header = false;
                self.hashing = false;
                return;
            }
            if !matches!(b[0], b' ' | b'\t') {
                let name = match memchr::memchr(b':', &b[..b.len().min(64)]) {
                    Some(c) => &b[..c],
                    None => b,
                };
                let received = name.eq_ignore_ascii_case(b"Received");
                self.hashing = hashed_field(name, received && !self.seen_received);
                self.seen_received |= received;
                if name.eq_ignore_ascii_case(b"X-IMAP") {
                    self.hidden = true;
                }
            }
        }
        if self.hashing {
            self.md5.update(p.bytes);
            if p.last {
                self.md5.update(b"\n");
            }
        }
    }

    /// The message ends at `end`; `separator`: an empty line (already fed
    /// to the encoder) sits at `end` and is not part of it.
    fn finish(mut self, end: u64, separator: bool) -> Msg {
        let size = if separator {
            self.enc.size.saturating_sub(2)
        } else {
            self.enc.size
        };
        // The size as sent: readers' header fields do not change it.
        self.md5.update(size.to_le_bytes());
        let digest = self.md5.finalize();
        let mut uid = [0u8; 8];
        uid.copy_from_slice(&digest[..8]);
        let end = end.max(self.start);
        Msg {
            from: self.from,
            start: self.start,
            end,
            size,
            uid,
            sum: self.sum,
            hidden: self.hidden,
        }
    }
}

/// Find the messages in `[from, to)`; `from` is the start of the file or
/// of a `From ` line.
fn scan(file: &File, from: u64, to: u64) -> io::Result<Vec<Msg>> {
    let mut out = Vec::new();
    let mut pieces = Pieces::new(file, from, to, vec![0u8; READ_BUF]);
    let mut cur: Option<Building> = None;
    // A `From ` line starts a message at the start and after an empty line.
    let mut after_blank = true;
    let mut blank_at = from;
    while let Some(p) = pieces.next_piece()? {
        if p.first && after_blank && p.bytes.starts_with(b"From ") {
            if let Some(b) = cur.take() {
                out.push(b.finish(blank_at, true));
            }
            let mut b = Building::new(p.offset, p.bytes);
            if p.last {
                b.start = p.offset + p.bytes.len() as u64 + 1;
                b.in_from_line = false;
            }
            cur = Some(b);
            after_blank = false;
            continue;
        }
        if let Some(b) = cur.as_mut() {
            if b.in_from_line {
                if p.last {
                    b.start = p.offset + p.bytes.len() as u64 + 1;
                    b.in_from_line = false;
                }
                continue;
            }
            b.line(&p);
        }
        if p.last {
            after_blank = p.first && p.bytes.is_empty();
            if after_blank {
                blank_at = p.offset;
            }
        }
        // In a body, after a non-empty line: take the lines up to the
        // next boundary in bulk.
        let bulk = p.last
            && !after_blank
            && cur
                .as_ref()
                .is_some_and(|b| !b.in_from_line && !b.in_header);
        if bulk {
            let n = pieces.skip_body()?;
            if let Some(b) = cur.as_mut() {
                b.enc.size += n;
            }
        }
    }
    if let Some(b) = cur.take() {
        out.push(if after_blank {
            b.finish(blank_at, true)
        } else {
            b.finish(to, false)
        });
    }
    Ok(out)
}

/// `/var/mail/.bob.pop3-index` for `/var/mail/bob`.
fn index_path(mbox: &Path) -> PathBuf {
    let name = mbox.file_name().unwrap_or_default().to_string_lossy();
    mbox.with_file_name(format!(".{name}.pop3-index"))
}

const INDEX_MAGIC: &[u8; 8] = b"MRPOPIX2";
const INDEX_RECORD: usize = 48;

/// Checksums of the first and last 4 KiB of `[0, size)`.
fn ends_sums(file: &File, size: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; 4096];
    let n = (size as usize).min(buf.len());
    file.read_exact_at(&mut buf[..n], 0)?;
    let head = fnv64(&buf[..n]);
    file.read_exact_at(&mut buf[..n], size - n as u64)?;
    Ok((head, fnv64(&buf[..n])))
}

fn write_index(path: &Path, file: &File, meta: &std::fs::Metadata, msgs: &[Msg], size: u64) {
    let Ok((head, tail)) = ends_sums(file, size) else {
        return;
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| -> io::Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let mut w = io::BufWriter::with_capacity(64 * 1024, f);
        w.write_all(INDEX_MAGIC)?;
        for v in [meta.dev(), meta.ino(), size, head, tail, msgs.len() as u64] {
            w.write_all(&v.to_le_bytes())?;
        }
        for m in msgs {
            let mut r = [0u8; INDEX_RECORD];
            for (k, v) in [m.from, m.start, m.end, m.size].iter().enumerate() {
                r[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            r[32..40].copy_from_slice(&m.uid);
            r[40..44].copy_from_slice(&m.sum.to_le_bytes());
            r[44] = m.hidden as u8;
            w.write_all(&r)?;
        }
        w.flush()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The index, when it still describes a prefix of the file: the messages
/// and the size they cover.
fn read_index(path: &Path, file: &File, meta: &std::fs::Metadata) -> Option<(Vec<Msg>, u64)> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut head = [0u8; 56];
    f.read_exact(&mut head).ok()?;
    if &head[..8] != INDEX_MAGIC {
        return None;
    }
    let v = |i: usize| u64::from_le_bytes(head[8 + i * 8..16 + i * 8].try_into().unwrap_or([0; 8]));
    let (dev, ino, size, head_sum, tail_sum, count) = (v(0), v(1), v(2), v(3), v(4), v(5));
    if dev != meta.dev() || ino != meta.ino() || size > meta.len() || count > size / 8 + 1 {
        return None;
    }
    if size > 0 && ends_sums(file, size).ok()? != (head_sum, tail_sum) {
        return None;
    }
    if size < meta.len() {
        // Only appends are allowed: the new mail must start right there.
        let mut b = [0u8; 5];
        file.read_exact_at(&mut b, size).ok()?;
        let ok_start = &b == b"From " || b[0] == b'\n';
        if !ok_start {
            return None;
        }
    }
    let mut body = Vec::new();
    f.take(count * INDEX_RECORD as u64)
        .read_to_end(&mut body)
        .ok()?;
    if body.len() as u64 != count * INDEX_RECORD as u64 {
        return None;
    }
    let msgs: Vec<Msg> = body
        .chunks_exact(INDEX_RECORD)
        .map(|r| {
            let u = |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            let mut uid = [0u8; 8];
            uid.copy_from_slice(&r[32..40]);
            Msg {
                from: u(0),
                start: u(1),
                end: u(2),
                size: u(3),
                uid,
                sum: u32::from_le_bytes(r[40..44].try_into().unwrap_or([0; 4])),
                hidden: r[44] != 0,
            }
        })
        .collect();
    // Offsets must make sense for this file.
    let sane = msgs.windows(2).all(|w| w[0].end <= w[1].from)
        && msgs
            .iter()
            .all(|m| m.from < m.start.max(m.from + 1) && m.start <= m.end && m.end <= size);
    sane.then_some((msgs, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbox_file(name: &str, text: &[u8]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mr-pop-mbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("bob");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    const THREE: &[u8] = b"From a@b  Sat Nov 21 05:00:00 2026\nReceived: by x id 1\nSubject: one\n\nbody 1\n>From quoted\n\nFrom c@d  Sat Nov 21 05:00:01 2026\nReceived: by x id 2\nStatus: RO\nSubject: two\n\nbody 2\n\nFrom e@f  Sat Nov 21 05:00:02 2026\nReceived: by x id 3\nSubject: three\n\nbody 3\n\n";

    fn sent(m: &mut Mbox, n: usize) -> Vec<u8> {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        let mut w = Wire::new(a.as_raw_fd(), a.as_raw_fd());
        m.prepare(n).unwrap();
        m.send(n, None, &mut w, &|| Instant::now() + Duration::from_secs(5))
            .unwrap();
        w.flush(Instant::now() + Duration::from_secs(5)).unwrap();
        drop(w);
        drop(a);
        let mut out = Vec::new();
        let mut b = b;
        b.set_nonblocking(true).unwrap();
        let _ = b.read_to_end(&mut out);
        out
    }

    #[test]
    fn messages_sizes_uidls_and_what_is_sent() {
        let p = mbox_file("three", THREE);
        let mut m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert_eq!(m.list().len(), 3);
        let one = sent(&mut m, 0);
        assert_eq!(
            String::from_utf8_lossy(&one),
            "Received: by x id 1\r\nSubject: one\r\n\r\nbody 1\r\nFrom quoted\r\n"
        );
        assert_eq!(m.list()[0].size, one.len() as u64);
        let two = sent(&mut m, 1);
        assert_eq!(
            String::from_utf8_lossy(&two),
            "Received: by x id 2\r\nSubject: two\r\n\r\nbody 2\r\n"
        );
        assert_eq!(m.list()[1].size, two.len() as u64);
        let uidls: Vec<String> = m.list().iter().map(|l| l.uidl.to_string()).collect();
        assert!(uidls.iter().all(|u| u.len() == 16));
        assert_ne!(uidls[0], uidls[1]);
        // The index is used the second time, with the same answers.
        assert!(index_path(&p).exists());
        let first = m.list().to_vec();
        drop(m);
        let m2 = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert_eq!(m2.list(), &first[..]);
    }

    /// Found by the mbox fuzz target: a file ending in a CR without an
    /// LF sent "x\r\r\n" and counted the CR, so the message's size and
    /// UIDL changed when the next delivery completed the line.
    #[test]
    fn a_final_cr_is_a_line_end_and_an_append_changes_nothing() {
        let p = mbox_file(
            "lonecr",
            b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: x\n\nbody\r",
        );
        let mut m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        let one = sent(&mut m, 0);
        assert_eq!(one, b"Subject: x\r\n\r\nbody\r\n");
        let before = m.list().to_vec();
        assert_eq!(before[0].size, one.len() as u64);
        drop(m);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"\n\nFrom c@d  Sat Nov 21 05:00:01 2026\n\nnew\n\n")
            .unwrap();
        drop(f);
        let m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert_eq!(m.list().len(), 2);
        assert_eq!(m.list()[0], before[0]);
    }

    #[test]
    fn identical_copies_get_distinct_uidls() {
        let msg = b"From cron@x  Sat Nov 21 09:00:00 2026\nSubject: disk\n\nfull\n\n";
        let p = mbox_file("dups", &[&msg[..], &msg[..], &msg[..]].concat());
        let m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        let u: Vec<String> = m.list().iter().map(|l| l.uidl.to_string()).collect();
        assert_eq!(u.len(), 3);
        assert_eq!(u[1], format!("{}-2", u[0]));
        assert_eq!(u[2], format!("{}-3", u[0]));
    }

    #[test]
    fn a_second_session_is_refused() {
        let p = mbox_file("inuse", THREE);
        let _m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert_eq!(
            Mbox::open(&p, me(), Duration::from_secs(2)).err(),
            Some(OpenError::InUse)
        );
    }

    #[test]
    fn uidls_survive_status_headers_and_deletions_and_new_mail_is_kept() {
        let p = mbox_file("stable", THREE);
        let m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        let before: Vec<String> = m.list().iter().map(|l| l.uidl.to_string()).collect();
        drop(m);
        // mutt marks message 3 read.
        let text = String::from_utf8_lossy(THREE).replace(
            "Subject: three\n",
            "Subject: three\nStatus: RO\nX-Status: A\n",
        );
        std::fs::write(&p, &text).unwrap();
        let mut m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        let after: Vec<String> = m.list().iter().map(|l| l.uidl.to_string()).collect();
        assert_eq!(before, after);
        // New mail arrives during the session; message 1 is deleted.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"From n@w  Sat Nov 21 06:00:00 2026\nSubject: new\n\nfresh\n\n")
            .unwrap();
        let c = m.commit(&[true, false, false]).unwrap();
        assert_eq!(c.deleted, 1);
        drop(m);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("Subject: one"));
        assert!(text.starts_with("From c@d"));
        assert!(text.ends_with("Subject: new\n\nfresh\n\n"));
        let m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        let now: Vec<String> = m.list().iter().map(|l| l.uidl.to_string()).collect();
        assert_eq!(now.len(), 3);
        assert_eq!(now[..2], before[1..]);
    }

    #[test]
    fn a_mailbox_rewritten_during_the_session_is_left_alone() {
        let p = mbox_file("foreign", THREE);
        let mut m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        let text =
            String::from_utf8_lossy(THREE).replace("Subject: one\n", "Subject: one\nStatus: RO\n");
        std::fs::write(&p, &text).unwrap();
        assert!(m.commit(&[false, true, false]).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    }

    #[test]
    fn missing_mailbox_is_empty_and_dovecot_pseudo_message_is_hidden() {
        let p = mbox_file("gone", b"");
        std::fs::remove_file(&p).unwrap();
        let m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert!(m.list().is_empty());
        let p = mbox_file("pseudo", b"From MAILER-DAEMON  Sat Nov 21 05:00:00 2026\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1 2\n\nx\n\nFrom a@b  Sat Nov 21 05:00:00 2026\nSubject: real\n\ny\n");
        let m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert_eq!(m.list().len(), 1);
    }
}
