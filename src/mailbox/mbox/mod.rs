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
//! ## Who does what
//!
//! * [`append`] is the door: it renders one message as an entry
//!   ([`from_line`], the message, the closing empty line) and has it
//!   written by [`write`], which appends under the mailbox locks and
//!   leaves the file exactly as it was on any failure;
//! * [`batch`]: threads of one process (the queue runner's workers) that
//!   deliver to the same mbox at once share one lock and one `fsync`;
//! * [`compaction`]: POP3's `QUIT` removes messages by moving the rest
//!   down in place, in one pass that a kill cannot leave half done;
//! * [`recovery`]: what a writer killed holding the locks left (a half
//!   append, a half compaction) is finished or undone by whoever takes
//!   the write lock next, deliver and pop3d alike;
//! * `redelivery.rs`: the retry of an attempt that died midway first
//!   looks for the whole copy that attempt may have left.

pub mod batch;
pub mod compaction;
pub mod recovery;
mod redelivery;
mod write;

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use super::{Failure, Format, Message, write_message};
use write::{Item, Target, write_batch};

pub use batch::turn;
pub use write::open_mailbox;

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

#[cfg(test)]
mod test_support {
    //! What the tests of every part of the mbox code start from.
    use super::*;
    use crate::mailbox::lock::{self, Note};
    use std::os::unix::fs::MetadataExt;

    pub fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mr-mbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn append_to(path: &Path, body: &[u8], quota: u64) -> Result<u64, Failure> {
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
    pub fn dead_writers_dotlock(mbox: &Path, note: Note) {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(lock::dotlock_path(mbox), format!("{dead}\n{note}\n")).unwrap();
    }

    pub fn dev_ino(p: &Path) -> (u64, u64) {
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    /// Append the message of job `id` for bob@example.com, as a retry after
    /// an interrupted attempt would when `retry`.
    pub fn append_job(path: &Path, id: &str, body: &str, retry: bool) -> u64 {
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
}

#[cfg(test)]
mod tests {
    use super::test_support::*;

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
}
