//! mbox files (`/var/mail/USER`, and `/file` targets of aliases).
//!
//! ## The format written: mboxrd
//!
//! Each message is a `From SENDER  DATE` line (sender `MAILER-DAEMON` for
//! the null sender, date in `ctime(3)` form, two spaces as Postfix and
//! Dovecot write it), the message with LF line ends, and one empty line.
//! Every line matching `^>*From ` gets one more `>` (mboxrd), so a reader
//! can undo the quoting exactly — with mboxo's quoting a genuine `>From `
//! line could not be told from a quoted one.  Readers that never unquote
//! (mutt, Dovecot) show one extra `>` on such lines, as they do for every
//! other MDA.  Reader-private headers (`Status:`, `X-UID:`, `Content-Length:`,
//! `X-UIDL:`, ...) are removed so a sender cannot set flags or UIDLs.
//!
//! ## Appending safely
//!
//! 1. `open(O_APPEND|O_NOFOLLOW)`, created `0660` if missing (group `mail`
//!    from the setgid spool); refuse anything but a regular file with one
//!    link owned by the mailbox owner.
//! 2. Lock ([`super::lock`]); check the path still names the file opened.
//! 3. Finish or undo what a killed writer left ([`recover`]), then note
//!    the size in the dotlock ([`Note::Append`]): should this writer be
//!    killed mid-append, whoever finds its dotlock stale cuts the file
//!    back to that size.  If the file does not end with an empty line (a
//!    foreign MUA), add the missing newlines first.
//! 4. Write.  On any failure, truncate back to the noted size, so the
//!    mailbox is exactly as it was.
//! 5. Unlock, then `fsync` (a new file's directory too) before reporting
//!    success.  Should the sync fail, what was written is withdrawn if
//!    nobody has appended since, and the delivery is reported as failed
//!    either way (at worst the retry duplicates it; it is never lost).
//!
//! Threads of one process (the queue runner's workers) that deliver to
//! the same mbox at once are served in batches: one thread does steps 1–5
//! for all the messages waiting, with one lock and one `fsync` ([`batch`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use super::lock::{self, Kind, LockError, Note};
use super::{Failure, Format, Message, write_message};

/// The mbox `From ` line for a sender at time `t`.
pub fn from_line(sender: &str, t: i64) -> String {
    let s = if sender.is_empty() || sender == "<>" {
        "MAILER-DAEMON"
    } else {
        sender
    };
    // No white space may break the line into more fields than readers expect.
    let s: String = s
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("From {s}  {}\n", crate::date::ctime(t))
}

/// What to append.
pub struct Append<'a> {
    /// The `From ` line and header lines to put first (`Return-Path:`,
    /// `Delivered-To:`).
    pub from_line: &'a str,
    pub prepend: &'a [u8],
    pub message: &'a Message,
    /// Size limit for the whole mbox, 0 = none.
    pub quota: u64,
    pub lock_timeout: Duration,
    /// The uid the file must belong to (None: not checked).
    pub owner: Option<u32>,
    /// Mode for a new file.
    pub create_mode: u32,
    /// Share the mailbox with this process's other threads: wait for its
    /// turn, and write in batches ([`batch`]).  False when the caller
    /// holds the turn itself ([`turn`]) for a child it forks.  (A forked
    /// child never uses turns: another thread may have held one at the
    /// fork.)
    pub in_process_turn: bool,
    /// Look for this copy first, and write nothing if it is there (the
    /// retry of an attempt that died midway).
    pub already: Option<super::Already<'a>>,
}

/// Messages up to this size are rendered in memory and may be written by
/// another thread's batch; larger ones are streamed by their own thread.
const BATCH_MAX: u64 = 1 << 20;

/// Append one message; on failure the mbox is left exactly as it was.
pub fn append(path: &Path, a: &Append<'_>) -> Result<u64, Failure> {
    let target = Target {
        path,
        owner: a.owner,
        create_mode: a.create_mode,
        lock_timeout: a.lock_timeout,
    };
    if !a.in_process_turn || crate::privs::in_forked_child() {
        return write_batch(&target, vec![Item::Stream(a)]).remove(0);
    }
    if a.message.len() > BATCH_MAX || a.already.is_some() {
        let _turn = turn(path);
        return write_batch(&target, vec![Item::Stream(a)]).remove(0);
    }
    let mut entry = Vec::with_capacity(a.message.len() as usize + 512);
    write_entry(&mut entry, a).map_err(|e| {
        Failure::from_io(&format!("{}: cannot read the message", path.display()), &e)
    })?;
    batch::submit(&target, entry, a.quota)
}

/// This process's turn at the mailbox `path`, for a thread that writes to
/// it alone (or forks a child that does): other threads' batches wait
/// until it is dropped.
pub fn turn(path: &Path) -> Option<batch::Exclusive> {
    (!crate::privs::in_forked_child()).then(|| batch::exclusive(path))
}

/// Where a batch goes, and how to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target<'a> {
    path: &'a Path,
    owner: Option<u32>,
    create_mode: u32,
    lock_timeout: Duration,
}

/// One message of a batch.
enum Item<'a> {
    /// Rendered (`From ` line to the closing empty line), with its quota.
    Bytes(Vec<u8>, u64),
    /// Streamed from the message file while the locks are held.
    Stream(&'a Append<'a>),
}

/// Append `items` under one lock and one `fsync`; one result each.  A
/// write error undoes the whole batch (each message is retried); a
/// message over quota is refused alone.
fn write_batch(t: &Target<'_>, items: Vec<Item<'_>>) -> Vec<Result<u64, Failure>> {
    let what = t.path.display().to_string();
    let n = items.len();
    let all = |f: Failure| vec![Err(f); n];
    let (file, created) = match open_mailbox_new(t.path, t.owner, t.create_mode) {
        Ok(x) => x,
        Err(f) => return all(f.with_what(&what)),
    };
    let (held, orig) = match lock_for_append(&file, t.path, t.lock_timeout, &what) {
        Ok(x) => x,
        Err(f) => return all(f),
    };
    let write_failed = |e: &io::Error| Failure::from_io(&format!("{what}: write failed"), e);
    let mut results = Vec::with_capacity(n);
    let mut end = orig;
    let written: io::Result<()> = (|| {
        // A new From_ line is only recognised after an empty line.
        let mut pad = separator_needed(&file, orig)?;
        let mut w = BufWriter::with_capacity(64 * 1024, &file);
        for item in &items {
            let (len, quota) = match item {
                Item::Bytes(b, q) => (b.len() as u64, *q),
                Item::Stream(a) => (
                    a.from_line.len() as u64 + a.prepend.len() as u64 + a.message.len() + 2,
                    a.quota,
                ),
            };
            let len = len + pad.len() as u64;
            if let Item::Stream(a) = item
                && let Some(copy) = &a.already
                && holds_copy(&file, orig, a)?
            {
                crate::log::notice(
                    None,
                    &format!(
                        "{what}: already holds {} from an interrupted attempt",
                        copy.id
                    ),
                );
                results.push(Ok(0));
                continue;
            }
            if quota > 0 && end + len > quota {
                results.push(Err(Failure::over_quota(end, len, quota)));
                continue;
            }
            w.write_all(pad)?;
            let mut this = pad.len() as u64;
            pad = b"";
            match item {
                Item::Bytes(b, _) => {
                    w.write_all(b)?;
                    this += b.len() as u64;
                }
                Item::Stream(a) => this += write_entry(&mut w, a)?,
            }
            end += this;
            results.push(Ok(this));
        }
        w.flush()
    })();
    if let Err(e) = written {
        // Leave the mailbox exactly as it was.
        let _ = file.set_len(orig);
        let _ = file.sync_all();
        return all(write_failed(&e));
    }
    drop(held);
    if end == orig {
        return results; // nothing written (all over quota)
    }
    let synced = file.sync_data().and_then(|()| match created {
        true => sync_parent(t.path),
        false => Ok(()),
    });
    if let Err(e) = synced {
        // Withdraw the batch if it is still the last thing in the file.
        if let Ok((_held, len)) = lock_for_append(&file, t.path, t.lock_timeout, &what)
            && len == end
        {
            let _ = file.set_len(orig);
            let _ = file.sync_all();
        }
        return all(write_failed(&e));
    }
    results
}

/// Threads of one process delivering to the same mbox: the first to find
/// it free writes everything queued for it in one batch (one lock, one
/// dotlock, one `fsync`), and the others wait for their result.  Busy
/// mailboxes (a ticket system's catch-all) are then not limited to one
/// `fsync` per message.
pub mod batch {
    use super::{Failure, Item, Target, write_batch};
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
    use std::time::Duration;

    struct Request {
        path: PathBuf,
        owner: Option<u32>,
        create_mode: u32,
        lock_timeout: Duration,
        entry: Mutex<Option<(Vec<u8>, u64)>>,
        result: OnceLock<Result<u64, Failure>>,
    }

    #[derive(Default)]
    struct State {
        busy: bool,
        queue: Vec<Arc<Request>>,
    }

    #[derive(Default)]
    struct Stripe {
        state: Mutex<State>,
        free: Condvar,
    }

    /// Stripes by path hash: two mailboxes may share one, which only
    /// serialises them.
    fn stripe(path: &Path) -> &'static Stripe {
        use std::hash::{Hash, Hasher};
        static STRIPES: OnceLock<Vec<Stripe>> = OnceLock::new();
        let all = STRIPES.get_or_init(|| (0..64).map(|_| Stripe::default()).collect());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut h);
        &all[(h.finish() % 64) as usize]
    }

    fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `entry` for `t` and return its result.
    pub(super) fn submit(t: &Target<'_>, entry: Vec<u8>, quota: u64) -> Result<u64, Failure> {
        let s = stripe(t.path);
        let me = Arc::new(Request {
            path: t.path.to_path_buf(),
            owner: t.owner,
            create_mode: t.create_mode,
            lock_timeout: t.lock_timeout,
            entry: Mutex::new(Some((entry, quota))),
            result: OnceLock::new(),
        });
        let mut st = lock(&s.state);
        st.queue.push(me.clone());
        loop {
            if let Some(r) = me.result.get() {
                return r.clone();
            }
            if st.busy {
                st = s.free.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead: take everything queued for the same mailbox.
            st.busy = true;
            let same = |r: &Request| {
                r.path == me.path && r.owner == me.owner && r.create_mode == me.create_mode
            };
            let (mine, rest): (Vec<_>, Vec<_>) = st.queue.drain(..).partition(|r| same(r));
            st.queue = rest;
            drop(st);
            let items = mine
                .iter()
                .map(|r| {
                    let (b, q) = r
                        .entry
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or_default();
                    Item::Bytes(b, q)
                })
                .collect();
            let target = Target {
                path: &me.path,
                owner: me.owner,
                create_mode: me.create_mode,
                lock_timeout: mine
                    .iter()
                    .map(|r| r.lock_timeout)
                    .max()
                    .unwrap_or(me.lock_timeout),
            };
            for (r, res) in mine.iter().zip(write_batch(&target, items)) {
                let _ = r.result.set(res);
            }
            st = lock(&s.state);
            st.busy = false;
            s.free.notify_all();
        }
    }

    /// The mailbox's turn for a message written alone (too large to
    /// batch); released on drop.
    pub fn exclusive(path: &Path) -> Exclusive {
        let s = stripe(path);
        let mut st = lock(&s.state);
        while st.busy {
            st = s.free.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.busy = true;
        Exclusive(s)
    }

    pub struct Exclusive(&'static Stripe);

    impl Drop for Exclusive {
        fn drop(&mut self) {
            lock(&self.0.state).busy = false;
            self.0.free.notify_all();
        }
    }
}

/// Take the mailbox locks and check the path still names the file opened;
/// returns the locks and the file's size.
fn lock_for_append(
    file: &File,
    path: &Path,
    timeout: Duration,
    what: &str,
) -> Result<(lock::Held, u64), Failure> {
    let held = match lock::lock(file, path, Kind::Write, timeout) {
        Ok(h) => h,
        Err(LockError::Busy) => {
            return Err(Failure::temp(
                "4.2.0",
                format!("{what}: mailbox is locked by another program; will retry"),
            ));
        }
        Err(LockError::Io(e)) => return Err(Failure::from_io(&format!("{what}: cannot lock"), &e)),
    };
    let opened = file.metadata().map_err(|e| Failure::from_io(what, &e))?;
    match std::fs::symlink_metadata(path) {
        Ok(now)
            if now.ino() == opened.ino() && now.dev() == opened.dev() && opened.nlink() == 1 => {}
        _ => {
            return Err(Failure::temp(
                "4.2.0",
                format!("{what}: mailbox changed while it was being locked; will retry"),
            ));
        }
    }
    let len = match recover(file, path, &held) {
        Ok(Some(repair)) => {
            crate::log::notice(None, &format!("{what}: {repair}"));
            file.metadata()
                .map_err(|e| Failure::from_io(what, &e))?
                .len()
        }
        Ok(None) => opened.len(),
        Err(e) => return Err(Failure::from_io(&format!("{what}: cannot repair"), &e)),
    };
    held.note(Note::Append {
        start: len,
        dev: opened.dev(),
        ino: opened.ino(),
    });
    Ok((held, len))
}

/// The side file a compaction writes the kept tail of `mbox` to first
/// (`.NAME.compact` in the same directory).
pub fn compact_side_file(mbox: &Path) -> std::path::PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(mbox.file_name().unwrap_or_default());
    name.push(".compact");
    mbox.with_file_name(name)
}

/// Finish or undo what a killed writer of `file` left, as the [`Note`] in
/// its stale dotlock (replaced by `held`) tells.  Returns what was done.
/// The caller holds the write lock.
pub fn recover(file: &File, path: &Path, held: &lock::Held) -> io::Result<Option<String>> {
    let Some(note) = held.broken_note() else {
        return Ok(None);
    };
    let opened = file.metadata()?;
    if !note.is_about(&opened) {
        return Ok(None);
    }
    match note {
        Note::Append { start, .. } if start < opened.len() => {
            file.set_len(start)?;
            file.sync_data()?;
            Ok(Some(format!(
                "removed {} bytes a killed delivery left half-written",
                opened.len() - start
            )))
        }
        Note::Append { .. } => Ok(None),
        Note::Compact { start, len, .. } => {
            let side_path = compact_side_file(path);
            let side = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&side_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if side.metadata()?.len() != len {
                return Ok(None);
            }
            // Positioned writes need a descriptor without O_APPEND (an
            // appender's has it, and Linux then ignores the offset).
            let target = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)?;
            if !note.is_about(&target.metadata()?) {
                return Ok(None);
            }
            copy_range(&side, 0, &target, start, len)?;
            target.set_len(start + len)?;
            target.sync_all()?;
            std::fs::remove_file(&side_path)?;
            Ok(Some(
                "finished the compaction a killed POP3 session left half-done".to_string(),
            ))
        }
    }
}

/// Copy `len` bytes of `from` at `from_off` to `to` at `to_off`.
pub fn copy_range(from: &File, from_off: u64, to: &File, to_off: u64, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        from.read_exact_at(&mut buf[..n], from_off + done)?;
        to.write_all_at(&buf[..n], to_off + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Whether the first `len` bytes of the mbox `file` hold a whole copy of
/// the entry `a` would write, left by an interrupted attempt: a message
/// whose header block [`super::is_copy`] recognises as `a.already`, and
/// whose body is the one `a` would write, to the last byte (a power cut
/// can leave a torn copy whose header survived; that one is not it).
fn holds_copy(file: &File, len: u64, a: &Append<'_>) -> io::Result<bool> {
    let Some(copy) = &a.already else {
        return Ok(false);
    };
    if len == 0 {
        return Ok(false);
    }
    // SAFETY: a read-only map of a file we hold the write lock on; no one
    // following the locking rules changes it meanwhile.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file)? };
    let needle = format!("id {}", copy.id);
    for hit in memchr::memmem::find_iter(&map, needle.as_bytes()) {
        // The message around the hit: from its From_ line to its header's end.
        let start = memchr::memmem::rfind(&map[..hit], b"\n\nFrom ").map_or(0, |p| p + 2);
        let head_end =
            memchr::memmem::find(&map[start..], b"\n\n").map_or(map.len(), |p| start + p + 1);
        if hit < head_end
            && super::is_copy(&map[start..head_end], copy)
            && same_body(&map[(head_end + 1).min(map.len())..], a)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `found` (an mbox from a copy's body on) starts with the body of
/// the entry `a` would write, followed by the file's end or the next entry.
fn same_body(found: &[u8], a: &Append<'_>) -> io::Result<bool> {
    let mut check = BodyCheck {
        expect: found,
        pos: 0,
        in_body: false,
        after_lf: false,
        same: true,
    };
    write_entry(&mut check, a)?;
    let rest = found.get(check.pos..).unwrap_or_default();
    Ok(check.same
        && check.in_body
        && (rest.is_empty() || rest.starts_with(b"From ") || rest.starts_with(b"\n")))
}

/// A writer that compares what follows the first empty line it is given
/// (a rendered entry's body) with `expect`, and keeps nothing.
struct BodyCheck<'a> {
    expect: &'a [u8],
    pos: usize,
    in_body: bool,
    after_lf: bool,
    same: bool,
}

impl Write for BodyCheck<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut body = buf;
        if !self.in_body {
            let mut after_lf = self.after_lf;
            let end = buf.iter().position(|&c| {
                let blank = c == b'\n' && after_lf;
                after_lf = c == b'\n';
                blank
            });
            self.after_lf = after_lf;
            match end {
                Some(i) => {
                    self.in_body = true;
                    body = &buf[i + 1..];
                }
                None => return Ok(buf.len()),
            }
        }
        let end = self.pos + body.len();
        self.same = self.same && self.expect.get(self.pos..end) == Some(body);
        self.pos = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `fsync` the directory holding `path`, so a new file's name is durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// What must precede a new `From ` line in a file of `len` bytes: it is
/// only recognised after an empty line (a crashed writer or a foreign MUA
/// may have left the file without one).
fn separator_needed(file: &File, len: u64) -> io::Result<&'static [u8]> {
    if len == 0 {
        return Ok(b"");
    }
    let mut tail = [0u8; 2];
    let k = if len >= 2 { 2 } else { 1 };
    file.read_exact_at(&mut tail[..k], len - k as u64)?;
    Ok(if k == 2 && tail == *b"\n\n" {
        b""
    } else if tail[k - 1] == b'\n' {
        b"\n"
    } else {
        b"\n\n"
    })
}

/// One mbox entry: the `From ` line, the message (quoted, private
/// headers removed) and the closing empty line.
fn write_entry(w: &mut impl Write, a: &Append<'_>) -> io::Result<u64> {
    w.write_all(a.from_line.as_bytes())?;
    let (m, _) = write_message(
        w,
        a.prepend,
        a.message,
        Format {
            quote_from: true,
            strip_private: true,
        },
    )?;
    w.write_all(b"\n")?;
    Ok(a.from_line.len() as u64 + m + 1)
}

/// Open (or create) a mailbox for appending, refusing symlinks, hard links,
/// non-regular files and files of the wrong owner.
pub fn open_mailbox(path: &Path, owner: Option<u32>, create_mode: u32) -> Result<File, Failure> {
    open_mailbox_new(path, owner, create_mode).map(|(f, _)| f)
}

/// [`open_mailbox`], also telling whether this call created the file.
fn open_mailbox_new(
    path: &Path,
    owner: Option<u32>,
    create_mode: u32,
) -> Result<(File, bool), Failure> {
    let mut created = false;
    let open = |create: bool| {
        let mut o = OpenOptions::new();
        o.read(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK);
        if create {
            o.create_new(true).mode(create_mode);
        }
        o.open(path)
    };
    let file = match open(false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => match open(true) {
            Ok(f) => {
                // The mode asked for, whatever the umask.
                use std::os::unix::fs::PermissionsExt;
                let _ = f.set_permissions(std::fs::Permissions::from_mode(create_mode));
                created = true;
                f
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                open(false).map_err(|e| Failure::from_io("", &e))?
            }
            Err(e) => return Err(Failure::from_io("cannot create the mailbox", &e)),
        },
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Failure::perm(
                "5.2.0",
                "the mailbox is a symbolic link; refusing to deliver",
            ));
        }
        Err(e) => return Err(Failure::from_io("cannot open the mailbox", &e)),
    };
    let m = file.metadata().map_err(|e| Failure::from_io("", &e))?;
    if !m.is_file() {
        return Err(Failure::perm(
            "5.2.0",
            "the mailbox is not a regular file; refusing to deliver",
        ));
    }
    if m.nlink() != 1 {
        return Err(Failure::perm(
            "5.2.0",
            "the mailbox has more than one hard link; refusing to deliver",
        ));
    }
    if let Some(uid) = owner
        && m.uid() != uid
    {
        return Err(Failure::perm(
            "5.2.0",
            format!(
                "the mailbox belongs to uid {}, not to its user (uid {uid}); refusing to deliver",
                m.uid()
            ),
        ));
    }
    Ok((file, created))
}

impl Failure {
    fn with_what(mut self, what: &str) -> Failure {
        if !self.text.starts_with(what) {
            self.text = format!("{what}: {}", self.text);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mr-mbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn append_to(path: &Path, body: &[u8], quota: u64) -> Result<u64, Failure> {
        let msg = Message::from_bytes(body).unwrap();
        append(
            path,
            &Append {
                from_line: "From a@b  Sat Nov 21 05:00:00 2026\n",
                prepend: b"Return-Path: <a@b>\n",
                message: &msg,
                quota,
                lock_timeout: Duration::from_secs(1),
                owner: None,
                in_process_turn: true,
                create_mode: 0o660,
                already: None,
            },
        )
    }

    /// A dotlock as a writer killed while holding it leaves it: a pid that
    /// no longer exists, then its note.
    fn dead_writers_dotlock(mbox: &Path, note: Note) {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(lock::dotlock_path(mbox), format!("{dead}\n{note}\n")).unwrap();
    }

    fn dev_ino(p: &Path) -> (u64, u64) {
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    /// Append the message of job `id` for bob@example.com, as a retry after
    /// an interrupted attempt would when `retry`.
    fn append_job(path: &Path, id: &str, body: &str, retry: bool) -> u64 {
        let text = format!("Received: from h by mx id {id}; now\nSubject: s\n\n{body}");
        let msg = Message::from_bytes(text.as_bytes()).unwrap();
        append(
            path,
            &Append {
                from_line: "From a@b  Sat Nov 21 05:00:00 2026\n",
                prepend: b"Return-Path: <a@b>\nDelivered-To: bob@example.com\n",
                message: &msg,
                quota: 0,
                lock_timeout: Duration::from_secs(1),
                owner: None,
                in_process_turn: true,
                create_mode: 0o660,
                already: retry.then_some(super::super::Already {
                    id,
                    delivered_to: "bob@example.com",
                }),
            },
        )
        .unwrap()
    }

    #[test]
    fn a_retry_finds_its_whole_copy_but_not_a_torn_one() {
        let d = tmp("retry");
        let p = d.join("bob");
        let body = "From the start\nline two\n";
        append_job(&p, "J1", body, false);
        let once = std::fs::read(&p).unwrap();
        // The interrupted attempt's copy is whole: the retry writes nothing.
        assert_eq!(append_job(&p, "J1", body, true), 0);
        assert_eq!(std::fs::read(&p).unwrap(), once);
        // Another job with the same body is no copy of this one.
        assert!(append_job(&p, "J2", body, true) > 0);
        // A power cut kept J3's header but not all of its body (and not the
        // note that would have cut it off): the retry delivers it whole.
        let q = d.join("carol");
        append_job(&q, "J3", body, false);
        let whole = std::fs::read(&q).unwrap();
        std::fs::write(&q, &whole[..whole.len() - 6]).unwrap();
        assert!(append_job(&q, "J3", body, true) > 0);
        let text = std::fs::read_to_string(&q).unwrap();
        assert!(text.ends_with(std::str::from_utf8(&whole[whole.len() - 40..]).unwrap()));
        assert_eq!(text.matches(">From the start").count(), 2, "{text}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_killed_appenders_half_message_is_cut_off_by_the_next_one() {
        let d = tmp("torn");
        let p = d.join("bob");
        append_to(&p, b"Subject: one\n\nfirst\n", 0).unwrap();
        let whole = std::fs::read(&p).unwrap();
        // Killed mid-append: half a message after the first.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"From x@y  Sat Nov 21 05:00:00 2026\nSubject: torn\n\nhal")
            .unwrap();
        let (dev, ino) = dev_ino(&p);
        dead_writers_dotlock(
            &p,
            Note::Append {
                start: whole.len() as u64,
                dev,
                ino,
            },
        );
        append_to(&p, b"Subject: two\n\nsecond\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("torn"), "{text}");
        assert!(text.starts_with(std::str::from_utf8(&whole).unwrap()));
        assert_eq!(text.matches("\nFrom ").count() + 1, 2, "{text}");
        assert!(!lock::dotlock_path(&p).exists());
        // A note about another file (the mbox was replaced) is ignored.
        let before = std::fs::read(&p).unwrap();
        dead_writers_dotlock(
            &p,
            Note::Append {
                start: 0,
                dev,
                ino: ino + 1,
            },
        );
        append_to(&p, b"Subject: three\n\nthird\n", 0).unwrap();
        assert!(std::fs::read(&p).unwrap().starts_with(&before));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_killed_compaction_is_finished_by_whoever_comes_next() {
        let d = tmp("compact");
        let p = d.join("eve");
        let head = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: kept\n\nkept\n\n";
        let tail = b"From a@b  Sat Nov 21 05:00:01 2026\nSubject: also kept\n\nyes\n\n";
        // The compaction had copied part of its side file over the doomed
        // message when it was killed.
        let mut torn = head.to_vec();
        torn.extend_from_slice(&tail[..20]);
        torn.extend_from_slice(b"Subject: doomed\n\nbye\n\n");
        std::fs::write(&p, &torn).unwrap();
        std::fs::write(compact_side_file(&p), tail).unwrap();
        let (dev, ino) = dev_ino(&p);
        dead_writers_dotlock(
            &p,
            Note::Compact {
                start: head.len() as u64,
                len: tail.len() as u64,
                dev,
                ino,
            },
        );
        append_to(&p, b"Subject: new\n\nnew mail\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut want = head.to_vec();
        want.extend_from_slice(tail);
        assert!(text.as_bytes().starts_with(&want), "{text}");
        assert!(!text.contains("doomed"), "{text}");
        assert!(text.ends_with("new mail\n\n"), "{text}");
        assert!(!compact_side_file(&p).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn threads_writing_one_mbox_in_batches_lose_and_repeat_nothing() {
        let d = tmp("batch");
        let p = d.join("hot");
        std::thread::scope(|s| {
            for t in 0..8 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..50 {
                        let body = format!("Subject: t{t} m{i}\n\nFrom me, {t}/{i}\n");
                        append_to(p, body.as_bytes(), 0).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&p).unwrap();
        let entries: Vec<&str> = text.split("\n\nFrom a@b  ").collect();
        assert_eq!(entries.len(), 400);
        for t in 0..8 {
            for i in 0..50 {
                let want = format!("Subject: t{t} m{i}\n\n>From me, {t}/{i}\n");
                assert_eq!(text.matches(&want).count(), 1, "{want}");
            }
        }
        assert!(!d.join("hot.lock").exists());
    }

    #[test]
    fn a_batch_refuses_only_the_message_over_quota() {
        let d = tmp("batch-quota");
        let p = d.join("q");
        append_to(&p, b"Subject: first\n\nx\n", 0).unwrap();
        let before = std::fs::metadata(&p).unwrap().len();
        let t = Target {
            path: &p,
            owner: None,
            create_mode: 0o660,
            lock_timeout: Duration::from_secs(1),
        };
        let small = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: s\n\nx\n\n".to_vec();
        let big = [small.clone(), vec![b'y'; 4000], b"\n\n".to_vec()].concat();
        let r = write_batch(
            &t,
            vec![
                Item::Bytes(small.clone(), before + 1000),
                Item::Bytes(big, before + 1000),
                Item::Bytes(small.clone(), before + 1000),
            ],
        );
        assert!(r[0].is_ok() && r[2].is_ok(), "{r:?}");
        assert!(r[1].as_ref().is_err_and(|f| f.over_quota), "{r:?}");
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            before + 2 * small.len() as u64
        );
    }

    #[test]
    fn appends_mboxrd_with_separators() {
        let d = tmp("append");
        let p = d.join("bob");
        append_to(&p, b"Subject: one\n\nFrom the start\n", 0).unwrap();
        append_to(&p, b"Subject: two\n\nno newline", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "From a@b  Sat Nov 21 05:00:00 2026\nReturn-Path: <a@b>\nSubject: one\n\n>From the start\n\n\
             From a@b  Sat Nov 21 05:00:00 2026\nReturn-Path: <a@b>\nSubject: two\n\nno newline\n\n"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn repairs_a_missing_separator() {
        let d = tmp("repair");
        let p = d.join("bob");
        std::fs::write(&p, "From x  Sat Nov 21 05:00:00 2026\n\nhalf a line").unwrap();
        append_to(&p, b"Subject: s\n\nb\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("half a line\n\nFrom a@b"), "{text}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn quota_refuses_and_leaves_the_file_alone() {
        let d = tmp("quota");
        let p = d.join("bob");
        append_to(&p, b"Subject: s\n\nbody\n", 200).unwrap();
        let before = std::fs::read(&p).unwrap();
        let e = append_to(&p, &[b'x'; 300], 200).unwrap_err();
        assert!(e.over_quota);
        assert_eq!(std::fs::read(&p).unwrap(), before);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn symlinks_and_hard_links_are_refused() {
        let d = tmp("links");
        std::fs::write(d.join("victim"), "").unwrap();
        std::os::unix::fs::symlink(d.join("victim"), d.join("sym")).unwrap();
        std::fs::hard_link(d.join("victim"), d.join("hard")).unwrap();
        assert!(
            append_to(&d.join("sym"), b"x\n", 0)
                .unwrap_err()
                .text
                .contains("symbolic link")
        );
        assert!(
            append_to(&d.join("hard"), b"x\n", 0)
                .unwrap_err()
                .text
                .contains("hard link")
        );
        assert_eq!(std::fs::read(d.join("victim")).unwrap(), b"");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
