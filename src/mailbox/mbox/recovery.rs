//! Finishing or undoing what a writer killed holding an mbox's locks left
//! behind, as the note in its stale dotlock says
//! ([`crate::mailbox::lock::Note`]): a half-written append is cut off, a
//! half-done compaction (POP3's `QUIT`) is finished from its side file
//! ([`super::compaction`]).  Whoever takes the write lock next does it:
//! an appender (`write.rs`) and pop3d ([`crate::pop3::maildrop::mbox`])
//! alike.  The finder copies the note into its own dotlock first and
//! takes it back once done, so that a finder killed in turn (or failing)
//! leaves the same work to the next one.

use std::fs::File;
use std::io;
use std::path::Path;

use super::compaction;
use crate::mailbox::lock::{self, Note};

/// Finish or undo what a killed writer of `file` left, as the [`Note`] in
/// its stale dotlock (replaced by `held`) tells.  Returns what was done.
/// The caller holds the write lock.
pub fn recover(file: &File, path: &Path, held: &lock::Held) -> io::Result<Option<String>> {
    if held.broken().is_none() {
        return Ok(None);
    }
    let note = held.broken_note();
    if !matches!(note, Some(Note::Compact { .. } | Note::CompactCopy { .. })) {
        // A compactor killed before its note left a side file nobody uses.
        let _ = std::fs::remove_file(compaction::side_file(path));
    }
    let Some(note) = note else {
        held.settled();
        return Ok(None);
    };
    let opened = file.metadata()?;
    if !note.is_about(&opened) {
        // The mbox was replaced: the note is about a file gone from here.
        held.settled();
        return Ok(None);
    }
    // The note goes into this finder's dotlock first; until it is there,
    // dropping the lock puts the dead holder's words back.
    held.note(note)?;
    let done = match note {
        Note::Append { start, .. } if start < opened.len() => file
            .set_len(start)
            .and_then(|()| file.sync_data())
            .map(|()| {
                Some(format!(
                    "removed {} bytes a killed delivery left half-written",
                    opened.len() - start
                ))
            }),
        Note::Append { .. } => Ok(None),
        Note::Compact { .. } => compaction::finish(path, &opened),
        Note::CompactCopy { start, len, .. } => copy_back(path, start, len),
    };
    match done {
        Ok(done) => {
            // Done: the note must never be acted on again (the file may
            // grow past START from now on).
            held.settled();
            held.clear_note()?;
            Ok(done)
        }
        Err(e) => {
            held.leave_for_recovery();
            Err(e)
        }
    }
}

/// Finish a compaction of the older kind ([`Note::CompactCopy`]): copy
/// the side file (the whole kept tail, `len` bytes) over the mbox at
/// `start`, cut the mbox there, sync, remove the side file.  No side file
/// of that length means the copy had finished.
fn copy_back(path: &Path, start: u64, len: u64) -> io::Result<Option<String>> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let side_path = compaction::side_file(path);
    let side = match std::fs::OpenOptions::new()
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
    // Positioned writes need a descriptor without O_APPEND.
    let target = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = vec![0u8; 512 * 1024];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        side.read_exact_at(&mut buf[..n], done)?;
        target.write_all_at(&buf[..n], start + done)?;
        done += n as u64;
    }
    target.set_len(start + len)?;
    target.sync_all()?;
    std::fs::remove_file(&side_path)?;
    Ok(Some(
        "finished the compaction a killed POP3 session left half-done".to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn a_killed_appenders_half_message_is_cut_off_by_the_next_one() {
        let (p, whole) = torn("torn");
        let d = p.parent().unwrap().to_path_buf();
        let (dev, ino) = dev_ino(&p);
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

    /// A torn append and its writer's stale dotlock, as a kill leaves them.
    fn torn(name: &str) -> (std::path::PathBuf, Vec<u8>) {
        let d = tmp(name);
        let p = d.join("bob");
        append_to(&p, b"Subject: one\n\nfirst\n", 0).unwrap();
        let whole = std::fs::read(&p).unwrap();
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
        (p, whole)
    }

    fn lock_bob(p: &std::path::Path) -> (std::fs::File, lock::Held) {
        let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
        let held = lock::lock(&f, p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
        (f, held)
    }

    /// The finder is killed the instant after it took the stale dotlock
    /// over, before settling anything: its own dotlock already carries
    /// the dead writer's note, so the next locker still cuts the torn
    /// append.  (Removing the stale dotlock and then creating one left an
    /// instant where a kill lost the note.)
    #[test]
    fn a_finder_killed_as_it_takes_the_dotlock_over_loses_no_note() {
        let (p, whole) = torn("takeover");
        let (f, held) = lock_bob(&p);
        assert!(held.broken_note().is_some());
        let ours = std::fs::read_to_string(lock::dotlock_path(&p)).unwrap();
        assert_eq!(Note::from_dotlock(&ours), held.broken_note(), "{ours}");
        // Killed here: the dotlock stays, the fcntl lock goes with the
        // file, and so does the holder.
        std::mem::forget(held);
        drop(f);
        let note = Note::from_dotlock(&ours).unwrap();
        dead_writers_dotlock(&p, note);
        append_to(&p, b"Subject: two\n\nsecond\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("torn"), "{text}");
        assert!(text.starts_with(std::str::from_utf8(&whole).unwrap()));
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }

    /// A locker that breaks a stale dotlock and lets go without settling
    /// its note (the mailbox path changed under it; an error) puts the
    /// dead writer's words back: the next locker settles them.
    #[test]
    fn a_locker_that_gives_up_leaves_the_note_for_the_next() {
        let (p, whole) = torn("give-up");
        let (_f, held) = lock_bob(&p);
        let dead = held.broken().unwrap().to_string();
        drop(held);
        assert_eq!(
            std::fs::read_to_string(lock::dotlock_path(&p)).unwrap(),
            dead
        );
        append_to(&p, b"Subject: two\n\nsecond\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("torn"), "{text}");
        assert!(text.starts_with(std::str::from_utf8(&whole).unwrap()));
        assert!(text.ends_with("second\n\n"), "{text}");
        assert!(!lock::dotlock_path(&p).exists());
        // Settled once, never again: a lock taken and dropped now leaves
        // nothing behind.
        drop(lock_bob(&p));
        assert!(!lock::dotlock_path(&p).exists());
        std::fs::remove_dir_all(p.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_note_without_its_side_file_or_with_a_damaged_one() {
        let d = tmp("compact3");
        let p = d.join("eve");
        std::fs::write(&p, b"From a@b  Sat Nov 21 05:00:00 2026\n\nx\n\n").unwrap();
        let before = std::fs::read(&p).unwrap();
        let (dev, ino) = dev_ino(&p);
        // No side file: the compaction had finished.
        dead_writers_dotlock(&p, Note::Compact { dev, ino });
        append_to(&p, b"Subject: one\n\n1\n", 0).unwrap();
        let after_one = std::fs::read(&p).unwrap();
        assert!(after_one.starts_with(&before));
        // A side file without a whole plan: left alone, and removed.
        std::fs::write(compaction::side_file(&p), b"MRCOMPA1 torn").unwrap();
        dead_writers_dotlock(&p, Note::Compact { dev, ino });
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        let held = lock::lock(&f, &p, lock::Kind::Write, Duration::from_secs(2)).unwrap();
        let done = recover(&f, &p, &held).unwrap().unwrap();
        assert!(done.contains("holds no plan"), "{done}");
        drop(held);
        assert_eq!(std::fs::read(&p).unwrap(), after_one);
        assert!(!compaction::side_file(&p).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A QUIT of the older kind (whole tail copied to the side file, then
    /// back) killed midway, just before an upgrade: the new code finishes
    /// it the old way.
    #[test]
    fn a_compaction_of_the_older_kind_is_still_finished() {
        let d = tmp("compact-old");
        let p = d.join("eve");
        let head = b"From a@b  Sat Nov 21 05:00:00 2026\nSubject: kept\n\nkept\n\n";
        let tail = b"From a@b  Sat Nov 21 05:00:01 2026\nSubject: also kept\n\nyes\n\n";
        let mut torn = head.to_vec();
        torn.extend_from_slice(&tail[..20]);
        torn.extend_from_slice(b"Subject: doomed\n\nbye\n\n");
        std::fs::write(&p, &torn).unwrap();
        std::fs::write(compaction::side_file(&p), tail).unwrap();
        let (dev, ino) = dev_ino(&p);
        let note = Note::CompactCopy {
            start: head.len() as u64,
            len: tail.len() as u64,
            dev,
            ino,
        };
        // The older code's words, read back as this note.
        assert_eq!(
            Note::from_dotlock(&format!(
                "123\ncompact {} {} {dev} {ino}\n",
                head.len(),
                tail.len()
            )),
            Some(note)
        );
        dead_writers_dotlock(&p, note);
        append_to(&p, b"Subject: new\n\nnew mail\n", 0).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut want = head.to_vec();
        want.extend_from_slice(tail);
        assert!(text.as_bytes().starts_with(&want), "{text}");
        assert!(!text.contains("doomed"), "{text}");
        assert!(text.ends_with("new mail\n\n"), "{text}");
        assert!(!compaction::side_file(&p).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
