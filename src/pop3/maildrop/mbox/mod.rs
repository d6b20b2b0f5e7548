//! An mbox as a POP3 maildrop: opened at login (the scan, `scan.rs`,
//! helped by the index file, `index.rs`), read message by message, and
//! compacted at a clean `QUIT` (`compact.rs`).
//!
//! ## Locks
//!
//! * The session holds `flock(LOCK_EX)` on the mbox for its whole life:
//!   a second POP3 session gets `[IN-USE]`; the kernel drops it when the
//!   process dies.  Delivery and other readers use `fcntl` and dotlocks,
//!   which `flock` does not touch, so mail keeps arriving meanwhile.
//! * Opening (the scan) and `QUIT` (the rewrite) take the mailbox locks
//!   every program shares ([`crate::mailbox::lock`]), and first finish or
//!   undo what a writer killed holding them left
//!   ([`crate::mailbox::mbox::recovery`]).

mod compact;
mod index;
mod scan;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Committed, Listed, OpenError, Region, Storage, send_region};
use crate::mailbox::lock::{self, Kind, LockError};
use crate::wire::Wire;
use index::{index_path, read_index, write_index};
use scan::{Msg, from_sum_at, list, scan};

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
    /// Its size and change time (`st_ctime`) at login, when that time
    /// was over a second old: a file with both unchanged at `QUIT` has
    /// not been written since (any write, truncation or `utime` sets the
    /// change time to the clock, which has moved on), so its messages
    /// need no check.
    settled: Option<(u64, i64, i64)>,
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
                    settled: None,
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
        let changed = std::time::UNIX_EPOCH
            + Duration::new(
                m.ctime().max(0) as u64,
                m.ctime_nsec().clamp(0, 999_999_999) as u32,
            );
        let settled = std::time::SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age > Duration::from_secs(1))
            .then_some((size, m.ctime(), m.ctime_nsec()));
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
            settled,
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
                storage: Storage::Mbox,
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
        // The move is made safe against a kill by its note in the dotlock
        // and its side file beside the mbox; without leave to create them
        // (a spool not writable by group mail) nothing is moved.
        if !held.has_dotlock() {
            return Err(format!(
                "{what}: nothing deleted: no permission to create {} beside it, which a \
                 safe rewrite needs (make the spool directory group mail, mode 2775)",
                crate::mailbox::lock::dotlock_path(&self.path).display()
            ));
        }
        let now = file.metadata().map_err(|e| format!("{what}: {e}"))?;
        let size = now.len();
        if size < self.snapshot {
            return Err(format!("{what} shrank during the session; nothing deleted"));
        }
        let untouched = self.settled == Some((size, now.ctime(), now.ctime_nsec()));
        for m in self.msgs.iter().filter(|_| !untouched) {
            if from_sum_at(file, m.from).map_err(|e| format!("{what}: {e}"))? != m.sum {
                return Err(format!(
                    "{what} was changed by another program during the session; nothing deleted"
                ));
            }
        }
        // Signals that would stop the rewrite halfway wait until the mbox
        // and its index agree again.
        let _quiet = compact::BlockSignals::new();
        // The index goes before anything moves, and is written again
        // after: a compaction this process does not live to finish is
        // finished by another, and the file is then scanned afresh.
        let index = index_path(&self.path);
        let _ = std::fs::remove_file(&index);
        let done = compact::remove(
            file,
            &self.path,
            &held,
            &self.msgs,
            &doomed,
            self.snapshot,
            size,
        )
        .map_err(|e| format!("{what}: {e}"))?;
        drop(held);
        if let Ok(m) = file.metadata() {
            write_index(&index, file, &m, &done.kept, done.indexed_end);
        }
        self.msgs = done.kept;
        Ok(done.committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

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

    /// A mailbox last changed long before login is not checked message
    /// by message at QUIT unless it changed since: a rewrite of the same
    /// size is still seen.
    #[test]
    fn a_same_size_rewrite_of_a_settled_mailbox_is_left_alone() {
        let p = mbox_file("settled", THREE);
        std::thread::sleep(Duration::from_millis(1100));
        let mut m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert!(m.settled.is_some());
        let text = String::from_utf8_lossy(THREE).replace("From c@d", "From x@y");
        std::fs::write(&p, &text).unwrap();
        assert!(m.commit(&[true, false, false]).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        drop(m);
        // Untouched since login: compacted without the checks.
        std::thread::sleep(Duration::from_millis(1100));
        let mut m = Mbox::open(&p, me(), Duration::from_secs(2)).unwrap();
        assert!(m.settled.is_some());
        assert_eq!(m.commit(&[true, false, false]).unwrap().deleted, 1);
        let now = std::fs::read_to_string(&p).unwrap();
        assert!(
            now.starts_with("From x@y") && !now.contains("Subject: one"),
            "{now}"
        );
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
